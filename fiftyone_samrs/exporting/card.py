"""What every export says about itself: ``README.md`` (the dataset card),
``stats.json`` (the paper's Figs. 5-6 figures of the exported instances) and
``splits.json`` (images, labelled images and instances per split).

The card records where the masks came from (the segmentation run: backend,
model, checkpoint and its SHA-256, prompt, dtype, margin, painting order),
where the images came from (the import: format, version, tiling), the class
list with pixel values and COCO ids, and the counts per split, and says
loudly when the masks were made by the stand-in ``samrs-tiny``.
"""

from __future__ import annotations

import hashlib
import json
import os
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from fiftyone_samrs import __version__

#: the files :func:`write_card` writes, in the export's folder
CARD_FILES = ("README.md", "stats.json", "splits.json")

#: where each source dataset's terms are; the masks inherit the images' terms
LICENCES = {
    "dota": "DOTA's terms (academic use; Google Earth and satellite imagery terms apply): "
            "see the DOTA website",
    "dior": "DIOR / DIOR-R's release terms: see the DIOR paper's data page",
    "fair1m": "FAIR1M's terms (Gaofen challenge release): see its data page",
    "hrsc": "HRSC2016's release terms: see its data page",
}


@dataclass
class ExportStats:
    """Instances and mask pixels per class and the mask sizes of an export,
    accumulated as it writes (the figures of ``samrs stats``)."""

    classes: List[str]
    instances: np.ndarray = None
    pixels: np.ndarray = None
    sizes: array = field(default_factory=lambda: array("q"))
    images: int = 0
    reviews: Counter = field(default_factory=Counter)

    def __post_init__(self):
        n = len(self.classes)
        self.instances = np.zeros(n, np.int64)
        self.pixels = np.zeros(n, np.int64)

    def add(self, written: Sequence) -> None:
        """Counts one image's written ``(instance, class index, rle, area)``."""
        self.images += 1
        for inst, idx, _, area in written:
            if inst.review:
                self.reviews[inst.review] += 1
            if area:
                self.instances[idx] += 1
                self.pixels[idx] += int(area)
                self.sizes.append(int(area))

    def to_dict(self, field_name: str, rejected: int = 0) -> Dict[str, Any]:
        """The figures as ``stats.json`` has them; ``rejected``: instances
        left out as rejected in review (counted in ``reviews``)."""
        from fiftyone_samrs.evaluating.stats import DatasetStats

        reviews = Counter(self.reviews)
        if rejected:
            reviews["rejected"] += rejected
        stats = DatasetStats(field=field_name, classes=list(self.classes), pixels=self.pixels,
                             instances=self.instances,
                             sizes=np.frombuffer(self.sizes, dtype=np.int64)
                             if self.sizes else np.zeros(0, np.int64),
                             images=self.images, reviews=dict(reviews))
        return stats.to_dict()


def sha256_of(path: str, chunk: int = 1 << 22) -> str:
    """The SHA-256 of a file, in hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def model_provenance(run: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """Backend, model, checkpoint (path and SHA-256), prompt, dtype, margin
    and painting order of the segmentation run that wrote the masks."""
    if not run:
        return {"recorded": False}
    out = {k: run.get(k) for k in ("backend", "model", "checkpoint", "prompt", "margin",
                                   "clip_to_rbox", "paint_order", "status")}
    out["recorded"] = True
    out["encoder"] = run.get("encoder_settings")
    path = _checkpoint_file(run)
    out["checkpoint_file"] = path
    out["checkpoint_sha256"] = sha256_of(path) if path and os.path.isfile(path) else None
    out["samrs_tiny"] = _is_samrs_tiny(run)
    return out


def _is_samrs_tiny(run: Dict[str, Any]) -> bool:
    from fiftyone_samrs.segmenting.sam.samrs_tiny import is_samrs_tiny

    return any(is_samrs_tiny(run.get(k)) for k in ("model", "checkpoint"))


def _checkpoint_file(run: Dict[str, Any]) -> Optional[str]:
    if _is_samrs_tiny(run):
        from fiftyone_samrs.segmenting.sam.samrs_tiny import checkpoint_path

        return checkpoint_path()
    for key in ("checkpoint", "model"):
        value = run.get(key)
        if isinstance(value, str) and os.path.isfile(value):
            return os.path.abspath(value)
    return None


def import_provenance(info: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """Format, version, source folder and tiling of the import (from
    ``dataset.info["samrs"]``)."""
    samrs = dict((info or {}).get("samrs") or {})
    options = samrs.get("options") or {}
    out = {k: samrs.get(k) for k in ("format", "source_dir", "subset", "tile", "tile_size",
                                     "gap", "keep_thresh")}
    out["version"] = options.get("version") or samrs.get("version")
    out["licence"] = LICENCES.get(str(samrs.get("format") or "").lower())
    return out


def card_dict(*, dataset_name, fmt, classes, category_id_start, model, source, splits,
              plan, result) -> Dict[str, Any]:
    """Everything the card says, as one JSON-able dict (also in ``splits.json``)."""
    return {
        "fiftyone_samrs": __version__, "dataset": dataset_name, "format": fmt,
        "classes": [{"name": c, "pixel_value": i, "coco_id": i + category_id_start}
                    for i, c in enumerate(classes)],
        "category_id_start": category_id_start, "model": model, "source": source,
        "splits": splits, "split_rule": plan,
        "images": result.images, "instances": result.instances,
        "skipped": dict(result.skipped), "rbox_derived": result.rbox_derived,
        "rbox_from_source": result.rbox_from_source,
    }


def write_card(paths: Dict[str, str], card: Dict[str, Any], stats: Dict[str, Any]) -> None:
    """Writes ``README.md``, ``stats.json`` and ``splits.json`` (``paths``
    maps each name of :data:`CARD_FILES` to its path)."""
    from fiftyone_samrs.core.paths import atomic_write_text

    atomic_write_text(paths["README.md"], render_card(card, stats))
    atomic_write_text(paths["stats.json"], json.dumps(stats, indent=1) + "\n")
    atomic_write_text(paths["splits.json"], json.dumps(
        {"splits": card["splits"], "rule": card["split_rule"]}, indent=1) + "\n")


def render_card(card: Dict[str, Any], stats: Dict[str, Any]) -> str:
    """The dataset card as Markdown."""
    model, source = card["model"], card["source"]
    lines = ["# %s: SAM instance masks (fiftyone-samrs %s)" % (card["dataset"],
                                                               card["fiftyone_samrs"]), ""]
    if model.get("samrs_tiny"):
        lines += ["> **WARNING: the masks were made by `samrs-tiny`, a small stand-in model "
                  "trained on generated scenes for demos and tests. They are NOT SAM masks "
                  "and must not be used to train or evaluate models on real data.**", ""]
    lines += _section("Source", [
        ("dataset format", source.get("format")), ("version", source.get("version")),
        ("source folder", source.get("source_dir")), ("tiled", source.get("tile")),
        ("tile size / gap / keep threshold", "%s / %s / %s" % (
            source.get("tile_size"), source.get("gap"), source.get("keep_thresh"))
         if source.get("tile") else None),
        ("licence", source.get("licence"))])
    lines += _section("Masks", _model_rows(model))
    lines += _class_table(card)
    lines += _split_table(card)
    lines += ["## Rotated boxes", "",
              "`rbbtxts/<stem>.txt` (DOTA format) and `rbox` in the COCO JSONs: %d from the "
              "source's rotated boxes, %d **derived** from the masks (minimum-area rectangle; "
              "`rbox_source: \"mask\"`)." % (card["rbox_from_source"], card["rbox_derived"]),
              "", "## Statistics", "",
              "%d instances with a mask, %d mask pixels (`stats.json`: per class, and the "
              "mask-size histogram)." % (stats["instances"], stats["pixels"]), ""]
    if stats.get("reviews"):
        lines += ["Review decisions on the objects: %s (`review` in the COCO JSONs)." % ", ".join(
            "%s %d" % kv for kv in sorted(stats["reviews"].items())), ""]
    if card.get("skipped"):
        lines += ["Objects left out, by reason: %s." % ", ".join(
            "%s %d" % kv for kv in sorted(card["skipped"].items())), ""]
    return "\n".join(lines)


def _section(title: str, rows) -> List[str]:
    out = ["## " + title, "", "| | |", "|---|---|"]
    out += ["| %s | %s |" % (k, "`%s`" % v if v not in (None, "") else "-") for k, v in rows]
    return out + [""]


def _model_rows(model: Dict[str, Any]):
    if not model.get("recorded"):
        return [("segmentation run", "not recorded (masks from another tool or an older "
                                     "version)")]
    encoder = model.get("encoder") or {}
    return [("backend", model.get("backend")), ("model", model.get("model")),
            ("checkpoint", model.get("checkpoint_file") or model.get("checkpoint")),
            ("checkpoint SHA-256", model.get("checkpoint_sha256")),
            ("prompt", model.get("prompt")), ("dtype", encoder.get("dtype")
                                              if isinstance(encoder, dict) else encoder),
            ("margin", model.get("margin")), ("clip to rotated box", model.get("clip_to_rbox")),
            ("painting order", model.get("paint_order")), ("run status", model.get("status"))]


def _class_table(card: Dict[str, Any]) -> List[str]:
    out = ["## Classes", "",
           "Pixel value = class index in `classes.txt` (the PNGs and pickles, 0-based as the "
           "SAMRS release, 255 = ignore); COCO category id = index + %d (the JSONs)."
           % card["category_id_start"], "", "| class | pixel value | COCO id |",
           "|---|---:|---:|"]
    out += ["| %s | %d | %d |" % (c["name"], c["pixel_value"], c["coco_id"])
            for c in card["classes"]]
    return out + [""]


def _split_table(card: Dict[str, Any]) -> List[str]:
    out = ["## Splits", "", card["split_rule"] + ".", "",
           "| split | images | labelled images | instances |", "|---|---:|---:|---:|"]
    out += ["| %s | %d | %d | %d |" % (name, s["images"], s["labeled_images"], s["instances"])
            for name, s in card["splits"].items()]
    return out + [""]


__all__ = ["ExportStats", "CARD_FILES", "write_card", "render_card", "card_dict",
           "model_provenance", "import_provenance", "sha256_of"]
