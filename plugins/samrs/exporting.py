"""``export_dataset``: the SAMRS PNG tree or a COCO instance JSON (``fsr.export_samrs`` / ``export_coco``)."""

from __future__ import annotations

import os
from typing import List, Union

import fiftyone as fo
import fiftyone.operators.types as types

from . import common

EXPORT_FORMATS = [("samrs", "SAMRS (gray/color PNGs, rotated boxes, COCO JSONs, images)"),
                  ("coco", "COCO instance JSON (RLE masks, one per split)"),
                  ("yolo", "YOLO-seg (ultralytics: images/<split>, labels/<split>, "
                           "data.yaml)")]
MEDIA = [("copy", "copy the images"), ("symlink", "symlink the images"),
         ("false", "labels only")]
CUSTOM = "custom"
#: the COCO file written inside the export folder
COCO_LABELS = "annotations.json"


def _subsets() -> List[str]:
    from fiftyone_samrs.core.classes import SUBSETS

    return list(SUBSETS)


def resolve_class_choice(ctx) -> Union[str, List[str], None]:
    """The class list chosen: a subset name, a custom list, or None (the dataset's)."""
    choice = common.param_str(ctx, "classes", "")
    if choice == CUSTOM:
        names = common.param_list(ctx, "class_list")
        if not names:
            raise ValueError("choose a class subset or type a comma-separated class list")
        return names
    return choice or None


def _default_subset(view) -> str:
    info = (view.info or {}).get("samrs", {}) if view is not None else {}
    return info.get("subset") or ""


class ExportDataset(common.SamrsOperator):
    """Writes the segmentation of a view to disk."""

    title = "Export"

    @property
    def config(self):
        return common.operator_config(
            "export_dataset", "SAMRS: Export",
            "Export the masks as a SAMRS tree or a COCO instance JSON", "save_alt")

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Export")
        target = ctx.target_view()
        self.add_execution_notice(ctx, inputs, target)
        radio = types.RadioGroup()
        for key, label in EXPORT_FORMATS:
            radio.add_choice(key, label=label)
        inputs.enum("format", [f for f, _ in EXPORT_FORMATS], default="samrs", required=False,
                    label="Format", view=radio)
        fmt = ctx.params.get("format") or "samrs"
        common.folder_input(ctx, inputs, "export_dir", label="Export folder",
                            description="a new or empty folder on the server, under %s (%s)"
                                        % (common.app_root(), common.APP_ROOT_ENV))
        try:
            export_dir = common.output_path(ctx, "export_dir")
        except ValueError as e:
            export_dir = None
            inputs.view("export_dir_error", types.Error(label="Not allowed", description=str(e)))
        common.field_choice(inputs, "label_field", common.label_fields(target, fo.Detections),
                            "sam", "Instance mask field", "Detections with masks (e.g. sam)")
        if fmt == "samrs":
            common.field_choice(inputs, "seg_field",
                                common.label_fields(target, fo.Segmentation), "sam_seg",
                                "Semantic mask field", "Segmentation with the SAMRS PNGs",
                                required=False, none_label="(re-paint from the instances)")
        subsets = _subsets()
        dropdown = types.DropdownView()
        dropdown.add_choice("", label="the dataset's classes")
        for s in subsets:
            dropdown.add_choice(s, label=s)
        dropdown.add_choice(CUSTOM, label="a custom list")
        inputs.enum("classes", [""] + subsets + [CUSTOM], default=_default_subset(target),
                    label="Class list", description="pixel value = position in this list",
                    view=dropdown)
        if ctx.params.get("classes") == CUSTOM:
            inputs.str("class_list", required=True, label="Classes",
                       description="comma-separated, in pixel-value order")
        inputs.float("split_ratio", default=0.0, min=0.0, max=1.0,
                     label="Train fraction for images without a split (optional)",
                     description="splits follow the samples' split field; images without "
                                 "one go to train, or with a fraction here that share of "
                                 "source images (all tiles of one together) to train, the "
                                 "rest to val")
        inputs.int("seed", default=0, label="Split seed")
        dropdown = types.DropdownView()
        for key, label in MEDIA:
            dropdown.add_choice(key, label=label)
        inputs.enum("export_media", [m for m, _ in MEDIA], default="copy", label="Images",
                    view=dropdown)
        inputs.bool("overwrite", default=False, label="Overwrite",
                    description="allow writing into a non-empty folder: "
                                + overwrite_effect(export_dir, fmt))
        return types.Property(inputs, view=types.View(label="Export segmentation"))

    def resolve_run_name(self, ctx):
        return "export_dataset(%s)" % common.param_str(ctx, "format", "samrs")

    def _execute(self, ctx):
        common.fill_defaults(self, ctx)
        import fiftyone_samrs as fsr

        view = ctx.target_view()
        fmt = common.param_str(ctx, "format", "samrs")
        export_dir = common.output_path(ctx, "export_dir")
        if not export_dir:
            raise ValueError("choose an export folder")
        media = common.param_str(ctx, "export_media", "copy")
        export_media: Union[str, bool] = False if media == "false" else media
        label_field = common.param_str(ctx, "label_field", "sam")
        if label_field not in view.get_field_schema():
            raise ValueError("the view has no field %r" % label_field)
        classes = resolve_class_choice(ctx)
        overwrite = bool(ctx.params.get("overwrite", False))

        split_ratio = float(ctx.params.get("split_ratio") or 0.0)
        kwargs = dict(classes=classes, label_field=label_field, export_media=export_media,
                      split_ratio=split_ratio if 0.0 < split_ratio <= 1.0 else None,
                      seed=int(ctx.params.get("seed") or 0), overwrite=overwrite)

        def work(report):
            report(0.0, "exporting %d samples to %s" % (len(view), export_dir))
            progress = common.fiftyone_progress(report, 0.0, 1.0, "exported")
            if fmt == "coco":
                os.makedirs(export_dir, exist_ok=True)
                return fsr.export_coco(
                    view, os.path.join(export_dir, COCO_LABELS), progress=progress,
                    images_dir=os.path.join(export_dir, "images") if export_media else None,
                    **kwargs)
            if fmt == "yolo":
                return fsr.export_yolo(view, export_dir, progress=progress, **kwargs)
            return fsr.export_samrs(view, export_dir, progress=progress,
                                    seg_field=common.param_str(ctx, "seg_field"), **kwargs)

        result = yield from common.run_with_progress(ctx, work)
        summary = _summary(result, fmt, export_dir)
        return (yield from common.finish(ctx, self.title, summary, summary.splitlines()[0]))


def overwrite_effect(export_dir, fmt: str) -> str:
    """What Overwrite removes in ``export_dir``: only the files an earlier samrs
    export listed in its manifest (the SDK's rule)."""
    from fiftyone_samrs.exporting.common import (
        MANIFEST_NAME,
        MANIFEST_SUFFIX,
        describe_overwrite,
    )

    if not export_dir or not os.path.isdir(export_dir):
        return "only files an earlier samrs export wrote are ever removed"
    if fmt == "coco":
        manifest = os.path.join(export_dir, COCO_LABELS) + MANIFEST_SUFFIX
    else:  # the SAMRS and YOLO layouts keep theirs in the folder
        manifest = os.path.join(export_dir, MANIFEST_NAME)
    return describe_overwrite(manifest, [export_dir])


def _summary(result, fmt: str, export_dir: str) -> str:
    summary = getattr(result, "summary", None)
    text = summary() if callable(summary) else (summary or str(result))
    return "Exported (%s) to `%s`\n\n```\n%s\n```" % (fmt, export_dir, text)
