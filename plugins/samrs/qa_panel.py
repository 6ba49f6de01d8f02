"""``samrs_qa``: a panel with an evaluation's per-class mIoU, its IoU histogram
and buttons opening that evaluation's low-IoU samples and the suspicious masks,
the review progress of its flagged masks (:func:`fiftyone_samrs.review_progress`:
flagged, reviewed, accepted, replaced, rejected) with a button opening the next
sample to review, and, on demand, the SAMRS paper's statistics of the evaluated
field (its Figs. 5 and 6: instances and pixels per class, the mask-size
distribution, from :func:`fiftyone_samrs.dataset_stats`).

Everything the panel shows and opens belongs to the evaluation chosen at its
top (default: the newest): the low-IoU button opens ``low_iou_<eval_key>``
(saved by ``save_qa_views``) or, where that evaluation has no saved view, the
same view built on the spot with the default threshold. A view that would
come out empty is not opened: the panel says why instead.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import fiftyone.operators as foo
import fiftyone.operators.types as types
import numpy as np

from fiftyone_samrs.evaluating import qa

from .evaluating import results_markdown

HIST_BINS = 20

#: the threshold of a low-IoU view built for an evaluation without a saved one
DEFAULT_LOW_IOU = 0.5


def qa_summary(dataset, eval_key: Optional[str] = None) -> Dict[str, Any]:
    """What the panel shows, computed from the dataset (JSON-serialisable).

    Args:
        dataset: the App's dataset
        eval_key: the evaluation to show; default the newest

    Returns:
        a dict with ``eval_keys`` (mask evaluations of the dataset, oldest
        first), ``eval_key`` (the one shown), ``markdown`` (dataset and
        per-class mIoU), ``ious`` (the instance IoUs binned: :func:`histogram`),
        ``low_iou`` and ``suspicious`` (what each button opens: ``view``
        (a saved view name, or None when built on the spot), ``count``,
        ``text`` (one line for the panel) and ``reason`` (why it is empty,
        or None)), ``review`` (:func:`review_summary`) and ``pred_field``
        (the evaluated field, which the statistics button measures)
    """
    from fiftyone_samrs.evaluating import evaluation
    keys = _eval_keys_by_time(dataset, evaluation.list_runs(dataset)) if dataset else []
    out: Dict[str, Any] = {"eval_keys": keys, "eval_key": None, "markdown": "", "ious": [],
                           "low_iou": None, "suspicious": None, "pred_field": None,
                           "review": None}
    if not keys:
        out["markdown"] = ("No mask evaluation yet: run **SAMRS: Evaluate masks** "
                           "(press `` ` `` and search for it).")
        return out
    key = eval_key if eval_key in keys else keys[-1]
    results = evaluation.load_results(dataset, key)
    out["eval_key"] = key
    out["pred_field"] = getattr(results.config, "pred_field", None)
    out["markdown"] = results_markdown(results)
    ious = np.asarray(results.ious, dtype=np.float64)
    out["ious"] = histogram(ious[np.isfinite(ious)], HIST_BINS, (0.0, 1.0))  # NaN: empty union
    low = low_iou_view(dataset, key)
    out["low_iou"] = _describe(dataset, *low)
    out["review"] = review_summary(dataset, key, low[3], low[0])
    suspicious = suspicious_view(dataset)
    pred_field = out["pred_field"]
    out["suspicious"] = _describe(dataset, *suspicious, pred_field=pred_field) if suspicious \
        else {"view": None, "count": 0, "text": "suspicious masks: no mask-quality signals "
              "(Evaluate masks with Mask-quality signals checked)",
              "reason": qa.empty_reason(dataset, qa.SUSPICIOUS_VIEW)}
    return out


def review_summary(dataset, eval_key: str, threshold: float, view) -> Optional[Dict[str, Any]]:
    """The review progress the panel shows: ``markdown`` (one line),
    ``to_review`` and ``next_sample`` (None when nothing is left), or None
    where the evaluated field is gone."""
    from fiftyone_samrs.evaluating.review import review_progress

    try:
        p = review_progress(dataset, eval_key, threshold, view=view)
    except ValueError:
        return None
    return {"markdown": p.to_markdown(), "to_review": p.to_review, "next_sample": p.next_sample}


def stats_summary(dataset, label_field: str) -> Dict[str, Any]:
    """The paper's statistics of a predicted field, as the panel shows them.

    Args:
        dataset: the App's dataset (or a view)
        label_field: the Detections field with instance masks

    Returns:
        a dict with ``field``, ``markdown`` (:meth:`DatasetStats.to_markdown`),
        ``classes`` (a Plotly bar chart of instances and pixels per class, log
        scale) and ``sizes`` (a Plotly bar chart of log10 mask areas, binned here)
    """
    from fiftyone_samrs.evaluating.stats import dataset_stats

    st = dataset_stats(dataset, label_field, progress=False)
    bars = [{"type": "bar", "x": list(st.classes), "y": [int(v) for v in values], "name": name}
            for values, name in ((st.instances, "instances"), (st.pixels, "pixels"))]
    logs = np.log10(np.maximum(np.asarray(st.sizes, dtype=np.float64), 1))
    hist = histogram(logs, 40, (0.0, max(float(logs.max()) if logs.size else 1.0, 1.0)))
    sizes = [{"type": "bar", "x": hist["centres"], "y": hist["counts"], "width": hist["width"],
              "name": "log10 mask pixels", "marker": {"color": "#3572a5"}}]
    return {"field": label_field, "markdown": st.to_markdown(), "classes": bars, "sizes": sizes}


def histogram(values: np.ndarray, bins: int, span) -> Dict[str, Any]:
    """Values binned here (``np.histogram``), so that the browser gets a few
    KB whatever the dataset's size: ``counts``, bin ``centres``, ``width``
    and ``n`` (values counted)."""
    counts, edges = np.histogram(values, bins=bins, range=span)
    return {"counts": [int(c) for c in counts],
            "centres": [round(float(c), 6) for c in (edges[:-1] + edges[1:]) / 2],
            "width": float(edges[1] - edges[0]), "n": int(counts.sum())}


def low_iou_view(dataset, eval_key: str):
    """``(view, saved view name or None, eval_key, threshold)`` of an
    evaluation's low-IoU samples: its saved ``low_iou_<eval_key>``, else
    built with :data:`DEFAULT_LOW_IOU`."""
    name = qa.low_iou_view_name(eval_key)
    threshold = qa.low_iou_threshold(dataset, eval_key)
    if name in dataset.list_saved_views():
        return dataset.load_saved_view(name), name, eval_key, threshold
    threshold = DEFAULT_LOW_IOU if threshold is None else threshold
    return qa.low_iou_view(dataset, eval_key, threshold), None, eval_key, threshold


def suspicious_view(dataset):
    """``(view, saved view name or None, None, None)`` of the suspicious
    masks, or None without quality signals."""
    if qa.SUSPICIOUS_VIEW in dataset.list_saved_views():
        return dataset.load_saved_view(qa.SUSPICIOUS_VIEW), qa.SUSPICIOUS_VIEW, None, None
    if dataset.has_sample_field("q_suspicious"):
        return qa.suspicious_view(dataset), None, None, None
    return None


def _describe(dataset, view, name, eval_key, threshold, pred_field=None) -> Dict[str, Any]:
    from fiftyone_samrs.fiftyone_io import without_sorting

    count = without_sorting(view).count()  # the match alone: served by the QA indexes
    if eval_key is not None:
        what = "low IoU (`%s_iou_i` < %s)" % (eval_key, "%g" % threshold
                                              if threshold is not None else "?")
        reason = qa.empty_reason(dataset, qa.LOW_IOU_VIEW, eval_key, threshold) \
            if not count else None
    else:
        quality_of = _quality_field(dataset)
        what = "suspicious masks" + (" of `%s`" % quality_of if quality_of else "")
        if quality_of and pred_field and quality_of != pred_field:
            what += " (this evaluation scored `%s`)" % pred_field
        reason = qa.empty_reason(dataset, qa.SUSPICIOUS_VIEW) if not count else None
    text = "%s: %d sample%s%s" % (what, count, "" if count == 1 else "s",
                                  (" (saved view `%s`)" % name) if name else "")
    return {"view": name, "count": count, "text": text, "reason": reason}


def _quality_field(dataset) -> Optional[str]:
    """The predicted field the latest mask-quality run scored."""
    best, when = None, ""
    try:
        for key in dataset.list_runs():
            if not key.startswith("quality_"):
                continue
            info = dataset.get_run_info(key)
            stamp = str(info.timestamp)
            if stamp >= when:
                best, when = getattr(info.config, "pred_field", None), stamp
    except Exception:
        return None
    return best


def _newest_eval(dataset) -> Optional[str]:
    from fiftyone_samrs.evaluating import evaluation

    keys = _eval_keys_by_time(dataset, evaluation.list_runs(dataset)) if dataset else []
    return keys[-1] if keys else None


def _eval_keys_by_time(dataset, keys: List[str]) -> List[str]:
    def when(key):
        try:
            return str(dataset.get_evaluation_info(key).timestamp)
        except Exception:
            return ""

    return sorted(keys, key=when)


class QAPanel(foo.Panel):
    """Per-class mIoU and IoU histogram of an evaluation, with its QA views one click away."""

    @property
    def config(self):
        return foo.PanelConfig(
            name="samrs_qa",
            label="SAMRS QA",
            icon="insights",
            help_markdown="Results of **SAMRS: Evaluate masks**: per-class mIoU, the "
                          "IoU histogram, and the worst samples of the evaluation shown.",
        )

    # ------------------------------------------------------------ events

    def on_load(self, ctx):
        self._refresh(ctx)

    def on_change_dataset(self, ctx):
        self._refresh(ctx)

    def refresh(self, ctx):
        self._refresh(ctx)

    def choose_eval(self, ctx):
        self._refresh(ctx, ctx.params.get("value"))

    def open_low_iou(self, ctx):
        key = self._eval_key(ctx)
        if key:
            view, _, _, threshold = low_iou_view(ctx.dataset, key)
            self._open(ctx, view, qa.LOW_IOU_VIEW, key, threshold)

    def open_suspicious(self, ctx):
        found = suspicious_view(ctx.dataset)
        if found is None:
            ctx.ops.notify(qa.empty_reason(ctx.dataset, qa.SUSPICIOUS_VIEW), variant="warning")
            return
        self._open(ctx, found[0], qa.SUSPICIOUS_VIEW, None, None)

    def next_to_review(self, ctx):
        """Opens the worst low-IoU sample that still has a flagged label to review."""
        key = self._eval_key(ctx)
        if not key:
            return
        review = self._refresh(ctx, key).get("review")
        if not review or not review["next_sample"]:
            ctx.ops.notify("nothing left to review in the low-IoU samples of %s" % key,
                           variant="info")
            return
        ctx.ops.set_view(view=low_iou_view(ctx.dataset, key)[0])
        ctx.ops.open_sample(id=review["next_sample"])

    def show_stats(self, ctx):
        """Computes the paper's statistics of the shown evaluation's predicted field."""
        key = ctx.panel.get_state("eval_key")
        field = ctx.panel.get_state("pred_field") or "sam"
        if not ctx.dataset.has_sample_field(field):
            ctx.ops.notify("no field %r to measure" % field, variant="warning")
            return
        try:
            st = stats_summary(ctx.dataset, field)
        except Exception as e:
            ctx.ops.notify("could not compute the statistics of %r: %s" % (field, e),
                           variant="error")
            return
        ctx.panel.set_state("stats_md", "**Statistics of `%s`**%s\n\n%s" % (
            field, " (the field evaluated by `%s`)" % key if key else "", st["markdown"]))
        ctx.panel.set_data("stats_classes", st["classes"])
        ctx.panel.set_data("stats_sizes", st["sizes"])

    def _eval_key(self, ctx) -> Optional[str]:
        """The evaluation shown (else the newest); None, said, without one."""
        key = ctx.panel.get_state("eval_key") or _newest_eval(ctx.dataset)
        if not key:
            ctx.ops.notify("no evaluation: run SAMRS: Evaluate masks", variant="warning")
        return key

    def _open(self, ctx, view, kind, eval_key, threshold):
        if not view.count():
            ctx.ops.notify("nothing to open: %s" % qa.empty_reason(
                ctx.dataset, kind, eval_key or "eval", threshold), variant="info")
            self._refresh(ctx)
            return
        ctx.ops.set_view(view=view)

    def _refresh(self, ctx, eval_key=None) -> Dict[str, Any]:
        """Recomputes what the panel shows (:func:`qa_summary`) into its
        state and data; returns that summary."""
        try:
            summary = qa_summary(ctx.dataset, eval_key or ctx.panel.get_state("eval_key"))
        except Exception as e:
            summary = {"eval_keys": [], "eval_key": None, "ious": histogram(
                np.zeros(0), HIST_BINS, (0.0, 1.0)), "low_iou": None,
                       "suspicious": None,
                       "markdown": "Could not read the evaluation: %s" % e}
        ctx.panel.set_state("eval_key", summary["eval_key"])
        ctx.panel.set_state("eval_keys", summary["eval_keys"])
        ctx.panel.set_state("markdown", summary["markdown"])
        ctx.panel.set_state("low_iou", summary["low_iou"])
        ctx.panel.set_state("suspicious", summary["suspicious"])
        ctx.panel.set_state("review", summary.get("review"))
        hist = summary["ious"]
        ctx.panel.set_state("n_ious", hist["n"])
        ctx.panel.set_state("pred_field", summary.get("pred_field"))
        ctx.panel.set_data("iou_hist", [{
            "type": "bar", "x": hist["centres"], "y": hist["counts"], "width": hist["width"],
            "name": "instance IoU", "marker": {"color": "#ff6d04"},
        }])
        return summary

    # ------------------------------------------------------------ layout

    def render(self, ctx):
        panel = types.Object()
        keys = ctx.panel.get_state("eval_keys") or []
        key = ctx.panel.get_state("eval_key")
        if len(keys) > 1:
            dropdown = types.DropdownView()
            for k in keys:
                dropdown.add_choice(k, label=k)
            panel.enum("eval_key", keys, default=key, label="Evaluation", view=dropdown,
                       on_change=self.choose_eval)
        markdown = ctx.panel.get_state("markdown") or "Loading..."
        headline, _, table = markdown.partition("\n\n")
        panel.md(headline, name="headline")
        low = ctx.panel.get_state("low_iou") or {}
        susp = ctx.panel.get_state("suspicious") or {}
        if key:
            lines = ["**Views of `%s`**" % key]
            for item in (low, susp):
                if item:
                    lines.append("- %s%s" % (item["text"], (": %s" % item["reason"])
                                             if item.get("reason") else ""))
            panel.md("\n".join(lines), name="views")
        review = ctx.panel.get_state("review") or {}
        if review:
            panel.md(review["markdown"], name="review_md")
        buttons = panel.h_stack("buttons", align_x="left", gap=2)
        buttons.btn("open_low_iou", label="Open low-IoU samples%s" % (
                        " (%d)" % low["count"] if low else ""),
                    icon="trending_down", variant="contained", on_click=self.open_low_iou,
                    disabled=not low.get("count"))
        buttons.btn("open_suspicious", label="Open suspicious masks%s" % (
                        " (%d)" % susp["count"] if susp else ""),
                    icon="report", variant="outlined", on_click=self.open_suspicious,
                    disabled=not susp.get("count"))
        buttons.btn("next_to_review", label="Next to review%s" % (
                        " (%d)" % review["to_review"] if review else ""),
                    icon="rate_review", variant="outlined", on_click=self.next_to_review,
                    disabled=not review.get("to_review"))
        buttons.btn("show_stats", label="Dataset statistics", icon="bar_chart",
                    variant="outlined", on_click=self.show_stats, disabled=not key)
        buttons.btn("refresh", label="Refresh", icon="refresh", on_click=self.refresh)
        if ctx.panel.get_state("n_ious"):
            panel.plot("iou_hist", layout={
                "title": "Instance IoU (%s)" % key,
                "xaxis": {"title": "IoU", "range": [0, 1]},
                "yaxis": {"title": "instances"}, "bargap": 0.05, "height": 300,
                "autosize": True,
            }, config={"responsive": True})
        if table:
            panel.md(table, name="per_class")
        stats_md = ctx.panel.get_state("stats_md")
        if stats_md:
            head, _, rest = stats_md.partition("\n\n")
            panel.md(head, name="stats_headline")
            panel.plot("stats_classes", layout={
                "title": "Instances and pixels per class", "barmode": "group",
                "yaxis": {"type": "log"}, "height": 320, "autosize": True,
            }, config={"responsive": True})
            panel.plot("stats_sizes", layout={
                "title": "Mask sizes", "xaxis": {"title": "log10 mask pixels"},
                "yaxis": {"title": "instances"}, "height": 300, "autosize": True,
            }, config={"responsive": True})
            panel.md(rest, name="stats_tables")
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=2))
