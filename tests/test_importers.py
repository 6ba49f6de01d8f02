"""FiftyOne importers: the fast document path against add_samples, and each format.

Every test writes its own source files to ``tmp_path`` (by hand or with
:mod:`fiftyone_samrs.synthetic`) and imports them into uniquely named
datasets, deleted afterwards.
"""

import os
import uuid

import numpy as np
import pytest

import fiftyone as fo
from fiftyone import ViewField as F

from fiftyone_samrs import classes as fsc
from fiftyone_samrs import importers as imp
from fiftyone_samrs.records import FormatError, ImageRecord, ImportReport, InstanceMask, ObjectRecord


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


@pytest.fixture
def names():
    """Unique dataset names; every dataset created under them is deleted."""
    made = []

    def make(prefix="samrs-test-imp"):
        name = "%s-%s" % (prefix, uuid.uuid4().hex[:8])
        made.append(name)
        return name

    yield make
    for name in made:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)


def _png(path, width, height, channels=3):
    import cv2

    os.makedirs(os.path.dirname(path), exist_ok=True)
    shape = (height, width, channels) if channels > 1 else (height, width)
    img = (np.arange(np.prod(shape)) % 251).astype(np.uint8).reshape(shape)
    cv2.imwrite(path, img)
    return os.path.abspath(path)


def _field_spec(field):
    """Comparable description of a FiftyOne field."""
    sub = getattr(field, "field", None)
    return (
        type(field).__name__,
        type(sub).__name__ if sub is not None else None,
        getattr(field, "document_type", None) or getattr(sub, "document_type", None),
        field.db_field,
    )


def _schema(dataset):
    return {k: _field_spec(v) for k, v in dataset.get_field_schema(flat=True).items()}


_VOLATILE = {"_id", "_dataset_id", "created_at", "last_modified_at", "_rand"}


def _strip(doc):
    if isinstance(doc, dict):
        return {k: _strip(v) for k, v in doc.items() if k not in _VOLATILE}
    if isinstance(doc, list):
        return [_strip(v) for v in doc]
    return doc


def _docs(dataset):
    return [_strip(d) for d in dataset._sample_collection.find().sort("filepath", 1)]


def _raw_docs(dataset):
    return list(dataset._sample_collection.find().sort("filepath", 1))


def _hand_records(tmp_path):
    """Records with every kind of value: None attrs, masks, extras, tiles, splits."""
    recs = []
    for k in range(4):
        path = _png(str(tmp_path / "img" / ("im%d.png" % k)), 100, 80)
        quad = np.array([[10, 10], [30, 12], [28, 40], [8, 38]], dtype=float)
        objs = [
            ObjectRecord("plane", (8.0, 10.0, 30.0, 40.0), quad=quad,
                         difficult=None if k == 0 else 1, truncated=None if k < 2 else True,
                         source_id="im%d.txt:%d" % (k, 3)),
            ObjectRecord("ship", (0.0, 0.0, 5.0, 5.0), quad=None, degenerate=(k == 3),
                         mask=InstanceMask(np.eye(4, 5, dtype=bool), 1, 2),
                         attributes={"class_id": np.int64(100000007)}),
            ObjectRecord("small-vehicle", (50.0, 50.0, 60.0, 70.0),
                         quad=np.array([[50, 50], [60, 50], [60, 70], [50, 70]], dtype=float),
                         hbox_is_rh=True, difficult=2),
        ]
        recs.append(ImageRecord(
            filepath=path, width=100, height=80,
            objects=objs if k != 1 else [],
            source="DOTA-v1.0",
            split=None if k == 0 else ("train" if k < 3 else "val"),
            gsd=None if k < 2 else 0.25,
            imagesource="GoogleEarth" if k == 2 else None,
            tile={"source_image": "/src/P1.png", "x": 824, "y": 0} if k == 3 else None,
            attributes={"all_masked": k == 2, "uid": "train_%d" % k},
        ))
    return recs


# ---------------------------------------------------------------------------
# the fast path is FiftyOne's dataset
# ---------------------------------------------------------------------------


def test_load_records_matches_add_samples(tmp_path, names):
    records = _hand_records(tmp_path)
    fast = imp.load_records(records, name=names(), fmt="dota", progress=False)
    ref = fo.Dataset(names())
    ref.add_samples([imp.record_to_sample(r) for r in records], dynamic=True, progress=False)

    # same schema, dynamic attributes included
    assert _schema(fast) == _schema(ref)
    schema = fast.get_field_schema(flat=True)
    for path in ("hbb.detections.obj_index", "hbb.detections.difficult",
                 "hbb.detections.truncated", "hbb.detections.source_id",
                 "hbb.detections.degenerate", "hbb.detections.rh", "hbb.detections.class_id",
                 "obb.polylines.obj_index", "obb.polylines.difficult",
                 "gt_masks.detections.mask", "gt_masks.detections.class_id",
                 "source", "split", "gsd", "imagesource", "tile_source", "tile_x", "tile_y",
                 "all_masked", "uid"):
        assert path in schema, path
    assert type(schema["hbb.detections.difficult"]).__name__ == "IntField"
    assert type(schema["hbb.detections.truncated"]).__name__ == "BooleanField"
    assert type(schema["gsd"]).__name__ == "FloatField"
    assert type(schema["tile_x"]).__name__ == "IntField"

    # same documents but ids and timestamps, and the volatile keys exist
    assert _docs(fast) == _docs(ref)
    for doc in _raw_docs(fast):
        assert 0.999 <= doc["_rand"] <= 1.0
        assert doc["_dataset_id"] == fast._doc.id
        assert doc["created_at"] == doc["last_modified_at"]
        for det in doc["hbb"]["detections"]:
            assert det["_id"] is not None
    assert len({d["_id"] for d in _raw_docs(fast)}) == 4

    # FiftyOne can load, filter, count and size it
    assert fast.count_values("hbb.detections.label") == {"plane": 3, "ship": 3,
                                                         "small-vehicle": 3}
    planes = fast.filter_labels("hbb", F("label") == "plane")
    assert planes.count("hbb.detections") == 3
    assert fast.match_tags("train").count() == 2
    assert fast.count_values("split") == {None: 1, "train": 2, "val": 1}
    assert fast.stats()["samples_count"] == 4
    assert fast.bounds("hbb.detections.obj_index") == (0, 2)
    sample = fast.match(F("filepath").ends_with("im3.png")).first()
    assert sample.tile_source == "/src/P1.png" and (sample.tile_x, sample.tile_y) == (824, 0)
    assert sample.metadata.width == 100 and sample.metadata.height == 80
    m = sample.gt_masks.detections[0]
    np.testing.assert_array_equal(m.mask, np.eye(4, 5, dtype=bool))
    assert m.bounding_box == pytest.approx([1 / 100, 2 / 80, 5 / 100, 4 / 80])
    assert m.class_id == 100000007 and m.degenerate is True
    # a fresh handle loads the same
    reloaded = fo.load_dataset(fast.name)
    assert reloaded.count("obb.polylines") == 6


def test_load_records_boxes_and_attributes(tmp_path, names):
    records = _hand_records(tmp_path)
    ds = imp.load_records(records, name=names(), fmt="dota", progress=False)
    s = ds.match(F("filepath").ends_with("im2.png")).first()
    dets = s.hbb.detections
    assert [d.label for d in dets] == ["plane", "ship", "small-vehicle"]
    assert [d.obj_index for d in dets] == [0, 1, 2]
    from fiftyone_samrs.geometry import relative_to_box

    assert relative_to_box(dets[0].bounding_box, 100, 80) == pytest.approx((8, 10, 30, 40))
    assert relative_to_box(dets[2].bounding_box, 100, 80) == pytest.approx((50, 50, 60, 70))
    assert dets[0].difficult == 1 and dets[0].truncated is True
    assert dets[0].source_id == "im2.txt:3" and dets[0].rh is False
    assert dets[2].rh is True and dets[2].difficult == 2
    polys = s.obb.polylines
    assert [p.obj_index for p in polys] == [0, 2]  # the ship has no quad
    assert polys[0].closed and polys[0].filled
    pts = np.array(polys[0].points[0]) * [100, 80]
    np.testing.assert_allclose(pts, [[10, 10], [30, 12], [28, 40], [8, 38]])
    assert s.gsd == 0.25 and s.imagesource == "GoogleEarth" and s.source == "DOTA-v1.0"
    assert s.all_masked is True and s.uid == "train_2"
    assert s.tags == ["train"]
    # an image with no objects: empty hbb and obb (the source has rotated boxes)
    empty = ds.match(F("filepath").ends_with("im1.png")).first()
    assert empty.hbb.detections == [] and empty.obb.polylines == []
    assert empty.gt_masks is None
    # dataset info and classes
    info = ds.info["samrs"]
    assert info["format"] == "dota" and info["subset"] == "SOTA"
    assert info["import_report"]["images"] == 4 and info["import_report"]["objects"] == 9
    assert ds.classes["hbb"] == fsc.SOTA and ds.classes["obb"] == fsc.SOTA
    assert ds.classes["gt_masks"] == fsc.SOTA


def test_load_records_batches_and_late_attributes(tmp_path, names):
    """Schema grows when a later batch brings a new attribute (FiftyOne does the same)."""
    records = _hand_records(tmp_path)
    late = records[0]
    late.objects[0].attributes["score_x"] = 0.5  # only in the last batch
    recs = records[1:] + [late]
    fast = imp.load_records(recs, name=names(), fmt="dota", progress=False, batch_size=1)
    ref = fo.Dataset(names())
    ref.add_samples([imp.record_to_sample(r) for r in recs], dynamic=True, progress=False)
    assert _schema(fast) == _schema(ref)
    assert "hbb.detections.score_x" in _schema(fast)
    assert _docs(fast) == _docs(ref)


def test_overwrite_and_existing_name(tmp_path, names):
    records = _hand_records(tmp_path)
    name = names()
    imp.load_records(records[:2], name=name, progress=False)
    with pytest.raises(ValueError, match="already exists.*overwrite=True"):
        imp.load_records(records, name=name, progress=False)
    assert len(fo.load_dataset(name)) == 2  # untouched
    ds = imp.load_records(records, name=name, overwrite=True, progress=False)
    assert len(ds) == 4 and ds.persistent
    # adding to an existing dataset
    imp.load_records(records[:1], dataset=ds, progress=False)
    assert len(ds) == 5


def test_failed_import_leaves_no_dataset(tmp_path, names):
    name = names()

    def bad():
        yield _hand_records(tmp_path)[0]
        raise FormatError("x.txt", "broken", line=3)

    with pytest.raises(FormatError, match="x.txt:3: broken"):
        imp.load_records(bad(), name=name, progress=False)
    assert not fo.dataset_exists(name)


def test_record_without_size_reads_header(tmp_path, names):
    path = _png(str(tmp_path / "a.png"), 37, 21)
    rec = ImageRecord(filepath=path, width=None, height=None,
                      objects=[ObjectRecord("ship", (1, 2, 3, 4))], source="HRSC2016")
    ds = imp.load_records([rec], name=names(), fmt="hrsc", progress=False)
    s = ds.first()
    assert (s.metadata.width, s.metadata.height) == (37, 21)
    assert ds.classes["hbb"] == ["ship"]


def test_empty_mask_is_reported(tmp_path, names):
    path = _png(str(tmp_path / "a.png"), 20, 20)
    rec = ImageRecord(filepath=path, width=20, height=20, source="HRSC2016", objects=[
        ObjectRecord("ship", (1, 2, 3, 4), mask=InstanceMask(np.zeros((0, 0), bool), 0, 0))])
    report = ImportReport()
    ds = imp.load_records([rec], name=names(), fmt="hrsc", report=report, progress=False)
    assert report.warned["empty mask"] == 1
    assert "gt_masks" not in ds.get_field_schema()  # like add_samples: no value, no field
    assert ds.first().hbb.detections[0].label == "ship"
    assert ds.info["samrs"]["import_report"]["warnings"] == {"empty mask": 1}
