"""Export benchmark (issue 5): ``export_coco`` (RLE) against FiftyOne's COCO export.

Generates a FiftyOne dataset of N images (default 2,000, 1024 x 1024, tiny PNG
files) with M predicted instances each (default 100 small masks in ``sam``,
with their prompt boxes in ``hbb``), then times in the same run, reporting
instances per second:

1. ``fiftyone_samrs.export_coco`` (streams the database documents, writes
   RLE masks computed from the crops);
2. FiftyOne's ``dataset.export(dataset_type=fo.types.COCODetectionDataset,
   label_field="sam")`` (writes polygons);
3. the same exporter through FiftyOne (``dataset.export(dataset_type=
   fsr.types.COCOInstanceDataset)``), i.e. with FiftyOne's ``Sample``
   iteration: shows what the raw-document route gains;
4. with ``--samrs``: ``export_samrs`` (gray + colour PNGs + JSON).
5. with ``--against REF`` (e.g. ``--against 01a5b9f``, the last 0.2.0
   commit): ``export_samrs`` of this tree against the same call of the
   package at git ``REF`` (checked out with ``git archive`` into a temporary
   folder), each in its own process on the same dataset, alternating
   ``--rounds`` times; reports the best time and the peak memory (RSS) of
   each and their ratio. Issue 21 asks the new files (rotated boxes, a label
   PNG per image, per-split JSONs, card, statistics) to cost at most 1.3x.

Media are not exported (``export_media=False``) so the figures are about
labels. Building the dataset is done once, before and outside the timing.
Target: (1) at least as fast as (2).

Usage::

    .venv/bin/python benchmarks/bench_export.py                  # full size
    .venv/bin/python benchmarks/bench_export.py --images 50      # smoke test
    .venv/bin/python benchmarks/bench_export.py --baseline-images 200   # time
        # FiftyOne's exporter on the first 200 images only (it is slow)
    .venv/bin/python benchmarks/bench_export.py --images 1000 --against 01a5b9f \
        --only-against                                   # this tree vs 0.2.0

Results are printed and written to ``benchmarks/out/bench_export.json``. Uses
its own FiftyOne database (``samrs-bench-<random>``) unless
``FIFTYONE_DATABASE_NAME`` is set; deletes its datasets and files at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid

from _common import checkout, drop_own_database, rate, write_results  # before FiftyOne: sets the DB


def _blob(rng, h, w):
    import numpy as np

    yy, xx = np.mgrid[0:h, 0:w]
    m = ((yy - (h - 1) / 2) / (h / 2)) ** 2 + ((xx - (w - 1) / 2) / (w / 2)) ** 2 <= 1.0
    m[h // 2, :] = True
    m[:, w // 2] = True
    return m


def build_dataset(root: str, n_images: int, n_instances: int, size: int, seed: int = 0,
                  batch: int = 100):
    """The dataset: ``hbb`` prompt boxes and ``sam`` masks, added in batches."""
    import cv2
    import fiftyone as fo
    import numpy as np

    from fiftyone_samrs.core.classes import SOTA
    from fiftyone_samrs.core.geometry import box_to_relative

    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    blank = os.path.join(root, "blank.png")
    cv2.imwrite(blank, np.zeros((size, size, 3), np.uint8))
    data = open(blank, "rb").read()
    ds = fo.Dataset("samrs-bench-export-" + uuid.uuid4().hex[:6])
    samples = []
    for i in range(n_images):
        path = os.path.join(root, "P%05d.png" % i)
        with open(path, "wb") as f:
            f.write(data)
        hbb, sam = [], []
        for j in range(n_instances):
            w, h = (int(v) for v in rng.integers(6, 48, 2))
            x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
            label = SOTA[int(rng.integers(0, len(SOTA)))]
            prompt = fo.Detection(label=label, bounding_box=box_to_relative(
                (max(x - 2, 0), max(y - 2, 0), min(x + w + 2, size), min(y + h + 2, size)),
                size, size))
            hbb.append(prompt)
            sam.append(fo.Detection(label=label, bounding_box=box_to_relative(
                (x, y, x + w, y + h), size, size), mask=_blob(rng, h, w),
                confidence=float(rng.random()), source_id=prompt.id, obj_index=j,
                prompt="hbox", empty=False, stability=0.9))
        samples.append(fo.Sample(filepath=path, metadata=fo.ImageMetadata(
            width=size, height=size, num_channels=3), hbb=fo.Detections(detections=hbb),
            sam=fo.Detections(detections=sam)))
        if len(samples) >= batch:
            ds.add_samples(samples, progress=False)
            samples = []
    if samples:
        ds.add_samples(samples, progress=False)
    ds.info["samrs"] = {"format": "dota", "subset": "SOTA"}
    ds.save()
    return ds


_CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import fiftyone as fo
import fiftyone_samrs as fsr
assert fsr.__file__.startswith(sys.argv[1]), fsr.__file__
fo.config.show_progress_bars = False
ds = fo.load_dataset(sys.argv[2])
t = time.perf_counter()
r = fsr.export_samrs(ds, sys.argv[3], export_media=False, progress=False)
s = time.perf_counter() - t
print(json.dumps({"s": s, "instances": r.instances,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _export_in_child(src: str, dataset: str, out: str) -> dict:
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _CHILD, src, dataset, out], check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def against_ref(ds, ref: str, tmp: str, rounds: int) -> dict:
    """``export_samrs`` of this tree vs the package at ``ref`` (see the module doc)."""
    ours_src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    base_src = checkout(ref, os.path.join(tmp, "ref-src"))
    runs = {"ours": [], "ref": []}
    for i in range(rounds):
        for name, src in (("ref", base_src), ("ours", ours_src)):
            out = os.path.join(tmp, "%s-%d" % (name, i))
            runs[name].append(_export_in_child(src, ds.name, out))
            shutil.rmtree(out, ignore_errors=True)
    best = {k: min(r["s"] for r in v) for k, v in runs.items()}
    rss = {k: max(r["rss_mb"] for r in v) for k, v in runs.items()}
    return {"against_ref": ref, "against_rounds": rounds, "ours_samrs_s": best["ours"],
            "ref_samrs_s": best["ref"], "ours_rss_mb": rss["ours"], "ref_rss_mb": rss["ref"],
            "time_ratio_vs_ref": best["ours"] / best["ref"],
            "rss_ratio_vs_ref": rss["ours"] / rss["ref"]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--instances", type=int, default=100, help="instances per image")
    parser.add_argument("--size", type=int, default=1024, help="image side in pixels")
    parser.add_argument("--baseline-images", type=int, default=None,
                        help="time FiftyOne's COCO exporter on the first N images only "
                        "(default: all)")
    parser.add_argument("--samrs", action="store_true", help="also time export_samrs (PNGs)")
    parser.add_argument("--skip-fo-route", action="store_true",
                        help="skip the COCOInstanceDataset-through-FiftyOne timing")
    parser.add_argument("--against", default=None, metavar="REF",
                        help="also time export_samrs against the package at git REF")
    parser.add_argument("--only-against", action="store_true",
                        help="time only --against (skip the COCO timings)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of --against")
    parser.add_argument("--keep", action="store_true", help="keep the written files")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out",
                                                      "bench_export.json"))
    args = parser.parse_args(argv)

    import fiftyone as fo

    import fiftyone_samrs as fsr

    fo.config.show_progress_bars = False
    tmp = tempfile.mkdtemp(prefix="samrs-bench-export-")
    results = {"images": args.images, "instances_per_image": args.instances,
               "size": args.size}
    ds = None
    try:
        t = time.perf_counter()
        ds = build_dataset(os.path.join(tmp, "images"), args.images, args.instances, args.size)
        results["build_s"] = time.perf_counter() - t
        n = ds.count("sam.detections")
        results["instances"] = n
        if args.against:
            ds.persistent = True  # the child processes load it
            results.update(against_ref(ds, args.against, tmp, args.rounds))
        if args.only_against:
            return _report_against(results, args.out)

        # (1) export_coco: RLE from the crops, raw documents
        t = time.perf_counter()
        r = fsr.export_coco(ds, os.path.join(tmp, "ours", "annotations.json"),
                            export_media=False, progress=False)
        s = time.perf_counter() - t
        assert r.instances == n, (r.instances, n)
        results.update(export_coco_s=s, export_coco_inst_per_s=rate(n, s))

        # (2) FiftyOne's COCO exporter (polygons)
        view = ds if args.baseline_images is None else ds.limit(args.baseline_images)
        n_base = view.count("sam.detections")
        t = time.perf_counter()
        view.export(labels_path=os.path.join(tmp, "fiftyone", "labels.json"),
                    dataset_type=fo.types.COCODetectionDataset, label_field="sam",
                    export_media=False, classes=fsr.classes.SOTA, progress=False)
        s = time.perf_counter() - t
        results.update(fiftyone_coco_instances=n_base, fiftyone_coco_s=s,
                       fiftyone_coco_inst_per_s=rate(n_base, s))
        results["speedup_vs_fiftyone"] = (results["export_coco_inst_per_s"]
                                          / results["fiftyone_coco_inst_per_s"])

        # (3) our exporter class through FiftyOne's Sample iteration
        if not args.skip_fo_route:
            t = time.perf_counter()
            view.export(os.path.join(tmp, "fo-route"), dataset_type=fsr.types.COCOInstanceDataset,
                        label_field="sam", export_media=False, classes="SOTA", progress=False)
            s = time.perf_counter() - t
            results.update(coco_type_via_fiftyone_s=s,
                           coco_type_via_fiftyone_inst_per_s=rate(n_base, s))

        # (4) the SAMRS layout
        if args.samrs:
            t = time.perf_counter()
            r = fsr.export_samrs(ds, os.path.join(tmp, "samrs"), export_media=False,
                                 progress=False)
            s = time.perf_counter() - t
            results.update(export_samrs_s=s, export_samrs_inst_per_s=rate(n, s),
                           export_samrs_images_per_s=rate(r.images, s))
    finally:
        if ds is not None and not ds.deleted:
            ds.delete()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("files kept in %s" % tmp)
        drop_own_database()

    print("COCO export benchmark: %d images x %d instances (%d instances), %dx%d"
          % (args.images, args.instances, results["instances"], args.size, args.size))
    print("  build dataset (untimed)         %8.2f s" % results["build_s"])
    print("  fsr.export_coco (RLE)           %8.2f s  %9.0f instances/s"
          % (results["export_coco_s"], results["export_coco_inst_per_s"]))
    print("  FiftyOne COCODetectionDataset   %8.2f s  %9.0f instances/s  (%d instances)"
          % (results["fiftyone_coco_s"], results["fiftyone_coco_inst_per_s"],
             results["fiftyone_coco_instances"]))
    if "coco_type_via_fiftyone_s" in results:
        print("  fsr COCOInstanceDataset via FO  %8.2f s  %9.0f instances/s"
              % (results["coco_type_via_fiftyone_s"],
                 results["coco_type_via_fiftyone_inst_per_s"]))
    if "export_samrs_s" in results:
        print("  fsr.export_samrs (PNGs + JSON)  %8.2f s  %9.0f instances/s  %6.1f images/s"
              % (results["export_samrs_s"], results["export_samrs_inst_per_s"],
                 results["export_samrs_images_per_s"]))
    print("  export_coco / FiftyOne          %8.2fx  (target >= 1x)"
          % results["speedup_vs_fiftyone"])
    write_results(results, args.out)
    return results


def _report_against(results: dict, out: str) -> dict:
    print("export_samrs: %d images x %d instances, this tree vs %s (best of %d, own processes)"
          % (results["images"], results["instances_per_image"], results["against_ref"],
             results["against_rounds"]))
    print("  %s  %8.2f s  %7.0f MB peak RSS" % (results["against_ref"].ljust(10),
                                                 results["ref_samrs_s"], results["ref_rss_mb"]))
    print("  this tree   %8.2f s  %7.0f MB peak RSS" % (results["ours_samrs_s"],
                                                       results["ours_rss_mb"]))
    print("  ratio       %8.2fx time  %6.2fx memory  (target <= 1.3x)"
          % (results["time_ratio_vs_ref"], results["rss_ratio_vs_ref"]))
    write_results(results, out)
    return results


if __name__ == "__main__":
    main()
