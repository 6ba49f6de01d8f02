"""Mask-quality signals where no ground truth exists (most of SAMRS).

For every predicted instance of ``pred_field`` (default ``sam``),
:func:`compute_quality` stores cheap signals that flag masks worth a look.
Per instance (attributes of the predicted Detection):

============== ==========================================================
``confidence`` SAM's predicted IoU (written by the pipeline; read as is)
``stability``  stability score: IoU of the masks thresholded at logit
               -1 and +1 (written by the pipeline; read as is, never
               recomputed)
``q_area``     mask area in pixels
``q_area_ratio`` mask area / prompt box area. A ship in an H-Box fills
               about 0.4-0.9 of it; near 0 means SAM segmented a fragment,
               above 1 means the mask leaks out of the box
``q_box_iou``  IoU of the mask's tight box and the prompt box: low when the
               mask covers only part of the object or spills over
``q_in_rbox``  fraction of the mask's pixels inside the rotated box (only
               where the object has one in ``obb_field``, else None): low
               when the mask bleeds into the background or a neighbour
``suspicious`` True when any rule below fires
``q_reasons``  the rules that fired, comma-separated (e.g.
               ``"low_confidence,low_box_iou"``), "" when none
============== ==========================================================

The prompt box is the ``box_field`` Detection the prediction was made from
(``source_id`` = its id; else the same ``obj_index``); the rotated box is the
``obb_field`` Polyline with the same ``obj_index``.

Per sample, the worst instance's value of each signal:
``q_min_confidence``, ``q_min_stability``, ``q_min_area_ratio``,
``q_max_area_ratio``, ``q_min_box_iou``, ``q_min_in_rbox`` (None where no
instance has the signal), plus ``q_suspicious`` (number of suspicious
instances) and ``q_empty`` (number of empty masks).

Suspicious rule (:class:`QualityThresholds`, every threshold configurable;
set one to None to switch the rule off): an instance is suspicious when its
mask is ``empty``, or ``confidence < 0.75`` (``low_confidence``), or
``stability < 0.85`` (``low_stability``), or ``q_area_ratio < 0.15``
(``small_area``) or ``> 1.2`` (``large_area``), or ``q_box_iou < 0.5``
(``low_box_iou``), or ``q_in_rbox < 0.8`` (``outside_rbox``). NaN signals
(e.g. the stability of a GrabCut mask) never fire a rule.

The thresholds and counts of each call are recorded as a FiftyOne run
``quality_<pred_field>`` (``dataset.list_runs()``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from fiftyone_samrs.core import geometry
from fiftyone_samrs.core.masks import polygon_fraction
from fiftyone_samrs.core.records import InstanceMask
from fiftyone_samrs.core.text import plural

#: per-sample fields written by :func:`compute_quality`
SAMPLE_FIELDS = ("q_min_confidence", "q_min_stability", "q_min_area_ratio", "q_max_area_ratio",
                 "q_min_box_iou", "q_min_in_rbox", "q_suspicious", "q_empty")
#: per-instance attributes written by :func:`compute_quality`
INSTANCE_FIELDS = ("q_area", "q_area_ratio", "q_box_iou", "q_in_rbox", "suspicious", "q_reasons")


@dataclass
class QualityThresholds:
    """Thresholds of the suspicious rule (None switches a rule off)."""

    min_confidence: Optional[float] = 0.75
    min_stability: Optional[float] = 0.85
    min_area_ratio: Optional[float] = 0.15
    max_area_ratio: Optional[float] = 1.2
    min_box_iou: Optional[float] = 0.5
    min_in_rbox: Optional[float] = 0.8
    flag_empty: bool = True

    @classmethod
    def from_any(cls, value) -> "QualityThresholds":
        """From None (defaults), a dict of overrides, or an instance."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = set(value) - set(cls.__dataclass_fields__)
            if unknown:
                raise ValueError("unknown quality thresholds: %s (known: %s)"
                                 % (", ".join(sorted(unknown)),
                                    ", ".join(cls.__dataclass_fields__)))
            return cls(**value)
        raise TypeError("thresholds must be None, a dict or QualityThresholds")


# --------------------------------------------------------------------------
# pure signals


def _finite(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def instance_signals(
    mask: InstanceMask, prompt_box: Optional[Sequence[float]], quad: Optional[np.ndarray] = None
) -> Dict[str, Optional[float]]:
    """The geometric signals of one predicted mask.

    Args:
        mask: the predicted mask (crop + offset, source pixels)
        prompt_box: the prompt box ``(x0, y0, x1, y1)``, or None
        quad: the object's rotated box ``(4, 2)``, or None

    Returns:
        ``{"q_area", "q_area_ratio", "q_box_iou", "q_in_rbox"}``: area in
        pixels; the others None where they cannot be measured (no prompt box,
        zero-area box, no quad, or an empty mask for ``q_in_rbox``)
    """
    area = mask.area
    tb = mask.tight_box()
    ratio = biou = None
    if prompt_box is not None:
        barea = geometry.box_area(prompt_box)
        if barea > 0:
            ratio = area / barea
            biou = geometry.box_iou(tb, prompt_box) if tb is not None else 0.0
    in_rbox = None
    if quad is not None and np.isfinite(np.asarray(quad, dtype=np.float64)).all():
        in_rbox = polygon_fraction(mask, quad)
    return {"q_area": area, "q_area_ratio": ratio, "q_box_iou": biou, "q_in_rbox": in_rbox}


def suspicious_reasons(signals: Dict[str, Optional[float]], confidence=None, stability=None,
                       empty: bool = False, thresholds: Optional[QualityThresholds] = None) -> List[str]:
    """The names of the suspicious rules an instance fires (see the module doc)."""
    t = thresholds or QualityThresholds()
    reasons = []
    if empty and t.flag_empty:
        reasons.append("empty")
    checks = (
        ("low_confidence", confidence, t.min_confidence, -1),
        ("low_stability", stability, t.min_stability, -1),
        ("small_area", signals.get("q_area_ratio"), t.min_area_ratio, -1),
        ("large_area", signals.get("q_area_ratio"), t.max_area_ratio, +1),
        ("low_box_iou", signals.get("q_box_iou"), t.min_box_iou, -1),
        ("outside_rbox", signals.get("q_in_rbox"), t.min_in_rbox, -1),
    )
    for name, value, thr, sign in checks:
        if thr is None or not _finite(value):
            continue
        if (sign < 0 and value < thr) or (sign > 0 and value > thr):
            reasons.append(name)
    return reasons


def _worst(values, fn):
    vals = [float(v) for v in values if _finite(v)]
    return fn(vals) if vals else None


# --------------------------------------------------------------------------
# FiftyOne boundary


@dataclass
class QualityReport:
    """What :func:`compute_quality` found.

    Attributes:
        pred_field: the field scored
        samples: samples scored
        instances: predicted instances scored
        suspicious: suspicious instances
        flagged_samples: samples with at least one suspicious instance
        reasons: suspicious instances by rule
        thresholds: the thresholds used
    """

    pred_field: str
    samples: int = 0
    instances: int = 0
    suspicious: int = 0
    flagged_samples: int = 0
    reasons: Counter = field(default_factory=Counter)
    thresholds: Dict[str, object] = field(default_factory=dict)

    def summary(self) -> str:
        lines = ["quality of %r: %s, %s, %s in %s"
                 % (self.pred_field, plural(self.samples, "sample"),
                    plural(self.instances, "instance"),
                    plural(self.suspicious, "suspicious instance"),
                    plural(self.flagged_samples, "sample"))]
        if self.reasons:
            lines.append("by rule: " + ", ".join("%s %d" % kv for kv in sorted(self.reasons.items())))
        lines.append("thresholds: " + ", ".join("%s=%s" % kv for kv in self.thresholds.items()))
        return "\n".join(lines)


def compute_quality(
    sample_collection,
    pred_field: str = "sam",
    *,
    box_field: str = "hbb",
    obb_field: Optional[str] = "obb",
    thresholds=None,
    progress: bool = True,
    batch_size: int = 256,
) -> QualityReport:
    """Computes and stores the quality signals and the suspicious flags.

    See the module docstring for the signals, the fields written and the
    rule.

    Args:
        sample_collection: a dataset or view with predictions
        pred_field: the predicted Detections field (masks)
        box_field: the prompt boxes (Detections)
        obb_field: the rotated boxes (Polylines), or None; ignored when the
            collection has no such field
        thresholds: None (defaults), a dict of overrides (e.g.
            ``{"min_confidence": 0.8}``) or :class:`QualityThresholds`
        progress: show a progress bar
        batch_size: samples per database round trip

    Returns:
        a :class:`QualityReport`
    """
    import fiftyone as fo
    import fiftyone.core.runs as fors

    from fiftyone_samrs.evaluating.loop import SampleRow, for_each_sample
    from fiftyone_samrs.fiftyone_io import check_label_field, declare_fields, run_key

    t = QualityThresholds.from_any(thresholds)
    check_label_field(sample_collection, pred_field, fo.Detections, "prediction")
    has_box = bool(box_field) and sample_collection.has_field(box_field)
    has_obb = bool(obb_field) and sample_collection.has_field(obb_field)
    float_, int_ = fo.FloatField, fo.IntField
    declare_fields(sample_collection, dict(
        [(f, int_ if f in ("q_suspicious", "q_empty") else float_) for f in SAMPLE_FIELDS]
        + [("%s.detections.%s" % (pred_field, f), t) for f, t in (
            ("q_area", int_), ("q_area_ratio", float_), ("q_box_iou", float_),
            ("q_in_rbox", float_), ("suspicious", fo.BooleanField),
            ("q_reasons", fo.StringField))]
    ))
    fields = [pred_field] + ([box_field] if has_box else []) + ([obb_field] if has_obb else [])
    report = QualityReport(pred_field, thresholds=asdict(t))

    def compute(row: SampleRow):
        preds = row.labels[pred_field]
        boxes = row.labels[box_field] if has_box else []
        box_by_id = {b.id: b for b in boxes}
        box_by_index = {}
        for b in boxes:
            box_by_index.setdefault(b.get("obj_index"), b)
        quad_by_index = {}
        for pl in row.labels[obb_field] if has_obb else []:
            pts = pl.points[0] if pl.points else []
            if len(pts) >= 3:
                quad_by_index.setdefault(
                    pl.get("obj_index"), geometry.relative_to_points(pts, row.width, row.height))
        per_label: Dict[str, dict] = {}
        worst = {f: [] for f in ("q_area_ratio", "q_box_iou", "q_in_rbox")}
        confs, stabs, n_susp, n_empty = [], [], 0, 0
        for d, inst in zip(preds, row.instances(pred_field)):
            if inst is None:
                inst = InstanceMask(np.zeros((0, 0), dtype=bool), 0, 0)
            src = box_by_id.get(d.get("source_id"))
            if src is None:
                src = box_by_index.get(d.get("obj_index"))
            pbox = (geometry.relative_to_box(src.bounding_box, row.width, row.height)
                    if src is not None else None)
            sig = instance_signals(inst, pbox, quad_by_index.get(d.get("obj_index")))
            empty = bool(d.get("empty", False)) or sig["q_area"] == 0
            conf, stab = d.confidence, d.get("stability")
            reasons = suspicious_reasons(sig, conf, stab, empty, t)
            per_label[d.id] = dict(sig, suspicious=bool(reasons), q_reasons=",".join(reasons))
            for f in worst:
                worst[f].append(sig[f])
            report.reasons.update(reasons)
            n_susp += bool(reasons)
            n_empty += empty
            confs.append(conf)
            stabs.append(stab)
        report.instances += len(preds)
        report.suspicious += n_susp
        report.flagged_samples += n_susp > 0
        report.samples += 1
        return ({
            "q_min_confidence": _worst(confs, min),
            "q_min_stability": _worst(stabs, min),
            "q_min_area_ratio": _worst(worst["q_area_ratio"], min),
            "q_max_area_ratio": _worst(worst["q_area_ratio"], max),
            "q_min_box_iou": _worst(worst["q_box_iou"], min),
            "q_min_in_rbox": _worst(worst["q_in_rbox"], min),
            "q_suspicious": n_susp,
            "q_empty": n_empty,
        }, {pred_field: per_label})

    for_each_sample(sample_collection, fields, compute, progress=progress,
                    batch_size=batch_size)
    key = run_key(pred_field, prefix="quality_")
    config = fors.RunConfig(method="samrs.quality", pred_field=pred_field, box_field=box_field,
                            obb_field=obb_field if has_obb else None, thresholds=asdict(t))
    results = fors.RunResults(sample_collection, config, key,
                              n_samples=report.samples, instances=report.instances,
                              suspicious=report.suspicious,
                              flagged_samples=report.flagged_samples,
                              reasons=dict(report.reasons))
    sample_collection.register_run(key, config, results=results, overwrite=True)
    return report
