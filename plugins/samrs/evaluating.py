"""``evaluate_masks`` (``fsr.evaluate`` + QA views) and ``prompt_study`` (``fsr.prompt_study``)."""

from __future__ import annotations

import math
from typing import Any, Dict, List

import fiftyone as fo
import fiftyone.operators.types as types

from fiftyone_samrs.evaluating import qa
from fiftyone_samrs.evaluating.qa import LOW_IOU_VIEW

from . import common
from .segmenting import add_model_inputs, model_kwargs, prompt_names


def _mask_fields(view) -> List[str]:
    return common.label_fields(view, fo.Detections)


def results_markdown(results) -> str:
    """Dataset mIoU_I / mIoU_P and the per-class table of a
    :class:`fiftyone_samrs.evaluating.evaluation.SamrsEvaluationResults`, as Markdown."""
    cfg = results.config
    lines = ["**%s**: %s vs %s%s, %d samples, %d instances: **mIoU_I %s, mIoU_P %s**" % (
        results.key, cfg.pred_field, cfg.gt_field, " (paper protocol)" if cfg.protocol else "",
        results.n_samples, results.n_instances, _pct(results.miou_i), _pct(results.miou_p))]
    rows = [[name, r["n"], _pct(r["miou_i"]), _pct(r["miou_p"]), r["missed"], r["unmatched"]]
            for name, r in sorted(results.per_class.items())]
    rows.append(["**all**", results.n_instances, _pct(results.miou_i), _pct(results.miou_p),
                 results.n_missed, results.n_unmatched])
    lines += ["", common.markdown_table(
        ["class", "instances", "mIoU_I", "mIoU_P", "missed GT", "unmatched pred"], rows)]
    return "\n".join(lines)


def _pct(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return "%.2f%%" % (100.0 * value)


class EvaluateMasks(common.SamrsOperator):
    """Scores predicted masks against GT masks, flags suspicious masks and
    opens the worst samples."""

    title = "Evaluation"

    @property
    def config(self):
        return common.operator_config(
            "evaluate_masks", "SAMRS: Evaluate masks",
            "mIoU of predicted instance masks against GT masks; saves the "
            "low_iou and suspicious_masks views", "fact_check")

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Evaluate")
        target = ctx.target_view()
        self.add_execution_notice(ctx, inputs, target)
        fields = _mask_fields(target)
        common.field_choice(inputs, "pred_field", fields, "sam", "Predicted masks",
                            "Detections with predicted instance masks (e.g. sam)")
        common.field_choice(inputs, "gt_field", fields, "gt_masks", "Ground-truth masks",
                            "Detections with GT instance masks (HRSC2016, iSAID)")
        inputs.str("eval_key", default="eval", required=False, label="Evaluation key",
                   description="stores <key>_iou per instance and <key>_iou_i / "
                               "<key>_iou_p per sample")
        inputs.bool("protocol", default=False, label="Paper protocol",
                    description="only HRSC test images whose every ship has a mask")
        inputs.float("low_iou", default=0.5, min=0.0, max=1.0, label="Low-IoU threshold",
                     description="samples below it go to the low_iou view")
        inputs.bool("quality", default=True, label="Mask-quality signals",
                    description="also flag suspicious masks (confidence, stability, area "
                                "and box agreement) for the suspicious_masks view")
        return types.Property(inputs, view=types.View(label="Evaluate masks"))

    def resolve_run_name(self, ctx):
        return "evaluate_masks(%s)" % common.param_str(ctx, "eval_key", "eval")

    def _execute(self, ctx):
        common.fill_defaults(self, ctx)
        from fiftyone_samrs.evaluating import evaluation, quality
        view = ctx.target_view()
        pred_field = common.param_str(ctx, "pred_field", "sam")
        gt_field = common.param_str(ctx, "gt_field", "gt_masks")
        eval_key = common.param_str(ctx, "eval_key", "eval")
        low_iou = ctx.params.get("low_iou")
        low_iou = 0.5 if low_iou in (None, "") else float(low_iou)
        with_quality = bool(ctx.params.get("quality", True))
        schema = view.get_field_schema()
        for field in (pred_field, gt_field):
            if field not in schema:
                raise ValueError("the view has no field %r" % field)

        def work(report):
            end = 0.7 if with_quality else 0.9
            results = evaluation.evaluate(
                view, pred_field=pred_field, gt_field=gt_field, eval_key=eval_key,
                protocol=bool(ctx.params.get("protocol", False)),
                progress=common.fiftyone_progress(report, 0.0, end, "evaluated"))
            if with_quality:
                quality.compute_quality(
                    view, pred_field=pred_field,
                    progress=common.fiftyone_progress(report, end, 0.9, "quality"))
            report(0.95, "saving the QA views")
            saved = qa.save_qa_views(view, eval_key=eval_key, low_iou=low_iou)
            return results, saved

        results, saved = yield from common.run_with_progress(ctx, work)
        summary = results_markdown(results)
        if saved:
            summary += "\n\nSaved views:\n\n" + "\n".join(
                "- %s" % line for line in qa.qa_summary(
                    saved, view, eval_key=eval_key, low_iou=low_iou).replace(
                    "saved view ", "").splitlines())
        triggers = []
        n_low = saved.get(LOW_IOU_VIEW)
        if not ctx.delegated:
            triggers.append(ctx.ops.reload_dataset())
            if n_low:
                triggers.append(common.open_saved_view(ctx, qa.low_iou_view_name(eval_key)))
            elif n_low == 0:
                triggers.append(ctx.ops.notify(
                    "the low_iou view is empty: %s" % qa.empty_reason(
                        view, LOW_IOU_VIEW, eval_key, low_iou), variant="info"))
        return (yield from common.finish(
            ctx, self.title, summary,
            "mIoU_I %s, mIoU_P %s" % (_pct(results.miou_i), _pct(results.miou_p)), triggers))


def study_markdown(result) -> str:
    """The study table (:meth:`StudyResult.to_markdown`) and the files written."""
    text = result.to_markdown()
    if result.files:
        text += "\nFiles: " + ", ".join("`%s`" % f for f in result.files)
    return text


class PromptStudy(common.SamrsOperator):
    """Compares prompt configurations (the paper's Table 1) on a view with GT masks."""

    title = "Prompt study"
    long_running = True

    @property
    def config(self):
        return common.operator_config(
            "prompt_study", "SAMRS: Prompt study",
            "mIoU of every prompt configuration (SAMRS Table 1) against GT "
            "masks; each image is encoded once", "table_chart")

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Study")
        target = ctx.target_view()
        self.add_execution_notice(ctx, inputs, target)
        fields = _mask_fields(target)
        common.field_choice(inputs, "gt_field", fields, "gt_masks", "Ground-truth masks",
                            "Detections with GT instance masks")
        common.field_choice(inputs, "box_field", fields, "hbb", "Box field",
                            "Detections whose boxes prompt SAM")
        common.field_choice(inputs, "obb_field", common.label_fields(target, fo.Polylines),
                            "obb", "Rotated box field", "Polylines with rotated boxes",
                            required=False, none_label="(none)")
        configs = [n for n in prompt_names() if n != "auto"]
        inputs.list("configs", types.String(), default=None, required=False,
                    label="Prompt configurations (optional)",
                    description="empty = every row of Table 1 plus the baselines; or pick "
                                "some of: " + ", ".join(configs),
                    view=types.AutocompleteView(choices=[types.Choice(c) for c in configs]))
        add_model_inputs(ctx, inputs, with_backend=True, model_backends_only=True)
        inputs.bool("protocol", default=False, label="Paper protocol",
                    description="only HRSC test images whose every ship has a mask")
        inputs.str("out_dir", required=False, label="Output folder (optional)",
                   description="writes study.md, study.csv and study.png there (replacing "
                               "those three); under %s (%s)"
                               % (common.app_root(), common.APP_ROOT_ENV))
        return types.Property(inputs, view=types.View(label="Prompt study"))

    def _execute(self, ctx):
        common.fill_defaults(self, ctx)
        import fiftyone_samrs as fsr

        view = ctx.target_view()
        model = model_kwargs(ctx)
        kwargs: Dict[str, Any] = dict(
            gt_field=common.param_str(ctx, "gt_field", "gt_masks"),
            box_field=common.param_str(ctx, "box_field", "hbb"),
            obb_field=common.param_str(ctx, "obb_field"),
            configs=common.param_list(ctx, "configs"),
            protocol=bool(ctx.params.get("protocol", False)),
            out_dir=common.output_path(ctx, "out_dir"),
        )
        if kwargs["gt_field"] not in view.get_field_schema():
            raise ValueError("the view has no ground-truth field %r" % kwargs["gt_field"])

        def work(report):
            report(0.0, "prompt study on %d samples: loading the model" % len(view))
            return fsr.prompt_study(
                view, backend=model.get("backend", "sam"), model=model.get("model"),
                checkpoint=model.get("checkpoint"), device=model.get("device"),
                progress=common.fiftyone_progress(report, 0.0, 1.0, "studied"), **kwargs)

        result = yield from common.run_with_progress(ctx, work)
        table = study_markdown(result)
        return (yield from common.finish(ctx, self.title, table, "prompt study done"))
