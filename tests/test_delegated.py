"""``run_sam`` queued as a delegated operation (what the App's Schedule
button sends: ``request_delegation``) and executed by FiftyOne's
delegated-operation service in this process, and by a real
``fiftyone delegated launch`` worker in a subprocess, with its recorded
progress and result."""

import os
import subprocess
import sys
import time

import pytest
from plugin_fixtures import checkpoint, generated_dota_dataset, plugin, plugin_module  # noqa: F401 - fixtures

URI = "@samrs/samrs/run_sam"


@pytest.fixture
def dataset(plugin, tmp_path):
    yield from generated_dota_dataset(tmp_path, "deleg", n_images=3, n_objects=3,
                                      size=(256, 192), seed=7)


@pytest.fixture
def recorded_progress(monkeypatch):
    """Every progress update the service records, in order."""
    from fiftyone.operators.delegated import DelegatedOperationService

    calls = []
    original = DelegatedOperationService.set_progress

    def set_progress(self, doc_id, progress):
        calls.append((progress.progress, progress.label))
        return original(self, doc_id, progress)

    monkeypatch.setattr(DelegatedOperationService, "set_progress", set_progress)
    return calls


def _queue(dataset, **params):
    """Schedules run_sam as the App's Schedule button does."""
    import fiftyone as fo
    import fiftyone.operators as foo

    where = {"dataset": dataset} if isinstance(dataset, fo.Dataset) else {"view": dataset}
    result = foo.execute_operator(URI, ctx={**where, "params": params,
                                            "request_delegation": True})
    assert result.delegated, "run_sam should have been queued"
    return result.result["id"]


def test_run_sam_is_queued_then_run_by_the_service(dataset, checkpoint, recorded_progress):
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionRunState

    svc = DelegatedOperationService()
    op_id = _queue(dataset, checkpoint=checkpoint, device="cpu", batch_size=1)
    queued = svc.get(op_id)
    assert queued.run_state == ExecutionRunState.QUEUED
    assert queued.operator == URI and queued.label == "run_sam(sam)"
    dataset.reload()
    assert "sam" not in dataset.get_field_schema()  # nothing ran yet

    results = svc.execute_queued_operations(operator=URI, dataset_name=dataset.name)
    assert len(results) == 1
    done = svc.get(op_id)
    assert done.run_state == ExecutionRunState.COMPLETED, done.result
    assert "3 samples segmented" in done.result.result["summary"]
    assert done.status.progress == 1.0 and "3 samples segmented" in done.status.label

    dataset.reload()
    assert dataset.count("sam.detections") == dataset.count("hbb.detections") == 9
    assert all(d.mask is not None for d in dataset.values("sam.detections", unwind=True))
    assert len(dataset.exists("sam_seg")) == 3

    fractions = [p for p, _ in recorded_progress if p is not None]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    labels = [label for _, label in recorded_progress]
    assert "loading the sam backend" in labels
    for k in (1, 2, 3):
        assert any(l and l.startswith("segmented %d/3 samples" % k) for l in labels), labels


def test_run_sam_runs_now_unless_scheduled(dataset, checkpoint, monkeypatch):

    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    foo.list_operators()
    common = plugin_module("common")
    monkeypatch.setattr(common, "SMALL_VIEW", 2)  # the dataset has 3 samples: a large view
    # the form's defaults run now, whatever the view's size
    result = foo.execute_operator(URI, ctx={"view": dataset.limit(2), "params": {
        "view_target": "CURRENT_VIEW", "checkpoint": checkpoint, "device": "cpu"}})
    assert not result.delegated
    dataset.reload()
    assert len(dataset.exists("sam")) == 2
    # scheduled: queued, whatever the size
    op_id = _queue(dataset.limit(1), checkpoint=checkpoint, device="cpu")
    DelegatedOperationService().delete_operation(op_id)


def test_the_form_asks_whether_a_worker_runs(dataset, checkpoint, monkeypatch):
    """With Schedule available, the form notices operations left waiting."""

    import fiftyone as fo
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionContext

    foo.list_operators()
    common = plugin_module("common")
    monkeypatch.setattr(fo.config, "allow_legacy_orchestrators", True)
    original = common.waiting_operations
    monkeypatch.setattr(common, "waiting_operations", lambda: original(min_age_s=0))
    op = foo.get_operator(URI)
    ctx = ExecutionContext(request_params={"dataset_name": dataset.name, "params": {}})
    assert "waiting" not in op.resolve_input(ctx).type.properties["execution_notice"].view.label
    op_id = _queue(dataset, checkpoint=checkpoint, device="cpu")
    try:
        notice = op.resolve_input(ctx).type.properties["execution_notice"].view.label
        assert "1 scheduled operation is waiting" in notice and "is a worker running?" in notice
    finally:
        DelegatedOperationService().delete_operation(op_id)


def _worker_env():
    """The environment of a worker on this test's database and plugins dir."""
    import fiftyone as fo
    import fiftyone.core.odm as foo

    env = dict(os.environ, FIFTYONE_PLUGINS_DIR=str(fo.config.plugins_dir),
               FIFTYONE_DATABASE_NAME=os.environ["FIFTYONE_DATABASE_NAME"])
    if not env.get("FIFTYONE_DATABASE_URI"):
        host, port = foo.get_db_client().address
        env["FIFTYONE_DATABASE_URI"] = "mongodb://%s:%d" % (host, port)
    return env


def test_a_fiftyone_delegated_launch_worker_runs_a_scheduled_run_sam(dataset, checkpoint):
    """The documented set-up end to end: an operation scheduled (as the App's
    Schedule does) waits QUEUED until a ``fiftyone delegated launch`` worker
    on the same database and plugins dir runs it."""
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionRunState

    op_id = _queue(dataset, checkpoint=checkpoint, device="cpu", batch_size=1)
    svc = DelegatedOperationService()
    assert svc.get(op_id).run_state == ExecutionRunState.QUEUED
    fiftyone_cli = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    command = ([fiftyone_cli] if os.path.exists(fiftyone_cli)
               else [sys.executable, "-m", "fiftyone.core.cli"])
    log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"),
                            "samrs-worker-%s.log" % op_id), "w+")
    worker = subprocess.Popen(command + ["delegated", "launch"], env=_worker_env(),
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300  # safety only: the loop waits on the run's state
        state = None
        while time.monotonic() < deadline:
            state = svc.get(op_id).run_state
            if state in (ExecutionRunState.COMPLETED, ExecutionRunState.FAILED):
                break
            assert worker.poll() is None, "the worker exited:\n" + _tail(log)
            time.sleep(0.5)
        done = svc.get(op_id)
        assert done.run_state == ExecutionRunState.COMPLETED, (done.result, _tail(log))
        assert "3 samples segmented" in done.result.result["summary"]
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
        os.remove(log.name)
    dataset.reload()
    assert dataset.count("sam.detections") == dataset.count("hbb.detections") == 9


def _tail(log, n=3000):
    log.flush()
    log.seek(0)
    return log.read()[-n:]


def test_a_failing_delegated_run_records_a_clear_error(dataset, tmp_path):
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionRunState

    missing = str(tmp_path / "missing_sam.pth")
    op_id = _queue(dataset, checkpoint=missing, device="cpu")
    svc = DelegatedOperationService()
    svc.execute_queued_operations(operator=URI, dataset_name=dataset.name)
    failed = svc.get(op_id)
    assert failed.run_state == ExecutionRunState.FAILED
    assert "missing_sam.pth" in failed.result.error
