"""Canaries of the FiftyOne boundary (fiftyone_samrs.fiftyone_io).

Every private FiftyOne name the package uses is compared here with FiftyOne's
public slow path on the same data, so an upgrade that changes one fails here
first (see the table in the module's docstring).
"""

import fiftyone as fo
import fiftyone.core.utils as fou
import numpy as np
import pytest
from bson import ObjectId

from fiftyone_samrs import fiftyone_io as fio


def _dataset(fo_dataset, tmp_path, n=4):
    rng = np.random.default_rng(0)
    samples = []
    for i in range(n):
        s = fo.Sample(filepath=str(tmp_path / ("%d.png" % i)), split="train" if i % 2 else "val",
                      metadata=fo.ImageMetadata(width=64, height=48))
        s["sam"] = fo.Detections(detections=[
            fo.Detection(label="ship" if k % 2 else "plane",
                         bounding_box=fio_box(k), mask=rng.random((5, 7)) > 0.5,
                         confidence=0.5 + 0.1 * k, obj_index=k,
                         stability=float("nan"))  # as boxfill writes it
            for k in range(3)])
        s["obb"] = fo.Polylines(polylines=[
            fo.Polyline(label="ship", points=[[[0.1, 0.1], [0.2, 0.1], [0.2, 0.2]]],
                        closed=True, filled=True, obj_index=0)])
        samples.append(s)
    fo_dataset.add_samples(samples)
    return fo_dataset


def fio_box(k):
    from fiftyone_samrs.core.masks import relative_box

    return relative_box((3 + 9 * k, 4, 10 + 9 * k, 9), 64, 48)


def _strip(doc, keys=("_id", "created_at", "last_modified_at", "_rand")):
    if isinstance(doc, dict):
        return {k: _strip(v, keys) for k, v in doc.items() if k not in keys}
    if isinstance(doc, list):
        return [_strip(v, keys) for v in doc]
    return doc


def test_raw_values_equal_the_public_values(fo_dataset, tmp_path):
    """``values(_raw=True)``: the same labels as ``values()``, as documents."""
    ds = _dataset(fo_dataset, tmp_path)
    view = ds.filter_labels("sam", fo.ViewField("label") == "ship")
    raw = fio.raw_values(view, ["sam.detections"])[0]
    public = view.values("sam.detections")
    for docs, dets in zip(raw, public):
        labels = fio.raw_labels(docs)
        assert [d.id for d in labels] == [d.id for d in dets]
        assert [d.bounding_box for d in labels] == [d.bounding_box for d in dets]
        assert [d.confidence for d in labels] == [d.confidence for d in dets]
        for r, d in zip(labels, dets):
            assert np.array_equal(r.get_mask(), d.mask)
            assert fio.label_attr(r, "obj_index") == fio.label_attr(d, "obj_index")


def test_iter_raw_docs_follows_the_view(fo_dataset, tmp_path):
    """``_aggregate``: one cursor over the view's stages, as iterating samples."""
    ds = _dataset(fo_dataset, tmp_path)
    view = ds.match_tags("train").filter_labels("sam", fo.ViewField("confidence") > 0.55)
    docs = list(fio.iter_raw_docs(view, ["sam"]))
    assert [str(d["_id"]) for d in docs] == view.values("id")
    for doc, sample in zip(docs, view):
        assert [str(d["_id"]) for d in doc["sam"]["detections"]] == \
            [d.id for d in sample.sam.detections]
        assert doc["metadata"]["width"] == sample.metadata.width
        assert "obb" not in doc


def test_bulk_set_and_write_values_equal_set_values(fo_dataset, tmp_path):
    """``_bulk_write`` / ``_sample_collection.find``: the same documents as the
    public ``set_values`` and ``sample.save``."""
    ds = _dataset(fo_dataset, tmp_path)
    ids = ds.values("id")
    fio.declare_fields(ds, {"score": fo.FloatField, "sam.detections.q": fo.FloatField})
    # the filtered view hides labels: positions must come from the dataset
    view = ds.filter_labels("sam", fo.ViewField("label") == "ship")
    label_sets = {}
    for sid, dets in zip(view.values("id"), view.values("sam.detections")):
        label_sets[sid] = {"sam.detections": {d.id: {"q": 0.25} for d in dets}}
    fio.write_values(view, {sid: {"score": 1.5} for sid in ids}, label_sets)

    ref = fo.Dataset()
    try:
        ref.add_samples([s.copy() for s in _dataset(fo.Dataset(), tmp_path)])
        ref.set_values("score", [1.5] * len(ref))
        for s in ref:
            for d in s.sam.detections:
                if d.label == "ship":
                    d["q"] = 0.25
            s.save()
        for a, b in zip(ds, ref):
            assert a.score == b.score == 1.5
            assert [d["q"] if d.has_field("q") else None for d in a.sam.detections] == \
                [d["q"] if d.has_field("q") else None for d in b.sam.detections]
        # last_modified_at is kept up to date like FiftyOne's own writes
        assert all(t is not None for t in ds.values("last_modified_at"))
    finally:
        ref.delete()


def test_hand_built_documents_equal_fiftyones(fo_dataset, tmp_path):
    """The documents of detection_doc / polyline_doc / segmentation_doc /
    sample_doc (+ ``_generate_rand``, ``_doc.id``, ``_expand_schema`` through
    insert_sample_docs) are what FiftyOne writes for the same objects."""
    mask = np.zeros((5, 7), bool)
    mask[1:4, 2:6] = True
    kw = dict(confidence=0.75, source_id="abc", obj_index=3, prompt="hbox", empty=False,
              stability=0.5)
    ours = fio.detection_doc("ship", [0.1, 0.2, 0.3, 0.4], mask, **kw)
    theirs = fo.EmbeddedDocumentField(fo.Detection).to_mongo(
        fo.Detection(label="ship", bounding_box=[0.1, 0.2, 0.3, 0.4], mask=mask, **kw))
    assert _strip(dict(theirs)) == _strip(ours)
    pts = [[[0.1, 0.1], [0.5, 0.1], [0.5, 0.4]]]
    ours = fio.polyline_doc("ship", pts, obj_index=2)
    theirs = fo.EmbeddedDocumentField(fo.Polyline).to_mongo(
        fo.Polyline(label="ship", points=pts, closed=True, filled=True, obj_index=2))
    assert _strip(dict(theirs)) == _strip(ours)
    ours = fio.segmentation_doc("/x/y.png")
    theirs = fo.EmbeddedDocumentField(fo.Segmentation).to_mongo(
        fo.Segmentation(mask_path="/x/y.png"))
    assert _strip(dict(theirs)) == _strip(ours)

    # a whole sample, inserted by the fast path vs add_sample
    from datetime import datetime

    det = fio.detection_doc("ship", [0.1, 0.2, 0.3, 0.4], mask, obj_index=0)
    fields = {"split": "val", "hbb": fio.label_list_doc(fo.Detections, [det])}
    probe = fo.Sample(filepath="/probe.png", split="x", hbb=fo.Detections(detections=[
        fo.Detection(label="p", bounding_box=[0, 0, 1, 1], obj_index=1)]))
    fo_dataset.media_type = "image"  # as the importers do before inserting
    doc = fio.sample_doc(fo_dataset, str(tmp_path / "a.png"), {"width": 7, "height": 5},
                         ["val"], fields, datetime.utcnow())
    fio.insert_sample_docs(fo_dataset, [doc], probe)
    ref = fo.Dataset()
    try:
        ref.add_sample(fo.Sample(filepath=str(tmp_path / "a.png"), tags=["val"], split="val",
                                 metadata=fo.ImageMetadata(width=7, height=5),
                                 hbb=fo.Detections(detections=[fo.Detection(
                                     label="ship", bounding_box=[0.1, 0.2, 0.3, 0.4], mask=mask,
                                     obj_index=0)])))
        a = fo_dataset._sample_collection.find_one()
        b = ref._sample_collection.find_one()
        assert a["_dataset_id"] == fio.dataset_id(fo_dataset)
        assert b["_dataset_id"] == fio.dataset_id(ref)
        assert 0 <= a["_rand"] <= 1 and type(a["_rand"]) is type(b["_rand"])
        skip = ("_id", "_dataset_id", "_rand", "created_at", "last_modified_at")
        assert _strip(a, skip) == _strip(b, skip)
        # the schema FiftyOne infers from the probe is the one add_sample made
        assert fo_dataset.get_field_schema(flat=True).keys() >= ref.get_field_schema(
            flat=True).keys()
        assert np.array_equal(fo_dataset.first().hbb.detections[0].mask, mask)
    finally:
        ref.delete()


def test_deserialize_mask_equals_fiftyones():
    rng = np.random.default_rng(3)
    for shape, dtype in [((5, 7), bool), ((1, 1), bool), ((30, 2), np.uint8), ((0, 0), bool)]:
        a = (rng.random(shape) > 0.5).astype(dtype)
        raw = fou.serialize_numpy_array(a)
        assert np.array_equal(fio.deserialize_mask(raw), fou.deserialize_numpy_array(raw))


def test_check_label_field_and_default_classes(fo_dataset, tmp_path):
    ds = _dataset(fo_dataset, tmp_path)
    assert fio.check_label_field(ds, "sam", fo.Detections, "prediction")
    assert not fio.check_label_field(ds, "nope", fo.Detections, "prediction", required=False)
    with pytest.raises(ValueError, match="'nope' does not exist"):
        fio.check_label_field(ds.limit(1), "nope", fo.Detections, "prediction")
    with pytest.raises(ValueError, match="holds Polylines, expected Detections"):
        fio.check_label_field(ds, "obb", fo.Detections, "prediction")
    assert fio.label_list_path(ds, "obb") == "obb.polylines"
    assert fio.default_classes(ds, ["sam"]) == ["plane", "ship"]
    ds.classes = {"sam": ["ship", "plane", "car"]}
    assert fio.default_classes(ds.limit(2), ["hbb", "sam"]) == ["ship", "plane", "car"]
    assert fio.dataset_of(ds.limit(2)) is ds


def test_dataset_of_is_the_object_a_view_runs_on_without_singletons(fo_dataset, tmp_path,
                                                                    monkeypatch):
    """The canary of ``DatasetView._root_dataset``: in the App server FiftyOne
    keeps no dataset singletons (``singleton_cache`` False), and a field added
    through ``fo.load_dataset(name)`` there is not a field of a view made
    earlier; through :func:`dataset_of` it is (a COCO export from the App
    adding ``coco_id`` failed so)."""
    ds = _dataset(fo_dataset, tmp_path)
    monkeypatch.setattr(fo.config, "singleton_cache", False)
    server_ds = fo.load_dataset(ds.name)
    assert server_ds is not fo.load_dataset(ds.name)  # no singletons
    view = server_ds.limit(2)
    assert fio.dataset_of(view) is view._root_dataset is server_ds
    fio.dataset_of(view).add_sample_field("canary_field", fo.IntField)
    assert view.has_sample_field("canary_field")
    other = fo.load_dataset(ds.name)
    other.add_sample_field("other_field", fo.IntField)
    assert not view.has_sample_field("other_field")  # why dataset_of avoids load_dataset


def test_sidebar_group_uses_the_public_app_config(fo_dataset, tmp_path):
    ds = _dataset(fo_dataset, tmp_path)
    fio.add_sidebar_group(ds.limit(1), "eval", ["sam"])
    names = [g.name for g in ds.app_config.sidebar_groups]
    assert names[-1] == "eval" and "metadata" in names
    fio.remove_sidebar_group(ds, "eval")
    assert "eval" not in [g.name for g in ds.app_config.sidebar_groups]


def test_ensure_image_sizes_repairs_a_missing_width(fo_dataset, tmp_path):
    import cv2

    path = str(tmp_path / "img.png")
    cv2.imwrite(path, np.zeros((12, 20, 3), np.uint8))
    fo_dataset.add_samples([fo.Sample(filepath=path, metadata=fo.ImageMetadata(height=12)),
                            fo.Sample(filepath=path)])
    assert fio.ensure_image_sizes(fo_dataset) == 2
    assert fo_dataset.values("metadata.width") == [20, 20]
    assert fio.ensure_image_sizes(fo_dataset) == 0
    assert ObjectId.is_valid(fo_dataset.first().id)


def _png_header(path, width, height):
    """A PNG whose header says ``width x height`` (no pixel data)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(
        ">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk)


def test_ensure_image_sizes_reads_headers_past_pils_limit(fo_dataset, tmp_path):
    # DOTA v2.0 has 20000x20000 images: over PIL's 179 Mpx, which
    # compute_metadata (PIL) refuses with DecompressionBombError
    big, gone = str(tmp_path / "P9999.png"), str(tmp_path / "gone.png")
    _png_header(big, 20000, 20000)
    fo_dataset.add_samples([fo.Sample(filepath=big), fo.Sample(filepath=gone)])
    assert fio.ensure_image_sizes(fo_dataset) == 1  # the missing file stays unknown
    md = fo_dataset.first().metadata
    assert (md.width, md.height, md.mime_type) == (20000, 20000, "image/png")
    assert fo_dataset.values("metadata.width") == [20000, None]


def test_document_sizes_are_the_stored_bson_sizes(fo_dataset, tmp_path):
    # canary: _sample_collection.aggregate with $bsonSize against the documents themselves
    import bson

    ds = _dataset(fo_dataset, tmp_path)
    ids = ds.values("id")
    sizes = fio.document_sizes(ds, ids)
    for doc in ds._sample_collection.find({}):
        assert sizes[str(doc["_id"])] == len(bson.encode(doc))
    less = fio.document_sizes(ds, ids, ["sam", "not_a_field"])
    for doc in ds._sample_collection.find({}):
        field = doc.get("sam")
        minus = len(bson.encode(field)) if isinstance(field, dict) else 0
        assert less[str(doc["_id"])] == len(bson.encode(doc)) - minus
    assert fio.document_sizes(ds, []) == {}


def test_samrs_collections_sit_beside_the_datasets(fo_dataset, tmp_path):
    """``samrs_collection``: FiftyOne's own database (the one holding the
    dataset documents), reached again from the URI other processes get."""
    import pymongo

    ds = _dataset(fo_dataset, tmp_path, n=1)
    coll = fio.samrs_collection("leases")
    assert coll.name == "samrs.leases"
    assert coll.database.name == fo.config.database_name
    assert coll.database.datasets.find_one({"name": ds.name}) is not None
    names = {ix["name"] for ix in fio.samrs_collection("claims").list_indexes()}
    assert "gc_at_1" in names
    with pytest.raises(ValueError, match="unknown"):
        fio.samrs_collection("nope")
    client = pymongo.MongoClient(fio.database_uri(), serverSelectionTimeoutMS=5000)
    assert client[fo.config.database_name].datasets.find_one({"name": ds.name}) is not None
    # FiftyOne's orphan cleanup leaves them alone
    import fiftyone.core.odm as foo

    coll.insert_one({"_id": "canary"})
    foo.database.drop_orphan_collections()
    assert coll.find_one({"_id": "canary"}) is not None
    coll.delete_one({"_id": "canary"})


def test_view_stages_rebuild_the_same_view(fo_dataset, tmp_path):
    """``DatasetView._serialize`` / ``_build``: the rebuilt view has the same
    samples, order and filtered labels as the original."""
    import json

    ds = _dataset(fo_dataset, tmp_path)
    view = ds.match(fo.ViewField("split") == "train").sort_by("filepath", reverse=True) \
        .filter_labels("sam", fo.ViewField("label") == "ship")
    stages = json.loads(json.dumps(fio.view_stages(view)))  # as sent to another process
    again = fio.view_from_stages(ds, stages)
    assert again.values("id") == view.values("id")
    assert again.values("sam.detections.id") == view.values("sam.detections.id")
    assert fio.view_stages(ds) == [] and fio.view_from_stages(ds, []) is ds


def test_a_failed_from_dir_leaves_no_dataset_but_a_users_dataset_stays(tmp_path):
    """Issue 22, item 13 (and the canary of ``made_for_this_import``):
    ``fo.Dataset.from_dir`` kept the empty (here persistent) dataset it made
    when our importer raised; ``load_dota`` never did."""
    import os
    import uuid

    import fiftyone as fo

    import fiftyone_samrs as fsr
    from fiftyone_samrs.core.records import FormatError
    from fiftyone_samrs.testing import synthetic

    gt = synthetic.make_dota_tree(tmp_path / "D", n_images=2, n_objects=2, size=(120, 90))
    label = os.path.join(gt["root"], "labelTxt", sorted(os.listdir(
        os.path.join(gt["root"], "labelTxt")))[0])
    with open(label, "a") as f:
        f.write("1 2 3 nan 5 6 7 8 plane 0\n")
    name = "samrs-fromdir-" + uuid.uuid4().hex[:6]
    with pytest.raises(FormatError):
        fo.Dataset.from_dir(gt["root"], dataset_type=fsr.types.DOTADataset, name=name,
                            persistent=True)
    assert not fo.dataset_exists(name)
    mine = fo.Dataset(name)  # the user's own dataset is never deleted
    try:
        with pytest.raises(FormatError):
            mine.add_dir(gt["root"], dataset_type=fsr.types.DOTADataset)
        assert fo.dataset_exists(name) and len(mine) == 0
    finally:
        mine.delete()
