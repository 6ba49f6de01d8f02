"""``segment(..., workers=N)`` on a local Ray with 2 CPUs (issue 14).

- 2 workers give the same field as 1 worker and as a plain run;
- a worker killed mid-run (SIGKILL from inside its model call) is restarted
  by Ray, its chunk retried, and the result is still identical, nothing lost
  or done twice;
- with Ray's restarts off, the dead worker's chunk goes to the other worker.

The workers are kept between the calls (``keep_workers=True``) so that one
start serves the module; the last test checks that by default they end.

One Ray instance serves the module. Its workers import this checkout (the
driver's working directory and PYTHONPATH) and reach the test database
through the URI the driver hands them.
"""

import os

import pytest

ray = pytest.importorskip("ray")

from concurrency_helpers import (  # noqa: E402
    N,
    REPO,
    assert_fields_equal,
    kwargs_for,
    make_dataset,
)


@pytest.fixture(scope="module")
def local_ray():
    os.chdir(str(REPO))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=True,
             logging_level="WARNING")
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


def test_dead_worker_chunk_goes_to_another(local_ray, dataset, monkeypatch):
    from fiftyone_samrs.segmenting import distributed
    from fiftyone_samrs.testing.backends import DieOnce

    monkeypatch.setattr(distributed, "ACTOR_OPTIONS", {"max_restarts": 0,
                                                       "max_task_retries": 0})
    ds, tmp = dataset
    marker = str(tmp / "died-for-good")
    res = _ray_run(ds, tmp, "dead", engine=DieOnce(marker, after=2, delay=0.05), workers=2,
                   keep_workers=False)
    assert distributed._POOL["actors"] == []  # the default: they end with the call
    assert os.path.exists(marker)
    assert sum(res.worker_samples.values()) == res.samples_processed
    assert res.samples_processed + res.samples_by_others == N
    assert_fields_equal(ds, "dead", "clean")
