"""``samrs import`` and ``samrs tile``: source datasets into FiftyOne, and tiling.

Examples::

    samrs import dota /data/DOTA/val --name dota-val -k version=1.0
    samrs import hrsc /data/HRSC2016 --name hrsc --split test
    samrs import dota /data/DOTA/train --name dota-train --tile --size 1024 --gap 200
    samrs tile fair1m /data/FAIR1M /data/FAIR1M-tiles --names release

Both verbs are thin calls into :mod:`fiftyone_samrs.importing.importers` and
:mod:`fiftyone_samrs.importing.tiling`; they print the import summary (images,
objects, skips and warnings by kind).
"""

from __future__ import annotations

import argparse
import os
from typing import Iterable, List

from fiftyone_samrs.core.text import plural
from fiftyone_samrs.formats.registry import FORMATS, get_format
from fiftyone_samrs.tools.commands._common import fail


def _per_format(attr: str) -> str:
    return ", ".join("%s %s" % (name, getattr(spec.tiling, attr))
                     for name, spec in FORMATS.items())


def _format_args(parser: argparse.ArgumentParser) -> None:
    """The source format and folder, the split and the tiling settings."""
    parser.add_argument("format", choices=tuple(FORMATS), help="source format")
    parser.add_argument("dataset_dir", help="the source dataset's root folder")


def _common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", default=None,
                        help="only this split (%s)" % "; ".join(
                            "%s: %s" % (n, ", ".join(s.splits)) for n, s in FORMATS.items()))
    parser.add_argument("--size", type=int, default=None,
                        help="tile size in pixels (default: %s)" % _per_format("size"))
    parser.add_argument("--gap", type=int, default=None,
                        help="overlap between tiles in pixels (default: %s)" % _per_format("gap"))
    parser.add_argument("--keep-thresh", type=float, default=None,
                        help="keep an object in a tile when intersection / object area >= this "
                             "(default: %s)" % _per_format("keep_thresh"))


def _options_help() -> str:
    lines = []
    for name, spec in FORMATS.items():
        for o in spec.options:
            lines.append("%s: %s=%r (%s)" % (name, o.name, o.default, o.help))
    return "; ".join(lines)


def execute_import(args: argparse.Namespace) -> int:
    from fiftyone_samrs.core.records import FormatError
    from fiftyone_samrs.importing.importers import load_format
    from fiftyone_samrs.importing.report import import_report
    from fiftyone_samrs.tools.cli import parse_kwargs

    kwargs = parse_kwargs(args.kwargs)
    if args.allow_empty:
        kwargs["allow_empty"] = True
    if args.no_previews:
        kwargs["previews"] = False
    if args.preview_dir:
        kwargs["preview_dir"] = args.preview_dir
    if args.tile:
        kwargs.update(tile=True, tile_dir=args.tile_dir, tile_size=args.size, gap=args.gap,
                      keep_thresh=args.keep_thresh)
    try:
        dataset = load_format(
            args.format, args.dataset_dir, name=args.name, split=args.split,
            overwrite=args.overwrite, persistent=not args.temporary, progress=not args.quiet,
            check_images=args.check_images, resume=args.resume, **kwargs)
    except (FormatError, ValueError, TypeError) as e:
        return fail(e)
    report = import_report(dataset)
    info = dataset.info["samrs"]["import_report"]
    print("Imported %s from %s into dataset %r" % (args.format.upper(), args.dataset_dir,
                                                   dataset.name))
    lines = report.summary(max_messages=args.max_messages).split("\n")
    lines[0] = info["summary"].split("\n")[0]  # keeps the tiles' source counts
    if info["num_messages"] > len(info["messages"]):
        lines.append("  (%d messages in all; the first %d are in dataset.info['samrs'])"
                     % (info["num_messages"], len(info["messages"])))
    print("\n".join(lines))
    return 0


def _dota_line(obj) -> str:
    import numpy as np

    if obj.quad is not None:
        q = np.asarray(obj.quad, dtype=np.float64).reshape(-1, 2)
    else:
        x0, y0, x1, y1 = obj.hbox
        q = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
    coords = " ".join("%g" % v for v in q.reshape(-1))
    # kept parts keep their flag, as the DOTA devkit writes them (it writes 2
    # only for parts below the keep threshold, which are not kept here)
    difficult = 0 if obj.difficult is None else int(obj.difficult)
    return "%s %s %d" % (coords, obj.label.replace(" ", "-"), difficult)


def write_dota_labels(records: Iterable, label_dir: str) -> Iterable:
    """Writes a DOTA ``labelTxt`` file per tile record and passes the records on.

    Header lines: ``imagesource``, ``gsd``, ``tile_source`` and ``tile_offset``
    (``x,y``); then one ``x1 y1 ... x4 y4 class difficult`` line per object
    (the H-Box corners where there is no quad; ``difficult`` as the source
    had it, as the devkit writes the parts it keeps).
    """
    os.makedirs(label_dir, exist_ok=True)
    for record in records:
        stem = os.path.splitext(os.path.basename(record.filepath))[0]
        lines: List[str] = []
        if record.imagesource:
            lines.append("imagesource:%s" % record.imagesource)
        lines.append("gsd:%s" % ("null" if record.gsd is None else record.gsd))
        if record.tile:
            lines.append("tile_source:%s" % record.tile.get("source_image"))
            lines.append("tile_offset:%d,%d" % (record.tile.get("x"), record.tile.get("y")))
        lines.extend(_dota_line(o) for o in record.objects)
        with open(os.path.join(label_dir, stem + ".txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        yield record


def execute_tile(args: argparse.Namespace) -> int:
    from fiftyone_samrs.core.records import FormatError, ImportReport
    from fiftyone_samrs.importing import tiling
    from fiftyone_samrs.tools.cli import parse_kwargs

    kwargs = parse_kwargs(args.kwargs)
    spec = get_format(args.format)
    size = args.size if args.size is not None else spec.tiling.size
    gap = args.gap if args.gap is not None else spec.tiling.gap
    keep = args.keep_thresh if args.keep_thresh is not None else spec.tiling.keep_thresh
    report = ImportReport()
    images_dir = os.path.join(args.out_dir, "images")
    tile_kwargs = {k: kwargs.pop(k) for k in ("skip_empty", "pad", "pad_value", "names", "ext",
                                              "workers")
                   if k in kwargs}
    unlabeled = kwargs.pop("unlabeled", "skip")
    try:
        records = spec.scan(args.dataset_dir, split=spec.check_split(args.split),
                            unlabeled=unlabeled, report=report, **spec.check_options(kwargs))
        tiles = tiling.tile_images(records, images_dir, size=size, gap=gap, keep_thresh=keep,
                                   report=report, **tile_kwargs)
        n_tiles = n_objects = 0
        for record in write_dota_labels(tiles, os.path.join(args.out_dir, "labelTxt")):
            n_tiles += 1
            n_objects += len(record.objects)
    except (FormatError, ValueError, TypeError) as e:
        return fail(e)
    print("Tiled %s from %s into %s (size %d, gap %d, keep threshold %g)"
          % (args.format.upper(), args.dataset_dir, args.out_dir, size, gap, keep))
    print("%s, %s in tiles (images/ and DOTA-style labelTxt/)"
          % (plural(n_tiles, "tile"), plural(n_objects, "object")))
    print("source: " + report.summary(max_messages=args.max_messages))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "import", help="import a DOTA, DIOR, FAIR1M or HRSC2016 tree into a FiftyOne dataset",
        description="Import a source dataset into FiftyOne (hbb, obb, gt_masks fields) and "
                    "print the import summary. Extra SDK options go in -k key=value: "
                    "unlabeled=keep, and per format " + _options_help() + ".",
    )
    _format_args(p)
    p.add_argument("--name", "-n", required=True, help="FiftyOne dataset name")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.add_argument("--resume", action="store_true",
                   help="continue an import into NAME that did not finish (it was killed); "
                        "the samples already imported are kept")
    p.add_argument("--temporary", action="store_true", help="do not make the dataset persistent")
    p.add_argument("--check-images", action="store_true",
                   help="decode-check every image and skip (counted) undecodable ones; reads "
                        "every image in full, so it is several times slower than the import")
    p.add_argument("--allow-empty", action="store_true",
                   help="accept an import that finds no image (otherwise an error: exit code "
                        "1 and no dataset)")
    p.add_argument("--no-previews", action="store_true",
                   help="no JPEG previews for images browsers cannot show (TIFF: FAIR1M); "
                        "by default the App shows such previews (preview_path) and filepath "
                        "keeps the original")
    p.add_argument("--preview-dir", default=None,
                   help="where previews go (default <fiftyone dataset dir>/<name>/previews)")
    p.add_argument("--tile", action="store_true", help="tile large images first")
    p.add_argument("--tile-dir", default=None,
                   help="where tiles go (default <fiftyone dataset dir>/<name>/tiles)")
    _common_args(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.add_argument("--max-messages", type=int, default=10,
                   help="how many skip/warning messages to print")
    from fiftyone_samrs.tools.cli import add_kwargs_argument

    add_kwargs_argument(p)
    p.set_defaults(func=execute_import)

    t = subparsers.add_parser(
        "tile", help="cut a source dataset's images into tiles (DOTA devkit style)",
        description="Write tiles of every image as image files in OUT_DIR/images and their "
                    "objects as DOTA-style label files in OUT_DIR/labelTxt. Resumable: tiles "
                    "that exist are not written again. -k passes scan options (unlabeled=, "
                    + _options_help() + ") and tiling options (skip_empty=, pad=, pad_value=, "
                    "names=release, ext=, "
                    "workers=).",
    )
    _format_args(t)
    t.add_argument("out_dir", help="output folder")
    _common_args(t)
    t.add_argument("--max-messages", type=int, default=10,
                   help="how many skip/warning messages to print")
    from fiftyone_samrs.tools.cli import add_kwargs_argument

    add_kwargs_argument(t)
    t.set_defaults(func=execute_tile)
