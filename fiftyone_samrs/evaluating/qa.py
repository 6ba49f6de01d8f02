"""Visual QA in the App: saved views and tags for the samples worth a look.

After :func:`fiftyone_samrs.evaluating.evaluation.evaluate` (samples have
``<eval_key>_iou_i``) and/or :func:`fiftyone_samrs.evaluating.quality.compute_quality`
(samples have ``q_suspicious``), :func:`save_qa_views` saves, on the dataset:

- ``low_iou``: samples with ``<eval_key>_iou_i < low_iou``, worst first;
- ``suspicious_masks``: samples with at least one suspicious instance, most
  suspicious instances first, then lowest ``q_min_confidence``;
- ``worst_samples``: the ``n`` worst samples (by IoU where evaluated, else
  by the quality signals);

and tags the flagged samples ``low_iou`` and ``suspicious`` (the tags are
first removed from the whole dataset, so they always reflect the latest
call). In the App: pick the saved view in the view bar, or filter by tag.
"""

from __future__ import annotations

from typing import Dict

from fiftyone import ViewField as F

from fiftyone_samrs.fiftyone_io import dataset_of

LOW_IOU_VIEW = "low_iou"
SUSPICIOUS_VIEW = "suspicious_masks"
WORST_VIEW = "worst_samples"
LOW_IOU_TAG = "low_iou"
SUSPICIOUS_TAG = "suspicious"


def _has(sample_collection, field: str) -> bool:
    return sample_collection.has_sample_field(field)


def low_iou_view(sample_collection, eval_key: str = "eval", threshold: float = 0.5):
    """Samples whose ``<eval_key>_iou_i`` is below ``threshold``, worst first."""
    path = "%s_iou_i" % eval_key
    if not _has(sample_collection, path):
        raise ValueError("no %r field: run evaluate(..., eval_key=%r) first" % (path, eval_key))
    return (sample_collection.match((F(path) != None) & (F(path) < threshold))  # noqa: E711
            .sort_by(path))


def suspicious_view(sample_collection):
    """Samples with suspicious instances: most first, then lowest confidence."""
    if not _has(sample_collection, "q_suspicious"):
        raise ValueError("no 'q_suspicious' field: run compute_quality(...) first")
    return (sample_collection.match(F("q_suspicious") > 0)
            .sort_by([("q_suspicious", -1), ("q_min_confidence", 1)]))


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
        return view.match(F(path) != None).sort_by(path).limit(n)  # noqa: E711
    if _has(view, "q_suspicious"):
        return view.sort_by([("q_suspicious", -1), ("q_min_confidence", 1)]).limit(n)
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
    saved (e.g. no ``low_iou`` before an evaluation).

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
        views.append((LOW_IOU_VIEW, low_iou_view(dataset, eval_key, low_iou), LOW_IOU_TAG,
                      "samples with %s_iou_i < %g, worst first" % (eval_key, low_iou)))
    if _has(dataset, "q_suspicious"):
        views.append((SUSPICIOUS_VIEW, suspicious_view(dataset), SUSPICIOUS_TAG,
                      "samples with suspicious masks, most first"))
    if not views:
        raise ValueError("nothing to save: run evaluate(..., eval_key=%r) or compute_quality() "
                         "first" % eval_key)
    views.append((WORST_VIEW, worst_samples(dataset, n_worst, eval_key), None,
                  "the %d worst samples" % n_worst))
    for name, view, tag_name, description in views:
        root.save_view(name, view, description=description, overwrite=True)
        saved[name] = len(view)
        if tag and tag_name:
            root.untag_samples(tag_name)
            view.tag_samples(tag_name)
    return saved


def qa_summary(saved: Dict[str, int]) -> str:
    """One line per saved view."""
    return "\n".join("saved view %-17s %d samples" % (name, n) for name, n in saved.items())
