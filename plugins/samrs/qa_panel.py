"""``samrs_qa``: a panel with the last evaluation's per-class mIoU, its IoU
histogram and buttons opening the ``low_iou`` and ``suspicious_masks`` views."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_samrs.evaluating.qa import LOW_IOU_VIEW, SUSPICIOUS_VIEW

from . import common
from .evaluating import results_markdown

HIST_BINS = 20


def qa_summary(dataset, eval_key: Optional[str] = None) -> Dict[str, Any]:
    """What the panel shows, computed from the dataset (JSON-serialisable).

    Args:
        dataset: the App's dataset
        eval_key: the evaluation to show; default the newest

    Returns:
        a dict with ``eval_keys`` (mask evaluations of the dataset, oldest
        first), ``eval_key`` (the one shown), ``markdown`` (dataset and
        per-class mIoU), ``ious`` (per-instance IoU, for the histogram) and
        ``views`` (which QA views exist)
    """
    from fiftyone_samrs.evaluating import evaluation
    keys = _eval_keys_by_time(dataset, evaluation.list_runs(dataset)) if dataset else []
    views = set(dataset.list_saved_views()) if dataset is not None else set()
    out: Dict[str, Any] = {"eval_keys": keys, "eval_key": None, "markdown": "", "ious": [],
                           "views": sorted(views & {LOW_IOU_VIEW, SUSPICIOUS_VIEW})}
    if not keys:
        out["markdown"] = ("No mask evaluation yet: run **SAMRS: Evaluate masks** "
                           "(press `` ` `` and search for it).")
        return out
    key = eval_key if eval_key in keys else keys[-1]
    results = evaluation.load_results(dataset, key)
    out["eval_key"] = key
    out["markdown"] = results_markdown(results)
    out["ious"] = [float(v) for v in results.ious if v == v]  # NaN: empty union
    return out


def _eval_keys_by_time(dataset, keys: List[str]) -> List[str]:
    def when(key):
        try:
            return str(dataset.get_evaluation_info(key).timestamp)
        except Exception:  # noqa: BLE001
            return ""

    return sorted(keys, key=when)


class QAPanel(foo.Panel):
    """Per-class mIoU and IoU histogram of an evaluation, with the QA views one click away."""

    @property
    def config(self):
        return foo.PanelConfig(
            name="samrs_qa",
            label="SAMRS QA",
            icon="insights",
            help_markdown="Results of **SAMRS: Evaluate masks**: per-class mIoU, the "
                          "IoU histogram, and the saved views of the worst samples.",
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
        self._open_view(ctx, LOW_IOU_VIEW)

    def open_suspicious(self, ctx):
        self._open_view(ctx, SUSPICIOUS_VIEW)

    def _open_view(self, ctx, name):
        if name not in ctx.dataset.list_saved_views():
            ctx.ops.notify("the %s view does not exist yet: run SAMRS: Evaluate masks" % name,
                           variant="warning")
            return
        common.open_saved_view(ctx, name)

    def _refresh(self, ctx, eval_key=None):
        try:
            summary = qa_summary(ctx.dataset, eval_key or ctx.panel.get_state("eval_key"))
        except Exception as e:  # noqa: BLE001 - shown in the panel, not a crash
            summary = {"eval_keys": [], "eval_key": None, "ious": [], "views": [],
                       "markdown": "Could not read the evaluation: %s" % e}
        ctx.panel.set_state("eval_key", summary["eval_key"])
        ctx.panel.set_state("eval_keys", summary["eval_keys"])
        ctx.panel.set_state("markdown", summary["markdown"])
        ctx.panel.set_state("views", summary["views"])
        ctx.panel.set_state("n_ious", len(summary["ious"]))
        ctx.panel.set_data("iou_hist", [{
            "type": "histogram", "x": summary["ious"], "name": "instance IoU",
            "xbins": {"start": 0.0, "end": 1.0, "size": 1.0 / HIST_BINS},
            "marker": {"color": "#ff6d04"},
        }])

    # ------------------------------------------------------------ layout

    def render(self, ctx):
        panel = types.Object()
        keys = ctx.panel.get_state("eval_keys") or []
        if len(keys) > 1:
            dropdown = types.DropdownView()
            for k in keys:
                dropdown.add_choice(k, label=k)
            panel.enum("eval_key", keys, default=ctx.panel.get_state("eval_key"),
                       label="Evaluation", view=dropdown, on_change=self.choose_eval)
        markdown = ctx.panel.get_state("markdown") or "Loading..."
        headline, _, table = markdown.partition("\n\n")
        panel.md(headline, name="headline")
        views = ctx.panel.get_state("views") or []
        buttons = panel.h_stack("buttons", align_x="left", gap=2)
        buttons.btn("open_low_iou", label="Open low-IoU samples", icon="trending_down",
                    variant="contained", on_click=self.open_low_iou,
                    disabled=LOW_IOU_VIEW not in views)
        buttons.btn("open_suspicious", label="Open suspicious masks", icon="report",
                    variant="outlined", on_click=self.open_suspicious,
                    disabled=SUSPICIOUS_VIEW not in views)
        buttons.btn("refresh", label="Refresh", icon="refresh", on_click=self.refresh)
        if ctx.panel.get_state("n_ious"):
            panel.plot("iou_hist", layout={
                "title": "Instance IoU (%s)" % ctx.panel.get_state("eval_key"),
                "xaxis": {"title": "IoU", "range": [0, 1]},
                "yaxis": {"title": "instances"}, "bargap": 0.05, "height": 300,
            })
        if table:
            panel.md(table, name="per_class")
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=2,
                                                         padding=2))
