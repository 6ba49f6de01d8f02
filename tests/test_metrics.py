"""Metrics against values worked out by hand (see the comments)."""

import math

import numpy as np
import pytest

from fiftyone_samrs.core.metrics import iou_of, mask_intersection, mask_iou, match_by_iou, miou
from fiftyone_samrs.core.records import InstanceMask


def rect(x0, y0, w, h):
    """A filled w x h rectangle at (x0, y0)."""
    return InstanceMask(np.ones((h, w), dtype=bool), x0, y0)


def run(x0, x1):
    """A one-row mask covering columns [x0, x1) of row 0."""
    return rect(x0, 0, x1 - x0, 1)


def test_overlapping_squares():
    # 4x4 at (0,0) and 4x4 at (2,2): overlap is the 2x2 block [2,4)x[2,4):
    # I = 4, U = 16 + 16 - 4 = 28
    assert mask_iou(rect(0, 0, 4, 4), rect(2, 2, 4, 4)) == (4, 28)
    assert mask_iou(rect(2, 2, 4, 4), rect(0, 0, 4, 4)) == (4, 28)
    assert iou_of(4, 28) == pytest.approx(1 / 7)


def test_crops_with_holes_compare_pixels_not_boxes():
    # a: 3x3 crop at (0,0) with only the diagonal set (3 px)
    # b: 3x3 crop at (1,1) with only its top-left pixel set, i.e. image pixel (1,1)
    # (1,1) is on a's diagonal: I = 1, U = 3 + 1 - 1 = 3
    a = InstanceMask(np.eye(3, dtype=bool), 0, 0)
    mb = np.zeros((3, 3), dtype=bool)
    mb[0, 0] = True
    b = InstanceMask(mb, 1, 1)
    assert mask_iou(a, b) == (1, 3)
    # moving b's pixel to its (0,1) = image (2,1): not on the diagonal: I = 0, U = 4
    mb2 = np.zeros((3, 3), dtype=bool)
    mb2[0, 1] = True
    assert mask_iou(a, InstanceMask(mb2, 1, 1)) == (0, 4)


def test_identical_and_disjoint():
    assert mask_iou(rect(5, 7, 3, 2), rect(5, 7, 3, 2)) == (6, 6)
    # disjoint boxes: no pixel compared, U = 6 + 4
    assert mask_iou(rect(0, 0, 3, 2), rect(10, 10, 2, 2)) == (0, 10)
    # touching edges (x1 of a == x0 of b) share no pixel
    assert mask_intersection(rect(0, 0, 3, 3), rect(3, 0, 3, 3)) == 0


def test_empty_prediction_and_empty_gt():
    empty = InstanceMask(np.zeros((0, 0), dtype=bool), 0, 0)
    gt = rect(1, 1, 5, 4)  # 20 px
    assert mask_iou(empty, gt) == (0, 20)  # missed: IoU 0
    assert mask_iou(gt, empty) == (0, 20)
    # an all-False crop is empty too, wherever it is
    assert mask_iou(InstanceMask(np.zeros((4, 4), dtype=bool), 2, 2), gt) == (0, 20)
    # both empty: nothing to measure
    assert mask_iou(empty, empty) == (0, 0)
    assert math.isnan(iou_of(0, 0))


def test_masks_touching_the_image_border():
    # image 10 (h) x 12 (w). gt: cols 8..11, rows 6..9 (touches right and bottom border), 16 px
    # pred: cols 10..11, rows 0..9 (a full-height strip on the right border), 20 px
    # I = cols 10..11 x rows 6..9 = 8, U = 16 + 20 - 8 = 28
    gt = rect(8, 6, 4, 4)
    pred = rect(10, 0, 2, 10)
    assert mask_iou(pred, gt, size=(10, 12)) == (8, 28)
    # top-left corner: both start at the origin
    assert mask_iou(rect(0, 0, 3, 3), rect(0, 0, 2, 5), size=(10, 12)) == (6, 9 + 10 - 6)
    # a hand-made crop hanging over the border (x0 = -2): with the image size the
    # 2 columns outside are dropped: 3x3 crop at (-2, 0) keeps 1x3 = 3 px;
    # vs rect(0,0,1,3): I = 3, U = 3
    hanging = rect(-2, 0, 3, 3)
    assert mask_iou(hanging, rect(0, 0, 1, 3), size=(10, 12)) == (3, 3)
    # without the size the outside pixels count in the union: U = 9 + 3 - 3
    assert mask_iou(hanging, rect(0, 0, 1, 3)) == (3, 9)


def test_miou_instance_vs_pixel():
    # one big good mask: gt 100x100 = 10000 px, pred 100 wide x 90 high inside it:
    #   I = 9000, U = 10000, IoU 0.9
    # one small bad mask: gt 10x10 = 100 px at (500, 500), pred 10x10 shifted 5 cols right:
    #   I = 5 * 10 = 50, U = 100 + 100 - 50 = 150, IoU 1/3
    # mIoU_I = (0.9 + 1/3) / 2 = 0.616666...
    # mIoU_P = (9000 + 50) / (10000 + 150) = 9050 / 10150 = 0.891625...
    big = mask_iou(rect(0, 0, 100, 90), rect(0, 0, 100, 100))
    small = mask_iou(rect(505, 500, 10, 10), rect(500, 500, 10, 10))
    assert big == (9000, 10000)
    assert small == (50, 150)
    mi, mp = miou([big[0], small[0]], [big[1], small[1]])
    assert mi == pytest.approx((0.9 + 1 / 3) / 2)
    assert mp == pytest.approx(9050 / 10150)
    assert mi < mp  # the big good mask dominates the pixel mean


def test_miou_missed_instances_and_empties():
    # a missed gt enters as I = 0, U = area: IoU 0
    mi, mp = miou([10, 0], [10, 30])
    assert mi == pytest.approx(0.5)
    assert mp == pytest.approx(10 / 40)
    # union 0 (nothing to measure) is left out of both
    assert miou([10, 0], [10, 0]) == (1.0, 1.0)
    # no instance: NaN
    assert all(math.isnan(v) for v in miou([], []))
    assert all(math.isnan(v) for v in miou([0], [0]))
    with pytest.raises(ValueError):
        miou([5], [4])
    with pytest.raises(ValueError):
        miou([1, 2], [3])


def test_match_by_iou_is_optimal_not_greedy():
    # gts on row 0: g0 = [0,10), g1 = [10,20)
    # p0 = [2,14): vs g0 I=8 U=12+10-8=14 (0.571); vs g1 I=4 U=12+10-4=18 (0.222)
    # p1 = [0,5):  vs g0 I=5 U=10 (0.5); vs g1 none
    # greedy would take p0-g0 (0.571) and leave p1 and g1 alone (total 0.571);
    # the optimal assignment is p1-g0 + p0-g1 (0.5 + 0.222 = 0.722)
    # p2 = [40,43): overlaps nothing -> unmatched prediction, U = 3
    preds = [run(2, 14), run(0, 5), run(40, 43)]
    gts = [run(0, 10), run(10, 20)]
    rows = match_by_iou(preds, gts)
    assert rows == [(1, 0, 5, 10), (0, 1, 4, 18), (2, None, 0, 3)]


def test_match_by_iou_missed_gt_and_threshold():
    gts = [rect(0, 0, 4, 4), rect(20, 20, 4, 4)]
    preds = [rect(1, 0, 4, 4)]  # vs gts[0]: I = 3*4 = 12, U = 16+16-12 = 20 (0.6)
    assert match_by_iou(preds, gts) == [(0, 0, 12, 20), (None, 1, 0, 16)]
    # below the threshold nothing matches
    assert match_by_iou(preds, gts, min_iou=0.6) == [(None, 0, 0, 16), (None, 1, 0, 16), (0, None, 0, 16)]
    # no preds / no gts
    assert match_by_iou([], gts) == [(None, 0, 0, 16), (None, 1, 0, 16)]
    assert match_by_iou(preds, []) == [(0, None, 0, 16)]
    assert match_by_iou([], []) == []
