"""Import benchmark (issue 2): the DOTA importer against FiftyOne's ``add_samples``.

Generates a DOTA v1.0 tree (default 2,000 images x 100 objects) and reports,
in the same run, labels per second for:

1. the importer end to end, parsing included (``fiftyone_samrs.load_dota``);
2. FiftyOne's ``dataset.add_samples(samples, dynamic=True)`` on equivalent
   prebuilt :class:`fiftyone.core.sample.Sample` objects (building them is
   timed separately and excluded).

"Labels" = FiftyOne label objects written: one ``hbb`` Detection and one
``obb`` Polyline per object. The target is (1) >= 2x (2).

Usage::

    .venv/bin/python benchmarks/bench_import.py                  # full size
    .venv/bin/python benchmarks/bench_import.py --images 200     # smoke test
    .venv/bin/python benchmarks/bench_import.py --tree /data/DOTA/val   # a real tree

The results are printed as a table and written to
``benchmarks/out/bench_import.json``. Uses its own FiftyOne database name
(``samrs-bench-<random>``) unless ``FIFTYONE_DATABASE_NAME`` is set, and
deletes the datasets and the generated tree (unless ``--keep``) at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid

from _common import drop_own_database, rate, write_results  # before FiftyOne: sets the DB


def write_fast_tree(root: str, n_images: int, n_objects: int, size: int, seed: int = 0) -> None:
    """A DOTA v1.0 tree for import timing: real label files, one shared image.

    Label files are what :func:`fiftyone_samrs.testing.synthetic.make_dota_tree`
    writes (header lines, CRLF, integer rotated boxes on a jittered grid,
    classes drawn from DOTA v1.0, some ``difficult`` 1), but every image is a
    hard link to one flat ``size x size`` PNG: the importer only reads image
    headers, so pixels do not matter here and the tree is written in seconds.
    """
    import cv2
    import numpy as np

    from fiftyone_samrs.core.classes import DOTA_V1_0

    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "labelTxt"), exist_ok=True)
    proto = os.path.join(root, "proto.png")
    cv2.imwrite(proto, np.full((size, size, 3), 127, np.uint8))
    rng = np.random.default_rng(seed)
    cols = int(np.ceil(np.sqrt(n_objects)))
    cell = size / cols
    for i in range(n_images):
        stem = "P%04d" % i
        img = os.path.join(root, "images", stem + ".png")
        try:
            os.link(proto, img)
        except OSError:
            shutil.copyfile(proto, img)
        k = np.arange(n_objects)
        cx = (k % cols + 0.5) * cell + rng.uniform(-0.1, 0.1, n_objects) * cell
        cy = (k // cols + 0.5) * cell + rng.uniform(-0.1, 0.1, n_objects) * cell
        w = rng.uniform(0.2, 0.4, n_objects) * cell
        h = rng.uniform(0.1, 0.3, n_objects) * cell
        a = rng.uniform(0, np.pi, n_objects)
        dx = np.array([-1, 1, 1, -1])[None] * w[:, None] / 2
        dy = np.array([-1, -1, 1, 1])[None] * h[:, None] / 2
        xs = cx[:, None] + dx * np.cos(a)[:, None] - dy * np.sin(a)[:, None]
        ys = cy[:, None] + dx * np.sin(a)[:, None] + dy * np.cos(a)[:, None]
        quads = np.round(np.stack([xs, ys], axis=2).reshape(n_objects, 8)).astype(int)
        labels = rng.choice(DOTA_V1_0, n_objects)
        diff = (rng.uniform(size=n_objects) < 0.1).astype(int)
        lines = ["imagesource:GoogleEarth", "gsd:%.6f" % rng.uniform(0.1, 1.0)]
        lines += ["%s %s %d" % (" ".join(map(str, q)), c, d)
                  for q, c, d in zip(quads.tolist(), labels, diff)]
        with open(os.path.join(root, "labelTxt", stem + ".txt"), "w", newline="") as f:
            f.write("\r\n".join(lines) + "\r\n")
    os.remove(proto)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--objects", type=int, default=100, help="objects per image")
    parser.add_argument("--size", type=int, default=1024, help="image side in pixels")
    parser.add_argument("--tree", default=None, help="use this DOTA tree instead of generating")
    parser.add_argument("--workers", type=int, default=2, help="threads for the generator")
    parser.add_argument("--generator", choices=("fast", "synthetic"), default="fast",
                        help="fast: real label files + one hard-linked flat image "
                             "(default); synthetic: fiftyone_samrs.testing.synthetic.make_dota_tree "
                             "(drawn images, slower to generate, same import cost)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--skip-add-samples", action="store_true",
                        help="only time the importer")
    parser.add_argument("--check-images", action="store_true",
                        help="also time the importer with check_images=True (decode-checks "
                             "every image; use --generator synthetic: the fast tree's one flat "
                             "image decodes unrealistically fast)")
    parser.add_argument("--keep", action="store_true", help="keep the generated tree")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out",
                                                      "bench_import.json"))
    args = parser.parse_args(argv)

    import fiftyone as fo

    from fiftyone_samrs.core.records import ImportReport
    from fiftyone_samrs.formats import dota
    from fiftyone_samrs.importing.importers import load_dota
    from fiftyone_samrs.importing.sample_docs import record_to_sample
    from fiftyone_samrs.testing import synthetic

    fo.config.show_progress_bars = False
    tmp = None
    results = {"images": None, "objects": None, "labels": None}
    datasets = []
    try:
        if args.tree:
            root = args.tree
            gen_s = 0.0
        else:
            tmp = tempfile.mkdtemp(prefix="samrs-bench-import-")
            root = os.path.join(tmp, "DOTA")
            t = time.perf_counter()
            if args.generator == "fast":
                write_fast_tree(root, args.images, args.objects, args.size)
            else:
                synthetic.make_dota_tree(root, n_images=args.images, n_objects=args.objects,
                                         size=(args.size, args.size), gt_masks=False,
                                         workers=args.workers)
            gen_s = time.perf_counter() - t
        results["generate_s"] = gen_s
        results["generator"] = None if args.tree else args.generator

        # parse only (what the parser costs on its own)
        t = time.perf_counter()
        records = list(dota.scan(root, report=ImportReport()))
        parse_s = time.perf_counter() - t
        n_images = len(records)
        n_objects = sum(len(r.objects) for r in records)
        n_labels = n_objects + sum(1 for r in records for o in r.objects if o.quad is not None)
        results.update(images=n_images, objects=n_objects, labels=n_labels, parse_s=parse_s)

        # (1) the importer, end to end (parse + insert)
        name = "samrs-bench-importer-" + uuid.uuid4().hex[:6]
        t = time.perf_counter()
        ds = load_dota(root, name=name, persistent=False, progress=False,
                       batch_size=args.batch_size)
        imp_s = time.perf_counter() - t
        datasets.append(ds)
        assert len(ds) == n_images, (len(ds), n_images)
        results["importer_s"] = imp_s
        results["importer_labels_per_s"] = rate(n_labels, imp_s)

        if args.check_images:
            t = time.perf_counter()
            ds = load_dota(root, name=name + "-checked", persistent=False, progress=False,
                           batch_size=args.batch_size, check_images=True)
            results["importer_check_images_s"] = time.perf_counter() - t
            results["check_images_cost"] = results["importer_check_images_s"] / imp_s
            datasets.append(ds)

        # (2) add_samples on prebuilt samples
        if not args.skip_add_samples:
            t = time.perf_counter()
            samples = [record_to_sample(r) for r in records]
            build_s = time.perf_counter() - t
            ref = fo.Dataset("samrs-bench-add-samples-" + uuid.uuid4().hex[:6])
            datasets.append(ref)
            t = time.perf_counter()
            ref.add_samples(samples, dynamic=True, progress=False)
            add_s = time.perf_counter() - t
            results.update(build_samples_s=build_s, add_samples_s=add_s,
                           add_samples_labels_per_s=rate(n_labels, add_s),
                           build_plus_add_labels_per_s=rate(n_labels, build_s + add_s))
            results["speedup_vs_add_samples"] = (results["importer_labels_per_s"]
                                                 / results["add_samples_labels_per_s"])
    finally:
        for d in datasets:
            if not d.deleted:
                d.delete()
        if tmp and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        drop_own_database()

    print("DOTA import benchmark: %d images, %d objects, %d labels (hbb + obb)"
          % (results["images"], results["objects"], results["labels"]))
    if not args.tree:
        print("  tree generation (%-9s) %8.2f s" % (args.generator, results["generate_s"]))
    print("  parse only (formats.dota)  %8.2f s" % results["parse_s"])
    print("  importer end to end        %8.2f s  %10.0f labels/s"
          % (results["importer_s"], results["importer_labels_per_s"]))
    if "importer_check_images_s" in results:
        print("  importer, check_images=True %7.2f s  (%.1fx the importer)"
              % (results["importer_check_images_s"], results["check_images_cost"]))
    if "add_samples_s" in results:
        print("  build fo.Sample objects    %8.2f s  (excluded below)" % results["build_samples_s"])
        print("  add_samples(dynamic=True)  %8.2f s  %10.0f labels/s"
              % (results["add_samples_s"], results["add_samples_labels_per_s"]))
        print("  importer / add_samples     %8.2fx  (target >= 2x)"
              % results["speedup_vs_add_samples"])
    write_results(results, args.out)
    return results


if __name__ == "__main__":
    main()
