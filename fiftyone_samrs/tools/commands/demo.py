"""``samrs demo``: the whole job end to end on generated data (see :mod:`fiftyone_samrs.tools.demo`)."""

from __future__ import annotations

import argparse


def execute(args: argparse.Namespace) -> int:
    from fiftyone_samrs.tools.commands._common import fail
    from fiftyone_samrs.tools.demo import prepare_out_dir, run_demo

    try:
        prepare_out_dir(args.out_dir)
    except FileExistsError as e:
        return fail(e)
    run_demo(
        out_dir=args.out_dir,
        checkpoint=args.checkpoint,
        model=args.model,
        n_images=args.images,
        n_objects=args.objects,
        seed=args.seed,
        name=args.name,
    )
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="generate a small DOTA tree and run import, SAM, evaluation and export on it"
    )
    parser.add_argument("--out-dir", default="demo-output",
                        help="where outputs go: a new or empty folder, or one an earlier demo "
                        "made (a non-empty folder of other files is refused, never cleared)")
    parser.add_argument("--checkpoint", default=None,
                        help="SAM checkpoint (default: $SAMRS_CHECKPOINT, else the model "
                             "samrs-tiny, a stand-in trained on generated scenes, for demos "
                             "and tests, not for real data)")
    parser.add_argument("--model", default=None,
                        help="SAM model type or zoo name (vit_b, vit_l, vit_h, samrs-tiny); "
                             "default: read from --checkpoint, else samrs-tiny")
    parser.add_argument("--images", type=int, default=6, help="generated images")
    parser.add_argument("--objects", type=int, default=15, help="objects per image")
    parser.add_argument("--seed", type=int, default=0,
                        help="generator seed (samrs-tiny never saw these scenes in training)")
    parser.add_argument("--name", default="samrs-demo", help="FiftyOne dataset name")
    parser.set_defaults(func=execute)
