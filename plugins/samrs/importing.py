"""``import_dataset``: a DOTA / DIOR / FAIR1M / HRSC2016 folder into a new dataset (``fsr.load_*``)."""

from __future__ import annotations

import os
from typing import Any, Dict

import fiftyone as fo
import fiftyone.operators.types as types

from fiftyone_samrs.formats.registry import FORMATS, get_format

from . import common

#: how a format option's value shows in the form: None as "auto"
_AUTO = "auto"


def _option_param(fmt: str, name: str) -> str:
    return "%s_%s" % (fmt, name)


def import_kwargs(ctx) -> Dict[str, Any]:
    """The :func:`fiftyone_samrs.importing.importers.load_format` keyword
    arguments chosen in the form (the format's registry entry decides which)."""
    spec = get_format(common.param_str(ctx, "format", "dota"))
    kwargs: Dict[str, Any] = {
        "name": common.param_str(ctx, "name"),
        "overwrite": bool(ctx.params.get("overwrite", False)),
    }
    split = common.param_str(ctx, "split")
    if split:
        kwargs["split"] = split
    for o in spec.options:
        value = ctx.params.get(_option_param(spec.name, o.name), o.default)
        kwargs[o.name] = None if value == _AUTO else value
    if bool(ctx.params.get("tile", False)):
        kwargs["tile"] = True
        for key, cast in (("tile_size", int), ("gap", int), ("keep_thresh", float)):
            value = ctx.params.get(key)
            if value not in (None, ""):
                kwargs[key] = cast(value)
    return kwargs


class ImportDataset(common.SamrsOperator):
    """Imports a remote-sensing detection dataset from a folder on the server."""

    title = "Import"
    view_target = False

    @property
    def config(self):
        return common.operator_config(
            "import_dataset", "SAMRS: Import dataset",
            "Import a DOTA, DIOR, FAIR1M or HRSC2016 folder (optionally tiled)",
            "drive_folder_upload")

    def resolve_input(self, ctx):
        inputs = types.Object()
        dropdown = types.DropdownView()
        for key, spec in FORMATS.items():
            dropdown.add_choice(key, label=spec.title, description=spec.layout)
        inputs.enum("format", list(FORMATS), default="dota", required=False,
                    label="Format", description="the layout of the source folder",
                    view=dropdown)
        fmt = ctx.params.get("format") or "dota"
        spec = get_format(fmt)

        common.folder_input(
            ctx, inputs, "dataset_dir", label="Dataset folder",
            description="the dataset root on the server (e.g. DOTA: the folder with images/ "
                        "and labelTxt/)")
        folder = common.param_path(ctx, "dataset_dir")
        if folder and not os.path.isdir(folder):
            inputs.view("dir_error", types.Error(label="Not a folder on the server",
                                                 description=folder))

        default_name = os.path.basename(folder.rstrip(os.sep)) if folder else None
        name_prop = inputs.str("name", default=default_name, required=True,
                               label="Dataset name", description="name of the new dataset")
        name = common.param_str(ctx, "name") or default_name
        overwrite = bool(ctx.params.get("overwrite", False))
        if name and fo.dataset_exists(name) and not overwrite:
            name_prop.invalid = True
            name_prop.error_message = ("a dataset named %r exists: choose another name or "
                                       "check Overwrite" % name)
        inputs.bool("overwrite", default=False, label="Overwrite",
                    description="replace an existing dataset of that name")
        splits = types.DropdownView()
        splits.add_choice("", label="all")
        for split in spec.splits:
            splits.add_choice(split, label=split)
        inputs.enum("split", [""] + list(spec.splits), default="", required=False,
                    label="Split", description="import only this split", view=splits)
        for o in spec.options:
            if isinstance(o.default, bool):
                inputs.bool(_option_param(fmt, o.name), default=o.default, label=o.label,
                            description=o.help)
            else:
                values = [_AUTO if v is None else v for v in o.choices]
                inputs.enum(_option_param(fmt, o.name), values,
                            default=_AUTO if o.default is None else o.default,
                            label=o.label, description=o.help, view=types.DropdownView())

        tile = bool(ctx.params.get("tile", False))
        inputs.bool("tile", default=False, label="Tile large images",
                    description="cut images into overlapping windows as SAMRS did "
                                "(objects clipped, kept when enough of them is inside)")
        if tile:
            inputs.int("tile_size", default=spec.tiling.size, min=64, label="Tile size (px)")
            inputs.int("gap", default=spec.tiling.gap, min=0, label="Overlap (px)")
            inputs.float("keep_thresh", default=spec.tiling.keep_thresh, min=0.0, max=1.0,
                         label="Keep threshold",
                         description="keep a clipped object when this fraction of it is inside")
        return types.Property(inputs, view=types.View(label="Import a remote-sensing dataset"))

    def resolve_run_name(self, ctx):
        return "import_dataset(%s)" % (common.param_str(ctx, "name") or
                                       common.param_str(ctx, "format", "dota"))

    def _execute(self, ctx):
        common.fill_defaults(self, ctx)
        from fiftyone_samrs.importing.importers import load_format

        fmt = get_format(common.param_str(ctx, "format", "dota")).name
        folder = common.param_path(ctx, "dataset_dir")
        if not folder or not os.path.isdir(folder):
            raise ValueError("dataset folder %r does not exist on the server" % folder)
        kwargs = import_kwargs(ctx)
        if not kwargs["name"]:
            kwargs["name"] = os.path.basename(folder.rstrip(os.sep))

        def work(report):
            report(0.0, "importing %s from %s" % (fmt, folder))
            return load_format(fmt, folder, progress=False, **kwargs)

        dataset = yield from common.run_with_progress(ctx, work)
        info = (dataset.info or {}).get("samrs", {})
        report_dict = info.get("import_report") or {}
        summary = "Imported %d samples into **%s**" % (len(dataset), dataset.name)
        details = _report_markdown(report_dict)
        triggers = [ctx.ops.open_dataset(dataset.name)] if not ctx.delegated else []
        return (yield from common.finish(ctx, self.title, summary + "\n\n" + details,
                                         summary.replace("**", ""), triggers))


def _report_markdown(report: Dict[str, Any]) -> str:
    """The import report (``dataset.info["samrs"]["import_report"]``) as Markdown."""
    if not report:
        return ""
    lines = []
    for key in ("images", "objects"):
        if key in report:
            lines.append("- %s: %s" % (key, report[key]))
    for key in ("skipped", "warned", "warnings"):
        counts = report.get(key)
        if counts:
            lines.append("- %s: %s" % (key, ", ".join("%s %s" % (n, k)
                                                     for k, n in sorted(counts.items()))))
    messages = report.get("messages") or []
    for msg in messages[:10]:
        lines.append("  - %s" % msg)
    if len(messages) > 10:
        lines.append("  - ... and %d more" % (len(messages) - 10))
    return "\n".join(lines)
