"""Visual QA in the App: saved views and tags for the samples worth a look.

After :func:`fiftyone_samrs.evaluating.evaluation.evaluate` (samples have
``<eval_key>_iou_i``) and/or :func:`fiftyone_samrs.evaluating.quality.compute_quality`
(samples have ``q_suspicious``), :func:`save_qa_views` saves, on the dataset:

- ``low_iou``: samples with ``<eval_key>_iou_i < low_iou``, worst first
  (the latest call's evaluation), and the same view as
  ``low_iou_<eval_key>``, which stays that evaluation's (see
  :func:`low_iou_view_name`);
- ``suspicious_masks``: samples with at least one suspicious instance, most
  suspicious instances first, then lowest ``q_min_confidence``;
- ``worst_samples``: the ``n`` worst samples (by IoU where evaluated, else
  by the quality signals);

and tags the flagged samples ``low_iou`` and ``suspicious`` (the tags are
first removed from the whole dataset, so they always reflect the latest
call). In the App: pick the saved view in the view bar, or filter by tag.

A view that comes out empty is saved all the same; :func:`empty_reason`
says why it is empty (nothing below the threshold, and the lowest value;
nothing evaluated; no suspicious instance), and :func:`qa_summary` prints it.
"""

from __future__ import annotations

import math
from typing import Dict, Optional

from fiftyone_samrs.fiftyone_io import dataset_of

LOW_IOU_VIEW = "low_iou"
SUSPICIOUS_VIEW = "suspicious_masks"
WORST_VIEW = "worst_samples"
LOW_IOU_TAG = "low_iou"
SUSPICIOUS_TAG = "suspicious"


def low_iou_view_name(eval_key: str) -> str:
    """The saved view of one evaluation's low-IoU samples: ``low_iou_<eval_key>``."""
    return "%s_%s" % (LOW_IOU_VIEW, eval_key)


def _has(sample_collection, field: str) -> bool:
    return sample_collection.has_sample_field(field)


#: the order of the suspicious masks (and of the index that serves it)
SUSPICIOUS_ORDER = [("q_suspicious", -1), ("q_min_confidence", 1)]


def low_iou_match(sample_collection, eval_key: str = "eval", threshold: float = 0.5):
    """Samples whose ``<eval_key>_iou_i`` is below ``threshold``, unsorted:
    what counts and tags use (no sort of whole documents).

    A MongoDB query filter rather than a ``ViewField`` expression: the
    index of :func:`ensure_qa_indexes` answers it alone, where an ``$expr``
    reads every whole document (0.68 s against 0.01 s for a count at 30k
    images). Unset values (None) never match."""
    path = "%s_iou_i" % eval_key
    if not _has(sample_collection, path):
        raise ValueError("no %r field: run evaluate(..., eval_key=%r) first" % (path, eval_key))
    return sample_collection.match({path: {"$lt": float(threshold)}})


def low_iou_view(sample_collection, eval_key: str = "eval", threshold: float = 0.5):
    """Samples whose ``<eval_key>_iou_i`` is below ``threshold``, worst first."""
    return low_iou_match(sample_collection, eval_key, threshold).sort_by("%s_iou_i" % eval_key)


def suspicious_match(sample_collection):
    """Samples with suspicious instances, unsorted (counts and tags; a query
    filter the index answers, as in :func:`low_iou_match`)."""
    if not _has(sample_collection, "q_suspicious"):
        raise ValueError("no 'q_suspicious' field: run compute_quality(...) first")
    return sample_collection.match({"q_suspicious": {"$gt": 0}})


def suspicious_view(sample_collection):
    """Samples with suspicious instances: most first, then lowest confidence."""
    return suspicious_match(sample_collection).sort_by(SUSPICIOUS_ORDER)


def ensure_qa_indexes(dataset, eval_key: Optional[str] = None) -> list:
    """Indexes the fields the QA views match and sort on: ``<eval_key>_iou_i``
    and (``q_suspicious`` descending, ``q_min_confidence``), where they
    exist. Without them every count of a sorted view made MongoDB sort the
    matched whole documents, masks included (seconds at 30k images, a disk
    spill above 100 MB). Returns the index names."""
    root = dataset_of(dataset)
    names = []
    if eval_key and _has(root, "%s_iou_i" % eval_key):
        names.append(root.create_index("%s_iou_i" % eval_key))
    if _has(root, "q_suspicious") and _has(root, "q_min_confidence"):
        names.append(root.create_index(SUSPICIOUS_ORDER))
    return names


def drop_qa_indexes(dataset, eval_key: str) -> None:
    """Drops the IoU index of :func:`ensure_qa_indexes` (with the evaluation
    run whose field it indexed)."""
    root = dataset_of(dataset)
    name = "%s_iou_i" % eval_key
    if name in root.list_indexes():
        root.drop_index(name)


def worst_samples(view, n: int = 50, eval_key: str = "eval"):
    """The ``n`` worst samples of a view.

    By ``<eval_key>_iou_i`` (lowest first) where the view was evaluated,
    otherwise by the quality signals (most suspicious instances, then lowest
    confidence).

    Raises:
        ValueError: when the view has neither evaluation nor quality fields
    """
    path = "%s_iou_i" % eval_key
    if _has(view, path):
        return view.match({path: {"$ne": None}}).sort_by(path).limit(n)
    if _has(view, "q_suspicious"):
        return view.sort_by(SUSPICIOUS_ORDER).limit(n)
    raise ValueError("no %r or 'q_suspicious' field: run evaluate() or compute_quality() first"
                     % path)


def save_qa_views(
    dataset,
    eval_key: str = "eval",
    *,
    low_iou: float = 0.5,
    n_worst: int = 50,
    tag: bool = True,
) -> Dict[str, int]:
    """Saves the QA views on the dataset and tags the flagged samples.

    Views are built on ``dataset`` (a dataset, or a view whose stages are
    kept in the saved views) and saved on its root dataset, overwriting
    earlier ones of the same name. A view whose fields are missing is not
    saved (e.g. no ``low_iou`` before an evaluation). ``low_iou`` is also
    saved as ``low_iou_<eval_key>`` (:func:`low_iou_view_name`), so that
    each evaluation keeps its own.

    Args:
        dataset: a dataset or view
        eval_key: the evaluation whose ``<eval_key>_iou_i`` ranks samples
        low_iou: the IoU threshold of the ``low_iou`` view
        n_worst: size of the ``worst_samples`` view
        tag: tag flagged samples ``low_iou`` / ``suspicious``

    Returns:
        ``{view name: number of samples}`` for the views saved

    Raises:
        ValueError: when neither evaluation nor quality fields exist
    """
    root = dataset_of(dataset)
    saved: Dict[str, int] = {}
    views = []
    if _has(dataset, "%s_iou_i" % eval_key):
        low = low_iou_match(dataset, eval_key, low_iou)
        description = "samples with %s_iou_i < %g, worst first" % (eval_key, low_iou)
        views.append((LOW_IOU_VIEW, low, "%s_iou_i" % eval_key, LOW_IOU_TAG, description))
        views.append((low_iou_view_name(eval_key), low, "%s_iou_i" % eval_key, None,
                      description))
    if _has(dataset, "q_suspicious"):
        views.append((SUSPICIOUS_VIEW, suspicious_match(dataset), SUSPICIOUS_ORDER,
                      SUSPICIOUS_TAG, "samples with suspicious masks, most first"))
    if not views:
        raise ValueError("nothing to save: run evaluate(..., eval_key=%r) or compute_quality() "
                         "first" % eval_key)
    worst = worst_samples(dataset, n_worst, eval_key)
    if _has(dataset, "%s_iou_i" % eval_key):
        _remember_threshold(root, eval_key, low_iou)
    ensure_qa_indexes(root, eval_key)
    for name, match, order, tag_name, description in views:
        # saved sorted; counted and tagged through the match alone
        root.save_view(name, match.sort_by(order), description=description, overwrite=True)
        saved[name] = match.count()
        if tag and tag_name:
            root.untag_samples(tag_name)
            match.tag_samples(tag_name)
    root.save_view(WORST_VIEW, worst, description="the %d worst samples" % n_worst,
                   overwrite=True)
    saved[WORST_VIEW] = worst.count()
    return saved


def _remember_threshold(root, eval_key: str, low_iou: float) -> None:
    info = dict(root.info)
    samrs = dict(info.get("samrs") or {})
    thresholds = dict(samrs.get("low_iou") or {})
    thresholds[eval_key] = float(low_iou)
    samrs["low_iou"] = thresholds
    info["samrs"] = samrs
    root.info = info
    root.save()


def low_iou_threshold(sample_collection, eval_key: str) -> Optional[float]:
    """The threshold of the last ``low_iou_<eval_key>`` view saved by
    :func:`save_qa_views` (kept in ``info["samrs"]["low_iou"]``), or None."""
    info = dataset_of(sample_collection).info or {}
    value = ((info.get("samrs") or {}).get("low_iou") or {}).get(eval_key)
    return None if value is None else float(value)


def empty_reason(sample_collection, name: str, eval_key: str = "eval",
                 low_iou: Optional[float] = None) -> str:
    """Why the QA view ``name`` of ``sample_collection`` holds no sample.

    Args:
        sample_collection: the dataset or view the QA view was built on
        name: ``low_iou`` (or ``low_iou_<eval_key>``), ``suspicious_masks``
            or ``worst_samples``
        eval_key: the evaluation of the low-IoU and worst-samples views
        low_iou: the threshold of the low-IoU view (None: not said)

    Returns:
        one sentence, e.g. "no sample has eval_iou_i below 0.5 (lowest:
        0.8312, over 3 evaluated samples)"
    """
    path = "%s_iou_i" % eval_key
    if name == SUSPICIOUS_VIEW:
        if not _has(sample_collection, "q_suspicious"):
            return "no mask-quality signals: run compute_quality() (samrs quality) first"
        n = sample_collection.count("q_suspicious")
        if not n:
            return "no sample has mask-quality signals (compute_quality scored none of them)"
        return ("no suspicious mask: no rule fired on any instance of the %d scored samples"
                % n)
    if not _has(sample_collection, path):
        return "no %s field: run evaluate(..., eval_key=%r) first" % (path, eval_key)
    values = [v for v in sample_collection.values(path)
              if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return ("no sample was scored by the evaluation %r (%s is empty: no ground-truth "
                "instances in these samples?)" % (eval_key, path))
    if name == WORST_VIEW:
        return "no evaluated sample"
    below = "below %g" % low_iou if low_iou is not None else "below the threshold"
    return ("no sample has %s %s (lowest: %.4f, over %d evaluated sample%s): raise the "
            "threshold to see the worst ones, or open worst_samples"
            % (path, below, min(values), len(values), "" if len(values) == 1 else "s"))


def qa_summary(saved: Dict[str, int], sample_collection=None, eval_key: str = "eval",
               low_iou: Optional[float] = None) -> str:
    """One line per saved view; with ``sample_collection`` (what the views
    were built on), an empty view's line says why (:func:`empty_reason`)."""
    lines = []
    for name, n in saved.items():
        line = "saved view %-17s %d sample%s" % (name, n, "" if n == 1 else "s")
        if n == 0 and sample_collection is not None:
            line += ": " + empty_reason(sample_collection, name, eval_key, low_iou)
        lines.append(line)
    return "\n".join(lines)
