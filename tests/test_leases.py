"""Leases, claims and shard records (fiftyone_samrs.segmenting.leases), in
one process: the rules the concurrency tests rely on."""

import threading
import time

import pytest


def _settings(backend="boxfill", label_field="sam"):
    from fiftyone_samrs.segmenting.runs import SegmentSettings

    return SegmentSettings(prompt="auto", backend=backend, model=None, checkpoint=None,
                           box_field="hbb", obb_field=None, label_field=label_field,
                           seg_field=None, seg_dir=None, classes=("plane",), margin=0.1,
                           clip_to_rbox=False, rbox_margin=2.0, paint_order="annotation")


def _lease(ds, backend="boxfill", ttl=30.0, shard=None, **kw):
    from fiftyone_samrs.segmenting.leases import FieldLease

    return FieldLease(ds, _settings(backend, **kw), shard, ttl=ttl)


def test_other_settings_conflict_until_released(fo_dataset):
    from fiftyone_samrs.segmenting.leases import LeaseConflict

    a = _lease(fo_dataset, "grabcut").acquire()
    try:
        assert a.creator
        with pytest.raises(LeaseConflict, match=r"backend: 'grabcut' -> 'boxfill'"):
            _lease(fo_dataset, "boxfill").acquire()
        # another field is free
        other = _lease(fo_dataset, "boxfill", label_field="other").acquire()
        other.release()
    finally:
        a.release()
    b = _lease(fo_dataset, "boxfill").acquire()
    assert b.creator and b.epoch != a.epoch
    b.release()


def test_same_settings_join_once_the_opener_is_ready(fo_dataset):
    a = _lease(fo_dataset).acquire()
    joined = {}

    def join():
        joined["lease"] = _lease(fo_dataset).acquire()
        joined["at"] = time.monotonic()

    t = threading.Thread(target=join)
    t.start()
    time.sleep(0.5)
    assert "lease" not in joined  # waits while the opener sets the field up
    ready_at = time.monotonic()
    a.set_ready()
    t.join(10)
    b = joined["lease"]
    assert not b.creator and b.epoch == a.epoch and joined["at"] >= ready_at
    # the epoch ends with the last one out
    a.release()
    from fiftyone_samrs.fiftyone_io import samrs_collection

    assert samrs_collection("leases").find_one({"_id": a.key}) is not None
    b.release()
    assert samrs_collection("leases").find_one({"_id": a.key}) is None


def test_a_dead_owner_expires_and_loses_the_field(fo_dataset):
    from fiftyone_samrs.segmenting.leases import LeaseLost

    a = _lease(fo_dataset, "grabcut", ttl=0.6).acquire()
    a._stop.set()  # as if killed: no heartbeat, no release
    a._thread.join()
    time.sleep(0.8)
    b = _lease(fo_dataset, "boxfill").acquire()
    assert b.creator and b.epoch != a.epoch
    a.heartbeat()
    with pytest.raises(LeaseLost, match="lost its lease"):
        a.check()
    b.release()


def test_claims(fo_dataset):
    from fiftyone_samrs.segmenting.leases import Claims

    a = _lease(fo_dataset, ttl=30).acquire()
    try:
        mine = a.claims()
        other = Claims(a.epoch, "other-process", "other-process", 0.5)
        got = mine.claim(["s1", "s2", "s3"])
        assert got.mine == ["s1", "s2", "s3"] and not got.held
        got = other.claim(["s2", "s4"])
        assert got.mine == ["s4"] and got.held == ["s2"]
        mine.mark_done(["s1", "s2"])
        assert other.claim(["s1"]).done == ["s1"]
        assert mine.count_done() == 2
        # a worker takes back its own claims after a restart (same name)
        again = mine.claim(["s3"])
        assert again.mine == again.reclaimed == ["s3"]
        # other's claim of s4 expires (no heartbeat): taken over
        assert mine.status(["s4"]) == ([], [], ["s4"])
        time.sleep(0.6)
        assert mine.status(["s4"]) == ([], ["s4"], [])
        got = mine.claim(["s4"])
        assert got.mine == got.reclaimed == ["s4"]
        # released claims are free at once
        w = mine.for_worker("w0")
        w.claim(["s5"])
        assert other.claim(["s5"]).held == ["s5"]
        assert mine.release(w.owner) == 1
        assert other.claim(["s5"]).mine == ["s5"]
    finally:
        a.release()


def test_the_field_is_complete_only_when_every_shard_is(fo_dataset):
    leases = []
    try:
        for i in range(2):
            leases.append(_lease(fo_dataset, shard=(i, 2)).acquire())
            leases[-1].set_ready()  # (the second one joins the first's epoch)
            leases[-1].start_shard(5)
        summary = leases[0].summary()
        assert summary["status"] == "running" and summary["num_shards"] == 2
        assert summary["shards"]["0/2"]["processes_alive"] == 1
        leases[1].finish_shard(True, {"samples_processed": 5, "boxes": 7,
                                      "unknown_labels": {"lake": 1}})
        summary = leases[0].summary()
        assert summary["status"] == "running"
        assert summary["shards"]["1/2"]["status"] == "complete"
        leases[0].finish_shard(False, {"samples_processed": 2})
        summary = leases[0].summary()
        assert summary["shards"]["0/2"]["status"] == "interrupted"
        assert summary["samples_processed"] == 7 and summary["unknown_labels"] == {"lake": 1}
        leases[0].start_shard(5)  # run again: a fresh record of shard 0
        leases[0].finish_shard(True, {"samples_processed": 3})
        summary = leases[0].summary()
        assert summary["status"] == "complete" and summary["samples_processed"] == 8
    finally:
        for lease in leases:
            lease.release()


def test_workers_argument():
    from fiftyone_samrs.segmenting.pipeline import _check_workers

    assert _check_workers(None, None) is None and _check_workers(0, None) is None
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="workers must be"):
            _check_workers(bad, None)
    with pytest.raises(ValueError, match="ray_address needs workers"):
        _check_workers(None, "auto")


def test_run_record_survives_another_process_replacing_it(fo_dataset):
    """The measured 0.1.0 failure: another process re-registered the run
    (``register_run(overwrite=True)`` makes a new run document), so this
    process's ``update_run_config`` raised ``Failed to update``. The record is
    now written through a reload and a retry."""
    import fiftyone as fo
    import fiftyone.core.odm as foo
    from bson import ObjectId

    from fiftyone_samrs.segmenting.runs import SegmentRunConfig, _save_record

    ds = fo_dataset
    ds.add_sample(fo.Sample(filepath="/x.png"))
    settings = _settings()
    _save_record(ds, "sam", SegmentRunConfig(**settings.record(), status="running"))

    def replace_run_document():  # what register_run(overwrite=True) elsewhere does
        db = foo.get_db_conn()
        old = db.datasets.find_one({"_id": ds._doc.id})["runs"]["sam"]
        run = db.runs.find_one({"_id": old})
        db.runs.delete_one({"_id": old})
        run["_id"] = ObjectId()
        db.runs.insert_one(run)
        db.datasets.update_one({"_id": ds._doc.id}, {"$set": {"runs.sam": run["_id"]}})

    replace_run_document()
    with pytest.raises(ValueError, match="Failed to update"):
        ds.update_run_config("sam", SegmentRunConfig(**settings.record(), status="x"))
    replace_run_document()
    _save_record(ds, "sam", SegmentRunConfig(**settings.record(), status="complete"))
    ds.reload()
    assert ds.get_run_info("sam").config.status == "complete"


def test_run_record_reaches_the_field_when_two_processes_registered_it(fo_dataset, monkeypatch):
    """The CI failure of test_concurrency (samples_processed 12 of 24): both
    processes loaded the dataset before either registered the run, so both
    registered it (``register_run`` makes a run document each) and the
    dataset kept one of them; the other process's later summaries went to its
    orphaned run document and were lost. Each write is now checked against the
    record the dataset holds."""
    import fiftyone as fo

    from fiftyone_samrs.segmenting.runs import record_run

    monkeypatch.setattr(fo.config, "singleton_cache", False)  # two processes' objects
    fo_dataset.add_sample(fo.Sample(filepath="/x.png"))
    a, b = fo.load_dataset(fo_dataset.name), fo.load_dataset(fo_dataset.name)
    assert a is not b

    class Lease:
        def __init__(self, summary):
            self.value = summary

        def summary(self):
            return dict(self.value)

    settings = _settings()
    lease_a = Lease({"status": "running", "samples_processed": 0})
    lease_b = Lease({"status": "running", "samples_processed": 0})
    record_run(a, settings, lease_a)  # a registers the run first ...
    record_run(b, settings, lease_b)  # ... b, not knowing, registers it again
    lease_a.value = lease_b.value = {"status": "complete", "samples_processed": 24}
    record_run(a, settings, lease_a)  # the last change: a's summary must be the record
    fresh = fo.load_dataset(fo_dataset.name)
    assert fresh.get_run_info("sam").config.samples_processed == 24
    assert fresh.get_run_info("sam").config.status == "complete"
