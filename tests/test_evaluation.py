"""Evaluation round trip on a hand-built dataset with known masks.

Image A (40 x 30), class ship, linked by obj_index:
  g0 = 10x10 at (0,0) (touches the border), p0 = 10 wide x 8 high at (0,0):  I=80, U=100 -> 0.8
  g1 = 10x10 at (20,10),                   p1 = 10x10 at (25,10):            I=50, U=150 -> 1/3
  g2 = 5x5 at (30,25), no prediction (missed):                               I=0,  U=25  -> 0
  p2 (obj_index 5, no ground truth) = 5x5 at (0,20): unmatched prediction
  sample: iou_i = (0.8 + 1/3 + 0) / 3 = 0.377777..., iou_p = 130 / 275 = 0.472727...
Image B (50 x 50), class plane, ground truth WITHOUT obj_index (iSAID style) -> matched by IoU:
  g0 = 20x20 at (10,10), p0 (obj_index 3) = 20 wide x 10 high at (10,10): I=200, U=400 -> 0.5
Image C (20 x 20): one ground truth without a mask (skipped, counted), no prediction.
Dataset: mIoU_I = (0.8 + 1/3 + 0 + 0.5) / 4 = 0.408333..., mIoU_P = 330 / 675 = 0.488888...
(the mean of the per-sample iou_i would be (0.3778 + 0.5) / 2 = 0.4389: not the same)
"""


import cv2
import fiftyone as fo
import numpy as np
import pytest

from fiftyone_samrs.core.masks import relative_box
from fiftyone_samrs.evaluating.evaluation import (
    SamrsEvaluationResults,
    evaluate,
    list_runs,
    load_results,
)
from fiftyone_samrs.fiftyone_io import instance_from_label as detection_to_instance


def det(label, x, y, w, h, W, H, mask=True, **attrs):
    d = fo.Detection(label=label, bounding_box=relative_box((x, y, x + w, y + h), W, H), **attrs)
    if mask is True:
        d.mask = np.ones((h, w), dtype=bool)
    elif mask is not None and mask is not False:
        d.mask = mask
    return d


def write_image(path, W, H):
    rng = np.random.default_rng(0)
    cv2.imwrite(str(path), rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    return str(path)


def build(dataset, tmp_path):
    a = fo.Sample(filepath=write_image(tmp_path / "a.png", 40, 30), split="test", all_masked=True)
    a["gt_masks"] = fo.Detections(detections=[
        det("ship", 0, 0, 10, 10, 40, 30, obj_index=0),
        det("ship", 20, 10, 10, 10, 40, 30, obj_index=1),
        det("ship", 30, 25, 5, 5, 40, 30, obj_index=2),
    ])
    a["sam"] = fo.Detections(detections=[
        det("ship", 0, 0, 10, 8, 40, 30, obj_index=0, confidence=0.9),
        det("ship", 25, 10, 10, 10, 40, 30, obj_index=1, confidence=0.8),
        det("ship", 0, 20, 5, 5, 40, 30, obj_index=5, confidence=0.7),
    ])
    b = fo.Sample(filepath=write_image(tmp_path / "b.png", 50, 50), split="train", all_masked=True)
    b["gt_masks"] = fo.Detections(detections=[det("plane", 10, 10, 20, 20, 50, 50)])
    b["sam"] = fo.Detections(detections=[det("plane", 10, 10, 20, 10, 50, 50, obj_index=3)])
    c = fo.Sample(filepath=write_image(tmp_path / "c.png", 20, 20), split="test", all_masked=False)
    c["gt_masks"] = fo.Detections(detections=[det("ship", 1, 1, 5, 5, 20, 20, mask=None, obj_index=0)])
    # no "sam" at all on c: the field is None
    dataset.add_samples([a, b, c])
    return dataset


def test_detection_to_instance_reads_the_crop(tmp_path):
    m = np.zeros((3, 4), dtype=bool)
    m[1, 2] = True
    d = fo.Detection(bounding_box=[5 / 40, 6 / 30, 4 / 40, 3 / 30], mask=m)
    inst = detection_to_instance(d, 40, 30)
    assert (inst.x0, inst.y0) == (5, 6) and inst.mask.shape == (3, 4)
    assert np.argwhere(inst.to_full(30, 40)).tolist() == [[7, 7]]
    # a mask stored on disk (mask_path) reads the same
    path = str(tmp_path / "m.png")
    cv2.imwrite(path, m.astype(np.uint8) * 255)
    d2 = fo.Detection(bounding_box=[5 / 40, 6 / 30, 4 / 40, 3 / 30], mask_path=path)
    assert np.array_equal(detection_to_instance(d2, 40, 30).mask, m)
    # the same from raw database documents (mask bytes or mask_path)
    from bson import ObjectId

    from fiftyone_samrs.fiftyone_io import RawLabel

    raw = RawLabel({"_id": ObjectId(), "bounding_box": d2.bounding_box, "mask_path": path})
    assert np.array_equal(detection_to_instance(raw, 40, 30).mask, m)
    raw = RawLabel({"_id": ObjectId(), "bounding_box": d.bounding_box,
                    "mask": fo.core.utils.serialize_numpy_array(m)})
    assert np.argwhere(detection_to_instance(raw, 40, 30).to_full(30, 40)).tolist() == [[7, 7]]
    # a mask whose size is not the box's is resized to the box (as the App draws it)
    d3 = fo.Detection(bounding_box=[0, 0, 0.5, 0.5], mask=np.ones((2, 2), dtype=bool))
    assert detection_to_instance(d3, 40, 30).mask.shape == (15, 20)
    assert detection_to_instance(fo.Detection(bounding_box=[0, 0, 1, 1]), 4, 4) is None


def test_evaluate_values_and_reload(fo_dataset, tmp_path):
    ds = build(fo_dataset, tmp_path)
    res = evaluate(ds, progress=False)

    assert res.n_samples == 3
    assert res.n_instances == 4
    assert res.n_missed == 1
    assert res.n_unmatched == 1
    assert res.skipped == {"gt_no_mask": 1}
    assert res.miou_i == pytest.approx((0.8 + 1 / 3 + 0 + 0.5) / 4)
    assert res.miou_p == pytest.approx(330 / 675)
    ship, plane = res.per_class["ship"], res.per_class["plane"]
    assert ship["n"] == 3 and ship["missed"] == 1 and ship["unmatched"] == 1
    assert ship["miou_i"] == pytest.approx((0.8 + 1 / 3) / 3)
    assert ship["miou_p"] == pytest.approx(130 / 275)
    assert plane == {"n": 1, "miou_i": 0.5, "miou_p": 0.5, "missed": 0, "unmatched": 0}
    assert sorted(res.gt_areas) == [25, 100, 100, 400]

    # per sample
    a, b, c = list(ds)
    assert a.eval_iou_i == pytest.approx((0.8 + 1 / 3) / 3)
    assert a.eval_iou_p == pytest.approx(130 / 275)
    assert (a.eval_missed, a.eval_unmatched) == (1, 1)
    assert b.eval_iou_i == pytest.approx(0.5) and b.eval_iou_p == pytest.approx(0.5)
    assert c.eval_iou_i is None and c.eval_iou_p is None and c.eval_missed == 0
    # dataset value is over instances, not the mean of the per-sample values
    assert res.miou_i != pytest.approx(np.mean([a.eval_iou_i, b.eval_iou_i]))

    # per predicted detection, linked ids both ways
    p = a.sam.detections
    assert p[0].eval_iou == pytest.approx(0.8)
    assert p[1].eval_iou == pytest.approx(1 / 3)
    assert p[2].eval_iou is None and p[2].eval_id is None
    g = a.gt_masks.detections
    assert p[0].eval_id == g[0].id and g[0].eval_id == p[0].id
    assert g[2].eval_iou == 0.0 and g[2].eval_id is None
    assert b.sam.detections[0].eval_iou == pytest.approx(0.5)
    assert b.sam.detections[0].eval_id == b.gt_masks.detections[0].id
    # the attributes are declared, so the App and filter_labels see them
    assert "sam.detections.eval_iou" in ds.get_field_schema(flat=True)
    assert ds.filter_labels("sam", fo.ViewField("eval_iou") > 0.5).count("sam.detections") == 1

    # the run is listed and survives a reload, loaded from the database
    assert ds.list_evaluations() == ["eval"] and list_runs(ds) == ["eval"]
    name = ds.name
    ds.reload()
    ds2 = fo.load_dataset(name)
    info = ds2.get_evaluation_info("eval")
    assert info.config.pred_field == "sam" and info.config.gt_field == "gt_masks"
    assert info.config.method == "samrs-mask-iou" and info.config.protocol is False
    loaded = ds2.load_evaluation_results("eval", cache=False)
    assert isinstance(loaded, SamrsEvaluationResults)
    assert loaded.miou_i == pytest.approx(res.miou_i)
    assert loaded.miou_p == pytest.approx(res.miou_p)
    assert loaded.per_class["ship"]["miou_p"] == pytest.approx(130 / 275)
    assert loaded.inters == res.inters and loaded.unions == res.unions
    assert loaded.instance_labels.count("ship") == 3
    assert "mIoU_I 40.83" in loaded.summary() and "plane" in loaded.table()
    assert load_results(ds2, "eval").n_missed == 1


def test_overwrite_second_key_and_cleanup(fo_dataset, tmp_path):
    ds = build(fo_dataset, tmp_path)
    evaluate(ds, progress=False)
    # a second key leaves the first alone
    evaluate(ds, eval_key="eval2", progress=False)
    assert ds.list_evaluations() == ["eval", "eval2"]
    # running again under the same key replaces it
    evaluate(ds, progress=False)
    assert ds.list_evaluations() == ["eval", "eval2"]
    ds.delete_evaluation("eval2")
    schema = ds.get_field_schema(flat=True)
    assert "eval2_iou_i" not in schema and "sam.detections.eval2_iou" not in schema
    assert "eval_iou_i" in schema and "sam.detections.eval_iou" in schema


def test_protocol_limits_to_hrsc_test_all_masked(fo_dataset, tmp_path):
    ds = build(fo_dataset, tmp_path)
    res = evaluate(ds, eval_key="paper", protocol=True, progress=False)
    # only image A qualifies (B is train, C is not all_masked)
    assert res.n_samples == 1 and res.n_instances == 3
    assert res.miou_i == pytest.approx((0.8 + 1 / 3) / 3)
    assert ds.get_evaluation_info("paper").config.protocol is True
    assert len(ds.load_evaluation_view("paper")) == 1
    assert ds.count("paper_iou_i") == 1  # None elsewhere


def test_errors_name_the_problem(fo_dataset, tmp_path):
    ds = build(fo_dataset, tmp_path)
    with pytest.raises(ValueError, match="'nope' does not exist"):
        evaluate(ds, pred_field="nope", progress=False)
    with pytest.raises(ValueError, match="valid identifier"):
        evaluate(ds, eval_key="bad key", progress=False)
    ds.delete_sample_field("all_masked")
    with pytest.raises(ValueError, match="all_masked"):
        evaluate(ds, protocol=True, progress=False)


def test_missing_image_names_the_file(fo_dataset, tmp_path):
    missing = str(tmp_path / "gone.png")
    s = fo.Sample(filepath=missing)
    s["gt_masks"] = fo.Detections(detections=[det("ship", 0, 0, 2, 2, 10, 10)])
    s["sam"] = fo.Detections(detections=[det("ship", 0, 0, 2, 2, 10, 10)])
    fo_dataset.add_sample(s)
    with pytest.raises(ValueError, match="gone.png: image size unknown"):
        evaluate(fo_dataset, progress=False)


def test_dota_with_isaid_ground_truth(tmp_path):
    """The second real test bed: DOTA boxes, iSAID masks (generated), boxfill predictions."""
    import uuid

    from fiftyone_samrs.importing.importers import load_dota
    from fiftyone_samrs.importing.isaid_gt import load_isaid_masks
    from fiftyone_samrs.segmenting.pipeline import segment
    from fiftyone_samrs.testing.synthetic import make_dota_tree

    make_dota_tree(tmp_path / "dota", n_images=2, n_objects=5, size=(320, 256), with_isaid=True)
    ds = load_dota(str(tmp_path / "dota"), name="samrs-test-" + uuid.uuid4().hex[:8],
                   persistent=False, progress=False)
    try:
        load_isaid_masks(ds, str(tmp_path / "dota"))
        n_gt = ds.count("gt_masks.detections")
        assert n_gt == 10
        segment(ds, backend="boxfill", prompt="rbox_m", seg_field=None, progress=False)
        res = evaluate(ds, progress=False)
        assert res.n_instances == n_gt and res.n_missed == 0 and res.n_unmatched == 0
        # every prediction is matched to the ground truth of its own object
        for s in ds:
            gt_by_id = {g.id: g for g in s.gt_masks.detections}
            for p in s.sam.detections:
                assert gt_by_id[p.eval_id].obj_index == p.obj_index
        # filled rotated boxes around the drawn shapes: high, but not perfect
        assert 0.6 < res.miou_i < 1.0 and 0.6 < res.miou_p < 1.0
        assert sum(r["n"] for r in res.per_class.values()) == n_gt
    finally:
        ds.delete()


def test_view_filtering_labels_writes_to_the_right_detections(fo_dataset, tmp_path):
    """Values land on the right labels even when the view hides some of them."""
    ds = build(fo_dataset, tmp_path)
    F = fo.ViewField
    view = ds.filter_labels("sam", F("obj_index") != 1, only_matches=False)
    res = evaluate(view, progress=False)
    # image A without p1: g1 is missed now (0.8, 0, 0 for ship) ; plane 0.5
    assert res.n_missed == 2
    assert res.miou_i == pytest.approx((0.8 + 0 + 0 + 0.5) / 4)
    a = ds.first()
    p = a.sam.detections
    assert p[0].eval_iou == pytest.approx(0.8)
    assert getattr(p[1], "eval_iou", None) is None  # hidden by the view: untouched
    assert p[2].eval_iou is None
    g = a.gt_masks.detections
    assert g[1].eval_iou == 0.0 and g[1].eval_id is None
    assert g[0].eval_id == p[0].id


def test_fields_without_masks_are_refused_and_unfinished_runs_warned(fo_dataset, tmp_path,
                                                                     caplog):
    """0.2.0: ``--pred-field hbb`` stored mIoU 0.00, ``--gt-field hbb`` reported
    "0 instances", and a field whose run was still going was scored without a
    word (issue 22, item 8)."""
    import logging

    import fiftyone as fo

    from fiftyone_samrs.core.records import FormatError
    from fiftyone_samrs.evaluating.evaluation import check_has_masks, warn_unfinished_run

    fo_dataset.add_sample(fo.Sample(filepath=str(tmp_path / "a.png"), hbb=fo.Detections(
        detections=[fo.Detection(label="ship", bounding_box=[0.1, 0.1, 0.2, 0.2])])))
    with pytest.raises(FormatError, match="prediction field 'hbb' has no instance masks"):
        check_has_masks(fo_dataset, "hbb", "prediction")
    assert warn_unfinished_run(fo_dataset, "sam") is None  # no run recorded: nothing to say
    from fiftyone_samrs.segmenting.runs import SegmentRunConfig, segment_run_key

    fo_dataset.register_run(segment_run_key("sam"), SegmentRunConfig(status="running",
                                                                      label_field="sam"))
    with caplog.at_level(logging.WARNING):
        assert warn_unfinished_run(fo_dataset, "sam") == 1
    assert "is running: 1 sample of this view is not segmented yet" in caplog.text
