"""Plots of an evaluation and of the prompt study, as matplotlib figures.

Every function returns a :class:`matplotlib.figure.Figure` (built without
pyplot, so no GUI backend is needed and nothing global changes); the CLI
writes them as PNG files (:func:`write_plots`), the plugin panel shows them.

- :func:`iou_histogram`: distribution of the per-instance IoU;
- :func:`per_class_miou`: mIoU_I and mIoU_P per class;
- :func:`iou_vs_size`: instance IoU against ground-truth area (log x);
- :func:`study_bars`: the prompt study's mIoU_I / mIoU_P per configuration,
  with the paper's values where known.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

#: file names written by :func:`write_plots`
PLOT_FILES = {
    "iou_histogram": "iou_histogram.png",
    "per_class_miou": "per_class_miou.png",
    "iou_vs_size": "iou_vs_size.png",
}


def _title(results, what: str) -> str:
    key = getattr(results, "key", None)
    return "%s (%s)" % (what, key) if key else what


def iou_histogram(results, bins: int = 20) -> Figure:
    """Histogram of per-instance IoU (missed instances are the bar at 0).

    Args:
        results: a :class:`fiftyone_samrs.evaluating.evaluation.SamrsEvaluationResults`
        bins: number of bins over [0, 1]
    """
    ious = np.asarray(results.ious, dtype=np.float64)
    ious = ious[np.isfinite(ious)]
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot(111)
    ax.hist(ious, bins=np.linspace(0, 1, bins + 1), color="#3572a5", edgecolor="white")
    if ious.size:
        ax.axvline(results.miou_i, color="#d62728", linestyle="--",
                   label="mIoU_I %.1f%%" % (100 * results.miou_i))
        ax.axvline(results.miou_p, color="#2ca02c", linestyle=":",
                   label="mIoU_P %.1f%%" % (100 * results.miou_p))
        ax.legend(loc="upper left")
    ax.set_xlim(0, 1)
    ax.set_xlabel("instance IoU")
    ax.set_ylabel("instances")
    ax.set_title(_title(results, "IoU of %d instances" % ious.size))
    fig.tight_layout()
    return fig


def per_class_miou(results, max_classes: int = 60) -> Figure:
    """Grouped bars of mIoU_I and mIoU_P per class (percent), worst first."""
    items = [(name, r) for name, r in results.per_class.items() if r.get("n")]
    items.sort(key=lambda kv: (np.nan_to_num(kv[1]["miou_i"], nan=-1.0), kv[0]))
    items = items[:max_classes]
    names = [k for k, _ in items]
    mi = [100 * np.nan_to_num(r["miou_i"]) for _, r in items]
    mp = [100 * np.nan_to_num(r["miou_p"]) for _, r in items]
    fig = Figure(figsize=(max(6, 0.45 * len(names) + 2), 4.5), dpi=100)
    ax = fig.add_subplot(111)
    x = np.arange(len(names))
    ax.bar(x - 0.2, mi, width=0.4, label="mIoU_I", color="#3572a5")
    ax.bar(x + 0.2, mp, width=0.4, label="mIoU_P", color="#f28e2b")
    ax.set_xticks(x)
    ax.set_xticklabels(["%s\n(n=%d)" % (k, r["n"]) for k, r in items], rotation=45, ha="right",
                       fontsize=8)
    ax.set_xlim(-0.75, max(len(names), 3) - 0.25)
    ax.set_ylim(0, 100)
    ax.set_ylabel("%")
    ax.legend()
    ax.set_title(_title(results, "mIoU per class"))
    fig.tight_layout()
    return fig


def area_ticks(lo: float, hi: float, max_ticks: int = 7) -> List[float]:
    """Tick positions for a log axis over ``[lo, hi]``: 1-2-5 steps per
    decade; 1-9 when that leaves fewer than 3 ticks, decades when it gives
    more than ``max_ticks``; then thinned to at most ``max_ticks``, so that
    their labels never overlap."""
    if not (lo > 0 and hi >= lo):
        return []
    k0, k1 = int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi)))

    def ticks_of(steps):
        ticks = [m * 10.0 ** k for k in range(k0, k1 + 1) for m in steps]
        return [t for t in ticks if lo <= t <= hi]

    ticks = ticks_of((1, 2, 5))
    if len(ticks) < 3:
        ticks = ticks_of(tuple(range(1, 10)))
    elif len(ticks) > max_ticks:
        ticks = ticks_of((1,))
    if len(ticks) < 2:
        ticks = sorted({float("%.2g" % lo), float("%.2g" % hi)})
    while len(ticks) > max_ticks:
        ticks = ticks[::2]
    return ticks


def area_label(value: float) -> str:
    """A short pixel-area label: 700, 1.5k, 20k, 1.2M."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= div:
            return ("%.3g" % (value / div)) + suffix
    return "%.3g" % value


def _area_ticks(ax, areas: np.ndarray) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    if not areas.size:
        return
    lo, hi = float(areas.min()), float(areas.max())
    pad = (hi / lo) ** 0.05 if hi > lo else 1.5
    lo, hi = lo / pad, hi * pad
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(FixedLocator(area_ticks(lo, hi)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: area_label(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def iou_vs_size(results) -> Figure:
    """Scatter of instance IoU against ground-truth mask area (pixels, log x)."""
    ious = np.asarray(results.ious, dtype=np.float64)
    areas = np.asarray(results.gt_areas, dtype=np.float64)
    labels = np.asarray(results.labels, dtype=np.int64)
    ok = np.isfinite(ious) & (areas > 0)
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot(111)
    classes = list(results.classes)
    if len(classes) <= 10:
        for i, name in enumerate(classes):
            sel = ok & (labels == i)
            if sel.any():
                ax.scatter(areas[sel], ious[sel], s=8, alpha=0.6, label=name)
        if classes:
            ax.legend(fontsize=7, markerscale=2)
    else:
        ax.scatter(areas[ok], ious[ok], s=6, alpha=0.5, color="#3572a5")
    ax.set_xscale("log")
    _area_ticks(ax, areas[ok])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("ground-truth area (pixels)")
    ax.set_ylabel("instance IoU")
    ax.set_title(_title(results, "IoU against object size"))
    fig.tight_layout()
    return fig


def evaluation_figures(results) -> Dict[str, Figure]:
    """All evaluation figures, by name (the keys of :data:`PLOT_FILES`)."""
    return {
        "iou_histogram": iou_histogram(results),
        "per_class_miou": per_class_miou(results),
        "iou_vs_size": iou_vs_size(results),
    }


def study_bars(rows: Sequence, paper: Optional[Dict[str, Sequence[float]]] = None,
               title: str = "Prompt study") -> Figure:
    """Bars of mIoU_I / mIoU_P per configuration, with the paper's values.

    Args:
        rows: objects with ``config``, ``miou_i``, ``miou_p`` (fractions)
        paper: ``{config: (mIoU_I, mIoU_P)}`` in percent, drawn as markers
        title: the figure title
    """
    names = [r.config for r in rows]
    mi = [100 * np.nan_to_num(r.miou_i) for r in rows]
    mp = [100 * np.nan_to_num(r.miou_p) for r in rows]
    fig = Figure(figsize=(max(6, 0.55 * len(names) + 2), 4.5), dpi=100)
    ax = fig.add_subplot(111)
    x = np.arange(len(names))
    ax.bar(x - 0.2, mi, width=0.4, label="mIoU_I", color="#3572a5")
    ax.bar(x + 0.2, mp, width=0.4, label="mIoU_P", color="#f28e2b")
    if paper:
        px = [i for i, n in enumerate(names) if n in paper]
        if px:
            ax.scatter([i - 0.2 for i in px], [paper[names[i]][0] for i in px], marker="_", s=200,
                       color="black", zorder=3, label="paper mIoU_I")
            ax.scatter([i + 0.2 for i in px], [paper[names[i]][1] for i in px], marker="_", s=200,
                       color="dimgray", zorder=3, label="paper mIoU_P")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_xlim(-0.75, max(len(names), 3) - 0.25)
    ax.set_ylim(0, 100)
    ax.set_ylabel("%")
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str) -> str:
    """Writes a figure as PNG (creating the folder; whole or not at all) and
    returns the path."""
    import io

    from fiftyone_samrs.core.paths import atomic_write_bytes

    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return path


def write_plots(sample_collection, eval_key: str = "eval", out_dir: str = ".") -> List[str]:
    """Writes the evaluation plots of ``eval_key`` as PNG files into ``out_dir``.

    Returns:
        the paths written
    """
    from fiftyone_samrs.evaluating.evaluation import load_results

    results = load_results(sample_collection, eval_key)
    paths = []
    for name, fig in evaluation_figures(results).items():
        paths.append(save_figure(fig, os.path.join(out_dir, PLOT_FILES[name])))
    return paths
