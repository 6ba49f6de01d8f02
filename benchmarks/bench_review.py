"""Alternatives for 20 labels of one 1024 x 1024 image (issue 26): one
``resegment`` call (every default alternative, the image encoded once)
against 20 separate ``segment`` calls, one label each (each encodes the
image), in one run, the same model.

    .venv/bin/python benchmarks/bench_review.py [--model samrs-tiny] [--repeats 3]

Prints a Markdown table (median seconds of each way and their ratio) and
writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SIZE, N = 1024, 20


def make_dataset(folder: str):
    """One 1024 x 1024 image with 20 boxes, segmented once into ``sam``."""
    import cv2
    import fiftyone as fo
    import numpy as np

    from fiftyone_samrs.core.masks import relative_box

    rng = np.random.default_rng(0)
    image = rng.integers(60, 120, (SIZE, SIZE, 3), dtype=np.uint8)
    dets = []
    for k in range(N):
        x, y = 40 + (k % 5) * 190, 40 + (k // 5) * 240
        w, h = rng.integers(40, 150, 2)
        image[y : y + h, x : x + w] = rng.integers(150, 255, 3)
        dets.append(fo.Detection(label="ship", obj_index=k, bounding_box=relative_box(
            (x, y, x + w, y + h), SIZE, SIZE)))
    path = os.path.join(folder, "scene.png")
    cv2.imwrite(path, image)
    ds = fo.Dataset()
    ds.add_sample(fo.Sample(filepath=path, hbb=fo.Detections(detections=dets)))
    ds.compute_metadata()
    return ds


def one_resegment(ds, model: str) -> float:
    from fiftyone_samrs.evaluating.review import resegment

    t = time.perf_counter()
    resegment(ds, backend="sam", model=model, device="cpu", progress=False)
    return time.perf_counter() - t


def separate_segments(ds, model: str, folder: str) -> float:
    from fiftyone import ViewField as F

    from fiftyone_samrs.segmenting.pipeline import segment

    t = time.perf_counter()
    for det in ds.first().hbb.detections:
        one = ds.filter_labels("hbb", F("_id") == det._id)
        segment(one, backend="sam", model=model, device="cpu", label_field="one",
                seg_field=None, overwrite=True, progress=False)
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="samrs-tiny")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=os.path.join(HERE, "out", "review.md"))
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    from fiftyone_samrs.segmenting.pipeline import segment

    with tempfile.TemporaryDirectory() as folder:
        ds = make_dataset(folder)
        try:
            segment(ds, backend="sam", model=args.model, device="cpu", seg_field=None,
                    progress=False)
            ours, theirs = [], []
            for _ in range(args.repeats):  # alternating
                ours.append(one_resegment(ds, args.model))
                theirs.append(separate_segments(ds, args.model, folder))
        finally:
            ds.delete()
    a, b = statistics.median(ours), statistics.median(theirs)
    text = "\n".join([
        "# Alternatives for %d labels of one %dx%d image (model %s, CPU)" % (N, SIZE, SIZE,
                                                                           args.model), "",
        "| way | median s (%d runs, alternating) |" % args.repeats, "| --- | ---: |",
        "| one `resegment` (all default alternatives: 8 per label, 1 encoder pass) | %.2f |"
        % a,
        "| 20 separate `segment` calls (1 mask per label, 20 encoder passes) | %.2f |" % b,
        "", "Ratio: %.2fx (20 segment calls / one resegment)." % (b / a), ""])
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
