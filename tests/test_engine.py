"""SamEngine and make_backend: the contract the pipeline and the evaluation use."""

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from fiftyone_samrs.core.records import InstanceMask
from fiftyone_samrs.segmenting.backends import Backend, MaskResult, make_backend
from fiftyone_samrs.segmenting.prompts import build_prompts
from fiftyone_samrs.segmenting.sam.engine import ImageEmbedding, Preprocessed, SamEngine
from fiftyone_samrs.segmenting.sam.tiny import build_tiny_sam, save_tiny_checkpoint


@pytest.fixture(scope="module")
def engine():
    return SamEngine(build_tiny_sam(0), device="cpu", dtype="fp32", encoder_batch=2, decoder_chunk=3)


def _images():
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 256, (200, 320, 3), dtype=np.uint8),
        rng.integers(0, 256, (260, 180), dtype=np.uint8),  # grayscale
        rng.integers(0, 256, (150, 150, 4), dtype=np.uint8),  # RGBA
    ]


def _prompts(images):
    out = []
    for k, img in enumerate(images):
        h, w = img.shape[:2]
        boxes = np.array([[10, 12, 60, 70], [w / 2, h / 2, w - 5, h - 3], [5, 5, 5, 5],
                          [w + 20, 0, w + 30, 10]], dtype=float)[: 2 + k]
        out.append(build_prompts(boxes, None, "hbox", (h, w)))
    return out


def test_predict_batch_returns_mask_results_over_regions(engine):
    images = _images()
    prompts = _prompts(images)
    assert isinstance(engine, Backend) and engine.name == "sam"
    results = engine.predict_batch(images, prompts)
    assert [len(r) for r in results] == [2, 3, 4]
    for img, ps, res in zip(images, prompts, results):
        h, w = img.shape[:2]
        for r, region in zip(res, ps.regions):
            assert isinstance(r, MaskResult) and isinstance(r.mask, InstanceMask)
            assert r.mask.mask.dtype == bool
            x0, y0, x1, y1 = r.mask.box
            assert (x0, y0) == (math.floor(region[0]), math.floor(region[1]))
            assert (x1, y1) == (min(math.ceil(region[2]), w), min(math.ceil(region[3]), h))
            assert r.empty == (r.mask.area == 0)
            assert isinstance(r.score, float) and isinstance(r.stability, float)
            assert 0.0 <= r.stability <= 1.0
    # the box outside the image has an empty region: flagged, not dropped
    outside = results[2][3]
    assert outside.empty and outside.mask.mask.shape[1] == 0
    # non-trivial masks somewhere
    assert any(0 < r.mask.area < r.mask.mask.size for res in results for r in res)


def test_batched_encoding_equals_single_and_threaded_preprocess(engine):
    images = _images()
    prompts = _prompts(images)
    batched = engine.encode(images)  # encoder_batch=2: passes of 2 and 1
    with ThreadPoolExecutor(2) as pool:
        pre = list(pool.map(engine.preprocess, images))
    assert all(isinstance(p, Preprocessed) for p in pre)
    tensor, input_size, original_size = pre[0]
    assert tensor.dtype == torch.uint8 and max(input_size) == 1024 and original_size == (200, 320)
    single = [engine.encode([p])[0] for p in pre]
    for a, b in zip(batched, single):
        assert isinstance(a, ImageEmbedding) and a.features.shape == (1, 256, 64, 64)
        torch.testing.assert_close(a.features, b.features, atol=1e-5, rtol=1e-4)
    from_pre = engine.predict_batch(pre, prompts)
    from_arrays = [engine.decode(e, p) for e, p in zip(batched, prompts)]
    for ra, rb in zip(from_pre, from_arrays):
        for a, b in zip(ra, rb):
            assert (a.mask.mask != b.mask.mask).sum() <= max(1, a.mask.mask.size // 1000)
            assert a.score == pytest.approx(b.score, abs=1e-4)


def test_reference_decoder_gives_the_same_masks(engine):
    images = _images()[:1]
    ps = build_prompts(np.array([[20, 30, 150, 120], [100, 20, 300, 190]], float), None, "hbox+cp",
                       images[0].shape[:2])
    emb = engine.encode(images)[0]
    ref_engine = SamEngine(engine.sam, device="cpu", dtype="fp32", decoder="reference")
    fast, ref = engine.decode(emb, ps), ref_engine.decode(emb, ps)
    for a, b in zip(fast, ref):
        assert np.array_equal(a.mask.mask, b.mask.mask) or (a.mask.mask != b.mask.mask).mean() < 1e-3
        assert a.score == pytest.approx(b.score, abs=1e-5)


def test_make_backend_variants(tmp_path):
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.pth", seed=0)
    from_ckpt = make_backend("sam", checkpoint=ckpt, device="cpu", decoder_chunk=8)
    assert isinstance(from_ckpt, SamEngine) and from_ckpt.decoder_chunk == 8
    by_name = make_backend("sam", model="tiny", device="cpu")
    sd_a, sd_b = from_ckpt.sam.state_dict(), by_name.sam.state_dict()
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    assert make_backend("grabcut").name == "grabcut"
    assert make_backend("boxfill").name == "boxfill"
    with pytest.raises(ValueError, match="unknown backend"):
        make_backend("maskrcnn")
    with pytest.raises(ValueError, match="decoder must be"):
        SamEngine(by_name.sam, decoder="slow")


def test_input_errors(engine):
    img = np.zeros((50, 60, 3), np.uint8)
    ps = build_prompts(np.array([[1, 1, 20, 20]], float), None, "hbox", (50, 60))
    with pytest.raises(ValueError, match="1 images but 2 prompt sets"):
        engine.predict_batch([img], [ps, ps])
    with pytest.raises(ValueError, match="uint8"):
        engine.preprocess(img.astype(np.float32))
    with pytest.raises(ValueError, match="HxWx3"):
        engine.preprocess(np.zeros((5, 5, 2), np.uint8))
    emb = engine.encode([img])[0]
    other = build_prompts(np.array([[1, 1, 20, 20]], float), None, "hbox", (60, 50))
    with pytest.raises(ValueError, match="built for a 50x60 image but the embedding is of a 60x50"):
        engine.decode(emb, other)
