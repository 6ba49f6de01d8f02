"""``run_sam``: Segment Anything over a view, prompted by its detections (``fsr.segment``)."""

from __future__ import annotations

from typing import Any, Dict, List

import fiftyone as fo
import fiftyone.operators.types as types

from . import common

BACKENDS = [
    ("sam", "Segment Anything"),
    ("grabcut", "GrabCut (no model, baseline)"),
    ("boxfill", "Filled boxes (no model, baseline)"),
]
MODELS = [
    ("vit_h", "ViT-H (sam_vit_h_4b8939.pth)"),
    ("vit_l", "ViT-L (sam_vit_l_0b3195.pth)"),
    ("vit_b", "ViT-B (sam_vit_b_01ec64.pth)"),
    ("samrs-tiny", "samrs-tiny (shipped stand-in trained on generated scenes: demos and "
                   "tests only, not for real data)"),
]
DEVICES = ["auto", "cuda", "cpu", "mps"]


def prompt_names() -> List[str]:
    """``auto`` first, then the paper's Table 1 configurations."""
    from fiftyone_samrs.segmenting.prompts import TABLE1

    return ["auto"] + [n for n in TABLE1 if n != "auto"]


def add_model_inputs(ctx, inputs, with_backend: bool = True) -> None:
    """Backend, model, checkpoint and device inputs (shared with prompt_study)."""
    backend = "sam"
    if with_backend:
        dropdown = types.DropdownView()
        for value, label in BACKENDS:
            dropdown.add_choice(value, label=label)
        inputs.enum("backend", [b for b, _ in BACKENDS], default="sam", label="Backend",
                    description="Segment Anything, or a model-free baseline", view=dropdown)
        backend = ctx.params.get("backend", "sam") or "sam"
    if backend != "sam":
        return
    dropdown = types.DropdownView()
    for value, label in MODELS:
        dropdown.add_choice(value, label=label)
    inputs.enum("model", [m for m, _ in MODELS], default="vit_h", label="Model",
                description="SAM architecture; its FiftyOne zoo checkpoint is used when no "
                            "checkpoint file is given", view=dropdown)
    inputs.str("checkpoint", label="Checkpoint file (optional)",
               description="Path of a SAM .pth checkpoint on the server (the model type is "
                           "read from the file); empty = the zoo checkpoint of the model above",
               required=False)
    inputs.enum("device", DEVICES, default="auto", label="Device",
                description="auto = CUDA when available, else MPS, else CPU",
                view=types.DropdownView())


def model_kwargs(ctx) -> Dict[str, Any]:
    """``backend``, ``model``, ``checkpoint``, ``device`` from the form."""
    backend = common.param_str(ctx, "backend", "sam")
    checkpoint = common.param_path(ctx, "checkpoint")
    kwargs: Dict[str, Any] = {"backend": backend}
    if backend == "sam":
        kwargs["checkpoint"] = checkpoint
        kwargs["model"] = None if checkpoint else common.param_str(ctx, "model", "vit_h")
        device = common.param_str(ctx, "device", "auto")
        kwargs["device"] = None if device == "auto" else device
    return kwargs


class RunSam(common.SamrsOperator):
    """Prompts SAM with each object's box and stores instance + semantic masks."""

    title = "Run SAM"
    default_delegate = True

    @property
    def config(self):
        return common.operator_config(
            "run_sam", "SAMRS: Run SAM",
            "Segment every detection of the view with Segment Anything", "auto_fix_high",
            default_choice_to_delegated=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Segment")
        target = ctx.target_view()

        box_fields = common.label_fields(target, fo.Detections)
        obb_fields = common.label_fields(target, fo.Polylines)
        common.field_choice(inputs, "box_field", box_fields, "hbb", "Box field",
                            "Detections whose boxes prompt SAM (H-Box or RH-Box)")
        common.field_choice(inputs, "obb_field", obb_fields, "obb", "Rotated box field",
                            "Polylines with the rotated boxes (needed by rhbox / rbox "
                            "prompts)", required=False, none_label="(none)")

        names = prompt_names()
        inputs.enum("prompt", names, default="auto", label="Prompt",
                    description="auto = H-Box where the source has horizontal boxes, else "
                                "RH-Box; combinations join names with '+'",
                    view=types.DropdownView())
        add_model_inputs(ctx, inputs)
        inputs.int("batch_size", default=4, min=1, label="Batch size",
                   description="images per encoder batch")
        inputs.str("label_field", default="sam", label="Instance mask field",
                   description="Detections with SAM's masks", required=False)
        inputs.str("seg_field", default="sam_seg", label="Semantic mask field",
                   description="Segmentation pointing at the SAMRS PNG; empty = none",
                   required=False)
        inputs.bool("overwrite", default=False, label="Overwrite",
                    description="Redo samples that already have masks (otherwise a run "
                                "resumes: finished samples are skipped)")
        common.add_execution_mode(ctx, inputs, default_delegate=self.default_delegate,
                                  target=target)
        return types.Property(inputs, view=types.View(label="Run SAM"))

    def resolve_run_name(self, ctx):
        return "run_sam(%s)" % common.param_str(ctx, "label_field", "sam")

    def _execute(self, ctx):
        common.fill_defaults(self, ctx)
        view = ctx.target_view()
        label_field = common.param_str(ctx, "label_field", "sam")
        seg_field = common.param_str(ctx, "seg_field")
        box_field = common.param_str(ctx, "box_field", "hbb")
        obb_field = common.param_str(ctx, "obb_field")
        kwargs = dict(
            prompt=common.param_str(ctx, "prompt", "auto"),
            label_field=label_field,
            seg_field=seg_field,
            box_field=box_field,
            obb_field=obb_field,
            batch_size=int(ctx.params.get("batch_size") or 4),
            overwrite=bool(ctx.params.get("overwrite", False)),
        )
        model = model_kwargs(ctx)
        if box_field not in view.get_field_schema():
            raise ValueError("the view has no box field %r" % box_field)

        def work(report):
            return run_segment(view, model, kwargs, report)

        result = yield from common.run_with_progress(ctx, work)
        triggers = [ctx.ops.reload_dataset()] if not ctx.delegated else []
        return (yield from common.finish(ctx, self.title, result["summary"],
                                         result["summary"].splitlines()[0], triggers))


def engine_name(model: Dict[str, Any]) -> str:
    """How a run's backend is named in summaries."""
    if model["backend"] != "sam":
        return model["backend"]
    return "SAM %s" % (model.get("checkpoint") or model.get("model") or "")


def run_segment(view, model: Dict[str, Any], kwargs: Dict[str, Any], report) -> Dict[str, Any]:
    """Runs ``fsr.segment`` once over ``view``, relaying its progress to ``report``.

    Resume and overwrite semantics are the SDK's, per sample.
    """
    from fiftyone_samrs.segmenting.pipeline import segment

    n = len(view)
    if not n:
        raise ValueError("the target view has no samples")
    report(0.0, "loading the %s backend" % model["backend"])
    extra = {"decoder_chunk": kwargs.pop("decoder_chunk")} if "decoder_chunk" in kwargs else {}

    def on_batch(pb):  # called after every batch written
        report(pb.iteration / float(n), "segmented %d/%d samples" % (pb.iteration, n))

    result = segment(view, progress=on_batch, **model, **kwargs, **extra)
    lines = result.summary().splitlines()  # counts first: the App shows the first line
    summary = "\n".join(["%s: %s" % (engine_name(model), lines[1]), lines[0]] + lines[2:])
    return {"summary": summary, "samples": n, "result": result}
