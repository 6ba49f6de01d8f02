"""samrs-tiny through the FiftyOne side, where meaningful masks matter: the prompt
study's shape on a generated HRSC2016 tree, and the quality signals separating good
masks from bad ones on a generated DOTA tree (scenes of seeds training never saw).

samrs-tiny is a stand-in trained on generated scenes, for demos and tests, not for
real data: the orderings checked here are those it reproduces (see the study test).
"""

import uuid

import fiftyone as fo
import numpy as np
import pytest


@pytest.fixture(scope="module")
def engine():
    import torch

    from fiftyone_samrs.segmenting.sam.engine import SamEngine
    from fiftyone_samrs.segmenting.sam.samrs_tiny import load_samrs_tiny

    torch.set_num_threads(1)
    return SamEngine(load_samrs_tiny(device="cpu"), device="cpu", dtype="fp32")


@pytest.fixture(scope="module")
def hrsc_ds(tmp_path_factory):
    from fiftyone_samrs.importing.importers import load_hrsc
    from fiftyone_samrs.testing.synthetic import make_hrsc_tree

    root = tmp_path_factory.mktemp("hrsc")
    make_hrsc_tree(root, n_images=4, n_objects=4, size=(800, 600), seed=31)
    ds = load_hrsc(str(root), name="samrs-test-" + uuid.uuid4().hex[:8], persistent=False,
                   progress=False)
    yield ds
    ds.delete()


def test_prompt_study_shape(hrsc_ds, engine, tmp_path):
    """Which of the paper's orderings (Table 1, SAM ViT-H on HRSC2016) samrs-tiny
    reproduces on generated HRSC scenes:

    Measured with the shipped checkpoint (mIoU_I): CP 69.0, H-Box 75.0, H-Box+CP 75.6,
    RH-Box 75.0, H-Box-M 78.8, R-Box-M 81.7, RH-Box-M 78.3, boxfill 50.9.

    - reproduced: H-Box and RH-Box are close (paper 90.0 vs 88.9), and adding the
      centre point to a box changes little (paper 90.0 vs 90.1);
    - reproduced: a box prompt beats filling the box on these ship scenes;
    - reproduced in order, not in size: the box beats the centre point (75.0 vs 69.0;
      paper: H-Box 90 vs CP 16): on generated ships (one salient object around the
      centre) the point alone does well;
    - NOT reproduced: box prompts far better than mask prompts (paper: H-Box-M 40.5,
      R-Box-M 65.5). samrs-tiny was trained with the box-region mask prompts and reads
      them better than boxes; SAM never saw such prompts in training.
    """
    from fiftyone_samrs.evaluating.study import prompt_study

    configs = ["cp", "hbox", "hbox+cp", "rhbox", "hbox_m", "rbox_m", "rhbox_m", "boxfill",
               "boxfill:rbox_m"]
    res = prompt_study(hrsc_ds, engine=engine, configs=configs, out_dir=str(tmp_path),
                       progress=False)
    v = {r.config: r.miou_i for r in res.rows}
    assert res.instances == 16
    assert abs(v["hbox+cp"] - v["hbox"]) < 0.08
    assert abs(v["rhbox"] - v["hbox"]) < 0.05
    # better than filling the box, the naive answer to the same prompt
    assert v["hbox"] > v["boxfill"] + 0.05
    assert v["hbox"] > v["cp"] + 0.03
    assert "hbox" in (tmp_path / "study.md").read_text()


@pytest.fixture(scope="module")
def dota_ds(tmp_path_factory):
    from fiftyone_samrs.importing.importers import load_dota
    from fiftyone_samrs.importing.isaid_gt import load_isaid_masks
    from fiftyone_samrs.testing.synthetic import make_dota_tree

    root = tmp_path_factory.mktemp("dota")
    make_dota_tree(root, n_images=3, n_objects=15, size=(1024, 768), seed=32, with_isaid=True)
    ds = load_dota(str(root), name="samrs-test-" + uuid.uuid4().hex[:8], version="1.0",
                   progress=False)
    load_isaid_masks(ds, str(root), gt_field="gt_masks")
    # bad prompts: every box shifted by 60% of its size off its object
    rng = np.random.default_rng(0)
    for s in ds:
        dets = []
        for d in s.hbb.detections:
            x, y, w, h = d.bounding_box
            dx, dy = rng.choice([-0.6, 0.6], size=2)
            dets.append(fo.Detection(label=d.label, obj_index=d.obj_index,
                                     bounding_box=[x + dx * w, y + dy * h, w, h]))
        s["shifted"] = fo.Detections(detections=dets)
        s.save()
    yield ds
    ds.delete()


def _quality_rows(dota_ds, engine):
    from fiftyone_samrs.evaluating.evaluation import evaluate
    from fiftyone_samrs.evaluating.quality import compute_quality
    from fiftyone_samrs.segmenting.pipeline import segment

    if "rows" in _CACHE:
        return _CACHE["rows"]
    ious, confs, suspicious = [], [], []
    for field, boxes in (("good", "hbb"), ("bad", "shifted")):
        segment(dota_ds, engine=engine, box_field=boxes, label_field=field, seg_field=None,
                progress=False)
        evaluate(dota_ds, pred_field=field, gt_field="gt_masks", eval_key="ev_" + field,
                 progress=False)
        compute_quality(dota_ds, pred_field=field, box_field="hbb", obb_field="obb")
        for s in dota_ds:
            for d in s[field].detections:
                if d["ev_%s_iou" % field] is None:
                    continue
                ious.append(d["ev_%s_iou" % field])
                confs.append(d.confidence)
                suspicious.append(bool(d.suspicious))
    _CACHE["rows"] = np.array(ious), np.array(confs), np.array(suspicious)
    return _CACHE["rows"]


_CACHE = {}


def test_quality_signals_separate_good_and_bad_masks(dota_ds, engine):
    """The predicted IoU (confidence) ranks good masks above bad ones. Measured with the
    shipped checkpoint: 24 masks with IoU > 0.6, 41 below 0.3, AUC 0.95."""
    ious, confs, _ = _quality_rows(dota_ds, engine)
    good, bad = ious > 0.6, ious < 0.3
    assert good.sum() > 10 and bad.sum() > 10
    auc = (confs[good][:, None] > confs[bad][None, :]).mean()
    assert auc > 0.85, auc


def test_suspicious_rule_flags_bad_masks_more_than_good_ones(dota_ds, engine):
    """The rule's default thresholds are SAM's scale (predicted IoU >= 0.75,
    stability >= 0.85); samrs-tiny predicts its own, lower IoUs (median 0.47),
    so with the defaults the rule fires on most of its masks, good ones
    included (measured: 90% of all, every bad one, 16 of the 24 good ones).
    With the confidence threshold at this model's scale and the stability rule
    off, the rule separates them (measured: 40 of the 41 bad masks flagged,
    7 of the 24 good ones)."""
    from fiftyone_samrs.evaluating.quality import QualityThresholds, suspicious_reasons

    ious, _, defaults = _quality_rows(dota_ds, engine)
    good, bad = ious > 0.6, ious < 0.3
    # SAM-scale thresholds on a model of another scale: most masks, good ones too
    assert defaults[bad].all() and defaults.mean() > 0.8 and defaults[good].mean() > 0.4
    scaled = QualityThresholds(min_confidence=0.45, min_stability=None)
    flags = []
    for field in ("good", "bad"):
        for s in dota_ds:
            for d in s[field].detections:
                if d["ev_%s_iou" % field] is None:
                    continue
                signals = {k: d[k] for k in ("q_area_ratio", "q_box_iou", "q_in_rbox")}
                flags.append(bool(suspicious_reasons(signals, d.confidence, d.stability,
                                                     bool(d.empty), scaled)))
    flags = np.array(flags)
    assert flags[bad].mean() > flags[good].mean() + 0.25, (flags[bad].mean(), flags[good].mean())
