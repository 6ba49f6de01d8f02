"""Scale model (issue 14): what the shared resources of a many-GPU run can carry.

With N workers (Ray actors or processes, one per GPU), each worker reads its
images, runs SAM, builds its labels and PNGs on its own CPU, and writes to
the *shared* MongoDB; the images come from (and the PNGs go to) shared
storage. So the shared pieces are: the database's write rate of finished
samples, the storage's image read rate, and the claims' round trips. This
benchmark measures them on this machine, in one run:

1. **image read**: ``read_image`` (decode to RGB) of DOTA-like PNG tiles
   (1024 x 1024, the synthetic scenes of ``testing.synthetic``), and the
   same as JPEG, one and two threads (file bytes in the page cache: decode
   cost, not disk);
2. **labels + PNG per sample** (a worker's CPU, not shared): the writer's
   ``build_labels`` + semantic PNG for K masks (the scenes' drawn object
   masks standing for SAM's);
3. **database write** of finished samples, masks included: the pipeline's
   ``bulk_set`` (one ``$set`` of ``sam`` + ``sam_seg`` per sample) in
   batches of 1, 4, 16, 64 samples, with the BSON size per sample; then the
   same documents without masks (what storing masks outside the database
   would leave);
4. **claims**: one claim (``insert_many``) + one ``mark_done`` per batch;
5. with ``--ray``: ``segment`` with 1 and with 2 Ray workers (warm actors,
   ``keep_workers=True``) on small images with GrabCut (CPU-bound), and a
   plain in-process run.

It then prints the model: for N GPUs at R images/s each, the demand N x R
against each shared capacity, and where the first bottleneck is.

Usage::

    .venv/bin/python benchmarks/bench_scale.py                # 64 tiles, K=100
    .venv/bin/python benchmarks/bench_scale.py --images 16 --ray
    .venv/bin/python benchmarks/bench_scale.py --out benchmarks/results/scale.json

Uses its own FiftyOne database (``samrs-bench-<random>``) unless
``FIFTYONE_DATABASE_NAME`` is set, and a temporary folder; removes both.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from _common import drop_own_database, rate, write_results  # before FiftyOne: sets the DB


def _median_rate(n, fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return rate(n, times[len(times) // 2])


def bench_reads(paths, threads):
    from fiftyone_samrs.formats.images import read_image

    def read_all():
        if threads == 1:
            for p in paths:
                read_image(p)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(read_image, paths))

    read_all()  # page cache
    return _median_rate(len(paths), read_all)


def build_jobs(tree, dataset, seg_dir):
    """One writer job per image: the drawn object masks as the predictions."""
    import numpy as np

    from fiftyone_samrs.fiftyone_io import object_inputs
    from fiftyone_samrs.segmenting.backends import MaskResult
    from fiftyone_samrs.segmenting.pipeline import _Job
    from fiftyone_samrs.segmenting.prompts import build_prompts

    by_path = {im["filepath"]: im for im in tree["images"]}
    jobs = []
    ids, paths, dets = dataset.values(["id", "filepath", "hbb.detections"])
    for sid, fp, ds in zip(ids, paths, dets):
        im = by_path[fp]
        objs = object_inputs(ds, None, im["width"], im["height"])
        job = _Job(sid, fp, im["width"], im["height"], objs,
                   png_path=os.path.join(seg_dir, os.path.basename(fp)))
        job.prompts = build_prompts(objs.hboxes, None, "hbox", (im["height"], im["width"]))
        gt = [o["mask"] for o in im["objects"]]
        job.results = [MaskResult(m, 0.9, 0.95, not np.asarray(m.mask).any()) for m in gt]
        if len(job.results) != len(objs):  # objects dropped at import
            job.results = job.results[: len(objs)]
        jobs.append(job)
    return jobs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--boxes", type=int, default=100, help="objects (masks) per image")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--ray", action="store_true", help="also 1 vs 2 Ray workers")
    parser.add_argument("--ray-images", type=int, default=48)
    parser.add_argument("--out", default="benchmarks/out/bench_scale.json")
    args = parser.parse_args(argv)

    import bson
    import cv2
    import fiftyone as fo
    import numpy as np

    import fiftyone_samrs as fsr
    from fiftyone_samrs.core.painting import write_label_png
    from fiftyone_samrs.fiftyone_io import bulk_set, declare_label_field, segmentation_doc
    from fiftyone_samrs.segmenting.writer import (
        DETECTION_ATTRIBUTES,
        LabelOptions,
        build_labels,
    )
    from fiftyone_samrs.testing.synthetic import make_dota_tree

    tmp = tempfile.mkdtemp(prefix="samrs-scale-")
    results = {"images": args.images, "boxes": args.boxes, "size": args.size,
               "cpus": os.cpu_count()}
    try:
        t0 = time.time()
        tree = make_dota_tree(os.path.join(tmp, "dota"), n_images=args.images,
                              n_objects=args.boxes, size=(args.size, args.size), seed=0,
                              workers=2)
        print("generated %d tiles in %.1f s" % (args.images, time.time() - t0))
        pngs = [im["filepath"] for im in tree["images"]]
        jpgs = []
        for p in pngs:
            j = p[:-4] + ".jpg"
            cv2.imwrite(j, cv2.imread(p), [cv2.IMWRITE_JPEG_QUALITY, 95])
            jpgs.append(j)
        results["png_mb"] = float(np.mean([os.path.getsize(p) for p in pngs]) / 1e6)
        results["jpg_mb"] = float(np.mean([os.path.getsize(p) for p in jpgs]) / 1e6)
        reads = {}
        for kind, paths in (("png", pngs), ("jpg", jpgs)):
            for threads in (1, 2):
                reads["%s_%dthreads" % (kind, threads)] = bench_reads(paths, threads)
        results["read_images_per_s"] = reads
        print("image read (images/s):", {k: round(v, 1) for k, v in reads.items()})

        ds = fsr.load_dota(os.path.join(tmp, "dota"), name="samrs-scale", progress=False)
        declare_label_field(ds, "sam", fo.Detections, DETECTION_ATTRIBUTES)
        declare_label_field(ds, "sam_seg", fo.Segmentation, {})
        seg_dir = os.path.join(tmp, "seg")
        os.makedirs(seg_dir)
        jobs = build_jobs(tree, ds, seg_dir)
        options = LabelOptions(clip_to_rbox=False, rbox_margin=2.0,
                               class_index={c: i for i, c in enumerate(tree["classes"])},
                               paint_order="annotation")

        # 2. labels + PNG (a worker's own CPU)
        from collections import Counter

        updates = {}
        t0 = time.perf_counter()
        for job in jobs:
            dets, semantic = build_labels(job, options, Counter(), Counter())
            write_label_png(job.png_path, semantic)
            updates[job.sample_id] = {"sam": dets, "sam_seg": segmentation_doc(job.png_path)}
        results["labels_png_samples_per_s"] = rate(len(jobs), time.perf_counter() - t0)
        boxes = sum(len(u["sam"]["detections"]) for u in updates.values())
        results["boxes_per_sample"] = boxes / len(jobs)
        sizes = [len(bson.encode({"$set": u})) for u in updates.values()]
        results["bson_kb_per_sample"] = float(np.mean(sizes) / 1e3)
        no_masks = {sid: {"sam": dict(u["sam"], detections=[
            {k: v for k, v in d.items() if k != "mask"} for d in u["sam"]["detections"]]),
            "sam_seg": u["sam_seg"]} for sid, u in updates.items()}
        results["bson_kb_per_sample_no_masks"] = float(np.mean(
            [len(bson.encode({"$set": u})) for u in no_masks.values()]) / 1e3)
        print("labels + PNG: %.1f samples/s per worker CPU; %.1f boxes/sample, %.1f kB BSON "
              "(%.1f kB without masks)" % (results["labels_png_samples_per_s"],
                                           results["boxes_per_sample"],
                                           results["bson_kb_per_sample"],
                                           results["bson_kb_per_sample_no_masks"]))

        # 3. database writes of finished samples
        ids = list(updates)
        writes = {}
        for label, docs in (("masks", updates), ("no_masks", no_masks)):
            for batch in (1, 4, 16, 64):
                def write_all():
                    for i in range(0, len(ids), batch):
                        bulk_set(ds, {s: docs[s] for s in ids[i : i + batch]})

                write_all()  # the documents grow to their size once
                writes["%s_batch%d" % (label, batch)] = _median_rate(len(ids), write_all)
        def two_writers():
            half = len(ids) // 2
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda part: [bulk_set(ds, {s: updates[s] for s in part[i : i + 4]})
                                            for i in range(0, len(part), 4)],
                              [ids[:half], ids[half:]]))

        writes["masks_batch4_2writers"] = _median_rate(len(ids), two_writers)
        results["db_write_samples_per_s"] = writes
        print("database write (samples/s):", {k: round(v, 1) for k, v in writes.items()})
        results["db_write_mb_per_s_batch4"] = (writes["masks_batch4"]
                                               * results["bson_kb_per_sample"] / 1e3)

        # 4. claims
        from fiftyone_samrs.segmenting.leases import Claims

        claims = Claims("bench-%d" % os.getpid(), "bench", "bench", 60.0)
        n_batches = max(1, len(ids) // 4)

        def claim_all():
            c = Claims(claims.epoch + str(time.perf_counter()), "bench", "bench", 60.0)
            for i in range(0, 4 * n_batches, 4):
                got = c.claim(ids[i : i + 4])
                c.mark_done(got.mine)

        results["claims_batches_per_s"] = _median_rate(n_batches, claim_all)
        fsr_coll = __import__("fiftyone_samrs.fiftyone_io", fromlist=["x"]).samrs_collection
        fsr_coll("claims").delete_many({"group": "bench"})
        print("claims: %.0f batches/s (claim + mark done)" % results["claims_batches_per_s"])

        if args.ray:
            results["ray"] = bench_ray(tmp, args.ray_images)

        model(results)
        write_results(results, args.out)
    finally:
        if fo.dataset_exists("samrs-scale"):
            fo.delete_dataset("samrs-scale")
        shutil.rmtree(tmp, ignore_errors=True)
        drop_own_database()
    return 0


def bench_ray(tmp, n):
    """1 vs 2 warm Ray workers against a plain run, GrabCut on small images."""
    import ray

    import fiftyone_samrs as fsr
    from fiftyone_samrs.segmenting.distributed import shutdown_workers
    from fiftyone_samrs.segmenting.pipeline import segment
    from fiftyone_samrs.testing.synthetic import make_dota_tree

    make_dota_tree(os.path.join(tmp, "small"), n_images=n, n_objects=8, size=(256, 256),
                   seed=1)
    ds = fsr.load_dota(os.path.join(tmp, "small"), name="samrs-scale-ray", progress=False)
    out = {}
    try:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING")
        from fiftyone_samrs.testing.backends import SlowBoxFill

        # grabcut: CPU bound (the workers share this machine's cores); sim_gpu: each
        # worker waits 0.2 s per batch of 2 as if on its own accelerator, so the figure
        # is what the distribution itself allows
        for name, extra in (("grabcut", dict(backend="grabcut")),
                            ("sim_gpu", dict(engine=SlowBoxFill(0.2)))):
            kw = dict(extra, batch_size=2, progress=False, overwrite=True)
            t0 = time.perf_counter()
            segment(ds, label_field="plain", seg_field=None, **kw)
            out["%s_plain_samples_per_s" % name] = rate(n, time.perf_counter() - t0)
            for workers in (1, 2):
                field = "w%d" % workers
                segment(ds.limit(4), label_field=field, seg_field=None, workers=workers,
                        keep_workers=True, **kw)  # start the actors, load the backend
                t0 = time.perf_counter()
                segment(ds, label_field=field, seg_field=None, workers=workers,
                        keep_workers=True, **kw)
                out["%s_workers%d_samples_per_s" % (name, workers)] = rate(
                    n, time.perf_counter() - t0)
            shutdown_workers()
        ray.shutdown()
    finally:
        ds.delete()
    print("segment, %d images 256x256 x 8 boxes (samples/s): %s"
          % (n, {k: round(v, 2) for k, v in out.items()}))
    return out


#: shared storage links the model is shown for (MB/s): 1 GbE and 10 GbE NFS
STORAGE_MB_S = {"1 GbE": 110.0, "10 GbE": 1100.0}


def model(r):
    """Prints the demand of N GPUs at R images/s against each shared capacity."""
    db = r["db_write_samples_per_s"]["masks_batch4"]
    db_nomask = r["db_write_samples_per_s"]["no_masks_batch4"]
    read = r["read_images_per_s"]["png_1threads"]
    claims = r["claims_batches_per_s"] * 4
    mb = r["png_mb"]
    capacities = {"database": db, "claims": claims}
    capacities.update({"storage %s" % k: v / mb for k, v in STORAGE_MB_S.items()})
    r["model"] = {"capacities_samples_per_s": capacities, "rows": []}
    print("\nscale model (K=%.0f boxes/sample, %.2f MB PNG tiles, batch 4): shared capacities "
          "(samples/s): %s; the database takes %.1f MB/s here (%.0f samples/s without masks). "
          "Per worker, not shared: labels+PNG %.1f samples/s per CPU thread, PNG decode %.1f "
          "images/s per thread"
          % (r["boxes_per_sample"], mb, ", ".join("%s %.0f" % kv for kv in capacities.items()),
             r["db_write_mb_per_s_batch4"], db_nomask, r["labels_png_samples_per_s"], read))
    print("| GPUs x img/s | demand (samples/s) | database load | image reads (MB/s) | "
          "first limit (1 GbE / 10 GbE storage) |")
    print("| --- | --- | --- | --- | --- |")
    for per_gpu in (2.0, 5.0, 10.0):
        for n in (1, 8, 32, 128):
            demand = n * per_gpu
            limits = []
            for link in STORAGE_MB_S:
                over = {k: v for k, v in capacities.items()
                        if not k.startswith("storage") or k.endswith(link)}
                worst = min(over, key=over.get)
                limits.append(worst if demand > over[worst] else "GPUs")
            r["model"]["rows"].append({"gpus": n, "img_per_s": per_gpu, "demand": demand,
                                       "db_load": demand / db, "read_mb_s": demand * mb,
                                       "first_limit": limits})
            print("| %d x %.0f | %.0f | %.0f%% | %.0f | %s |"
                  % (n, per_gpu, demand, 100 * demand / db, demand * mb, " / ".join(limits)))
    for k, v in capacities.items():
        print("%s: saturates at %.0f GPUs of 5 img/s" % (k, v / 5.0))


if __name__ == "__main__":
    raise SystemExit(main())
