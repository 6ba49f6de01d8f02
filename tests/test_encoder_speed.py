"""The encoder's speed options (issue 16): bf16 on CPUs, fused attention, compile, overlap.

Fused attention must be SAM's attention to float rounding (fp32), on
windowed and global blocks, of the tiny model and of a ViT-B-sized block,
on every device there is (CUDA tests skip without a GPU).
"""

import logging

import numpy as np
import pytest
import torch
from segment_anything.modeling.image_encoder import Attention, Block

from fiftyone_samrs.segmenting.prompts import build_prompts
from fiftyone_samrs.segmenting.sam import attention as att
from fiftyone_samrs.segmenting.sam import models
from fiftyone_samrs.segmenting.sam.engine import COMPILE_AUTO, SamEngine
from fiftyone_samrs.segmenting.sam.tiny import build_tiny_sam

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


@pytest.fixture
def exact_cuda():
    """Plain fp32 matrix products on CUDA (no TF32) while the test runs."""
    if not torch.cuda.is_available():
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _vit_b_block(window_size: int, grid: int, seed: int = 0) -> Block:
    """A ViT-B-sized encoder block (width 768, 12 heads) with random weights and rel-pos,
    for a ``grid x grid`` token map (64 for a 1024x1024 image; smaller here, for speed)."""
    g = torch.Generator().manual_seed(seed)
    blk = Block(768, 12, 4.0, True, use_rel_pos=True, window_size=window_size,
                input_size=(grid, grid)).eval()
    with torch.no_grad():
        blk.attn.rel_pos_h.copy_(torch.randn(blk.attn.rel_pos_h.shape, generator=g) * 0.02)
        blk.attn.rel_pos_w.copy_(torch.randn(blk.attn.rel_pos_w.shape, generator=g) * 0.02)
    return blk


def _fuse(module) -> None:
    module.attn.__class__ = att.fused_attention_class()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("window_size, grid", [(14, 30), (0, 32)], ids=["windowed", "global"])
def test_fused_attention_is_sams_on_a_vit_b_block(device, window_size, grid, exact_cuda):
    """Windowed: 30x30 tokens padded to 3x3 windows of 14; global: 1024 tokens
    (benchmarks/gpu_check.py checks the full 64x64 grid)."""
    blk = _vit_b_block(window_size, grid).to(device)
    x = torch.randn(1, grid, grid, 768, generator=torch.Generator().manual_seed(1)).to(device)
    with torch.inference_mode():
        ref = blk(x)
        _fuse(blk)
        out = blk(x)
        # the relative positions matter at this scale: a bias-free attention would fail
        blk.attn.__class__ = Attention
        rel_h, rel_w = blk.attn.rel_pos_h.clone(), blk.attn.rel_pos_w.clone()
        blk.attn.rel_pos_h.zero_()
        blk.attn.rel_pos_w.zero_()
        no_bias = blk(x)
        blk.attn.rel_pos_h.copy_(rel_h)
        blk.attn.rel_pos_w.copy_(rel_w)
    assert isinstance(blk.attn, Attention)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=2e-5)
    assert (no_bias - ref).abs().max().item() > 1e-3


@pytest.mark.parametrize("device", DEVICES)
def test_fused_attention_on_the_tiny_encoder_keeps_the_state_dict(device, exact_cuda):
    sam = build_tiny_sam(0).to(device)
    enc = sam.image_encoder
    kinds = sorted(blk.window_size for blk in enc.blocks)
    assert kinds == [0, 14]  # one global block, one windowed
    before = {k: v.clone() for k, v in sam.state_dict().items()}
    x = sam.preprocess(torch.rand(2, 3, 1024, 1024, generator=torch.Generator().manual_seed(2))
                       .to(device) * 255)
    with torch.inference_mode():
        ref = enc(x)
        assert att.enable_fused_attention(sam) == 2
        assert att.enable_fused_attention(sam) == 0  # already fused
        assert att.fused_attention_enabled(sam)
        out = enc(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    after = sam.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert all(isinstance(b.attn, Attention) for b in enc.blocks)
    assert att.disable_fused_attention(sam) == 2
    assert all(type(b.attn) is Attention for b in enc.blocks)
    assert not att.fused_attention_enabled(sam)


@pytest.mark.parametrize("device", DEVICES)
def test_fused_attention_in_bf16_is_as_close_to_fp32_as_sams(device):
    sam = build_tiny_sam(0).to(device)
    enc = sam.image_encoder
    x = sam.preprocess(torch.rand(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(3))
                       .to(device) * 255)
    with torch.inference_mode():
        fp32 = enc(x)
        with torch.autocast(device, dtype=torch.bfloat16):
            ref_bf16 = enc(x).float()
            att.enable_fused_attention(sam)
            fused_bf16 = enc(x).float()
    scale = fp32.abs().max()
    err_ref = ((ref_bf16 - fp32).abs().max() / scale).item()
    err_fused = ((fused_bf16 - fp32).abs().max() / scale).item()
    assert 0 < err_fused < 0.05
    assert err_fused <= 2 * err_ref + 1e-3


# -- bf16 detection -------------------------------------------------------------------


def test_cpuinfo_flags_are_read_from_the_file(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n\n"
                    "processor\t: 1\nflags\t\t: fpu amx_bf16\n")
    assert {"avx512f", "avx512_bf16", "amx_bf16", "fpu"} <= models._cpuinfo_flags(str(info))
    assert models._cpuinfo_flags(str(tmp_path / "missing")) == set()


@pytest.mark.parametrize(
    "from_torch, flags, fast, features, source",
    [
        ([], {"avx512f", "avx2"}, False, (), "torch+/proc/cpuinfo"),
        (None, {"amx_bf16", "avx512_bf16"}, True, ("amx_bf16", "avx512_bf16"), "/proc/cpuinfo"),
        (["avx512_bf16"], set(), True, ("avx512_bf16",), "torch"),
        (["amx_bf16"], {"avx512_bf16"}, True, ("amx_bf16", "avx512_bf16"), "torch+/proc/cpuinfo"),
        (None, set(), False, (), "none"),
    ],
)
def test_cpu_bf16_detection_uses_torch_and_cpuinfo(monkeypatch, from_torch, flags, fast,
                                                    features, source):
    monkeypatch.setattr(models, "_torch_bf16_features", lambda: from_torch)
    monkeypatch.setattr(models, "_cpuinfo_flags", lambda path="/proc/cpuinfo": set(flags))
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(models, "_CPU_BF16", None)
    got = models.cpu_bf16_support()
    assert (got.fast, got.features, got.source) == (fast, features, source)
    assert models.cpu_bf16_support() is got  # cached
    # without oneDNN there are no fast bf16 kernels
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert not models.cpu_bf16_support(refresh=True).fast


def test_auto_dtype_on_cpu_follows_the_cpu_and_the_switch(monkeypatch):
    bf16_cpu = models.CpuBf16Support(True, ("avx512_bf16",), "torch", "AVX512")
    plain_cpu = models.CpuBf16Support(False, (), "torch", "AVX2")
    monkeypatch.setattr(models, "_CPU_BF16", bf16_cpu)
    monkeypatch.setattr(models, "CPU_BF16_AUTO", True)
    assert models.resolve_dtype_with_reason("cpu") == (torch.bfloat16, "auto: CPU has AVX512-BF16")
    assert models.resolve_dtype("cpu", "auto") is torch.bfloat16
    assert models.resolve_dtype_with_reason("cpu", "fp32") == (None, "requested")
    monkeypatch.setattr(models, "CPU_BF16_AUTO", False)
    dtype, reason = models.resolve_dtype_with_reason("cpu")
    assert dtype is None and "CPU_BF16_AUTO is off" in reason
    assert models.resolve_dtype("cpu", "bf16") is torch.bfloat16  # opt-in still works
    monkeypatch.setattr(models, "CPU_BF16_AUTO", True)
    monkeypatch.setattr(models, "_CPU_BF16", plain_cpu)
    assert models.resolve_dtype_with_reason("cpu") == (None, "auto: CPU has no AMX-BF16/AVX512-BF16")


def test_this_machine_is_detected():
    """Detection agrees with /proc/cpuinfo (where there is one), and "auto" with the switch."""
    flags = models._cpuinfo_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo flags on this machine")
    has = bool({"amx_bf16", "avx512_bf16"} & flags) and torch.backends.mkldnn.is_available()
    assert models.cpu_bf16_support().fast == has
    assert (models.resolve_dtype("cpu") is torch.bfloat16) == (has and models.CPU_BF16_AUTO)


# -- the engine -------------------------------------------------------------------------


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        img = rng.integers(0, 256, (300 + 40 * k, 420, 3), dtype=np.uint8)
        img[50:150, 80:200] = (200, 170, 60)
        out.append(img)
    return out


def _prompts(images):
    return [build_prompts(np.array([[60, 40, 220, 170], [10, 10, 90, 60 + k]], dtype=float),
                          None, "hbox", img.shape[:2]) for k, img in enumerate(images)]


def test_engine_settings_say_what_runs():
    sam = build_tiny_sam(0)
    eng = SamEngine(sam, device="cpu", dtype="fp32")
    st = eng.settings()
    assert st == {"device": "cpu", "dtype": "fp32", "dtype_reason": "requested",
                  "attention": "fused", "compile": "off" if not COMPILE_AUTO["cpu"] else "on",
                  "overlap": False}
    assert eng.describe() == "encoder fp32 (requested), fused attention, not compiled"
    assert att.fused_attention_enabled(sam)
    auto = SamEngine(sam, device="cpu")
    assert auto.settings()["dtype"] == models.dtype_name(models.resolve_dtype("cpu"))
    assert auto.settings()["dtype_reason"].startswith("auto: CPU has ")
    ref = SamEngine(sam, device="cpu", dtype="bf16", attention="reference")
    assert all(type(b.attn) is Attention for b in sam.image_encoder.blocks)
    assert ref.describe().startswith("encoder bf16 (requested), reference attention")
    # compile="auto" on a CPU: only for jobs large enough to pay the compile back
    from fiftyone_samrs.segmenting.sam.engine import CPU_COMPILE_MIN_IMAGES

    big = SamEngine(sam, device="cpu", dtype="fp32", expected_images=CPU_COMPILE_MIN_IMAGES)
    small = SamEngine(sam, device="cpu", dtype="fp32", expected_images=CPU_COMPILE_MIN_IMAGES - 1)
    assert big.compiled and big.settings()["compile"] == "on" and big.describe().endswith(", compiled")
    assert not small.compiled and small.settings()["compile"] == "off"
    assert not SamEngine(sam, device="cpu", compile=False, expected_images=10**6).compiled
    with pytest.raises(ValueError, match="attention must be"):
        SamEngine(sam, device="cpu", attention="flash")
    with pytest.raises(ValueError, match="compile must be"):
        SamEngine(sam, device="cpu", compile="sometimes")


def test_fused_and_reference_engines_give_the_same_masks():
    images = _images(2)
    prompts = _prompts(images)
    sam = build_tiny_sam(0)
    ref = SamEngine(sam, device="cpu", dtype="fp32", attention="reference").predict_batch(images, prompts)
    fused = SamEngine(sam, device="cpu", dtype="fp32", attention="fused").predict_batch(images, prompts)
    for ra, rb in zip(ref, fused):
        for a, b in zip(ra, rb):
            assert a.mask.box == b.mask.box
            inter = (a.mask.mask & b.mask.mask).sum()
            union = (a.mask.mask | b.mask.mask).sum()
            assert union == 0 or inter / union >= 0.999
            assert a.score == pytest.approx(b.score, abs=1e-4)
    assert any(r.mask.mask.any() for res in ref for r in res)


def test_a_failing_compile_falls_back_with_a_warning(monkeypatch, caplog):
    def broken(sam, mode=None, **kw):
        def run(x):
            raise RuntimeError("boom: no C++ compiler")
        return run

    monkeypatch.setattr(att, "compile_encoder_blocks", broken)
    sam = build_tiny_sam(0)
    images = _images(1)
    eager = SamEngine(sam, device="cpu", dtype="fp32", compile=False).encode(images)[0]
    eng = SamEngine(sam, device="cpu", dtype="fp32", compile=True)
    assert eng.compiled and eng.settings()["compile"] == "on"
    with caplog.at_level(logging.WARNING, logger="fiftyone_samrs.segmenting.sam.attention"):
        got = eng.encode(images)[0]
    assert any("running it uncompiled" in r.getMessage() and "boom" in r.getMessage()
               for r in caplog.records)
    torch.testing.assert_close(got.features, eager.features)
    assert not eng.compiled
    assert eng.settings()["compile"].startswith("failed, uncompiled: RuntimeError: boom")
    assert "compile failed" in eng.describe()


def test_compiled_encoder_gets_full_batches_and_the_same_features(monkeypatch):
    """Regional compilation (dynamo only, no code generation: backend="eager")
    through the engine: short batches are padded, results unchanged."""
    shapes = []
    real = att.compile_encoder_blocks

    def eager_backend(sam, mode=None, **kw):
        compiled = real(sam, mode=mode, backend="eager")

        def run(x):
            shapes.append(tuple(x.shape))
            return compiled(x)
        return run

    monkeypatch.setattr(att, "compile_encoder_blocks", eager_backend)
    torch._dynamo.reset()
    sam = build_tiny_sam(0)
    images = _images(3)
    plain = SamEngine(sam, device="cpu", dtype="fp32", compile=False, encoder_batch=4).encode(images)
    eng = SamEngine(sam, device="cpu", dtype="fp32", compile=True, encoder_batch=4)
    got = eng.encode(images)
    assert shapes == [(4, 3, 1024, 1024)]  # 3 images padded to 4
    assert eng.compiled
    for a, b in zip(got, plain):
        torch.testing.assert_close(a.features, b.features, rtol=1e-5, atol=1e-5)


def test_padded_batch_sizes():
    from fiftyone_samrs.segmenting.sam.engine import padded_batch

    assert [padded_batch(n, 8) for n in range(1, 9)] == [1, 2, 4, 4, 8, 8, 8, 8]
    assert [padded_batch(n, 6) for n in range(1, 7)] == [1, 2, 4, 4, 6, 6]
    assert padded_batch(1, 1) == 1 and padded_batch(3, 2) == 3  # never below n


def test_compile_encoder_blocks_is_the_encoder():
    torch._dynamo.reset()
    sam = build_tiny_sam(1)
    att.enable_fused_attention(sam)
    compiled = att.compile_encoder_blocks(sam, backend="eager")
    x = sam.preprocess(torch.rand(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(4)) * 255)
    with torch.inference_mode():
        torch.testing.assert_close(compiled(x), sam.image_encoder(x), rtol=1e-6, atol=1e-6)
    assert "image_encoder" not in dict(compiled.named_modules())  # no second owner
    with pytest.raises(TypeError, match="expected a segment_anything Sam"):
        att.compile_encoder_blocks(torch.nn.Linear(2, 2))


def test_predict_batches_equals_predict_batch():
    sam = build_tiny_sam(0)
    eng = SamEngine(sam, device="cpu", dtype="fp32", encoder_batch=2)
    images = _images(3)
    prompts = _prompts(images)
    batches = [(images[:2], prompts[:2]), (images[2:], prompts[2:])]
    streamed = list(eng.predict_batches(iter(batches)))
    single = [eng.predict_batch(i, p) for i, p in batches]
    assert [len(b) for b in streamed] == [2, 1]
    for sb, pb in zip(streamed, single):
        for sr, pr in zip(sb, pb):
            for a, b in zip(sr, pr):
                assert np.array_equal(a.mask.mask, b.mask.mask) and a.score == b.score
    assert list(eng.predict_batches([])) == []
    with pytest.raises(ValueError, match="2 images but 1 prompt sets"):
        list(eng.predict_batches([(images[:2], prompts[:1])]))


@needs_cuda
def test_cuda_engine_overlaps_pins_and_matches_the_cpu():
    sam = build_tiny_sam(0)
    images = _images(3)
    prompts = _prompts(images)
    cpu = SamEngine(build_tiny_sam(0), device="cpu", dtype="fp32").predict_batch(images, prompts)
    eng = SamEngine(sam, device="cuda", dtype="fp32", encoder_batch=2, compile=False)
    assert eng.settings()["overlap"] and eng.preprocess(images[0]).tensor.is_pinned()
    for stream in (False, True):
        got = (list(eng.predict_batches([(images[:2], prompts[:2]), (images[2:], prompts[2:])]))
               if stream else [eng.predict_batch(images, prompts)])
        flat = [r for batch in got for r in batch]
        for ra, rb in zip(cpu, flat):
            for a, b in zip(ra, rb):
                inter = (a.mask.mask & b.mask.mask).sum()
                union = (a.mask.mask | b.mask.mask).sum()
                assert union == 0 or inter / union >= 0.99
    emb = eng.encode_async(images[:1])[0]
    assert emb.ready is not None
    assert emb.wait().ready is None


def test_pipeline_streams_batches_through_predict_batches_and_keeps_errors_in_order():
    """The pipeline hands its batches to ``predict_batches`` (which takes batch i + 1
    before yielding batch i): every batch before a failing one still comes out."""
    from fiftyone_samrs.segmenting.loop import _Job, _predict_all

    class LookAhead:
        name = "fake"

        def __init__(self):
            self.calls = []

        def predict_batches(self, pairs):
            it = iter(pairs)
            cur = next(it, None)
            while cur is not None:
                nxt = next(it, None)  # the look-ahead of the CUDA path
                self.calls.append(len(cur[0]))
                yield [["mask of %s" % im] for im in cur[0]]
                cur = nxt

    def job(name, n):
        j = _Job(name, name, 10, 10, [], [], [], np.zeros((n, 4)), None)
        j.prompts = [0] * n if n else None
        j.image = name
        return j

    def batches():
        yield [job("a", 1), job("b", 0)]
        yield [job("c", 2)]
        raise OSError("image d unreadable")

    engine = LookAhead()
    out = []
    with pytest.raises(OSError, match="image d unreadable"):
        for jobs in _predict_all(engine, batches()):
            out.append([(j.sample_id, j.results, j.image) for j in jobs])
    assert out == [[("a", ["mask of a"], None), ("b", [], "b")], [("c", ["mask of c"], None)]]
    assert engine.calls == [1, 1]
