"""The automatic first pass of the review loop (issue 26): does it help?

Per generated scene set with known masks (HRSC2016 ships, DOTA v1.0 with
iSAID masks, DIOR-R and FAIR1M 2.0 with the generator's drawn masks; seeds
the samrs-tiny training stream never used), in one run, one model
(samrs-tiny, fp32, CPU):

1. import, ``segment`` (default prompt), ``evaluate`` against the GT masks
   (eval key ``before``);
2. flag the predicted labels with ``before_iou`` < ``--threshold``;
3. ``resegment(flagged, default alternatives, replace_best=True)``: each
   flagged label takes its alternative of highest predicted IoU when that
   beats its own confidence (``review="auto-replaced"``);
4. ``evaluate`` again (eval key ``after``).

The flags use the ground truth (the review loop's low-IoU view); the choice
of the replacement does not (predicted IoU only). For scale, the "ceiling"
is what a perfect chooser would reach on the flagged labels: the best of
each label's current mask and its alternatives by IoU with the GT mask.

    .venv/bin/python benchmarks/bench_first_pass.py [--quick] [--threshold 0.5]

Prints a Markdown table (per scene set: images, instances, flagged,
replaced, mIoU_I / mIoU_P and mean instance IoU before and after, the
alternatives taken) and writes it to ``--out`` with the raw numbers in a
``.json`` beside it. Uses the FiftyOne database ``samrs-bench-firstpass``
(unless ``FIFTYONE_DATABASE_NAME`` is set) and a temporary folder for every
file; deletes its datasets (and that database) at the end.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DB_NAME = "samrs-bench-firstpass"
OWN_DB = "FIFTYONE_DATABASE_NAME" not in os.environ
os.environ.setdefault("FIFTYONE_DATABASE_NAME", DB_NAME)
sys.path.insert(0, HERE)

import _common  # noqa: E402  (after the database name: it sets FiftyOne's environment)

#: scene sets: (name, generator, seed, full size, --quick size); sizes are
#: (images, objects per image)
SETS = [
    ("HRSC2016 ships (800x600)", "hrsc", 41, (24, 4), (2, 4)),
    ("DOTA v1.0 + iSAID (1024x768)", "dota", 42, (8, 15), (1, 15)),
    ("DIOR-R (800x800)", "dior", 43, (10, 10), (1, 10)),
    ("FAIR1M 2.0 (700x700)", "fair1m", 44, (10, 10), (1, 10)),
]

#: alternatives without a predicted IoU: the first pass never takes them
UNSCORED = ("grabcut", "box")


# --------------------------------------------------------------------------
# scene sets


def build_set(kind: str, seed: int, n_images: int, n_objects: int, folder: str):
    """A generated tree imported into a dataset with ``gt_masks``."""
    from fiftyone_samrs.importing.importers import load_dior, load_dota, load_fair1m, load_hrsc
    from fiftyone_samrs.importing.isaid_gt import load_isaid_masks
    from fiftyone_samrs.testing import synthetic

    root = os.path.join(folder, kind)
    name = "samrs-bench-firstpass-%s" % kind
    if kind == "hrsc":
        synthetic.make_hrsc_tree(root, n_images=n_images, n_objects=n_objects,
                                 size=(800, 600), seed=seed)
        return load_hrsc(root, name=name, overwrite=True, progress=False)
    if kind == "dota":
        synthetic.make_dota_tree(root, n_images=n_images, n_objects=n_objects,
                                 size=(1024, 768), seed=seed, with_isaid=True)
        ds = load_dota(root, name=name, version="1.0", overwrite=True, progress=False)
        load_isaid_masks(ds, root, gt_field="gt_masks", progress=False)
        return ds
    make, load = {"dior": (synthetic.make_dior_tree, load_dior),
                  "fair1m": (synthetic.make_fair1m_tree, load_fair1m)}[kind]
    truth = make(root, n_images=n_images, n_objects=n_objects, seed=seed)
    ds = load(root, name=name, overwrite=True, progress=False)
    add_drawn_masks(ds, truth)
    return ds


def add_drawn_masks(ds, truth: dict) -> None:
    """``gt_masks`` from the generator's drawn masks (DIOR, FAIR1M have none on disk),
    linked to the boxes by ``obj_index`` (the object's order in its file)."""
    import fiftyone as fo

    from fiftyone_samrs.core.masks import relative_box

    by_path = {im["filepath"]: im for im in truth["images"]}
    for sample in ds.iter_samples(autosave=True):
        im = by_path[sample.filepath]
        dets = []
        for k, o in enumerate(im["objects"]):
            tight = o["mask"].clipped(im["height"], im["width"]).tight()
            dets.append(fo.Detection(label=o["label"], obj_index=k, mask=tight.mask,
                                     bounding_box=relative_box(tight.box, im["width"],
                                                               im["height"])))
        sample["gt_masks"] = fo.Detections(detections=dets)


# --------------------------------------------------------------------------
# the protocol


def label_rows(ds, keys=("before", "after")) -> list:
    """One dict per predicted label: id, the IoU of each eval key, review, choice."""
    fields = ["sam.detections.id"] + ["sam.detections.%s_iou" % k for k in keys
                                      if ds.get_field("sam.detections.%s_iou" % k)]
    extra = [f for f in ("sam.detections.review", "sam.detections.review_choice")
             if ds.get_field(f)]
    columns = ds.values(fields + extra)
    rows = []
    for per_sample in zip(*columns):
        n = len(per_sample[0] or [])
        for i in range(n):
            row = {f.rsplit(".", 1)[1]: (col or [None] * n)[i]
                   for f, col in zip(fields + extra, per_sample)}
            rows.append(row)
    return rows


def run_set(ds, engine, threshold: float) -> dict:
    """Steps 1-4 on one dataset; the raw numbers."""
    from fiftyone_samrs.evaluating.evaluation import evaluate
    from fiftyone_samrs.evaluating.review import resegment
    from fiftyone_samrs.segmenting.pipeline import segment

    t = time.perf_counter()
    segment(ds, engine=engine, progress=False)
    t_segment = time.perf_counter() - t
    before = evaluate(ds, gt_field="gt_masks", eval_key="before", progress=False)
    flagged = [r["id"] for r in label_rows(ds, ("before",))
               if r["before_iou"] is not None and r["before_iou"] < threshold]
    t = time.perf_counter()
    res = resegment(ds, label_ids=flagged, engine=engine, replace_best=True, progress=False)
    t_resegment = time.perf_counter() - t
    after = evaluate(ds, gt_field="gt_masks", eval_key="after", progress=False)
    out = summarize(ds, before, after, set(flagged), res,
                    dict(segment=t_segment, resegment=t_resegment))
    out["ceiling_iou"], out["ceiling_choices"] = ceiling(ds, set(flagged))
    return out


def ceiling(ds, flagged: set):
    """Mean over the flagged labels of the best IoU with the GT mask among the
    current mask (``before_iou``) and the label's alternatives, and which won."""
    from fiftyone_samrs.core.metrics import mask_iou
    from fiftyone_samrs.fiftyone_io import instance_from_label

    best, won = [], Counter()
    for s in ds.select_fields(["sam", "sam_alternatives", "gt_masks", "metadata"]):
        w, h = s.metadata.width, s.metadata.height
        gts = {g.id: g for g in s.gt_masks.detections}
        alts = s.sam_alternatives.detections if s.sam_alternatives else []
        for d in s.sam.detections:
            if d.id not in flagged or d.before_id not in gts:
                continue
            gt = instance_from_label(gts[d.before_id], w, h)
            scores = {"current": d.before_iou}
            for a in alts:
                if a.of == d.id:
                    inter, union = mask_iou(instance_from_label(a, w, h), gt, size=(h, w))
                    scores[a.alternative] = inter / union if union else 0.0
            name = max(scores, key=scores.get)
            best.append(scores[name])
            won[name] += 1
    return _mean(best), dict(won.most_common())


def _mean(values) -> float:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else float("nan")


def summarize(ds, before, after, flagged: set, res, seconds: dict) -> dict:
    """Counts and means of one scene set."""
    rows = [r for r in label_rows(ds) if r["before_iou"] is not None]
    mine = [r for r in rows if r["id"] in flagged]
    auto = [r for r in rows if r.get("review") == "auto-replaced"]
    return dict(
        images=len(ds), instances=before.n_instances, predicted=len(rows),
        flagged=len(flagged), with_alternatives=res.labels, alternatives=res.alternatives,
        replaced=res.replaced, repainted=res.repainted, skipped=dict(res.skipped),
        miou_i=[before.miou_i, after.miou_i], miou_p=[before.miou_p, after.miou_p],
        flagged_iou=[_mean(r["before_iou"] for r in mine), _mean(r["after_iou"] for r in mine)],
        all_iou=[_mean(r["before_iou"] for r in rows), _mean(r["after_iou"] for r in rows)],
        replaced_better=sum(r["after_iou"] > r["before_iou"] for r in auto),
        replaced_worse=sum(r["after_iou"] < r["before_iou"] for r in auto),
        choices=dict(Counter(r.get("review_choice") for r in auto).most_common()),
        seconds=seconds)


# --------------------------------------------------------------------------
# report


def machine() -> dict:
    import torch

    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "fiftyone_samrs"],
                           capture_output=True, text=True).stdout.strip()
    cpu = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                       "")
    return dict(date=datetime.date.today().isoformat(), cpu=cpu or platform.processor(),
                cores=os.cpu_count(), torch_threads=torch.get_num_threads(),
                python=platform.python_version(), torch=torch.__version__,
                commit=commit + (" (fiftyone_samrs modified)" if dirty else ""))


def _pct(v: float) -> str:
    return "%.1f" % (100 * v) if v == v else "n/a"


def _pair(v) -> str:
    return "%s -> %s (%+.2f)" % (_pct(v[0]), _pct(v[1]), 100 * (v[1] - v[0]))


def to_markdown(results: dict) -> str:
    m, a = results["machine"], results["args"]
    lines = [
        "# Automatic first pass (`resegment(..., replace_best=True)`) on generated scene sets",
        "",
        "samrs-tiny (fp32, CPU), default prompt; flagged: predicted labels with `before_iou` "
        "< %g; alternatives: %s; IoUs in %% (before -> after, change in points)."
        % (a["threshold"], ", ".join("`%s`" % n for n in results["alternatives"])),
        "%s, %s cores (torch threads %d), Python %s, torch %s, commit %s, %s%s." % (
            m["cpu"], m["cores"], m["torch_threads"], m["python"], m["torch"], m["commit"],
            m["date"], " (--quick)" if a["quick"] else ""),
        "",
        "| scene set (seed) | images | instances | flagged | replaced (better / worse) "
        "| mIoU_I | mIoU_P | mean IoU, flagged | flagged: ceiling | mean IoU, all predicted |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- | --- | ---: | --- |",
    ]
    for name, r in results["sets"].items():
        lines.append("| %s | %d | %d | %d | %d (%d / %d) | %s | %s | %s | %s | %s |" % (
            name, r["images"], r["instances"], r["flagged"], r["replaced"],
            r["replaced_better"], r["replaced_worse"], _pair(r["miou_i"]),
            _pair(r["miou_p"]), _pair(r["flagged_iou"]), _pct(r["ceiling_iou"]),
            _pair(r["all_iou"])))
    lines += [
        "", "Flagged: every predicted label under the threshold (not only those of low-IoU "
        "samples, as `review_progress` counts them). Replaced: labels the first pass gave "
        "another mask (better / worse: its IoU with the GT mask rose / fell). Ceiling: the "
        "flagged labels' mean IoU had each taken the best of its current mask and its "
        "alternatives by IoU with the GT mask (a perfect chooser).",
        "", "Alternatives the replacements took (`review_choice`):", ""]
    for name, r in results["sets"].items():
        taken = ", ".join("`%s` %d" % kv for kv in r["choices"].items()) or "none"
        skipped = "; skipped: %s" % r["skipped"] if r["skipped"] else ""
        lines.append("- %s: %s%s" % (name, taken, skipped))
    lines += ["", "Best by IoU with the GT mask (the ceiling's choice, flagged labels):", ""]
    for name, r in results["sets"].items():
        lines.append("- %s: %s" % (name, ", ".join(
            "`%s` %d" % kv for kv in r["ceiling_choices"].items()) or "none"))
    lines += ["", "Seconds (segment / resegment of the flagged): " + "; ".join(
        "%s %.1f / %.1f" % (name.split(" (")[0], r["seconds"]["segment"],
                            r["seconds"]["resegment"])
        for name, r in results["sets"].items()) + ".", "", verdict(results), ""]
    return "\n".join(lines)


def verdict(results: dict) -> str:
    """Helps: mIoU_I rises and mIoU_P does not fall, on every scene set."""
    sets = results["sets"]
    hurt = [n for n, r in sets.items() if not (r["miou_i"][1] > r["miou_i"][0]
                                               and r["miou_p"][1] >= r["miou_p"][0])]
    if not hurt:
        text = ("**Verdict**: the first pass raised mIoU_I and did not lower mIoU_P on every "
                "scene set measured (%d of %d), so it could be on by default." % (
                    len(sets), len(sets)))
    else:
        text = ("**Verdict**: the first pass does not help on every scene set measured: "
                "mIoU_I did not rise, or mIoU_P fell, on %d of %d (%s). It stays off by "
                "default." % (len(hurt), len(sets), ", ".join(hurt)))
    text += " mIoU_I change in points: %s." % ", ".join(
        "%s %+.2f" % (n.split(" (")[0], 100 * (r["miou_i"][1] - r["miou_i"][0]))
        for n, r in sets.items())
    won = Counter()
    for r in sets.values():
        won.update(r["ceiling_choices"])
    unscored = sum(won[k] for k in UNSCORED)
    return text + (
        " The first pass picks by predicted IoU, so only among SAM's alternatives; "
        "by IoU with the GT mask, %d of the %d flagged labels' best masks are GrabCut's or "
        "the box's (no predicted IoU: never picked) and %d their current mask."
        % (unscored, sum(won.values()), won["current"]))


# --------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threshold", type=float, default=0.5,
                   help="flag predicted labels with before_iou below this (default 0.5)")
    p.add_argument("--quick", action="store_true", help="one or two images per set")
    p.add_argument("--out", default=os.path.join(HERE, "out", "first-pass.md"))
    args = p.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="samrs-firstpass-") as folder:
        os.environ["FIFTYONE_DEFAULT_DATASET_DIR"] = os.path.join(folder, "fiftyone")
        results = run_all(args, folder)
    results["seconds"] = time.perf_counter() - started
    text = to_markdown(results)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    _common.write_results(results, os.path.splitext(args.out)[0] + ".json")
    return 0


def run_all(args, folder: str) -> dict:
    import fiftyone as fo

    from fiftyone_samrs.evaluating.review import DEFAULT_ALTERNATIVES
    from fiftyone_samrs.segmenting.sam.engine import SamEngine
    from fiftyone_samrs.segmenting.sam.samrs_tiny import load_samrs_tiny

    fo.config.default_dataset_dir = os.environ["FIFTYONE_DEFAULT_DATASET_DIR"]
    engine = SamEngine(load_samrs_tiny(device="cpu"), device="cpu", dtype="fp32")
    results = dict(args=vars(args), machine=machine(), alternatives=list(DEFAULT_ALTERNATIVES),
                   sets={})
    try:
        for name, kind, seed, full, quick in SETS:
            n_images, n_objects = quick if args.quick else full
            ds = build_set(kind, seed, n_images, n_objects, folder)
            results["sets"]["%s (%d)" % (name, seed)] = run_set(ds, engine, args.threshold)
            print("done: %s" % name, flush=True)
    finally:
        for name in fo.list_datasets():
            if name.startswith("samrs-bench-firstpass-"):
                fo.delete_dataset(name)
        if OWN_DB:
            import fiftyone.core.odm as foo

            foo.get_db_client().drop_database(DB_NAME)
    return results


if __name__ == "__main__":
    sys.exit(main())
