"""iSAID instance PNGs: reading (RGB, not BGR) and matching to DOTA objects."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fiftyone_samrs.core.classes import DOTA_V1_0
from fiftyone_samrs.core.records import FormatError, InstanceMask, ObjectRecord
from fiftyone_samrs.formats import dota, isaid
from fiftyone_samrs.testing import synthetic


def test_palette_covers_dota_v1_0_with_known_colours():
    assert sorted(isaid.ISAID_COLORS.values()) == sorted(DOTA_V1_0)
    assert isaid.ISAID_COLORS[(0, 127, 127)] == "large-vehicle"
    assert isaid.ISAID_COLORS[(0, 0, 127)] == "small-vehicle"
    assert isaid.ISAID_COLORS[(0, 63, 63)] == "storage-tank"


def _pair(tmp_path: Path, inst: np.ndarray, col: np.ndarray):
    a, b = tmp_path / "P1_instance_id_RGB.png", tmp_path / "P1_instance_color_RGB.png"
    Image.fromarray(inst).save(a)  # PIL writes RGB as RGB
    Image.fromarray(col).save(b)
    return a, b


def test_read_instances(tmp_path):
    inst = np.zeros((50, 60, 3), np.uint8)
    col = np.zeros((50, 60, 3), np.uint8)
    inst[5:15, 10:30] = (0, 0, 7)          # a large vehicle
    col[5:15, 10:30] = (0, 127, 127)
    inst[20:40, 40:50] = (3, 1, 0)         # a small vehicle
    col[20:40, 40:50] = (0, 0, 127)
    col[20:22, 40:50] = (0, 63, 63)        # a few pixels of another class: majority wins
    inst[45:47, 0:2] = (9, 9, 9)           # colour not in the palette
    col[45:47, 0:2] = (1, 2, 3)
    got = isaid.read_instances(*_pair(tmp_path, inst, col))
    assert [name for _, name in got] == ["large-vehicle", "small-vehicle", "unknown"]
    lv, sv, unk = (m for m, _ in got)
    assert lv.box == (10, 5, 30, 15) and lv.area == 200 and lv.mask.all()
    assert sv.box == (40, 20, 50, 40) and sv.area == 200
    assert unk.area == 4


def test_read_instances_errors(tmp_path):
    a, b = _pair(tmp_path, np.zeros((5, 5, 3), np.uint8), np.zeros((6, 5, 3), np.uint8))
    with pytest.raises(FormatError, match="differs from"):
        isaid.read_instances(a, b)
    with pytest.raises(FormatError, match="not found"):
        isaid.read_instances(tmp_path / "x.png", b)
    assert isaid.read_instances(*_pair(tmp_path, np.zeros((5, 5, 3), np.uint8),
                                       np.zeros((5, 5, 3), np.uint8))) == []


def _box_obj(label, box):
    x0, y0, x1, y1 = box
    return ObjectRecord(label=label, hbox=box,
                        quad=np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float))


def _mask(box, shape=(100, 100)):
    full = np.zeros(shape, bool)
    x0, y0, x1, y1 = box
    full[y0:y1, x0:x1] = True
    return InstanceMask.from_full(full)


def test_region_mask_matches_pixels_of_the_box():
    r = isaid.region_mask(_box_obj("plane", (10, 20, 30, 25)))
    full = r.to_full(100, 100)
    assert full.sum() == 100 and full[20:25, 10:30].all()


def test_match_one_to_one_same_class_first():
    objs = [_box_obj("small-vehicle", (10, 10, 30, 30)),   # exactly instance a
            _box_obj("large-vehicle", (11, 11, 31, 31)),   # overlaps a too, other class
            _box_obj("ship", (60, 60, 70, 70)),            # weak overlap with c only
            _box_obj("plane", (80, 0, 90, 10))]            # nothing there
    a = (_mask((10, 10, 30, 30)), "small-vehicle")
    b = (_mask((12, 12, 31, 31)), "large-vehicle")
    c = (_mask((66, 66, 80, 80)), "ship")
    got = isaid.match_to_objects([a, b, c], objs, min_iou=0.3)
    assert got[0] is a[0] and got[1] is b[0]
    assert got[2] is None and got[3] is None   # c's IoU with ship is 16/280 < 0.3
    assert isaid.match_to_objects([a, b, c], objs, min_iou=0.05)[2] is c[0]
    # a different class is matched when no same-class instance is left
    got = isaid.match_to_objects([a], [_box_obj("plane", (10, 10, 30, 30))])
    assert got[0] is a[0]


def test_synthetic_isaid_tree_matches_every_object(tmp_path):
    gt = synthetic.make_dota_tree(tmp_path / "D", n_images=2, n_objects=10, size=(300, 240),
                                  with_isaid=True)
    recs = list(dota.scan(gt["root"]))
    for rec, img in zip(recs, gt["images"]):
        inst = isaid.read_instances(img["isaid_instance"], img["isaid_color"])
        assert len(inst) == sum(o["isaid"] for o in img["objects"])
        matched = isaid.match_to_objects(inst, rec.objects)
        for m, o in zip(matched, img["objects"]):
            if not o["isaid"]:
                assert m is None
                continue
            assert m is not None and m.box == o["mask"].box
            assert np.array_equal(m.mask, o["mask"].mask)
        assert sorted(n for _, n in inst) == sorted(o["label"] for o in img["objects"] if o["isaid"])
