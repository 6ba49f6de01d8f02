"""core.masks: FiftyOne's placement of Detection masks, exact boxes, polygon pixels.

The reference for placement is FiftyOne's own renderer
(``Detection.to_segmentation``, on eta's ``render_instance_mask``).
"""

import fiftyone as fo
import numpy as np
import pytest

from fiftyone_samrs.core import geometry as g
from fiftyone_samrs.core.masks import (
    place_mask,
    points_in_polygon,
    polygon_fraction,
    polygon_pixels,
    rasterize,
    relative_box,
    render_box,
)
from fiftyone_samrs.core.records import InstanceMask


def fiftyone_render(mask, bounding_box, width, height):
    """What FiftyOne draws: a full-image bool mask."""
    det = fo.Detection(label="x", bounding_box=list(bounding_box), mask=mask)
    return det.to_segmentation(frame_size=(width, height), target=1).mask.astype(bool)


def test_relative_box_renders_back_exactly_where_plain_ratios_do_not():
    rng = np.random.default_rng(0)
    off_by_one = 0
    n = 0
    for width, height in [(600, 800), (1100, 1300), (1024, 1024), (799, 801), (37, 3),
                          (20000, 20000)]:
        for _ in range(300):
            x0, x1 = sorted(rng.integers(0, width + 1, 2))
            y0, y1 = sorted(rng.integers(0, height + 1, 2))
            box = (int(x0), int(y0), int(x1), int(y1))
            assert render_box(relative_box(box, width, height), width, height) == box
            rel = relative_box(box, width, height)
            assert np.allclose(rel, g.box_to_relative(box, width, height), atol=1e-12)
            off_by_one += render_box(g.box_to_relative(box, width, height), width,
                                     height) != box
            n += 1
    # the plain ratios come back one pixel short for a good share of boxes
    assert off_by_one > n // 20


def test_render_box_is_fiftyones():
    rng = np.random.default_rng(1)
    for _ in range(200):
        width, height = (int(v) for v in rng.integers(5, 300, 2))
        x, y = rng.uniform(0, 0.9, 2)
        w, h = rng.uniform(0.001, 1.0 - max(x, y), 2)
        x0, y0, x1, y1 = render_box([x, y, w, h], width, height)
        full = fiftyone_render(np.ones((max(y1 - y0, 1), max(x1 - x0, 1)), bool),
                               [x, y, w, h], width, height)
        if x1 > x0 and y1 > y0:
            rows, cols = np.nonzero(full)
            assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == (x0, y0, x1, y1)


def test_place_mask_equals_fiftyones_rendering():
    """Random masks on random boxes, their shape equal to the box or not: the pixels
    placed here are the pixels FiftyOne draws."""
    rng = np.random.default_rng(2)
    for k in range(150):
        width, height = (int(v) for v in rng.integers(20, 200, 2))
        x, y = rng.uniform(0, 0.7, 2)
        w, h = rng.uniform(0.02, 0.3, 2)
        bx0, by0, bx1, by1 = render_box([x, y, w, h], width, height)
        if k % 3 == 0:  # a crop of another size: both resize it bilinearly
            shape = tuple(int(v) for v in rng.integers(1, 40, 2))
        else:
            shape = (max(by1 - by0, 1), max(bx1 - bx0, 1))
        mask = rng.random(shape) > 0.4
        inst, resized = place_mask(mask, [x, y, w, h], width, height)
        assert resized == (shape != (by1 - by0, bx1 - bx0))
        assert np.array_equal(inst.to_full(height, width),
                              fiftyone_render(mask, [x, y, w, h], width, height))


def test_place_mask_clips_to_the_image_and_checks_dims():
    inst, resized = place_mask(np.ones((4, 4), bool), [46 / 50, 38 / 40, 4 / 50, 4 / 40], 50, 40)
    # FiftyOne clamps the box to the image: 4 x 2 rows, resized
    assert inst.box == (46, 38, 50, 40) and resized
    with pytest.raises(ValueError, match="2-D"):
        place_mask(np.ones((2, 2, 3)), [0, 0, 0.1, 0.1], 20, 20)
    # a channel axis of 1 is dropped; non-bool masks: non-zero is foreground
    inst, _ = place_mask(np.full((2, 3, 1), 7, np.uint8), relative_box((1, 1, 4, 3), 10, 10),
                            10, 10)
    assert inst.box == (1, 1, 4, 3) and inst.mask.all()


def test_instance_mask_tight_clipped_and_round_trip():
    full = np.zeros((20, 30), bool)
    full[3:7, 10:25] = True
    m = InstanceMask.from_full(full)
    assert m.box == (10, 3, 25, 7) and m.area == 60
    assert np.array_equal(m.to_full(20, 30), full)
    assert InstanceMask.from_full(np.zeros((4, 4))).area == 0
    crop = InstanceMask(np.pad(np.ones((2, 3), bool), 2), 5, 6)
    assert crop.tight().box == (7, 8, 10, 10) and crop.tight_box() == (7, 8, 10, 10)
    assert InstanceMask(np.zeros((3, 3), bool), 1, 1).tight_box() is None
    out = InstanceMask(np.ones((4, 4), bool), -2, 18).clipped(20, 30)
    assert out.box == (0, 18, 2, 20) and out.area == 4


def test_polygon_pixels_counts_pixel_centres():
    square = np.array([[0, 0], [4, 0], [4, 4], [0, 4]], dtype=float)
    assert polygon_pixels(square, (0, 0, 6, 6)).sum() == 16
    tri = np.array([[0, 0], [10, 0], [0, 10]], dtype=float)
    assert polygon_pixels(tri, (0, 0, 10, 10)).sum() == 45  # x + y < 10, strictly
    sq = np.array([[10, 10], [20, 10], [20, 20], [10, 20]], float)
    m = polygon_pixels(sq, (5, 5, 30, 30))
    assert m.shape == (25, 25) and m.sum() == 100 and m[5:15, 5:15].all()
    assert polygon_pixels(sq, (5, 5, 30, 30), dilate=2).sum() == 14 * 14
    assert polygon_pixels(sq, (50, 50, 60, 60)).sum() == 0  # region elsewhere
    flat = np.array([[10, 10], [30, 10], [30, 10], [10, 10]], float)  # degenerate
    assert polygon_pixels(flat, (0, 0, 40, 40)).sum() == 0
    assert polygon_pixels(flat, (0, 0, 40, 40), dilate=2).sum() == 24 * 4
    bowtie = np.array([[0, 0], [10, 10], [10, 0], [0, 10]], float)  # self-crossing
    assert polygon_pixels(bowtie, (0, 0, 10, 10)).sum() == 100  # its convex hull


def test_rasterize_and_fraction():
    m = rasterize([np.array([[10, 20], [30, 20], [30, 25], [10, 25]])])
    assert m.box == (10, 20, 30, 25) and m.area == 100 and m.mask.all()
    m = rasterize([np.array([[-5, -5], [5, -5], [5, 5], [-5, 5]])], width=100, height=100)
    assert m.box == (0, 0, 5, 5) and m.area == 25
    q = g.rbox_to_quad(50, 50, 40, 10, 0.3)
    assert rasterize([q]).area == pytest.approx(400, abs=12)
    a = np.array([[0, 0], [4, 0], [4, 4], [0, 4]])
    assert rasterize([a, a + 2]).area == 16 + 16 - 4
    assert rasterize([np.zeros((4, 2))]).area == 0
    # a hostile quad far outside the image costs no more than the image
    huge = np.array([[-1e5, -1e5], [1e5, -1e5], [1e5, 1e5], [-1e5, 1e5]])
    assert rasterize([huge], width=64, height=32).area == 64 * 32
    rect = InstanceMask(np.ones((10, 10), bool), 10, 10)
    left = np.array([[10, 10], [15, 10], [15, 20], [10, 20]], float)
    assert polygon_fraction(rect, left) == 0.5
    assert polygon_fraction(InstanceMask(np.zeros((2, 2), bool), 0, 0), left) is None
    assert points_in_polygon(np.array([12.5, 17.5]), np.array([12.5, 12.5]), left).tolist() \
        == [True, False]


def _quads_to_test(n=1500, seed=0):
    """Rotated boxes of every size and angle, axis-aligned ones, integer and
    half-integer corners (pixel centres on edges), and the real DOTA samples'."""
    import glob
    import os

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        cx, cy = rng.uniform(0, 300, 2)
        w, h = rng.lognormal(3.0, 1.0, 2)
        a = 0.0 if i % 5 == 0 else rng.uniform(0, np.pi)
        c, s = np.cos(a), np.sin(a)
        q = (np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
             @ np.array([[c, s], [-s, c]]) + [cx, cy])
        if i % 7 == 0:
            q = np.round(q)
        elif i % 11 == 0:
            q = np.round(q * 2) / 2
        out.append(q)
    samples = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "samples")
    for path in glob.glob(os.path.join(samples, "dota", "labelTxt", "*.txt")):
        for line in open(path):
            parts = line.split()
            try:
                out.append(np.array(parts[:8], dtype=np.float64).reshape(4, 2))
            except ValueError:
                continue
    return out


@pytest.mark.parametrize("dilate", [0.0, 2.0])
def test_polygon_pixels_scanlines_equal_the_centre_rule(dilate):
    """Issue 23, item 4: the scanline fill of convex polygons gives exactly
    the pixels whose centre ``shapely.contains_xy`` finds strictly inside."""
    import shapely

    from fiftyone_samrs.core import masks

    assert masks.SCANLINE_MIN_PIXELS < 400 * 400  # large boxes do take the scanlines
    for q in _quads_to_test():
        region = (int(np.floor(q[:, 0].min())) - 3, int(np.floor(q[:, 1].min())) - 3,
                  int(np.ceil(q[:, 0].max())) + 3, int(np.ceil(q[:, 1].max())) + 3)
        poly = masks._polygon(q, dilate)
        xs = np.arange(region[0], region[2]) + 0.5
        ys = np.arange(region[1], region[3]) + 0.5
        want = shapely.contains_xy(poly, xs[None, :], ys[:, None])
        assert np.array_equal(polygon_pixels(q, region, dilate), want), q.tolist()
