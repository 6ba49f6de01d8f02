"""Evaluation of predicted instance masks against ground-truth masks.

``evaluate(view)`` compares the predicted masks of ``pred_field`` (default
``sam``) with the ground-truth masks of ``gt_field`` (default ``gt_masks``)
and stores:

- on each predicted Detection: ``<eval_key>_iou`` (IoU with its matched
  ground truth, None when it has none) and ``<eval_key>_id`` (the matched
  ground-truth label id, or None);
- on each ground-truth Detection: ``<eval_key>_iou`` (0 when missed) and
  ``<eval_key>_id`` (the matched prediction's id, or None);
- on each sample: ``<eval_key>_iou_i`` (mean instance IoU),
  ``<eval_key>_iou_p`` (sum of intersections / sum of unions; both None when
  the sample has no ground-truth instance), ``<eval_key>_missed`` (ground
  truths with no prediction) and ``<eval_key>_unmatched`` (predictions with
  no ground truth);
- an evaluation run ``eval_key`` (FiftyOne's run machinery: it is listed by
  ``dataset.list_evaluations()`` and loaded again with
  ``dataset.load_evaluation_results(eval_key)``) holding the settings, the
  dataset-level and per-class mIoU_I / mIoU_P over all instances (not the
  mean of per-sample values), the counts, and the per-instance
  intersections/unions/areas used by the plots.

Matching: by the link to the source object (the ``obj_index`` attribute on
both fields) where both sides have it; the rest on both sides is matched
one-to-one by mask IoU (Hungarian, :func:`fiftyone_samrs.core.metrics.match_by_iou`).
A ground truth without a prediction counts as IoU 0 and is reported as
missed; predictions without a ground truth are reported but are not part of
the metric. Ground-truth Detections without a mask, or with an empty one, are
skipped and counted (``gt_no_mask``, ``gt_empty``). A prediction without a
mask counts as an empty mask.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Dict, List, Optional, Tuple

import fiftyone as fo
import fiftyone.core.evaluation as foe
import numpy as np
from fiftyone import ViewField as F

from fiftyone_samrs.core.metrics import iou_of, mask_iou, match_by_iou, miou
from fiftyone_samrs.core.records import InstanceMask
from fiftyone_samrs.core.text import plural
from fiftyone_samrs.evaluating.loop import SampleRow, for_each_sample
from fiftyone_samrs.fiftyone_io import (
    add_sidebar_group,
    check_label_field,
    dataset_of,
    declare_fields,
    remove_sidebar_group,
)

logger = logging.getLogger(__name__)

#: ``method`` of the evaluation runs this module registers
METHOD = "samrs-mask-iou"

SAMPLE_SUFFIXES = ("iou_i", "iou_p", "missed", "unmatched")
LABEL_SUFFIXES = ("iou", "id")


def protocol_view(sample_collection):
    """The paper's protocol: HRSC test images whose every ship has a mask.

    ``split == "test"`` and ``all_masked`` (set by the HRSC importer).

    Raises:
        ValueError: when the fields are missing or no sample matches
    """
    for field in ("split", "all_masked"):
        if not sample_collection.has_sample_field(field):
            raise ValueError(
                "protocol=True needs the %r sample field (set by the HRSC2016 importer, "
                "`load_hrsc`); this collection has none" % field
            )
    view = sample_collection.match((F("split") == "test") & (F("all_masked") == True))  # noqa: E712
    if not len(view):
        raise ValueError(
            "protocol=True: no sample has split == 'test' and all_masked == True"
        )
    return view


# --------------------------------------------------------------------------
# per-sample matching (pure apart from reading the Detections)


def match_sample(
    preds: List[Optional[InstanceMask]],
    pred_links: List[Optional[int]],
    gts: List[InstanceMask],
    gt_links: List[Optional[int]],
    size: Tuple[int, int],
    min_iou: float = 0.0,
) -> List[Tuple[Optional[int], Optional[int], int, int]]:
    """Matches one image's predictions to its ground truths.

    First by link (equal, non-None ``obj_index``), then the leftovers of both
    sides one-to-one by mask IoU (:func:`match_by_iou`).

    Args:
        preds: predicted masks (None = no mask, treated as empty)
        pred_links: ``obj_index`` of each prediction, or None
        gts: ground-truth masks
        gt_links: ``obj_index`` of each ground truth, or None
        size: ``(height, width)`` of the image
        min_iou: minimum IoU for a match by IoU

    Returns:
        ``(pred_index, gt_index, intersection, union)`` rows: one per ground
        truth in ground-truth order, then one per unmatched prediction
    """
    empty = InstanceMask(np.zeros((0, 0), dtype=bool), 0, 0)
    preds = [p if p is not None else empty for p in preds]
    gt_by_link: Dict[int, int] = {}
    for g, link in enumerate(gt_links):
        if link is not None and link not in gt_by_link:
            gt_by_link[link] = g
    by_gt: Dict[int, Tuple[Optional[int], int, int]] = {}
    used_preds = set()
    for p, link in enumerate(pred_links):
        g = gt_by_link.get(link) if link is not None else None
        if g is not None and g not in by_gt:
            inter, union = mask_iou(preds[p], gts[g], size=size)
            by_gt[g] = (p, inter, union)
            used_preds.add(p)
    rest_p = [p for p in range(len(preds)) if p not in used_preds]
    rest_g = [g for g in range(len(gts)) if g not in by_gt]
    extra: List[int] = []
    if rest_g or rest_p:
        rows = match_by_iou([preds[p] for p in rest_p], [gts[g] for g in rest_g], min_iou=min_iou)
        for p, g, inter, union in rows:
            if g is None:
                extra.append(rest_p[p])
            elif p is None:
                by_gt[rest_g[g]] = (None, inter, union)
            else:
                by_gt[rest_g[g]] = (rest_p[p], inter, union)
    out = []
    for g in range(len(gts)):
        p, inter, union = by_gt[g]
        out.append((p, g, inter, union))
    for p in sorted(extra):
        out.append((p, None, 0, int(np.count_nonzero(preds[p].mask))))
    return out


# --------------------------------------------------------------------------
# the evaluation run (FiftyOne run machinery)


class SamrsEvaluationConfig(foe.EvaluationMethodConfig):
    """Settings of a mask-IoU evaluation run.

    Args:
        pred_field: the predicted Detections field
        gt_field: the ground-truth Detections field
        protocol: whether the run was limited to the paper's protocol
        min_iou: minimum IoU for a match by IoU (where no link exists)
    """

    def __init__(self, pred_field, gt_field, protocol=False, min_iou=0.0, **kwargs):
        super().__init__(**kwargs)
        self.pred_field = pred_field
        self.gt_field = gt_field
        self.protocol = protocol
        self.min_iou = min_iou

    @property
    def method(self):
        return METHOD


class SamrsEvaluation(foe.EvaluationMethod):
    """The run class: knows the fields a run wrote, to list and clean them."""

    def get_fields(self, samples, eval_key):
        fields = ["%s_%s" % (eval_key, s) for s in SAMPLE_SUFFIXES]
        for field in (self.config.pred_field, self.config.gt_field):
            fields.extend("%s.detections.%s_%s" % (field, eval_key, s) for s in LABEL_SUFFIXES)
        return fields

    def cleanup(self, samples, eval_key):
        dataset = dataset_of(samples)
        fields = [f for f in self.get_fields(samples, eval_key) if dataset.has_field(f)]
        if fields:
            dataset.delete_sample_fields(fields, error_level=1)
        remove_sidebar_group(dataset, eval_key)
        from fiftyone_samrs.evaluating.qa import drop_qa_indexes

        drop_qa_indexes(dataset, eval_key)

    def _validate_run(self, samples, eval_key, existing_info):
        self._validate_fields_match(eval_key, "pred_field", existing_info)
        self._validate_fields_match(eval_key, "gt_field", existing_info)


class SamrsEvaluationResults(foe.EvaluationResults):
    """Results of :func:`evaluate`, stored with the run and loadable again.

    Attributes:
        miou_i: dataset mIoU_I over all ground-truth instances (fraction)
        miou_p: dataset mIoU_P (fraction)
        n_instances: ground-truth instances measured (incl. missed ones)
        n_missed: ground truths without a prediction (IoU 0)
        n_unmatched: predictions without a ground truth (not in the metric)
        n_samples: samples evaluated
        skipped: counts of skipped ground truths by reason
            (``gt_no_mask``, ``gt_empty``)
        per_class: ``{label: {"n", "miou_i", "miou_p", "missed", "unmatched"}}``
        classes: the class names ``labels`` index into
        inters, unions, gt_areas, labels: per ground-truth instance
            intersection, union, ground-truth area (pixels) and class index
    """

    def __init__(
        self,
        samples,
        config,
        eval_key,
        miou_i=float("nan"),
        miou_p=float("nan"),
        n_instances=0,
        n_missed=0,
        n_unmatched=0,
        n_samples=0,
        skipped=None,
        per_class=None,
        classes=None,
        inters=None,
        unions=None,
        gt_areas=None,
        labels=None,
        backend=None,
    ):
        super().__init__(samples, config, eval_key, backend=backend)
        self.miou_i = _nan_from_none(miou_i)
        self.miou_p = _nan_from_none(miou_p)
        self.n_instances = int(n_instances)
        self.n_missed = int(n_missed)
        self.n_unmatched = int(n_unmatched)
        self.n_samples = int(n_samples)
        self.skipped = dict(skipped or {})
        self.per_class = {
            k: {kk: (_nan_from_none(vv) if kk.startswith("miou") else vv) for kk, vv in v.items()}
            for k, v in (per_class or {}).items()
        }
        self.classes = list(classes or [])
        self.inters = [int(v) for v in (inters or [])]
        self.unions = [int(v) for v in (unions or [])]
        self.gt_areas = [int(v) for v in (gt_areas or [])]
        self.labels = [int(v) for v in (labels or [])]

    @property
    def ious(self) -> np.ndarray:
        """Per ground-truth instance IoU (float array; NaN where union is 0)."""
        i = np.asarray(self.inters, dtype=np.float64)
        u = np.asarray(self.unions, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(u > 0, i / np.maximum(u, 1), np.nan)

    @property
    def num_instances(self) -> int:
        """Alias of :attr:`n_instances`."""
        return self.n_instances

    @property
    def instance_labels(self) -> List[str]:
        """Class name per ground-truth instance."""
        return [self.classes[i] for i in self.labels]

    def metrics(self) -> dict:
        """Dataset-level numbers as a dict (fractions, counts)."""
        return {
            "miou_i": self.miou_i,
            "miou_p": self.miou_p,
            "n_instances": self.n_instances,
            "n_missed": self.n_missed,
            "n_unmatched": self.n_unmatched,
            "n_samples": self.n_samples,
        }

    def report(self) -> Dict[str, dict]:
        """Per-class numbers: ``{label: {"n", "miou_i", "miou_p", "missed", "unmatched"}}``."""
        return dict(self.per_class)

    def table(self) -> str:
        """A plain-text table: per class then all, mIoU in percent."""
        rows = [("class", "n", "mIoU_I", "mIoU_P", "missed", "unmatched")]
        for name in sorted(self.per_class):
            r = self.per_class[name]
            rows.append((name, str(r["n"]), _pct(r["miou_i"]), _pct(r["miou_p"]),
                         str(r["missed"]), str(r["unmatched"])))
        rows.append(("ALL", str(self.n_instances), _pct(self.miou_i), _pct(self.miou_p),
                     str(self.n_missed), str(self.n_unmatched)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = []
        for k, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(r, widths))))
            if k == 0 or k == len(rows) - 2:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def summary(self) -> str:
        """Headline + per-class table + skips, for printing."""
        cfg = self.config
        head = "evaluation %r: %s vs %s%s: %s, %s: mIoU_I %s, mIoU_P %s" % (
            self.key, cfg.pred_field, cfg.gt_field, " (paper protocol)" if cfg.protocol else "",
            plural(self.n_samples, "sample"), plural(self.n_instances, "instance"),
            _pct(self.miou_i), _pct(self.miou_p))
        lines = [head, self.table()]
        extra = []
        if self.n_missed:
            extra.append("%s had no prediction (counted as IoU 0)"
                         % plural(self.n_missed, "ground-truth instance"))
        if self.n_unmatched:
            extra.append("%s had no ground truth (not in the metric)"
                         % plural(self.n_unmatched, "prediction"))
        for kind, n in sorted(self.skipped.items()):
            if n:
                extra.append("%s skipped (%s)" % (plural(n, "ground-truth label"), kind))
        lines.extend(extra)
        return "\n".join(lines)

    def print_report(self) -> None:
        print(self.summary())

    def get_meta(self):
        return {"miou_i": _none_from_nan(self.miou_i), "miou_p": _none_from_nan(self.miou_p),
                "n_instances": self.n_instances}

    def attributes(self):
        return ["cls", "miou_i", "miou_p", "n_instances", "n_missed", "n_unmatched",
                "n_samples", "skipped", "per_class", "classes", "inters", "unions",
                "gt_areas", "labels"]

    def serialize(self, reflective=False):
        d = super().serialize(reflective=reflective)
        d["miou_i"] = _none_from_nan(self.miou_i)
        d["miou_p"] = _none_from_nan(self.miou_p)
        d["per_class"] = {
            k: {kk: (_none_from_nan(vv) if kk.startswith("miou") else vv) for kk, vv in v.items()}
            for k, v in self.per_class.items()
        }
        return d

    @classmethod
    def _from_dict(cls, d, samples, config, eval_key):
        d = dict(d)
        d.pop("cls", None)
        return cls(samples, config, eval_key, **d)


def _nan_from_none(v):
    return float("nan") if v is None else float(v)


def _none_from_nan(v):
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)


def _pct(v) -> str:
    return "-" if v is None or np.isnan(v) else "%.2f" % (100.0 * v)


# --------------------------------------------------------------------------
# the SDK call


def check_has_masks(sample_collection, field: str, what: str) -> None:
    """Refuses a Detections field none of whose objects has an instance mask
    (a box field such as ``hbb``): evaluating it would store mIoU 0, or count
    no ground truth. (Some objects without a mask, such as HRSC ships nobody
    segmented, are fine: they are skipped and counted, ``skipped["gt_no_mask"]``.)

    Raises:
        FormatError: naming the first sample and object, when no object has a mask
    """
    from fiftyone_samrs.core.records import FormatError

    path = "%s.detections" % field
    if not sample_collection.count(path):
        return
    has_mask = (F("mask") != None) | (F("mask_path") != None)  # noqa: E711
    if sample_collection.filter_labels(field, has_mask).count(path):
        return
    sample = sample_collection.exists(field).filter_labels(field, ~has_mask).first()
    det = sample[field].detections[0]
    raise FormatError(sample.filepath, "%s field %r has no instance masks (e.g. %r, label %s): "
                                       "evaluate a field with masks (sam, gt_masks), not a box "
                                       "field" % (what, field, det.label, det.id))


def warn_unfinished_run(view, pred_field: str) -> Optional[int]:
    """Warns when the segment run of ``pred_field`` is not complete, with the
    number of samples of ``view`` not segmented yet (their objects count as
    missed). Returns that number, or None when the run is complete or none
    is recorded."""
    from fiftyone_samrs.segmenting.runs import get_segment_run

    run = get_segment_run(view, pred_field)
    if run is None or run.get("status") == "complete":
        return None
    missing = view.count() - view.exists(pred_field).count()
    logger.warning("the segment run of %r is %s: %s of this view %s not segmented yet, so "
                   "their objects count as missed; evaluate again when it is complete",
                   pred_field, run.get("status") or "unfinished", plural(missing, "sample"),
                   "is" if missing == 1 else "are")
    return missing


def evaluate(
    sample_collection,
    pred_field: str = "sam",
    gt_field: str = "gt_masks",
    eval_key: str = "eval",
    *,
    protocol: bool = False,
    progress: bool = True,
    min_iou: float = 0.0,
    batch_size: int = 256,
) -> SamrsEvaluationResults:
    """Evaluates predicted instance masks against ground-truth masks.

    See the module docstring for what is stored where.

    Args:
        sample_collection: a dataset or view
        pred_field: the predicted Detections field (masks)
        gt_field: the ground-truth Detections field (masks)
        eval_key: the evaluation key: names the run and the stored fields
        protocol: limit to the paper's protocol (HRSC test images whose every
            ship has a mask: ``split == "test"`` and ``all_masked``)
        progress: show a progress bar
        min_iou: minimum IoU for a match by IoU (where no link exists)
        batch_size: samples read and written per database round trip

    Returns:
        a :class:`SamrsEvaluationResults` (also saved with the run)

    Raises:
        FormatError: for a prediction or ground-truth field without instance
            masks (a box field); a field whose segment run is not complete is
            evaluated with a warning naming the samples not segmented yet

    Example::

        import fiftyone_samrs as fsr

        results = fsr.evaluate(dataset, pred_field="sam", gt_field="gt_masks")
        results.print_report()
        dataset.load_evaluation_results("eval").miou_i
    """
    if not eval_key or not str(eval_key).isidentifier():
        raise ValueError("eval_key must be a valid identifier, got %r" % (eval_key,))
    check_label_field(sample_collection, pred_field, fo.Detections, "prediction")
    check_label_field(sample_collection, gt_field, fo.Detections, "ground-truth")
    for field, what in ((pred_field, "prediction"), (gt_field, "ground-truth")):
        check_has_masks(sample_collection, field, what)
    view = protocol_view(sample_collection) if protocol else sample_collection
    warn_unfinished_run(view, pred_field)

    config = SamrsEvaluationConfig(pred_field, gt_field, protocol=protocol, min_iou=min_iou)
    run = config.build()
    run.ensure_requirements()
    run.register_run(view, eval_key)

    k = eval_key
    iou_key, id_key = "%s_iou" % k, "%s_id" % k
    declare_fields(view, dict(
        [("%s_iou_i" % k, fo.FloatField), ("%s_iou_p" % k, fo.FloatField),
         ("%s_missed" % k, fo.IntField), ("%s_unmatched" % k, fo.IntField)]
        + [("%s.detections.%s_iou" % (f, k), fo.FloatField) for f in (pred_field, gt_field)]
        + [("%s.detections.%s_id" % (f, k), fo.StringField) for f in (pred_field, gt_field)]
    ))
    acc = _Accumulator()

    def compute(row: SampleRow):
        pdets, gdets = row.labels[pred_field], row.labels[gt_field]
        preds = row.instances(pred_field)
        gts, gt_pos = [], []
        for gi, inst in enumerate(row.instances(gt_field)):
            if inst is None:
                acc.skipped["gt_no_mask"] += 1
            elif not inst.mask.any():
                acc.skipped["gt_empty"] += 1
            else:
                gts.append(inst)
                gt_pos.append(gi)
        rows = match_sample(preds, [d.get("obj_index") for d in pdets], gts,
                            [gdets[gi].get("obj_index") for gi in gt_pos],
                            (row.height, row.width), min_iou=min_iou)
        p_set = {d.id: {iou_key: None, id_key: None} for d in pdets}
        g_set = {d.id: {iou_key: None, id_key: None} for d in gdets}
        s_i, s_u, missed, extra = [], [], 0, 0
        for p, g, inter, union in rows:
            if g is None:
                extra += 1
                acc.unmatched_by_class[pdets[p].label or ""] += 1
                continue
            gdet = gdets[gt_pos[g]]
            value = iou_of(inter, union)
            g_set[gdet.id][iou_key] = value
            label = gdet.label or ""
            if p is None:
                missed += 1
                acc.missed_by_class[label] += 1
            else:
                p_set[pdets[p].id] = {iou_key: value, id_key: gdet.id}
                g_set[gdet.id][id_key] = pdets[p].id
            s_i.append(inter)
            s_u.append(union)
            acc.add(label, inter, union, gts[g].area)
        mi, mp = miou(s_i, s_u)
        acc.n_samples += 1
        return ({"%s_iou_i" % k: _none_from_nan(mi), "%s_iou_p" % k: _none_from_nan(mp),
                 "%s_missed" % k: missed, "%s_unmatched" % k: extra},
                {pred_field: p_set, gt_field: g_set})

    for_each_sample(view, [pred_field, gt_field], compute, progress=progress,
                    batch_size=batch_size)
    results = acc.results(view, config, eval_key, run)
    run.save_run_results(view, eval_key, results)
    add_sidebar_group(view, eval_key, ["%s_%s" % (k, s) for s in SAMPLE_SUFFIXES])
    return results


class _Accumulator:
    """Per-instance intersections and unions of an evaluation, by class."""

    def __init__(self):
        self.inters: List[int] = []
        self.unions: List[int] = []
        self.gt_areas: List[int] = []
        self.labels: List[int] = []
        self.class_index: Dict[str, int] = {}
        self.unmatched_by_class: Counter = Counter()
        self.missed_by_class: Counter = Counter()
        self.skipped: Counter = Counter()
        self.n_samples = 0

    def add(self, label: str, inter: int, union: int, gt_area: int) -> None:
        if label not in self.class_index:
            self.class_index[label] = len(self.class_index)
        self.inters.append(inter)
        self.unions.append(union)
        self.gt_areas.append(gt_area)
        self.labels.append(self.class_index[label])

    def results(self, view, config, eval_key, run) -> "SamrsEvaluationResults":
        classes = sorted(self.class_index, key=self.class_index.get)
        lab = np.asarray(self.labels, dtype=np.int64)
        ia = np.asarray(self.inters, dtype=np.int64)
        ua = np.asarray(self.unions, dtype=np.int64)
        per_class = {}
        for name in sorted(set(self.class_index) | set(self.unmatched_by_class)):
            sel = lab == self.class_index[name] if name in self.class_index \
                else np.zeros(lab.shape, bool)
            mi, mp = miou(ia[sel], ua[sel])
            per_class[name] = {"n": int(sel.sum()), "miou_i": mi, "miou_p": mp,
                               "missed": int(self.missed_by_class.get(name, 0)),
                               "unmatched": int(self.unmatched_by_class.get(name, 0))}
        mi, mp = miou(ia, ua)
        return SamrsEvaluationResults(
            view, config, eval_key, miou_i=mi, miou_p=mp, n_instances=len(self.inters),
            n_missed=int(sum(self.missed_by_class.values())),
            n_unmatched=int(sum(self.unmatched_by_class.values())), n_samples=self.n_samples,
            skipped=dict(self.skipped), per_class=per_class, classes=classes,
            inters=self.inters, unions=self.unions, gt_areas=self.gt_areas,
            labels=self.labels, backend=run,
        )


def load_results(sample_collection, eval_key: str = "eval") -> SamrsEvaluationResults:
    """Loads the results of an earlier :func:`evaluate` run."""
    results = sample_collection.load_evaluation_results(eval_key)
    if not isinstance(results, SamrsEvaluationResults):
        raise ValueError("evaluation %r was not made by fiftyone_samrs.evaluate" % eval_key)
    return results


def list_runs(sample_collection) -> List[str]:
    """Keys of the mask-IoU evaluation runs on the collection."""
    return sample_collection.list_evaluations(method=METHOD)
