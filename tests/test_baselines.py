"""The no-weights backends: GrabCut from the box, and box filling."""

import math

import cv2
import numpy as np
import pytest

from fiftyone_samrs.core.geometry import quad_to_hbox, rbox_to_quad
from fiftyone_samrs.segmenting.backends import Backend, make_backend
from fiftyone_samrs.segmenting.baselines import BoxFillBackend, GrabCutBackend
from fiftyone_samrs.segmenting.prompts import build_prompts


def _scene():
    """A dark image with a bright disk and a green rotated rectangle, plus their truths."""
    h, w = 360, 560
    rng = np.random.default_rng(0)
    img = (rng.normal(40, 6, (h, w, 3))).clip(0, 255).astype(np.uint8)
    cv2.circle(img, (140, 150), 50, (230, 210, 190), -1)
    quad = rbox_to_quad(380, 220, 180, 60, 0.5)
    cv2.fillPoly(img, [np.round(quad).astype(np.int32)], (40, 210, 70))
    disk = np.zeros((h, w), np.uint8)
    cv2.circle(disk, (140, 150), 50, 1, -1)
    rect = np.zeros((h, w), np.uint8)
    cv2.fillPoly(rect, [np.round(quad).astype(np.int32)], 1)
    hboxes = np.array([[89, 99, 192, 202], quad_to_hbox(quad)])
    quads = np.stack([np.full((4, 2), np.nan), quad])
    return img, hboxes, quads, [disk.astype(bool), rect.astype(bool)]


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_grabcut_segments_objects_from_their_boxes():
    img, hboxes, quads, truths = _scene()
    backend = make_backend("grabcut")
    assert isinstance(backend, Backend) and backend.name == "grabcut"
    ps = build_prompts(hboxes, quads, "hbox", img.shape[:2])
    results = backend.predict_batch([img], [ps])[0]
    assert len(results) == 2
    for i, (r, truth, region) in enumerate(zip(results, truths, ps.regions)):
        x0, y0, x1, y1 = r.mask.box
        assert (x0, y0) == (math.floor(region[0]), math.floor(region[1]))
        assert (x1, y1) == (math.ceil(region[2]), math.ceil(region[3]))
        full = r.mask.to_full(*img.shape[:2])
        assert _iou(full, truth) > 0.85
        assert r.score == 1.0 and math.isnan(r.stability) and not r.empty
        # clearly better than filling the box
        bx0, by0, bx1, by1 = hboxes[i]
        assert full.sum() < 0.9 * (bx1 - bx0) * (by1 - by0)


def test_grabcut_downscales_large_crops_and_falls_back_on_tiny_boxes():
    img, hboxes, quads, truths = _scene()
    backend = GrabCutBackend(iterations=2, max_side=48)
    ps = build_prompts(hboxes[:1], None, "hbox", img.shape[:2])
    r = backend.predict(img, ps)[0]
    x0, y0, x1, y1 = ps.regions[0]
    assert r.mask.mask.shape == (math.ceil(y1) - math.floor(y0), math.ceil(x1) - math.floor(x0))
    assert _iou(r.mask.to_full(*img.shape[:2]), truths[0]) > 0.75
    tiny = build_prompts(np.array([[10.0, 10.0, 11.0, 11.0]]), None, "hbox", img.shape[:2])
    r = backend.predict(img, tiny)[0]
    assert backend.fallbacks == 1
    assert r.mask.area == 1 and not r.empty  # the filled box


def test_boxfill_fills_box_or_rotated_box():
    img, hboxes, quads, truths = _scene()
    backend = make_backend("boxfill")
    hb = backend.predict_batch([img], [build_prompts(hboxes, quads, "hbox", img.shape[:2])])[0]
    x0, y0, x1, y1 = hboxes[0]
    assert hb[0].mask.area == int((x1 - x0) * (y1 - y0))
    rot = backend.predict_batch([img], [build_prompts(hboxes, quads, "rhbox", img.shape[:2])])[0]
    full = rot[1].mask.to_full(*img.shape[:2])
    assert _iou(full, truths[1]) > 0.95
    assert abs(int(full.sum()) - 180 * 60) < 0.03 * 180 * 60
    # the object without a quad fell back to its H-Box
    assert rot[0].mask.area == hb[0].mask.area
    masked = backend.predict(img, build_prompts(hboxes, quads, "rbox_m", img.shape[:2]))
    assert masked[1].mask.area == rot[1].mask.area


def test_baselines_flag_empty_masks_and_check_inputs():
    img, _, _, _ = _scene()
    h, w = img.shape[:2]
    hboxes = np.array([[w + 10.0, 5.0, w + 20.0, 15.0], [5.0, 5.0, 5.2, 5.2]])
    ps = build_prompts(hboxes, None, "hbox", (h, w))
    for backend in (BoxFillBackend(), GrabCutBackend()):
        res = backend.predict_batch([img], [ps])[0]
        assert [r.empty for r in res] == [True, True]
        assert res[0].mask.mask.shape[1] == 0  # region clipped away
        with pytest.raises(ValueError, match="2 images but 1 prompt sets"):
            backend.predict_batch([img, img], [ps])
    with pytest.raises(ValueError, match="uint8"):
        GrabCutBackend().predict(img.astype(np.float32), ps)

