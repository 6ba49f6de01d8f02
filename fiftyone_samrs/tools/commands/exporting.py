"""``samrs export DATASET`` (SAMRS layout or COCO JSON) and ``samrs load-samrs DIR``.

Thin over :func:`fiftyone_samrs.export_samrs`, :func:`fiftyone_samrs.export_coco`
and :func:`fiftyone_samrs.load_samrs`.
"""

from __future__ import annotations

import argparse
import os
import sys

from fiftyone_samrs.core.text import plural
from fiftyone_samrs.tools.cli import add_kwargs_argument, parse_kwargs
from fiftyone_samrs.tools.commands._common import (
    add_view_tag_argument,
    fail,
    folder,
    load_dataset,
    parse_classes,
    tagged_view,
)


def parse_media(text: str):
    """``copy`` / ``symlink`` / ``move`` / ``false``."""
    value = text.lower()
    if value in ("copy", "true"):
        return True
    if value in ("false", "none", "no"):
        return False
    if value in ("symlink", "move"):
        return value
    raise argparse.ArgumentTypeError("--export-media expects copy, symlink, move or false, got %r"
                                     % text)


def execute_export(args: argparse.Namespace) -> int:
    from fiftyone_samrs.core.records import FormatError
    from fiftyone_samrs.exporting.coco_export import export_coco
    from fiftyone_samrs.exporting.samrs_export import export_samrs
    from fiftyone_samrs.exporting.yolo_export import export_yolo

    dataset = load_dataset(args.dataset)
    if dataset is None:
        return 1
    if args.subset and args.classes:
        print("error: give --subset or --classes, not both", file=sys.stderr)
        return 2
    view = tagged_view(dataset, args.view_tag)
    classes = parse_classes(args.classes) if args.classes else args.subset
    common = dict(
        label_field=args.label_field,
        export_media=args.export_media,
        classes=classes,
        unknown=args.unknown,
        overwrite=args.overwrite,
        num_workers=args.workers,
        split_ratio=args.split_ratio,
        seed=args.seed,
        progress=not args.no_progress,
    )
    coco = dict(prompt_field=args.prompt_field or None, keep_empty=args.keep_empty)
    if args.category_id_start is not None:
        coco["category_id_start"] = args.category_id_start
    try:
        if args.format == "samrs":
            kwargs = dict(common, **coco, seg_field=args.seg_field or None,
                          paint_order=args.paint_order, gray_from=args.gray_from,
                          pickles=args.pickles, color=not args.no_color)
            kwargs.update(parse_kwargs(args.kwargs))
            result = export_samrs(view, args.export_dir, **kwargs)
        elif args.format == "yolo":
            kwargs = dict(common)
            kwargs.update(parse_kwargs(args.kwargs))
            result = export_yolo(view, args.export_dir, **kwargs)
        else:
            kwargs = dict(common, **coco, images_dir=os.path.join(args.export_dir, "images"))
            kwargs.update(parse_kwargs(args.kwargs))
            result = export_coco(view, os.path.join(args.export_dir, "annotations.json"),
                                 **kwargs)
    except (ValueError, FormatError, FileExistsError, FileNotFoundError, OSError) as e:
        return fail(e)
    print(result.summary())
    return 0


def execute_load(args: argparse.Namespace) -> int:
    import fiftyone as fo

    from fiftyone_samrs.core.records import FormatError
    from fiftyone_samrs.exporting.samrs_import import load_samrs

    if args.name and fo.dataset_exists(args.name) and not args.overwrite:
        print("error: dataset %r exists; pass --overwrite to replace it" % args.name,
              file=sys.stderr)
        return 1
    try:
        dataset = load_samrs(args.dir, name=args.name, label_field=args.label_field,
                             seg_field=args.seg_field, overwrite=args.overwrite,
                             progress=not args.no_progress, allow_outside=args.allow_outside)
    except (ValueError, FormatError, FileNotFoundError, OSError) as e:
        return fail(e)
    n_obj = dataset.count("%s.detections" % args.label_field)
    print("loaded %s, %s, %s into dataset %r"
          % (plural(len(dataset), "image"), plural(n_obj, "instance"),
             plural(len(dataset.classes.get(args.label_field, [])), "class"), dataset.name))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export instance masks as the SAMRS layout, COCO instance JSON or YOLO-seg",
        description="Writes a segmented dataset as the SAMRS layout (images/, gray/ and color/ "
        "PNGs, rbbtxts/, annotations.json and annotations_<split>.json, split lists, "
        "classes.txt, palette.json, README.md, stats.json, optional pickles), as COCO instance "
        "JSON with RLE masks (annotations.json, annotations_<split>.json, images/), or in "
        "ultralytics' YOLO-seg layout (images/<split>, labels/<split>, data.yaml). Splits "
        "follow the samples' split field.",
    )
    parser.add_argument("dataset", help="the FiftyOne dataset name")
    parser.add_argument("--format", choices=("samrs", "coco", "yolo"), default="samrs",
                        help="the SAMRS layout (gray/color PNGs, COCO JSON, images), a COCO "
                             "instance JSON, or ultralytics' YOLO-seg layout")
    parser.add_argument("--export-dir", required=True, type=folder, help="the folder to write")
    parser.add_argument("--subset", default=None,
                        help="class list: SOTA, SIOR, FAST or HRSC (default: the dataset's)")
    parser.add_argument("--classes", default=None,
                        help="an explicit class list a,b,c (pixel value = position)")
    parser.add_argument("--label-field", default="sam", help="the Detections with masks")
    parser.add_argument("--seg-field", default="sam_seg", help="the Segmentation field")
    parser.add_argument("--prompt-field", default="hbb",
                        help="the prompt boxes ('' for none): prompt_bbox / pickle bbox")
    parser.add_argument("--export-media", type=parse_media, default=True,
                        metavar="copy|symlink|move|false",
                        help="how images go into images/ (false: the JSON holds absolute "
                        "paths)")
    parser.add_argument("--split-ratio", type=float, default=None,
                        help="for images without a split field: the fraction of source images "
                             "that go to train (the rest to val; all tiles of one source "
                             "image together); default: they go to train")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split")
    parser.add_argument("--paint-order", default=None, choices=("annotation", "small_last"),
                        help="default: as the segmentation run, else annotation")
    parser.add_argument("--gray-from", default="instances", choices=("instances", "seg"),
                        help="re-paint the gray PNGs from the instances, or reuse the "
                        "segmentation field's PNGs")
    parser.add_argument("--unknown", default="error", choices=("error", "ignore"),
                        help="a label outside the class list: fail, or leave it out (255)")
    parser.add_argument("--category-id-start", type=int, default=None,
                        help="id of the first COCO category (default: 0 in the SAMRS layout, "
                             "as the release and MTP; 1 in --format coco)")
    parser.add_argument("--keep-empty", action="store_true",
                        help="keep objects with empty masks in the JSON")
    parser.add_argument("--pickles", action="store_true",
                        help="also write the SAMRS release's per-image pickles")
    parser.add_argument("--no-color", action="store_true", help="no color/ PNGs")
    parser.add_argument("--workers", type=int, default=2, help="writer threads")
    add_view_tag_argument(parser)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing export in the folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_kwargs_argument(parser)
    parser.set_defaults(func=execute_export)

    load = subparsers.add_parser(
        "load-samrs",
        help="load a SAMRS-layout folder (an export) into a FiftyOne dataset",
        description="Reads annotations.json, gray/ PNGs, classes.txt and images/ of a SAMRS "
        "export into a dataset with LABEL_FIELD (instances) and SEG_FIELD (semantic).",
    )
    load.add_argument("dir", help="the export folder")
    load.add_argument("--name", default=None, help="dataset name")
    load.add_argument("--label-field", default="sam",
                      help="the Detections field to fill with the instance masks")
    load.add_argument("--seg-field", default="sam_seg",
                      help="the Segmentation field to fill with the label PNGs")
    load.add_argument("--overwrite", action="store_true", help="replace a dataset of that name")
    load.add_argument("--allow-outside", action="store_true",
                      help="accept absolute image paths in annotations.json (a labels-only "
                           "export); by default only files inside DIR/images are")
    load.add_argument("--no-progress", action="store_true", help="no progress bar")
    load.set_defaults(func=execute_load)
