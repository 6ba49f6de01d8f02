"""A ``segment`` process for the concurrency tests (tests/test_concurrency.py).

    python tests/segment_worker.py '{"dataset": ..., "out": ..., ...}'

It connects to the test process's database (``FIFTYONE_DATABASE_URI`` and
``FIFTYONE_DATABASE_NAME`` from the environment), loads the dataset, writes
``<out>.ready``, waits for ``<out>.go`` (so that the test decides when the
processes overlap), runs :func:`fiftyone_samrs.segment` with a slow
deterministic backend, and writes ``<out>`` (JSON: the result counts, or the
error). Each image the backend segments is logged (its first prompt box) to
``<out>.log``, so the test knows which process segmented which sample.
"""

import json
import os
import sys
import time


def main() -> int:
    spec = json.loads(sys.argv[1])
    out = spec["out"]

    import fiftyone as fo

    from fiftyone_samrs.segmenting.baselines import BoxFillBackend, GrabCutBackend
    from fiftyone_samrs.segmenting.pipeline import segment

    base = GrabCutBackend if spec.get("backend", "boxfill") == "grabcut" else BoxFillBackend

    class Slow(base):
        """The baseline, ``delay`` seconds per batch, logging what it segments."""

        def predict_batch(self, images, prompts):
            with open(out + ".log", "a") as f:
                for ps in prompts:
                    f.write("%s\n" % json.dumps([round(float(v), 3) for v in ps.boxes[0]]))
            time.sleep(spec.get("delay", 0.2))
            return super().predict_batch(images, prompts)

    dataset = fo.load_dataset(spec["dataset"])
    with open(out + ".ready", "w"):
        pass
    deadline = time.time() + 120
    while not os.path.exists(out + ".go"):
        if time.time() > deadline:
            return 3
        time.sleep(0.05)
    kwargs = dict(spec.get("kwargs", {}))
    if kwargs.get("shard"):
        kwargs["shard"] = tuple(kwargs["shard"])
    t0 = time.time()
    try:
        res = segment(dataset, engine=Slow(), progress=False, **kwargs)
    except Exception as e:  # noqa: BLE001 - reported to the test
        with open(out, "w") as f:
            json.dump({"error": "%s: %s" % (type(e).__name__, e),
                       "seconds": time.time() - t0}, f)
        return 1
    with open(out, "w") as f:
        json.dump({"processed": res.samples_processed, "skipped": res.samples_skipped,
                   "by_others": getattr(res, "samples_by_others", None),
                   "boxes": res.boxes, "seconds": time.time() - t0}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
