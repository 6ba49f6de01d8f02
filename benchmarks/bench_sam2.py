"""Benchmark of the SAM 2.1 backend against SAM 2's predictor and FiftyOne (issue 15).

On the CPU (or ``--device cuda``), with the SAM 2.1 Hiera-T architecture and
random weights saved ONCE to a checkpoint that every method loads, on a
1024x1024 image with K boxes (10-120 px), it times:

- ``encoder``: SAM 2's image encoder alone (``Sam2Engine.encode``);
- ``engine``: this project's SAM 2 engine end to end (preprocess, encoder,
  prompts, fast decoder with the dynamic multimask fallback, region-only
  post-processing to InstanceMasks: ``Sam2Engine.predict_batch``);
- ``engine_nofallback``: the same with ``dynamic_multimask=False`` (windows
  only; other masks where the fallback would fire);
- ``pipeline``: ``fiftyone_samrs.segment(backend="sam2")`` on a one-sample
  dataset (image loading, engine, database writes, semantic PNG);
- ``predictor``: ``SAM2ImagePredictor.set_image_batch`` + ``predict_batch``
  with all K boxes, ``multimask_output=False``, full-size masks to numpy;
- ``fiftyone``: FiftyOne's ``apply_model`` with the zoo model
  ``segment-anything-2.1-hiera-tiny-image-torch`` (``fiftyone.utils.sam2``)
  and ``prompt_field``; the checkpoint is placed under a temporary
  ``FIFTYONE_MODEL_ZOO_DIR`` with the zoo's file name, so nothing is downloaded.

Each method runs in a fresh subprocess (model loaded before the clock
starts). Times are reported as ratios to ``encoder`` and to ``engine``, all
from ONE run, so that they travel between machines.

``--interleaved`` runs the engine, the pipeline and ``apply_model`` in one
process per K, alternating them for ``--repeats`` rounds (fairest on a shared,
noisy machine). ``--encoders`` instead times the image encoder alone, per 1024x1024 image,
for SAM 2.1 Hiera-T/S/B+/L and SAM ViT-B/L/H (random weights), each in its
own subprocess, as ratios to SAM ViT-B.

Usage::

    python benchmarks/bench_sam2.py                  # K = 20,100,300
    python benchmarks/bench_sam2.py --ks 100 --repeats 3
    python benchmarks/bench_sam2.py --encoders       # encoder cost per image
    python benchmarks/bench_sam2.py --quick          # smoke test: tiny model, K=4,12
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.bench_segment import _peak_mb, _rss_mb, make_boxes, make_image  # noqa: E402

METHODS = ["encoder", "engine", "engine_nofallback", "pipeline", "predictor", "fiftyone"]
ZOO_NAME = "segment-anything-2.1-hiera-tiny-image-torch"
ZOO_FILE = "sam2.1_hiera_tiny_image.pt"
CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
ENCODERS = ["sam2.1_hiera_t", "sam2.1_hiera_s", "sam2.1_hiera_b+", "sam2.1_hiera_l",
            "sam_vit_b", "sam_vit_l", "sam_vit_h"]


def _fo_env():
    os.environ["FIFTYONE_DATABASE_NAME"] = "samrs-bench-%s" % uuid.uuid4().hex[:8]
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")


def _dataset(image_path, boxes, w, h):
    import fiftyone as fo

    ds = fo.Dataset()
    dets = [fo.Detection(label="object", bounding_box=[b[0] / w, b[1] / h, (b[2] - b[0]) / w,
                                                       (b[3] - b[1]) / h], obj_index=i)
            for i, b in enumerate(boxes)]
    ds.add_sample(fo.Sample(filepath=image_path, hbb=fo.Detections(detections=dets)))
    ds.compute_metadata()
    return ds


def _drop(ds):
    ds.delete()
    import fiftyone.core.odm as foo

    foo.get_db_client().drop_database(os.environ["FIFTYONE_DATABASE_NAME"])


def run_method(method, k, ckpt, config, image_path, repeats, workdir, device):
    """Runs one method (in this process) and returns its timings and memory."""
    import cv2
    import torch

    img = cv2.cvtColor(cv2.imread(image_path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    h, w = img.shape[:2]
    boxes = make_boxes(k, w)
    times, masks, base = [], None, None

    def sync():
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()

    if method == "fiftyone":
        os.environ["FIFTYONE_MODEL_ZOO_DIR"] = os.path.join(workdir, "zoo")
        _fo_env()
        import fiftyone.zoo as foz

        model = foz.load_zoo_model(ZOO_NAME, device=device)
        ds = _dataset(image_path, boxes, w, h)
        try:
            base = _rss_mb()
            for r in range(repeats):
                t = time.perf_counter()
                ds.apply_model(model, label_field="sam_fo_%d" % r, prompt_field="hbb",
                               progress=False)
                sync()
                times.append(time.perf_counter() - t)
            masks = ds.first()["sam_fo_0"].detections
        finally:
            _drop(ds)
        return {"times": times, "base_mb": base, "peak_mb": _peak_mb(), "masks": len(masks)}

    from fiftyone_samrs.segmenting.prompts import build_prompts
    from fiftyone_samrs.segmenting.sam2.engine import Sam2Engine
    from fiftyone_samrs.segmenting.sam2.models import load_sam2

    model = load_sam2(checkpoint=ckpt, config=config, device=device)
    if method == "predictor":
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        predictor = SAM2ImagePredictor(model)
        base = _rss_mb()
        for _ in range(repeats):
            t = time.perf_counter()
            with torch.inference_mode():
                predictor.set_image_batch([img])
                out, _, _ = predictor.predict_batch(box_batch=[boxes], multimask_output=False)
            sync()
            times.append(time.perf_counter() - t)
        masks = out[0]
    elif method in ("encoder", "engine", "engine_nofallback"):
        engine = Sam2Engine(model, device=device,
                            dynamic_multimask=False if method == "engine_nofallback" else None)
        engine.encode([img])  # warm-up (first-call set-up)
        base = _rss_mb()
        for _ in range(repeats):
            t = time.perf_counter()
            if method == "encoder":
                engine.encode([img])
            else:
                ps = build_prompts(boxes, None, "hbox", (h, w))
                masks = engine.predict_batch([img], [ps])[0]
            sync()
            times.append(time.perf_counter() - t)
    elif method == "pipeline":
        _fo_env()
        import fiftyone_samrs as fsr

        engine = Sam2Engine(model, device=device)
        ds = _dataset(image_path, boxes, w, h)
        try:
            base = _rss_mb()
            for r in range(repeats):
                t = time.perf_counter()
                fsr.segment(ds, prompt="hbox", engine=engine, obb_field=None,
                            classes=["object"], label_field="sam", seg_field="sam_seg",
                            seg_dir=os.path.join(workdir, "seg_%d" % r), overwrite=True,
                            progress=False)
                sync()
                times.append(time.perf_counter() - t)
            masks = ds.first()["sam"].detections
        finally:
            _drop(ds)
    else:
        raise ValueError("unknown method %r" % method)
    return {"times": times, "base_mb": base, "peak_mb": _peak_mb(),
            "masks": None if masks is None else len(masks)}


def run_interleaved(k, ckpt, config, image_path, repeats, workdir, device):
    """engine, pipeline and FiftyOne's apply_model in ONE process, alternating.

    Each round times the three once, in turn, on the same weights, so that a
    shared machine's changing load hits all three alike.
    """
    import cv2
    import torch

    os.environ["FIFTYONE_MODEL_ZOO_DIR"] = os.path.join(workdir, "zoo")
    _fo_env()
    import fiftyone.zoo as foz

    import fiftyone_samrs as fsr
    from fiftyone_samrs.segmenting.prompts import build_prompts
    from fiftyone_samrs.segmenting.sam2.engine import Sam2Engine
    from fiftyone_samrs.segmenting.sam2.models import load_sam2

    img = cv2.cvtColor(cv2.imread(image_path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    h, w = img.shape[:2]
    boxes = make_boxes(k, w)
    engine = Sam2Engine(load_sam2(checkpoint=ckpt, config=config, device=device), device=device)
    fo_model = foz.load_zoo_model(ZOO_NAME, device=device)
    ds = _dataset(image_path, boxes, w, h)
    times = {"engine": [], "pipeline": [], "fiftyone": []}

    def sync():
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()

    try:
        engine.encode([img])  # warm-up of both models (first-call set-up)
        ds.apply_model(fo_model, label_field="sam_fo_warm", prompt_field="hbb", progress=False)
        for r in range(repeats):
            t = time.perf_counter()
            engine.predict_batch([img], [build_prompts(boxes, None, "hbox", (h, w))])
            sync()
            times["engine"].append(time.perf_counter() - t)
            t = time.perf_counter()
            fsr.segment(ds, prompt="hbox", engine=engine, obb_field=None, classes=["object"],
                        label_field="sam", seg_field="sam_seg",
                        seg_dir=os.path.join(workdir, "iseg_%d" % r), overwrite=True,
                        progress=False)
            sync()
            times["pipeline"].append(time.perf_counter() - t)
            t = time.perf_counter()
            ds.apply_model(fo_model, label_field="sam_fo_%d" % r, prompt_field="hbb",
                           progress=False)
            sync()
            times["fiftyone"].append(time.perf_counter() - t)
    finally:
        _drop(ds)
    return times


def run_encoder(name, image_path, repeats, device, warmup=1):
    """Times one architecture's image encoder (random weights) per image."""
    import cv2
    import torch

    img = cv2.cvtColor(cv2.imread(image_path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    torch.manual_seed(0)
    if name.startswith("sam2"):
        from fiftyone_samrs.segmenting.sam2.engine import Sam2Engine
        from fiftyone_samrs.segmenting.sam2.models import SAM2_MODELS, build_sam2_model

        engine = Sam2Engine(build_sam2_model(SAM2_MODELS[name][0]), device=device)
    else:
        from fiftyone_samrs.segmenting.sam.engine import SamEngine
        from fiftyone_samrs.segmenting.sam.models import build_sam_from_config, official_config

        engine = SamEngine(build_sam_from_config(official_config(name[4:])), device=device)
    params = sum(p.numel() for p in (engine.model if hasattr(engine, "model") else engine.sam)
                 .parameters())
    pre = engine.preprocess(img)
    for _ in range(warmup):
        engine.encode([pre])
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        engine.encode([pre])
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return {"times": times, "params_m": params / 1e6, "peak_mb": _peak_mb()}


def _subprocess(argv, timeout):
    cmd = [sys.executable, os.path.abspath(__file__)] + argv
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after %ds" % timeout}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    err = (proc.stderr.strip().splitlines() or ["exit code %d" % proc.returncode])[-1]
    return {"error": err[:300]}


def _t(res):
    t = res.get("times") or []
    return float(np.median(t)) if t else float("nan")


def report(results, ks, args, desc) -> str:
    import platform

    import torch

    lines = [
        "# SAM 2.1 backend benchmark",
        "",
        "%s, %s (%s, torch %s, %d threads), %dx%d image, boxes 10-120 px, median of %d "
        "run(s); each method in a fresh process, the checkpoint loaded before timing."
        % (desc, args.device, platform.machine(), torch.__version__,
           args.threads or torch.get_num_threads(), args.size, args.size, args.repeats),
        "",
        "Times in seconds; ratios from this one run.",
    ]
    for k in ks:
        res = results[k]
        enc, eng = _t(res.get("encoder", {})), _t(res.get("engine", {}))
        lines += ["", "## K = %d boxes" % k, "",
                  "| method | seconds | / encoder | / engine | peak MB | masks | note |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        for m in METHODS:
            r = res.get(m)
            if r is None:
                continue
            t = _t(r)
            lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                m, "%.2f" % t if t == t else "-", "%.2f" % (t / enc) if t == t else "-",
                "%.2f" % (t / eng) if t == t else "-",
                "%.0f" % r["peak_mb"] if r.get("peak_mb") else "-", r.get("masks") or "-",
                r.get("error", "")))
        fo_t, pipe_t = _t(res.get("fiftyone", {})), _t(res.get("pipeline", {}))
        if fo_t == fo_t:
            goal = " (goal >= 2 at K = 100)" if k == 100 else ""
            lines += ["", "fiftyone apply_model / engine = **%.2f**%s; / pipeline = %.2f; "
                      "predictor / engine = %.2f; engine / encoder = %.2f."
                      % (fo_t / eng, goal, fo_t / pipe_t, _t(res.get("predictor", {})) / eng,
                         eng / enc)]
    return "\n".join(lines)


def encoder_report(results, args) -> str:
    import platform

    import torch

    ref = _t(results.get("sam_vit_b", {}))
    lines = [
        "# Image encoder cost per 1024x1024 image (random weights)",
        "",
        "%s (%s, torch %s, %d threads), median of %d run(s) after %d untimed, one process "
        "per model." % (args.device, platform.machine(), torch.__version__,
                        args.threads or torch.get_num_threads(), args.repeats, args.warmup),
        "",
        "| model | parameters (M) | seconds | / SAM ViT-B | peak MB | note |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name in ENCODERS:
        r = results.get(name)
        if r is None:
            continue
        t = _t(r)
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            name, "%.1f" % r["params_m"] if "params_m" in r else "-",
            "%.2f" % t if t == t else "-", "%.2f" % (t / ref) if t == t and ref == ref else "-",
            "%.0f" % r["peak_mb"] if r.get("peak_mb") else "-", r.get("error", "")))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ks", default="20,100,300", help="comma-separated box counts")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per method (median)")
    p.add_argument("--methods", default=None, help="comma-separated subset of: "
                   + ", ".join(METHODS))
    p.add_argument("--encoders", action="store_true", help="encoder cost per image instead")
    p.add_argument("--interleaved", action="store_true",
                   help="engine, pipeline and FiftyOne alternating in one process (per K)")
    p.add_argument("--models", default=None, help="with --encoders: subset of "
                   + ", ".join(ENCODERS))
    p.add_argument("--quick", action="store_true", help="smoke test: tiny SAM 2, K=4,12")
    p.add_argument("--warmup", type=int, default=1,
                   help="with --encoders: untimed passes before timing (0 for the big ViTs)")
    p.add_argument("--size", type=int, default=1024, help="image side")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per method run")
    p.add_argument("--out", default=os.path.join(HERE, "out"), help="output folder")
    p.add_argument("--run-one", default=None, help=argparse.SUPPRESS)
    p.add_argument("--encoder-one", default=None, help=argparse.SUPPRESS)
    p.add_argument("--interleaved-one", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--k", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--checkpoint", default=None, help=argparse.SUPPRESS)
    p.add_argument("--config", default=None, help=argparse.SUPPRESS)
    p.add_argument("--image", default=None, help=argparse.SUPPRESS)
    p.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.run_one:
        res = run_method(args.run_one, args.k, args.checkpoint, args.config, args.image,
                         args.repeats, args.workdir, args.device)
        print("RESULT " + json.dumps(res))
        return 0
    if args.interleaved_one:
        print("RESULT " + json.dumps(run_interleaved(args.k, args.checkpoint, args.config,
                                                     args.image, args.repeats, args.workdir,
                                                     args.device)))
        return 0
    if args.encoder_one:
        print("RESULT " + json.dumps(run_encoder(args.encoder_one, args.image, args.repeats,
                                                 args.device, args.warmup)))
        return 0

    import cv2
    import torch

    common = ["--repeats", str(args.repeats), "--device", args.device]
    if args.threads:
        common += ["--threads", str(args.threads)]
    workdir = tempfile.mkdtemp(prefix="samrs-bench-sam2-")
    os.makedirs(args.out, exist_ok=True)
    try:
        image_path = os.path.join(workdir, "image.png")
        cv2.imwrite(image_path, cv2.cvtColor(make_image(args.size), cv2.COLOR_RGB2BGR))
        if args.encoders:
            names = args.models.split(",") if args.models else ENCODERS
            results = {}
            for name in names:
                t0 = time.time()
                results[name] = _subprocess(["--encoder-one", name, "--image", image_path,
                                             "--warmup", str(args.warmup)] + common, args.timeout)
                print("%-16s %s (%.0fs)" % (name, results[name].get("error")
                                            or "%.2fs" % _t(results[name]), time.time() - t0),
                      file=sys.stderr)
            text = encoder_report(results, args)
            name = "sam2_encoders"
        else:
            from fiftyone_samrs.segmenting.sam2.models import (
                TINY_OVERRIDES,
                build_sam2_model,
                build_tiny_sam2,
                save_sam2_checkpoint,
            )

            ckpt = os.path.join(workdir, ZOO_FILE)
            config = CONFIG
            torch.manual_seed(0)
            if args.quick:
                config = os.path.join(workdir, "tiny.yaml")
                from omegaconf import OmegaConf

                from fiftyone_samrs.segmenting.sam2.models import config_path

                cfg = OmegaConf.load(config_path(CONFIG))
                for key, value in TINY_OVERRIDES.items():
                    OmegaConf.update(cfg, key, value, force_add=True)
                OmegaConf.save(cfg, config)
                save_sam2_checkpoint(build_tiny_sam2(0), ckpt)
                desc = "tiny random SAM 2.1 (real decoder)"
            else:
                save_sam2_checkpoint(build_sam2_model(CONFIG), ckpt)
                desc = "SAM 2.1 Hiera-T architecture, random weights"
            os.makedirs(os.path.join(workdir, "zoo"))
            os.symlink(ckpt, os.path.join(workdir, "zoo", ZOO_FILE))
            ks = [4, 12] if args.quick and args.ks == "20,100,300" else [
                int(v) for v in args.ks.split(",")]
            methods = args.methods.split(",") if args.methods else [
                m for m in METHODS if not (args.quick and m == "fiftyone")]
            results = {}
            if args.interleaved:
                lines = ["# SAM 2.1: engine, pipeline and FiftyOne apply_model interleaved",
                         "", "%s, %s, %s threads, one process per K, %d rounds, each round "
                         "times the three in turn." % (desc, args.device, args.threads or "default",
                                                      args.repeats), "",
                         "| K | engine s | pipeline s | fiftyone s | fiftyone / engine | "
                         "fiftyone / pipeline |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
                for k in ks:
                    res = _subprocess(["--interleaved-one", "--k", str(k), "--checkpoint", ckpt,
                                       "--config", config, "--image", image_path,
                                       "--workdir", workdir] + common, args.timeout)
                    results[k] = res
                    if "error" in res:
                        lines.append("| %d | %s |" % (k, res["error"]))
                        continue
                    med = {m: float(np.median(v)) for m, v in res.items()}
                    lines.append("| %d | %.2f | %.2f | %.2f | **%.2f** | **%.2f** |" % (
                        k, med["engine"], med["pipeline"], med["fiftyone"],
                        med["fiftyone"] / med["engine"], med["fiftyone"] / med["pipeline"]))
                    print(lines[-1], file=sys.stderr)
                text = "\n".join(lines)
                name = "sam2_interleaved"
                ks = []
            for k in ks:
                results[k] = {}
                for m in methods:
                    t0 = time.time()
                    res = _subprocess(["--run-one", m, "--k", str(k), "--checkpoint", ckpt,
                                       "--config", config, "--image", image_path,
                                       "--workdir", workdir] + common, args.timeout)
                    results[k][m] = res
                    print("K=%d %-18s %s (%.0fs)" % (k, m, res.get("error")
                                                     or "%.2fs" % _t(res), time.time() - t0),
                          file=sys.stderr)
            if not args.interleaved:
                text = report(results, ks, args, desc)
                name = "sam2"
        print(text)
        with open(os.path.join(args.out, name + ".md"), "w") as f:
            f.write(text + "\n")
        with open(os.path.join(args.out, name + ".json"), "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
