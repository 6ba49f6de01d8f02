"""Samples near MongoDB's 16 MB document limit (issue 11).

0.1.0: ~28,000 objects on one untiled image raised a raw pymongo
``OperationFailure``. Now the import says which image, how many objects,
and to tile; GT masks or predicted masks too large for their document go
to mask files (``mask_path``) instead.
"""

import os
import struct
import uuid
import zlib

import fiftyone as fo
import numpy as np
import pytest

from fiftyone_samrs.core import limits
from fiftyone_samrs.core.records import FormatError, ImageRecord, ImportReport, InstanceMask, ObjectRecord
from fiftyone_samrs.importing import importers as imp


@pytest.fixture
def names():
    made = []

    def make(prefix="samrs-test-lim"):
        made.append("%s-%s" % (prefix, uuid.uuid4().hex[:8]))
        return made[-1]

    yield make
    for name in made:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def header_png(path, width, height):
    """A PNG whose header says ``width x height`` (its body is not decodable)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IEND", b""))
    return path


def test_too_many_objects_on_one_untiled_image_says_to_tile(tmp_path, names):
    # 0.1.0: pymongo OperationFailure (BSONObjectTooLarge) after a partial insert
    root = tmp_path / "DOTA"
    header_png(str(root / "images" / "P0000.png"), 800, 600)
    header_png(str(root / "images" / "P9999.png"), 20000, 20000)
    (root / "labelTxt").mkdir()
    (root / "labelTxt" / "P0000.txt").write_text("10 10 30 10 30 20 10 20 plane 0\n")
    rng = np.random.default_rng(0)
    xy = rng.integers(0, 19900, size=(28000, 2))
    lines = ["%d %d %d %d %d %d %d %d small-vehicle 0" % (x, y, x + 40, y, x + 40, y + 20, x, y + 20)
             for x, y in xy]
    (root / "labelTxt" / "P9999.txt").write_text("\n".join(lines) + "\n")
    name = names()
    with pytest.raises(FormatError) as e:
        imp.load_dota(str(root), name=name, version="1.0", progress=False)
    msg = str(e.value)
    assert "P9999" in msg and "28000 objects" in msg and "16 MB" in msg and "tile=True" in msg
    assert not fo.dataset_exists(name)  # nothing half-imported


def _record(tmp_path, n_objects, mask_side):
    rng = np.random.default_rng(1)
    objs = []
    for i in range(n_objects):
        m = rng.random((mask_side, mask_side)) > 0.5  # noise: compresses badly
        objs.append(ObjectRecord(label="ship", hbox=(i, 0, i + mask_side, mask_side),
                                 mask=InstanceMask(m, i, 0), source_id=str(i)))
    path = header_png(str(tmp_path / "img" / "H0001.png"), 400, 300)
    return ImageRecord(filepath=path, width=400, height=300, objects=objs, source="HRSC2016")


def test_gt_masks_too_large_for_the_document_become_mask_files(tmp_path, names, monkeypatch):
    monkeypatch.setattr(limits, "INLINE_MASK_BYTES", 5000)
    report = ImportReport()
    ds = imp.load_records([_record(tmp_path, 6, 120)], name=names(), fmt="hrsc", report=report,
                          progress=False)
    assert report.warned["masks as files"] == 1 and "H0001.png" in report.messages[0]
    det = ds.first().gt_masks.detections
    assert all(d.mask is None and os.path.isfile(d.mask_path) for d in det)
    assert det[0].mask_path.startswith(os.path.join(fo.config.default_dataset_dir, ds.name))
    # the pixels survive: the file holds the same mask
    want = _record(tmp_path, 6, 120).objects[2].mask.mask
    assert np.array_equal(det[2].get_mask() > 0, want)
    # small ones stay inline
    ds2 = imp.load_records([_record(tmp_path, 2, 10)], name=names(), fmt="hrsc", progress=False)
    assert all(d.mask is not None for d in ds2.first().gt_masks.detections)


def test_size_estimate_is_exact_bson(tmp_path, names):
    from fiftyone_samrs.fiftyone_io import bson_size

    ds = imp.load_records([_record(tmp_path, 3, 50)], name=names(), fmt="hrsc", progress=False)
    import fiftyone.core.odm as foo

    coll = foo.get_db_conn()[ds._sample_collection_name]
    doc = coll.find_one()
    assert bson_size(doc) == len(__import__("bson").encode(doc))
    assert limits.MAX_SAMPLE_BYTES < limits.MONGO_DOC_LIMIT == 16 * 1024 * 1024


def test_check_images_skips_undecodable_images_at_import(tmp_path, names):
    import cv2

    from fiftyone_samrs.importing.report import import_report

    root = tmp_path / "DOTA"
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    for stem in ("P0001", "P0002"):
        cv2.imwrite(str(root / "images" / (stem + ".png")),
                    np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8))
        (root / "labelTxt" / (stem + ".txt")).write_text("10 10 30 10 30 20 10 20 plane 0\n")
    data = (root / "images" / "P0002.png").read_bytes()
    (root / "images" / "P0002.png").write_bytes(data[:60] + b"\x00" * (len(data) - 60))
    ds = imp.load_dota(str(root), name=names(), version="1.0", progress=False)
    assert len(ds) == 2  # off by default: headers only
    ds = imp.load_dota(str(root), name=names(), version="1.0", progress=False, check_images=True)
    rep = import_report(ds)
    assert len(ds) == 1 and rep.skipped["undecodable image"] == 1
    assert "P0002.png" in rep.messages[0] and "undecodable image" in rep.messages[0]


def test_isaid_masks_too_large_for_the_document_become_mask_files(tmp_path, names,
                                                                  monkeypatch):
    from fiftyone_samrs.importing.isaid_gt import load_isaid_masks
    from fiftyone_samrs.testing import synthetic

    gt = synthetic.make_dota_tree(tmp_path / "D", n_images=1, n_objects=6, size=(300, 200),
                                  with_isaid=True)
    ds = imp.load_dota(gt["root"], name=names(), version="1.0", progress=False)
    monkeypatch.setattr(limits, "INLINE_MASK_BYTES", 100)
    report = load_isaid_masks(ds, gt["root"], progress=False)
    assert report.warned["masks as files"] == 1
    dets = ds.first().gt_masks.detections
    assert dets and all(d.mask is None and os.path.isfile(d.mask_path) for d in dets)
    from fiftyone_samrs.fiftyone_io import instance_from_label

    assert all(instance_from_label(d, 300, 200).area > 0 for d in dets)
