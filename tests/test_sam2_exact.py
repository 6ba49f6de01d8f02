"""The SAM 2 backend gives SAM 2's own masks: the exactness bar of ``backend="sam2"``.

Reference: ``SAM2ImagePredictor.set_image_batch`` + ``predict_batch(...,
multimask_output=False)`` (full-size masks) on the same tiny random SAM 2.1,
built as ``build_sam2`` builds it (the dynamic multimask fallback on). Our
masks must reach per-instance IoU >= 0.999 inside each prompt's region (and on
the whole image with ``margin=None``); IoU predictions within 1e-4.
Skipped when the optional ``sam2`` package is missing.
"""

import pickle

import numpy as np
import pytest
import torch

pytest.importorskip("sam2", reason="the optional sam2 package is not installed "
                    "(pip install 'fiftyone-samrs[sam2]')")

from sam2.sam2_image_predictor import SAM2ImagePredictor

from fiftyone_samrs.core.geometry import rbox_to_quad
from fiftyone_samrs.segmenting.prompts import build_prompts
from fiftyone_samrs.segmenting.sam2.decoder import Sam2FastDecoder
from fiftyone_samrs.segmenting.sam2.engine import Sam2Engine
from fiftyone_samrs.segmenting.sam2.models import build_tiny_sam2

SIZES = [(300, 500), (1024, 1024), (700, 420)]


def _model(thresh=None):
    m = build_tiny_sam2(seed=0)
    if thresh is not None:
        m.sam_mask_decoder.dynamic_multimask_stability_thresh = thresh
    return m


@pytest.fixture(scope="module")
def models():
    """The model as built (every random single mask falls back: stabilities ~0.95 < 0.98),
    one whose threshold splits the prompts, and one without the fallback."""
    plain = _model()
    plain.sam_mask_decoder.dynamic_multimask_via_stability = False
    return {"default": _model(), "mixed": _model(0.95), "off": plain}


@pytest.fixture(scope="module")
def scenes(models):
    rng = np.random.default_rng(11)
    images = []
    for h, w in SIZES:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        img[h // 4 : h // 2, w // 3 : w // 2] = (200, 180, 40)
        images.append(img)
    out = {}
    for key, m in models.items():
        engine = Sam2Engine(m, device="cpu", encoder_batch=3, decoder_chunk=7)
        predictor = SAM2ImagePredictor(m)
        predictor.set_image_batch(images)
        embeddings = engine.encode(images)  # one batched encoder pass
        out[key] = (engine, predictor, dict(zip(SIZES, zip(range(3), images, embeddings))))
    return out


def _objects(size, n, rng):
    h, w = size
    xy = rng.uniform([-10, -10], [w - 5, h - 5], (n, 2))
    wh = rng.uniform(2, 0.4 * min(h, w), (n, 2))
    hboxes = np.concatenate([xy, np.minimum(xy + wh, [w + 5, h + 5])], axis=1)
    hboxes[0] = [0, 0, w, h]
    if n > 1:
        hboxes[1] = [w / 2, h / 2, w / 2, h / 2]  # degenerate
    quads = np.stack([rbox_to_quad((b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0],
                                   (b[3] - b[1]) * 0.6, 0.4) for b in hboxes])
    return hboxes, quads


def _reference(predictor, idx, ps, rows):
    """Full-size reference logits and IoU predictions of prompt rows ``rows``.

    SAM2ImagePredictor decodes several prompts at once only when they have
    points or boxes; mask-only prompts go one at a time.
    """
    groups = [rows] if (ps.boxes is not None or ps.points is not None) else [[r] for r in rows]
    out = [_predict_one(predictor, idx, ps, g) for g in groups]
    return np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out])


def _predict_one(predictor, idx, ps, rows):
    """``SAM2ImagePredictor._predict`` for image ``idx`` of the batch (as ``predict_batch``)."""
    def take(a):
        return None if a is None else a[rows]

    mask_input, coords, labels, box = predictor._prep_prompts(
        take(ps.points), take(ps.point_labels), take(ps.boxes), take(ps.mask_inputs),
        True, img_idx=idx)
    masks, iou, _ = predictor._predict(coords, labels, box, mask_input, multimask_output=False,
                                       return_logits=True, img_idx=idx)
    return masks[:, 0].float().numpy(), iou[:, 0].float().numpy()


def _check(results, ps, predictor, idx, rows, full_image=False):
    logits, iou = _reference(predictor, idx, ps, rows)
    h, w = predictor._orig_hw[idx]
    worst = 1.0
    for k, i in enumerate(rows):
        r = results[i]
        x0, y0, x1, y1 = r.mask.box
        ref = logits[k, y0:y1, x0:x1] > 0
        ours = r.mask.mask
        assert ours.shape == ref.shape
        union = (ours | ref).sum()
        iou_pix = (ours & ref).sum() / union if union else 1.0
        worst = min(worst, iou_pix)
        assert iou_pix >= 0.999, (i, iou_pix)
        assert r.score == pytest.approx(float(iou[k]), abs=1e-4)
        assert r.empty == (not ours.any())
        assert 0.0 <= r.stability <= 1.0
        if full_image:
            assert (x0, y0, x1, y1) == (0, 0, w, h)
    return worst


def test_encoder_matches_predictor(scenes):
    engine, predictor, by_size = scenes["default"]
    for size, (idx, img, emb) in by_size.items():
        assert emb.original_size == size
        torch.testing.assert_close(emb.features, predictor._features["image_embed"][idx : idx + 1],
                                   atol=2e-5, rtol=1e-4)
        for ours, ref in zip(emb.high_res, predictor._features["high_res_feats"]):
            torch.testing.assert_close(ours, ref[idx : idx + 1], atol=2e-5, rtol=1e-4)


CASES = [
    ((300, 500), "hbox", 4, 0.1),
    ((1024, 1024), "hbox", 6, 0.1),
    ((700, 420), "hbox", 3, None),
    ((700, 420), "hbox+cp", 4, 0.1),
    ((300, 500), "cp", 2, 0.1),
    ((1024, 1024), "hbox_m", 2, 0.1),
    ((700, 420), "rhbox+rbox_m", 3, 0.1),
    ((300, 500), "rhbox+cp+rhbox_m", 3, None),
]


@pytest.mark.parametrize(
    "variant, size, prompt, n, margin",
    [("default",) + c for c in CASES] + [("mixed",) + c for c in CASES[1::2]]
    + [("off",) + c for c in CASES[1:5:2] + CASES[6:7]],
)
def test_engine_matches_predictor(scenes, variant, size, prompt, n, margin):
    engine, predictor, by_size = scenes[variant]
    idx, img, emb = by_size[size]
    rng = np.random.default_rng(abs(hash((size, prompt, n))) % 2**32)
    hboxes, quads = _objects(size, n, rng)
    ps = build_prompts(hboxes, quads, prompt, size, margin=margin, mask_frame=engine.mask_frame)
    results = engine.decode(emb, ps)
    assert len(results) == n
    _check(results, ps, predictor, idx, list(range(n)), full_image=margin is None)


def test_the_fallback_fires_for_some_prompts_and_not_others(scenes):
    """With the 'mixed' threshold both branches of the dynamic fallback are taken
    (so the exactness tests above cover both); the default threshold falls back always."""
    size = (1024, 1024)
    hboxes, _ = _objects(size, 12, np.random.default_rng(2))
    stable = {}
    for key in ("default", "mixed"):
        engine, predictor, by_size = scenes[key]
        idx, img, emb = by_size[size]
        m = engine.model
        md = m.sam_mask_decoder
        ps = build_prompts(hboxes, None, "hbox", size)
        with torch.inference_mode():
            (sparse, dense), _ = engine._sparse_dense(ps, size, slice(None))
            low, _, _, _ = md.predict_masks(emb.features, engine._dense_pe, sparse, dense, True,
                                            emb.high_res)
            stab = md._get_stability_scores(low[:, 0])
        stable[key] = (stab >= md.dynamic_multimask_stability_thresh).tolist()
    assert not any(stable["default"])
    assert any(stable["mixed"]) and not all(stable["mixed"])


def test_many_boxes_in_chunks(scenes):
    """100 boxes over three decoder chunks; rows at every chunk boundary checked."""
    engine, predictor, by_size = scenes["off"]  # windows only: the chunking is what is tested
    idx, img, emb = by_size[(1024, 1024)]
    hboxes, quads = _objects((1024, 1024), 100, np.random.default_rng(5))
    ps = build_prompts(hboxes, quads, "hbox", (1024, 1024))
    fast = Sam2Engine(engine.model, device="cpu", decoder_chunk=40)
    results = fast.decode(emb, ps)
    assert len(results) == 100
    rows = sorted({0, 2, 39, 40, 79, 80, 99}
                  | set(np.random.default_rng(1).choice(100, 3).tolist()))
    _check(results, ps, predictor, idx, rows)
    again = fast.decode(emb, ps.subset(np.array(rows)))  # cached per-image tensors
    for r, i in zip(again, rows):
        assert np.array_equal(r.mask.mask, results[i].mask.mask)


@pytest.mark.parametrize("variant", ["default", "off"])
@pytest.mark.parametrize("kind", ["box", "points", "box+points", "mask", "box+mask"])
def test_decoder_module_equivalence(models, variant, kind):
    """Sam2FastDecoder against sam_mask_decoder directly, on the whole low-res map."""
    m = models[variant]
    g = torch.Generator().manual_seed(3)
    n = 3
    features = torch.randn(1, 256, 64, 64, generator=g)
    high = [torch.randn(1, 32, 256, 256, generator=g), torch.randn(1, 64, 128, 128, generator=g)]
    pe = m.sam_prompt_encoder.get_dense_pe()
    coords, labels = torch.zeros(n, 0, 2), torch.zeros(n, 0, dtype=torch.int)
    if "box" in kind:
        xy = torch.rand(n, 2, generator=g) * 700
        coords = torch.cat([xy, xy + 10 + torch.rand(n, 2, generator=g) * 300], 1).reshape(n, 2, 2)
        labels = torch.tensor([[2, 3]] * n, dtype=torch.int)
    if "points" in kind:
        coords = torch.cat([coords, torch.rand(n, 2, 2, generator=g) * 1000], 1)
        labels = torch.cat([labels, torch.tensor([[1, 0]] * n, dtype=torch.int)], 1)
    points = (coords, labels) if coords.shape[1] else None
    masks = None
    if "mask" in kind:
        masks = torch.where(torch.rand(n, 1, 256, 256, generator=g) > 0.7, 1000.0, -1000.0)
    with torch.inference_mode():
        sparse, dense = m.sam_prompt_encoder(points=points, boxes=None, masks=masks)
        ref_low, ref_iou, _, _ = m.sam_mask_decoder(features, pe, sparse, dense,
                                                    multimask_output=False, repeat_image=True,
                                                    high_res_features=high)
        low, iou = Sam2FastDecoder(m).forward_full(features, pe, sparse,
                                                   dense if masks is not None else None, high)
    assert low.shape == ref_low.shape == (n, 1, 256, 256)
    torch.testing.assert_close(low, ref_low, atol=5e-5, rtol=1e-4)
    torch.testing.assert_close(iou, ref_iou, atol=1e-5, rtol=1e-4)
    frac = (ref_low > 0).float().mean().item()
    assert 0.05 < frac < 0.95  # the tiny model's masks are not trivial


def test_windowed_logits_match_the_low_res_map(models):
    m = models["off"]
    g = torch.Generator().manual_seed(4)
    features = torch.randn(1, 256, 64, 64, generator=g)
    high = [torch.randn(1, 32, 256, 256, generator=g), torch.randn(1, 64, 128, 128, generator=g)]
    pe = m.sam_prompt_encoder.get_dense_pe()
    pts = (torch.tensor([[[10.0, 20.0], [200.0, 90.0]], [[700.0, 650.0], [1000.0, 1010.0]]]),
           torch.tensor([[2, 3], [2, 3]], dtype=torch.int))
    fast = Sam2FastDecoder(m)
    with torch.inference_mode():
        sparse, _ = m.sam_prompt_encoder(points=pts, boxes=None, masks=None)
        full, _ = fast.forward_full(features, pe, sparse, None, high)
        emb = type("E", (), {})()
        emb.features, emb.high_res, emb.cache = features, high, {}
        windows = [(3, 30, 5, 60), (160, 256, 170, 256)]
        _, outs = fast.decode(emb, sparse, None, windows, pe)
    for i, ((r0, r1, c0, c1), (logits, (orow, ocol))) in enumerate(zip(windows, outs)):
        assert orow <= r0 and ocol <= c0 and orow % 4 == 0 and ocol % 4 == 0
        got = logits[r0 - orow : r1 - orow, c0 - ocol : c1 - ocol]
        torch.testing.assert_close(got, full[i, 0, r0:r1, c0:c1], atol=1e-5, rtol=1e-5)


def test_reference_decoder_and_zero_boxes(scenes):
    engine, predictor, by_size = scenes["mixed"]
    idx, img, emb = by_size[(700, 420)]
    ps = build_prompts(np.array([[20, 30, 150, 120], [100, 20, 300, 190]], float), None,
                       "hbox+cp", (700, 420))
    ref = Sam2Engine(engine.model, device="cpu", decoder="reference").decode(emb, ps)
    for a, b in zip(engine.decode(emb, ps), ref):
        assert (a.mask.mask != b.mask.mask).mean() < 1e-3
        assert a.score == pytest.approx(b.score, abs=1e-5)
    empty = build_prompts(np.zeros((0, 4)), None, "hbox", (700, 420))
    assert engine.decode(emb, empty) == []
    assert engine.predict_batch([img], [empty]) == [[]]


def test_predict_batch_preprocess_and_input_errors(scenes):
    engine, predictor, by_size = scenes["mixed"]
    idx, img, emb = by_size[(300, 500)]
    ps = build_prompts(np.array([[10, 12, 200, 170], [250, 50, 480, 290]], float), None,
                       "hbox", (300, 500))
    pre = engine.preprocess(img)
    assert tuple(pre.tensor.shape) == (3, 1024, 1024) and pre.original_size == (300, 500)
    via_batch = engine.predict_batch([pre], [ps])[0]
    for a, b in zip(via_batch, engine.decode(emb, ps)):
        assert np.array_equal(a.mask.mask, b.mask.mask) and a.score == pytest.approx(b.score)
    with pytest.raises(ValueError, match="1 images but 2 prompt sets"):
        engine.predict_batch([img], [ps, ps])
    other = build_prompts(np.array([[1, 1, 20, 20]], float), None, "hbox", (500, 300))
    with pytest.raises(ValueError, match="built for a 300x500 image but the embedding is of a 500x300"):
        engine.decode(emb, other)
    # SAM's mask frame is not SAM 2's on a non-square image: refused, not silently wrong
    wrong = build_prompts(np.array([[1, 1, 20, 20]], float), None, "hbox_m", (300, 500))
    with pytest.raises(ValueError, match="mask_frame='square'"):
        engine.decode(emb, wrong)
    with pytest.raises(ValueError, match="decoder must be"):
        Sam2Engine(engine.model, decoder="slow")


def test_square_mask_frame_is_the_stretched_image():
    """A box's mask prompt in SAM 2's frame covers the box's place in the
    image stretched to 256x256 (SAM's frame keeps the aspect and pads)."""
    size = (300, 600)
    box = np.array([[150.0, 75.0, 450.0, 225.0]])  # the middle half on each axis
    sq = build_prompts(box, None, "hbox_m", size, mask_frame="square").mask_inputs[0, 0]
    sam = build_prompts(box, None, "hbox_m", size).mask_inputs[0, 0]
    rows, cols = np.nonzero(sq > 0)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == pytest.approx(
        (64, 192, 64, 192), abs=1)
    rows, cols = np.nonzero(sam > 0)
    assert rows.max() < 128  # SAM: 300x600 -> 512x1024, padded: rows below 128 only
    with pytest.raises(ValueError, match="mask_frame"):
        build_prompts(box, None, "hbox_m", size, mask_frame="stretched")


def test_backend_is_picklable_by_name():
    from fiftyone_samrs.segmenting.backends import BACKEND_SPECS, make_backend

    factory = pickle.loads(pickle.dumps(BACKEND_SPECS["sam2"].factory))
    engine = factory(model="tiny", device="cpu", decoder_chunk=5)
    assert isinstance(engine, Sam2Engine) and engine.name == "sam2"
    assert engine.decoder_chunk == 5 and engine.dynamic_multimask
    other = make_backend("sam2", model="tiny", device="cpu", dynamic_multimask=False)
    assert not other.dynamic_multimask and other._fast.final_tokens == 2
