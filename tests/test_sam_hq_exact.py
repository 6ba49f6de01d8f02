"""The HQ-SAM backend gives HQ-SAM's own masks: the exactness bar of ``backend="sam_hq"``.

Reference: ``segment_anything_hq.SamPredictor.set_image`` + ``predict_torch(...,
multimask_output=False, hq_token_only=...)`` (full-size masks after
``Sam.postprocess_masks``) on the same tiny random HQ-SAM. Our masks must reach
per-instance IoU >= 0.999 inside each prompt's region (and on the whole image
with ``margin=None``); IoU predictions within 1e-4. Skipped when the optional
``segment-anything-hq`` package is missing.
"""

import pickle

import numpy as np
import pytest
import torch

pytest.importorskip("segment_anything_hq", reason="the optional segment-anything-hq package "
                    "is not installed (pip install 'fiftyone-samrs[sam_hq]')")

from segment_anything_hq import SamPredictor

from fiftyone_samrs.core.geometry import rbox_to_quad
from fiftyone_samrs.segmenting.prompts import build_prompts
from fiftyone_samrs.segmenting.sam_hq.decoder import HqFastDecoder
from fiftyone_samrs.segmenting.sam_hq.engine import HqSamEngine
from fiftyone_samrs.segmenting.sam_hq.models import (
    build_tiny_sam_hq,
    load_sam_hq,
    save_tiny_sam_hq_checkpoint,
)

SIZES = [(300, 500), (1024, 1024), (700, 420)]


@pytest.fixture(scope="module")
def sam():
    return build_tiny_sam_hq(seed=0)


@pytest.fixture(scope="module")
def scenes(sam):
    rng = np.random.default_rng(11)
    engines = {hq: HqSamEngine(sam, device="cpu", encoder_batch=3, decoder_chunk=7,
                               hq_token_only=hq) for hq in (False, True)}
    images = {}
    for h, w in SIZES:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        img[h // 4 : h // 2, w // 3 : w // 2] = (200, 180, 40)
        images[(h, w)] = img
    embeddings = engines[False].encode([images[s] for s in SIZES])  # one batched pass
    out = {}
    for size, emb in zip(SIZES, embeddings):
        predictor = SamPredictor(sam)
        predictor.set_image(images[size])
        out[size] = (images[size], predictor, emb)
    return engines, out


def _objects(size, n, rng):
    h, w = size
    xy = rng.uniform([-10, -10], [w - 5, h - 5], (n, 2))
    wh = rng.uniform(2, 0.4 * min(h, w), (n, 2))
    hboxes = np.concatenate([xy, np.minimum(xy + wh, [w + 5, h + 5])], axis=1)
    hboxes[0] = [0, 0, w, h]
    if n > 1:
        hboxes[1] = [w / 2, h / 2, w / 2, h / 2]
    quads = np.stack([rbox_to_quad((b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0],
                                   (b[3] - b[1]) * 0.6, 0.4) for b in hboxes])
    return hboxes, quads


def _check(results, ps, predictor, rows, hq_token_only, full_image=False):
    size = predictor.original_size
    kw = {}
    coords = labels = None
    if ps.boxes is not None:
        kw["boxes"] = torch.as_tensor(predictor.transform.apply_boxes(ps.boxes[rows], size),
                                      dtype=torch.float)
    if ps.points is not None:
        coords = torch.as_tensor(predictor.transform.apply_coords(ps.points[rows], size),
                                 dtype=torch.float)
        labels = torch.as_tensor(ps.point_labels[rows], dtype=torch.int)
    if ps.mask_inputs is not None:
        kw["mask_input"] = torch.as_tensor(ps.mask_inputs[rows])
    with torch.no_grad():
        logits, iou, _ = predictor.predict_torch(coords, labels, multimask_output=False,
                                                 return_logits=True,
                                                 hq_token_only=hq_token_only, **kw)
    h, w = size
    for k, i in enumerate(rows):
        r = results[i]
        x0, y0, x1, y1 = r.mask.box
        ref = (logits[k, 0, y0:y1, x0:x1] > 0).numpy()
        ours = r.mask.mask
        assert ours.shape == ref.shape
        union = (ours | ref).sum()
        iou_pix = (ours & ref).sum() / union if union else 1.0
        assert iou_pix >= 0.999, (i, iou_pix)
        assert r.score == pytest.approx(float(iou[k, 0]), abs=1e-4)
        assert r.empty == (not ours.any())
        if full_image:
            assert (x0, y0, x1, y1) == (0, 0, w, h)


def test_encoder_matches_predictor(scenes):
    engines, out = scenes
    for size, (img, predictor, emb) in out.items():
        torch.testing.assert_close(emb.features, predictor.features, atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(emb.interm, predictor.interm_features[0], atol=2e-5, rtol=1e-4)


CASES = [
    ((300, 500), "hbox", 4, 0.1),
    ((1024, 1024), "hbox", 5, 0.1),
    ((700, 420), "hbox", 3, None),
    ((700, 420), "hbox+cp", 4, 0.1),
    ((300, 500), "cp", 2, 0.1),
    ((1024, 1024), "hbox_m", 2, 0.1),
    ((700, 420), "rhbox+rbox_m", 3, 0.1),
    ((300, 500), "rhbox+cp+rhbox_m", 2, None),
]


@pytest.mark.parametrize(
    "hq_token_only, size, prompt, n, margin",
    [(False,) + c for c in CASES] + [(True,) + c for c in CASES[2::3]],
)
def test_engine_matches_predictor(scenes, hq_token_only, size, prompt, n, margin):
    engines, out = scenes
    img, predictor, emb = out[size]
    rng = np.random.default_rng(abs(hash((size, prompt, n))) % 2**32)
    hboxes, quads = _objects(size, n, rng)
    ps = build_prompts(hboxes, quads, prompt, size, margin=margin)
    results = engines[hq_token_only].decode(emb, ps)
    assert len(results) == n
    _check(results, ps, predictor, list(range(n)), hq_token_only, full_image=margin is None)


def test_many_boxes_in_chunks(scenes):
    engines, out = scenes
    size = (1024, 1024)
    img, predictor, emb = out[size]
    hboxes, _ = _objects(size, 100, np.random.default_rng(5))
    ps = build_prompts(hboxes, None, "hbox", size)
    fast = HqSamEngine(engines[False].sam, device="cpu", decoder_chunk=40)
    results = fast.decode(emb, ps)
    assert len(results) == 100
    rows = sorted({0, 2, 39, 40, 79, 80, 99}
                  | set(np.random.default_rng(1).choice(100, 3).tolist()))
    _check(results, ps, predictor, rows, False)


@pytest.mark.parametrize("hq_token_only", [False, True])
@pytest.mark.parametrize("kind", ["box", "box+points", "mask"])
def test_decoder_module_equivalence(sam, kind, hq_token_only):
    """HqFastDecoder against MaskDecoderHQ directly, on the whole low-res map."""
    g = torch.Generator().manual_seed(3)
    n = 3
    features = torch.randn(1, 256, 64, 64, generator=g)
    interm = torch.randn(1, 64, 64, sam.image_encoder.patch_embed.proj.out_channels, generator=g)
    pe = sam.prompt_encoder.get_dense_pe()
    xy = torch.rand(n, 2, generator=g) * 900
    boxes = torch.cat([xy, xy + 10 + torch.rand(n, 2, generator=g) * 300], 1) if "box" in kind \
        else None
    points = None
    if "points" in kind:
        points = (torch.rand(n, 2, 2, generator=g) * 1000,
                  torch.tensor([[1, 0]] * n, dtype=torch.int))
    masks = None
    if "mask" in kind:
        masks = torch.where(torch.rand(n, 1, 256, 256, generator=g) > 0.7, 1000.0, -1000.0)
    with torch.inference_mode():
        sparse, dense = sam.prompt_encoder(points=points, boxes=boxes, masks=masks)
        ref_low, ref_iou = sam.mask_decoder(features, pe, sparse, dense, multimask_output=False,
                                            hq_token_only=hq_token_only,
                                            interm_embeddings=[interm])
        low, iou = HqFastDecoder(sam, hq_token_only=hq_token_only).forward_full(
            features, pe, sparse, dense if masks is not None else None, interm)
    assert low.shape == ref_low.shape == (n, 1, 256, 256)
    torch.testing.assert_close(low, ref_low, atol=5e-5, rtol=1e-4)
    torch.testing.assert_close(iou, ref_iou, atol=1e-5, rtol=1e-4)
    frac = (ref_low > 0).float().mean().item()
    assert 0.05 < frac < 0.95


def test_windows_at_every_border_equal_the_whole_map(sam):
    """The HQ branch's 3x3 convolutions near window edges and map borders."""
    g = torch.Generator().manual_seed(4)
    features = torch.randn(1, 256, 64, 64, generator=g)
    interm = torch.randn(1, 64, 64, sam.image_encoder.patch_embed.proj.out_channels, generator=g)
    pe = sam.prompt_encoder.get_dense_pe()
    windows = [(0, 7, 0, 9), (1, 30, 250, 256), (97, 131, 61, 62), (249, 256, 0, 256),
               (5, 6, 100, 101)]
    boxes = torch.tensor([[10.0, 20.0, 200.0, 90.0]] * len(windows))
    fast = HqFastDecoder(sam)
    with torch.inference_mode():
        sparse, _ = sam.prompt_encoder(points=None, boxes=boxes, masks=None)
        full, _ = fast.forward_full(features, pe, sparse, None, interm)
        emb = type("E", (), {})()
        emb.features, emb.interm, emb.cache = features, interm, {}
        _, outs = fast.decode(emb, sparse, None, windows, pe)
    for i, ((r0, r1, c0, c1), (logits, (orow, ocol))) in enumerate(zip(windows, outs)):
        got = logits[r0 - orow : r1 - orow, c0 - ocol : c1 - ocol]
        torch.testing.assert_close(got, full[i, 0, r0:r1, c0:c1], atol=2e-5, rtol=1e-5)


def test_reference_decoder_zero_boxes_and_errors(scenes, sam):
    engines, out = scenes
    img, predictor, emb = out[(700, 420)]
    ps = build_prompts(np.array([[20, 30, 150, 120], [100, 20, 300, 190]], float), None,
                       "hbox+cp", (700, 420))
    ref = HqSamEngine(sam, device="cpu", decoder="reference").decode(emb, ps)
    for a, b in zip(engines[False].decode(emb, ps), ref):
        assert (a.mask.mask != b.mask.mask).mean() < 1e-3
        assert a.score == pytest.approx(b.score, abs=1e-5)
    empty = build_prompts(np.zeros((0, 4)), None, "hbox", (700, 420))
    assert engines[False].decode(emb, empty) == []
    assert engines[False].predict_batch([img], [empty]) == [[]]
    with pytest.raises(ValueError, match="decoder must be"):
        HqSamEngine(sam, decoder="slow")


def test_loading_checkpoints_and_backend_by_name(tmp_path, sam):
    from fiftyone_samrs.segmenting.backends import BACKEND_SPECS, make_backend
    from fiftyone_samrs.segmenting.sam.models import ModelNotFoundError
    from fiftyone_samrs.segmenting.sam.tiny import save_tiny_checkpoint

    ckpt = save_tiny_sam_hq_checkpoint(tmp_path / "hq.pth", seed=0)
    loaded = load_sam_hq(checkpoint=ckpt, device="cpu")
    sd_a, sd_b = loaded.state_dict(), sam.state_dict()
    assert sd_a.keys() == sd_b.keys() and all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    engine = pickle.loads(pickle.dumps(BACKEND_SPECS["sam_hq"].factory))(checkpoint=ckpt, device="cpu",
                                                              decoder_chunk=8)
    assert isinstance(engine, HqSamEngine) and engine.name == "sam_hq"
    assert engine.decoder_chunk == 8
    assert make_backend("sam_hq", model="tiny", device="cpu", hq_token_only=True).hq_token_only
    # a plain SAM checkpoint is refused with the backend to use
    plain = save_tiny_checkpoint(tmp_path / "sam.pth", seed=0)
    with pytest.raises(ValueError, match="not an HQ-SAM checkpoint.*backend='sam'"):
        load_sam_hq(checkpoint=plain)
    with pytest.raises(ValueError, match="is a custom model, not vit_b"):
        load_sam_hq(model="vit_b", checkpoint=ckpt)
    # a released name without the file: says where to get it and where to put it
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    import os

    old = os.environ.get("FIFTYONE_MODEL_ZOO_DIR")
    os.environ["FIFTYONE_MODEL_ZOO_DIR"] = str(zoo)
    try:
        with pytest.raises(ModelNotFoundError, match="sam_hq_vit_h.pth.*huggingface"):
            load_sam_hq(model="vit_h")
    finally:
        if old is None:
            del os.environ["FIFTYONE_MODEL_ZOO_DIR"]
        else:
            os.environ["FIFTYONE_MODEL_ZOO_DIR"] = old
