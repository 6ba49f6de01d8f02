"""The backend registry is what the SDK, the CLI, the App form and the prompt
study read (issue 24): a backend added with one registry entry is offered
everywhere, and the built-in entries agree with what each consumer shows."""

import pytest
from plugin_fixtures import plugin  # noqa: F401 - fixture

from fiftyone_samrs.segmenting import backends as B


@pytest.fixture
def toy():
    from fiftyone_samrs.testing.backends import toy_factory

    spec = B.register_backend(B.BackendSpec("toy", "Toy (a test backend)", "toy", toy_factory,
                                            default_margin=0.25))
    yield spec
    B.BACKEND_SPECS.pop("toy", None)


def test_builtin_entries():
    assert list(B.BACKEND_SPECS) == ["sam", "sam2", "sam_hq", "grabcut", "boxfill"]
    assert B.model_backends() == ("sam", "sam2", "sam_hq")
    assert B.baseline_backends() == ("grabcut", "boxfill")
    assert [B.default_margin(n) for n in B.BACKEND_SPECS] == [None, None, None, 0.1, 0.1]
    assert B.backend_spec("SAM").models[0][0] == "vit_h"
    with pytest.raises(ValueError, match="unknown backend 'nope'; use sam, sam2"):
        B.make_backend("nope")


def test_a_registered_backend_is_offered_everywhere(toy, plugin, capsys, fo_dataset,
                                                    tmp_path):
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionContext

    from fiftyone_samrs.evaluating.study import parse_config
    from fiftyone_samrs.tools.cli import main

    for verb in ("segment", "prompt-study"):
        with pytest.raises(SystemExit):
            main([verb, "--help"])
        assert "toy (Toy (a test backend))" in " ".join(capsys.readouterr().out.split())
    from test_pipeline import make_dataset

    ds = make_dataset(fo_dataset, tmp_path)
    op = foo.get_operator("@samrs/samrs/run_sam")
    props = op.resolve_input(ExecutionContext(request_params={
        "dataset_name": ds.name, "params": {}})).type.properties
    assert "toy" in props["backend"].type.values
    assert parse_config("toy").backend == "toy"
    # the SDK builds and runs it by name, with the registry's margin
    from fiftyone_samrs.segmenting.pipeline import segment
    from fiftyone_samrs.segmenting.runs import get_segment_run

    res = segment(ds, backend="toy", seg_dir=str(tmp_path / "seg"), progress=False)
    assert res.backend == "toy" and res.samples_processed == len(ds)
    assert get_segment_run(ds, "sam")["margin"] == 0.25
