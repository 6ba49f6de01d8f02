"""The prompt study of the SAMRS paper (Table 1) as a function and a command.

:func:`prompt_study` runs every prompt configuration on a dataset with
ground-truth masks and reports mIoU_I / mIoU_P per configuration, with the
paper's numbers beside them when the dataset is HRSC2016. Each image is
encoded ONCE with the SAM engine and every configuration is decoded on that
same embedding; the baselines run through their own backends.

Configurations (strings):

- a SAM prompt (``"hbox"``, ``"rhbox+cp"``...; see
  :mod:`fiftyone_samrs.segmenting.prompts`), decoded by the study's engine;
- ``"<prompt>+clip_rbox"``: that prompt, then the mask AND the rotated box
  dilated by ``rbox_margin`` px (the pipeline's ``clip_to_rbox``
  refinement), where the object has a rotated box;
- ``"<backend>"`` or ``"<backend>:<prompt>"`` for a baseline backend
  (``grabcut``, ``boxfill``); the bare name uses the prompt ``"hbox"``.

The default list is :data:`fiftyone_samrs.segmenting.prompts.TABLE1`, then
:data:`EXTRA_CONFIGS`. Instances: every ground-truth mask whose object (the
same ``obj_index``) has a prompt box; a ground-truth mask without a prompt
object is counted as missed (IoU 0) and reported. Masks are computed over
the whole image by default (``margin=None``), as the paper's
``SamPredictor`` did, so a point prompt can spill over the whole image.

Outputs (``out_dir``): ``study.md`` (Markdown table), ``study.csv`` and
``study.png`` (bar chart).
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from fiftyone_samrs.core.masks import polygon_pixels
from fiftyone_samrs.core.metrics import mask_iou, miou
from fiftyone_samrs.core.paths import atomic_write_text
from fiftyone_samrs.core.records import InstanceMask
from fiftyone_samrs.core.text import plural
from fiftyone_samrs.segmenting.backends import baseline_backends, model_backends
from fiftyone_samrs.segmenting.base import as_engine

#: the paper's Table 1 (HRSC2016 test, 124 images, SAM ViT-H), mIoU_I / mIoU_P in
#: percent; only the rows whose values are recorded in the project's notes
#: (FORMATS.md). The combinations with CP or masks are all worse than the
#: box alone in the paper, but their values are not recorded here.
PAPER_TABLE1: Dict[str, Tuple[float, float]] = {
    "cp": (16.14, 2.72),
    "hbox": (89.97, 79.40),
    "hbox_m": (40.54, 36.71),
    "rhbox": (88.85, 76.42),
    "rhbox_m": (34.63, 31.81),
    "rbox_m": (65.54, 59.78),
}

#: rows beyond the paper: the clip-to-rotated-box refinement and the baselines
EXTRA_CONFIGS: List[str] = ["hbox+clip_rbox", "grabcut", "boxfill", "boxfill:rbox_m"]

CLIP = "clip_rbox"


@dataclass
class StudyConfig:
    """A parsed configuration.

    Attributes:
        name: the configuration string
        backend: ``"sam"`` (the study's engine) or a baseline name
        prompt: the prompt given to :func:`fiftyone_samrs.segmenting.prompts.build_prompts`
        clip_rbox: AND the mask with the dilated rotated box
    """

    name: str
    backend: str
    prompt: str
    clip_rbox: bool = False


def parse_config(name: str) -> StudyConfig:
    """Parses a configuration string (see the module docstring)."""
    from fiftyone_samrs.segmenting.prompts import parse_prompt

    text = name.strip()
    if ":" in text:
        backend, prompt = text.split(":", 1)
    elif text.lower() in baseline_backends():
        backend, prompt = text, "hbox"
    else:
        backend, prompt = "sam", text
    backend = backend.strip().lower()
    parts = [p for p in prompt.strip().split("+") if p]
    clip = CLIP in parts
    parts = [p for p in parts if p != CLIP]
    if not parts:
        raise ValueError("configuration %r has no prompt" % name)
    prompt = "+".join(parts)
    parse_prompt(prompt)  # raises a clear error on unknown names
    if backend not in ("sam",) + baseline_backends():
        raise ValueError("configuration %r: unknown backend %r (%s)"
                         % (name, backend, ", ".join(("sam",) + baseline_backends())))
    return StudyConfig(text, backend, prompt, clip)


@dataclass
class StudyRow:
    """One row of the study.

    Attributes:
        config: the configuration string
        backend: the backend that produced the masks
        n: ground-truth instances measured
        miou_i, miou_p: fractions (NaN when nothing was measured)
        paper_miou_i, paper_miou_p: the paper's values in percent, or None
        seconds: time spent decoding / predicting this configuration
        note: why a row has no value, or what fell back
    """

    config: str
    backend: str
    n: int = 0
    miou_i: float = float("nan")
    miou_p: float = float("nan")
    paper_miou_i: Optional[float] = None
    paper_miou_p: Optional[float] = None
    seconds: float = 0.0
    note: str = ""


@dataclass
class StudyResult:
    """The study's rows and context.

    Attributes:
        rows: one :class:`StudyRow` per configuration, in order
        images: images used
        instances: ground-truth instances per configuration
        missed: ground-truth masks without a prompt object (IoU 0 in every row)
        encoder_seconds: time spent encoding images (once per image)
        is_hrsc: whether the paper's numbers apply (HRSC2016)
        protocol: whether the paper's protocol restricted the images
        files: paths written (``study.md``, ``study.csv``, ``study.png``)
    """

    rows: List[StudyRow]
    images: int = 0
    instances: int = 0
    missed: int = 0
    encoder_seconds: float = 0.0
    is_hrsc: bool = False
    protocol: bool = False
    model: str = ""
    files: List[str] = field(default_factory=list)

    def row(self, config: str) -> StudyRow:
        for r in self.rows:
            if r.config == config:
                return r
        raise KeyError(config)

    def to_markdown(self) -> str:
        """The table as Markdown (percentages), with the paper's values."""
        head = ("| configuration | backend | n | mIoU_I | mIoU_P | paper mIoU_I | paper mIoU_P "
                "| note |")
        lines = [
            "# Prompt study%s" % (" (HRSC2016, paper protocol)" if self.protocol else ""),
            "",
            "%s, %s%s; model: %s; encoder %.1f s."
            % (plural(self.images, "image"), plural(self.instances, "ground-truth instance"),
               " (%d without a prompt box, IoU 0)" % self.missed if self.missed else "",
               self.model or "-", self.encoder_seconds),
            "",
            head,
            "|" + "---|" * 8,
        ]
        for r in self.rows:
            lines.append("| %s | %s | %d | %s | %s | %s | %s | %s |" % (
                r.config, r.backend, r.n, _pct(r.miou_i), _pct(r.miou_p),
                _num(r.paper_miou_i), _num(r.paper_miou_p), r.note.replace("|", "/")))
        if self.is_hrsc:
            lines += ["", "Paper: SAMRS Table 1, HRSC2016 test (124 images), SAM ViT-H."]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """The table as CSV (percentages; empty cells where unknown)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["config", "backend", "n", "miou_i", "miou_p", "paper_miou_i",
                    "paper_miou_p", "seconds", "note"])
        for r in self.rows:
            w.writerow([r.config, r.backend, r.n, _csvnum(r.miou_i, 100), _csvnum(r.miou_p, 100),
                        _csvnum(r.paper_miou_i), _csvnum(r.paper_miou_p), "%.3f" % r.seconds,
                        r.note])
        return buf.getvalue()

    def figure(self):
        """The bar chart (:func:`fiftyone_samrs.evaluating.plots.study_bars`)."""
        from fiftyone_samrs.evaluating.plots import study_bars

        return study_bars(self.rows, PAPER_TABLE1 if self.is_hrsc else None,
                          title="Prompt study: %s, %s"
                          % (plural(self.images, "image"), plural(self.instances, "instance")))

    def write(self, out_dir: str) -> List[str]:
        """Writes ``study.md``, ``study.csv`` and ``study.png`` into ``out_dir``."""
        from fiftyone_samrs.evaluating.plots import save_figure

        os.makedirs(out_dir, exist_ok=True)
        md = os.path.join(out_dir, "study.md")
        atomic_write_text(md, self.to_markdown())
        cs = os.path.join(out_dir, "study.csv")
        atomic_write_text(cs, self.to_csv())
        png = save_figure(self.figure(), os.path.join(out_dir, "study.png"))
        self.files = [md, cs, png]
        return self.files


def _pct(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else "%.2f" % (100 * v)


def _num(v) -> str:
    return "-" if v is None else "%.2f" % v


def _csvnum(v, scale: float = 1.0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return "%.4f" % (scale * v)


# --------------------------------------------------------------------------


def _is_hrsc(sample_collection) -> bool:
    info = sample_collection.info or {}
    fmt = str((info.get("samrs") or {}).get("format", "")).lower()
    if fmt == "hrsc":
        return True
    if sample_collection.has_sample_field("source"):
        return any(str(s).upper().startswith("HRSC") for s in sample_collection.distinct("source"))
    return False


def _clip(res_mask: InstanceMask, quad: Optional[np.ndarray], margin: float) -> InstanceMask:
    if quad is None or not np.isfinite(quad).all() or res_mask.mask.size == 0:
        return res_mask
    keep = polygon_pixels(quad, res_mask.box, margin)
    return InstanceMask(np.asarray(res_mask.mask, dtype=bool) & keep, res_mask.x0, res_mask.y0)


@dataclass
class ConfigInputs:
    """One image's objects, as :func:`config_masks` prompts them.

    Attributes:
        image: the RGB image
        hboxes: ``(N, 4)`` xyxy boxes
        quads: ``(N, 4, 2)`` rotated boxes (NaN rows: none), or None
        has_hbox: whether the boxes are H-Boxes (see ``ObjectInputs``)
        embedding: the image's embedding where the engine encodes, or None
    """

    image: np.ndarray
    hboxes: np.ndarray
    quads: Optional[np.ndarray]
    has_hbox: bool
    embedding: object = None


def config_masks(config: StudyConfig, inputs: ConfigInputs, engine, margin: Optional[float],
                 rbox_margin: float = 2.0):
    """The masks of one configuration for the objects of one image: decoded
    on ``inputs.embedding`` where there is one, else predicted by ``engine``
    (the study's SAM engine, or the configuration's baseline backend); with
    ``clip_rbox``, each mask ANDed with its dilated rotated box.

    Returns:
        ``(results, prompt names)``: one ``MaskResult`` per object, and the
        prompt each object got (a rotated prompt falls back to the H-Box)

    Raises:
        ValueError: when the prompts cannot be built
    """
    from fiftyone_samrs.segmenting.prompts import build_prompts

    size = inputs.image.shape[:2]
    ps = build_prompts(inputs.hboxes, inputs.quads, config.prompt, size,
                       has_hbox=inputs.has_hbox, margin=margin,
                       mask_frame=engine.mask_frame if config.backend == "sam" else "sam")
    if config.backend == "sam" and inputs.embedding is not None:
        res = engine.decode(inputs.embedding, ps)
    else:
        res = engine.predict_batch([inputs.image], [ps])[0]
    if config.clip_rbox:
        qd = inputs.quads
        for i, r in enumerate(res):
            r.mask = _clip(r.mask, qd[i] if qd is not None else None, rbox_margin)
    return res, list(ps.names)


def prompt_study(
    sample_collection,
    backend: str = "sam",
    model: Optional[str] = None,
    checkpoint: Optional[str] = None,
    *,
    engine=None,
    gt_field: str = "gt_masks",
    box_field: str = "hbb",
    obb_field: Optional[str] = "obb",
    configs: Optional[Sequence[str]] = None,
    protocol: bool = False,
    out_dir: Optional[str] = None,
    margin: Optional[float] = None,
    rbox_margin: float = 2.0,
    baseline_margin: Optional[float] = 0.1,
    device=None,
    progress: bool = True,
) -> StudyResult:
    """Runs the prompt configurations of the paper's Table 1 (and more).

    Args:
        sample_collection: a dataset or view with ``box_field`` prompts and
            ``gt_field`` ground-truth masks (e.g. ``load_hrsc``)
        backend: what runs the SAM prompt rows: ``"sam"``, ``"sam2"`` (SAM 2 /
            2.1) or ``"sam_hq"`` (HQ-SAM), built from ``model`` /
            ``checkpoint``, each image encoded once; or ``"grabcut"`` /
            ``"boxfill"`` (then every row runs through that backend)
        model: model name (``vit_h``..., a zoo name, ``"tiny"``; for SAM 2
            also a config ``.yaml``)
        checkpoint: checkpoint path
        engine: an already-built backend (e.g. a ``SamEngine`` on the tiny
            SAM); overrides ``backend``/``model``/``checkpoint``
        gt_field: ground-truth masks (Detections with ``obj_index``)
        box_field: prompt boxes (Detections)
        obb_field: rotated boxes (Polylines) for the rotated prompts; None or
            missing: rotated prompts fall back to the H-Box (noted in the row)
        configs: configuration strings; None: ``TABLE1 + EXTRA_CONFIGS``
        protocol: limit to HRSC test images whose every ship has a mask
        out_dir: where to write ``study.md``, ``study.csv``, ``study.png``
        margin: region margin of each mask (None: the whole image, as the paper)
        rbox_margin: dilation in pixels of the rotated box for ``+clip_rbox``
        baseline_margin: region margin of the baseline rows (as the pipeline
            runs them: GrabCut works on the box's surroundings)
        device: device for a SAM built here
        progress: show a progress bar

    Returns:
        a :class:`StudyResult`
    """
    import fiftyone as fo

    from fiftyone_samrs.evaluating.evaluation import protocol_view
    from fiftyone_samrs.evaluating.loop import SampleRow, for_each_sample
    from fiftyone_samrs.fiftyone_io import check_label_field, object_inputs
    from fiftyone_samrs.formats.images import read_image
    from fiftyone_samrs.segmenting.backends import make_backend
    from fiftyone_samrs.segmenting.prompts import TABLE1

    names = list(configs) if configs is not None else list(TABLE1) + list(EXTRA_CONFIGS)
    parsed = [parse_config(c) for c in names]
    check_label_field(sample_collection, gt_field, fo.Detections, "ground-truth")
    check_label_field(sample_collection, box_field, fo.Detections, "prompt box")
    has_obb = bool(obb_field) and sample_collection.has_field(obb_field)
    view = protocol_view(sample_collection) if protocol else sample_collection

    if engine is None and any(p.backend == "sam" for p in parsed):
        engine = make_backend(backend, model=model, checkpoint=checkpoint, device=device)
    baselines = {}
    for p in parsed:
        if p.backend != "sam" and p.backend not in baselines:
            baselines[p.backend] = make_backend(p.backend)
    engine = as_engine(engine)
    can_encode = engine is not None and engine.encodes

    n_cfg = len(parsed)
    inters: List[List[int]] = [[] for _ in range(n_cfg)]
    unions: List[List[int]] = [[] for _ in range(n_cfg)]
    seconds = [0.0] * n_cfg
    notes: List[Counter] = [Counter() for _ in range(n_cfg)]
    result = StudyResult(rows=[], is_hrsc=_is_hrsc(view), protocol=protocol,
                         model=_model_name(engine, backend, model, checkpoint))

    def compute(row: SampleRow):
        objs = object_inputs(row.labels[box_field], row.labels[obb_field] if has_obb else None,
                             row.width, row.height)
        row_of = {k: i for i, k in reversed(list(enumerate(objs.obj_indexes)))}
        gts = []  # (object row, mask)
        for d, inst in zip(row.labels[gt_field], row.instances(gt_field)):
            if inst is None or not inst.mask.any():
                continue
            k = d.get("obj_index")
            gts.append((row_of.get(int(k)) if k is not None else None, inst))
        if not gts:
            return None
        result.images += 1
        result.instances += len(gts)
        result.missed += sum(r is None for r, _ in gts)
        used = sorted({r for r, _ in gts if r is not None})
        hb = objs.hboxes[used]
        qd = objs.quads[used] if objs.quads is not None else None
        image = read_image(row.filepath)
        size = (row.height, row.width)
        emb = None
        if can_encode and any(p.backend == "sam" for p in parsed) and used:
            t0 = time.perf_counter()
            emb = engine.encode([image])[0]
            result.encoder_seconds += time.perf_counter() - t0
        for c, p in enumerate(parsed):
            masks: Dict[int, InstanceMask] = {}
            if used:
                t0 = time.perf_counter()
                try:
                    res, names = config_masks(
                        p, ConfigInputs(image, hb, qd, objs.has_hbox, emb),
                        engine if p.backend == "sam" else baselines[p.backend],
                        margin if p.backend == "sam" else baseline_margin, rbox_margin)
                except ValueError as e:
                    notes[c][str(e)] += 1
                    res, names = [], []
                fell_back = [n for n in names if n != p.prompt]
                if fell_back and p.prompt != "auto":
                    notes[c]["%d objects without a rotated box used %s"
                             % (len(fell_back), fell_back[0])] += 1
                for i, r in enumerate(res):
                    masks[used[i]] = r.mask
                seconds[c] += time.perf_counter() - t0
            for r, gt in gts:
                pred = masks.get(r) if r is not None else None
                if pred is None:
                    inters[c].append(0)
                    unions[c].append(gt.area)
                else:
                    i_, u_ = mask_iou(pred, gt, size=size)
                    inters[c].append(i_)
                    unions[c].append(u_)
        return None

    fields = [box_field, gt_field] + ([obb_field] if has_obb else [])
    for_each_sample(view, fields, compute, progress=progress, batch_size=32)

    for c, p in enumerate(parsed):
        mi, mp = miou(inters[c], unions[c])
        paper = PAPER_TABLE1.get(p.name) if result.is_hrsc and p.backend == "sam" else None
        note = "; ".join("%s (%d images)" % kv if kv[1] > 1 else kv[0]
                         for kv in sorted(notes[c].items()))
        if p.backend == "sam" and backend != "sam" and engine is not None and not can_encode:
            note = ("run by %s; " % engine.name) + note
        result.rows.append(StudyRow(
            config=p.name,
            backend=p.backend if p.backend != "sam" else engine.name,
            n=len(inters[c]), miou_i=mi, miou_p=mp,
            paper_miou_i=paper[0] if paper else None, paper_miou_p=paper[1] if paper else None,
            seconds=seconds[c], note=note.strip("; "),
        ))
    if out_dir:
        result.write(out_dir)
    return result


def _model_name(engine, backend, model, checkpoint) -> str:
    if engine is None:
        return ""
    name = engine.name
    if name in model_backends():
        what = model or (os.path.basename(checkpoint) if checkpoint else None)
        return "%s (%s)" % (name, what) if what else name
    return name
