"""The statistics of a segmentation dataset, as the SAMRS paper shows them.

The paper's Fig. 5 gives, per class of a subset (SOTA, SIOR, FAST), the
number of mask pixels and of instances; its Fig. 6 the distribution of mask
sizes. :func:`dataset_stats` computes them the way the release's
``statistic.py`` does: over instances with a non-empty mask, a class's pixels
are the sum of its instance mask areas (overlapping masks count for each),
and the mask sizes are the instance areas in pixels.

Areas come from each predicted Detection's ``area`` attribute (written by
``segment``), else from its mask (decoded once).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from fiftyone_samrs.core.paths import atomic_write_text

#: files written by :meth:`DatasetStats.write`
STATS_FILES = {
    "json": "stats.json",
    "class_pixels": "class_pixels.png",
    "class_instances": "class_instances.png",
    "mask_sizes": "mask_sizes.png",
}

#: bin edges (pixels) of the mask-size table: powers of 4 from 16 to 4 M
SIZE_BINS = (0, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, np.inf)


@dataclass
class DatasetStats:
    """Per-class pixels and instances, and the mask sizes, of one field.

    Attributes:
        field: the Detections field measured
        classes: the class list (the order of the per-class arrays)
        pixels: mask pixels per class (sum of instance areas)
        instances: non-empty instances per class
        sizes: every non-empty instance's area, in pixels
        images: samples measured
        empty: instances with an empty mask (left out, as the release)
        other: non-empty instances whose label is not in ``classes``, by label
        reviews: instances with a review decision, by ``review`` (accepted,
            replaced, rejected, auto-replaced); rejected ones are left out of
            the other figures, as the exports leave them out
    """

    field: str
    classes: List[str]
    pixels: np.ndarray
    instances: np.ndarray
    sizes: np.ndarray
    images: int = 0
    empty: int = 0
    other: Dict[str, int] = field(default_factory=dict)
    reviews: Dict[str, int] = field(default_factory=dict)

    def size_table(self) -> List[Dict[str, object]]:
        """Instances per mask-size bin (:data:`SIZE_BINS`)."""
        counts, _ = np.histogram(self.sizes, bins=np.asarray(SIZE_BINS, dtype=np.float64))
        rows = []
        for lo, hi, n in zip(SIZE_BINS[:-1], SIZE_BINS[1:], counts):
            rows.append({"from": int(lo), "to": None if not np.isfinite(hi) else int(hi),
                         "instances": int(n)})
        return rows

    def to_dict(self) -> Dict[str, object]:
        sizes = self.sizes
        return {
            "field": self.field, "images": self.images, "instances": int(self.sizes.size),
            "pixels": int(self.sizes.sum()), "empty": self.empty, "other": dict(self.other),
            "reviews": dict(self.reviews),
            "classes": [{"name": c, "pixels": int(p), "instances": int(n)}
                        for c, p, n in zip(self.classes, self.pixels, self.instances)],
            "mask_size": {
                "median": float(np.median(sizes)) if sizes.size else None,
                "mean": float(sizes.mean()) if sizes.size else None,
                "bins": self.size_table(),
            },
        }

    def to_markdown(self) -> str:
        """The per-class table and the mask-size bins as Markdown."""
        left_out = ["%d empty masks" % self.empty] if self.empty else []
        if self.reviews.get("rejected"):
            left_out.append("%d rejected in review" % self.reviews["rejected"])
        lines = ["%d images, %d instances, %d mask pixels in %r%s"
                 % (self.images, int(self.sizes.size), int(self.sizes.sum()), self.field,
                    " (%s left out)" % ", ".join(left_out) if left_out else ""), "",
                 "| class | instances | pixels |", "|---|---:|---:|"]
        for c, p, n in zip(self.classes, self.pixels, self.instances):
            lines.append("| %s | %d | %d |" % (c, n, p))
        for c, n in sorted(self.other.items()):
            lines.append("| %s (not in the class list) | %d | - |" % (c, n))
        if self.reviews:
            lines += ["", "Review decisions: %s" % ", ".join(
                "%s %d" % kv for kv in sorted(self.reviews.items()))]
        lines += ["", "| mask size (px) | instances |", "|---|---:|"]
        for row in self.size_table():
            lines.append("| %s - %s | %d |" % (row["from"], row["to"] or "", row["instances"]))
        return "\n".join(lines) + "\n"

    def figures(self) -> Dict[str, object]:
        """The paper's plots: pixels and instances per class (log scale) and
        the mask-size distribution (log-spaced bins)."""
        from matplotlib.figure import Figure

        out = {}
        for key, values, what in (("class_pixels", self.pixels, "mask pixels"),
                                  ("class_instances", self.instances, "instances")):
            fig = Figure(figsize=(max(6, 0.35 * len(self.classes) + 2), 4), dpi=100)
            ax = fig.add_subplot(111)
            x = np.arange(len(self.classes))
            ax.bar(x, np.maximum(values, 0), color="#3572a5")
            ax.set_xticks(x)
            ax.set_xticklabels(self.classes, rotation=60, ha="right", fontsize=8)
            if values.any():
                ax.set_yscale("log")
            ax.set_ylabel(what)
            ax.set_title("%s per class (%s)" % (what, self.field))
            fig.tight_layout()
            out[key] = fig
        fig = Figure(figsize=(6, 4), dpi=100)
        ax = fig.add_subplot(111)
        if self.sizes.size:
            hi = max(float(self.sizes.max()), 2.0)
            ax.hist(self.sizes, bins=np.logspace(0, np.log10(hi) + 0.01, 40), color="#3572a5",
                    edgecolor="white")
            ax.set_xscale("log")
        ax.set_xlabel("mask size (pixels)")
        ax.set_ylabel("instances")
        ax.set_title("mask sizes of %d instances (%s)" % (self.sizes.size, self.field))
        fig.tight_layout()
        out["mask_sizes"] = fig
        return out

    def write(self, out_dir: str) -> List[str]:
        """Writes ``stats.json``, ``stats.md`` and the plots; returns the paths."""
        from fiftyone_samrs.evaluating.plots import save_figure

        os.makedirs(out_dir, exist_ok=True)
        paths = [os.path.join(out_dir, STATS_FILES["json"]), os.path.join(out_dir, "stats.md")]
        atomic_write_text(paths[0], json.dumps(self.to_dict(), indent=1))
        atomic_write_text(paths[1], self.to_markdown())
        for key, fig in self.figures().items():
            paths.append(save_figure(fig, os.path.join(out_dir, STATS_FILES[key])))
        return paths


def dataset_stats(
    sample_collection,
    label_field: str = "sam",
    classes=None,
    *,
    progress=True,
    batch_size: int = 256,
) -> DatasetStats:
    """Pixels and instances per class, and mask sizes (the paper's Figs. 5, 6).

    Args:
        sample_collection: a dataset or view
        label_field: the Detections field with instance masks
        classes: a subset name (``"SOTA"``), a list, or None (the dataset's:
            its segmentation's class list, ``info["samrs"]["subset"]``...)
        progress: a progress bar (or a FiftyOne progress callback)
        batch_size: samples per database read

    Returns:
        a :class:`DatasetStats`
    """
    import fiftyone as fo

    from fiftyone_samrs.core.classes import resolve_classes
    from fiftyone_samrs.evaluating.loop import SampleRow, for_each_sample
    from fiftyone_samrs.fiftyone_io import check_label_field, default_classes
    from fiftyone_samrs.segmenting.runs import get_segment_run

    check_label_field(sample_collection, label_field, fo.Detections, "instance")
    if classes is not None:
        class_list = resolve_classes(classes)
    else:
        run = get_segment_run(sample_collection, label_field) or {}
        class_list = list(run.get("classes") or default_classes(sample_collection,
                                                                 [label_field, "hbb"]))
    index = {c: i for i, c in enumerate(class_list)}
    pixels = np.zeros(len(class_list), dtype=np.int64)
    counts = np.zeros(len(class_list), dtype=np.int64)
    sizes: List[int] = []
    other: Dict[str, int] = {}
    reviews: Dict[str, int] = {}
    state = {"images": 0, "empty": 0}

    def compute(row: SampleRow):
        state["images"] += 1
        dets = row.labels[label_field]
        for d, inst in zip(dets, _areas(dets, row, label_field)):
            review = d.get("review")
            if review:
                reviews[review] = reviews.get(review, 0) + 1
            if review == "rejected":
                continue
            if inst <= 0:
                state["empty"] += 1
                continue
            sizes.append(inst)
            k = index.get(d.label)
            if k is None:
                other[d.label] = other.get(d.label, 0) + 1
            else:
                pixels[k] += inst
                counts[k] += 1
        return None

    for_each_sample(sample_collection, [label_field], compute, progress=progress,
                    batch_size=batch_size)
    return DatasetStats(label_field, class_list, pixels, counts,
                        np.asarray(sizes, dtype=np.int64), images=state["images"],
                        empty=state["empty"], other=other, reviews=reviews)


def _areas(dets, row, field: str) -> List[int]:
    """Each Detection's mask area: its ``area`` attribute, else its mask's
    (empty Detections count 0)."""
    out: List[Optional[int]] = [0 if d.get("empty") else d.get("area") for d in dets]
    if any(a is None for a in out):
        for i, m in enumerate(row.instances(field)):
            if out[i] is None:
                out[i] = 0 if m is None else m.area
    return [int(a) for a in out]
