"""Scale rehearsal (issue 23): every stage at two or more dataset sizes, timed
with its peak memory, the log-log slope per stage, and the projection to the
SAMRS size (105,090 images).

    .venv/bin/python benchmarks/rehearsal.py --sizes 500,2000
    .venv/bin/python benchmarks/rehearsal.py --sizes 500,2000 --against 01a5b9f

The data: a generated DOTA tree of small images (512 x 512 PNGs that
compress to a few KB, so disk stays small) with real DOTA label files,
lognormal object counts (mean about 16, up to 400 per image). Each stage
runs alone in its own process under ``/usr/bin/time`` (wall time, peak
RSS), on its own FiftyOne database:

- ``import``: ``load_dota``;
- ``segment``: ``segment(backend="boxfill")`` (H-Box prompts, the PNGs);
- ``resume``: the same call again (everything done);
- ``gt rbox``: boxfill with rotated-box mask prompts (``prompt="rbox_m"``,
  no PNGs) into ``gt_masks``: the rotated-box ground truth, and the
  rasterisation's boxes/s;
- ``evaluate``: ``sam`` against ``gt_masks``, then ``save_qa_views``;
- ``qa count``: what the QA panel does at each refresh: count the saved
  ``low_iou`` view, and the size of its JSON payload (:func:`qa_summary`);
- ``stats``: ``dataset_stats``;
- ``export samrs``, ``export coco``;
- ``load_samrs``: the SAMRS export loaded back.

With ``--against REF`` every stage also runs with the package at a git ref
(e.g. ``01a5b9f``, the last 0.2.0 commit) on the same data, alternating, and
the table gives both. Writes ``rehearsal.md`` / ``rehearsal.json`` under
``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SAMRS_IMAGES = 105_090

_PRELUDE = """
import json, os, sys, time
import fiftyone as fo
W = sys.argv[1]
def done(**kw):
    print("RESULT " + json.dumps(kw))
"""

#: stage name -> code (W: the work folder); each prints RESULT {...}
STAGES = {
    "import": """
from fiftyone_samrs.importing.importers import load_dota
t = time.time()
ds = load_dota(W + "/D", name="rehearsal", version="1.0", persistent=True, progress=False)
done(items=ds.count("hbb.detections"), seconds=time.time() - t)
""",
    "segment": """
from fiftyone_samrs.segmenting.pipeline import segment
t = time.time()
r = segment(fo.load_dataset("rehearsal"), backend="boxfill", seg_dir=W + "/seg",
            progress=False)
done(items=r.boxes, seconds=time.time() - t)
""",
    "resume": """
from fiftyone_samrs.segmenting.pipeline import segment
t = time.time()
r = segment(fo.load_dataset("rehearsal"), backend="boxfill", seg_dir=W + "/seg",
            progress=False)
done(items=r.samples_skipped, seconds=time.time() - t)
""",
    "gt rbox": """
from fiftyone_samrs.segmenting.pipeline import segment
t = time.time()
r = segment(fo.load_dataset("rehearsal"), backend="boxfill", prompt="rbox_m",
            label_field="gt_masks", seg_field=None, progress=False)
done(items=r.boxes, seconds=time.time() - t)
""",
    "evaluate": """
import fiftyone_samrs as fsr
from fiftyone_samrs.evaluating.qa import save_qa_views
ds = fo.load_dataset("rehearsal")
t = time.time()
res = fsr.evaluate(ds, "sam", "gt_masks", progress=False)
save_qa_views(ds, "eval", low_iou=0.9)
done(items=ds.count("sam.detections"), seconds=time.time() - t)
""",
    "qa count": """
import importlib.util
folder = os.path.join(os.getcwd(), "plugins", "samrs")
spec = importlib.util.spec_from_file_location("samrs_plugin", folder + "/__init__.py",
                                              submodule_search_locations=[folder])
mod = importlib.util.module_from_spec(spec); sys.modules["samrs_plugin"] = mod
spec.loader.exec_module(mod)
import importlib
panel = importlib.import_module("samrs_plugin.qa_panel")
ds = fo.load_dataset("rehearsal")
view = ds.load_saved_view("low_iou")
t = time.time()
n = view.count()
count_s = time.time() - t
t = time.time()
summary = panel.qa_summary(ds, "eval")
refresh_s = time.time() - t
done(items=n, seconds=count_s, refresh_s=refresh_s,
     payload_kb=len(json.dumps(summary, default=str)) / 1024)
""",
    "stats": """
import fiftyone_samrs as fsr
t = time.time()
st = fsr.dataset_stats(fo.load_dataset("rehearsal"), "sam", progress=False)
done(items=int(sum(st.instances)), seconds=time.time() - t)
""",
    "export samrs": """
from fiftyone_samrs import export_samrs
t = time.time()
r = export_samrs(fo.load_dataset("rehearsal"), W + "/samrs", classes="SOTA",
                 unknown="ignore", overwrite=True, progress=False)
done(items=r.instances, seconds=time.time() - t)
""",
    "export coco": """
from fiftyone_samrs import export_coco
t = time.time()
r = export_coco(fo.load_dataset("rehearsal"), W + "/coco/annotations.json", classes="SOTA",
                unknown="ignore", export_media=False, overwrite=True, progress=False)
done(items=r.instances, seconds=time.time() - t)
""",
    "load_samrs": """
from fiftyone_samrs import load_samrs
if fo.dataset_exists("back"):
    fo.delete_dataset("back")
t = time.time()
back = load_samrs(W + "/samrs", name="back", persistent=True, progress=False)
done(items=back.count("sam.detections"), seconds=time.time() - t)
""",
}


def make_tree(root: str, n: int, seed: int = 0) -> int:
    """``n`` small DOTA images with lognormal object counts; returns the objects."""
    import cv2
    import numpy as np

    from fiftyone_samrs.formats.dota import DOTA_CLASSES

    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "labelTxt"), exist_ok=True)
    image = np.full((512, 512, 3), 90, np.uint8)
    image[::8] = 120  # a little texture, still a few KB
    total = 0
    classes = DOTA_CLASSES["1.0"]
    for i in range(n):
        stem = "P%06d" % i
        cv2.imwrite(os.path.join(root, "images", stem + ".png"), image)
        k = int(min(400, max(1, round(rng.lognormal(2.4, 0.9)))))
        lines = ["imagesource:GoogleEarth\n", "gsd:0.15\n"]
        for _ in range(k):
            cx, cy = rng.uniform(20, 492, 2)
            w, h = rng.uniform(6, 60, 2)
            a = rng.uniform(0, math.pi)
            c, s = math.cos(a), math.sin(a)
            pts = [(cx + dx * c - dy * s, cy + dx * s + dy * c)
                   for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2),
                                  (-w / 2, h / 2))]
            pts = [(min(max(x, 0), 511), min(max(y, 0), 511)) for x, y in pts]
            lines.append(" ".join("%d %d" % (round(x), round(y)) for x, y in pts)
                         + " %s 0\n" % classes[rng.integers(len(classes))])
        with open(os.path.join(root, "labelTxt", stem + ".txt"), "w") as f:
            f.writelines(lines)
        total += k
    return total


def run_stage(name: str, work: str, database: str, tree: str = ROOT) -> dict:
    """One stage in its own process (the package of ``tree``)."""
    env = dict(os.environ, FIFTYONE_DATABASE_NAME=database, PYTHONPATH=tree)
    cmd = ["/usr/bin/time", "-f", "TIME %e %M", sys.executable, "-c",
           _PRELUDE + STAGES[name], work]
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    out = {"stage": name}
    for line in (done.stdout + done.stderr).splitlines():
        if line.startswith("RESULT "):
            out.update(json.loads(line[7:]))
        elif line.startswith("TIME "):
            wall, rss = line.split()[1:]
            out.update(wall_s=float(wall), rss_mb=int(rss) / 1024)
    off = re.findall(r"fiftyone-samrs fast path '(\w+)' off", done.stderr)
    if off:  # a stage on FiftyOne's public API times the fallback, not the package
        out["fast_paths_off"] = sorted(set(off))
    if done.returncode != 0:  # the last line of the error, not /usr/bin/time's
        lines = [x for x in done.stderr.strip().splitlines() if not x.startswith("TIME ")]
        out["error"] = (lines or ["?"])[-1][:200]
    return out


def drop_database(name: str) -> None:
    env = dict(os.environ, FIFTYONE_DATABASE_NAME=name)
    subprocess.run([sys.executable, "-c", "import fiftyone.core.odm as foo, os; "
                    "foo.get_db_client().drop_database(os.environ['FIFTYONE_DATABASE_NAME'])"],
                   env=env, cwd=ROOT, capture_output=True)


def rehearse(n: int, trees: dict, tmp: str, stages=tuple(STAGES)) -> dict:
    """The ``stages`` at ``n`` images for each package tree; ``{tree: [rows]}``."""
    data = os.path.join(tmp, "data-%d" % n)
    objects = make_tree(os.path.join(data, "D"), n)
    rows = {}
    for label, tree in trees.items():
        work = os.path.join(tmp, "work-%s-%d" % (label, n))
        os.makedirs(work)
        os.symlink(os.path.join(data, "D"), os.path.join(work, "D"))
        database = "samrs-rehearsal-%s" % uuid.uuid4().hex[:8]
        try:
            rows[label] = [run_stage(s, work, database, tree) for s in stages]
        finally:
            drop_database(database)
            shutil.rmtree(work, ignore_errors=True)
        for r in rows[label]:
            r.update(images=n, objects=objects)
    shutil.rmtree(data, ignore_errors=True)
    return rows


def slopes(runs: list) -> dict:
    """Per stage: log-log slope of wall time between the smallest and the
    largest size, and the linear projection to :data:`SAMRS_IMAGES`."""
    first, last = runs[0], runs[-1]
    out = {}
    if len(runs) < 2:
        return out
    for a, b in zip(first, last):  # the same stages, in order
        if "error" in a or "error" in b or not a.get("seconds") or not b.get("seconds"):
            continue
        ta, tb = max(a["seconds"], 1e-3), max(b["seconds"], 1e-3)
        slope = math.log(tb / ta) / math.log(b["images"] / a["images"])
        per = (tb - ta) / (b["images"] - a["images"])
        out[a["stage"]] = {"slope": slope, "projected_s": tb + per * (SAMRS_IMAGES - b["images"]),
                           "rss_ratio": b.get("rss_mb", 0) / max(a.get("rss_mb", 1), 1)}
    return out


def table(results: dict, sizes: list) -> str:
    lines = ["# Scale rehearsal", "",
             "Sizes: %s images; times of the stage's own call (wall of the process in "
             "brackets), peak RSS of the process." % ", ".join(map(str, sizes)), ""]
    for label, runs in results.items():
        lines += ["## %s" % label, "",
                  "| stage | " + " | ".join("%d images: s [wall] / MB" % n for n in sizes)
                  + " | slope | flag | RSS ratio | projected to %d images |" % SAMRS_IMAGES,
                  "| --- |" + " ---: |" * (len(sizes) + 4)]
        fit = slopes(runs)
        for k, stage in enumerate(r["stage"] for r in runs[0]):
            cells = []
            for run in runs:
                r = run[k]
                cells.append("error: %s" % r["error"] if "error" in r else "%.2f [%.1f] / %d"
                             % (r.get("seconds", float("nan")), r.get("wall_s", float("nan")),
                                r.get("rss_mb", 0)))
            f = fit.get(stage)
            lines.append("| %s | %s | %s | %s | %s | %s |" % (
                stage, " | ".join(cells), "%.2f" % f["slope"] if f else "-",
                "**> 1.1**" if f and f["slope"] > 1.1 else "", "%.2f" % f["rss_ratio"] if f
                else "-", "%.0f s" % f["projected_s"] if f else "-"))
        extra = [r for r in runs[-1] if r["stage"] == "qa count" and "payload_kb" in r]
        if extra:
            lines += ["", "QA panel at %d images: low_iou count %.3f s, refresh %.2f s, "
                      "payload %.1f KB." % (sizes[-1], extra[0]["seconds"],
                                             extra[0]["refresh_s"], extra[0]["payload_kb"])]
        off = ["%s at %d (%s)" % (r["stage"], r["images"], ", ".join(r["fast_paths_off"]))
               for run in runs for r in run if r.get("fast_paths_off")]
        if off:
            lines += ["", "**Fast paths off** (FiftyOne's public API timed): " + "; ".join(off)]
        rb = [r for r in runs[-1] if r["stage"] == "gt rbox" and r.get("seconds")]
        if rb:
            lines += ["Rotated-box boxfill: %.0f boxes/s." % (rb[0]["items"] / rb[0]["seconds"])]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="500,2000", help="comma-separated image counts")
    p.add_argument("--against", default=None, metavar="REF", help="also the package at REF")
    p.add_argument("--stages", default=",".join(STAGES),
                   help="comma-separated stages, in the order above (later ones need "
                        "the earlier ones they read: evaluate needs segment and gt rbox)")
    p.add_argument("--out", default=os.path.join(HERE, "out"))
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    sizes = sorted(int(v) for v in args.sizes.split(","))
    tmp = tempfile.mkdtemp(prefix="samrs-rehearsal-")
    trees = {"this tree": ROOT}
    if args.against:
        from _common import checkout

        trees = {"0.2.0 (%s)" % args.against: checkout(args.against, os.path.join(tmp, "ref"),
                                                         ("fiftyone_samrs", "plugins")),
                 "this tree": ROOT}
    results = {label: [] for label in trees}
    try:
        for n in sizes:
            stages = [x.strip() for x in args.stages.split(",") if x.strip()]
            unknown = sorted(set(stages) - set(STAGES))
            if unknown:
                p.error("unknown stages: %s" % ", ".join(unknown))
            for label, rows in rehearse(n, trees, tmp, stages).items():
                results[label].append(rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = table(results, sizes)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "rehearsal.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, "rehearsal.json"), "w") as f:
        json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
