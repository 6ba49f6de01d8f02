"""The fast path gives SAM's own masks: the exactness bar of the engine.

Reference: ``SamPredictor.set_image`` + ``predict_torch(..., multimask_output=False)``,
which runs ``Sam.postprocess_masks`` at full image size, on the same tiny random
SAM. Our masks must reach per-instance IoU >= 0.999 against it inside each
prompt's region (and on the whole image with ``margin=None``); IoU predictions,
low-res logits and stability scores must be close.
"""

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor
from segment_anything.utils.amg import calculate_stability_score

from fiftyone_samrs.core.geometry import rbox_to_quad
from fiftyone_samrs.segmenting.prompts import build_prompts
from fiftyone_samrs.segmenting.sam.decoder import FastMaskDecoder
from fiftyone_samrs.segmenting.sam.engine import SamEngine
from fiftyone_samrs.segmenting.sam.tiny import build_tiny_sam
from fiftyone_samrs.segmenting.sam.upsample import RegionUpsampler, bilinear_matrix

SIZES = [(300, 500), (1024, 1024), (1500, 900)]


@pytest.fixture(scope="module")
def sam():
    torch.manual_seed(0)
    return build_tiny_sam(seed=0)


@pytest.fixture(scope="module")
def scenes(sam):
    """Per image size: the image, a reference predictor and our embedding."""
    rng = np.random.default_rng(11)
    engine = SamEngine(sam, device="cpu", dtype="fp32", encoder_batch=3, decoder_chunk=7)
    images = {}
    for h, w in SIZES:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        img[h // 4 : h // 2, w // 3 : w // 2] = (200, 180, 40)  # some structure
        images[(h, w)] = img
    embeddings = engine.encode([images[s] for s in SIZES])  # one batched encoder pass
    out = {}
    for size, emb in zip(SIZES, embeddings):
        predictor = SamPredictor(sam)
        predictor.set_image(images[size])
        out[size] = (images[size], predictor, emb)
    return engine, out


def _objects(size, n, rng):
    """Boxes of many sizes, some touching or crossing the border, one degenerate."""
    h, w = size
    xy = rng.uniform([-10, -10], [w - 5, h - 5], (n, 2))
    wh = rng.uniform(2, 0.4 * min(h, w), (n, 2))
    hboxes = np.concatenate([xy, np.minimum(xy + wh, [w + 5, h + 5])], axis=1)
    hboxes[0] = [0, 0, w, h]  # the whole image
    if n > 1:
        hboxes[1] = [w / 2, h / 2, w / 2, h / 2]  # degenerate
    quads = np.stack(
        [rbox_to_quad((b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], (b[3] - b[1]) * 0.6, 0.4)
         for b in hboxes]
    )
    return hboxes, quads


def _reference(predictor, ps, rows):
    """Reference masks, IoU predictions and logits for the prompt rows ``rows``."""
    size = predictor.original_size
    kw = {}
    coords = labels = None
    if ps.boxes is not None:
        kw["boxes"] = torch.as_tensor(predictor.transform.apply_boxes(ps.boxes[rows], size), dtype=torch.float)
    if ps.points is not None:
        coords = torch.as_tensor(predictor.transform.apply_coords(ps.points[rows], size), dtype=torch.float)
        labels = torch.as_tensor(ps.point_labels[rows], dtype=torch.int)
    if ps.mask_inputs is not None:
        kw["mask_input"] = torch.as_tensor(ps.mask_inputs[rows])
    with torch.no_grad():
        logits, iou, low = predictor.predict_torch(coords, labels, multimask_output=False,
                                                   return_logits=True, **kw)
    return logits[:, 0], iou[:, 0], low[:, 0]


def _check(results, ps, predictor, rows, full_image=False):
    """Our masks against the reference, inside each prompt's region; with
    ``full_image`` (whole masks) over the whole image: the crop must hold
    every reference pixel."""
    logits, iou, _ = _reference(predictor, ps, rows)
    h, w = predictor.original_size
    for k, i in enumerate(rows):
        r = results[i]
        x0, y0, x1, y1 = r.mask.box
        if full_image:
            ref_logits = logits[k]
            ours = r.mask.to_full(h, w)
            assert r.mask.area == ours.sum()  # the crop lies inside the image
        else:
            ref_logits = logits[k, y0:y1, x0:x1]
            ours = r.mask.mask
        ref = (ref_logits > 0).numpy()
        assert ours.shape == ref.shape
        union = (ours | ref).sum()
        iou_pix = (ours & ref).sum() / union if union else 1.0
        assert iou_pix >= 0.999, (i, iou_pix)
        assert r.score == pytest.approx(float(iou[k]), abs=1e-4)
        assert r.empty == (not ours.any())
        if ref.size:
            stab = float(calculate_stability_score(ref_logits[None], 0.0, 1.0)[0]) if (ref_logits > -1).any() else 0.0
            assert r.stability == pytest.approx(stab, abs=2e-3)


def test_encoder_matches_predictor(scenes):
    engine, out = scenes
    for size, (img, predictor, emb) in out.items():
        assert emb.original_size == size
        assert emb.input_size == predictor.input_size
        torch.testing.assert_close(emb.features, predictor.features, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "size, prompt, n, margin",
    [
        ((300, 500), "hbox", 1, 0.1),
        ((1024, 1024), "hbox", 5, 0.1),
        ((1500, 900), "hbox", 5, 0.1),
        ((300, 500), "hbox", 2, None),
        ((1500, 900), "hbox", 2, None),
        ((1500, 900), "hbox+cp", 3, 0.1),
        ((300, 500), "cp", 2, 0.1),
        ((1024, 1024), "hbox_m", 2, 0.1),
        ((1500, 900), "rhbox+rbox_m", 3, 0.1),
        ((300, 500), "rhbox+cp+rhbox_m", 2, None),
    ],
)
def test_engine_matches_reference(scenes, size, prompt, n, margin):
    engine, out = scenes
    img, predictor, emb = out[size]
    rng = np.random.default_rng(hash((size, prompt, n)) % 2**32)
    hboxes, quads = _objects(size, n, rng)
    ps = build_prompts(hboxes, quads, prompt, size, margin=margin)
    results = engine.decode(emb, ps)
    assert len(results) == n
    _check(results, ps, predictor, list(range(n)), full_image=margin is None)


def test_many_boxes_in_chunks(scenes):
    """150 boxes over several decoder chunks. SAM decodes each prompt
    independently of the others, so the reference is computed for a sample of
    rows including every chunk boundary."""
    engine, out = scenes
    size = (1024, 1024)
    img, predictor, emb = out[size]
    hboxes, quads = _objects(size, 150, np.random.default_rng(5))
    ps = build_prompts(hboxes, quads, "hbox", size)
    fast = SamEngine(engine.sam, device="cpu", decoder_chunk=64)
    results = fast.decode(emb, ps)
    assert len(results) == 150
    rows = sorted({0, 2, 63, 64, 127, 128, 149} | set(np.random.default_rng(1).choice(150, 3).tolist()))
    _check(results, ps, predictor, rows)
    # the same embedding decoded again (cached per-image tensors) gives the same masks
    again = fast.decode(emb, ps.subset(np.array(rows)))
    for r, i in zip(again, rows):
        assert np.array_equal(r.mask.mask, results[i].mask.mask)


def test_zero_boxes(scenes):
    engine, out = scenes
    img, predictor, emb = out[(300, 500)]
    ps = build_prompts(np.zeros((0, 4)), None, "hbox", (300, 500))
    assert engine.decode(emb, ps) == []
    assert engine.predict_batch([img], [ps]) == [[]]


@pytest.mark.parametrize("kind", ["box", "points", "box+points", "mask", "box+mask"])
def test_decoder_module_equivalence(sam, kind):
    """FastMaskDecoder against sam.mask_decoder directly, on the full low-res map."""
    g = torch.Generator().manual_seed(3)
    n = 3
    features = torch.randn(1, 256, 64, 64, generator=g)
    pe = sam.prompt_encoder.get_dense_pe()
    xy = torch.rand(n, 2, generator=g) * 900
    boxes = torch.cat([xy, xy + 10 + torch.rand(n, 2, generator=g) * 300], dim=1) if "box" in kind else None
    points = None
    if "points" in kind:
        points = (torch.rand(n, 2, 2, generator=g) * 1000, torch.tensor([[1, 0]] * n, dtype=torch.int))
    masks = None
    if "mask" in kind:
        masks = torch.where(torch.rand(n, 1, 256, 256, generator=g) > 0.7, 1000.0, -1000.0)
    with torch.inference_mode():
        sparse, dense = sam.prompt_encoder(points=points, boxes=boxes, masks=masks)
        ref_low, ref_iou = sam.mask_decoder(features, pe, sparse, dense, multimask_output=False)
        low, iou = FastMaskDecoder(sam).forward_full(features, pe, sparse, dense if masks is not None else None)
    assert low.shape == ref_low.shape == (n, 1, 256, 256)
    torch.testing.assert_close(low, ref_low, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(iou, ref_iou, atol=1e-5, rtol=1e-4)
    frac = (ref_low > 0).float().mean().item()
    assert 0.05 < frac < 0.95  # the tiny model's masks are not trivial


def test_windowed_logits_match_the_low_res_map(sam):
    g = torch.Generator().manual_seed(4)
    features = torch.randn(1, 256, 64, 64, generator=g)
    pe = sam.prompt_encoder.get_dense_pe()
    boxes = torch.tensor([[10.0, 20.0, 200.0, 90.0], [700.0, 650.0, 1000.0, 1010.0]])
    fast = FastMaskDecoder(sam)
    with torch.inference_mode():
        sparse, dense = sam.prompt_encoder(points=None, boxes=boxes, masks=None)
        ref_low, _ = sam.mask_decoder(features, pe, sparse, dense, multimask_output=False)
        from fiftyone_samrs.segmenting.sam.engine import ImageEmbedding

        emb = ImageEmbedding(features, (1024, 1024), (1024, 1024))
        _, wins = fast.decode(emb, sparse, None, [(5, 23, 9, 30), None], image_pe=pe)
    logits, (r, c) = wins[0]
    assert (r, c) == (4, 8) and logits.shape == (20, 24)  # aligned to the 64-grid
    torch.testing.assert_close(logits, ref_low[0, 0, r : r + 20, c : c + 24], atol=2e-5, rtol=1e-4)
    assert wins[1] is None


@pytest.mark.parametrize("size", [(300, 500), (1500, 900), (1024, 1024), (7, 3000)])
def test_region_upsampler_equals_postprocess_masks(sam, size):
    g = torch.Generator().manual_seed(2)
    low = torch.randn(1, 1, 256, 256, generator=g)
    from segment_anything.utils.transforms import ResizeLongestSide

    h, w = size
    input_size = ResizeLongestSide.get_preprocess_shape(h, w, 1024)
    ref = sam.postprocess_masks(low, input_size, size)[0, 0]
    up = RegionUpsampler(input_size, size)
    for region in [(0, 0, w, h), (w // 3, h // 4, w // 3 + 17, h // 4 + 5), (w - 1, h - 1, w, h)]:
        x0, y0, x1, y1 = region
        r0, r1, c0, c1 = up.lowres_window(region)
        got = up.apply(low[0, 0, r0:r1, c0:c1], (r0, c0), region)
        torch.testing.assert_close(got, ref[y0:y1, x0:x1], atol=1e-5, rtol=1e-5)
    assert np.allclose(bilinear_matrix(5, 11).sum(axis=1), 1.0)


@pytest.mark.parametrize("size", [(300, 500), (1500, 900), (1024, 1024)])
def test_support_of_whole_masks_holds_every_pixel_and_follows_the_mask(sam, size):
    """Whole masks are upsampled only where a logit can exceed the threshold:
    the region holds every reference pixel above it, is small for a small
    blob, and the full-map path is SAM's own post-processing."""
    from segment_anything.utils.transforms import ResizeLongestSide

    h, w = size
    input_size = ResizeLongestSide.get_preprocess_shape(h, w, 1024)
    up = RegionUpsampler(input_size, size)
    g = torch.Generator().manual_seed(7)
    low = torch.full((256, 256), -5.0)
    low[40:52, 60:75] = torch.rand(12, 15, generator=g) * 8 - 2  # one small blob
    low[200, 10] = 0.5  # and a far single cell
    ref = sam.postprocess_masks(low[None, None], input_size, size)[0, 0]
    for thr in (0.0, -1.0):
        region = up.support(low, (0, 0), thr)
        x0, y0, x1, y1 = region
        inside = torch.zeros_like(ref, dtype=torch.bool)
        inside[y0:y1, x0:x1] = True
        assert not ((ref > thr) & ~inside).any()
        assert (ref[y0:y1, x0:x1] > thr).any()
    blob = torch.full((256, 256), -5.0)
    blob[40:52, 60:75] = 3.0
    x0, y0, x1, y1 = up.support(blob, (0, 0), 0.0)
    assert (x1 - x0) * (y1 - y0) < 0.02 * h * w  # the cost follows the mask
    assert up.support(torch.full((256, 256), -0.5), (0, 0), 0.0) is None
    region = (x0, y0, x1, y1)
    torch.testing.assert_close(up.apply_full(low, region), ref[y0:y1, x0:x1])
    r0, r1, c0, c1 = up.lowres_window(region)
    torch.testing.assert_close(up.apply(low[r0:r1, c0:c1], (r0, c0), region), ref[y0:y1, x0:x1],
                               atol=1e-5, rtol=1e-5)
