"""Every @samrs/samrs operator (and the QA panel) executed through FiftyOne's
operator machinery against a real database, generated source trees and the
tiny random SAM.

The plugin is made discoverable by pointing ``fo.config.plugins_dir`` at a
temporary folder holding a link to the repository (what ``samrs plugin
install`` does), so the operators are found and loaded exactly as the App
finds them.
"""

import asyncio
import json
import uuid

import numpy as np
import pytest
from plugin_fixtures import checkpoint, plugin, plugin_module  # noqa: F401 - fixtures

PLUGIN = "@samrs/samrs"


# --------------------------------------------------------------------------
# fixtures and helpers


def _name(prefix):
    return "samrs-test-%s-%s" % (prefix, uuid.uuid4().hex[:6])


def execute(operator, dataset=None, view=None, **params):
    """Runs an operator to completion (``fiftyone.operators.execute_operator``)."""
    import fiftyone.operators as foo

    ctx = {"params": params}
    if dataset is not None:
        ctx["dataset"] = dataset
    if view is not None:
        ctx["view"] = view
    return foo.execute_operator("%s/%s" % (PLUGIN, operator), ctx=ctx)


def execute_collect(operator, dataset=None, view=None, _into=None, _selected_labels=None,
                    **params):
    """Runs a generator operator as the App does and returns what it sends
    back: a list of ``(operator_uri, params)`` invocation requests (also
    appended to ``_into`` as they come, for operators that raise);
    ``_selected_labels``: the labels selected in the App."""
    from fiftyone.operators.executor import _parse_ctx, execute_or_delegate_operator

    ctx = {"params": params, "selected_labels": _selected_labels or []}
    if dataset is not None:
        ctx["dataset"] = dataset
    if view is not None:
        ctx["view"] = view
    request = _parse_ctx(ctx=ctx)

    async def go():
        result = await execute_or_delegate_operator("%s/%s" % (PLUGIN, operator), request,
                                                    exhaust=False)
        result.raise_exceptions()
        assert result.is_generator
        out = [] if _into is None else _into
        for m in result.result:
            if m is not None:
                json.dumps(m.to_json())  # the App receives JSON lines: all must serialise
                out.append((m.body.operator_uri, m.body.params))
        return out

    return asyncio.run(go())


def _progress(messages):
    return [(p.get("progress"), p.get("label")) for uri, p in messages if uri == "set_progress"]


def _only(messages, uri):
    return [p for u, p in messages if u == uri]


def _stages(serialized):
    """A serialized view without the per-serialization stage uuids."""
    stages = json.loads(json.dumps(serialized))  # as the App receives it
    return [{k: v for k, v in stage.items() if k != "_uuid"} for stage in stages]


@pytest.fixture(scope="module")
def dota(plugin, checkpoint, tmp_path_factory):
    """A DOTA tree imported with ``import_dataset`` and segmented with ``run_sam``."""
    import fiftyone as fo

    from fiftyone_samrs.testing.synthetic import make_dota_tree

    root = tmp_path_factory.mktemp("dota")
    tree = make_dota_tree(str(root), n_images=2, n_objects=4, size=(320, 240), seed=3)
    name = _name("dota")
    imported = execute_collect("import_dataset", format="dota",
                               dataset_dir={"absolute_path": str(root)}, name=name,
                               delegate=False)
    dataset = fo.load_dataset(name)
    segmented = execute_collect("run_sam", dataset=dataset, checkpoint=checkpoint,
                                device="cpu", batch_size=1, delegate=False)
    dataset.reload()
    yield dict(dataset=dataset, tree=tree, imported=imported, segmented=segmented,
               root=str(root))
    if fo.dataset_exists(name):
        fo.delete_dataset(name)


# --------------------------------------------------------------------------
# discovery and forms


def test_operators_are_discovered(plugin):
    import fiftyone.operators as foo

    uris = {op.uri for op in foo.list_operators()}
    for name in ("import_dataset", "run_sam", "evaluate_masks", "prompt_study",
                 "export_dataset", "resegment_labels", "review_labels", "samrs_qa"):
        assert "%s/%s" % (PLUGIN, name) in uris


def app_choices(options):
    """What the App's operator prompt offers for these execution options: the
    logic of FiftyOne 1.22.1's ``useOperatorPromptSubmitOptions`` (its
    ``requiresOrchestratorSetup`` is the "Background compute is not yet
    configured / Set up now" screen with only Close)."""
    o = options.to_dict()
    choices = []
    if o["allow_immediate_execution"]:
        choices.append("execute")
    if o["allow_delegated_execution"] and not o["orchestrator_registration_enabled"]:
        choices.append("schedule")
    if (o["allow_delegated_execution"] and o["allow_immediate_execution"]
            and o["orchestrator_registration_enabled"] and not o["available_orchestrators"]):
        choices.append("schedule (not available)")
    setup = (o["orchestrator_registration_enabled"] and not o["available_orchestrators"]
             and not o["allow_immediate_execution"])
    default = "schedule" if ("schedule" in choices and o["default_choice_to_delegated"]) \
        else (choices[0] if choices else None)
    return {"choices": choices, "default": default, "requires_setup": setup}


def test_run_sam_form(dota):
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionContext

    from fiftyone_samrs.segmenting.prompts import TABLE1

    dataset = dota["dataset"]
    op = foo.get_operator("%s/run_sam" % PLUGIN)

    def ctx(**params):
        return ExecutionContext(request_params={"dataset_name": dataset.name, "params": params})

    props = op.resolve_input(ctx()).type.properties
    for key in ("view_target", "box_field", "obb_field", "prompt", "backend", "model",
                "checkpoint", "device", "batch_size", "label_field", "seg_field", "overwrite"):
        assert key in props, key
    assert "delegate" not in props  # no checkbox: the App's Execute / Schedule decide
    # the notice on how it runs comes first, right after the target
    assert list(props)[:2] == ["view_target", "execution_notice"]
    assert props["box_field"].default == "hbb"
    assert props["obb_field"].default == "obb"
    assert props["prompt"].default == "auto"
    assert set(TABLE1) <= set(props["prompt"].type.values)
    # baselines need no model inputs
    props = op.resolve_input(ctx(backend="boxfill")).type.properties
    assert "model" not in props and "checkpoint" not in props


def test_run_sam_runs_where_it_opens(dota, checkpoint, monkeypatch):
    """FiftyOne's defaults (no orchestrator): Execute, and the form says how
    to get a Schedule button; with legacy orchestrators: both, Schedule the
    default for Run SAM and for large views."""
    import fiftyone as fo
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionContext

    dataset = dota["dataset"]
    op = foo.get_operator("%s/run_sam" % PLUGIN)
    common = plugin_module("common")

    def ctx(**params):
        return ExecutionContext(request_params={"dataset_name": dataset.name, "params": params})

    monkeypatch.setattr(fo.config, "allow_legacy_orchestrators", False)
    for small_view in (50, 1):  # the dataset has 2 samples
        monkeypatch.setattr(common, "SMALL_VIEW", small_view)
        app = app_choices(op.resolve_execution_options(ctx()))
        assert app == {"choices": ["execute", "schedule (not available)"],
                       "default": "execute", "requires_setup": False}
        notice = op.resolve_input(ctx()).type.properties["execution_notice"].view.label
        assert "Execute runs" in notice
        assert "FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true" in notice
        assert "fiftyone delegated launch" in notice
    # the run with the form's defaults (a programmatic call: same defaults) runs now
    result = execute("run_sam", dataset=dataset, checkpoint=checkpoint, device="cpu",
                     label_field="sam_now", seg_field="")
    assert not result.delegated
    dataset.reload()
    assert dataset.count("sam_now.detections") == dataset.count("hbb.detections")

    monkeypatch.setattr(fo.config, "allow_legacy_orchestrators", True)
    monkeypatch.setattr(common, "SMALL_VIEW", 50)
    # Run SAM is long: Schedule is its default wherever the App can schedule
    app = app_choices(op.resolve_execution_options(ctx()))
    assert app == {"choices": ["execute", "schedule"], "default": "schedule",
                   "requires_setup": False}
    # other operators: Execute on a small view, Schedule on a large one
    export = foo.get_operator("%s/export_dataset" % PLUGIN)
    assert app_choices(export.resolve_execution_options(ctx()))["default"] == "execute"
    monkeypatch.setattr(common, "SMALL_VIEW", 1)
    assert app_choices(export.resolve_execution_options(ctx()))["default"] == "schedule"
    notice = op.resolve_input(ctx()).type.properties["execution_notice"].view.label
    assert "Schedule" in notice and "fiftyone delegated launch" in notice
    # a programmatic "delegate" forces one or the other
    assert app_choices(op.resolve_execution_options(ctx(delegate=False)))["choices"] == [
        "execute"]
    assert op.resolve_execution_options(ctx(delegate=True)).allow_delegated_execution


def test_every_operator_can_execute_with_fiftyone_defaults(dota, monkeypatch):
    import fiftyone as fo
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionContext

    monkeypatch.setattr(fo.config, "allow_legacy_orchestrators", False)
    ctx = ExecutionContext(request_params={"dataset_name": dota["dataset"].name, "params": {}})
    for name in ("import_dataset", "run_sam", "evaluate_masks", "prompt_study",
                 "export_dataset", "resegment_labels", "review_labels"):
        op = foo.get_operator("%s/%s" % (PLUGIN, name))
        app = app_choices(op.resolve_execution_options(ctx))
        assert app["default"] == "execute" and not app["requires_setup"], name
        assert "delegate" not in op.resolve_input(ctx).type.properties, name


# --------------------------------------------------------------------------
# import + run SAM


def test_import_dataset_builds_the_dataset_and_opens_it(dota):
    dataset, tree = dota["dataset"], dota["tree"]
    assert len(dataset) == 2
    assert dataset.count("hbb.detections") == tree["n_objects"] == 8
    assert dataset.count("obb.polylines") == 8
    assert dataset.info["samrs"]["format"] == "dota"
    assert _only(dota["imported"], "open_dataset") == [{"dataset": dataset.name}]
    progress = _progress(dota["imported"])
    assert progress[-1][0] == 1.0 and "Imported 2 samples" in progress[-1][1]
    summary = _only(dota["imported"], "show_output")[0]["results"]["summary"]
    assert "images: 2" in summary and "objects: 8" in summary


def test_run_sam_writes_masks_and_reloads(dota):
    import cv2

    dataset, messages = dota["dataset"], dota["segmented"]
    assert dataset.count("sam.detections") == dataset.count("hbb.detections") == 8
    for sample in dataset:
        assert [d.obj_index for d in sample.sam.detections] == [
            d.obj_index for d in sample.hbb.detections]
        for det in sample.sam.detections:
            assert isinstance(det.mask, np.ndarray) and det.mask.ndim == 2
            assert det.prompt == "hbox" and 0.0 <= det.confidence <= 1.5
        png = cv2.imread(sample.sam_seg.mask_path, cv2.IMREAD_UNCHANGED)
        assert png.shape == (sample.metadata.height, sample.metadata.width)
        assert png.dtype == np.uint8
    assert dataset.mask_targets["sam_seg"]

    progress = _progress(messages)
    fractions = [p for p, _ in progress if p is not None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("segmented 1/2 samples" in (label or "") for _, label in progress)
    assert "2 samples segmented" in progress[-1][1]
    assert [u for u, _ in messages][-2:] == ["reload_dataset", "show_output"]
    # the summary's lines stay lines in the App's Markdown: a headline and a list
    summary = _only(messages, "show_output")[0]["results"]["summary"]
    headline, _, rest = summary.partition("\n\n")
    assert headline.startswith("**SAM ") and "2 samples segmented" in headline
    assert [line[:2] for line in rest.splitlines()] == ["- ", "- ", "- "]
    assert rest.splitlines()[0].startswith("- backend sam, prompt auto")
    assert rest.splitlines()[2].startswith("- encoder ")  # dtype (and why), attention


def test_run_sam_on_the_current_view_only(dota, checkpoint):
    dataset = dota["dataset"]
    view = dataset.limit(1)
    execute("run_sam", view=view, view_target="CURRENT_VIEW", checkpoint=checkpoint,
            device="cpu", label_field="sam_one", seg_field="", delegate=False)
    dataset.reload()
    assert dataset.exists("sam_one").values("id") == view.values("id")
    assert "sam_one_seg" not in dataset.get_field_schema()
    assert len(dataset.first().sam_one.detections) == len(dataset.first().hbb.detections)


def test_run_sam_errors_are_clear(dota, tmp_path):
    from fiftyone.operators.executor import ExecutionError

    dataset = dota["dataset"]
    missing = str(tmp_path / "no_such_checkpoint.pth")
    with pytest.raises(ExecutionError, match="no_such_checkpoint.pth"):
        execute("run_sam", dataset=dataset, checkpoint=missing, label_field="sam_bad",
                delegate=False)
    # the form only offers the view's Detections fields
    with pytest.raises(ExecutionError, match="box_field.*Invalid enum value"):
        execute("run_sam", dataset=dataset, box_field="nope", label_field="sam_bad",
                delegate=False)
    with pytest.raises(ExecutionError, match="does not exist"):
        execute("import_dataset", format="dota", dataset_dir=str(tmp_path / "nowhere"),
                name=_name("x"), delegate=False)
    # in the App (the streamed generator) the error is shown before it is raised
    shown = []
    with pytest.raises(Exception, match="no_such_checkpoint.pth"):
        execute_collect("run_sam", dataset=dataset, checkpoint=missing, label_field="sam_bad",
                        delegate=False, _into=shown)
    notes = _only(shown, "notify")
    assert notes and notes[0]["variant"] == "error" and "no_such_checkpoint.pth" in notes[0][
        "message"]
    assert "The operation failed" in _only(shown, "show_output")[-1]["results"]["summary"]
    # an existing name without overwrite is refused by the form
    with pytest.raises(ExecutionError, match="name"):
        execute("import_dataset", format="dota", dataset_dir=dota["root"], name=dataset.name,
                delegate=False)


# --------------------------------------------------------------------------
# export


def test_export_samrs_tree(dota, tmp_path):
    import cv2
    from pycocotools.coco import COCO

    dataset = dota["dataset"]
    out = tmp_path / "samrs"
    messages = execute_collect("export_dataset", dataset=dataset, format="samrs",
                               export_dir={"absolute_path": str(out)}, classes="SOTA",
                               split_ratio=0.5, delegate=False)
    grays = sorted((out / "gray").glob("*.png"))
    assert len(grays) == 2
    for g in grays:
        label = cv2.imread(str(g), cv2.IMREAD_UNCHANGED)
        assert label.dtype == np.uint8 and label.ndim == 2
    coco = COCO(str(out / "annotations.json"))
    assert len(coco.getAnnIds()) == 8
    assert sorted((out / "images").iterdir())
    assert (out / "train.txt").is_file() and (out / "val.txt").is_file()
    assert "Exported (samrs)" in _only(messages, "show_output")[0]["results"]["summary"]


def test_export_coco_json(dota, tmp_path):
    from pycocotools.coco import COCO

    out = tmp_path / "coco"
    execute("export_dataset", dataset=dota["dataset"], format="coco", export_dir=str(out),
            export_media="false", delegate=False)
    coco = COCO(str(out / "annotations.json"))
    assert len(coco.getImgIds()) == 2 and len(coco.getAnnIds()) == 8
    for ann in coco.loadAnns(coco.getAnnIds()):
        assert isinstance(ann["segmentation"]["counts"], str)
    with pytest.raises(Exception, match="exist|overwrite"):
        execute("export_dataset", dataset=dota["dataset"], format="coco",
                export_dir=str(out), export_media="false", delegate=False)


# --------------------------------------------------------------------------
# evaluation, QA panel, prompt study (HRSC: ground-truth masks)


@pytest.fixture(scope="module")
def hrsc(plugin, checkpoint, tmp_path_factory):
    import fiftyone as fo

    from fiftyone_samrs.testing.synthetic import make_hrsc_tree

    root = tmp_path_factory.mktemp("hrsc")
    make_hrsc_tree(str(root), n_images=3, n_objects=2, size=(300, 200), seed=5)
    name = _name("hrsc")
    execute("import_dataset", format="hrsc", dataset_dir=str(root), name=name, delegate=False)
    dataset = fo.load_dataset(name)
    execute("run_sam", dataset=dataset, checkpoint=checkpoint, device="cpu", delegate=False)
    dataset.reload()
    yield dataset
    if fo.dataset_exists(name):
        fo.delete_dataset(name)


def test_evaluate_masks_scores_and_opens_low_iou(hrsc):
    from fiftyone_samrs.evaluating import evaluation
    assert hrsc.count("gt_masks.detections") == 6
    messages = execute_collect("evaluate_masks", dataset=hrsc, low_iou=1.0, delegate=False)
    hrsc.reload()
    assert "eval" in evaluation.list_runs(hrsc)
    results = evaluation.load_results(hrsc, "eval")
    assert results.n_instances == 6
    assert len(hrsc.exists("eval_iou_i")) == 3
    assert hrsc.count("sam.detections.eval_iou") == 6
    # every sample is below IoU 1.0: the low_iou view holds them all
    assert {"low_iou", "suspicious_masks"} <= set(hrsc.list_saved_views())
    assert len(hrsc.load_saved_view("low_iou")) == 3
    low_iou = _stages(hrsc.load_saved_view("low_iou")._serialize())
    assert [_stages(p["view"]) for p in _only(messages, "set_view")] == [low_iou]
    summary = _only(messages, "show_output")[0]["results"]["summary"]
    assert "mIoU_I" in summary and "| ship |" in summary
    assert _progress(messages)[-1][0] == 1.0


def _panel_call(dataset, method, state=None, **params):
    """Calls a method of the QA panel as the App does; returns its requests."""
    import fiftyone.operators as foo

    result = foo.execute_operator(
        "%s/samrs_qa" % PLUGIN,
        ctx={"dataset": dataset, "params": {"__method__": method, "panel_id": "p1",
                                            "panel_state": state or {}, "event_args": {},
                                            **params}})
    return [(r["operator_uri"], r["params"]) for r in result.executor.to_json()["requests"]]


def _panel_state(requests):
    state = {}
    for uri, p in requests:
        if uri == "patch_panel_state":
            state.update(p["state"])
    return state


def test_qa_panel_shows_the_evaluation(hrsc):
    from fiftyone_samrs.evaluating import evaluation
    if "eval" not in evaluation.list_runs(hrsc):
        execute("evaluate_masks", dataset=hrsc, delegate=False)
    panel = plugin_module("qa_panel")
    summary = panel.qa_summary(hrsc, "eval")
    results = evaluation.load_results(hrsc, "eval")
    assert summary["eval_key"] == "eval" and "eval" in summary["eval_keys"]
    assert summary["ious"]["n"] == int(np.isfinite(results.ious).sum()) == 6
    want, _ = np.histogram(np.asarray(results.ious)[np.isfinite(results.ious)], bins=20,
                           range=(0, 1))
    assert summary["ious"]["counts"] == want.tolist()
    assert "mIoU_I" in summary["markdown"]

    requests = _panel_call(hrsc, "on_load", state={"eval_key": "eval"})
    data = [p["data"] for u, p in requests if u == "patch_panel_data"]
    hist = [d["iou_hist"] for d in data if "iou_hist" in d][0]
    assert hist[0]["type"] == "bar" and sum(hist[0]["y"]) == 6 and len(hist[0]["x"]) == 20
    output = [p for u, p in requests if u == "show_panel_output"][0]
    assert "open_low_iou" in json.dumps(output)
    for method, name in (("open_low_iou", "low_iou_eval"),
                         ("open_suspicious", "suspicious_masks")):
        requests = _panel_call(hrsc, method, state={"eval_key": "eval"})
        view = _stages(hrsc.load_saved_view(name)._serialize())
        assert [_stages(p["view"]) for u, p in requests if u == "set_view"] == [view]


def test_qa_panel_buttons_follow_the_chosen_evaluation(hrsc):
    """Two evaluations: the panel opens on the newest, and its low-IoU button
    opens that evaluation's samples, not the other's saved view; an empty view
    is not opened but explained."""
    from fiftyone_samrs.evaluating import qa

    execute("evaluate_masks", dataset=hrsc, eval_key="eval_all", low_iou=1.0, delegate=False)
    execute("evaluate_masks", dataset=hrsc, eval_key="eval_none", low_iou=0.0, delegate=False)
    hrsc.reload()
    assert len(hrsc.load_saved_view("low_iou_eval_all")) == 3
    assert len(hrsc.load_saved_view("low_iou_eval_none")) == 0
    # a third evaluation without QA views, newest of all: built on the spot
    from fiftyone_samrs.evaluating.evaluation import evaluate
    evaluate(hrsc, pred_field="sam", gt_field="gt_masks", eval_key="eval_sdk", progress=False)
    assert "low_iou_eval_sdk" not in hrsc.list_saved_views()

    state = _panel_state(_panel_call(hrsc, "on_load"))
    assert state["eval_key"] == "eval_sdk"  # the newest
    expected = _stages(qa.low_iou_view(hrsc, "eval_sdk", 0.5)._serialize())
    requests = _panel_call(hrsc, "open_low_iou", state=state)
    assert [_stages(p["view"]) for u, p in requests if u == "set_view"] == [expected]

    state = _panel_state(_panel_call(hrsc, "choose_eval", state=state, value="eval_all"))
    assert state["eval_key"] == "eval_all" and state["low_iou"]["count"] == 3
    assert "low_iou_eval_all" in state["low_iou"]["text"]
    requests = _panel_call(hrsc, "open_low_iou", state=state)
    expected = _stages(hrsc.load_saved_view("low_iou_eval_all")._serialize())
    assert [_stages(p["view"]) for u, p in requests if u == "set_view"] == [expected]

    state = _panel_state(_panel_call(hrsc, "choose_eval", state=state, value="eval_none"))
    assert state["low_iou"]["count"] == 0
    assert "no sample has eval_none_iou_i below 0" in state["low_iou"]["reason"]
    assert "lowest:" in state["low_iou"]["reason"]
    requests = _panel_call(hrsc, "open_low_iou", state=state)
    assert not [p for u, p in requests if u == "set_view"]
    notes = [p["message"] for u, p in requests if u == "notify"]
    assert notes and "nothing to open" in notes[0] and "below 0" in notes[0]
    # rendered: the button is disabled and the reason is written in the panel
    output = json.dumps([p for u, p in _panel_call(hrsc, "on_load", state=state)
                         if u == "show_panel_output"])
    assert "no sample has eval_none_iou_i below 0" in output


def test_evaluate_masks_explains_an_empty_low_iou_view(hrsc):
    messages = execute_collect("evaluate_masks", dataset=hrsc, eval_key="eval_zero",
                               low_iou=0.0, delegate=False)
    assert not _only(messages, "set_view")  # no empty view opened
    notes = _only(messages, "notify")
    assert notes and "low_iou view is empty" in notes[0]["message"]
    assert "no sample has eval_zero_iou_i below 0" in notes[0]["message"]
    summary = _only(messages, "show_output")[0]["results"]["summary"]
    assert "low_iou 0 samples: no sample has eval_zero_iou_i below 0" in " ".join(
        summary.split())


def test_prompt_study_shows_the_table(hrsc, checkpoint, tmp_path):
    out = tmp_path / "study"
    messages = execute_collect("prompt_study", dataset=hrsc, checkpoint=checkpoint,
                               device="cpu", configs=["hbox", "rhbox", "hbox+cp"],
                               out_dir=str(out), delegate=False)
    table = _only(messages, "show_output")[0]["results"]["summary"]
    for config in ("| hbox |", "| rhbox |", "| hbox+cp |"):
        assert config in table
    assert (out / "study.md").is_file() and (out / "study.csv").is_file()
    assert _progress(messages)[-1][0] == 1.0


def test_qa_panel_shows_the_paper_statistics(hrsc):
    """The statistics button measures the evaluated field: the same figures as
    fsr.dataset_stats, a bar chart per class and a mask-size histogram."""
    import fiftyone_samrs as fsr
    from fiftyone_samrs.evaluating import evaluation

    if "eval" not in evaluation.list_runs(hrsc):
        execute("evaluate_masks", dataset=hrsc, delegate=False)
    state = _panel_state(_panel_call(hrsc, "on_load", state={"eval_key": "eval"}))
    assert state["pred_field"] == "sam"
    requests = _panel_call(hrsc, "show_stats", state=state)
    state.update(_panel_state(requests))
    expected = fsr.dataset_stats(hrsc, "sam", progress=False)
    assert expected.to_markdown() in state["stats_md"]
    data = {}
    for u, p in requests:
        if u == "patch_panel_data":
            data.update(p["data"])
    bars = {b["name"]: b for b in data["stats_classes"]}
    assert bars["instances"]["x"] == list(expected.classes)
    assert bars["instances"]["y"] == [int(v) for v in expected.instances]
    assert sum(bars["pixels"]["y"]) == int(expected.sizes.sum()) > 0
    sizes = data["stats_sizes"][0]  # binned here: 40 bars whatever the dataset's size
    assert sizes["type"] == "bar" and len(sizes["x"]) == 40
    assert sum(sizes["y"]) == expected.sizes.size == 6
    output = json.dumps([p for u, p in _panel_call(hrsc, "on_load", state=state)
                         if u == "show_panel_output"])
    assert "stats_classes" in output and "stats_sizes" in output


# --------------------------------------------------------------------------
# the review loop (runs last: it changes the masks of ``hrsc``)


def _selected(sample, det, field="sam"):
    return [{"label_id": det.id, "sample_id": sample.id, "field": field, "frame_number": None}]


def _form(operator, dataset, selected):
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionContext

    ctx = ExecutionContext(request_params={"dataset_name": dataset.name, "params": {},
                                           "selected_labels": selected})
    return foo.get_operator("%s/%s" % (PLUGIN, operator)).resolve_input(ctx).type.properties


def test_review_operators_act_on_the_selected_labels(hrsc):
    from fiftyone_samrs.evaluating.review import DEFAULT_ALTERNATIVES

    s = hrsc.first()
    det = s.sam.detections[0]
    sel = _selected(s, det)
    form = _form("resegment_labels", hrsc, sel)  # as it opens
    assert form["label_field"].default == "sam" and not form["replace_best"].default
    assert "1 selected label of `sam`" in json.dumps(form["which"].view.to_json())
    messages = execute_collect("resegment_labels", dataset=hrsc, _selected_labels=sel,
                               delegate=False)
    summary = _only(messages, "show_output")[0]["results"]["summary"]
    assert "alternatives for 1 labels in `sam_alternatives` (1 images encoded)" in summary
    assert _only(messages, "set_selected_labels")[0]["labels"] == sel  # kept for the decision
    hrsc.reload()
    alts = [a for a in hrsc.first().sam_alternatives.detections if a.of == det.id]
    names = {a.alternative for a in alts}
    assert names == {"multimask_0", "multimask_1", "multimask_2"} | (
        set(DEFAULT_ALTERNATIVES) - {"multimask"})

    # Review decision with its defaults: replace by the best predicted IoU
    form = _form("review_labels", hrsc, sel)
    assert form["action"].default == "replace" and form["alternative"].default == "best"
    messages = execute_collect("review_labels", dataset=hrsc, _selected_labels=sel,
                               delegate=False)
    summary = _only(messages, "show_output")[0]["results"]["summary"]
    assert "replace: 1 label, 1 semantic PNG repainted" in summary
    best = max((a for a in alts if a.confidence is not None), key=lambda a: a.confidence)
    got = hrsc.first().sam.detections[0]
    assert got.review == "replaced" and got.review_choice == best.alternative
    assert (got.mask == best.mask).all()
    # a selected alternative takes its label's place
    box = [a for a in alts if a.alternative == "box"][0]
    form = _form("review_labels", hrsc, _selected(s, box, "sam_alternatives"))
    assert "`box` replaces 1 label" in json.dumps(form["which"].view.to_json())
    execute_collect("review_labels", dataset=hrsc,
                    _selected_labels=_selected(s, box, "sam_alternatives"), delegate=False)
    assert hrsc.first().sam.detections[0].review_choice == "box"
    # nothing selected: the form says so, and a programmatic call fails clearly
    assert form_invalid(_form("review_labels", hrsc, []))
    with pytest.raises(Exception, match="select labels"):
        execute_collect("review_labels", dataset=hrsc, delegate=False)


def form_invalid(properties):
    return any(getattr(p, "invalid", False) for p in properties.values())


def test_qa_panel_shows_review_progress_and_opens_the_next_sample(hrsc):
    import fiftyone_samrs as fsr

    execute("evaluate_masks", dataset=hrsc, eval_key="eval_review", low_iou=1.0, delegate=False)
    hrsc.reload()
    expected = fsr.review_progress(hrsc, "eval_review")
    assert expected.flagged and expected.to_review and expected.next_sample
    state = _panel_state(_panel_call(hrsc, "on_load", state={"eval_key": "eval_review"}))
    assert state["review"]["markdown"] == expected.to_markdown()
    assert state["review"]["to_review"] == expected.to_review
    output = json.dumps([p for u, p in _panel_call(hrsc, "on_load", state=state)
                         if u == "show_panel_output"])
    assert "Next to review (%d)" % expected.to_review in output
    requests = _panel_call(hrsc, "next_to_review", state=state)
    assert [p.get("id") for u, p in requests if u == "open_sample"] == [expected.next_sample]
    view = _stages(hrsc.load_saved_view("low_iou_eval_review")._serialize())
    assert [_stages(p["view"]) for u, p in requests if u == "set_view"] == [view]
    # every flagged label decided: nothing left, the panel says so
    fsr.decide(hrsc, [i for ids in hrsc.values("sam.detections.id") for i in ids], "accept")
    requests = _panel_call(hrsc, "next_to_review", state=state)
    assert not [p for u, p in requests if u == "open_sample"]
    assert "nothing left to review" in [p["message"] for u, p in requests if u == "notify"][0]
