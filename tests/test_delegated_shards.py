"""Run SAM split into shards: one delegated operation per shard, for several
``fiftyone delegated launch`` workers (issue 14)."""

import pytest
from plugin_fixtures import generated_dota_dataset, plugin  # noqa: F401 - fixture

URI = "@samrs/samrs/run_sam"


@pytest.fixture
def dataset(plugin, tmp_path):
    yield from generated_dota_dataset(tmp_path, "shards", n_images=6, n_objects=2,
                                      size=(128, 96), seed=3)


def test_split_into_shards_queues_one_operation_per_shard(dataset):
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionRunState

    from fiftyone_samrs.segmenting.runs import get_segment_run

    svc = DelegatedOperationService()
    result = foo.execute_operator(URI, ctx={"dataset": dataset, "params": {
        "backend": "boxfill", "shards": 3, "label_field": "sam"}})
    result.raise_exceptions()
    assert not result.delegated  # queuing is instant: it runs now
    queued = svc.list_operations(operator=URI, dataset_name=dataset.name,
                                 run_state=ExecutionRunState.QUEUED)
    assert sorted(op.label for op in queued) == [
        "run_sam(sam) shard %d/3" % i for i in range(3)]
    assert sorted(op.context.params["shard"] for op in queued) == ["0/3", "1/3", "2/3"]
    dataset.reload()
    assert "sam" not in dataset.get_field_schema()  # nothing ran yet

    # what three `fiftyone delegated launch` workers do, here one after the other
    svc.execute_queued_operations(operator=URI, dataset_name=dataset.name)
    for op in queued:
        done = svc.get(op.id)
        assert done.run_state == ExecutionRunState.COMPLETED, done.result
        assert "shard %s" % op.context.params["shard"] in done.result.result["summary"]
    dataset.reload()
    assert len(dataset.exists("sam")) == len(dataset)
    rec = get_segment_run(dataset, "sam")
    assert rec["status"] == "complete" and rec["num_shards"] == 3
    assert sorted(rec["shards"]) == ["0/3", "1/3", "2/3"]
    assert rec["samples_processed"] == len(dataset)
