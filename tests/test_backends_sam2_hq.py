"""The SAM 2 and HQ-SAM backends through ``fsr.segment``, the prompt study and the CLI.

Same fields, attributes, run records, resume and shards as SAM: the stored
Detections are the engine's own masks (cut to their tight boxes), checkpoints
and configs load from paths, mask prompts reach SAM 2 in its own frame.
Each backend is skipped when its optional package is missing.
"""

import os

import numpy as np
import pytest
from plugin_fixtures import plugin, plugin_module  # noqa: F401 - fixtures
from test_pipeline import OBJECTS, H, W, geometry_full, make_dataset


def _tiny(name, tmp_path):
    """(make_backend kwargs that load from files, the in-memory engine) of a backend."""
    import torch

    torch.set_num_threads(1)
    if name == "sam2":
        pytest.importorskip("sam2", reason="the optional sam2 package is not installed")
        from omegaconf import OmegaConf

        from fiftyone_samrs.segmenting.sam2.engine import Sam2Engine
        from fiftyone_samrs.segmenting.sam2.models import (
            SAM2_MODELS,
            TINY_OVERRIDES,
            build_tiny_sam2,
            config_path,
            save_sam2_checkpoint,
        )

        model = build_tiny_sam2(0)
        ckpt = save_sam2_checkpoint(model, tmp_path / "tiny_sam2.pt")
        cfg = OmegaConf.load(config_path(SAM2_MODELS["sam2.1_hiera_t"][0]))
        for key, value in TINY_OVERRIDES.items():
            OmegaConf.update(cfg, key, value, force_add=True)
        yaml = str(tmp_path / "tiny_sam2.yaml")
        OmegaConf.save(cfg, yaml)
        return dict(model=yaml, checkpoint=ckpt), Sam2Engine(model, device="cpu")
    pytest.importorskip("segment_anything_hq", reason="segment-anything-hq is not installed")
    from fiftyone_samrs.segmenting.sam_hq.engine import HqSamEngine
    from fiftyone_samrs.segmenting.sam_hq.models import build_tiny_sam_hq, save_tiny_sam_hq_checkpoint

    ckpt = save_tiny_sam_hq_checkpoint(tmp_path / "tiny_hq.pth", seed=0)
    return dict(model=None, checkpoint=ckpt), HqSamEngine(build_tiny_sam_hq(0), device="cpu")


@pytest.mark.parametrize("name", ["sam2", "sam_hq"])
def test_segment_writes_the_engines_masks_resumes_and_shards(name, fo_dataset, tmp_path):
    from fiftyone_samrs.formats.images import read_image
    from fiftyone_samrs.segmenting.pipeline import segment
    from fiftyone_samrs.segmenting.prompts import build_prompts
    from fiftyone_samrs.segmenting.runs import get_segment_run

    load, engine = _tiny(name, tmp_path)
    objs = [OBJECTS[0], OBJECTS[3], OBJECTS[1]]
    ds = make_dataset(fo_dataset, tmp_path, objects=objs)
    kw = dict(backend=name, device="cpu", seg_dir=str(tmp_path / "seg"), progress=False,
              batch_size=2, **load)
    first = ds.select(ds.values("id")[:2])
    res = segment(first, **kw)  # "interrupted" after two samples
    assert res.backend == name and res.samples_processed == 2
    res = segment(ds, **kw)  # resumes: only the third sample is left
    assert (res.samples_processed, res.samples_skipped, res.boxes) == (1, 2, 2)
    run = get_segment_run(ds, "sam")
    assert run["backend"] == name and run["checkpoint"] == load["checkpoint"]
    assert run["model"] == load["model"]
    n_nonempty = 0
    for s, o in zip(ds.sort_by("filepath"), objs):
        boxes = np.array([b for _, b in o], dtype=float)
        ref = engine.predict_batch([read_image(s.filepath)],
                                   [build_prompts(boxes, None, "hbox", (H, W), margin=None)])[0]
        assert [d.obj_index for d in s.sam.detections] == list(range(len(o)))
        for d, r in zip(s.sam.detections, ref):
            assert d.confidence == pytest.approx(r.score, abs=1e-5)
            assert d.empty == r.empty and d.prompt == "hbox"
            assert d.stability == pytest.approx(r.stability, abs=1e-6)
            if not r.empty:
                n_nonempty += 1
                np.testing.assert_array_equal(geometry_full(d), r.mask.to_full(H, W))
        assert os.path.isfile(s.sam_seg.mask_path)
    assert n_nonempty >= 3
    # shards of another field partition the view; the settings of a run are checked on resume
    for i in range(2):
        segment(ds, label_field="sam_b", seg_field=None, shard=(i, 2), **kw)
    assert ds.count("sam_b.detections") == ds.count("hbb.detections")
    with pytest.raises(ValueError, match="backend"):
        segment(ds, **dict(kw, backend="sam"))


def test_sam2_mask_prompts_through_the_pipeline_use_its_frame(fo_dataset, tmp_path):
    """A non-square image with a mask prompt: the pipeline builds SAM 2's frame
    (SAM's would be refused by the engine)."""
    from fiftyone_samrs.formats.images import read_image
    from fiftyone_samrs.segmenting.pipeline import segment
    from fiftyone_samrs.segmenting.prompts import build_prompts

    load, engine = _tiny("sam2", tmp_path)
    ds = make_dataset(fo_dataset, tmp_path, objects=[OBJECTS[0]])
    res = segment(ds, backend="sam2", device="cpu", prompt="rhbox+rbox_m", progress=False,
                  seg_field=None, engine=engine)
    assert res.boxes == 3
    s = ds.first()
    quads = np.array([[[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]]
                      for _, b in OBJECTS[0]], float)
    boxes = np.array([b for _, b in OBJECTS[0]], float)
    ps = build_prompts(boxes, quads, "rhbox+rbox_m", (H, W), mask_frame="square")
    ref = engine.predict_batch([read_image(s.filepath)], [ps])[0]
    for d, r in zip(s.sam.detections, ref):
        assert d.confidence == pytest.approx(r.score, abs=1e-5)


@pytest.mark.parametrize("name", ["sam2", "sam_hq"])
def test_prompt_study_encodes_once_with_the_new_backends(name, tmp_path):
    import uuid

    from fiftyone_samrs.evaluating.study import prompt_study
    from fiftyone_samrs.importing.importers import load_hrsc
    from fiftyone_samrs.testing.synthetic import make_hrsc_tree

    load, engine = _tiny(name, tmp_path)
    make_hrsc_tree(tmp_path / "hrsc", n_images=2, n_objects=2, size=(256, 192), seed=3)
    ds = load_hrsc(str(tmp_path / "hrsc"), name="samrs-test-%s" % uuid.uuid4().hex[:6],
                   persistent=False, progress=False)
    try:
        counts = {"encode": 0}
        encode = engine.encode

        def counting(images):
            counts["encode"] += len(images)
            return encode(images)

        engine.encode = counting
        configs = ["hbox", "hbox_m", "rhbox+cp+rbox_m"]
        res = prompt_study(ds, engine=engine, configs=configs, progress=False)
        assert counts["encode"] == 2  # once per image, every configuration decoded on it
        assert [r.config for r in res.rows] == configs
        for r in res.rows:
            assert r.backend == name and r.n == 4 and 0.0 <= r.miou_i <= 1.0
        # by name, from the files
        res = prompt_study(ds, backend=name, configs=["hbox"], progress=False, device="cpu",
                           **load)
        assert res.rows[0].backend == name and name in res.model
    finally:
        ds.delete()


def test_cli_offers_the_backends(fo_dataset, tmp_path, capsys):
    from fiftyone_samrs.tools.cli import main

    load, _ = _tiny("sam2", tmp_path)
    ds = make_dataset(fo_dataset, tmp_path, objects=[OBJECTS[0]])
    ds.persistent = True
    rc = main(["segment", ds.name, "--backend", "sam2", "--model", load["model"],
               "--checkpoint", load["checkpoint"], "--device", "cpu", "--no-progress",
               "--seg-dir", str(tmp_path / "seg")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "backend sam2" in out and ds.count("sam.detections") == 3
    with pytest.raises(SystemExit):
        main(["segment", ds.name, "--backend", "sam3"])
    assert "sam_hq" in capsys.readouterr().err


def test_sam2_loading_configs_zoo_names_and_errors(tmp_path, monkeypatch):
    pytest.importorskip("sam2", reason="the optional sam2 package is not installed")
    import torch

    from fiftyone_samrs.segmenting.sam.models import ModelNotFoundError
    from fiftyone_samrs.segmenting.sam2.models import (
        SAM2_MODELS,
        build_sam2_model,
        infer_config,
        load_sam2,
        model_name,
        save_sam2_checkpoint,
    )

    load, engine = _tiny("sam2", tmp_path)
    ref = engine.model.state_dict()
    for kw in (dict(checkpoint=load["checkpoint"], config=load["model"]), load):
        sd = load_sam2(device="cpu", **kw).state_dict()
        assert sd.keys() == ref.keys() and all(torch.equal(sd[k], ref[k]) for k in sd)
    with pytest.raises(ValueError, match="no official SAM 2 variant.*config=PATH"):
        load_sam2(checkpoint=load["checkpoint"])  # a custom trunk: its config is needed
    with pytest.raises(ValueError, match="without a checkpoint"):
        load_sam2(model=load["model"])
    assert model_name("segment-anything-2.1-hiera-base-plus-image-torch") == "sam2.1_hiera_b+"
    assert model_name("hiera_l") == "sam2.1_hiera_l"
    with pytest.raises(ValueError, match="unknown SAM 2 model"):
        model_name("hiera_xl")

    # an official architecture (random weights) in FiftyOne's zoo folder, by zoo name
    zoo = tmp_path / "zoo"
    monkeypatch.setenv("FIFTYONE_MODEL_ZOO_DIR", str(zoo))
    cfg, zoo_name, fname, url = SAM2_MODELS["sam2.1_hiera_t"]
    with pytest.raises(ModelNotFoundError, match="(?s)" + url.split("/")[-1] + ".*" + fname):
        load_sam2(model=zoo_name, download=False)
    torch.manual_seed(0)
    official = build_sam2_model(cfg)
    save_sam2_checkpoint(official, zoo / fname)
    assert infer_config(official.state_dict()) == cfg
    by_name = load_sam2(model=zoo_name, download=False)
    assert torch.equal(by_name.no_mem_embed, official.no_mem_embed)
    assert by_name.sam_mask_decoder.dynamic_multimask_via_stability  # as build_sam2 builds it
    inferred = load_sam2(checkpoint=str(zoo / fname))
    assert torch.equal(inferred.no_mem_embed, official.no_mem_embed)
    with pytest.raises(ValueError, match="is a sam2.1_hiera_t model, not hiera_s"):
        load_sam2(model="hiera_s", checkpoint=str(zoo / fname))
    sam2_v1 = build_sam2_model(SAM2_MODELS["sam2_hiera_t"][0]).state_dict()
    assert infer_config(sam2_v1) == SAM2_MODELS["sam2_hiera_t"][0]  # SAM 2 vs 2.1


def test_app_forms_offer_the_backends(plugin, fo_dataset, tmp_path):
    """Run SAM offers sam2 / sam_hq with their own models; the prompt study offers the
    model backends only; the form's choice reaches fsr.segment's arguments."""

    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionContext

    ds = make_dataset(fo_dataset, tmp_path, objects=[OBJECTS[0]])

    def ctx(**params):
        return ExecutionContext(request_params={"dataset_name": ds.name, "params": params})

    run_sam = foo.get_operator("@samrs/samrs/run_sam")
    props = run_sam.resolve_input(ctx()).type.properties
    assert {"sam", "sam2", "sam_hq", "grabcut", "boxfill"} == set(props["backend"].type.values)
    props = run_sam.resolve_input(ctx(backend="sam2")).type.properties
    assert props["model"].default == "segment-anything-2.1-hiera-large-image-torch"
    assert "segment-anything-2.1-hiera-tiny-image-torch" in props["model"].type.values
    props = run_sam.resolve_input(ctx(backend="sam_hq")).type.properties
    assert props["model"].type.values == ["vit_h", "vit_l", "vit_b"] and "checkpoint" in props
    seg = plugin_module("segmenting")
    kw = seg.model_kwargs(ctx(backend="sam2", model="segment-anything-2.1-hiera-tiny-image-torch",
                              device="cpu"))
    assert kw == {"backend": "sam2", "checkpoint": None, "device": "cpu",
                  "model": "segment-anything-2.1-hiera-tiny-image-torch"}
    assert seg.engine_name(dict(kw, checkpoint="/m/x.pt")) == "SAM 2 /m/x.pt"
    study = foo.get_operator("@samrs/samrs/prompt_study")
    props = study.resolve_input(ctx()).type.properties
    assert set(props["backend"].type.values) == {"sam", "sam2", "sam_hq"}



def test_a_sam2_config_cannot_build_outside_the_sam2_package(tmp_path):
    """Issue 22, item 3: Hydra's instantiate ran any ``_target_`` of a config
    given as ``--model`` (``pathlib.Path.write_text`` wrote a file of the
    config's choosing); now every target is checked before anything is built,
    and a broken config is one line naming the file."""
    pytest.importorskip("sam2", reason="the optional sam2 package is not installed")
    from fiftyone_samrs.segmenting.sam2.models import (
        build_sam2_model,
        build_tiny_sam2,
        load_sam2,
        save_sam2_checkpoint,
    )

    save_sam2_checkpoint(build_tiny_sam2(0), tmp_path / "x.pt")
    victim = tmp_path / "bashrc"
    hostile = tmp_path / "finetuned_sam2.yaml"
    hostile.write_text(
        "model:\n  _target_: sam2.modeling.sam2_base.SAM2Base\n  image_encoder:\n"
        "    _target_: pathlib.Path.write_text\n    self: %s\n    data: pwned\n" % victim)
    for build in (lambda: build_sam2_model(str(hostile), apply_postprocessing=False),
                  lambda: load_sam2(model=str(hostile), checkpoint=str(tmp_path / "x.pt"))):
        with pytest.raises(ValueError) as err:
            build()
        msg = str(err.value)
        assert str(hostile) in msg and "model.image_encoder._target_" in msg
        assert "pathlib.Path.write_text" in msg and "\n" not in msg
        assert not victim.exists()
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    with pytest.raises(ValueError, match="^%s: not a SAM 2 config: " % broken) as err:
        build_sam2_model(str(broken))
    assert "\n" not in str(err.value)
