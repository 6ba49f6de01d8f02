"""Concurrent ``segment`` runs on one field, in real processes (issue 14).

The measured cases of 0.1.0, each reproduced with ``segment`` processes
(tests/segment_worker.py) on the test's database:

- a second run with *other* settings (boxfill while grabcut runs) is refused
  at once, and the field and its record stay GrabCut's;
- a second run with the *same* settings shares the work: every sample is
  segmented by exactly one process, both end without an error, and the
  result equals a one-process run;
- shard 0 killed, shard 1 finished: the record is not complete (each shard
  has its own record) until shard 0 is run again;
- a killed process's claims expire and the other process finishes its work.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from concurrency_helpers import (  # noqa: F401 - shared helpers
    REPO,
    TTL,
    N,
    all_boxes,
    assert_same_as_clean_run,
    kwargs_for,
    make_dataset,
    worker_env,
)

WORKER = Path(__file__).resolve().parent / "segment_worker.py"


class Proc:
    """One segment_worker.py process, serving the module's tests one job at a time."""

    def __init__(self, folder, name):
        self.folder, self.name = str(folder), name
        self.log = open(os.path.join(self.folder, name + ".stderr"), "w")
        self.proc = subprocess.Popen([sys.executable, str(WORKER), self.folder, name],
                                     env=worker_env(), stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=str(REPO))

    def alive(self):
        return self.proc.poll() is None

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        while not os.path.exists(os.path.join(self.folder, self.name + ".ready")):
            assert self.alive(), self.stderr()
            assert time.monotonic() < deadline, "worker not ready: " + self.stderr()
            time.sleep(0.05)

    def submit(self, spec):
        path = os.path.join(self.folder, self.name + ".job")
        with open(path + ".tmp", "w") as f:
            json.dump(spec, f)
        os.replace(path + ".tmp", path)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self):
        if self.alive() and not os.path.exists(os.path.join(self.folder, self.name + ".ready")):
            self.kill()  # still booting
        if self.alive():
            self.submit({"quit": True})
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def stderr(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()[-3000:]


class Pool:
    """The worker processes of the module (started once; a killed one is replaced)."""

    def __init__(self, folder, n=2):
        self.folder = folder
        self.count = 0
        self.procs = [self._new() for _ in range(n)]

    def _new(self):
        self.count += 1
        return Proc(self.folder, "p%d" % self.count)

    def take(self, k):
        """Process k, ready (a dead one is replaced first)."""
        if not self.procs[k].alive():
            self.procs[k].stop()
            self.procs[k] = self._new()
        self.procs[k].wait_ready()
        return self.procs[k]

    def replace(self, k):
        """Starts a replacement of process k now (it boots in the background)."""
        self.procs[k].stop()
        self.procs[k] = self._new()

    def close(self):
        for p in self.procs:
            p.stop()


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    pool = Pool(tmp_path_factory.mktemp("workers"))
    yield pool
    pool.close()


class Worker:
    """One segment job on a pool process."""

    def __init__(self, pool, k, tmp_path, name, dataset, **spec):
        self.pool, self.k = pool, k
        self.proc = pool.take(k)
        self.out = str(tmp_path / ("%s.json" % name))
        self.proc.submit(dict(spec, dataset=dataset.name, out=self.out))

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.out + ".ready"):
            assert self.proc.alive(), self.proc.stderr()
            assert time.monotonic() < deadline, "job not ready: " + self.proc.stderr()
            time.sleep(0.02)

    def go(self):
        open(self.out + ".go", "w").close()

    def running(self):
        return self.proc.alive() and not os.path.exists(self.out)

    def segmented(self):
        """The first boxes of the images this job segmented, in order."""
        if not os.path.exists(self.out + ".log"):
            return []
        with open(self.out + ".log") as f:
            return [tuple(json.loads(line)) for line in f if line.strip()]

    def wait_segmented(self, n, timeout=60):
        deadline = time.monotonic() + timeout
        while len(self.segmented()) < n:
            assert self.running(), self.proc.stderr()
            assert time.monotonic() < deadline, self.proc.stderr()
            time.sleep(0.01)

    def kill(self):
        """SIGKILLs the process; a replacement starts booting at once."""
        self.proc.kill()
        self.pool.replace(self.k)

    def result(self, timeout=120):
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.out):
            assert self.proc.alive(), "worker died: " + self.proc.stderr()
            assert time.monotonic() < deadline, "no result: " + self.proc.stderr()
            time.sleep(0.02)
        with open(self.out) as f:
            return json.load(f)


@pytest.fixture
def dataset(tmp_path):
    ds = make_dataset(tmp_path)
    yield ds
    if not ds.deleted:
        ds.delete()


# ---------------------------------------------------------------------------


def test_other_settings_are_refused_at_once(pool, dataset, tmp_path):
    from fiftyone_samrs.segmenting.runs import get_segment_run

    a = Worker(pool, 0, tmp_path, "grabcut", dataset, backend="grabcut", delay=0.3,
               kwargs=kwargs_for(tmp_path))
    b = Worker(pool, 1, tmp_path, "boxfill", dataset, backend="boxfill", delay=0.0,
               kwargs=kwargs_for(tmp_path))
    a.wait_ready()
    b.wait_ready()
    a.go()
    a.wait_segmented(1)  # A holds the field
    b.go()
    rb = b.result()
    assert a.running(), "the refused run should not wait for the other one"
    assert "error" in rb, rb
    assert rb["error"].startswith("LeaseConflict: Field 'sam'"), rb["error"]
    assert "backend: 'grabcut' -> 'boxfill'" in rb["error"], rb["error"]
    assert b.segmented() == []
    ra = a.result()
    assert "error" not in ra, ra
    assert ra["processed"] == N
    dataset.reload()
    rec = get_segment_run(dataset, "sam")
    assert rec["backend"] == "grabcut" and rec["status"] == "complete"
    assert rec["samples_processed"] == N
    assert len(dataset.exists("sam")) == N
    # the field is free again: a boxfill run now meets the usual resume check
    from fiftyone_samrs.segmenting.baselines import BoxFillBackend
    from fiftyone_samrs.segmenting.pipeline import segment

    with pytest.raises(ValueError, match="other settings.*backend"):
        segment(dataset, engine=BoxFillBackend(), progress=False, **kwargs_for(tmp_path))


def test_same_settings_share_the_work(pool, dataset, tmp_path):
    from fiftyone_samrs.segmenting.runs import get_segment_run

    # slow enough that both start within the other's run, even on a loaded machine
    workers = [Worker(pool, i, tmp_path, "w%d" % i, dataset, delay=0.25,
                      kwargs=kwargs_for(tmp_path)) for i in range(2)]
    for w in workers:
        w.wait_ready()
    for w in workers:
        w.go()
    results = [w.result() for w in workers]
    for r in results:
        assert "error" not in r, r
    logs = [w.segmented() for w in workers]
    # every sample segmented by exactly one process, both took part
    assert sorted(logs[0] + logs[1]) == all_boxes()
    assert all(logs), "both processes should have segmented some samples"
    assert [r["processed"] for r in results] == [len(log) for log in logs]
    for r in results:
        assert r["processed"] + r["by_others"] + r["skipped"] == N
    dataset.reload()
    rec = get_segment_run(dataset, "sam")
    assert rec["status"] == "complete" and rec["samples_processed"] == N, rec
    assert rec["shards"] == {"0/1": {"status": "complete", "samples_in_shard": N,
                                     "samples_processed": N, "processes_alive": 0}}
    assert_same_as_clean_run(dataset, tmp_path)


def test_killed_shard_leaves_the_field_incomplete(pool, dataset, tmp_path):
    from fiftyone_samrs.segmenting.baselines import BoxFillBackend
    from fiftyone_samrs.segmenting.pipeline import segment
    from fiftyone_samrs.segmenting.runs import get_segment_run, shard_of

    ids = dataset.values("id")
    in_shard = [sum(shard_of(s, 2) == i for s in ids) for i in range(2)]
    s0 = Worker(pool, 0, tmp_path, "s0", dataset, delay=0.3,
                kwargs=kwargs_for(tmp_path, shard=[0, 2]))
    s1 = Worker(pool, 1, tmp_path, "s1", dataset, delay=0.02,
                kwargs=kwargs_for(tmp_path, shard=[1, 2]))
    s0.wait_ready()
    s1.wait_ready()
    s0.go()
    s1.go()
    s0.wait_segmented(2)
    s0.kill()
    r1 = s1.result()
    assert "error" not in r1, r1
    assert r1["processed"] == in_shard[1]
    dataset.reload()
    done = len(dataset.exists("sam"))
    assert in_shard[1] <= done < N
    rec = get_segment_run(dataset, "sam")
    assert rec["status"] == "running", rec
    assert rec["shards"]["1/2"]["status"] == "complete"
    assert rec["shards"]["0/2"]["status"] == "running"  # killed: it could not say more
    assert rec["samples_processed"] == in_shard[1]

    # shard 0 again, here: it joins the dead run's epoch and takes over its claims
    res = segment(dataset, engine=BoxFillBackend(), progress=False,
                  **kwargs_for(tmp_path, shard=(0, 2)))
    assert res.samples_skipped + res.samples_processed + res.samples_by_others == in_shard[0]
    assert res.samples_skipped == done - in_shard[1]
    dataset.reload()
    rec = get_segment_run(dataset, "sam")
    assert rec["status"] == "complete", rec
    assert rec["shards"]["0/2"]["status"] == "complete"
    assert len(dataset.exists("sam")) == N
    assert_same_as_clean_run(dataset, tmp_path)


def test_killed_process_claims_expire_and_the_other_finishes(pool, dataset, tmp_path):
    from fiftyone_samrs.segmenting.runs import get_segment_run

    a = Worker(pool, 0, tmp_path, "a", dataset, delay=0.4, kwargs=kwargs_for(tmp_path))
    b = Worker(pool, 1, tmp_path, "b", dataset, delay=0.02, kwargs=kwargs_for(tmp_path))
    a.wait_ready()
    b.wait_ready()
    a.go()
    a.wait_segmented(3)  # A wrote its first batch, holds the second
    b.go()
    b.wait_segmented(1)
    a.kill()
    rb = b.result()
    assert "error" not in rb, rb
    dataset.reload()
    assert len(dataset.exists("sam")) == N
    seen_a, seen_b = a.segmented(), b.segmented()
    # B redid only what A had in hand when it died (its last batch or two)
    assert len(set(seen_b)) == len(seen_b)
    assert set(seen_a) | set(seen_b) == set(all_boxes())
    assert len(set(seen_a) & set(seen_b)) <= 4
    assert rb["processed"] == len(seen_b)
    assert rb["processed"] + rb["by_others"] + rb["skipped"] == N
    rec = get_segment_run(dataset, "sam")
    assert rec["status"] == "complete", rec
    assert_same_as_clean_run(dataset, tmp_path)
