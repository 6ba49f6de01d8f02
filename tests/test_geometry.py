"""Pure geometry (geometry.py), masks (records.InstanceMask) and the parsers' shared
helpers (rasterisation, clipping to the image)."""

import math

import numpy as np
import pytest

from fiftyone_samrs.core import geometry as g
from fiftyone_samrs.core.records import ImportReport, ObjectRecord
from fiftyone_samrs.formats._common import clip_objects


def test_quad_to_hbox_uses_min_max_not_corners_1_and_3():
    q = np.array([[856, 696], [1469, 1008], [1341, 1298], [716, 988]])
    assert g.quad_to_hbox(q) == (716, 696, 1469, 1298)
    # corners 1 and 3 would give (856, 696, 1341, 1298)


def test_rbox_to_quad_axes_and_order():
    q = g.rbox_to_quad(10, 20, 8, 4, 0.0)
    assert q.tolist() == [[6, 18], [14, 18], [14, 22], [6, 22]]
    q = g.rbox_to_quad(0, 0, 2, 0, math.pi / 2)  # w axis points down (+y)
    assert np.allclose(q[1], [0, 1]) and np.allclose(q[0], [0, -1])
    q = g.rbox_to_quad(5, 5, 6, 2, 0.7)
    assert g.quad_area(q) == pytest.approx(12)
    assert np.allclose(q.mean(axis=0), [5, 5])
    assert math.hypot(*(q[1] - q[0])) == pytest.approx(6)


def test_rh_box_is_sign_invariant():
    # why the HRSC angle sign cannot be checked against the H-Box alone
    a = g.quad_to_hbox(g.rbox_to_quad(100, 80, 60, 20, 0.4))
    b = g.quad_to_hbox(g.rbox_to_quad(100, 80, 60, 20, -0.4))
    assert a == pytest.approx(b)


def test_areas_clipping_iou():
    assert g.quad_area([[0, 0], [4, 0], [4, 3], [0, 3]]) == 12
    assert g.quad_area([[0, 0], [1, 1], [2, 2], [3, 3]]) == 0
    assert g.box_area((5, 5, 2, 9)) == 0
    assert g.clip_box((-5, 2, 120, 50), 100, 40) == (0, 2, 100, 40)
    assert g.clip_quad([[-1, 5], [120, 5], [120, 60], [-1, 60]], 100, 50).tolist() == [
        [0, 5], [100, 5], [100, 50], [0, 50]]
    assert g.box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert g.box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0


def test_relative_round_trip():
    box = (10, 20, 110, 70)
    rel = g.box_to_relative(box, 200, 100)
    assert rel == [0.05, 0.2, 0.5, 0.5]
    assert g.relative_to_box(rel, 200, 100) == pytest.approx(box)
    pts = np.array([[10, 20], [30, 40]])
    assert np.allclose(g.relative_to_points(g.points_to_relative(pts, 200, 100), 200, 100), pts)
    assert g.box_to_int_region((1.2, 2.7, 9.1, 9.9), 9, 20) == (1, 2, 9, 10)


def test_clip_objects_hbox_only_and_quads():
    def obj(quad, rh):
        q = np.asarray(quad, float)
        return ObjectRecord(label="x", hbox=g.quad_to_hbox(q), quad=q, hbox_is_rh=rh, source_id="s")

    inside = obj([[1, 1], [5, 1], [5, 5], [1, 5]], False)
    out = obj([[-4, 2], [6, 2], [6, 8], [-4, 8]], False)
    gone = obj([[20, 20], [30, 20], [30, 30], [20, 30]], False)
    r = ImportReport()
    clip_objects([inside, out, gone], 10, 10, "f.txt", r)
    assert inside.truncated is None and inside.hbox == (1, 1, 5, 5)
    assert out.hbox == (0, 2, 6, 8) and out.truncated and out.quad[0].tolist() == [-4, 2]
    assert gone.degenerate and gone.hbox == (10, 10, 10, 10)
    assert r.warned["object outside image"] == 2 and "f.txt (s, x)" in r.messages[0]
    rh = obj([[-4, 2], [6, 2], [6, 8], [-4, 8]], True)
    clip_objects([rh], 10, 10, "f.xml", ImportReport(), clip_quads=True)
    assert rh.quad[0].tolist() == [0, 2] and rh.hbox == (0, 2, 6, 8) and rh.truncated
