"""Reviewing flagged masks: alternatives for chosen labels (issue 26, first part).

:func:`resegment` computes, for chosen labels of a segmented field, other
masks a reviewer can pick from: SAM's three candidate masks of the H-Box
(``"multimask"``), the paper's other prompts (``"rhbox"``, ``"hbox+cp"``, the
R-Box clip ``"hbox+clip_rbox"``), GrabCut (``"grabcut"``) and the filled box
(``"box"``). Each image is encoded once for all its chosen labels and all
the SAM alternatives.

The alternatives are stored in a side field, ``<label_field>_alternatives``
(Detections), so that the App shows them beside the current masks: one
Detection per alternative, with the label's class, its mask and box, and

- ``of``: the id of the label it is an alternative for;
- ``alternative``: its name (``multimask_0`` .. ``multimask_2`` for SAM's
  three; the configuration otherwise);
- ``confidence``: the model's predicted IoU (None for GrabCut and the box);
- ``stability``: SAM's stability score (NaN where the backend has none);
- ``iou_current``: its IoU with the label's current mask.

Computing alternatives again for a label replaces that label's alternatives
and keeps the others of the sample.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from fiftyone_samrs.core.text import plural
from fiftyone_samrs.fiftyone_io import label_attr

#: the alternatives :func:`resegment` computes by default
DEFAULT_ALTERNATIVES = ("multimask", "rhbox", "hbox+cp", "hbox+clip_rbox", "grabcut", "box")

#: attributes of the alternatives' Detections, declared on the side field
ALTERNATIVE_ATTRIBUTES = {"of": "StringField", "alternative": "StringField",
                          "stability": "FloatField", "iou_current": "FloatField"}


def alternatives_field(label_field: str) -> str:
    """The side field of a label field's alternatives: ``<label_field>_alternatives``."""
    return "%s_alternatives" % label_field


@dataclass
class ResegmentResult:
    """What :func:`resegment` did.

    Attributes:
        labels: labels that got alternatives
        alternatives: alternatives stored
        images: images encoded (once each)
        skipped: why labels got no alternatives, counted
        field: the side field written
        ids: the ids of the labels that got alternatives
        replaced: labels the first pass (``replace_best=True``) replaced
        repainted: semantic PNGs the first pass repainted
    """

    labels: int = 0
    alternatives: int = 0
    images: int = 0
    skipped: Counter = field(default_factory=Counter)
    ids: List[str] = field(default_factory=list)
    replaced: int = 0
    repainted: int = 0
    field: str = ""  # last: the name ``field`` is the dataclass helper above it


def _config_name(name: str) -> str:
    """An alternative's name as a prompt-study configuration (``"box"``: boxfill)."""
    return "boxfill" if name == "box" else name


def _check_names(alternatives: Sequence[str]) -> list:
    from fiftyone_samrs.evaluating.study import parse_config

    out = []
    for name in alternatives:
        if name == "multimask":
            out.append((name, None))
        else:
            out.append((name, parse_config(_config_name(name))))
    if not out:
        raise ValueError("no alternatives asked for; use e.g. %s" % ", ".join(DEFAULT_ALTERNATIVES))
    return out


def _settings(sample_collection, label_field: str, box_field, obb_field):
    """The prompt fields (the given ones, else those of the run that wrote
    ``label_field``, else ``hbb`` / ``obb``) and that run's record."""
    from fiftyone_samrs.segmenting.runs import get_segment_run

    run = get_segment_run(sample_collection, label_field) or {}
    box_field = box_field or run.get("box_field") or "hbb"
    obb_field = obb_field or run.get("obb_field") or "obb"
    if not sample_collection.has_field(obb_field):
        obb_field = None
    return box_field, obb_field, run


def _model_of(run: dict, backend: Optional[str], model, checkpoint):
    """The model to build: the one given, else the run's (when it was a model)."""
    from fiftyone_samrs.segmenting.backends import model_backends

    if backend is None and model is None and checkpoint is None \
            and run.get("backend") in model_backends():
        return run["backend"], run.get("model"), run.get("checkpoint")
    return backend or "sam", model, checkpoint


def _check_model(label_field: str, run: dict, backend: str, model, checkpoint) -> None:
    """Raises, saying what to pass, where no model can be built."""
    from fiftyone_samrs.segmenting.backends import model_backends

    if backend in model_backends() and model is None and checkpoint is None:
        why = ("the run that wrote %r recorded no model name or checkpoint (it was given an "
               "engine object)" % label_field) if run else "no segment run wrote %r" % label_field
        raise ValueError("resegment: %s; pass model=... (e.g. vit_h, samrs-tiny), "
                         "checkpoint=PATH or engine=..." % why)


def resegment(
    sample_collection,
    label_ids: Optional[Sequence[str]] = None,
    alternatives: Sequence[str] = DEFAULT_ALTERNATIVES,
    *,
    label_field: str = "sam",
    box_field: Optional[str] = None,
    obb_field: Optional[str] = None,
    backend: Optional[str] = None,
    model: Optional[str] = None,
    checkpoint: Optional[str] = None,
    engine=None,
    device=None,
    margin: Optional[float] = None,
    baseline_margin: Optional[float] = 0.1,
    rbox_margin: float = 2.0,
    replace_best: bool = False,
    progress: bool = True,
) -> ResegmentResult:
    """Computes alternative masks for chosen labels (see the module docstring).

    Args:
        sample_collection: a dataset or view (e.g. the ``low_iou`` saved view)
        label_ids: the labels of ``label_field`` to re-segment; None: every
            label in the view
        alternatives: names from :data:`DEFAULT_ALTERNATIVES`, or any prompt
            study configuration (``"hbox"``, ``"rbox_m"``, ``"grabcut:rhbox"``...)
        label_field: the segmented Detections (each label's ``source_id``
            names its prompt box)
        box_field, obb_field: the prompt boxes and rotated boxes (default:
            those the run of ``label_field`` used)
        backend, model, checkpoint, device: the model (as ``segment``); by
            default the one of the run that wrote ``label_field`` (SAM, SAM 2,
            HQ-SAM), else ``"sam"``
        engine: an already-built engine (overrides ``backend``...)
        margin: region margin of the SAM masks (None: whole masks)
        baseline_margin: region margin of GrabCut and the box
        rbox_margin: dilation of the rotated box for ``+clip_rbox``
        replace_best: the automatic first pass: each label whose best
            alternative by predicted IoU predicts more than its current mask
            takes it, recorded as ``review="auto-replaced"`` (still to
            review; labels a reviewer decided on are left alone); off by
            default (measured: ``docs/evaluation.md``)
        progress: show a progress bar

    Returns:
        a :class:`ResegmentResult`
    """
    import fiftyone as fo

    from fiftyone_samrs.evaluating.loop import for_each_sample
    from fiftyone_samrs.fiftyone_io import check_label_field, dataset_of, declare_label_field
    from fiftyone_samrs.segmenting.backends import make_backend
    from fiftyone_samrs.segmenting.base import as_engine

    check_label_field(sample_collection, label_field, fo.Detections, "segmented")
    names = _check_names(alternatives)
    box_field, obb_field, run = _settings(sample_collection, label_field, box_field, obb_field)
    backend, model, checkpoint = _model_of(run, backend, model, checkpoint)
    if engine is None and any(c is None or c.backend == "sam" for _, c in names):
        _check_model(label_field, run, backend, model, checkpoint)
        engine = make_backend(backend, model=model, checkpoint=checkpoint, device=device)
    models = {"sam": as_engine(engine)}
    for _, c in names:
        if c is not None and c.backend != "sam" and c.backend not in models:
            models[c.backend] = make_backend(c.backend)
    out = ResegmentResult(field=alternatives_field(label_field))
    declare_label_field(dataset_of(sample_collection), out.field, fo.Detections,
                        {k: getattr(fo, v) for k, v in ALTERNATIVE_ATTRIBUTES.items()})
    job = _Job(names, models, set(label_ids) if label_ids is not None else None, label_field,
               box_field, obb_field, (margin, baseline_margin, rbox_margin), out)
    fields = [label_field, box_field, out.field] + ([obb_field] if obb_field else [])
    for_each_sample(sample_collection, fields, job.sample, progress=progress, batch_size=16)
    if replace_best and out.ids:
        done = _record(dataset_of(sample_collection), out.ids,
                       _Decision("replace", "best", label_field, FIRST_PASS, AUTO_STATUS, True))
        out.replaced, out.repainted = done.decided, done.repainted
    return out


@dataclass
class _Job:
    """What :func:`resegment` computes per sample (its inputs passed explicitly)."""

    names: list
    models: Dict[str, object]
    wanted: Optional[set]
    label_field: str
    box_field: str
    obb_field: Optional[str]
    margins: tuple
    out: ResegmentResult

    def sample(self, row):
        import fiftyone as fo

        from fiftyone_samrs.fiftyone_io import label_list_doc, object_inputs

        chosen = [(d, inst) for d, inst in zip(row.labels[self.label_field],
                                               row.instances(self.label_field))
                  if self.wanted is None or d.id in self.wanted]
        if not chosen:
            return None
        objs = object_inputs(row.labels[self.box_field],
                             row.labels[self.obb_field] if self.obb_field else None,
                             row.width, row.height)
        row_of = {sid: k for k, sid in enumerate(objs.ids)}
        found = [(d, inst, row_of.get(d.get("source_id"))) for d, inst in chosen]
        for d, _, k in found:
            if k is None:
                self.out.skipped["no prompt box (source_id) in %r" % self.box_field] += 1
        found = [f for f in found if f[2] is not None]
        if not found:
            return None
        docs = self._alternatives(row, objs, found)
        redone = {d.id for d, _, _ in found}
        kept = [a.doc for a in row.labels[self.out.field] if a.get("of") not in redone]
        self.out.labels += len(found)
        self.out.ids.extend(redone)
        self.out.alternatives += len(docs)
        return {self.out.field: label_list_doc(fo.Detections, kept + docs)}, None

    def _alternatives(self, row, objs, found) -> List[dict]:
        from fiftyone_samrs.evaluating.study import ConfigInputs, config_masks
        from fiftyone_samrs.formats.images import read_image

        rows = [k for _, _, k in found]
        image = read_image(row.filepath)
        sam = self.models.get("sam")
        emb = sam.encode([image])[0] if sam is not None and sam.encodes else None
        self.out.images += 1
        quads = objs.quads[rows] if objs.quads is not None else None
        inputs = ConfigInputs(image, objs.hboxes[rows], quads, objs.has_hbox, emb)
        margin, baseline_margin, rbox_margin = self.margins
        per_name = []
        for name, config in self.names:
            if config is None:
                per_name.extend(self._multimask(inputs, sam, margin))
                continue
            try:
                res, _ = config_masks(config, inputs, self.models[config.backend],
                                      margin if config.backend == "sam" else baseline_margin,
                                      rbox_margin)
            except ValueError as e:  # e.g. a rotated prompt where the source has none
                self.out.skipped["%s: %s" % (name, e)] += 1
                continue
            per_name.append((name, res, config.backend == "sam"))
        return [_alternative_doc(d, inst, name, res[i], scored, row.width, row.height)
                for name, res, scored in per_name
                for i, (d, inst, _) in enumerate(found)]

    def _multimask(self, inputs, sam, margin):
        from fiftyone_samrs.segmenting.prompts import build_prompts

        if sam is None or not callable(getattr(sam, "decode_multimask", None)) \
                or inputs.embedding is None:
            self.out.skipped["multimask: the engine gives one mask per prompt"] += 1
            return []
        ps = build_prompts(inputs.hboxes, inputs.quads, "hbox", inputs.image.shape[:2],
                           has_hbox=inputs.has_hbox, margin=margin, mask_frame=sam.mask_frame)
        try:
            three = sam.decode_multimask(inputs.embedding, ps)
        except NotImplementedError as e:  # HQ-SAM
            self.out.skipped["multimask: %s" % e] += 1
            return []
        return [("multimask_%d" % j, [masks[j] for masks in three], True) for j in range(3)]


def _alternative_doc(label, current, name: str, res, scored: bool, width: int,
                     height: int) -> dict:
    """The Detection document of one alternative of ``label``."""
    from fiftyone_samrs.core.masks import relative_box
    from fiftyone_samrs.core.metrics import mask_iou
    from fiftyone_samrs.fiftyone_io import detection_doc

    tight = res.mask.clipped(height, width).tight()
    if tight.area:
        mask, box = tight.mask, relative_box(tight.box, width, height)
    else:
        mask, box = np.zeros((1, 1), bool), label.bounding_box
    iou = float("nan")
    if current is not None:
        inter, union = mask_iou(tight, current, size=(height, width))
        iou = inter / union if union else float("nan")
    return detection_doc(label.label, box, mask, confidence=float(res.score) if scored else None,
                         of=label.id, alternative=name, iou_current=iou,
                         stability=float("nan") if res.stability is None else float(res.stability))


# --------------------------------------------------------------------------
# decisions

#: what :func:`decide` records in each label's ``review``
REVIEW_STATUS = {"accept": "accepted", "replace": "replaced", "reject": "rejected"}

#: the ``review`` of a label the first pass (``resegment(replace_best=True)``)
#: replaced: a machine's choice, still to review
AUTO_STATUS = "auto-replaced"

#: the ``reviewed_by`` of the first pass
FIRST_PASS = "samrs first pass"

#: the attributes :func:`decide` records on the labels
REVIEW_ATTRIBUTES = {"review": "StringField", "review_choice": "StringField",
                     "reviewed_at": "DateTimeField", "reviewed_by": "StringField"}


@dataclass
class ReviewResult:
    """What :func:`decide` did.

    Attributes:
        decided: labels whose decision was recorded
        repainted: samples whose semantic PNG was repainted
        missing: label ids not found in the field
    """

    decided: int = 0
    repainted: int = 0
    missing: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Decision:
    """One decision, as :func:`_record` applies it to each label.

    Attributes:
        action: ``accept``, ``replace`` or ``reject``
        alternative: for replace: an alternative's name or ``"best"``
        label_field: the reviewed field
        user: recorded as ``reviewed_by``
        status: recorded as ``review``
        only_better: replace only where the alternative's predicted IoU beats
            the label's (the first pass)
    """

    action: str
    alternative: str
    label_field: str
    user: Optional[str]
    status: str
    only_better: bool = False


def decide(
    sample_collection,
    label_ids: Sequence[str],
    action: str = "replace",
    *,
    alternative: str = "best",
    label_field: str = "sam",
    user: Optional[str] = None,
) -> ReviewResult:
    """Records a review decision on labels of ``label_field``.

    - ``"accept"``: the mask stays;
    - ``"replace"``: the mask, box, confidence and stability become those of
      the label's alternative named ``alternative`` (see :func:`resegment`);
      ``"best"``: the one with the highest predicted IoU;
    - ``"reject"``: the instance becomes "ignore": 255 in the semantic PNG,
      left out of the exports' instances (counted).

    Each label records ``review`` (accepted, replaced, rejected),
    ``review_choice`` (the alternative taken), ``reviewed_at`` (UTC) and
    ``reviewed_by``. The semantic PNGs of the samples whose instances
    changed are repainted as the run that wrote ``label_field`` painted them.

    Raises:
        ValueError: for an unknown action, or a replace without that alternative
    """
    from fiftyone_samrs.fiftyone_io import dataset_of

    if action not in REVIEW_STATUS:
        raise ValueError("action must be one of %s, got %r" % (", ".join(REVIEW_STATUS), action))
    return _record(dataset_of(sample_collection), label_ids,
                   _Decision(action, alternative, label_field, user, REVIEW_STATUS[action]))


def _record(dataset, label_ids: Sequence[str], decision: _Decision) -> ReviewResult:
    """Applies ``decision`` to the labels, sample by sample, and repaints."""
    import fiftyone as fo
    from bson import ObjectId

    from fiftyone_samrs.fiftyone_io import declare_fields

    label_field = decision.label_field
    declare_fields(dataset, {"%s.detections.%s" % (label_field, k): getattr(fo, v)
                             for k, v in REVIEW_ATTRIBUTES.items()})
    out = ReviewResult(missing=sorted(i for i in set(label_ids) if not ObjectId.is_valid(i)))
    wanted = set(label_ids) - set(out.missing)
    view = dataset.select_labels(ids=list(wanted), fields=label_field)
    found = set()
    for sid in view.values("id"):
        sample = dataset[sid]
        found.update(d.id for d in sample[label_field].detections if d.id in wanted)
        changed = _decide_sample(sample, wanted, decision, out)
        sample.save()
        if changed and repaint(sample, label_field):
            out.repainted += 1
    out.missing = sorted(set(out.missing) | (wanted - found))
    return out


def _decide_sample(sample, wanted: set, decision: _Decision, out: ReviewResult) -> bool:
    """Records the decision on the sample's wanted labels; whether pixels changed."""
    from datetime import datetime, timezone

    alts_field = alternatives_field(decision.label_field)
    alts = sample[alts_field] if sample.has_field(alts_field) else None
    changed = False
    for det in sample[decision.label_field].detections:
        if det.id not in wanted or (decision.only_better
                                    and label_attr(det, "review") in REVIEW_STATUS.values()):
            continue  # the first pass leaves a reviewer's decision alone
        choice = None
        if decision.action == "replace":
            alt = _alternative_of(alts, det.id, decision.alternative,
                                  required=not decision.only_better)
            if decision.only_better and not _beats(alt, det):
                continue
            _take(det, alt)
            choice = alt.alternative
        changed = changed or decision.action != "accept" or label_attr(det, "review") == "rejected"
        det["review"] = decision.status
        det["review_choice"] = choice
        det["reviewed_at"] = datetime.now(timezone.utc)
        det["reviewed_by"] = decision.user
        out.decided += 1
    return changed


def _beats(alt, det) -> bool:
    """Whether an alternative (or None) predicts a higher IoU than the label."""
    if alt is None or alt.confidence is None:
        return False
    return det.confidence is None or alt.confidence > det.confidence


def _alternative_of(alts, label_id: str, name: str, required: bool = True):
    """The label's alternative ``name`` (``"best"``: highest predicted IoU);
    without one: a ValueError, or None where not ``required``."""
    mine = [a for a in (alts.detections if alts else []) if a.of == label_id]
    if name == "best":
        mine = [a for a in mine if a.confidence is not None]
        if mine:
            return max(mine, key=lambda a: a.confidence)
    else:
        for a in mine:
            if a.alternative == name:
                return a
    if not required:
        return None
    raise ValueError("label %s has no alternative %r: run resegment(...) for it first"
                     % (label_id, name))


def _take(det, alt) -> None:
    """The label ``det`` takes the mask of ``alt``."""
    mask = np.asarray(alt.mask, dtype=bool)
    det.mask = mask
    det.bounding_box = list(alt.bounding_box)
    det.confidence = alt.confidence
    det["stability"] = label_attr(alt, "stability")
    det["area"] = int(mask.sum())
    det["empty"] = not mask.any()


def repaint(sample, label_field: str = "sam") -> bool:
    """Repaints a sample's semantic PNG from its final instances, as the run
    that wrote ``label_field`` painted it (its class list and paint order);
    rejected instances are 255. Returns False where the run wrote none."""
    from fiftyone_samrs.core.painting import REJECTED, paint_semantic, write_label_png
    from fiftyone_samrs.fiftyone_io import instance_from_label
    from fiftyone_samrs.segmenting.runs import get_segment_run

    run = get_segment_run(sample._dataset, label_field) or {}
    seg_field = run.get("seg_field")
    seg = sample[seg_field] if seg_field and sample.has_field(seg_field) else None
    if seg is None or not seg.mask_path:
        return False
    width, height = sample.metadata.width, sample.metadata.height
    index = {name: i for i, name in enumerate(run.get("classes") or [])}
    items = []
    for det in sample[label_field].detections:
        if label_attr(det, "empty"):
            continue
        idx = REJECTED if label_attr(det, "review") == "rejected" else index.get(det.label)
        items.append((instance_from_label(det, width, height), idx))
    write_label_png(seg.mask_path, paint_semantic(height, width, items,
                                                  order=run.get("paint_order") or "annotation"))
    return True


# --------------------------------------------------------------------------
# progress

#: the threshold of :func:`review_progress` where none was saved with the views
DEFAULT_THRESHOLD = 0.5


@dataclass
class ReviewProgress:
    """How far the review of an evaluation's low-IoU samples is.

    Attributes:
        eval_key: the evaluation
        label_field: the field it scored
        threshold: the low-IoU threshold (samples, and each flagged label)
        samples: samples of the low-IoU view
        flagged: labels of those samples whose ``<eval_key>_iou`` is below
            the threshold
        decisions: labels of those samples with a decision, by ``review``
            (accepted, replaced, rejected, auto-replaced)
        to_review: flagged labels without a reviewer's decision (those the
            first pass replaced count here)
        next_sample: the worst low-IoU sample with a label to review (None:
            done)
        next_labels: that sample's labels to review
    """

    eval_key: str
    label_field: str
    threshold: float
    samples: int = 0
    flagged: int = 0
    decisions: Counter = field(default_factory=Counter)
    to_review: int = 0
    next_sample: Optional[str] = None
    next_labels: List[str] = field(default_factory=list)

    @property
    def reviewed(self) -> int:
        """Labels with a reviewer's decision (not the first pass's)."""
        return sum(n for k, n in self.decisions.items() if k != AUTO_STATUS)

    def to_markdown(self) -> str:
        """One line for the QA panel."""
        parts = ", ".join("%d %s" % (self.decisions[k], k) for k in
                          list(REVIEW_STATUS.values()) + [AUTO_STATUS] if self.decisions[k])
        return ("**Review of `%s`**: %s (`%s_iou` < %g) in %s; %d reviewed%s; "
                "**%d to review**" % (
                    self.eval_key, plural(self.flagged, "flagged mask"), self.eval_key,
                    self.threshold, plural(self.samples, "sample"), self.reviewed,
                    " (%s)" % parts if parts else "", self.to_review))


def review_progress(sample_collection, eval_key: str = "eval", threshold: Optional[float] = None,
                    view=None) -> ReviewProgress:
    """Flagged labels and decisions in an evaluation's low-IoU samples.

    Args:
        sample_collection: the dataset (or a view) evaluated
        eval_key: the evaluation
        threshold: the low-IoU threshold; default the one its saved views
            used, else :data:`DEFAULT_THRESHOLD`
        view: the low-IoU view to count in (default: built from the two above)

    Returns:
        a :class:`ReviewProgress`; run ``evaluate`` again after decisions
        to update which labels are flagged
    """
    from fiftyone_samrs.evaluating import qa
    from fiftyone_samrs.fiftyone_io import dataset_of

    dataset = dataset_of(sample_collection)
    pred_field = dataset.get_evaluation_info(eval_key).config.pred_field
    if threshold is None:
        threshold = qa.low_iou_threshold(dataset, eval_key)
    threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    if view is None:
        view = qa.low_iou_view(sample_collection, eval_key, threshold)
    out = ReviewProgress(eval_key, pred_field, threshold)
    paths = ["%s.detections.%s" % (pred_field, k) for k in ("id", "%s_iou" % eval_key, "review")]
    known = [p for p in paths if dataset.get_field(p) is not None]
    columns = dict(zip(["id"] + known, view.values(["id"] + known)))
    for k, sid in enumerate(columns["id"]):
        out.samples += 1
        _count_sample(out, sid, *[columns[p][k] if p in columns else None for p in paths])
    return out


def _count_sample(out: ReviewProgress, sample_id: str, ids, ious, reviews) -> None:
    ids = ids or []
    ious = ious or [None] * len(ids)
    reviews = reviews or [None] * len(ids)
    todo = []
    for label_id, iou, review in zip(ids, ious, reviews):
        if review:
            out.decisions[review] += 1
        if iou is None or not iou < out.threshold:
            continue
        out.flagged += 1
        if review in (None, AUTO_STATUS):
            todo.append(label_id)
    out.to_review += len(todo)
    if todo and out.next_sample is None:
        out.next_sample, out.next_labels = sample_id, todo
