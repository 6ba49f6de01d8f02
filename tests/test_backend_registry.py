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


def test_the_engine_contract_is_declared_once():
    """Every built-in backend subclasses Engine (all hooks declared, defaults
    in the base); an engine written to 0.2.0's duck-typed contract is wrapped
    once, at the entry, and nothing else probes for members."""
    import inspect
    import os

    from fiftyone_samrs.segmenting import base
    from fiftyone_samrs.segmenting.baselines import BoxFillBackend, GrabCutBackend
    from fiftyone_samrs.segmenting.sam.engine import SamEngine
    from fiftyone_samrs.segmenting.sam2.engine import Sam2Engine
    from fiftyone_samrs.segmenting.sam_hq.engine import HqSamEngine

    for cls in (SamEngine, Sam2Engine, HqSamEngine, BoxFillBackend, GrabCutBackend):
        assert issubclass(cls, base.Engine), cls
    assert SamEngine.encodes and Sam2Engine.encodes and not BoxFillBackend.encodes

    class Duck:
        name = "duck"

        def predict_batch(self, images, prompts):
            return [[] for _ in images]

    duck = base.as_engine(Duck())
    assert isinstance(duck, base.Engine) and duck.name == "duck" and not duck.encodes
    assert duck.default_margin is None and duck.mask_frame == "sam"
    assert duck.describe() is None and duck.settings() is None
    assert list(duck.predict_batches([([1, 2], ["a", "b"]), ([], [])])) == [[[], []], []]
    assert base.as_engine(duck) is duck and base.as_engine(None) is None
    with pytest.raises(TypeError, match="predict_batch"):
        base.as_engine(object())
    root = os.path.dirname(inspect.getfile(base))
    for name in ("pipeline.py", "loop.py", "options.py", "distributed.py",
                 os.path.join("..", "evaluating", "study.py")):
        text = open(os.path.join(root, name)).read()
        assert "getattr(engine" not in text and "hasattr(engine" not in text, name
