"""Derived rotated boxes (issue 21): their rotated IoU with the source's own rotated boxes.

An export writes, for an instance without a source rotated box, the
minimum-area rectangle of its mask (:func:`fiftyone_samrs.core.rboxes.rbox_from_mask`).
This measures how close that comes to the rotated box the dataset itself
gives, per dataset:

1. **generated trees** (:mod:`fiftyone_samrs.testing.synthetic`), read back with
   the project's parsers (``formats/``): DOTA v1.0 with iSAID masks (the
   demo's tree; masks paired to boxes by :func:`~fiftyone_samrs.formats.isaid.match_to_objects`
   as the importer pairs them), HRSC2016 (masks from its ``Segmentations/``
   PNGs via :func:`~fiftyone_samrs.formats.hrsc.scan`), DIOR-R and FAIR1M
   (whose real releases have no masks: the generator's drawn masks). For each
   object: the box derived from its ground-truth mask against the quad in the
   label file. Objects are rectangles, ellipses, plane crosses and pointed
   hulls, so the mask is not always its box.
2. **the real sample files** of ``../shared/samples`` (read-only). None of them
   has a mask (the HRSC2016 sample says ``segmented 0`` and ships no
   ``Segmentations/`` PNG; DIOR-R, DOTA and FAIR1M have none at all), so only
   the digitisation check can be run there: each source box is rasterised
   (pixel-centre rule, :func:`~fiftyone_samrs.core.masks.rasterize`) and the
   box derived from that mask compared with it. On real DOTA this also shows
   what a rectangle loses against annotators' free quadrilaterals.

The "raster" rows do the same check on the generated boxes: the ceiling of
the mask rows, what pixels alone cost. ``snap 0`` is the IoU without
``snap_px`` (the strict minimum-area rectangle: round objects may turn).

3. **per-instance cost** on 100x100 crops (rotated rectangles and ellipses
   filling the crop): :func:`rbox_from_mask`, the naive
   ``cv2.minAreaRect(cv2.findNonZero(crop))`` (pixel centres, no exact
   axis-aligned box), :func:`rotated_iou` and :func:`dota_line`.

Usage::

    .venv/bin/python benchmarks/measure_derived_rboxes.py            # about 15 s on 2 cores
    .venv/bin/python benchmarks/measure_derived_rboxes.py --quick    # smoke run

Writes ``benchmarks/results/derived-rboxes.md`` (``--out``) and prints it. No
FiftyOne, no database.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from typing import Dict, Iterable, List, Optional

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from fiftyone_samrs.core.classes import DOTA_CLASSES  # noqa: E402
from fiftyone_samrs.core.geometry import rbox_to_quad  # noqa: E402
from fiftyone_samrs.core.masks import polygon_pixels, rasterize  # noqa: E402
from fiftyone_samrs.core.rboxes import dota_line, rbox_from_mask, rotated_iou  # noqa: E402
from fiftyone_samrs.core.records import InstanceMask  # noqa: E402
from fiftyone_samrs.formats import dior, dota, fair1m, hrsc, isaid  # noqa: E402
from fiftyone_samrs.testing import synthetic  # noqa: E402

DEFAULT_OUT = os.path.join(REPO, "benchmarks", "results", "derived-rboxes.md")
DEFAULT_SAMPLES = os.path.join(os.path.dirname(REPO), "shared", "samples")


# --------------------------------------------------------------------------
# one object: its source quad, and its mask when there is one


class Item:
    """One object: dataset, class, drawn shape, GT mask (or None), source quad."""

    def __init__(self, dataset: str, label: str, shape: str,
                 mask: Optional[InstanceMask], quad: np.ndarray):
        self.dataset, self.label, self.shape, self.mask = dataset, label, shape, mask
        self.quad = np.asarray(quad, dtype=np.float64).reshape(4, 2)
        e = np.linalg.norm(self.quad - np.roll(self.quad, -1, axis=0), axis=1)
        self.long_side = float(e.max())


def _iou_from(mask: Optional[InstanceMask], quad: np.ndarray, snap_px=None) -> Optional[float]:
    """Rotated IoU of the box derived from ``mask`` with ``quad`` (None without a mask)."""
    if mask is None or not mask.mask.size:
        return None
    kw = {} if snap_px is None else {"snap_px": snap_px}
    box = rbox_from_mask(mask.mask, mask.x0, mask.y0, **kw)
    return None if box is None else rotated_iou(box, quad)


def _raster(quad: np.ndarray) -> Optional[InstanceMask]:
    """The quad rasterised under the pixel-centre rule (None when no pixel is in)."""
    m = rasterize([quad])
    return m if m.mask.size and m.mask.any() else None


# --------------------------------------------------------------------------
# generated trees, read back with the parsers


def dota_items(root: str, n_images: int, seed: int) -> List[Item]:
    """The demo's DOTA v1.0 tree with iSAID masks, paired as the importer pairs them."""
    gt = synthetic.make_dota_tree(root, n_images=n_images, n_objects=40, size=(1024, 768),
                                  seed=seed, with_isaid=True, workers=2)
    items = []
    for img in gt["images"]:
        _, objs = dota.parse_label_file(img["label_path"], classes=DOTA_CLASSES["1.0"])
        inst = isaid.read_instances(img["isaid_instance"], img["isaid_color"],
                                    size=(img["width"], img["height"]))
        masks = isaid.match_to_objects(inst, objs, width=img["width"], height=img["height"])
        for o, m, g in zip(objs, masks, img["objects"]):
            items.append(Item("DOTA v1.0 + iSAID", o.label, g["shape"], m, o.quad))
    return items


def hrsc_items(root: str, n_images: int, seed: int) -> List[Item]:
    """An HRSC2016 tree, masks from its ``Segmentations/`` PNGs (``hrsc.scan``)."""
    synthetic.make_hrsc_tree(root, n_images=n_images, n_objects=4, size=(1000, 700),
                             seed=seed, workers=2)
    return [Item("HRSC2016", o.label, "ship", o.mask, o.quad)
            for rec in hrsc.scan(root, with_masks=True) for o in rec.objects]


def dior_items(root: str, n_images: int, seed: int) -> List[Item]:
    """A DIOR-R tree (oriented XML); masks: the generator's (DIOR has none)."""
    gt = synthetic.make_dior_tree(root, n_images=n_images, n_objects=30, seed=seed, workers=2)
    items = []
    for img in gt["images"]:
        _, objs = dior.parse_xml(img["label_paths"]["obb"])
        for o, g in zip(objs, img["objects"]):
            items.append(Item("DIOR-R", o.label, g["shape"], g["mask"], o.quad))
    return items


def fair1m_items(root: str, n_images: int, seed: int) -> List[Item]:
    """A FAIR1M tree; masks: the generator's (FAIR1M has none)."""
    gt = synthetic.make_fair1m_tree(root, n_images=n_images, n_objects=30, size=(1000, 1000),
                                    seed=seed, workers=2)
    items = []
    for img in gt["images"]:
        _, objs = fair1m.parse_xml(img["label_path"])
        for o, g in zip(objs, img["objects"]):
            items.append(Item("FAIR1M", o.label, g["shape"], g["mask"], o.quad))
    return items


# --------------------------------------------------------------------------
# the real sample files (read where they are; never copied)


def sample_items(samples: str) -> Dict[str, dict]:
    """Per real sample dataset: its items (no masks: none of the samples has
    one) and a note on what the files hold."""
    out: Dict[str, dict] = {}
    xmls = sorted(glob.glob(os.path.join(samples, "hrsc", "FullDataSet", "Annotations", "*.xml")))
    if xmls:
        items, notes = [], []
        for p in xmls:
            header, objs = hrsc.parse_xml(p)
            seg = [os.path.join(os.path.dirname(os.path.dirname(p)), d, header["id"] + ".png")
                   for d in hrsc.MASK_DIRS]
            masked = any(os.path.isfile(s) for s in seg) and any(
                o.attributes.get("seg_color") for o in objs)
            notes.append("%s: segmented=%s, %s" % (
                os.path.basename(p), int(bool(header.get("segmented"))),
                "a mask PNG" if masked else "no seg_color, no Segmentations/ or LandMask/ PNG"))
            items += [Item("HRSC2016", o.label, "?", None, o.quad) for o in objs
                      if o.quad is not None]
        out["HRSC2016"] = dict(items=items, note="; ".join(notes))
    xmls = sorted(glob.glob(os.path.join(samples, "dior", "Annotations", "Oriented*", "*.xml")))
    if xmls:
        items = [Item("DIOR-R", o.label, "?", None, o.quad)
                 for p in xmls for o in dior.parse_xml(p)[1] if o.quad is not None]
        out["DIOR-R"] = dict(items=items, note="%d oriented XML file(s); DIOR-R has no masks"
                             % len(xmls))
    txts = sorted(glob.glob(os.path.join(samples, "dota", "labelTxt", "*.txt")))
    if txts:
        items = [Item("DOTA", o.label, "?", None, o.quad)
                 for p in txts for o in dota.parse_label_file(p, keep_unknown=True)[1]]
        out["DOTA v1.0"] = dict(items=items, note="%d label files (iSAID masks not in the "
                                "samples)" % len(txts))
    xmls = sorted(glob.glob(os.path.join(samples, "fair1m", "*", "labelXml", "*.xml")))
    if xmls:
        items = [Item("FAIR1M", o.label, "?", None, o.quad)
                 for p in xmls for o in fair1m.parse_xml(p)[1]]
        out["FAIR1M"] = dict(items=items, note="%d label files; FAIR1M has no masks" % len(xmls))
    return out


def non_rectangular(quad: np.ndarray, tol_deg: float = 3.0) -> bool:
    """Whether a quad has a corner angle more than ``tol_deg`` off 90 degrees."""
    for i in range(4):
        a, b = quad[i - 1] - quad[i], quad[(i + 1) % 4] - quad[i]
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        if na == 0 or nb == 0:
            return True
        cos = float(np.dot(a, b) / (na * nb))
        if abs(math.degrees(math.acos(max(-1.0, min(1.0, cos)))) - 90.0) > tol_deg:
            return True
    return False


# --------------------------------------------------------------------------
# statistics and tables


def stats(values: Iterable[Optional[float]]) -> Optional[dict]:
    """n, mean, median, p10 and min of the non-None values (None when there are none)."""
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    if not v.size:
        return None
    return dict(n=int(v.size), mean=float(v.mean()), median=float(np.median(v)),
                p10=float(np.percentile(v, 10)), min=float(v.min()))


def fmt_row(name: str, what: str, s: Optional[dict], extra: str = "") -> str:
    """One Markdown table row of :func:`stats`."""
    if s is None:
        return "| %s | %s | 0 | - | - | - | - | %s |" % (name, what, extra)
    return "| %s | %s | %d | %.3f | %.3f | %.3f | %.3f | %s |" % (
        name, what, s["n"], s["mean"], s["median"], s["p10"], s["min"], extra)


HEAD = ("| dataset | rotated box derived from | n | mean IoU | median | p10 | min | notes |\n"
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")


def generated_table(items: List[Item]) -> List[str]:
    """Per dataset: from the GT mask (snap and strict), and from the rasterised quad."""
    lines = [HEAD]
    by_ds: Dict[str, List[Item]] = defaultdict(list)
    for it in items:
        by_ds[it.dataset].append(it)
    for ds, its in by_ds.items():
        unmatched = sum(it.mask is None for it in its)
        mask = stats(_iou_from(it.mask, it.quad) for it in its)
        strict = stats(_iou_from(it.mask, it.quad, snap_px=0) for it in its)
        note = "snap 0: mean %.3f, p10 %.3f" % (strict["mean"], strict["p10"]) if strict else ""
        crosses = sum(it.shape == "cross" for it in its)
        if crosses and mask:
            rest = stats(_iou_from(it.mask, it.quad) for it in its if it.shape != "cross")
            note += "; without the %d planes (crosses): mean %.3f, p10 %.3f" % (
                crosses, rest["mean"], rest["p10"])
        if unmatched:
            note += "; %d object(s) without a mask" % unmatched
        lines.append(fmt_row(ds, "GT mask", mask, note))
        lines.append(fmt_row(ds, "raster of the source box", stats(
            _iou_from(_raster(it.quad), it.quad) for it in its), "digitisation only"))
    return lines


def moments_box(mask: InstanceMask) -> np.ndarray:
    """For comparison only: the box along the mask's principal axis (second
    moments), each side pushed half a pixel past the outermost pixel centres."""
    import cv2

    mo = cv2.moments(mask.mask.view(np.uint8), True)
    a = 0.5 * math.atan2(2 * mo["mu11"], mo["mu20"] - mo["mu02"])
    u, v = np.array([math.cos(a), math.sin(a)]), np.array([-math.sin(a), math.cos(a)])
    ys, xs = np.nonzero(mask.mask)
    p = np.stack([xs + mask.x0 + 0.5, ys + mask.y0 + 0.5], axis=1)
    pu, pv = p @ u, p @ v
    s0, s1, t0, t1 = pu.min() - 0.5, pu.max() + 0.5, pv.min() - 0.5, pv.max() + 0.5
    return np.array([s * u + t * v for s, t in ((s0, t0), (s1, t0), (s1, t1), (s0, t1))])


def breakdown_table(items: List[Item]) -> List[str]:
    """GT-mask IoU of all generated objects by drawn shape and by long side,
    with the principal-axis box (:func:`moments_box`) beside it."""
    lines = ["| group | n | mean IoU | median | p10 | min | principal-axis box: mean, p10 |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    groups: Dict[str, List[Item]] = defaultdict(list)
    for it in items:
        groups["shape: %s" % it.shape].append(it)
        side = it.long_side
        size = "< 32 px" if side < 32 else ("32-96 px" if side < 96 else ">= 96 px")
        groups["long side %s" % size].append(it)
    for name in sorted(groups):
        its = [it for it in groups[name] if it.mask is not None and it.mask.mask.any()]
        s = stats(_iou_from(it.mask, it.quad) for it in its)
        if s:
            pca = stats(rotated_iou(moments_box(it.mask), it.quad) for it in its)
            lines.append("| %s | %d | %.3f | %.3f | %.3f | %.3f | %.3f, %.3f |" % (
                name, s["n"], s["mean"], s["median"], s["p10"], s["min"], pca["mean"],
                pca["p10"]))
    return lines


def samples_table(samples: str) -> List[str]:
    """The real sample files: the digitisation check (no sample has a mask)."""
    found = sample_items(samples) if os.path.isdir(samples) else {}
    if not found:
        return ["(no sample files at %s: skipped)" % samples]
    lines = [HEAD]
    for ds, d in found.items():
        its = d["items"]
        lines.append(fmt_row(ds + " (real)", "GT mask", None, "no mask: " + d["note"]))
        nonrect = sum(non_rectangular(it.quad) for it in its)
        note = "%d of %d source quads not rectangles (corner > 3 deg off 90)" % (nonrect, len(its))
        lines.append(fmt_row(ds + " (real)", "raster of the source box", stats(
            _iou_from(_raster(it.quad), it.quad) for it in its), note))
    return lines


# --------------------------------------------------------------------------
# per-instance cost


def cost_crops(n: int, seed: int) -> List[np.ndarray]:
    """``n`` 100x100 bool crops: rotated rectangles and ellipses filling the crop."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:100, 0:100] + 0.5
    crops = []
    for i in range(n):
        a = rng.uniform(-math.pi / 2, math.pi / 2)
        L, W = rng.uniform(60, 100), rng.uniform(20, 60)
        c, s = abs(math.cos(a)), abs(math.sin(a))
        k = min(1.0, 99 / (L * c + W * s), 99 / (L * s + W * c))
        L, W = L * k, W * k
        if i % 3 == 2:
            u = (xx - 50) * math.cos(a) + (yy - 50) * math.sin(a)
            v = -(xx - 50) * math.sin(a) + (yy - 50) * math.cos(a)
            crops.append((u / (L / 2)) ** 2 + (v / (W / 2)) ** 2 < 1)
        else:
            crops.append(polygon_pixels(rbox_to_quad(50, 50, L, W, a), (0, 0, 100, 100)))
    return crops


def _best_us(fn, items, repeats: int) -> float:
    """Best over ``repeats`` passes of the mean microseconds per item."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for x in items:
            fn(x)
        best = min(best, (time.perf_counter() - t) / len(items) * 1e6)
    return best


def cost_table(n: int, repeats: int) -> List[str]:
    """Microseconds per instance on 100x100 crops."""
    import cv2

    crops = cost_crops(n, seed=7)
    boxes = [rbox_from_mask(c) for c in crops]
    pairs = list(zip(boxes, boxes[1:] + boxes[:1]))
    rows = [
        ("rbox_from_mask (bool crop)", _best_us(rbox_from_mask, crops, repeats)),
        ("naive cv2.minAreaRect(cv2.findNonZero(crop)) + cv2.boxPoints",
         _best_us(lambda c: cv2.boxPoints(cv2.minAreaRect(cv2.findNonZero(c.view(np.uint8)))),
                  crops, repeats)),
        ("rotated_iou (shapely)", _best_us(lambda p: rotated_iou(*p), pairs, repeats)),
        ("dota_line", _best_us(lambda b: dota_line(b, "small-vehicle", 0), boxes, repeats)),
    ]
    lines = ["| step | us per instance | s per million |", "| --- | ---: | ---: |"]
    lines += ["| %s | %.1f | %.0f |" % (name, us, us) for name, us in rows]
    return lines


# --------------------------------------------------------------------------


def main(argv=None) -> str:
    """Runs the measurement, writes the Markdown and returns it."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="the Markdown file written")
    ap.add_argument("--samples", default=DEFAULT_SAMPLES, help="the real sample files (read-only)")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--quick", action="store_true", help="a smoke run: few images and crops")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    k = 1 if args.quick else 12
    tmp = tempfile.mkdtemp(prefix="samrs-rboxes-")
    try:
        items = (dota_items(os.path.join(tmp, "dota"), k, args.seed)
                 + hrsc_items(os.path.join(tmp, "hrsc"), 2 * k, args.seed)
                 + dior_items(os.path.join(tmp, "dior"), k, args.seed)
                 + fair1m_items(os.path.join(tmp, "fair1m"), k, args.seed))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    t_gen = time.perf_counter() - t0
    parts = [
        "# Derived rotated boxes vs the source's own rotated boxes",
        "",
        "`%s` on %s, %s (Python %s, %d CPUs), seed %d%s." % (
            " ".join(["python benchmarks/measure_derived_rboxes.py"] + (argv or sys.argv[1:])),
            datetime.date.today().isoformat(), platform.machine(), platform.python_version(),
            os.cpu_count() or 0, args.seed, " (quick)" if args.quick else ""),
        "Rotated IoU (shapely) of `rbox_from_mask` (snap_px=0.5) with the quad of the label "
        "file. \"GT mask\": derived from the object's ground-truth mask; \"raster of the "
        "source box\": derived from the source box rasterised (pixel-centre rule), i.e. the "
        "cost of pixels alone.",
        "",
        "## Generated trees (read back with formats/*)",
        "",
    ]
    parts += generated_table(items)
    parts += ["", "By drawn shape and size (GT mask, all generated datasets):", ""]
    parts += breakdown_table(items)
    parts += ["", "## Real sample files (%s)" % os.path.relpath(args.samples, REPO), "",
              "None of the samples has a ground-truth mask, so only the digitisation check "
              "runs there.", ""]
    parts += samples_table(args.samples)
    parts += ["", "## Per-instance cost (100x100 crops, best of %d passes)"
              % (2 if args.quick else 5), ""]
    parts += cost_table(60 if args.quick else 300, 2 if args.quick else 5)
    parts += ["", "Total %.0f s (generating the trees: %.0f s)."
              % (time.perf_counter() - t0, t_gen), ""]
    text = "\n".join(parts)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    print("written %s" % args.out)
    return text


if __name__ == "__main__":
    main()
