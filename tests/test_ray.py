"""``segment(..., workers=N)`` on a local Ray with 2 CPUs (issue 14).

- 2 workers give the same field as 1 worker and as a plain run;
- a worker killed mid-run (SIGKILL from inside its model call) is restarted
  by Ray, its chunk retried, and the result is still identical, nothing lost
  or done twice;
- a driver in another process, on a standalone ``mongod`` (a shared
  database, ``FIFTYONE_DATABASE_URI``), joins this Ray by its address, and
  its workers write into that database; with Ray's restarts off there, the
  worker that dies has its chunk done by the other.

The workers are kept between the calls (``keep_workers=True``) so that one
start serves the module; the CLI test checks that by default they end.

One Ray instance serves the module. Its workers import this checkout (the
driver's working directory and PYTHONPATH) and reach the test database
through the URI the driver hands them.
"""

import os

import pytest

ray = pytest.importorskip("ray")

from concurrency_helpers import (  # noqa: E402
    REPO,
    N,
    StandaloneMongod,
    assert_fields_equal,
    kwargs_for,
    make_dataset,
)


@pytest.fixture(scope="module")
def local_ray():
    from fiftyone_samrs.segmenting.distributed import start_local_ray

    os.chdir(str(REPO))
    start_local_ray(ray, num_cpus=2, logging_level="WARNING")
    yield
    from fiftyone_samrs.segmenting.distributed import shutdown_workers

    shutdown_workers()
    ray.shutdown()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from fiftyone_samrs.segmenting.baselines import BoxFillBackend
    from fiftyone_samrs.segmenting.pipeline import segment

    tmp = tmp_path_factory.mktemp("ray")
    ds = make_dataset(tmp)
    segment(ds, engine=BoxFillBackend(), label_field="clean", seg_field="clean_seg",
            seg_dir=str(tmp / "clean"), batch_size=3, progress=False)
    yield ds, tmp
    ds.delete()


def _ray_run(ds, tmp, field, **kw):
    from fiftyone_samrs.segmenting.pipeline import segment

    kw.setdefault("keep_workers", True)  # one worker start serves the module
    return segment(ds, label_field=field, seg_field=field + "_seg", progress=False,
                   **kwargs_for(tmp / field, **kw))


def test_two_workers_equal_one(local_ray, dataset):
    from fiftyone_samrs.segmenting.runs import get_segment_run
    from fiftyone_samrs.testing.backends import SlowBoxFill

    ds, tmp = dataset
    one = _ray_run(ds, tmp, "one", engine=SlowBoxFill(0.1), workers=1)
    two = _ray_run(ds, tmp, "two", engine=SlowBoxFill(0.1), workers=2)
    for res in (one, two):
        assert res.samples_processed == N and res.samples_by_others == 0
    assert one.workers == 1 and two.workers == 2
    assert sorted(two.worker_samples) == ["w0", "w1"] and all(two.worker_samples.values())
    assert "2 Ray workers" in two.summary()
    assert_fields_equal(ds, "one", "clean")
    assert_fields_equal(ds, "two", "clean")
    rec = get_segment_run(ds, "two")
    assert rec["status"] == "complete" and rec["samples_processed"] == N
    print("\n1 worker: %.2f samples/s, 2 workers: %.2f samples/s (incl. worker start)"
          % (N / one.seconds, N / two.seconds))


def test_ray_skips_and_counts_failures_as_a_plain_run(local_ray, tmp_path):
    """0.2.0: ``workers=1, skip_failures=True`` raised on a missing image that
    ``workers=None`` skips and counts; the Ray worker returned no failures."""
    from fiftyone_samrs.segmenting.baselines import BoxFillBackend
    from fiftyone_samrs.segmenting.runs import get_segment_run

    ds = make_dataset(tmp_path, n=6)
    try:
        gone = ds.skip(2).first()
        os.remove(gone.filepath)
        runs = {}
        for field, workers in (("plain", None), ("ray", 1)):
            runs[field] = _ray_run(ds, tmp_path, field, engine=BoxFillBackend(),
                                   workers=workers, skip_failures=True)
        for field, res in runs.items():
            assert (res.samples_processed, res.samples_failed) == (5, 1), field
            assert [f["id"] for f in res.failures] == [gone.id], field
            rec = get_segment_run(ds, field)
            assert rec["samples_failed"] == 1 and rec["failures"][0]["filepath"] == gone.filepath
        plain, ray_ = runs["plain"].as_record(), runs["ray"].as_record()
        for key in ("samples_processed", "boxes", "empty_masks", "samples_failed",
                    "mask_files", "unknown_labels", "failures"):
            assert plain[key] == ray_[key], key
    finally:
        ds.delete()


def test_workers_import_this_checkout_and_use_the_cpus(local_ray):
    from fiftyone_samrs.segmenting.distributed import _resources

    @ray.remote(num_cpus=0)
    def where():
        import fiftyone_samrs

        return os.path.dirname(os.path.dirname(os.path.abspath(fiftyone_samrs.__file__)))

    assert ray.get(where.remote()) == str(REPO)
    res = _resources(ray, 2, None)
    assert res == {"num_gpus": 0, "num_cpus": 1, "workers": 2, "device": None}
    assert _resources(ray, 5, None)["workers"] == 2  # capped to the CPUs


def test_killed_worker_still_gives_identical_results(local_ray, dataset):
    from fiftyone_samrs.testing.backends import DieOnce

    ds, tmp = dataset
    marker = str(tmp / "died-restart")
    res = _ray_run(ds, tmp, "killed", engine=DieOnce(marker, after=2, delay=0.05), workers=2)
    assert os.path.exists(marker), "no worker died"
    assert res.samples_processed + res.samples_by_others == N
    assert len(ds.exists("killed")) == N
    assert_fields_equal(ds, "killed", "clean")


def test_cli_workers(local_ray, dataset, capsys):
    from fiftyone_samrs.tools.cli import main

    ds, tmp = dataset
    assert main(["segment", ds.name, "--backend", "boxfill", "--label-field", "cli",
                 "--seg-field", "cli_seg", "--seg-dir", str(tmp / "cli"), "--workers", "2",
                 "--batch-size", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "%d samples segmented" % N in out and "2 Ray workers" in out
    assert_fields_equal(ds, "cli", "clean")
    from fiftyone_samrs.segmenting import distributed

    assert distributed._POOL["actors"] == []  # by default the workers end with the call


def test_shared_mongodb_and_a_joined_cluster(local_ray, tmp_path):
    import json
    import subprocess
    import sys
    import uuid

    from fiftyone_samrs.segmenting.distributed import shutdown_workers

    shutdown_workers()  # the CPUs go to the other driver's workers
    mongod = StandaloneMongod(tmp_path)
    try:
        name = "samrs-test-shared-" + uuid.uuid4().hex[:6]
        env = dict(os.environ, FIFTYONE_DATABASE_URI=mongod.uri, FIFTYONE_DATABASE_NAME=name,
                   FIFTYONE_DATABASE_VALIDATION="false", FIFTYONE_DO_NOT_TRACK="true",
                   PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
        env.pop("FIFTYONE_PRIVATE_DATABASE_PORT", None)
        out = tmp_path / "driver.json"
        address = ray.get_runtime_context().gcs_address
        proc = subprocess.run(
            [sys.executable, str(REPO / "tests" / "shared_db_driver.py"), address,
             str(tmp_path / "work"), str(out)], env=env, cwd=str(REPO),
            capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        seen = json.loads(out.read_text())
        assert seen["uri"] == mongod.uri and seen["database"] == name
        assert seen["workers"] == 2 and seen["died"]
        # the dead worker's chunk went to the other one: nothing lost, nothing twice
        assert seen["processed"] + seen["samples_by_others"] == N
        assert sum(seen["worker_samples"].values()) == seen["processed"]
        # everything is in the standalone database, nothing in the embedded one
        db = mongod.client()[name]
        assert db.datasets.find_one({"name": seen["dataset"]}) is not None
        shards = list(db["samrs.shards"].find({"label_field": "ray"}))
        assert [(s["status"], s["samples_processed"] + s["samples_by_others"])
                for s in shards] == [("complete", N)]
        import fiftyone as fo

        assert not fo.dataset_exists(seen["dataset"])
    finally:
        mongod.stop()


def test_the_local_ray_listens_on_loopback_only(local_ray):
    """Issue 22, item 1: the local Ray of ``segment --workers N`` listened
    on all interfaces (reachable from the network in a container)."""
    import shutil
    import subprocess

    node = ray._private.worker.global_worker.node
    assert node.node_ip_address == "127.0.0.1"
    if not shutil.which("ss"):
        pytest.skip("no `ss` here to list the listening sockets")
    pids = {str(node.all_processes[k][0].process.pid) for k in node.all_processes
            if node.all_processes[k]}
    lines = [line for line in subprocess.run(["ss", "-ltnpH"], capture_output=True,
                                             text=True).stdout.splitlines()
             if any("pid=%s," % p in line for p in pids)]
    assert lines, "no listening socket of Ray's processes found"
    addresses = {line.split()[3].rsplit(":", 1)[0] for line in lines}
    assert addresses <= {"127.0.0.1", "[::ffff:127.0.0.1]", "[::1]"}, addresses
