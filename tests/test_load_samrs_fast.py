"""load_samrs writes sample documents itself (issue 23): the same documents
FiftyOne's ``add_importer`` writes for :class:`SAMRSDatasetImporter` (the
``fo.Dataset.from_dir`` route), with memory that does not grow with the
export (0.2.0: 1.55 KB per instance held, ~1,000 labels/s)."""

import json
import tracemalloc
import uuid

import cv2
import fiftyone as fo
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from fiftyone_samrs.core.records import FormatError
from fiftyone_samrs.exporting.coco_rle import encode_crop, rle_to_json
from fiftyone_samrs.exporting.samrs_import import load_samrs
from fiftyone_samrs.types import SAMRSDataset

H, W = 40, 50


def _ann(k, iid, seg, **extra):
    ann = {"id": k, "image_id": iid, "category_id": k % 2, "segmentation": seg,
           "iscrowd": 0, "bbox": [0, 0, 1, 1], "area": 1}
    ann.update(extra)
    return ann


def _varied_export(tmp_path):
    """Every kind of entry: compressed, uncompressed and polygon masks, an
    empty mask, with and without score / prompt_bbox, an image without
    objects and without a gray PNG."""
    out = tmp_path / "export"
    for sub in ("images", "gray"):
        (out / sub).mkdir(parents=True)
    rng = np.random.default_rng(3)
    images, anns = [], []
    for i in range(1, 5):
        cv2.imwrite(str(out / "images" / ("P%d.png" % i)), np.zeros((H, W, 3), np.uint8))
        images.append({"id": i, "file_name": "P%d.png" % i, "width": W, "height": H})
        if i != 4:
            cv2.imwrite(str(out / "gray" / ("P%d.png" % i)), np.full((H, W), 255, np.uint8))
    noisy = rng.random((9, 7)) > 0.4
    rle = rle_to_json(encode_crop(noisy, 11, 5, H, W))
    anns += [_ann(1, 1, rle, score=0.75, prompt_bbox=[10.0, 4.0, 9.0, 11.0]),
             _ann(2, 1, {"size": [H, W], "counts": [H * W]}, prompt_bbox=[3, 3, 5, 6]),
             _ann(3, 2, [[2.0, 2.0, 20.0, 3.0, 18.0, 15.0, 4.0, 12.0]], score=1),
             _ann(4, 3, {"size": [H, W],
                         "counts": [int(v) for v in _runs(rng.random((H, W)) > 0.7)]})]
    data = {"info": {"category_id_start": 0}, "licenses": [],
            "categories": [{"id": 0, "name": "plane"}, {"id": 1, "name": "ship"}],
            "images": images, "annotations": anns}
    (out / "classes.txt").write_text("plane\nship\n")
    (out / "annotations.json").write_text(json.dumps(data))
    return out


def _runs(mask):
    flat = np.concatenate(([False], mask.ravel(order="F"), [not mask.ravel(order="F")[-1]]))
    edges = np.flatnonzero(flat[1:] != flat[:-1])
    return np.diff(np.concatenate(([0], edges)))


def _docs(dataset):
    docs = []
    for d in dataset._sample_collection.find({}).sort("filepath", 1):
        for key in ("_id", "_rand", "_dataset_id", "created_at", "last_modified_at"):
            d.pop(key)
        for det in (d.get("sam") or {}).get("detections", []):
            det.pop("_id")
        if d.get("sam_seg"):
            d["sam_seg"].pop("_id")
        docs.append(d)
    return docs


def test_the_documents_are_what_fiftyones_importer_writes(tmp_path):
    out = _varied_export(tmp_path)
    ours = load_samrs(str(out), persistent=False, progress=False)
    theirs = fo.Dataset.from_dir(str(out), dataset_type=SAMRSDataset, progress=False)
    try:
        assert len(ours) == 4 and ours.count("sam.detections") == 4
        assert _docs(ours) == _docs(theirs)
        assert ours.get_field_schema(flat=True).keys() == \
            theirs.get_field_schema(flat=True).keys()
        assert (ours.classes, ours.mask_targets) == (theirs.classes, theirs.mask_targets)
        assert ours.info["samrs"]["subset"] == theirs.info["samrs"]["subset"]
        dets = {s.filepath.rsplit("/", 1)[1]: s.sam.detections for s in ours}
        assert dets["P1.png"][1]["empty"] is True and dets["P1.png"][0].confidence == 0.75
        poly = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(
            [[2.0, 2.0, 20.0, 3.0, 18.0, 15.0, 4.0, 12.0]], H, W))).astype(bool)
        ys, xs = np.nonzero(poly)
        assert np.array_equal(dets["P2.png"][0].mask, poly[ys.min():ys.max() + 1,
                                                          xs.min():xs.max() + 1])
        assert ours.match({"filepath": str(out / "images" / "P4.png")}).first().sam_seg is None
    finally:
        ours.delete()
        theirs.delete()


def _many(tmp_path, n_images, per_image=10):
    """A labels-only export of ``n_images`` (no image files: not read)."""
    out = tmp_path / ("many-%d" % n_images)
    out.mkdir()
    images, anns = [], []
    rle = rle_to_json(encode_crop(np.ones((6, 8), bool), 3, 4, 64, 64))
    for i in range(n_images):
        images.append({"id": i, "file_name": "P%06d.png" % i, "width": 64, "height": 64})
        anns += [_ann(len(anns) + 1, i, rle, score=0.5, prompt_bbox=[3, 4, 8, 6])
                 for _ in range(per_image)]
    (out / "classes.txt").write_text("plane\nship\n")
    (out / "annotations.json").write_text(json.dumps({
        "categories": [{"id": 0, "name": "plane"}, {"id": 1, "name": "ship"}],
        "images": images, "annotations": anns}))
    return out


def _peak_bytes(out):
    tracemalloc.start()
    try:
        ds = load_samrs(str(out), persistent=False, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ds.count("sam.detections") == 10 * len(ds)
    ds.delete()
    return peak


def test_memory_does_not_grow_with_the_annotations(tmp_path):
    """Four times the images and annotations: the peak of Python memory
    grows by well under what holding the annotations would cost (a parsed
    annotation is ~1 KB; 10 per image)."""
    small, large = _many(tmp_path, 300), _many(tmp_path, 1200)
    _peak_bytes(small)  # imports and caches warmed
    growth = (_peak_bytes(large) - _peak_bytes(small)) / 900
    assert growth < 2000, "%.0f bytes more per image" % growth


def test_a_sample_over_mongodbs_limit_names_the_image(tmp_path, monkeypatch):
    from fiftyone_samrs.core import limits

    monkeypatch.setattr(limits, "MAX_SAMPLE_BYTES", 200)
    out = _varied_export(tmp_path)
    name = "samrs-test-big-%s" % uuid.uuid4().hex[:8]
    with pytest.raises(FormatError, match=r"annotations.json.*'P1.png'.*16 MB"):
        load_samrs(str(out), name=name, progress=False)
    assert not fo.dataset_exists(name)
