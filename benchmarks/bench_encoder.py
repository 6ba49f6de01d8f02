"""The image encoder, step by step (issue 16): fp32, bf16 autocast, fused attention, compile.

Times SAM's image encoder on one device, in ONE process, with the modes
interleaved round by round (so a machine shared with other jobs slows them
alike), and reports each mode's median time as a ratio to the fp32 encoder:

- ``fp32``: SAM's encoder as released (fp32, its own attention);
- ``fp32+fused``: fp32, attention through ``scaled_dot_product_attention``
  (:mod:`fiftyone_samrs.segmenting.sam.attention`; exact to rounding);
- ``bf16``: ``torch.autocast`` in bf16, SAM's own attention;
- ``bf16+fused``: bf16 and fused attention (the CPU default on AMX/AVX512-BF16
  CPUs, and on CUDA);
- ``bf16+fused+compile``: the same with its blocks compiled by
  ``torch.compile`` (regional: one graph per block kind); the compile time is
  reported separately (``--no-compile`` skips it).

The features of every mode are compared with fp32's (max relative error of
the ``(256, 64, 64)`` embedding), so speed never hides a wrong result.

Usage::

    python benchmarks/bench_encoder.py                      # ViT-B, random weights, 1024x1024, CPU
    python benchmarks/bench_encoder.py --rounds 5 --no-compile
    python benchmarks/bench_encoder.py --quick              # tiny model, 1 round: a smoke test

Writes ``benchmarks/out/encoder.md`` (and ``encoder.json``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

MODES = ["fp32", "fp32+fused", "bf16", "bf16+fused", "bf16+fused+compile"]


def build_model(name: str, seed: int = 0):
    """A random-weight SAM: ``vit_b``/``vit_l``/``vit_h`` architecture, or ``tiny``."""
    from fiftyone_samrs.segmenting.sam.tiny import build_random_sam

    return build_random_sam(name, seed)


def run(model: str, device: str, rounds: int, batch: int, compile_: bool,
        compile_mode=None, threads=None) -> dict:
    """Times the modes; returns raw timings, ratios and errors."""
    import torch

    from fiftyone_samrs.segmenting.sam.attention import (
        GuardedEncoder,
        compile_encoder_blocks,
        enable_fused_attention,
    )

    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    ref = build_model(model).to(dev)
    fused = copy.deepcopy(ref)
    enable_fused_attention(fused)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(batch, 3, 1024, 1024, generator=g) * 255.0).to(dev)
    with torch.inference_mode():
        x = ref.preprocess(x)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    bf16 = dict(device_type=dev.type, dtype=torch.bfloat16)
    fns = {
        "fp32": lambda: ref.image_encoder(x),
        "fp32+fused": lambda: fused.image_encoder(x),
        "bf16": lambda: _autocast(bf16, ref.image_encoder, x),
        "bf16+fused": lambda: _autocast(bf16, fused.image_encoder, x),
    }
    out = {"model": model, "device": str(dev), "batch": batch, "rounds": rounds,
           "threads": torch.get_num_threads(), "times": {m: [] for m in MODES},
           "cpu_times": {m: [] for m in MODES},
           "rel_err": {}, "compile_s": None, "compile_error": None}
    modes = [m for m in MODES if compile_ or m != "bf16+fused+compile"]
    with torch.inference_mode():
        base = fns["fp32"]().float()
        sync()
        if compile_:
            guarded = GuardedEncoder(fused.image_encoder, compile_encoder_blocks(fused, mode=compile_mode))
            t = time.perf_counter()
            _autocast(bf16, guarded, x)  # compiles
            sync()
            out["compile_s"] = time.perf_counter() - t
            if not guarded.active:
                out["compile_error"] = guarded.error
            fns["bf16+fused+compile"] = lambda: _autocast(bf16, guarded, x)
        for m in modes:  # warm-up, and each mode's error against fp32
            y = fns[m]().float()
            sync()
            out["rel_err"][m] = float((y - base).abs().max() / base.abs().max())
        for _ in range(rounds):
            for m in modes:
                sync()
                t, c = time.perf_counter(), time.process_time()
                fns[m]()
                sync()
                out["times"][m].append(time.perf_counter() - t)
                out["cpu_times"][m].append(time.process_time() - c)
    med = {m: statistics.median(v) for m, v in out["times"].items() if v}
    cpu = {m: statistics.median(v) for m, v in out["cpu_times"].items() if v}
    out["median_s"] = med
    out["median_cpu_s"] = cpu
    out["ratio_to_fp32"] = {m: med[m] / med["fp32"] for m in med}
    out["cpu_ratio_to_fp32"] = {m: cpu[m] / cpu["fp32"] for m in cpu}
    out["images_per_s"] = {m: batch / med[m] for m in med}
    return out


def _autocast(kw, fn, x):
    import torch

    with torch.autocast(**kw):
        return fn(x)


def report(res: dict) -> str:
    """A Markdown table of one run."""
    lines = [
        "# Image encoder, step by step",
        "",
        "SAM %s architecture, random weights, %s (%s, torch threads: %d), %d image(s) of "
        "1024x1024 per pass, median of %d interleaved round(s) in one process."
        % (res["model"], res["device"], platform.processor() or platform.machine(),
           res["threads"], res["batch"], res["rounds"]),
        "",
        "| mode | s per pass | time / fp32 | speed-up | CPU s per pass | CPU time / fp32 "
        "| max rel. error vs fp32 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in MODES:
        if m not in res["median_s"]:
            continue
        r = res["ratio_to_fp32"][m]
        lines.append("| %s | %.3f | %.3f | %.2fx | %.3f | %.3f | %.1e |" % (
            m, res["median_s"][m], r, 1.0 / r, res["median_cpu_s"][m],
            res["cpu_ratio_to_fp32"][m], res["rel_err"][m]))
    lines += ["", "CPU time = this process's CPU seconds (all its threads): on a machine shared "
              "with other jobs it varies less than wall time; with `--threads 1` it is the "
              "compute itself."]
    if res.get("compile_s") is not None:
        lines += ["", "Compilation (first call of the compiled encoder): %.1f s%s."
                  % (res["compile_s"], "; it FAILED and ran uncompiled: %s" % res["compile_error"]
                     if res.get("compile_error") else "")]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="vit_b", help="vit_b (default), vit_l, vit_h or tiny")
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=1, help="images per encoder pass")
    p.add_argument("--no-compile", action="store_true", help="skip the compiled mode")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="tiny model, 1 round, no compile")
    p.add_argument("--out", default=os.path.join(HERE, "out"))
    args = p.parse_args(argv)
    if args.quick:
        args.model, args.rounds, args.no_compile = "tiny", 1, True
    res = run(args.model, args.device, args.rounds, args.batch, not args.no_compile,
              args.compile_mode, args.threads)
    text = report(res)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "encoder.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "encoder.json"), "w") as f:
        json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
