"""GPU check of the SAM engine (issue 16): exactness and speed on one CUDA device.

Needs only torch and segment_anything (plus numpy): no FiftyOne, no MongoDB,
no OpenCV, no weights (random-weight models). It imports
``fiftyone_samrs.segmenting.sam.*`` and ``fiftyone_samrs.segmenting.prompts``,
which import neither FiftyOne nor OpenCV (checked at start, and by
``tests/test_gpu_check.py``).

What it measures, each section timed within this one run:

1. fused attention (``scaled_dot_product_attention`` with the decomposed
   relative-position bias) against SAM's ``Attention``: ViT-B- and
   ViT-H-sized windowed and global blocks, fp32 with TF32 off (must be
   ``allclose``), and the bf16 error of both against fp32;
2. the SDPA kernels available for a ViT-H global block with a bias (CUDA);
3. the fast decoder against SAM's decoder on the device: per-instance mask
   IoU (>= 0.999) and IoU predictions against ``SamPredictor.predict_torch``,
   and ms per image for 50 boxes;
4. encoder images/s, ViT-B and ViT-H (random weights, 1024x1024, batches of
   ``--batch``): fp32, bf16, bf16 + fused attention, bf16 + fused + compile
   (regional ``torch.compile``; its compile time reported);
5. the engine end to end, 64 images x 50 boxes (``SamEngine.predict_batches``
   with images preprocessed in loader threads, masks on the host): with and
   without encoder/decoder overlap, against the encoder alone; and the goal
   (ViT-H >= 60 images/s with 50 boxes per image on one H100/H200).

It prints a Markdown table (and writes it to ``--out``, with a ``.json``
beside it, after every section, so a run cut short still leaves its
results). It keeps to ``--budget`` seconds (default 300): sections that would
start later are skipped and say so.

On a lent GPU session (see ``/work/.library/device/README.md``): the machine
has torch (2.11, CUDA 13) and numpy but not segment_anything, which travels
as a wheel. Once, in the repository root here::

    echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: -d .whl segment-anything==1.0

then one ``run`` call, ``carry=[".whl"]``, ``timeout_s=420`` (a rerun still fits
in the 15 minutes), command::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit; PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --out $OUT/gpu_check.md

and copy the table into ``benchmarks/results/gpu-check-<date>.md``.

Here (no GPU), as the tests do::

    python benchmarks/gpu_check.py --device cpu --quick     # a minute or two: tiny model, small sizes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

#: encoder block sizes of the attention check: name -> (label, width, heads)
ATTENTION_BLOCKS = {"vit_b": ("ViT-B", 768, 12), "vit_h": ("ViT-H", 1280, 16),
                    "tiny": ("tiny", 32, 2)}

#: the goal of issue 16 for one H100/H200: ViT-H images/s with 50 boxes per image
GOAL_VIT_H_IMAGES_PER_S = 60.0


def log(msg: str) -> None:
    print("[gpu_check %6.1fs] %s" % (time.time() - _T0, msg), file=sys.stderr, flush=True)


_T0 = time.time()


# -- report --------------------------------------------------------------------------


class Report:
    """Sections of Markdown tables, saved after each section."""

    def __init__(self, out: Optional[str], budget: float):
        self.out = out
        self.budget = budget
        self.parts: List[str] = []
        self.data: Dict[str, Any] = {}

    def left(self) -> float:
        return self.budget - (time.time() - _T0)

    def table(self, title: str, columns: List[str], rows: List[List[Any]], notes: str = "") -> None:
        lines = ["## " + title, "", "| " + " | ".join(columns) + " |",
                 "| " + " | ".join("---" if i == 0 else "---:" for i in range(len(columns))) + " |"]
        for r in rows:
            lines.append("| " + " | ".join(_cell(v) for v in r) + " |")
        if notes:
            lines += ["", notes]
        self.parts.append("\n".join(lines) + "\n")
        self.data[title] = {"columns": columns, "rows": [[_plain(v) for v in r] for r in rows],
                            "notes": notes}
        self.save()

    def note(self, title: str, text: str) -> None:
        self.parts.append("## %s\n\n%s\n" % (title, text))
        self.data[title] = {"notes": text}
        self.save()

    def text(self) -> str:
        return "\n".join(self.parts)

    def save(self) -> None:
        if not self.out:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.out)) or ".", exist_ok=True)
        with open(self.out, "w") as f:
            f.write(self.text())
        with open(os.path.splitext(self.out)[0] + ".json", "w") as f:
            json.dump(self.data, f, indent=1)


def _cell(v) -> str:
    if isinstance(v, float):
        if v != v:
            return "n/a"
        if abs(v) >= 100:
            return "%.0f" % v
        if abs(v) >= 1:
            return "%.2f" % v
        if v == 0:
            return "0"
        if abs(v) >= 1e-3:
            return "%.4f" % v
        return "%.1e" % v
    return str(v)


def _plain(v):
    return v if isinstance(v, (int, float, str, bool, type(None))) else str(v)


def _fiftyone_imported() -> bool:
    return sys.modules.get("fiftyone") is not None


def _short_error(e: BaseException) -> str:
    return "%s: %s" % (type(e).__name__, (str(e).strip().splitlines() or [""])[0][:160])


# -- timing ------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(fn: Callable[[], Any], device: torch.device, reps: int, warmup: int = 1) -> float:
    """Median seconds of ``fn`` (device-synchronised)."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(max(1, reps)):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


class no_tf32:
    """Plain fp32 CUDA matrix products inside the block."""

    def __enter__(self):
        self.old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False

    def __exit__(self, *exc):
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self.old


# -- data ----------------------------------------------------------------------------


def make_images(n: int, size: int = 1024, seed: int = 0) -> List[np.ndarray]:
    """Aerial-looking RGB uint8 images without OpenCV: smooth ground and rectangles."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        low = rng.normal(100, 25, (size // 32 + 1, size // 32 + 1, 3))
        img = np.kron(low, np.ones((32, 32, 1)))[:size, :size]
        img = img + rng.normal(0, 8, (size, size, 3))
        for _ in range(60):
            x, y = rng.integers(0, size - 8, 2)
            w, h = rng.integers(6, 90, 2)
            img[y : y + h, x : x + w] = rng.integers(0, 256, 3)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def make_boxes(k: int, size: int = 1024, seed: int = 0) -> np.ndarray:
    """K boxes of remote-sensing sizes (10-120 px sides), xyxy, inside the image."""
    rng = np.random.default_rng(seed + k)
    wh = rng.uniform(10, 120, (k, 2))
    xy = rng.uniform(0, 1, (k, 2)) * (size - wh)
    return np.concatenate([xy, xy + wh], axis=1)


# -- sections ------------------------------------------------------------------------


def section_environment(rep: Report, args, device: torch.device) -> None:
    import segment_anything

    from fiftyone_samrs.segmenting.sam.models import cpu_bf16_support

    rows = [["python", platform.python_version()], ["torch", torch.__version__],
            ["segment_anything", os.path.dirname(segment_anything.__file__)],
            ["device", str(device)]]
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        rows += [["GPU", "%s, %d SMs, %.0f GiB, capability %d.%d" % (
            p.name, p.multi_processor_count, p.total_memory / 2**30, p.major, p.minor)],
                 ["CUDA / cuDNN", "%s / %s" % (torch.version.cuda, torch.backends.cudnn.version())],
                 ["bf16 supported", str(torch.cuda.is_bf16_supported())]]
    else:
        rows += [["CPU bf16", cpu_bf16_support().describe()],
                 ["torch threads", str(torch.get_num_threads())]]
    rows += [["mode", "quick" if args.quick else "full"],
             ["FiftyOne imported", str(_fiftyone_imported())]]
    rep.table("Environment", ["what", "value"], rows)


def _block(dim: int, heads: int, window: int, device, seed: int = 0):
    from segment_anything.modeling.image_encoder import Block

    g = torch.Generator().manual_seed(seed)
    blk = Block(dim, heads, 4.0, True, use_rel_pos=True, window_size=window, input_size=(64, 64))
    with torch.no_grad():
        for rel in (blk.attn.rel_pos_h, blk.attn.rel_pos_w):
            rel.copy_(torch.randn(rel.shape, generator=g) * 0.02)
    return blk.to(device).eval()


def section_attention(rep: Report, args, device: torch.device) -> bool:
    from segment_anything.modeling.image_encoder import Attention

    from fiftyone_samrs.segmenting.sam.attention import fused_attention_class

    fused_cls = fused_attention_class()
    sizes = [ATTENTION_BLOCKS[name] for name in args.attention_blocks]
    rows, all_ok = [], True
    for name, dim, heads in sizes:
        for window, kind in ((14, "windowed"), (0, "global")):
            blk = _block(dim, heads, window, device)
            x = torch.randn(args.attn_batch, 64, 64, dim, generator=torch.Generator().manual_seed(1))
            x = x.to(device)
            with torch.inference_mode(), no_tf32():
                blk.attn.__class__ = Attention
                ref = blk(x)
                blk.attn.__class__ = fused_cls
                out = blk(x)
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    fused_bf16 = blk(x).float()
                    blk.attn.__class__ = Attention
                    ref_bf16 = blk(x).float()
            scale = ref.abs().max().item()
            err = (out - ref).abs().max().item()
            ok = bool(torch.allclose(out, ref, rtol=1e-5, atol=2e-5))
            all_ok &= ok
            rows.append(["%s %s (dim %d, %d heads)" % (name, kind, dim, heads), err, err / scale,
                         "yes" if ok else "NO", (fused_bf16 - ref).abs().max().item() / scale,
                         (ref_bf16 - ref).abs().max().item() / scale])
            del blk, x, ref, out, fused_bf16, ref_bf16
    rep.table("1. Fused attention vs SAM's Attention (encoder block, fp32 without TF32)",
              ["block", "max abs err", "max rel err", "allclose (1e-5)", "bf16 fused: rel err",
               "bf16 SAM's: rel err"], rows,
              "Errors are relative to the block output's largest value; bf16 errors are against "
              "the fp32 reference.")
    return all_ok


def section_sdpa_kernels(rep: Report, args, device: torch.device) -> None:
    """Which SDPA kernels take the bias, and how fast, for a ViT-H global block."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    b, heads, n, d = args.batch, 16, 4096, 80
    g = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(b, heads, n, d, device=device, dtype=torch.bfloat16, generator=g)
               for _ in range(3))
    bias = torch.randn(b, heads, n, n, device=device, dtype=torch.bfloat16, generator=g) * 0.1
    rows = []
    ref = None
    for name in ("MATH", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "FLASH_ATTENTION", "default"):
        try:
            if name == "default":
                fn = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # noqa: E731
            else:
                backend = getattr(SDPBackend, name)

                def fn(backend=backend):
                    with sdpa_kernel([backend]):
                        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            out = fn()
            if ref is None:
                ref = out.float()
            err = ((out.float() - ref).abs().max() / ref.abs().max()).item()
            t = bench(fn, device, reps=5)
            flops = 4.0 * b * heads * n * n * d
            rows.append([name, t * 1e3, flops / t / 1e12, err])
        except Exception as e:
            rows.append([name, "unsupported: " + _short_error(e), "", ""])
    rep.table("2. SDPA kernels with a bias (ViT-H global block: %d x %d heads x 4096 tokens x %d, bf16)"
              % (b, heads, d), ["kernel", "ms", "TFLOP/s", "rel err vs MATH"], rows)


def section_decoder(rep: Report, args, device: torch.device) -> None:
    from segment_anything import SamPredictor

    from fiftyone_samrs.segmenting.prompts import build_prompts
    from fiftyone_samrs.segmenting.sam.engine import SamEngine
    from fiftyone_samrs.segmenting.sam.tiny import build_tiny_sam

    k = args.boxes
    sam = build_tiny_sam(0).to(device)  # the real-size prompt encoder and mask decoder
    img = make_images(1, seed=3)[0]
    h, w = img.shape[:2]
    boxes = make_boxes(k, w, seed=1)
    ps = build_prompts(boxes, None, "hbox", (h, w))
    with no_tf32():
        predictor = SamPredictor(sam)  # SAM as released: its own attention, fp32
        predictor.set_image(img)
        engine = SamEngine(sam, device=device, dtype="fp32", attention="fused", compile=False)
        emb = engine.encode([img])[0]
        feat_err = (emb.features - predictor.features).abs().max().item()
        results = engine.decode(emb, ps)
        tb = predictor.transform.apply_boxes_torch(torch.as_tensor(boxes, dtype=torch.float,
                                                                   device=device), (h, w))
        with torch.inference_mode():
            logits, iou, _ = predictor.predict_torch(None, None, boxes=tb, multimask_output=False,
                                                     return_logits=True)
        ref = (logits[:, 0] > 0).cpu().numpy()
        ious = []
        for i, r in enumerate(results):
            x0, y0, x1, y1 = r.mask.box
            a, b = r.mask.mask, ref[i, y0:y1, x0:x1]
            union = (a | b).sum()
            ious.append(1.0 if union == 0 else (a & b).sum() / union)
        score_err = float(np.max(np.abs(np.array([r.score for r in results]) - iou[:, 0].cpu().numpy())))

        def reference():
            for s in range(0, k, 20):  # the SAMRS release: predict_torch in chunks of 20, masks to host
                with torch.inference_mode():
                    m, _, _ = predictor.predict_torch(None, None, boxes=tb[s : s + 20],
                                                      multimask_output=False)
                m[:, 0].cpu().numpy()

        def fast():
            emb.cache.clear()  # the per-image projections count as decoder work
            engine.decode(emb, ps)

        warm = 0 if args.quick else 1  # the exactness runs above warmed both up
        t_ref = bench(reference, device, reps=args.reps, warmup=warm)
        t_fast = bench(fast, device, reps=args.reps, warmup=warm)
    ok = min(ious) >= 0.999 and score_err <= 1e-4
    rep.table("3. Fast decoder vs SAM's decoder on %s (%d boxes, 1024x1024, fp32)" % (device, k),
              ["what", "value"],
              [["encoder features: max abs diff vs SamPredictor", feat_err],
               ["per-instance mask IoU: min / mean", "%.5f / %.5f" % (min(ious), float(np.mean(ious)))],
               ["IoU predictions: max abs diff", score_err],
               ["exact (IoU >= 0.999, scores to 1e-4)", "yes" if ok else "NO"],
               ["SAM's decoder (predict_torch, chunks of 20, full-size masks to host): ms/image",
                t_ref * 1e3],
               ["fast decoder + region post-processing (SamEngine.decode): ms/image", t_fast * 1e3],
               ["speed-up", t_ref / t_fast]])


def _encoder_modes(rep: Report, args, device: torch.device, model: str, engine) -> Dict[str, float]:
    from fiftyone_samrs.segmenting.sam.attention import (
        disable_fused_attention,
        enable_fused_attention,
    )

    sam = engine.sam
    enc = sam.image_encoder
    b = args.batch
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(b, 3, 1024, 1024, generator=g) * 255).to(device)
    with torch.inference_mode():
        x = sam.preprocess(x)
    bf16 = dict(device_type=device.type, dtype=torch.bfloat16)

    def run(mode):
        fused = mode != "fp32" and mode != "bf16"
        (enable_fused_attention if fused else disable_fused_attention)(sam)
        with torch.inference_mode():
            if mode == "fp32":
                return enc(x)
            with torch.autocast(**bf16):
                return (engine._encoder if mode == "bf16+fused+compile" else enc)(x)

    modes = ["fp32", "bf16", "bf16+fused"]
    compile_s = None
    compile_note = ""
    if engine._guarded is not None and rep.left() < args.min_section_s:
        engine._set_compile(False, None)  # nor later, in the end-to-end runs
        compile_note = "compile skipped: %.0f s of the budget left" % rep.left()
    if engine._guarded is not None:
        t = time.perf_counter()
        try:
            run("bf16+fused+compile")
            sync(device)
            compile_s = time.perf_counter() - t
            if engine.compiled:
                modes.append("bf16+fused+compile")
            else:
                compile_note = "compile failed: %s" % engine._guarded.error
        except Exception as e:
            compile_note = "compile failed: %s" % _short_error(e)
    else:
        compile_note = "compile skipped (--no-compile, or --quick on the CPU)"
    with torch.inference_mode():
        base = run("fp32").float()
    errs, times = {}, {}
    for m in modes:
        with torch.inference_mode():
            errs[m] = ((run(m).float() - base).abs().max() / base.abs().max()).item()
        times[m] = bench(lambda m=m: run(m), device, reps=args.reps,
                         warmup=0 if args.quick else 1)  # the error run warmed it up
    enable_fused_attention(sam)
    rows = [[m, times[m] / b * 1e3, b / times[m], times["fp32"] / times[m], errs[m]] for m in modes]
    rep.table("4. Encoder %s, random weights, batches of %d, %s" % (model, b, device),
              ["mode", "ms/image", "images/s", "speed-up vs fp32", "max rel err vs fp32"], rows,
              ("Compile (first call, regional): %.1f s. " % compile_s if compile_s else "")
              + compile_note)
    return {m: b / times[m] for m in modes}


def _e2e(rep: Report, args, device: torch.device, model: str, engine, images, boxes) -> Dict[str, float]:
    from fiftyone_samrs.segmenting.prompts import build_prompts

    n, b = len(images), engine.encoder_batch
    prompts = [build_prompts(bx, None, "hbox", im.shape[:2]) for im, bx in zip(images, boxes)]

    def loaded(pool):
        """(preprocessed images, prompts) per batch, preprocessed in loader threads."""
        futures = [pool.submit(engine.preprocess, im) for im in images]
        for s in range(0, n, b):
            yield [f.result() for f in futures[s : s + b]], prompts[s : s + b]

    def run(overlap: bool):
        engine.set_overlap(overlap)
        with ThreadPoolExecutor(4, thread_name_prefix="load") as pool:
            if overlap:
                out = [r for batch in engine.predict_batches(loaded(pool)) for r in batch]
            else:
                out = [r for imgs, ps in loaded(pool) for r in engine.predict_batch(imgs, ps)]
        sync(device)
        return out

    def encoder_only():
        engine.set_overlap(False)
        with ThreadPoolExecutor(4, thread_name_prefix="load") as pool:
            for imgs, _ in loaded(pool):
                engine.encode(imgs)
        sync(device)

    if not args.quick or engine.compiled:
        run(True)  # warm-up (and compilation, if it has not happened yet)
    results = {}
    outs = {}
    for name, fn in (("engine, encoder/decoder overlap", lambda: outs.__setitem__("on", run(True))),
                     ("engine, no overlap", lambda: outs.__setitem__("off", run(False))),
                     ("encoder alone (same settings)", encoder_only)):
        results[name] = bench(fn, device, reps=max(1, args.reps - 1), warmup=0)
    engine.set_overlap(True)
    same = all(np.array_equal(a.mask.mask, c.mask.mask) for ra, rc in zip(outs["on"], outs["off"])
               for a, c in zip(ra, rc))
    enc_t = results["encoder alone (same settings)"]
    rows = [[name, n / t, t / enc_t] for name, t in results.items()]
    rep.table("5. Engine end to end, %s: %d images x %d boxes (%s)"
              % (model, n, len(boxes[0]), engine.describe()),
              ["run", "images/s", "time / encoder alone"], rows,
              "Masks with and without overlap identical: %s." % ("yes" if same else "NO"))
    return {name: n / t for name, t in results.items()}


def section_models(rep: Report, args, device: torch.device) -> Dict[str, Dict[str, float]]:
    from fiftyone_samrs.segmenting.sam.engine import SamEngine
    from fiftyone_samrs.segmenting.sam.tiny import build_random_sam

    figures: Dict[str, Dict[str, float]] = {}
    images = make_images(args.images, seed=5)
    boxes = [make_boxes(args.boxes, 1024, seed=i) for i in range(args.images)]
    for model in args.models:
        if rep.left() < args.min_section_s:
            rep.note("4-5. %s" % model, "skipped: %.0f s of the %.0f s budget left" % (rep.left(), args.budget))
            continue
        log("model %s" % model)
        try:
            torch._dynamo.reset()  # no shape-generic graphs from the previous model
            sam = build_random_sam(model, 0, device=device)
            compile_ = args.compile if args.compile is not None else device.type == "cuda"
            engine = SamEngine(sam, device=device, dtype="bf16", attention="fused",
                               compile=compile_, encoder_batch=args.batch,
                               compile_mode=args.compile_mode)
            figures[model] = {"encoder": _encoder_modes(rep, args, device, model, engine)}
            if rep.left() < args.min_section_s / 2:
                rep.note("5. %s" % model, "end to end skipped: budget")
                continue
            figures[model]["e2e"] = _e2e(rep, args, device, model, engine, images, boxes)
        except Exception as e:
            rep.note("4-5. %s" % model, "FAILED: %s\n\n```\n%s```" % (_short_error(e), traceback.format_exc()[-1500:]))
        finally:
            engine = sam = None
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return figures


def section_goals(rep: Report, args, figures) -> None:
    rows = []
    vit_h = figures.get("vit_h", {}).get("e2e", {}).get("engine, encoder/decoder overlap")
    rows.append(["ViT-H, 50 boxes per image, one H100/H200: images/s",
                 vit_h if vit_h is not None else "not measured",
                 ">= %.0f" % GOAL_VIT_H_IMAGES_PER_S,
                 "n/a" if vit_h is None else ("yes" if vit_h >= GOAL_VIT_H_IMAGES_PER_S else "NO")])
    for model, f in figures.items():
        e2e = f.get("e2e", {}).get("engine, encoder/decoder overlap")
        enc = f.get("encoder", {})
        if e2e and enc.get("fp32"):
            rows.append(["%s: engine end to end / fp32 encoder alone (time ratio)" % model,
                         enc["fp32"] / e2e, "(figure of merit)", ""])
    rep.table("Goals", ["goal", "measured", "target", "met"], rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None, help="cuda (default where there is one), cuda:1, cpu")
    p.add_argument("--quick", action="store_true",
                   help="small sizes: tiny model only, 4 images x 10 boxes, 1 rep")
    p.add_argument("--models", default=None,
                   help="comma-separated, in order: vit_h,vit_b (default; the goal's model first), tiny, vit_l")
    p.add_argument("--batch", type=int, default=None, help="images per encoder pass (default 8; quick 2)")
    p.add_argument("--images", type=int, default=None, help="end-to-end images (default 64; quick 4)")
    p.add_argument("--boxes", type=int, default=None, help="boxes per image (default 50; quick 10)")
    p.add_argument("--reps", type=int, default=None, help="timed repetitions (default 3; quick 1)")
    p.add_argument("--compile", dest="compile", action="store_true", default=None,
                   help="compile the encoder (default: on CUDA, off on the CPU)")
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode (default: its default)")
    p.add_argument("--attention-blocks", default=None,
                   help="block sizes of the attention check: vit_b,vit_h (default; quick: vit_b), tiny")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--budget", type=float, default=300.0,
                   help="seconds: sections that would start later are skipped (default 300)")
    p.add_argument("--out", default=None, help="also write the Markdown here (and .json beside)")
    args = p.parse_args(argv)

    device = torch.device(args.device) if args.device else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: CUDA requested but not available", file=sys.stderr)
        return 2
    q = args.quick
    if args.threads:
        torch.set_num_threads(args.threads)
    args.attention_blocks = [b for b in (args.attention_blocks or ("vit_b" if q else "vit_b,vit_h"))
                             .split(",") if b]
    unknown = set(args.attention_blocks) - set(ATTENTION_BLOCKS)
    if unknown:
        p.error("unknown --attention-blocks: %s" % ", ".join(sorted(unknown)))
    args.models = [m for m in (args.models or ("tiny" if q else "vit_h,vit_b")).split(",") if m]
    args.batch = args.batch or (2 if q else 8)
    args.images = args.images or (4 if q else 64)
    args.boxes = args.boxes or (10 if q else 50)
    args.reps = args.reps or (1 if q else 3)
    args.attn_batch = 1 if q or device.type == "cpu" else 4
    args.min_section_s = 30.0 if q else 90.0
    rep = Report(args.out, args.budget)
    rep.parts.append("# GPU check (issue 16)\n\n%s, %s. Each figure is measured in this run.\n"
                     % (time.strftime("%Y-%m-%d %H:%M"), device))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
    ok = True
    steps = [("environment", lambda: section_environment(rep, args, device)),
             ("attention", lambda: section_attention(rep, args, device))]
    if device.type == "cuda":
        steps.append(("sdpa kernels", lambda: section_sdpa_kernels(rep, args, device)))
    steps.append(("decoder", lambda: section_decoder(rep, args, device)))
    figures: Dict[str, Dict[str, float]] = {}
    for name, fn in steps:
        log(name)
        try:
            res = fn()
            if res is False:
                ok = False
        except Exception as e:
            ok = False
            rep.note(name, "FAILED: %s\n\n```\n%s```" % (_short_error(e), traceback.format_exc()[-1500:]))
    figures = section_models(rep, args, device)
    section_goals(rep, args, figures)
    if _fiftyone_imported():
        rep.note("Imports", "FiftyOne was imported: this check must not need it")
        ok = False
    rep.parts.append("Total: %.0f s.\n" % (time.time() - _T0))
    rep.save()
    print(rep.text())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
