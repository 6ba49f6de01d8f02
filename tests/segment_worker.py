"""A ``segment`` process for the concurrency tests (tests/test_concurrency.py).

    python tests/segment_worker.py DIR NAME

It connects to the test process's database (``FIFTYONE_DATABASE_URI`` and
``FIFTYONE_DATABASE_NAME`` from the environment), writes ``DIR/NAME.ready``
and then runs the jobs the test hands it, one at a time, so that one process
start serves several tests. A job is ``DIR/NAME.job`` (JSON, written
atomically): the worker takes it (removes the file), loads the dataset,
writes ``<out>.ready``, waits for ``<out>.go`` (the test decides when the
processes overlap), runs :func:`fiftyone_samrs.segment` with a slow
deterministic backend, and writes ``<out>`` (JSON: the result counts, or the
error). Each image the backend segments is logged (its first prompt box) to
``<out>.log``, so the test knows which process segmented which sample.
``{"quit": true}`` ends the process.
"""

import json
import os
import sys
import time


def run_job(spec) -> None:
    import fiftyone as fo

    from fiftyone_samrs.segmenting.baselines import BoxFillBackend, GrabCutBackend
    from fiftyone_samrs.segmenting.pipeline import segment

    out = spec["out"]
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
    dataset.reload()
    with open(out + ".ready", "w"):
        pass
    deadline = time.time() + 120
    while not os.path.exists(out + ".go"):
        if time.time() > deadline:
            raise SystemExit(3)
        time.sleep(0.02)
    kwargs = dict(spec.get("kwargs", {}))
    if kwargs.get("shard"):
        kwargs["shard"] = tuple(kwargs["shard"])
    t0 = time.time()
    try:
        res = segment(dataset, engine=Slow(), progress=False, **kwargs)
        answer = {"processed": res.samples_processed, "skipped": res.samples_skipped,
                  "by_others": res.samples_by_others, "boxes": res.boxes}
    except Exception as e:
        answer = {"error": "%s: %s" % (type(e).__name__, e)}
    answer["seconds"] = time.time() - t0
    with open(out + ".tmp", "w") as f:
        json.dump(answer, f)
    os.replace(out + ".tmp", out)


def main() -> int:
    folder, name = sys.argv[1], sys.argv[2]
    import fiftyone as fo  # noqa: F401 - the slow part, before "ready"
    import fiftyone.core.odm as foo

    from fiftyone_samrs.segmenting import pipeline  # noqa: F401

    foo.get_db_conn()
    job_path = os.path.join(folder, name + ".job")
    with open(os.path.join(folder, name + ".ready"), "w"):
        pass
    while True:
        if not os.path.exists(job_path):
            time.sleep(0.02)
            continue
        with open(job_path) as f:
            spec = json.load(f)
        os.remove(job_path)
        if spec.get("quit"):
            return 0
        run_job(spec)


if __name__ == "__main__":
    sys.exit(main())
