"""``import_dataset``: a DOTA / DIOR / FAIR1M / HRSC2016 folder into a new dataset (``fsr.load_*``)."""

from __future__ import annotations

import inspect
import os
from typing import Any, Dict

import fiftyone as fo
import fiftyone.operators.types as types

from . import common

FORMATS = [
    ("dota", "DOTA (v1.0 / v1.5 / v2.0)", "load_dota"),
    ("dior", "DIOR / DIOR-R", "load_dior"),
    ("fair1m", "FAIR1M (1.0 / 2.0)", "load_fair1m"),
    ("hrsc", "HRSC2016", "load_hrsc"),
]
LOADERS = {key: fn for key, _, fn in FORMATS}
#: formats tiled by default (FAIR1M images are large; SAMRS cut them to 1024 px)
TILE_BY_DEFAULT = {"fair1m"}


def import_kwargs(ctx) -> Dict[str, Any]:
    """The ``load_*`` keyword arguments chosen in the form."""
    fmt = common.param_str(ctx, "format", "dota")
    kwargs: Dict[str, Any] = {
        "name": common.param_str(ctx, "name"),
        "overwrite": bool(ctx.params.get("overwrite", False)),
    }
    split = common.param_str(ctx, "split")
    if split:
        kwargs["split"] = split
    if fmt == "dota":
        version = common.param_str(ctx, "version", "auto")
        if version != "auto":
            kwargs["version"] = version
    if fmt == "hrsc":
        kwargs["with_masks"] = bool(ctx.params.get("with_masks", True))
    if bool(ctx.params.get("tile", fmt in TILE_BY_DEFAULT)):
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
            "drive_folder_upload", default_choice_to_delegated=False, view_target=False)

    def resolve_input(self, ctx):
        inputs = types.Object()
        dropdown = types.DropdownView()
        for key, label, _ in FORMATS:
            dropdown.add_choice(key, label=label)
        inputs.enum("format", [f[0] for f in FORMATS], default="dota", required=False,
                    label="Format", description="the layout of the source folder",
                    view=dropdown)
        fmt = ctx.params.get("format") or "dota"

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
        inputs.str("split", required=False, label="Split (optional)",
                   description="import only this split (train / val / test); empty = all")
        if fmt == "dota":
            inputs.enum("version", ["auto", "1.0", "1.5", "2.0"], default="auto",
                        label="DOTA version", view=types.DropdownView())
        if fmt == "hrsc":
            inputs.bool("with_masks", default=True, label="Import GT masks",
                        description="the ship masks of HRSC2016's Segmentations folder")

        tile = bool(ctx.params.get("tile", fmt in TILE_BY_DEFAULT))
        inputs.bool("tile", default=fmt in TILE_BY_DEFAULT, label="Tile large images",
                    description="cut images into overlapping windows as SAMRS did "
                                "(objects clipped, kept when enough of them is inside)")
        if tile:
            inputs.int("tile_size", default=1024, min=64, label="Tile size (px)")
            inputs.int("gap", default=200, min=0, label="Overlap (px)")
            inputs.float("keep_thresh", default=0.7, min=0.0, max=1.0,
                         label="Keep threshold",
                         description="keep a clipped object when this fraction of it is inside")
        common.add_execution_mode(
            ctx, inputs, default_delegate=self.default_delegate,
            description="Queue the import for a delegated-operation worker (`fiftyone "
                        "delegated launch`) instead of running it now in the App")
        return types.Property(inputs, view=types.View(label="Import a remote-sensing dataset"))

    def resolve_run_name(self, ctx):
        return "import_dataset(%s)" % (common.param_str(ctx, "name") or
                                       common.param_str(ctx, "format", "dota"))

    def _execute(self, ctx):
        common.fill_defaults(self, ctx)
        import fiftyone_samrs as fsr

        fmt = common.param_str(ctx, "format", "dota")
        if fmt not in LOADERS:
            raise ValueError("unknown format %r; choose one of %s" % (fmt, ", ".join(LOADERS)))
        folder = common.param_path(ctx, "dataset_dir")
        if not folder or not os.path.isdir(folder):
            raise ValueError("dataset folder %r does not exist on the server" % folder)
        kwargs = import_kwargs(ctx)
        if not kwargs["name"]:
            kwargs["name"] = os.path.basename(folder.rstrip(os.sep))
        loader = getattr(fsr, LOADERS[fmt])
        accepted = inspect.signature(loader).parameters
        takes_any = any(p.kind == p.VAR_KEYWORD for p in accepted.values())
        if kwargs.get("tile") and "tile" not in accepted and not takes_any:
            raise ValueError("tiling is not available for %s" % fmt)

        def work(report):
            report(0.0, "importing %s from %s" % (fmt, folder))
            return loader(folder, progress=False, **kwargs)

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
