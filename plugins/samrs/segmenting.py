"""``run_sam``: Segment Anything over a view, prompted by its detections (``fsr.segment``)."""

from __future__ import annotations

from typing import Any, Dict, List

import fiftyone as fo
import fiftyone.operators.types as types

from . import common

DEVICES = ["auto", "cuda", "cpu", "mps"]


def prompt_names() -> List[str]:
    """``auto`` first, then the paper's Table 1 configurations."""
    from fiftyone_samrs.segmenting.prompts import TABLE1

    return ["auto"] + [n for n in TABLE1 if n != "auto"]


def add_model_inputs(ctx, inputs, with_backend: bool = True,
                     model_backends_only: bool = False) -> None:
    """Backend, model, checkpoint and device inputs (shared with prompt_study).

    Args:
        ctx: the execution context
        inputs: the form
        with_backend: offer the backend choice (else SAM)
        model_backends_only: offer only the model backends (SAM, SAM 2.1,
            HQ-SAM), not the baselines
    """
    from fiftyone_samrs.segmenting.backends import BACKEND_SPECS

    backend = "sam"
    if with_backend:
        choices = [(b, spec.title) for b, spec in BACKEND_SPECS.items()
                   if not model_backends_only or spec.needs_model]
        dropdown = types.DropdownView()
        for value, label in choices:
            dropdown.add_choice(value, label=label)
        inputs.enum("backend", [b for b, _ in choices], default="sam", label="Backend",
                    description="Segment Anything, SAM 2.1 (cheaper encoder, often better "
                                "masks), HQ-SAM (sharper boundaries)"
                                + ("" if model_backends_only else ", or a model-free baseline"),
                    view=dropdown)
        backend = ctx.params.get("backend", "sam") or "sam"
    spec = BACKEND_SPECS.get(backend)
    if spec is None or not spec.needs_model:
        return
    models, what = spec.models, spec.checkpoint_help
    dropdown = types.DropdownView()
    for value, label in models:
        dropdown.add_choice(value, label=label)
    inputs.enum("model", [m for m, _ in models], default=models[0][0], label="Model",
                description="the architecture; its FiftyOne zoo checkpoint (HQ-SAM: the file "
                            "in the zoo folder) is used when no checkpoint file is given",
                view=dropdown)
    inputs.str("checkpoint", label="Checkpoint file (optional)",
               description="Path of %s on the server (the model is read from the file); "
                           "empty = the checkpoint of the model above" % what,
               required=False)
    inputs.enum("device", DEVICES, default="auto", label="Device",
                description="auto = CUDA when available, else MPS, else CPU",
                view=types.DropdownView())


def model_kwargs(ctx) -> Dict[str, Any]:
    """``backend``, ``model``, ``checkpoint``, ``device`` from the form."""
    backend = common.param_str(ctx, "backend", "sam")
    checkpoint = common.param_path(ctx, "checkpoint")
    kwargs: Dict[str, Any] = {"backend": backend}
    from fiftyone_samrs.segmenting.backends import BACKEND_SPECS

    spec = BACKEND_SPECS.get(backend)
    if spec is not None and spec.needs_model:
        default = spec.models[0][0]
        kwargs["checkpoint"] = checkpoint
        kwargs["model"] = None if checkpoint else common.param_str(ctx, "model", default)
        device = common.param_str(ctx, "device", "auto")
        kwargs["device"] = None if device == "auto" else device
    return kwargs


class RunSam(common.SamrsOperator):
    """Prompts SAM with each object's box and stores instance + semantic masks."""

    title = "Run SAM"
    long_running = True

    @property
    def config(self):
        return common.operator_config(
            "run_sam", "SAMRS: Run SAM",
            "Segment every detection of the view with Segment Anything", "auto_fix_high")

    def resolve_delegation(self, ctx):
        if int(ctx.params.get("shards") or 1) > 1 and not ctx.params.get("shard"):
            return False  # queuing the shards' operations is instant
        return super().resolve_delegation(ctx)

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Segment")
        target = ctx.target_view()
        self.add_execution_notice(ctx, inputs, target)

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
        add_parallel_inputs(inputs)
        inputs.str("label_field", default="sam", label="Instance mask field",
                   description="Detections with SAM's masks", required=False)
        inputs.str("seg_field", default="auto", label="Semantic mask field",
                   description="Segmentation pointing at the SAMRS PNG; auto = the instance "
                               "mask field + _seg (sam_seg for sam); empty = none",
                   required=False)
        inputs.bool("overwrite", default=False, label="Overwrite",
                    description="Redo samples that already have masks (otherwise a run "
                                "resumes: finished samples are skipped)")
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
        shards = int(ctx.params.get("shards") or 1)
        if shards > 1 and not ctx.params.get("shard"):
            summary = queue_shards(ctx, self, shards, label_field)
            return (yield from common.finish(ctx, self.title, summary,
                                             summary.splitlines()[0]))
        kwargs.update(parallel_kwargs(ctx))

        def work(report):
            return run_segment(view, model, kwargs, report)

        result = yield from common.run_with_progress(ctx, work)
        triggers = [ctx.ops.reload_dataset()] if not ctx.delegated else []
        return (yield from common.finish(ctx, self.title, result["summary"],
                                         result["headline"], triggers))


def engine_name(model: Dict[str, Any]) -> str:
    """How a run's backend is named in summaries."""
    from fiftyone_samrs.segmenting.backends import BACKEND_SPECS

    spec = BACKEND_SPECS.get(model["backend"])
    if spec is None or not spec.needs_model:
        return model["backend"]
    return "%s %s" % (spec.short, model.get("checkpoint") or model.get("model") or "")


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
    headline = "%s: %s" % (engine_name(model), lines[1])
    summary = common.markdown_lines(headline, [lines[0]] + lines[2:])
    return {"headline": headline, "summary": summary, "samples": n, "result": result}


# --------------------------------------------------------------------------
# several workers (issue 14): Ray workers inside one operation, or one
# delegated operation per shard for several `fiftyone delegated launch` workers


def add_parallel_inputs(inputs) -> None:
    """The Workers and Shards inputs of Run SAM."""
    inputs.int("workers", default=0, min=0, label="Ray workers",
               description="0 = the process running the operation segments; N = N Ray "
                           "workers, each loading the model once on its own GPU (or CPU "
                           "cores), on a local Ray or the cluster of RAY_ADDRESS (needs "
                           "fiftyone-samrs[ray])", required=False)
    inputs.int("shards", default=1, min=1, label="Split into shards",
               description="N > 1 queues N delegated operations, one shard of the view "
                           "each, for N `fiftyone delegated launch` workers (one per "
                           "GPU or machine); they share the field safely", required=False)


def parallel_kwargs(ctx) -> Dict[str, Any]:
    """``workers`` and ``shard`` for ``fsr.segment`` from the form (and the
    ``shard`` parameter that :func:`queue_shards` gives each operation)."""
    import os

    out: Dict[str, Any] = {}
    workers = int(ctx.params.get("workers") or 0)
    if workers:
        out["workers"] = workers
        out["ray_address"] = os.environ.get("RAY_ADDRESS") or None
    shard = ctx.params.get("shard")
    if shard:
        i, n = (int(v) for v in str(shard).split("/"))
        out["shard"] = (i, n)
    return out


def queue_shards(ctx, operator, n: int, label_field: str) -> str:
    """Queues ``n`` delegated Run SAM operations, shard ``i/n`` each, with the
    same view and form; returns the summary."""
    from fiftyone.operators.delegated import DelegatedOperationService

    service = DelegatedOperationService()
    ids = []
    for i in range(n):
        params = dict(ctx.params, shards=1, shard="%d/%d" % (i, n), delegate=True)
        request = dict(ctx.request_params, params=params, delegated=True)
        op = service.queue_operation(
            operator=operator.uri, label="run_sam(%s) shard %d/%d" % (label_field, i, n),
            context={"request_params": request, "params": params},
            metadata={"inputs_schema": None, "outputs_schema": None})
        ids.append(str(op.id))
    return ("Queued %d delegated operations, one shard each: start up to %d workers with "
            "`fiftyone delegated launch`\noperation ids: %s" % (n, n, ", ".join(ids)))
