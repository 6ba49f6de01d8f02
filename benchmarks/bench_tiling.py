"""Tiling benchmark (issue 11): one DOTA v2.0-size image, 0.1.0's planner against the spatial index.

One 20000x20000 image with 50,000 objects (default), DOTA v1.0-like rotated
boxes with integer corners (mostly vehicles of 10-60 px, some large objects
of up to 600 px), tiled 1024/200/0.7 as SAMRS did. In one run it times:

1. **plan, 0.1.0**: ``tests/tiling_reference.py`` (test-only, not in the wheel), every
   window against every object, one Python call each (the algorithm of
   0.1.0, with today's SAMRS-faithful rules);
2. **plan, now**: :func:`fiftyone_samrs.importing.tiling.tile_record` (the
   per-object bounds arrays; only objects cut by a window go through
   shapely). Both plans are compared: they must be identical;
3. **end to end, now**: :func:`~fiftyone_samrs.importing.tiling.tile_images`
   on a real 20000x20000 PNG (decoded once, tiles written as crops by
   ``--workers`` threads), with the number of progress-bar updates;
4. **tile writing as 0.1.0 did it** (one thread, the same crops), so that
   "end to end, 0.1.0" = (1) + (4).

The target is (1) / (2) >= 10x, and end to end >= 10x. ``--ref-windows N``
times the reference on the first N windows only and scales it (it is linear
in the windows: each one scans every object); the JSON says which.

Usage::

    .venv/bin/python benchmarks/bench_tiling.py                 # full size
    .venv/bin/python benchmarks/bench_tiling.py --side 6000 --objects 5000   # smoke
    .venv/bin/python benchmarks/bench_tiling.py --no-image      # planning only

Results go to ``benchmarks/results/tiling-<date>.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_record(side: int, n_objects: int, seed: int = 0, filepath: str = "/bench/P9999.png"):
    """An image record with ``n_objects`` DOTA-like rotated boxes."""
    import numpy as np

    from fiftyone_samrs.core.classes import DOTA_V1_0
    from fiftyone_samrs.core.geometry import quad_to_hbox
    from fiftyone_samrs.core.records import ImageRecord, ObjectRecord

    rng = np.random.default_rng(seed)
    big = rng.uniform(size=n_objects) < 0.03
    w = np.where(big, rng.uniform(80, 600, n_objects), rng.uniform(10, 60, n_objects))
    h = w * rng.uniform(0.3, 1.0, n_objects)
    cx, cy = rng.uniform(0, side, n_objects), rng.uniform(0, side, n_objects)
    a = rng.uniform(0, np.pi, n_objects)
    dx = np.array([-1, 1, 1, -1])[None] * w[:, None] / 2
    dy = np.array([-1, -1, 1, 1])[None] * h[:, None] / 2
    xs = cx[:, None] + dx * np.cos(a)[:, None] - dy * np.sin(a)[:, None]
    ys = cy[:, None] + dx * np.sin(a)[:, None] + dy * np.cos(a)[:, None]
    quads = np.clip(np.round(np.stack([xs, ys], axis=2)), 0, side)
    labels = rng.choice(DOTA_V1_0, n_objects)
    objects = []
    for i in range(n_objects):
        q = quads[i]
        objects.append(ObjectRecord(label=str(labels[i]), hbox=quad_to_hbox(q), quad=q,
                                    difficult=int(rng.uniform() < 0.1),
                                    source_id="P9999.txt:%d" % (i + 1), hbox_is_rh=True))
    return ImageRecord(filepath=filepath, width=side, height=side, objects=objects,
                       source="DOTA-v2.0", split="train")


def write_image(path: str, side: int) -> None:
    """A ``side x side`` RGB PNG with some structure (fast PNG compression)."""
    import cv2
    import numpy as np

    img = np.empty((side, side, 3), np.uint8)
    ramp = (np.arange(side, dtype=np.uint32) * 251 // max(side - 1, 1)).astype(np.uint8)
    img[..., 0] = ramp[None, :]
    img[..., 1] = ramp[:, None]
    img[..., 2] = 90
    if not cv2.imwrite(path, img, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError("cannot write %s" % path)


def same_plan(a, b) -> bool:
    import numpy as np

    if [(t.filepath, t.tile, t.attributes) for t in a] != [(t.filepath, t.tile, t.attributes)
                                                           for t in b]:
        return False
    for t, u in zip(a, b):
        if len(t.objects) != len(u.objects):
            return False
        for o, r in zip(t.objects, u.objects):
            if (o.source_id, o.truncated, tuple(o.hbox), o.attributes) != (
                    r.source_id, r.truncated, tuple(r.hbox), r.attributes):
                return False
            if not np.array_equal(o.quad, r.quad):
                return False
    return True


class _CountingBar:
    """Wraps tqdm to count the updates the tiling progress bar gets."""

    updates = 0

    def __init__(self, real):
        self.real = real

    def __call__(self, *args, **kwargs):
        bar = self.real(*args, **kwargs)
        update = bar.update

        def counted(n=1):
            _CountingBar.updates += 1
            return update(n)

        bar.update = counted
        return bar


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, default=20000, help="image side in pixels")
    parser.add_argument("--objects", type=int, default=50000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--gap", type=int, default=200)
    parser.add_argument("--keep-thresh", type=float, default=0.7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ref-windows", type=int, default=None,
                        help="time the reference on this many windows only (scaled)")
    parser.add_argument("--no-image", action="store_true", help="planning only")
    parser.add_argument("--out", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results",
        "tiling-%s.json" % datetime.date.today().isoformat()))
    args = parser.parse_args(argv)

    import tqdm
    from _common import write_results

    from fiftyone_samrs.core.records import ImportReport
    from fiftyone_samrs.importing import tiling
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "tests"))
    import tiling_reference  # test-only: the 0.1.0 planner, not in the wheel

    results = {"side": args.side, "objects": args.objects, "size": args.size, "gap": args.gap,
               "keep_thresh": args.keep_thresh, "workers": args.workers,
               "cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg()[0]}
    tmp = tempfile.mkdtemp(prefix="samrs-bench-tiling-")
    try:
        src = os.path.join(tmp, "P9999.png")
        record = make_record(args.side, args.objects, filepath=src)
        windows = tiling.windows(args.side, args.side, args.size, args.gap)
        results["windows"] = len(windows)

        t = time.perf_counter()
        plan = tiling.tile_record(record, args.size, args.gap, args.keep_thresh,
                                  out_dir=tmp, report=ImportReport())
        results["plan_new_s"] = time.perf_counter() - t
        results["tiles"] = len(plan)
        results["objects_in_tiles"] = sum(len(p.objects) for p in plan)
        results["cut_objects_in_tiles"] = sum(o.truncated is True for p in plan
                                              for o in p.objects)
        print("plan, now:   %8.2f s  (%d windows, %d tiles, %d objects in tiles)"
              % (results["plan_new_s"], len(windows), len(plan), results["objects_in_tiles"]))

        ref_record = record
        scale = 1.0
        if args.ref_windows and args.ref_windows < len(windows):
            # the first N windows of the devkit order: a crop of the image's first columns
            xs = sorted({x for x, _ in windows[: args.ref_windows]})
            width = min(args.side, xs[-1] + args.size)
            ref_record = make_record(args.side, args.objects, filepath=src)
            ref_record.width = width
            n_ref = len(tiling.windows(width, args.side, args.size, args.gap))
            scale = len(windows) / n_ref
            results["ref_windows_timed"] = n_ref
        t = time.perf_counter()
        ref_plan = tiling_reference.tile_record(ref_record, args.size, args.gap,
                                                args.keep_thresh, out_dir=tmp,
                                                report=ImportReport())
        results["plan_ref_s"] = (time.perf_counter() - t) * scale
        results["plan_ref_scaled"] = scale != 1.0
        if scale == 1.0:
            results["plans_identical"] = same_plan(plan, ref_plan)
        print("plan, 0.1.0: %8.2f s%s" % (results["plan_ref_s"],
                                          "  (scaled from %d windows)" % results["ref_windows_timed"]
                                          if scale != 1.0 else ""))
        results["plan_speedup"] = results["plan_ref_s"] / results["plan_new_s"]
        print("plan speed-up: %.1fx%s" % (results["plan_speedup"],
                                          "" if scale != 1.0 else
                                          "  (plans identical: %s)" % results["plans_identical"]))
        del ref_plan

        if not args.no_image:
            t = time.perf_counter()
            write_image(src, args.side)
            results["write_source_png_s"] = time.perf_counter() - t
            results["source_png_mb"] = os.path.getsize(src) / 1e6
            counting = _CountingBar(tqdm.tqdm)
            real = tqdm.tqdm
            tqdm.tqdm = counting
            try:
                t = time.perf_counter()
                tiles = list(tiling.tile_images([record], os.path.join(tmp, "new"),
                                                size=args.size, gap=args.gap,
                                                keep_thresh=args.keep_thresh,
                                                workers=args.workers, progress=True))
                results["end_to_end_new_s"] = time.perf_counter() - t
            finally:
                tqdm.tqdm = real
            results["progress_updates"] = _CountingBar.updates
            assert len(tiles) == len(plan)
            print("end to end, now:      %8.2f s  (%d tiles written, %d progress updates)"
                  % (results["end_to_end_new_s"], len(tiles), _CountingBar.updates))
            shutil.rmtree(os.path.join(tmp, "new"))
            # the tile writing of 0.1.0: one thread, one decode (planning not counted)
            t0 = time.perf_counter()
            list(tiling.tile_images([record], os.path.join(tmp, "old"), size=args.size,
                                    gap=args.gap, keep_thresh=args.keep_thresh, workers=1,
                                    progress=False))
            io_old = time.perf_counter() - t0 - results["plan_new_s"]
            results["write_tiles_old_style_s"] = io_old
            results["end_to_end_ref_s"] = results["plan_ref_s"] + io_old
            results["end_to_end_speedup"] = results["end_to_end_ref_s"] / results[
                "end_to_end_new_s"]
            print("end to end, 0.1.0:    %8.2f s  (plan + %.2f s of one-thread tile writing)"
                  % (results["end_to_end_ref_s"], io_old))
            print("end-to-end speed-up: %.1fx" % results["end_to_end_speedup"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["load_avg_end"] = os.getloadavg()[0]
    write_results(results, args.out)
    return results


if __name__ == "__main__":
    main()
