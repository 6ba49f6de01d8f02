"""FiftyOne importers: the fast document path against add_samples, and each format.

Every test writes its own source files to ``tmp_path`` (by hand or with
:mod:`fiftyone_samrs.testing.synthetic`) and imports them into uniquely named
datasets, deleted afterwards.
"""

import os
import uuid

import fiftyone as fo
import numpy as np
import pytest
from fiftyone import ViewField as F

from fiftyone_samrs.core import classes as fsc
from fiftyone_samrs.core.records import FormatError, ImageRecord, ImportReport, InstanceMask, ObjectRecord
from fiftyone_samrs.importing import importers as imp
from fiftyone_samrs.importing import sample_docs
from fiftyone_samrs.importing.isaid_gt import load_isaid_masks
from fiftyone_samrs.importing.report import import_report

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
    ref.add_samples([sample_docs.record_to_sample(r) for r in records], dynamic=True, progress=False)
    # the importer also declares its standard fields/attributes where every
    # value was None (here only the gt_masks attributes the ship lacks)
    before = _schema(ref)
    sample_docs.declare_standard_fields(ref, ["hbb", "obb", "gt_masks"])
    assert set(_schema(ref)) - set(before) == {"gt_masks.detections.difficult",
                                               "gt_masks.detections.truncated",
                                               "gt_masks.detections.source_id"}

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
    from fiftyone_samrs.core.geometry import relative_to_box

    assert relative_to_box(dets[0].bounding_box, 100, 80) == pytest.approx((8, 10, 30, 40))
    assert relative_to_box(dets[2].bounding_box, 100, 80) == pytest.approx((50, 50, 60, 70))
    assert dets[0].difficult == 1 and dets[0].truncated is True
    assert dets[0].source_id == "im2.txt:3" and dets[0].rh is False
    assert dets[2].rh is True and dets[2].difficult == 2
    polys = s.obb.polylines
    assert [p.obj_index for p in polys] == [0, 2]  # the ship has no quad
    assert polys[0].closed and not polys[0].filled  # outlines: the masks stay visible
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
    ref.add_samples([sample_docs.record_to_sample(r) for r in recs], dynamic=True, progress=False)
    sample_docs.declare_standard_fields(ref, ["hbb", "obb", "gt_masks"])
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


# ---------------------------------------------------------------------------
# DOTA, from hand-written files with the quirks
# ---------------------------------------------------------------------------


def _write(path, text, crlf=False):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "w", newline="") as f:
        f.write(text.replace("\n", "\r\n") if crlf else text)


def _dota_tree(root):
    """P0001: header + CRLF + floats + 9 tokens + difficult 2 + zero-area quad;
    P0002: empty label file; P0003: image only; P0004: label only;
    P0005: unreadable image."""
    _png(str(root / "images" / "P0001.png"), 200, 100)
    _png(str(root / "images" / "P0002.png"), 64, 48)
    _png(str(root / "images" / "P0003.png"), 32, 32)
    _write(root / "images" / "P0005.png", "not a png")
    _write(root / "labelTxt" / "P0001.txt",
           "imagesource:GoogleEarth\ngsd:null\nacquisition dates:2019-01-01\n"
           "10 10 50 10 50 30 10 30 plane 0\n"
           "60.5 20.0 90.0 20.0 90.0 60.0 60.5 60.0 small-vehicle\n"
           "100 50 120 50 120 70 100 70 ship 2\n"
           "5 5 5 5 5 5 5 5 storage-tank 1\n", crlf=True)
    _write(root / "labelTxt" / "P0002.txt", "")
    _write(root / "labelTxt" / "P0004.txt", "1 1 2 1 2 2 1 2 plane 0\n")
    _write(root / "labelTxt" / "P0005.txt", "1 1 2 1 2 2 1 2 plane 0\n")


def test_load_dota_quirks(tmp_path, names):
    root = tmp_path / "DOTA"
    _dota_tree(root)
    ds = imp.load_dota(str(root), name=names(), version="1.0", progress=False)
    assert len(ds) == 2
    assert sorted(os.path.basename(p) for p in ds.values("filepath")) == ["P0001.png",
                                                                          "P0002.png"]
    s = ds.match(F("filepath").ends_with("P0001.png")).first()
    assert s.source == "DOTA-v1.0" and s.imagesource == "GoogleEarth"
    assert s.gsd is None and s.split is None and s.tags == []
    assert (s.metadata.width, s.metadata.height) == (200, 100)
    dets = s.hbb.detections
    assert [d.label for d in dets] == ["plane", "small-vehicle", "ship", "storage-tank"]
    from fiftyone_samrs.core.geometry import relative_to_box

    boxes = [relative_to_box(d.bounding_box, 200, 100) for d in dets]
    assert boxes[0] == pytest.approx((10, 10, 50, 30))
    assert boxes[1] == pytest.approx((60.5, 20, 90, 60))
    assert boxes[2] == pytest.approx((100, 50, 120, 70))
    assert [d.difficult for d in dets] == [0, None, 2, 1]
    assert [d.degenerate for d in dets] == [False, False, False, True]
    assert [d.source_id for d in dets] == ["P0001.txt:4", "P0001.txt:5", "P0001.txt:6",
                                           "P0001.txt:7"]
    assert [d.obj_index for d in dets] == [0, 1, 2, 3]
    assert all(d.rh is False for d in dets)
    polys = s.obb.polylines
    assert len(polys) == 4 and all(p.closed and not p.filled for p in polys)
    np.testing.assert_allclose(np.array(polys[1].points[0]) * [200, 100],
                               [[60.5, 20], [90, 20], [90, 60], [60.5, 60]])
    empty = ds.match(F("filepath").ends_with("P0002.png")).first()
    assert empty.hbb.detections == [] and empty.obb.polylines == []
    rep = ds.info["samrs"]["import_report"]
    assert rep["images"] == 2 and rep["objects"] == 4
    assert rep["skipped"] == {"image without labels": 1, "label without image": 1,
                              "unreadable image": 1}
    assert rep["warnings"] == {"degenerate object": 1}
    assert any("P0003.png" in m for m in rep["messages"])
    assert ds.info["samrs"]["format"] == "dota" and ds.info["samrs"]["subset"] == "SOTA"
    assert ds.info["samrs"]["source_dir"] == str(root)
    assert ds.classes["hbb"] == fsc.SOTA
    assert ds.count_values("hbb.detections.label") == {"plane": 1, "small-vehicle": 1,
                                                       "ship": 1, "storage-tank": 1}
    report = import_report(ds)
    assert report.skipped["image without labels"] == 1 and "2 images, 4 objects" in \
        report.summary()


def test_load_dota_unlabeled_keep_and_unknown_class(tmp_path, names):
    root = tmp_path / "DOTA"
    _dota_tree(root)
    ds = imp.load_dota(str(root), name=names(), version="1.0", unlabeled="keep",
                       progress=False)
    assert len(ds) == 3
    kept = ds.match(F("filepath").ends_with("P0003.png")).first()
    assert kept.hbb.detections == []
    # an unknown class is an error naming file and line, and leaves no dataset
    _write(root / "labelTxt" / "P0002.txt", "1 1 9 1 9 9 1 9 dragon 0\n")
    name = names()
    with pytest.raises(FormatError, match=r"P0002\.txt:1.*dragon"):
        imp.load_dota(str(root), name=name, version="1.0", progress=False)
    assert not fo.dataset_exists(name)
    ds = imp.load_dota(str(root), name=name, version="1.0", keep_unknown=True,
                       progress=False)
    assert ds.count_values("hbb.detections.label")["dragon"] == 1
    assert ds.info["samrs"]["import_report"]["warnings"]["unknown class"] == 1
    assert ds.classes["hbb"] == fsc.SOTA + ["dragon"]


def test_load_dota_malformed_line(tmp_path, names):
    root = tmp_path / "DOTA"
    _dota_tree(root)
    _write(root / "labelTxt" / "P0002.txt", "gsd:0.5\n1 1 9 1 9 9 plane 0\n")
    with pytest.raises(FormatError, match=r"P0002\.txt:2"):
        imp.load_dota(str(root), name=names(), version="1.0", progress=False)


def test_load_dota_splits_and_from_dir(tmp_path, names):
    from fiftyone_samrs import types
    from fiftyone_samrs.testing import synthetic
    gt = synthetic.make_dota_tree(str(tmp_path / "D"), n_images=4, n_objects=5,
                                  size=(300, 200), split=["train", "val"], gt_masks=False)
    ds = imp.load_dota(gt["root"], name=names(), progress=False)
    assert len(ds) == 4 and ds.count("hbb.detections") == 20 == gt["n_objects"]
    assert ds.count_values("split") == {"train": 2, "val": 2}
    assert ds.count_sample_tags() == {"train": 2, "val": 2}
    for img in gt["images"]:
        s = ds[img["filepath"]]
        assert s.split == img["split"] and s.gsd == pytest.approx(img["gsd"])
        assert [d.label for d in s.hbb.detections] == [o["label"] for o in img["objects"]]
        from fiftyone_samrs.core.geometry import relative_to_box

        for d, o in zip(s.hbb.detections, img["objects"]):
            assert relative_to_box(d.bounding_box, 300, 200) == pytest.approx(o["hbox"])
    # the FiftyOne dataset type gives the same dataset
    ref = fo.Dataset.from_dir(gt["root"], dataset_type=types.DOTADataset, name=names())
    assert _schema(ref) == _schema(ds)
    assert _docs(ref) == _docs(ds)
    assert ref.info["samrs"] == ds.info["samrs"] and ref.classes == ds.classes
    # options reach the importer; split selects one folder
    val = fo.Dataset.from_dir(gt["root"], dataset_type=types.DOTADataset, name=names(),
                              split="val")
    assert len(val) == 2 and val.distinct("split") == ["val"]
    # FiftyOne's own importer options: max_samples, shuffle, tags
    few = fo.Dataset.from_dir(gt["root"], dataset_type=types.DOTADataset, name=names(),
                              max_samples=3, shuffle=True, seed=1, tags="mine")
    assert len(few) == 3 and few.count_sample_tags()["mine"] == 3
    assert few.info["samrs"]["import_report"]["images"] == 3
    assert "source_images" not in few.info["samrs"]["import_report"]
    assert set(few.values("filepath")) <= {img["filepath"] for img in gt["images"]}


def test_importer_iterates_as_labeled_image_importer(tmp_path):
    """The importer also works as a plain LabeledImageDatasetImporter."""
    root = tmp_path / "DOTA"
    _dota_tree(root)
    importer = imp.DOTADatasetImporter(str(root), version="1.0")
    with importer:
        items = list(importer)
    assert len(items) == 2
    path, metadata, labels = items[0]
    assert path.endswith("P0001.png") and metadata.width == 200
    assert len(labels["hbb"].detections) == 4 and len(labels["obb"].polylines) == 4
    assert labels["source"] == "DOTA-v1.0"


# ---------------------------------------------------------------------------
# DIOR, FAIR1M, HRSC2016 from generated trees; from_dir gives the same dataset
# ---------------------------------------------------------------------------


def _same_as_from_dir(ds, dataset_type, root, name, **kwargs):
    ref = fo.Dataset.from_dir(root, dataset_type=dataset_type, name=name, **kwargs)
    assert _schema(ref) == _schema(ds)
    assert _docs(ref) == _docs(ds)
    assert ref.info["samrs"] == ds.info["samrs"] and ref.classes == ds.classes


def _check_boxes(ds, gt, key="hbox"):
    from fiftyone_samrs.core.geometry import relative_to_box

    for img in gt["images"]:
        s = ds[img["filepath"]]
        w, h = img["width"], img["height"]
        assert [d.label for d in s.hbb.detections] == [o["label"] for o in img["objects"]]
        for d, o in zip(s.hbb.detections, img["objects"]):
            assert relative_to_box(d.bounding_box, w, h) == pytest.approx(o[key], abs=1e-6)
        if s.has_field("obb") and s.obb is not None:
            for p, o in zip(s.obb.polylines, img["objects"]):
                np.testing.assert_allclose(np.array(p.points[0]) * [w, h], o["quad"],
                                           atol=1e-6)


def test_load_dior(tmp_path, names):
    from fiftyone_samrs import types
    from fiftyone_samrs.testing import synthetic
    gt = synthetic.make_dior_tree(str(tmp_path / "DIOR"), n_images=3, n_objects=4,
                                  gt_masks=False)
    ds = imp.load_dior(gt["root"], name=names(), progress=False)
    assert len(ds) == 3 and ds.count("hbb.detections") == 12 == gt["n_objects"]
    assert ds.count("obb.polylines") == 12
    assert ds.distinct("source") == ["DIOR-R"]
    assert ds.count_values("split") == {"train": 1, "val": 1, "test": 1}
    assert sorted(ds.count_sample_tags()) == ["test", "train", "val"]
    assert set(ds.distinct("hbb.detections.label")) <= set(fsc.SIOR)
    assert ds.distinct("hbb.detections.rh") == [False]  # the HBB file gives the H-Box
    _check_boxes(ds, gt)
    assert ds.classes["hbb"] == fsc.SIOR and ds.info["samrs"]["subset"] == "SIOR"
    _same_as_from_dir(ds, types.DIORDataset, gt["root"], names())
    test = imp.load_dior(gt["root"], name=names(), split="test", progress=False)
    assert len(test) == 1 and test.first().split == "test"


def test_load_dior_obb_only_gives_rh_boxes(tmp_path, names):
    from fiftyone_samrs.testing import synthetic
    gt = synthetic.make_dior_tree(str(tmp_path / "DIOR"), n_images=2, n_objects=3, hbb=False,
                                  gt_masks=False)
    ds = imp.load_dior(gt["root"], name=names(), progress=False)
    assert ds.distinct("hbb.detections.rh") == [True]
    _check_boxes(ds, gt)


def test_load_fair1m(tmp_path, names):
    from fiftyone_samrs import types
    from fiftyone_samrs.testing import synthetic
    gt = synthetic.make_fair1m_tree(str(tmp_path / "FAIR1M"), n_images=4, n_objects=3,
                                    size=(300, 300), gt_masks=False)
    previews = str(tmp_path / "previews")
    ds = imp.load_fair1m(gt["root"], name=names(), progress=False, preview_dir=previews)
    assert len(ds) == 4 and ds.count("hbb.detections") == 12
    assert ds.count_values("split") == {"train": 2, "val": 2}
    # stems collide between train and validation; uid keeps them apart
    assert sorted(ds.values("uid")) == sorted(img["uid"] for img in gt["images"])
    assert len(set(ds.values("uid"))) == 4
    assert ds.distinct("hbb.detections.rh") == [True]
    assert set(ds.distinct("hbb.detections.label")) <= set(fsc.FAST)
    assert ds.distinct("source") == ["FAIR1M-2.0"]
    _check_boxes(ds, gt)
    assert ds.classes["obb"] == fsc.FAST and ds.info["samrs"]["format"] == "fair1m"
    # difficult is never given by FAIR1M, yet the attribute is declared
    assert "hbb.detections.difficult" in ds.get_field_schema(flat=True)
    _same_as_from_dir(ds, types.FAIR1MDataset, gt["root"], names(), preview_dir=previews)


def test_load_hrsc_masks_and_all_masked(tmp_path, names):
    from fiftyone_samrs import types
    from fiftyone_samrs.testing import synthetic
    gt = synthetic.make_hrsc_tree(str(tmp_path / "HRSC"), n_images=3, n_objects=3,
                                  size=(200, 150), mask_dir="LandMask", unmasked_every=4)
    ds = imp.load_hrsc(gt["root"], name=names(), progress=False)
    assert len(ds) == 3 and ds.count("hbb.detections") == 9
    n_masked = sum(o["masked"] for img in gt["images"] for o in img["objects"])
    assert n_masked == 7  # ships 4 and 8 have no seg_color
    assert ds.count("gt_masks.detections") == n_masked
    assert ds.count_values("split") == {"trainval": 2, "test": 1}
    for img in gt["images"]:
        s = ds[img["filepath"]]
        assert s.all_masked == img["all_masked"]
        assert s.source == "HRSC2016"
        masks = s.gt_masks.detections if s.gt_masks is not None else []
        want = [(i, o) for i, o in enumerate(img["objects"]) if o["masked"]]
        assert [m.obj_index for m in masks] == [i for i, _ in want]
        for m, (i, o) in zip(masks, want):
            assert m.label == "ship" and m.source_id == o["object_id"]
            full = InstanceMask(m.mask, *[int(round(v)) for v in
                                          (m.bounding_box[0] * 200, m.bounding_box[1] * 150)])
            np.testing.assert_array_equal(full.to_full(150, 200), o["mask"].to_full(150, 200))
        for d, o in zip(s.hbb.detections, img["objects"]):
            assert d.source_id == o["object_id"] and d.class_id == o["class_id"]
    assert ds.classes["gt_masks"] == ["ship"] and ds.info["samrs"]["subset"] == "HRSC"
    # the paper's protocol: test images whose every ship has a mask
    assert ds.match((F("split") == "test") & F("all_masked")).count() == \
        sum(1 for img in gt["images"] if img["split"] == "test" and img["all_masked"])
    _same_as_from_dir(ds, types.HRSCDataset, gt["root"], names())
    nomask = imp.load_hrsc(gt["root"], name=names(), with_masks=False, progress=False)
    assert "gt_masks" not in nomask.get_field_schema()


# ---------------------------------------------------------------------------
# tiling through the importer, iSAID masks
# ---------------------------------------------------------------------------


def test_load_dota_tiled(tmp_path, names):
    from fiftyone_samrs.importing import tiling
    from fiftyone_samrs.testing import synthetic
    gt = synthetic.make_dota_tree(str(tmp_path / "D"), n_images=2, n_objects=12,
                                  size=(500, 300), gt_masks=False)
    tile_dir = str(tmp_path / "tiles")
    ds = imp.load_dota(gt["root"], name=names(), tile=True, tile_dir=tile_dir, tile_size=256,
                       gap=56, keep_thresh=0.7, progress=False)
    wins = tiling.windows(500, 300, 256, 56)
    assert len(ds) <= 2 * len(wins) and len(ds) > 2
    rep = ds.info["samrs"]["import_report"]
    assert rep["source_images"] == 2 and rep["source_objects"] == 24
    assert rep["images"] == len(ds) and rep["objects"] == ds.count("hbb.detections")
    assert rep["skipped"].get("empty tile", 0) == 2 * len(wins) - len(ds)
    assert "tiles of 2 source images with 24 objects" in rep["summary"]
    sources = {img["filepath"] for img in gt["images"]}
    for s in ds.iter_samples():
        assert s.tile_source in sources
        assert (s.tile_x, s.tile_y) in wins
        stem = os.path.splitext(os.path.basename(s.tile_source))[0]
        assert os.path.basename(s.filepath) == tiling.tile_name(stem, 256, s.tile_x, s.tile_y)
        assert os.path.isfile(s.filepath) and os.path.dirname(s.filepath) == tile_dir
        assert (s.metadata.width, s.metadata.height) == (256, 256)
        assert s.hbb.detections, "empty tiles are skipped"
        assert [d.obj_index for d in s.hbb.detections] == list(range(len(s.hbb.detections)))
    # a truncated (cut) object is flagged; clipped boxes stay inside the tile
    assert ds.count_values("hbb.detections.truncated").get(True, 0) >= 1
    assert ds.bounds("hbb.detections.bounding_box")[1] <= 1.0 + 1e-9
    assert "tile_source" in ds.get_field_schema()


def test_load_dota_tiled_default_dir(tmp_path, names, monkeypatch):
    from fiftyone_samrs.testing import synthetic
    monkeypatch.setattr(fo.config, "default_dataset_dir", str(tmp_path / "fodir"))
    gt = synthetic.make_dota_tree(str(tmp_path / "D"), n_images=1, n_objects=4,
                                  size=(300, 200), gt_masks=False)
    name = names()
    ds = imp.load_dota(gt["root"], name=name, tile=True, progress=False)
    assert len(ds) == 1  # smaller than the 1024 window: one tile
    s = ds.first()
    assert os.path.dirname(s.filepath) == str(tmp_path / "fodir" / name / "tiles")
    assert (s.tile_x, s.tile_y) == (0, 0) and (s.metadata.width, s.metadata.height) == \
        (1024, 1024)


def test_load_isaid_masks(tmp_path, names):
    from fiftyone_samrs.testing import synthetic
    gt = synthetic.make_dota_tree(str(tmp_path / "D"), n_images=2, n_objects=6,
                                  size=(320, 240), with_isaid=True)
    ds = imp.load_dota(gt["root"], name=names(), version="1.0", progress=False)
    # a third image without iSAID files
    _png(os.path.join(gt["root"], "images", "P9999.png"), 50, 50)
    _write(os.path.join(gt["root"], "labelTxt", "P9999.txt"), "1 1 9 1 9 9 1 9 plane 0\n")
    imp.load_dota(gt["root"], dataset=ds, version="1.0", progress=False)
    ds = fo.load_dataset(ds.name)
    assert len(ds) == 5  # the first two again + P9999; keep only one copy of each
    ds.delete_samples(ds.skip(2).match(~F("filepath").ends_with("P9999.png")))
    assert len(ds) == 3
    report = load_isaid_masks(ds, gt["root"], progress=False)
    painted = [(img, i, o) for img in gt["images"] for i, o in enumerate(img["objects"])
               if o["isaid"]]
    assert report.images == 2 and report.objects == len(painted)
    assert report.skipped == {"image without iSAID files": 1}
    assert ds.count("gt_masks.detections") == len(painted)
    n_matched = 0
    for img in gt["images"]:
        s = ds[img["filepath"]]
        got = []
        for m in s.gt_masks.detections:
            x0 = int(round(m.bounding_box[0] * 320))
            y0 = int(round(m.bounding_box[1] * 240))
            got.append((m, InstanceMask(m.mask, x0, y0).to_full(240, 320)))
        for i, o in enumerate(img["objects"]):
            if not o["isaid"]:
                assert i not in [m.obj_index for m, _ in got]
                continue
            want = o["mask"].to_full(240, 320)
            hits = [m for m, full in got if np.array_equal(full, want)]
            assert len(hits) == 1, "every painted instance is kept exactly once"
            m = hits[0]
            assert m.label == o["label"]
            # matched to its own box (linked by obj_index), or kept unlinked
            # (a thin shape, e.g. a plane's cross, can overlap its quad < min_iou)
            assert m.obj_index in (i, None)
            if m.obj_index is not None:
                n_matched += 1
                assert s.hbb.detections[i].label == m.label
    assert n_matched >= len(painted) // 2
    assert report.warned.get("unmatched iSAID instance", 0) == len(painted) - n_matched
    assert ds.info["samrs"]["isaid_report"]["objects"] == len(painted)
    assert "gt_masks.detections.obj_index" in ds.get_field_schema(flat=True)
    with pytest.raises(FormatError, match="no iSAID"):
        load_isaid_masks(ds, str(tmp_path / "nothing-here"), progress=False)


def test_load_isaid_masks_on_tiles(tmp_path, names):
    """Tile samples get the source image's instances cropped to their window."""
    from fiftyone_samrs.testing import synthetic
    gt = synthetic.make_dota_tree(str(tmp_path / "D"), n_images=1, n_objects=8,
                                  size=(400, 300), with_isaid=True)
    ds = imp.load_dota(gt["root"], name=names(), version="1.0", tile=True,
                       tile_dir=str(tmp_path / "tiles"), tile_size=256, gap=56,
                       progress=False)
    report = load_isaid_masks(ds, gt["root"], progress=False)
    assert report.images == len(ds) and not report.skipped
    img = gt["images"][0]
    painted = np.zeros((300, 400), bool)
    for o in img["objects"]:
        if o["isaid"]:
            painted |= o["mask"].to_full(300, 400)
    for s in ds.iter_samples():
        x, y = s.tile_x, s.tile_y
        union = np.zeros((256, 256), bool)
        for m in s.gt_masks.detections:
            x0 = int(round(m.bounding_box[0] * 256))
            y0 = int(round(m.bounding_box[1] * 256))
            union |= InstanceMask(m.mask, x0, y0).to_full(256, 256)
            if m.obj_index is not None:
                assert s.hbb.detections[m.obj_index].label == m.label
        want = np.zeros((256, 256), bool)
        crop = painted[y:y + 256, x:x + 256]
        want[:crop.shape[0], :crop.shape[1]] = crop
        np.testing.assert_array_equal(union, want)


def test_load_isaid_masks_counts_cross_class_matches(tmp_path, names):
    """A DOTA large-vehicle box matched to an iSAID small-vehicle instance keeps the
    box's label, but the match is counted, named and recorded (isaid_label)."""
    import cv2

    root = tmp_path / "D"
    _png(str(root / "images" / "P0001.png"), 64, 48)
    _write(str(root / "labelTxt" / "P0001.txt"),
           "10 10 30 10 30 20 10 20 large-vehicle 0\n40 30 50 30 50 40 40 40 plane 0\n")
    inst = np.zeros((48, 64, 3), np.uint8)
    inst[10:20, 10:30] = (1, 0, 0)
    inst[30:40, 40:50] = (2, 0, 0)
    color = np.zeros((48, 64, 3), np.uint8)
    color[10:20, 10:30] = (0, 0, 127)   # small-vehicle (RGB)
    color[30:40, 40:50] = (0, 127, 255)  # plane
    os.makedirs(root / "iSAID")
    cv2.imwrite(str(root / "iSAID" / "P0001_instance_id_RGB.png"), inst[:, :, ::-1])
    cv2.imwrite(str(root / "iSAID" / "P0001_instance_color_RGB.png"), color[:, :, ::-1])
    ds = imp.load_dota(str(root), name=names(), version="1.0", progress=False)
    report = load_isaid_masks(ds, str(root), progress=False)
    assert report.warned["cross-class match"] == 1
    assert any("large-vehicle box got the mask of an iSAID small-vehicle" in m
               for m in report.messages)
    dets = {d.label: d for d in ds.first().gt_masks.detections}
    assert dets["large-vehicle"].isaid_label == "small-vehicle"
    assert dets["plane"].isaid_label == "plane"
