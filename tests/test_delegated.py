"""``run_sam`` queued as a delegated operation and executed by FiftyOne's
delegated-operation service (what ``fiftyone delegated launch`` runs), with
its recorded progress and result."""

import uuid

import pytest

from plugin_fixtures import checkpoint, plugin  # noqa: F401 - fixtures

URI = "@samrs/samrs/run_sam"


@pytest.fixture
def dataset(plugin, tmp_path):
    import fiftyone as fo
    import fiftyone_samrs as fsr
    from fiftyone_samrs.testing.synthetic import make_dota_tree

    make_dota_tree(str(tmp_path / "dota"), n_images=3, n_objects=3, size=(256, 192), seed=7)
    name = "samrs-test-deleg-" + uuid.uuid4().hex[:6]
    ds = fsr.load_dota(str(tmp_path / "dota"), name=name, progress=False)
    yield ds
    if fo.dataset_exists(name):
        fo.delete_dataset(name)


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
    import fiftyone.operators as foo

    result = foo.execute_operator(URI, ctx={"dataset": dataset, "params": params})
    assert result.delegated, "run_sam should have been queued"
    return result.result["id"]


def test_run_sam_is_queued_then_run_by_the_service(dataset, checkpoint, recorded_progress):
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionRunState

    svc = DelegatedOperationService()
    # no "delegate" parameter: run_sam defaults to delegated execution
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


def test_large_views_are_always_delegated(dataset, checkpoint, monkeypatch):
    import sys

    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    foo.list_operators()
    common = sys.modules["fiftyone.plugins.orgs.samrs.samrs.common"]
    monkeypatch.setattr(common, "SMALL_VIEW", 2)  # the dataset has 3 samples
    op_id = _queue(dataset, checkpoint=checkpoint, device="cpu", delegate=False)
    DelegatedOperationService().delete_operation(op_id)
    # a 2-sample view may run immediately
    result = foo.execute_operator(URI, ctx={"view": dataset.limit(2), "params": {
        "view_target": "CURRENT_VIEW", "checkpoint": checkpoint, "device": "cpu",
        "delegate": False}})
    assert not result.delegated
    dataset.reload()
    assert len(dataset.exists("sam")) == 2


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
