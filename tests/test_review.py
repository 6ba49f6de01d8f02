"""Alternatives for chosen labels (issue 26, first part): ``resegment``
encodes each image once for all its chosen labels and every SAM alternative,
stores them beside the labels, and its ``hbox`` alternative is the mask
``segment`` gave on the same weights."""

import numpy as np
import pytest
import torch
from test_pipeline import H, W, make_dataset

from fiftyone_samrs.evaluating.review import alternatives_field, resegment
from fiftyone_samrs.segmenting.sam.engine import SamEngine
from fiftyone_samrs.segmenting.sam.tiny import build_tiny_sam

#: 20 objects in one image
TWENTY = [[("plane" if k % 2 else "ship",
            (5 + (k % 5) * 22, 4 + (k // 5) * 21, 22 + (k % 5) * 22, 20 + (k // 5) * 21))
           for k in range(20)]]


class _Counting(SamEngine):
    """The SAM engine, counting the images it encodes."""

    encoded = 0

    def encode(self, images):
        self.encoded += len(images)
        return super().encode(images)


@pytest.fixture
def segmented(fo_dataset, tmp_path):
    from fiftyone_samrs.segmenting.pipeline import segment

    torch.manual_seed(0)
    engine = _Counting(build_tiny_sam(0), device="cpu", dtype="fp32")
    ds = make_dataset(fo_dataset, tmp_path, objects=TWENTY)
    segment(ds, engine=engine, seg_dir=str(tmp_path / "seg"), progress=False)
    engine.encoded = 0
    return ds, engine


def test_alternatives_of_twenty_labels_cost_one_encoder_pass(segmented):
    ds, engine = segmented
    names = ["multimask", "hbox", "rhbox", "hbox+cp", "hbox+clip_rbox", "grabcut", "box"]
    res = resegment(ds, alternatives=names, engine=engine, progress=False)
    assert engine.encoded == 1 and res.images == 1
    assert res.labels == 20 and res.alternatives == 20 * 9 and not res.skipped
    sample = ds.first()
    alts = sample[alternatives_field("sam")].detections
    by = {(a.of, a.alternative): a for a in alts}
    for det in sample.sam.detections:
        same = by[(det.id, "hbox")]  # what segment gave: its own mask again
        assert same.confidence == pytest.approx(det.confidence, abs=1e-5)
        assert same.iou_current == pytest.approx(1.0) or det.empty
        assert same.label == det.label
        for j in range(3):
            assert by[(det.id, "multimask_%d" % j)].confidence is not None
        assert by[(det.id, "grabcut")].confidence is None
        assert by[(det.id, "box")].iou_current <= 1.0
    box = by[(sample.sam.detections[0].id, "box")]
    assert box.mask.all()  # the filled box


def test_chosen_labels_only_and_the_others_kept(segmented):
    ds, engine = segmented
    dets = ds.first().sam.detections
    resegment(ds, alternatives=["hbox", "box"], engine=engine, progress=False)
    first = [d.id for d in dets[:2]]
    res = resegment(ds, label_ids=first, alternatives=["multimask"], engine=engine,
                    progress=False)
    assert res.labels == 2 and res.alternatives == 6
    alts = ds.first()[alternatives_field("sam")].detections
    names = {}
    for a in alts:
        names.setdefault(a.of, set()).add(a.alternative)
    assert all(names[i] == {"multimask_0", "multimask_1", "multimask_2"} for i in first)
    assert all(names[d.id] == {"hbox", "box"} for d in dets[2:])  # kept


def test_unknown_alternative_is_a_clear_error(segmented):
    ds, engine = segmented
    with pytest.raises(ValueError, match="unknown|Unknown"):
        resegment(ds, alternatives=["nonsense"], engine=engine, progress=False)


def _fresh_paint(ds, sample):
    """What a full run paints over the sample's final instances (rejected: 255)."""
    from fiftyone_samrs.core.classes import SOTA
    from fiftyone_samrs.core.painting import REJECTED, paint_semantic
    from fiftyone_samrs.fiftyone_io import instance_from_label

    items = [(instance_from_label(d, W, H),
              REJECTED if getattr(d, "review", None) == "rejected" else SOTA.index(d.label))
             for d in sample.sam.detections if not d.empty]
    return paint_semantic(H, W, items)


def test_decisions_are_recorded_and_the_png_repainted(segmented):
    from fiftyone_samrs.core.painting import read_label_png
    from fiftyone_samrs.evaluating.review import decide

    ds, engine = segmented
    dets = ds.first().sam.detections
    resegment(ds, alternatives=["multimask", "box"], engine=engine, progress=False)
    before = read_label_png(ds.first().sam_seg.mask_path)
    a, b, c = dets[0].id, dets[1].id, dets[2].id
    assert decide(ds, [a], "replace", alternative="box", user="ana").decided == 1
    res = decide(ds, [b], "replace")  # the best predicted IoU
    assert res.decided == 1 and res.repainted == 1
    decide(ds, [c], "reject")
    assert decide(ds, [dets[3].id], "accept").repainted == 0  # nothing to repaint
    assert decide(ds, ["nope", "0" * 24], "accept").missing == ["0" * 24, "nope"]

    ds.reload()  # the decisions survive a reload
    s = ds.first()
    got = {d.id: d for d in s.sam.detections}
    assert got[a].review == "replaced" and got[a].review_choice == "box"
    assert got[a].reviewed_by == "ana" and got[a].reviewed_at is not None
    assert got[a].mask.all()  # the filled box
    alts = [x for x in s.sam_alternatives.detections if x.of == b and x.confidence is not None]
    best = max(alts, key=lambda x: x.confidence)
    assert got[b].review_choice == best.alternative and got[b].confidence == best.confidence
    assert (got[b].mask == best.mask).all()
    assert got[c].review == "rejected" and got[dets[3].id].review == "accepted"
    after = read_label_png(s.sam_seg.mask_path)
    np.testing.assert_array_equal(after, _fresh_paint(ds, s))
    assert (after != before).any()
    from fiftyone_samrs.fiftyone_io import instance_from_label

    order = [d.id for d in s.sam.detections]
    later = np.zeros((H, W), bool)
    for d in s.sam.detections[order.index(c) + 1:]:
        later |= instance_from_label(d, W, H).to_full(H, W)
    own = instance_from_label(got[c], W, H).to_full(H, W) & ~later
    assert own.any() and (after[own] == 255).all()  # the rejected instance is ignore


def test_unknown_action_and_missing_alternative(segmented):
    from fiftyone_samrs.evaluating.review import decide

    ds, _ = segmented
    det = ds.first().sam.detections[0]
    with pytest.raises(ValueError, match="action must be one of"):
        decide(ds, [det.id], "delete")
    with pytest.raises(ValueError, match="run resegment"):
        decide(ds, [det.id], "replace", alternative="multimask_0")


def test_exports_leave_rejected_instances_out(segmented, tmp_path):
    import json

    from fiftyone_samrs import export_coco, export_samrs
    from fiftyone_samrs.core.painting import read_label_png
    from fiftyone_samrs.evaluating.review import decide
    from fiftyone_samrs.fiftyone_io import instance_from_label

    ds, _ = segmented
    dets = ds.first().sam.detections
    rejected = dets[4]
    decide(ds, [rejected.id], "reject")
    decide(ds, [dets[0].id], "accept")
    coco = export_coco(ds, str(tmp_path / "coco" / "annotations.json"), classes="SOTA",
                       export_media=False, progress=False)
    anns = json.load(open(tmp_path / "coco" / "annotations.json"))["annotations"]
    assert coco.skipped["rejected in review"] == 1
    kept = [d for d in dets if d.id != rejected.id and not d.empty]
    assert len(anns) == len(kept) == coco.instances
    assert [a.get("review") for a in anns].count("accepted") == 1
    assert sum("review" in a for a in anns) == 1
    samrs = export_samrs(ds, str(tmp_path / "samrs"), classes="SOTA", progress=False)
    assert samrs.skipped["rejected in review"] == 1
    stem = ds.first().filepath.rsplit("/", 1)[1].rsplit(".", 1)[0]
    gray = read_label_png(tmp_path / "samrs" / "gray" / (stem + ".png"))
    later = np.zeros((H, W), bool)
    for d in dets[5:]:
        later |= instance_from_label(d, W, H).to_full(H, W)
    own = instance_from_label(rejected, W, H).to_full(H, W) & ~later
    assert own.any() and (gray[own] == 255).all()
    card = open(tmp_path / "samrs" / "README.md").read()
    assert "rejected in review" in card
    assert "Review decisions on the objects: accepted 1, rejected 1" in card
    stats = json.load(open(tmp_path / "samrs" / "stats.json"))
    assert stats["reviews"] == {"accepted": 1, "rejected": 1}
    assert stats["instances"] == len(kept)


def test_a_resumed_segment_keeps_the_decisions(segmented, tmp_path):
    from fiftyone_samrs.evaluating.review import decide
    from fiftyone_samrs.segmenting.pipeline import segment

    ds, engine = segmented
    det = ds.first().sam.detections[0]
    resegment(ds, label_ids=[det.id], alternatives=["box"], engine=engine, progress=False)
    decide(ds, [det.id], "replace", alternative="box")
    res = segment(ds, engine=engine, seg_dir=str(tmp_path / "seg"), progress=False)
    assert res.samples_skipped == 1
    again = ds.first().sam.detections[0]
    assert again.review == "replaced" and again.mask.all()


def test_overwrite_says_how_many_reviewed_labels_it_replaces(segmented, tmp_path, caplog):
    import logging

    from fiftyone_samrs.evaluating.review import decide
    from fiftyone_samrs.segmenting.pipeline import segment

    ds, engine = segmented
    dets = ds.first().sam.detections
    decide(ds, [dets[0].id, dets[1].id], "accept")
    with caplog.at_level(logging.WARNING, logger="fiftyone_samrs.segmenting.pipeline"):
        segment(ds, engine=engine, seg_dir=str(tmp_path / "seg"), overwrite=True,
                progress=False)
    assert "overwrite=True replaces 2 reviewed labels of 'sam'" in caplog.text
    assert all(getattr(d, "review", None) is None for d in ds.first().sam.detections)


def test_the_cli_verbs_reach_the_same_calls(segmented, capsys):
    from fiftyone_samrs.tools.cli import main

    ds, _ = segmented
    det = ds.first().sam.detections[0]
    assert main(["resegment", ds.name, "--label-id", det.id, "--model", "samrs-tiny",
                 "--device", "cpu", "--alternatives", "multimask,box", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "4 alternatives for 1 labels in 'sam_alternatives' (1 images encoded)" in out
    assert main(["decide", ds.name, det.id]) == 0  # replace by the best predicted IoU
    assert "replace: 1 labels, 1 semantic PNGs repainted" in capsys.readouterr().out
    ds.reload()
    assert ds.first().sam.detections[0].review_choice.startswith("multimask_")
    assert main(["decide", ds.name, "0" * 24, "--action", "reject"]) == 1
    assert "no label %s in 'sam'" % ("0" * 24) in capsys.readouterr().err


def test_resegment_without_flags_uses_the_runs_model(fo_dataset, tmp_path, capsys):
    from test_pipeline import OBJECTS

    from fiftyone_samrs.segmenting.pipeline import segment
    from fiftyone_samrs.tools.cli import main

    ds = make_dataset(fo_dataset, tmp_path, objects=OBJECTS[:1])
    segment(ds, backend="sam", model="samrs-tiny", device="cpu", seg_dir=str(tmp_path / "s"),
            progress=False)
    assert main(["resegment", ds.name, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "24 alternatives for 3 labels in 'sam_alternatives' (1 images encoded)" in out


def test_alternatives_a_source_cannot_give_are_skipped_and_counted(fo_dataset, tmp_path):
    from fiftyone_samrs.segmenting.pipeline import segment

    ds = make_dataset(fo_dataset, tmp_path, objects=TWENTY, with_obb=False)
    segment(ds, backend="boxfill", seg_dir=str(tmp_path / "s"), progress=False)
    res = resegment(ds, alternatives=["rhbox", "box"], backend="boxfill", progress=False)
    assert res.labels == 20 and res.alternatives == 20
    assert res.skipped == {"rhbox: prompt 'rhbox' needs rotated boxes (quads), but none "
                           "were given": 1}


def test_hq_sam_alternatives_skip_multimask_and_say_why(segmented):
    pytest.importorskip("segment_anything_hq", reason="segment-anything-hq is not installed")
    from fiftyone_samrs.segmenting.sam_hq.engine import HqSamEngine
    from fiftyone_samrs.segmenting.sam_hq.models import build_tiny_sam_hq

    ds, _ = segmented
    hq = HqSamEngine(build_tiny_sam_hq(0), device="cpu")
    res = resegment(ds, alternatives=["multimask", "hbox"], engine=hq, progress=False)
    assert res.alternatives == 20
    assert list(res.skipped) == ["multimask: HQ-SAM gives one mask per prompt; SAM's three "
                                 "candidate masks need backend='sam'"]


def test_the_first_pass_replaces_where_the_best_alternative_predicts_more(segmented):
    from fiftyone_samrs.core.painting import read_label_png
    from fiftyone_samrs.evaluating.review import decide

    ds, engine = segmented
    kept = ds.first().sam.detections[0].id
    decide(ds, [kept], "accept", user="ana")  # a reviewer's decision: the first pass keeps it
    before = {d.id: d for d in ds.first().sam.detections}
    res = resegment(ds, alternatives=["multimask"], engine=engine, replace_best=True,
                    progress=False)
    ds.reload()
    s = ds.first()
    alts = s.sam_alternatives.detections
    replaced = 0
    for det in s.sam.detections:
        mine = [a for a in alts if a.of == det.id]
        best = max(mine, key=lambda a: a.confidence)
        old = before[det.id]
        if det.id == kept:
            assert det.review == "accepted" and (det.mask == old.mask).all()
        elif best.confidence > old.confidence:
            replaced += 1
            assert det.review == "auto-replaced" and det.review_choice == best.alternative
            assert det.reviewed_by == "samrs first pass"
            assert (det.mask == best.mask).all() and det.confidence == best.confidence
        else:
            assert getattr(det, "review", None) is None
            assert (det.mask == old.mask).all()
    assert res.replaced == replaced > 0 and res.repainted == 1
    np.testing.assert_array_equal(read_label_png(s.sam_seg.mask_path), _fresh_paint(ds, s))


def _evaluated(ds):
    """``segmented`` with its prompt boxes as ground truth (filled), evaluated
    as ``eval``: ``[(label id, IoU)]``."""
    import fiftyone as fo

    from fiftyone_samrs.evaluating.evaluation import evaluate

    s = ds.first()
    s["gt"] = fo.Detections(detections=[
        fo.Detection(label=d.label, bounding_box=d.bounding_box,
                     mask=np.ones((round(d.bounding_box[3] * H), round(d.bounding_box[2] * W)),
                                  bool)) for d in s.hbb.detections])
    s.save()
    evaluate(ds, pred_field="sam", gt_field="gt", eval_key="eval", progress=False)
    return [(d.id, d.eval_iou) for d in ds.first().sam.detections]


def test_review_progress_counts_flagged_labels_and_decisions(segmented):
    from fiftyone_samrs.evaluating.review import decide, review_progress

    ds, engine = segmented
    ious = _evaluated(ds)
    # one label of 20 replaced raises the sample's mean IoU by 0.05 at most:
    # the sample stays in the low-IoU view
    t = float(np.mean([v for _, v in ious])) + 0.1
    flagged = [i for i, v in ious if v < t]
    assert len(flagged) >= 4 and ds.first().eval_iou_i < t - 0.05
    p = review_progress(ds, "eval", threshold=t)
    assert (p.samples, p.flagged, p.to_review, p.reviewed) == (1, len(flagged), len(flagged), 0)
    assert p.next_sample == ds.first().id and p.next_labels == flagged
    resegment(ds, label_ids=flagged[:2], alternatives=["box"], engine=engine, progress=False)
    decide(ds, flagged[:1], "accept")
    decide(ds, flagged[1:2], "replace", alternative="box")
    decide(ds, flagged[2:3], "reject")
    p = review_progress(ds, "eval", threshold=t)
    assert p.decisions == {"accepted": 1, "replaced": 1, "rejected": 1} and p.reviewed == 3
    assert p.to_review == len(flagged) - 3 and p.next_labels == flagged[3:]
    assert "3 reviewed (1 accepted, 1 replaced, 1 rejected)" in p.to_markdown()
    decide(ds, flagged[3:], "accept")
    p = review_progress(ds, "eval", threshold=t)
    assert p.to_review == 0 and p.next_sample is None
    # re-evaluating updates which labels are flagged: the filled box is the GT
    _evaluated(ds)
    p = review_progress(ds, "eval", threshold=t)
    assert p.flagged == len(flagged) - 1 and p.decisions["replaced"] == 1


def test_stats_count_the_decisions(segmented):
    from fiftyone_samrs.evaluating.review import decide
    from fiftyone_samrs.evaluating.stats import dataset_stats

    ds, _ = segmented
    dets = [d for d in ds.first().sam.detections if not d.empty]
    whole = dataset_stats(ds, "sam", progress=False)
    decide(ds, [dets[0].id], "reject")
    decide(ds, [dets[1].id, dets[2].id], "accept")
    st = dataset_stats(ds, "sam", progress=False)
    assert st.reviews == {"rejected": 1, "accepted": 2}
    assert st.sizes.size == whole.sizes.size - 1  # the rejected instance is left out
    assert st.pixels.sum() == whole.pixels.sum() - dets[0].area
    assert st.to_dict()["reviews"] == {"rejected": 1, "accepted": 2}
    assert "1 rejected in review left out" in st.to_markdown()


def test_resegment_says_which_model_to_pass_when_the_run_recorded_none(segmented):
    ds, _ = segmented  # segmented with an engine object: no model name, no checkpoint
    with pytest.raises(ValueError, match="the run that wrote 'sam' recorded no model name or "
                                         "checkpoint.*pass model="):
        resegment(ds, progress=False)


def test_the_cli_first_pass(fo_dataset, tmp_path, capsys):
    from test_pipeline import OBJECTS

    from fiftyone_samrs.segmenting.pipeline import segment
    from fiftyone_samrs.tools.cli import main

    ds = make_dataset(fo_dataset, tmp_path, objects=OBJECTS[:1])
    segment(ds, backend="sam", model="samrs-tiny", device="cpu", seg_dir=str(tmp_path / "s"),
            progress=False)
    assert main(["resegment", ds.name, "--replace-best", "--no-progress"]) == 0
    out = capsys.readouterr().out
    ds.reload()
    auto = [d for d in ds.first().sam.detections if getattr(d, "review", None) == "auto-replaced"]
    assert auto, "samrs-tiny's multimask candidates beat some of its single masks here"
    assert "first pass: %d labels replaced" % len(auto) in out
