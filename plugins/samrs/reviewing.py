"""``resegment_labels`` (``fsr.resegment``) and ``review_labels`` (``fsr.decide``):
the review loop on the labels selected in the App.

Select labels of the segmented field (click them in the sample modal, or in
the grid), run **SAMRS: Re-segment labels**: their alternatives appear in
``<field>_alternatives`` beside them, and the selection is kept. Then
**SAMRS: Review decision** replaces each selected label by its alternative
with the best predicted IoU (the form's default), or accepts or rejects it.
Selecting an alternative itself (in ``<field>_alternatives``) and running
**Review decision** puts that one in its label's place.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Tuple

import fiftyone as fo
import fiftyone.operators.types as types

from fiftyone_samrs.core.text import plural

from . import common

SUFFIX = "_alternatives"


def segmented_fields(sample_collection) -> List[str]:
    """The Detections fields a review can act on (not the alternatives' side fields)."""
    return [f for f in common.label_fields(sample_collection, fo.Detections)
            if not f.endswith(SUFFIX)]


def default_field(ctx, fields: List[str]) -> str:
    """The field of the first selected label (an alternative's: its label's), else ``sam``."""
    for sel in ctx.selected_labels or []:
        name = sel.get("field") or ""
        name = name[:-len(SUFFIX)] if name.endswith(SUFFIX) else name
        if name in fields:
            return name
    return "sam" if "sam" in fields or not fields else fields[0]


def chosen(ctx, label_field: str) -> Tuple[List[str], Dict[str, List[str]]]:
    """The selected labels of ``label_field``, and the selected alternatives
    as ``{alternative name: [ids of the labels they are alternatives for]}``."""
    ids, alt_ids = [], []
    for sel in ctx.selected_labels or []:
        if sel.get("field") == label_field:
            ids.append(sel["label_id"])
        elif sel.get("field") == label_field + SUFFIX:
            alt_ids.append(sel["label_id"])
    by_name: Dict[str, List[str]] = defaultdict(list)
    if alt_ids:
        field = label_field + SUFFIX
        view = ctx.dataset.select_labels(ids=alt_ids, fields=field)
        rows = view.values(["%s.detections.%s" % (field, k) for k in ("of", "alternative")])
        for ofs, names in zip(*rows):
            for of, name in zip(ofs or [], names or []):
                by_name[name].append(of)
    return ids, dict(by_name)


def _label_field_input(ctx, inputs) -> str:
    fields = segmented_fields(ctx.dataset)
    default = default_field(ctx, fields)
    common.field_choice(inputs, "label_field", fields, default, "Label field",
                        "the segmented Detections to review (e.g. sam)")
    return common.param_str(ctx, "label_field", default)


class ResegmentLabels(common.SamrsOperator):
    """Alternative masks for the selected labels (or every label of the view)."""

    title = "Re-segment"
    view_target = False

    @property
    def config(self):
        return common.operator_config(
            "resegment_labels", "SAMRS: Re-segment labels",
            "alternative masks for the selected labels: SAM's three, the paper's other "
            "prompts, GrabCut and the box, beside the current ones", "auto_fix_high")

    def resolve_input(self, ctx):
        from fiftyone_samrs.evaluating.review import DEFAULT_ALTERNATIVES

        inputs = types.Object()
        label_field = _label_field_input(ctx, inputs)
        ids, alts = chosen(ctx, label_field)
        n = len(ids) + sum(len(v) for v in alts.values())
        inputs.view("which", types.Notice(label=(
            "%s of `%s`" % (plural(n, "selected label"), label_field) if n else
            "No label of `%s` selected: every label of the current view (%d samples)"
            % (label_field, ctx.view.count()))))
        inputs.list("alternatives", types.String(), default=None, required=False,
                    label="Alternatives (optional)",
                    description="empty = " + ", ".join(DEFAULT_ALTERNATIVES),
                    view=types.AutocompleteView(
                        choices=[types.Choice(c) for c in DEFAULT_ALTERNATIVES]))
        inputs.bool("replace_best", default=False, label="First pass: take the best",
                    description="replace each label by its alternative with the best "
                                "predicted IoU where that beats its own (recorded "
                                "auto-replaced; still to review)")
        inputs.str("checkpoint", required=False, label="Checkpoint file (optional)",
                   description="empty = the model of the run that wrote the field")
        return types.Property(inputs, view=types.View(label="Re-segment labels"))

    def _execute(self, ctx):
        common.fill_defaults(self, ctx)
        import fiftyone_samrs as fsr

        label_field = common.param_str(ctx, "label_field", "sam")
        ids, alts = chosen(ctx, label_field)
        ids = ids + [i for v in alts.values() for i in v]
        samples = sorted({sel["sample_id"] for sel in ctx.selected_labels or []})
        view = ctx.dataset.select(samples) if ids else ctx.view  # whole samples: their boxes
        alternatives = common.param_list(ctx, "alternatives")
        kwargs = {"alternatives": alternatives} if alternatives else {}  # else the SDK's

        def work(report):
            report(0.0, "re-segmenting: loading the model")
            return fsr.resegment(
                view, label_ids=ids or None, label_field=label_field,
                checkpoint=common.param_path(ctx, "checkpoint"),
                replace_best=bool(ctx.params.get("replace_best", False)),
                progress=common.fiftyone_progress(report, 0.0, 1.0, "re-segmented"), **kwargs)

        res = yield from common.run_with_progress(ctx, work)
        lines = ["%d alternatives for %d labels in `%s` (%d images encoded)"
                 % (res.alternatives, res.labels, res.field, res.images)]
        if res.replaced:
            lines.append("first pass: %d labels replaced by their best alternative, %d "
                         "semantic PNGs repainted" % (res.replaced, res.repainted))
        lines += ["skipped %d: %s" % (n, why) for why, n in sorted(res.skipped.items())]
        lines.append("next: compare them in the sample, then **SAMRS: Review decision**")
        triggers = [] if ctx.delegated else [ctx.ops.reload_dataset(), ctx.ops.reload_samples()]
        if not ctx.delegated and ctx.selected_labels:
            triggers.append(ctx.ops.set_selected_labels(ctx.selected_labels))
        return (yield from common.finish(
            ctx, self.title, common.markdown_lines("Re-segmented", lines),
            "%d alternatives" % res.alternatives, triggers))


class ReviewLabels(common.SamrsOperator):
    """Accepts, replaces (by an alternative) or rejects the selected labels."""

    title = "Review decision"
    view_target = False

    @property
    def config(self):
        return common.operator_config(
            "review_labels", "SAMRS: Review decision",
            "replace the selected labels by their best alternative (or the selected "
            "alternative), accept or reject them; the semantic PNGs follow", "rule")

    def resolve_input(self, ctx):
        inputs = types.Object()
        label_field = _label_field_input(ctx, inputs)
        ids, alts = chosen(ctx, label_field)
        if not ids and not alts:
            message = "select labels of `%s` (or of `%s%s`) in the App first" % (
                label_field, label_field, SUFFIX)
            prop = inputs.view("none", types.Notice(label=message[0].upper() + message[1:]))
            prop.invalid, prop.error_message = True, message
            return types.Property(inputs, view=types.View(label="Review decision"))
        lines = []
        if ids:
            lines.append("%s of `%s`" % (plural(len(ids), "selected label"), label_field))
        lines += ["`%s` replaces %s" % (name, plural(len(of), "label"))
                  for name, of in sorted(alts.items())]
        inputs.view("which", types.Notice(label="; ".join(lines)))
        if ids:
            actions = types.RadioGroup(orientation="horizontal")
            for value, label in (("replace", "Replace"), ("accept", "Accept"),
                                 ("reject", "Reject")):
                actions.add_choice(value, label=label)
            inputs.enum("action", actions.values(), default="replace", label="Decision",
                        description="replace: by the alternative below; reject: the "
                                    "instance becomes ignore (255) and leaves the exports",
                        view=actions)
            if ctx.params.get("action", "replace") == "replace":
                inputs.str("alternative", default="best", required=False, label="Alternative",
                           description="best = the highest predicted IoU; or a name "
                                       "(multimask_1, grabcut, box...)")
        inputs.str("user", default=_user_name(ctx), required=False, label="Reviewer (optional)",
                   description="recorded on the labels as reviewed_by")
        return types.Property(inputs, view=types.View(label="Review decision"))

    def _execute(self, ctx):
        common.fill_defaults(self, ctx)
        import fiftyone_samrs as fsr

        label_field = common.param_str(ctx, "label_field", "sam")
        ids, alts = chosen(ctx, label_field)
        if not ids and not alts:
            raise ValueError("no selected label of %r: select labels (or their alternatives) "
                             "in the App first" % label_field)
        user = common.param_str(ctx, "user")
        action = common.param_str(ctx, "action", "replace")
        lines = []
        for name, of in sorted(alts.items()):
            res = fsr.decide(ctx.dataset, of, "replace", alternative=name,
                             label_field=label_field, user=user)
            lines.append(_decided_line("replace by `%s`" % name, res))
        if ids:
            res = fsr.decide(ctx.dataset, ids, action, label_field=label_field, user=user,
                             alternative=common.param_str(ctx, "alternative", "best"))
            lines.append(_decided_line(action, res))
        triggers = [] if ctx.delegated else [ctx.ops.reload_dataset(), ctx.ops.reload_samples(),
                                             ctx.ops.clear_selected_labels()]
        return (yield from common.finish(
            ctx, self.title, common.markdown_lines("Decided", lines), "decided", triggers))


def _decided_line(what: str, res) -> str:
    line = "%s: %s, %s repainted" % (what, plural(res.decided, "label"),
                                      plural(res.repainted, "semantic PNG"))
    return line + ("; not found: %s" % ", ".join(res.missing) if res.missing else "")


def _user_name(ctx):
    """Who is reviewing, where FiftyOne knows it (a signed-in user), else None."""
    user = getattr(ctx, "user", None)
    name = getattr(user, "name", None) or getattr(user, "email", None) if user else None
    return name or getattr(ctx, "user_id", None)
