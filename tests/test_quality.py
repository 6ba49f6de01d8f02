"""Quality signals on hand-made masks, the suspicious rule, and the QA views."""

import cv2
import fiftyone as fo
import numpy as np
import pytest

from fiftyone_samrs.core.masks import polygon_fraction, relative_box
from fiftyone_samrs.core.records import InstanceMask
from fiftyone_samrs.evaluating.evaluation import evaluate
from fiftyone_samrs.evaluating.qa import low_iou_view, save_qa_views, suspicious_view, worst_samples
from fiftyone_samrs.evaluating.quality import (
    QualityThresholds,
    compute_quality,
    instance_signals,
    suspicious_reasons,
)
from fiftyone_samrs.fiftyone_io import run_key


def rect(x0, y0, w, h):
    return InstanceMask(np.ones((h, w), dtype=bool), x0, y0)


def test_signals_of_a_perfect_mask():
    # 10x10 mask exactly filling the prompt box and the rotated box
    quad = np.array([[10, 10], [20, 10], [20, 20], [10, 20]], float)
    s = instance_signals(rect(10, 10, 10, 10), (10, 10, 20, 20), quad)
    assert s == {"q_area": 100, "q_area_ratio": 1.0, "q_box_iou": 1.0, "q_in_rbox": 1.0}


def test_signals_of_partial_and_leaking_masks():
    # upper half of the box: area 50 -> ratio 0.5; tight box 10x5 vs 10x10 -> IoU 0.5
    s = instance_signals(rect(10, 10, 10, 5), (10, 10, 20, 20))
    assert s["q_area"] == 50 and s["q_area_ratio"] == 0.5 and s["q_box_iou"] == 0.5
    assert s["q_in_rbox"] is None  # no rotated box
    # 12x12 mask around a 10x10 box: ratio 144/100, box IoU 100/144
    s = instance_signals(rect(9, 9, 12, 12), (10, 10, 20, 20))
    assert s["q_area_ratio"] == pytest.approx(1.44) and s["q_box_iou"] == pytest.approx(100 / 144)
    # rotated box covering the left half of the mask: pixel centres of columns
    # 10..14 (10.5 .. 14.5) are inside x <= 15, columns 15..19 are not: 50 / 100
    left = np.array([[10, 10], [15, 10], [15, 20], [10, 20]], float)
    assert polygon_fraction(rect(10, 10, 10, 10), left) == 0.5
    # a diamond inscribed in a 20x20 mask covers about half of it
    diamond = np.array([[10, 0], [20, 10], [10, 20], [0, 10]], float)
    assert polygon_fraction(rect(0, 0, 20, 20), diamond) == pytest.approx(0.5, abs=0.06)


def test_signals_of_an_empty_mask_and_degenerate_box():
    empty = InstanceMask(np.zeros((5, 5), dtype=bool), 3, 3)
    s = instance_signals(empty, (3, 3, 8, 8), np.array([[3, 3], [8, 3], [8, 8], [3, 8]], float))
    assert s == {"q_area": 0, "q_area_ratio": 0.0, "q_box_iou": 0.0, "q_in_rbox": None}
    s = instance_signals(rect(0, 0, 2, 2), (5, 5, 5, 9))  # zero-area prompt box
    assert s["q_area_ratio"] is None and s["q_box_iou"] is None


def test_suspicious_rule_and_thresholds():
    good = {"q_area_ratio": 0.7, "q_box_iou": 0.9, "q_in_rbox": 0.95}
    assert suspicious_reasons(good, 0.95, 0.95) == []
    assert suspicious_reasons(good, 0.5, 0.95) == ["low_confidence"]
    assert suspicious_reasons(good, 0.95, float("nan")) == []  # NaN never fires
    bad = {"q_area_ratio": 1.3, "q_box_iou": 0.4, "q_in_rbox": 0.5}
    assert suspicious_reasons(bad, 0.9, 0.5, empty=True) == [
        "empty", "low_stability", "large_area", "low_box_iou", "outside_rbox"]
    t = QualityThresholds.from_any({"min_box_iou": None, "max_area_ratio": 2.0})
    assert suspicious_reasons(bad, 0.9, 0.9, thresholds=t) == ["outside_rbox"]
    with pytest.raises(ValueError, match="unknown quality thresholds: nope"):
        QualityThresholds.from_any({"nope": 1})


def _image(path, W, H):
    cv2.imwrite(str(path), np.full((H, W, 3), 90, np.uint8))
    return str(path)


def _rel(x0, y0, x1, y1, W, H):
    return relative_box((x0, y0, x1, y1), W, H)


def _quality_dataset(ds, tmp_path):
    W, H = 100, 80
    boxes = [(10, 10, 20, 20), (40, 10, 50, 20), (10, 40, 20, 50), (40, 40, 50, 50)]
    hbb = fo.Detections(detections=[
        fo.Detection(label="ship", bounding_box=_rel(*b, W, H), obj_index=i) for i, b in enumerate(boxes)])
    obb = fo.Polylines(polylines=[
        fo.Polyline(label="ship", closed=True, filled=True, obj_index=i,
                    points=[[[x0 / W, y0 / H], [x1 / W, y0 / H], [x1 / W, y1 / H], [x0 / W, y1 / H]]])
        for i, (x0, y0, x1, y1) in enumerate(boxes)])

    def pred(i, x0, y0, w, h, conf, stab, empty=False, link="source_id"):
        mask = np.zeros((h, w), bool) if empty else np.ones((h, w), bool)
        d = fo.Detection(label="ship", bounding_box=_rel(x0, y0, x0 + w, y0 + h, W, H), mask=mask,
                         confidence=conf, stability=stab, obj_index=i, empty=empty, prompt="hbox")
        if link == "source_id":
            d["source_id"] = hbb.detections[i].id
        return d

    sam = fo.Detections(detections=[
        pred(0, 10, 10, 10, 10, 0.95, 0.97),                     # perfect
        pred(1, 40, 10, 10, 10, 0.50, 0.97, link="obj_index"),   # low confidence
        pred(2, 10, 40, 10, 10, 0.90, 0.90, empty=True),         # empty
        pred(3, 39, 39, 12, 12, 0.90, 0.90),                     # leaks: ratio 1.44
    ])
    s1 = fo.Sample(filepath=_image(tmp_path / "q1.png", W, H), hbb=hbb, obb=obb, sam=sam)
    s2 = fo.Sample(filepath=_image(tmp_path / "q2.png", W, H), hbb=fo.Detections(),
                   sam=fo.Detections())
    ds.add_samples([s1, s2])
    return ds


def test_compute_quality_stores_signals_and_worst_values(fo_dataset, tmp_path):
    ds = _quality_dataset(fo_dataset, tmp_path)
    rep = compute_quality(ds, progress=False)
    assert (rep.samples, rep.instances, rep.suspicious, rep.flagged_samples) == (2, 4, 3, 1)
    assert rep.reasons == {"low_confidence": 1, "empty": 1, "small_area": 1, "low_box_iou": 1,
                           "large_area": 1, "outside_rbox": 1}
    s1, s2 = list(ds)
    d = s1.sam.detections
    assert [x.suspicious for x in d] == [False, True, True, True]
    assert d[0].q_reasons == "" and d[1].q_reasons == "low_confidence"
    assert d[2].q_reasons == "empty,small_area,low_box_iou"
    assert d[3].q_reasons == "large_area,outside_rbox"  # 100/144 of it inside
    # the obj_index link finds the prompt box of d[1] as well as the source_id link of d[0]
    assert d[0].q_box_iou == 1.0 and d[1].q_box_iou == 1.0 and d[1].q_in_rbox == 1.0
    assert d[3].q_area_ratio == pytest.approx(1.44) and d[3].q_in_rbox == pytest.approx(100 / 144)
    assert d[2].q_area == 0 and d[2].q_in_rbox is None
    assert s1.q_min_confidence == 0.5 and s1.q_min_stability == 0.9
    assert s1.q_min_area_ratio == 0.0 and s1.q_max_area_ratio == pytest.approx(1.44)
    assert s1.q_min_box_iou == 0.0 and s1.q_min_in_rbox == pytest.approx(100 / 144)
    assert (s1.q_suspicious, s1.q_empty) == (3, 1)
    assert s2.q_suspicious == 0 and s2.q_min_confidence is None
    # the call is recorded as a run with its thresholds
    info = ds.get_run_info(run_key("sam", prefix="quality_"))
    assert info.config.thresholds["min_confidence"] == 0.75
    assert ds.load_run_results(run_key("sam", prefix="quality_")).suspicious == 3
    # other thresholds, same data: recomputed and replaced
    rep2 = compute_quality(ds, thresholds={"min_confidence": 0.4, "max_area_ratio": 2.0,
                                                 "min_in_rbox": 0.6},
                           progress=False)
    assert rep2.suspicious == 1
    assert ds.first().q_suspicious == 1


def test_qa_views_and_tags(fo_dataset, tmp_path):
    ds = _quality_dataset(fo_dataset, tmp_path)
    with pytest.raises(ValueError, match="nothing to save"):
        save_qa_views(ds)
    compute_quality(ds, progress=False)
    # ground truth for an evaluation: s1 gets the box masks, s2 one mask it missed
    W, H = 100, 80
    s1, s2 = list(ds)
    s1["gt_masks"] = fo.Detections(detections=[
        fo.Detection(label="ship", bounding_box=h.bounding_box, mask=np.ones((10, 10), bool),
                     obj_index=h.obj_index) for h in s1.hbb.detections])
    s1.save()
    s2["gt_masks"] = fo.Detections(detections=[
        fo.Detection(label="ship", bounding_box=_rel(0, 0, 5, 5, W, H), mask=np.ones((5, 5), bool))])
    s2.save()
    evaluate(ds, progress=False)
    # s1: IoUs 1, 1, 0 (empty), 100/144 -> mean 0.6736 ; s2: 0 (missed)
    assert ds.first().eval_iou_i == pytest.approx((2 + 100 / 144) / 4)
    saved = save_qa_views(ds, low_iou=0.7)
    assert saved == {"low_iou": 2, "low_iou_eval": 2, "suspicious_masks": 1,
                     "worst_samples": 2}
    assert set(ds.list_saved_views()) == {"low_iou", "low_iou_eval", "suspicious_masks",
                                          "worst_samples"}
    low = ds.load_saved_view("low_iou")
    assert low.values("filepath") == [s2.filepath, s1.filepath]  # worst first
    assert ds.load_saved_view("suspicious_masks").values("id") == [s1.id]
    assert ds.count_sample_tags() == {"low_iou": 2, "suspicious": 1}
    # a stricter threshold re-tags: only s2 stays low
    saved = save_qa_views(ds, low_iou=0.5)
    assert saved["low_iou"] == 1 and ds.count_sample_tags()["low_iou"] == 1
    assert ds.match_tags("low_iou").values("id") == [s2.id]
    assert worst_samples(ds, n=1).values("id") == [s2.id]
    assert len(low_iou_view(ds, threshold=0.01)) == 1 and len(suspicious_view(ds)) == 1
    # without evaluation fields the worst samples come from the quality signals
    ds.delete_evaluation("eval")
    assert worst_samples(ds, n=5).values("id") == [s1.id, s2.id]
