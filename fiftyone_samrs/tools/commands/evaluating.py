"""``samrs evaluate``, ``samrs quality``, ``samrs plots``, ``samrs prompt-study``.

Thin verbs over :mod:`fiftyone_samrs.evaluating.evaluation`, :mod:`fiftyone_samrs.evaluating.quality`,
:mod:`fiftyone_samrs.evaluating.qa`, :mod:`fiftyone_samrs.evaluating.plots` and
:mod:`fiftyone_samrs.evaluating.study`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from fiftyone_samrs.tools.cli import add_kwargs_argument, parse_kwargs
from fiftyone_samrs.tools.commands._common import (
    add_view_tag_argument,
    fail,
    fraction,
    load_dataset,
    positive_int,
    tagged_view,
)
from fiftyone_samrs.tools.commands.segmenting import backend_choices, backend_help


def _save_views(dataset, eval_key: str, low_iou: float, n_worst: int) -> None:
    from fiftyone_samrs.evaluating.qa import qa_summary, save_qa_views

    saved = save_qa_views(dataset, eval_key=eval_key, low_iou=low_iou, n_worst=n_worst)
    print(qa_summary(saved, dataset, eval_key=eval_key, low_iou=low_iou))


def execute_evaluate(args: argparse.Namespace) -> int:
    from fiftyone_samrs.evaluating.evaluation import evaluate

    dataset = load_dataset(args.dataset)
    if dataset is None:
        return 1
    kwargs = dict(pred_field=args.pred_field, gt_field=args.gt_field, eval_key=args.eval_key,
                  protocol=args.protocol, progress=not args.no_progress)
    kwargs.update(parse_kwargs(args.kwargs))
    try:
        results = evaluate(tagged_view(dataset, args.view_tag), **kwargs)
    except ValueError as e:
        return fail(e)
    print(results.summary())
    if not args.no_views:
        _save_views(dataset, args.eval_key, args.low_iou, args.worst)
    if args.plots:
        from fiftyone_samrs.evaluating.plots import write_plots

        for path in write_plots(dataset, args.eval_key, args.plots):
            print("wrote %s" % path)
    return 0


def _parse_thresholds(pairs) -> Optional[dict]:
    if not pairs:
        return None
    out = parse_kwargs(pairs)
    for k, v in out.items():
        if isinstance(v, str) and v.lower() == "none":
            out[k] = None
    return out


def execute_quality(args: argparse.Namespace) -> int:
    from fiftyone_samrs.evaluating.quality import compute_quality

    dataset = load_dataset(args.dataset)
    if dataset is None:
        return 1
    try:
        report = compute_quality(tagged_view(dataset, args.view_tag), pred_field=args.pred_field,
                                 box_field=args.box_field, obb_field=args.obb_field or None,
                                 thresholds=_parse_thresholds(args.threshold),
                                 progress=not args.no_progress)
    except (ValueError, TypeError) as e:
        return fail(e)
    print(report.summary())
    if not args.no_views:
        _save_views(dataset, args.eval_key, args.low_iou, args.worst)
    return 0


def execute_plots(args: argparse.Namespace) -> int:
    from fiftyone_samrs.evaluating.plots import write_plots

    dataset = load_dataset(args.dataset)
    if dataset is None:
        return 1
    if args.eval_key not in dataset.list_evaluations():
        print("error: dataset %r has no evaluation %r (run `samrs evaluate %s` first; "
              "evaluations: %s)" % (args.dataset, args.eval_key, args.dataset,
                                    ", ".join(dataset.list_evaluations()) or "none"),
              file=sys.stderr)
        return 1
    try:
        paths = write_plots(dataset, args.eval_key, args.out)
    except ValueError as e:
        return fail(e)
    for path in paths:
        print("wrote %s" % path)
    return 0


def execute_study(args: argparse.Namespace) -> int:
    from fiftyone_samrs.core.records import FormatError
    from fiftyone_samrs.evaluating.study import prompt_study

    dataset = load_dataset(args.dataset)
    if dataset is None:
        return 1
    configs = [c.strip() for c in args.configs.split(",") if c.strip()] if args.configs else None
    kwargs = dict(backend=args.backend, model=args.model, checkpoint=args.checkpoint,
                  gt_field=args.gt_field, box_field=args.box_field,
                  obb_field=args.obb_field or None, configs=configs, protocol=args.protocol,
                  out_dir=args.out, margin=args.margin, device=args.device,
                  progress=not args.no_progress)
    kwargs.update(parse_kwargs(args.kwargs))
    try:
        result = prompt_study(tagged_view(dataset, args.view_tag), **kwargs)
    except (ValueError, FormatError, FileNotFoundError, OSError) as e:
        return fail(e)
    print(result.to_markdown())
    for path in result.files:
        print("wrote %s" % path)
    return 0


def _margin(text: str):
    return None if text.lower() in ("none", "full", "") else float(text)


def _common_options(parser, eval_key=True) -> None:
    if eval_key:
        parser.add_argument("--eval-key", default="eval",
                            help="evaluation key (names the run and the fields)")
    add_view_tag_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _qa_options(parser) -> None:
    parser.add_argument("--low-iou", type=fraction, default=0.5,
                        help="IoU threshold of the low_iou view and tag (default 0.5)")
    parser.add_argument("--worst", type=positive_int, default=50,
                        help="size of the worst_samples view (default 50)")
    parser.add_argument("--no-views", action="store_true",
                        help="do not save QA views or tag samples")


def execute_stats(args: argparse.Namespace) -> int:
    from fiftyone_samrs.evaluating.stats import dataset_stats
    from fiftyone_samrs.tools.commands._common import parse_classes

    dataset = load_dataset(args.dataset)
    if dataset is None:
        return 1
    try:
        stats = dataset_stats(tagged_view(dataset, args.view_tag), label_field=args.label_field,
                              classes=parse_classes(args.classes),
                              progress=not args.no_progress)
    except ValueError as e:
        return fail(e)
    print(stats.to_markdown(), end="")
    if args.out:
        for path in stats.write(args.out):
            print("wrote %s" % path)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="mIoU_I / mIoU_P of predicted masks against ground-truth masks; saves QA views",
        description="Compares PRED_FIELD masks with GT_FIELD masks (matched by obj_index, "
        "else by mask IoU), stores per-instance and per-sample IoU and an evaluation run, "
        "prints the dataset and per-class mIoU_I / mIoU_P, and saves the saved views "
        "low_iou, suspicious_masks (after `samrs quality`) and worst_samples.",
    )
    p.add_argument("dataset", help="the FiftyOne dataset name")
    p.add_argument("--pred-field", default="sam", help="predicted Detections (masks)")
    p.add_argument("--gt-field", default="gt_masks", help="ground-truth Detections (masks)")
    p.add_argument("--protocol", action="store_true",
                   help="the paper's protocol: HRSC test images whose every ship has a mask")
    p.add_argument("--plots", default=None, metavar="DIR", help="also write the plots to DIR")
    _common_options(p)
    _qa_options(p)
    add_kwargs_argument(p)
    p.set_defaults(func=execute_evaluate)

    p = subparsers.add_parser(
        "quality",
        help="mask-quality signals and suspicious flags where no ground truth exists",
        description="Stores per-instance signals (area ratio, box IoU, fraction inside the "
        "rotated box) and per-sample worst values, flags suspicious masks, and saves the QA "
        "views. Thresholds: -t min_confidence=0.8 max_area_ratio=none ...",
    )
    p.add_argument("dataset", help="the FiftyOne dataset name")
    p.add_argument("--pred-field", default="sam", help="predicted Detections (masks)")
    p.add_argument("--box-field", default="hbb", help="prompt boxes (Detections)")
    p.add_argument("--obb-field", default="obb", help="rotated boxes (Polylines; '' for none)")
    p.add_argument("-t", "--threshold", nargs="+", metavar="KEY=VAL",
                   help="suspicious-rule thresholds: min_confidence, min_stability, "
                   "min_area_ratio, max_area_ratio, min_box_iou, min_in_rbox (none = off)")
    _common_options(p)
    _qa_options(p)
    p.set_defaults(func=execute_quality)

    p = subparsers.add_parser(
        "plots",
        help="write the evaluation plots (IoU histogram, per-class mIoU, IoU vs size) as PNG",
    )
    p.add_argument("dataset", help="the FiftyOne dataset name")
    p.add_argument("--eval-key", default="eval", help="the evaluation to plot")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=execute_plots)

    p = subparsers.add_parser(
        "stats",
        help="pixels and instances per class and the mask-size distribution (SAMRS Figs. 5-6)",
        description="The paper's dataset statistics of a segmented field: per class the "
                    "number of instances and of mask pixels (the sum of instance areas, as "
                    "the release's statistic.py), and the mask sizes; --out writes stats.json, "
                    "stats.md and the plots.",
    )
    p.add_argument("dataset", help="the FiftyOne dataset name")
    p.add_argument("--label-field", default="sam", help="the Detections field with masks")
    p.add_argument("--classes", default=None,
                   help="SOTA, SIOR, FAST, HRSC or a,b,c (default: the segmentation's)")
    p.add_argument("--out", default=None, metavar="DIR", help="write the JSON, table and plots")
    add_view_tag_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=execute_stats)

    p = subparsers.add_parser(
        "prompt-study",
        help="the paper's prompt study (Table 1) on a dataset with ground-truth masks",
        description="Runs every prompt configuration of the SAMRS paper's Table 1 (plus the "
        "clip-to-rotated-box refinement and the grabcut/boxfill baselines), encoding each "
        "image once, and writes study.md, study.csv and study.png to --out, with the "
        "paper's numbers beside them for HRSC2016.",
    )
    p.add_argument("dataset", help="the FiftyOne dataset name")
    p.add_argument("--checkpoint", default=None,
                   help="a local checkpoint of the backend (SAM / HQ-SAM .pth, SAM 2 .pt)")
    p.add_argument("--model", default=None,
                   help="vit_b, vit_l, vit_h, a zoo name (SAM 2.1: "
                   "segment-anything-2.1-hiera-tiny-image-torch...), a SAM 2 config .yaml, "
                   "tiny (random), or samrs-tiny (a stand-in trained on generated scenes, for "
                   "demos and tests, not for real data)")
    p.add_argument("--backend", default="sam", choices=backend_choices(),
                   help=backend_help("what runs the SAM prompt rows"))
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--configs", default=None,
                   help="comma-separated configurations (default: Table 1 + extras)")
    p.add_argument("--gt-field", default="gt_masks", help="ground-truth Detections (masks)")
    p.add_argument("--box-field", default="hbb", help="prompt boxes (Detections)")
    p.add_argument("--obb-field", default="obb", help="rotated boxes (Polylines; '' for none)")
    p.add_argument("--protocol", action="store_true",
                   help="the paper's protocol: HRSC test images whose every ship has a mask")
    p.add_argument("--margin", type=_margin, default=None,
                   help="mask region margin (fraction of the box; default none = whole image)")
    p.add_argument("--device", default=None, help="cuda, mps, cpu (default: auto)")
    _common_options(p, eval_key=False)
    add_kwargs_argument(p)
    p.set_defaults(func=execute_study)
