"""fp32 vs bf16 mask agreement of a SAM: the measurement behind ``dtype="auto"`` on CPUs.

Issue 16's rule: bf16 is the CPU default (``CPU_BF16_AUTO`` in
``fiftyone_samrs/segmenting/sam/models.py``) only while the bf16 encoder's
masks agree with the fp32 encoder's to a mean per-instance IoU of at least
0.98 on a model whose masks mean something, prompted with the boxes of
generated scenes. This script measures that with
:func:`fiftyone_samrs.testing.precision.mask_agreement` and says which way
the switch should be.

Usage::

    python benchmarks/bench_precision.py --model samrs-tiny          # the trained stand-in (issue 13)
    python benchmarks/bench_precision.py --checkpoint sam_vit_b_01ec64.pth
    python benchmarks/bench_precision.py                             # provisional: random tiny + ViT-B

``--model`` takes any name :func:`~fiftyone_samrs.segmenting.sam.models.load_sam`
knows (``samrs-tiny``, ``vit_b``, a zoo name); ``--random tiny,vit_b`` builds
random-weight models (their masks mean nothing: a provisional figure only).
Writes ``benchmarks/out/precision.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def measure(models, scenes, prompts, candidate, device, attention):
    """Rows of ``(model, prompt, Agreement, seconds)``."""
    from fiftyone_samrs.testing.precision import mask_agreements

    rows = []
    for name, sam in models:
        t = time.perf_counter()
        ags = mask_agreements(sam, scenes, prompts, candidate=candidate, device=device,
                              attention=attention)
        secs = time.perf_counter() - t
        for prompt in prompts:
            ag = ags[prompt]
            rows.append((name, prompt, ag, secs))
            print("%s %s: mean IoU %.4f over %d instances (%.0f s)"
                  % (name, prompt, ag.mean_iou, ag.instances, secs), file=sys.stderr)
    return rows


def report(rows, scenes, threshold, trained) -> str:
    from fiftyone_samrs.segmenting.sam.models import CPU_BF16_AUTO, cpu_bf16_support

    n_obj = sum(len(s.hboxes) for s in scenes)
    lines = [
        "# fp32 vs reduced-precision masks",
        "",
        "%d generated scene(s) (%dx%d, %d objects), CPU %s (%s). Per-instance IoU of the "
        "masks over each prompt's region; reference: fp32 with SAM's own attention."
        % (len(scenes), scenes[0].image.shape[1], scenes[0].image.shape[0], n_obj,
           platform.processor() or platform.machine(), cpu_bf16_support().describe()),
        "",
        "| model | prompt | candidate | instances | mean IoU | min | 5th pct | share < 0.9 "
        "| empty flips | >= %.2f |" % threshold,
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, prompt, ag, _ in rows:
        lines.append("| %s | %s | %s | %d | %.4f | %.4f | %.4f | %.3f | %d | %s |" % (
            name, prompt, ag.candidate, ag.instances, ag.mean_iou, ag.min_iou, ag.quantile(0.05),
            ag.share_below(0.9), ag.empty_flips, "yes" if ag.passes(threshold) else "NO"))
    judged = [ag for name, _, ag, _ in rows if not (trained and name.endswith("(random)"))]
    ok = all(ag.passes(threshold) for ag in judged)
    lines.append("")
    if trained:
        want = ok
        lines.append(
            "Verdict (trained model): mean IoU %s %.2f everywhere, so `CPU_BF16_AUTO` should be "
            "%s; it is %s%s." % (">=" if ok else "NOT >=", threshold, want, CPU_BF16_AUTO,
                                 "" if want == CPU_BF16_AUTO else
                                 " -- CHANGE IT in fiftyone_samrs/segmenting/sam/models.py"))
    else:
        lines.append(
            "Provisional: random weights only (masks mean nothing); rerun with "
            "`--model samrs-tiny` (or a real checkpoint) to decide `CPU_BF16_AUTO` "
            "(now %s)." % CPU_BF16_AUTO)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", default=[],
                   help="a load_sam model name (samrs-tiny, vit_b, ...); repeatable")
    p.add_argument("--checkpoint", action="append", default=[], help="a SAM checkpoint; repeatable")
    p.add_argument("--random", default=None,
                   help="random-weight models, comma-separated (tiny, vit_b, vit_l, vit_h); "
                        "default tiny,vit_b when no --model/--checkpoint is given")
    p.add_argument("--prompts", default="hbox,rbox_m",
                   help="comma-separated prompts (default: the H-Box and the rotated-box mask)")
    p.add_argument("--candidate", default="bf16", help="the dtype compared with fp32")
    p.add_argument("--attention", default="fused", help="the candidate's attention: fused|reference")
    p.add_argument("--images", type=int, default=3)
    p.add_argument("--objects", type=int, default=30)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--seed", type=int, default=1616)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threshold", type=float, default=None)
    p.add_argument("--out", default=os.path.join(HERE, "out"))
    args = p.parse_args(argv)

    from fiftyone_samrs.segmenting.sam.models import load_sam
    from fiftyone_samrs.segmenting.sam.tiny import build_random_sam
    from fiftyone_samrs.testing.precision import BF16_MIN_MEAN_IOU, generated_scenes

    threshold = BF16_MIN_MEAN_IOU if args.threshold is None else args.threshold
    models = [(m, load_sam(model=m, device=args.device, download=False)) for m in args.model]
    models += [(os.path.basename(c), load_sam(checkpoint=c, device=args.device))
               for c in args.checkpoint]
    trained = bool(models)
    random_names = args.random if args.random is not None else ("" if models else "tiny,vit_b")
    models += [("%s (random)" % r, build_random_sam(r, 0)) for r in random_names.split(",") if r]
    if not models:
        p.error("no model: give --model, --checkpoint or --random")
    scenes = generated_scenes(args.images, args.objects, (args.size, args.size), seed=args.seed)
    rows = measure(models, scenes, [x for x in args.prompts.split(",") if x], args.candidate,
                   args.device, args.attention)
    text = report(rows, scenes, threshold, trained)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "precision.md"), "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
