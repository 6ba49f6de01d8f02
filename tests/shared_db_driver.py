"""A Ray driver on a shared MongoDB, for tests/test_ray.py.

    FIFTYONE_DATABASE_URI=mongodb://127.0.0.1:PORT FIFTYONE_DATABASE_NAME=... \\
        python tests/shared_db_driver.py RAY_ADDRESS WORKDIR OUT.json

Builds the concurrency tests' dataset in that database, segments it once in
this process (``clean``) and once with 2 Ray workers of the cluster at
RAY_ADDRESS (``ray``), with Ray's restarts off and one worker killing itself
on its second model call (its chunk must go to the other worker), compares
the two, and writes what it saw to OUT.json. The workers reach the database
through the URI the driver hands them.
"""

import json
import sys
from pathlib import Path


def main() -> int:
    address, workdir, out = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    import fiftyone as fo
    from concurrency_helpers import assert_fields_equal, make_dataset

    from fiftyone_samrs.fiftyone_io import database_uri
    from fiftyone_samrs.segmenting import distributed
    from fiftyone_samrs.segmenting.baselines import BoxFillBackend
    from fiftyone_samrs.segmenting.pipeline import segment
    from fiftyone_samrs.testing.backends import DieOnce

    distributed.ACTOR_OPTIONS = {"max_restarts": 0, "max_task_retries": 0}
    marker = str(workdir / "died")

    ds = make_dataset(workdir)
    ds.persistent = True
    segment(ds, engine=BoxFillBackend(), label_field="clean", seg_field="clean_seg",
            seg_dir=str(workdir / "clean"), batch_size=3, progress=False)
    res = segment(ds, engine=DieOnce(marker, after=2, delay=0.05), label_field="ray", seg_field="ray_seg",
                  seg_dir=str(workdir / "ray"), batch_size=2, progress=False, workers=2,
                  ray_address=address)
    assert_fields_equal(ds, "ray", "clean")
    with open(out, "w") as f:
        json.dump({"dataset": ds.name, "uri": database_uri(),
                   "database": fo.config.database_name, "processed": res.samples_processed,
                   "workers": res.workers, "worker_samples": res.worker_samples,
                   "samples_by_others": res.samples_by_others,
                   "died": (workdir / "died").exists(), "summary": res.summary()}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
