"""``samrs resegment`` and ``samrs decide``: thin verbs over
:mod:`fiftyone_samrs.evaluating.review`."""

from __future__ import annotations

import argparse

from fiftyone_samrs.tools.commands._common import (
    add_view_tag_argument,
    fail,
    load_dataset,
    tagged_view,
)
from fiftyone_samrs.tools.commands.segmenting import backend_choices, backend_help


def _view(dataset, args):
    view = dataset.load_saved_view(args.saved_view) if args.saved_view else dataset
    return tagged_view(view, args.view_tag)


def execute_resegment(args: argparse.Namespace) -> int:
    from fiftyone_samrs.evaluating.review import DEFAULT_ALTERNATIVES, resegment

    dataset = load_dataset(args.dataset)
    if dataset is None:
        return 1
    names = ([n.strip() for n in args.alternatives.split(",") if n.strip()]
             if args.alternatives else list(DEFAULT_ALTERNATIVES))
    try:
        res = resegment(_view(dataset, args), label_ids=args.label_id or None, alternatives=names,
                        label_field=args.label_field, backend=args.backend, model=args.model,
                        checkpoint=args.checkpoint, device=args.device,
                        replace_best=args.replace_best, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as e:
        return fail(e)
    print("%d alternatives for %d labels in %r (%d images encoded)"
          % (res.alternatives, res.labels, res.field, res.images))
    if res.replaced:
        print("first pass: %d labels replaced by their best alternative (review "
              "'auto-replaced'), %d semantic PNGs repainted" % (res.replaced, res.repainted))
    for why, n in sorted(res.skipped.items()):
        print("  skipped %d: %s" % (n, why))
    return 0


def execute_decide(args: argparse.Namespace) -> int:
    from fiftyone_samrs.evaluating.review import decide

    dataset = load_dataset(args.dataset)
    if dataset is None:
        return 1
    try:
        res = decide(dataset, args.label_ids, args.action, alternative=args.alternative,
                     label_field=args.label_field, user=args.user)
    except ValueError as e:
        return fail(e)
    print("%s: %d labels, %d semantic PNGs repainted" % (args.action, res.decided,
                                                          res.repainted))
    if res.missing:
        return fail("no label %s in %r" % (", ".join(res.missing), args.label_field))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "resegment",
        help="alternative masks for chosen labels (SAM's three, other prompts, GrabCut, box)",
        description="Computes alternative masks for labels of LABEL_FIELD (all labels of the "
        "view, or --label-id ones) and stores them in <label field>_alternatives, each "
        "image encoded once; then `samrs decide` takes one.",
    )
    p.add_argument("dataset", help="the FiftyOne dataset name")
    p.add_argument("--saved-view", default=None, metavar="NAME",
                   help="only the samples of this saved view (e.g. low_iou)")
    p.add_argument("--label-id", action="append", default=None, metavar="ID",
                   help="only this label (repeatable)")
    p.add_argument("--alternatives", default=None, metavar="A,B",
                   help="multimask, rhbox, hbox+cp, hbox+clip_rbox, grabcut, box (default: "
                   "all of these) or any prompt-study configuration")
    p.add_argument("--label-field", default="sam", help="the segmented Detections")
    p.add_argument("--backend", default=None, choices=backend_choices(),
                   help=backend_help("what computes the SAM alternatives (default: the "
                                     "model of the run that wrote the field)"))
    p.add_argument("--model", default=None, help="as `samrs segment --model`")
    p.add_argument("--checkpoint", default=None, help="a local checkpoint")
    p.add_argument("--device", default=None, help="cuda, cpu... (default: auto)")
    p.add_argument("--replace-best", action="store_true",
                   help="first pass: replace each label by its alternative of best predicted "
                   "IoU where that beats its own (recorded auto-replaced; off by default: "
                   "it did not help on every generated scene set measured)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_view_tag_argument(p)
    p.set_defaults(func=execute_resegment)

    p = subparsers.add_parser(
        "decide",
        help="accept, replace (by an alternative) or reject labels after review",
        description="Records the decision on each label, swaps in the alternative for "
        "replace (default: the best predicted IoU), repaints the semantic PNGs; rejected "
        "instances are left out of every export (255 in gray/).",
    )
    p.add_argument("dataset", help="the FiftyOne dataset name")
    p.add_argument("label_ids", nargs="+", metavar="LABEL_ID", help="the labels")
    p.add_argument("--action", default="replace", choices=("accept", "replace", "reject"),
                   help="the decision (default: replace)")
    p.add_argument("--alternative", default="best",
                   help="for replace: an alternative's name (multimask_1, grabcut...) or best")
    p.add_argument("--label-field", default="sam", help="the segmented Detections")
    p.add_argument("--user", default=None, help="who decided (recorded on the labels)")
    p.set_defaults(func=execute_decide)
