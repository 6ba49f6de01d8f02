"""``samrs segment DATASET``: box-prompted SAM over a dataset
(see :func:`fiftyone_samrs.segmenting.pipeline.segment`)."""

from __future__ import annotations

import argparse
from typing import Tuple

from fiftyone_samrs.tools.cli import add_kwargs_argument, parse_kwargs
from fiftyone_samrs.tools.commands._common import (
    add_view_tag_argument,
    fail,
    load_dataset,
    parse_classes,
    tagged_view,
)


#: the --backend choices (the registry's names, in a fixed order)
def backend_choices():
    """The backends of the registry (:data:`~fiftyone_samrs.segmenting.backends.BACKEND_SPECS`)."""
    from fiftyone_samrs.segmenting.backends import BACKEND_SPECS

    return tuple(BACKEND_SPECS)


def backend_help(what: str) -> str:
    """``--backend`` help: each backend's title, from the registry."""
    from fiftyone_samrs.segmenting.backends import BACKEND_SPECS

    return "%s: %s (default sam)" % (what, "; ".join(
        "%s (%s)" % (n, s.title) for n, s in BACKEND_SPECS.items()))



def parse_shard(text: str) -> Tuple[int, int]:
    """``"0/2"`` -> ``(0, 2)``."""
    try:
        i, n = (int(v) for v in text.replace(",", "/").split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError("--shard expects I/N, e.g. 0/2, got %r" % text) from None
    if not (n >= 1 and 0 <= i < n):
        raise argparse.ArgumentTypeError("--shard I/N needs 0 <= I < N, got %r" % text)
    return i, n


def execute(args: argparse.Namespace) -> int:
    from fiftyone_samrs.core.records import FormatError
    from fiftyone_samrs.segmenting.leases import LeaseLost
    from fiftyone_samrs.segmenting.pipeline import segment

    dataset = load_dataset(args.dataset)
    if dataset is None:
        return 1
    view = tagged_view(dataset, args.view_tag)
    kwargs = dict(
        prompt=args.prompt,
        backend=args.backend,
        model=args.model,
        checkpoint=args.checkpoint,
        label_field=args.label_field,
        seg_field=args.seg_field or None,
        box_field=args.box_field,
        obb_field=args.obb_field or None,
        classes=parse_classes(args.classes),
        seg_dir=args.seg_dir,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        overwrite=args.overwrite,
        shard=args.shard,
        clip_to_rbox=args.clip_to_rbox,
        paint_order=args.paint_order,
        num_workers=args.decode_threads,
        progress=not args.no_progress,
        skip_failures=args.skip_failures,
    )
    if args.workers:
        kwargs.update(workers=args.workers, ray_address=args.ray_address)
    elif args.ray_address:
        return fail(ValueError("--ray-address needs --workers N"))
    kwargs.update(parse_kwargs(args.kwargs))
    if args.view_tag:
        print("view: %d samples tagged %s" % (len(view), ", ".join(args.view_tag)))
    try:
        result = segment(view, **kwargs)
    except (ValueError, FormatError, FileNotFoundError, OSError, ImportError, LeaseLost) as e:
        return fail(e)
    print(result.summary())
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment every box of a dataset with SAM and write SAMRS semantic PNGs",
        description="Runs box-prompted Segment Anything (or the grabcut/boxfill baselines) "
        "over a dataset: one instance mask per box in LABEL_FIELD and a SAMRS semantic PNG "
        "per image in SEG_FIELD. Finished samples are skipped (resumable); --shard I/N "
        "splits the work between processes, --workers N runs it on N Ray workers; "
        "processes with the same settings share the work of a field, a run with other "
        "settings is refused while one is live.",
    )
    parser.add_argument("dataset", help="the FiftyOne dataset name")
    parser.add_argument("--prompt", default="auto",
                        help="hbox, rhbox, cp, hbox_m, rbox_m, rhbox_m, a '+' combination, or "
                        "auto (hbox where the source has horizontal boxes, else rhbox)")
    parser.add_argument("--backend", default="sam", choices=backend_choices(),
                        help=backend_help("what segments the boxes"))
    parser.add_argument("--model", default=None,
                        help="vit_b, vit_l, vit_h or a FiftyOne zoo name (SAM 2.1: "
                        "segment-anything-2.1-hiera-{tiny,small,base-plus,large}-image-torch); "
                        "for sam2 also a config .yaml; default: inferred from the checkpoint; "
                        "samrs-tiny: the small SAM shipped with the package, a stand-in trained "
                        "on generated scenes, for demos and tests, not for real data")
    parser.add_argument("--checkpoint", default=None,
                        help="a local checkpoint (SAM / HQ-SAM .pth, SAM 2 .pt)")
    parser.add_argument("--label-field", default="sam", help="Detections field to write")
    parser.add_argument("--seg-field", default="auto",
                        help="Segmentation field to write ('' for no PNGs; default auto: "
                        "<label field>_seg, e.g. sam_seg)")
    parser.add_argument("--seg-dir", default=None, help="folder of the semantic PNGs")
    parser.add_argument("--box-field", default="hbb", help="the prompt boxes (Detections)")
    parser.add_argument("--obb-field", default="obb",
                        help="the rotated boxes (Polylines; '' for none)")
    parser.add_argument("--classes", default=None,
                        help="class list of the PNGs: SOTA, SIOR, FAST, HRSC or a,b,c "
                        "(default: the dataset's subset)")
    parser.add_argument("--paint-order", default="annotation",
                        choices=("annotation", "small_last"),
                        help="which mask wins where masks overlap in the semantic PNG: the "
                             "later object (annotation, as SAMRS), or the smaller one")
    parser.add_argument("--batch-size", type=int, default=4, help="images per model call")
    parser.add_argument("--decode-threads", type=int, default=2,
                        help="image decoding threads (per process or Ray worker)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="run on N Ray workers, each loading the model once on its own GPU "
                        "(or CPU cores); needs pip install 'fiftyone-samrs[ray]'. Default: this "
                        "process does the work")
    parser.add_argument("--ray-address", default=None, metavar="ADDR",
                        help="with --workers: the Ray cluster to join (auto, HOST:6379); "
                        "default: a local Ray on this machine. Workers on other machines need "
                        "FIFTYONE_DATABASE_URI set to a MongoDB they reach")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, mps, cpu (default: auto)")
    parser.add_argument("--dtype", default=None,
                        help="encoder dtype: auto (default: bf16 on CUDA and on CPUs with "
                             "AMX-BF16/AVX512-BF16, else fp32), bf16, fp16, fp32")
    parser.add_argument("--overwrite", action="store_true", help="redo finished samples")
    parser.add_argument("--shard", type=parse_shard, default=None, metavar="I/N",
                        help="process shard I of N (e.g. one per GPU)")
    parser.add_argument("--clip-to-rbox", action="store_true",
                        help="clip each mask to its rotated box (grown by 2 px)")
    parser.add_argument("--skip-failures", action="store_true",
                        help="skip (count and list) samples whose image cannot be read or "
                        "decoded, instead of stopping at the first one")
    add_view_tag_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_kwargs_argument(parser)
    parser.set_defaults(func=execute)
