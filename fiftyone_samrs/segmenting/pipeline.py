"""Runs a segmentation backend over a FiftyOne view: the ``segment`` SDK call.

For every sample of the view it turns the box field (``hbb``, with the
rotated boxes of ``obb`` where a prompt needs them) into SAM prompts, runs
the backend, and writes

- ``label_field``: one :class:`fiftyone.core.labels.Detection` per prompt
  object, in the prompt order, with the mask cropped to its tight box;
- ``seg_field``: a :class:`fiftyone.core.labels.Segmentation` whose
  ``mask_path`` is a SAMRS semantic PNG (:mod:`fiftyone_samrs.core.painting`).

How the work is spread:

- a loader thread reads each batch's samples from the database and builds
  the prompts, and a pool of ``num_workers`` threads decodes the images (and
  runs the engine's ``preprocess`` when it has one) while the model runs;
- the calling thread only runs ``engine.predict_batch``;
- a writer thread builds the labels, paints and writes the PNGs and writes
  each batch to the database in one ``bulk_write`` (one ``$set`` of both
  fields per sample).

A sample is *finished* when its ``label_field`` is set and its
``seg_field`` PNG exists; finished samples are skipped unless
``overwrite=True``, so a killed run resumes where it stopped. Shards split a
view by sample id, independent of what is already done.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import fiftyone.core.runs as fors
import fiftyone.core.utils as fou
import numpy as np

from fiftyone_samrs.core import geometry
from fiftyone_samrs.core.classes import resolve_classes
from fiftyone_samrs.evaluating.evaluation import label_attr
from fiftyone_samrs.core.painting import PAINT_ORDERS, paint_semantic, write_label_png
from fiftyone_samrs.segmenting.prompts import build_prompts, needs_quads, parse_prompt
from fiftyone_samrs.core.records import FormatError, InstanceMask

logger = logging.getLogger(__name__)

_QUAD_NAMES = ("rhbox", "rbox_m", "rhbox_m")

#: settings that change the result: a resumed run must use the same ones
RESULT_SETTINGS = (
    "prompt", "backend", "model", "checkpoint", "box_field", "obb_field", "seg_field",
    "seg_dir", "classes", "margin", "clip_to_rbox", "rbox_margin", "paint_order",
)


# --------------------------------------------------------------------------
# result and run record


@dataclass
class SegmentResult:
    """What a :func:`segment` call did.

    Attributes:
        backend: name of the backend that ran (``"sam"``, ``"grabcut"``, ...)
        prompt: the prompt setting
        label_field: the Detections field written
        seg_field: the Segmentation field written, or None
        seg_dir: where the semantic PNGs are, or None
        samples_in_view: samples in the view
        samples_in_shard: samples of this shard (= the view without sharding)
        samples_processed: samples segmented by this call
        samples_skipped: samples of the shard already finished (resume)
        boxes: prompts (objects) segmented
        empty_masks: masks that came out empty (kept, flagged ``empty``)
        unknown_labels: objects whose label is not in the class list, by
            label: they have a Detection but are not painted (255)
        classes: the class list of the PNGs (index = pixel value)
        shard: ``(i, n)`` or None
        seconds: wall time
    """

    backend: str
    prompt: str
    label_field: str
    seg_field: Optional[str]
    seg_dir: Optional[str]
    samples_in_view: int = 0
    samples_in_shard: int = 0
    samples_processed: int = 0
    samples_skipped: int = 0
    boxes: int = 0
    empty_masks: int = 0
    unknown_labels: Counter = field(default_factory=Counter)
    classes: List[str] = field(default_factory=list)
    shard: Optional[Tuple[int, int]] = None
    seconds: float = 0.0

    def summary(self) -> str:
        """A few human-readable lines."""
        secs = max(self.seconds, 1e-9)
        lines = [
            "backend %s, prompt %s -> field %r%s"
            % (self.backend, self.prompt, self.label_field,
               ", semantic PNGs %r in %s" % (self.seg_field, self.seg_dir)
               if self.seg_field else ""),
            "%d samples segmented, %d already done (skipped)%s; %d boxes, %d empty masks"
            % (self.samples_processed, self.samples_skipped,
               ", shard %d/%d: %d of %d samples" % (self.shard[0], self.shard[1],
                                                   self.samples_in_shard, self.samples_in_view)
               if self.shard else "",
               self.boxes, self.empty_masks),
            "%.1f s (%.2f samples/s, %.1f boxes/s)"
            % (self.seconds, self.samples_processed / secs, self.boxes / secs),
        ]
        if self.unknown_labels:
            n = sum(self.unknown_labels.values())
            lines.append(
                "%d object%s with labels not in the class list (not painted, 255): %s"
                % (n, "" if n == 1 else "s",
                   ", ".join("%s: %d" % kv for kv in sorted(self.unknown_labels.items())))
            )
        return "\n".join(lines)


class SegmentRunConfig(fors.RunConfig):
    """The settings of a :func:`segment` run, stored as a FiftyOne run
    (``dataset.list_runs()``, ``dataset.get_run_info(key).config``)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("method", "samrs.segment")
        super().__init__(**kwargs)


class SegmentRun(fors.Run):
    """A :func:`segment` run; deleting its record leaves the fields alone."""

    def get_fields(self, samples, key):
        return [f for f in (getattr(self.config, "label_field", None),
                            getattr(self.config, "seg_field", None)) if f]


def run_key_for(label_field: str) -> str:
    """The run key under which a run writing ``label_field`` is recorded."""
    key = "".join(c if c.isalnum() or c == "_" else "_" for c in label_field)
    return key if key.isidentifier() else "_" + key


def get_segment_run(sample_collection, label_field: str = "sam") -> Optional[Dict[str, Any]]:
    """The recorded settings (and final counts) of the run that wrote ``label_field``.

    Returns:
        a dict, or None when no run is recorded under that field
    """
    key = run_key_for(label_field)
    if not sample_collection.has_run(key):
        return None
    config = sample_collection.get_run_info(key).config
    if getattr(config, "method", None) != "samrs.segment":
        return None
    out = config.serialize()
    for k in ("cls", "type"):
        out.pop(k, None)
    return out


def list_segment_runs(sample_collection) -> List[str]:
    """Keys of the :func:`segment` runs recorded on the dataset."""
    return sample_collection.list_runs(method="samrs.segment")


# --------------------------------------------------------------------------
# pure helpers


def shard_of(sample_id: str, n: int) -> int:
    """The shard (``0..n-1``) a sample belongs to: its ObjectId modulo ``n``."""
    return int(sample_id, 16) % n


def label_png_names(sample_ids: Sequence[str], filepaths: Sequence[str]) -> Dict[str, str]:
    """File names of the semantic PNGs: ``<stem>.png``, or ``<stem>-<id>.png``
    where two images of the dataset share a stem."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in filepaths]
    counts = Counter(stems)
    return {
        sid: ("%s-%s.png" % (stem, sid) if counts[stem] > 1 else stem + ".png")
        for sid, stem in zip(sample_ids, stems)
    }


def polygon_crop(points: np.ndarray, region: Tuple[int, int, int, int],
                 dilate: float = 0.0) -> np.ndarray:
    """Rasterises a convex polygon (source pixels), grown by ``dilate`` px, over a region.

    Pixel ``(i, j)`` is inside when its centre ``(j + 0.5, i + 0.5)`` is.

    Args:
        points: ``(K, 2)`` corners (their convex hull is used)
        region: ``(x0, y0, x1, y1)`` integer pixel region of the crop
        dilate: outward margin in pixels (mitred corners)

    Returns:
        a ``(y1 - y0, x1 - x0)`` bool array
    """
    import shapely
    from shapely.geometry import MultiPoint

    x0, y0, x1, y1 = region
    out = np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), dtype=bool)
    # the convex hull: the rotated box itself, and a segment or a point for a
    # degenerate one (which then only has an area once dilated)
    poly = MultiPoint(np.asarray(points, dtype=np.float64).reshape(-1, 2)).convex_hull
    if dilate > 0:
        poly = poly.buffer(dilate, cap_style="square", join_style="mitre")
    if out.size == 0 or poly.is_empty:
        return out
    # only the pixels of the crop under the polygon's bounds are tested
    px0, py0, px1, py1 = poly.bounds
    c0 = int(np.clip(np.floor(px0 - 0.5) - x0, 0, out.shape[1]))
    c1 = int(np.clip(np.ceil(px1 + 0.5) - x0, 0, out.shape[1]))
    r0 = int(np.clip(np.floor(py0 - 0.5) - y0, 0, out.shape[0]))
    r1 = int(np.clip(np.ceil(py1 + 0.5) - y0, 0, out.shape[0]))
    if c1 <= c0 or r1 <= r0:
        return out
    ys, xs = np.mgrid[r0:r1, c0:c1]
    shapely.prepare(poly)
    out[r0:r1, c0:c1] = shapely.contains_xy(poly, xs + (x0 + 0.5), ys + (y0 + 0.5))
    return out


def _tight(crop: np.ndarray, x0: int, y0: int) -> Optional[Tuple[np.ndarray, int, int]]:
    """The crop cut to the tight box of its True pixels, or None when empty."""
    rows = np.flatnonzero(crop.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(crop.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return np.ascontiguousarray(crop[r0:r1, c0:c1]), int(x0 + c0), int(y0 + r0)


def read_image(path: str) -> np.ndarray:
    """Decodes an image to RGB uint8 ``(H, W, 3)`` (EXIF orientation ignored,
    so pixels match the annotations' frame).

    Raises:
        FormatError: naming the file when it is missing or unreadable
    """
    if not os.path.isfile(path):
        raise FormatError(path, "image file not found")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise FormatError(path, "unreadable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# --------------------------------------------------------------------------
# per-sample work


@dataclass
class _Job:
    """One sample on its way through the pipeline (source pixels)."""

    sample_id: str
    filepath: str
    width: int
    height: int
    labels: List[str]
    source_ids: List[str]
    obj_indexes: List[int]
    hboxes: np.ndarray
    quads: Optional[np.ndarray]
    prompts: Any = None
    png_path: Optional[str] = None
    image: Any = None  # the decoded image, or the engine's preprocess() result
    results: Optional[list] = None


def _make_job(sample_id, filepath, width, height, dets, polylines, prompt, margin,
              png_path, obb_field) -> _Job:
    if not width or not height:
        raise FormatError(filepath, "sample %s has no image size in its metadata" % sample_id)
    dets = list(dets or [])
    n = len(dets)
    hboxes = np.zeros((n, 4), dtype=np.float64)
    labels, source_ids, obj_indexes, rh = [], [], [], []
    for i, det in enumerate(dets):
        hboxes[i] = geometry.clip_box(
            geometry.relative_to_box(det.bounding_box, width, height), width, height)
        labels.append(det.label)
        source_ids.append(det.id)
        obj_indexes.append(int(label_attr(det, "obj_index", i)))
        rh.append(bool(label_attr(det, "rh", False)))
    # relative -> pixel conversion noise (40/120*120 = 40.000000000000004)
    hboxes = np.round(hboxes, 6)
    has_hbox = not (n and all(rh))
    quads = None
    if obb_field:
        # rows stay NaN for objects without a rotated box
        by_index = {}
        for j, pl in enumerate(polylines or []):
            pts = pl.points[0] if pl.points else []
            if len(pts) >= 4:
                by_index.setdefault(int(label_attr(pl, "obj_index", j)),
                                    np.round(geometry.relative_to_points(pts[:4], width,
                                                                         height), 6))
        quads = np.full((n, 4, 2), np.nan)
        for i, k in enumerate(obj_indexes):
            if k in by_index:
                quads[i] = by_index[k]
    elif n and needs_quads(prompt, has_hbox):
        raise ValueError(
            "%s: prompt %r needs rotated boxes (%s), but the dataset has no rotated-box field"
            % (filepath, prompt, "the sample's boxes are all RH-Boxes" if prompt == "auto"
               else "it uses " + ", ".join(p for p in parse_prompt(prompt) if p in _QUAD_NAMES)))
    job = _Job(sample_id, filepath, int(width), int(height), labels, source_ids, obj_indexes,
               hboxes, quads, png_path=png_path)
    if n:
        job.prompts = build_prompts(hboxes, quads, prompt, (int(height), int(width)),
                                    has_hbox=has_hbox, margin=margin)
    return job


def _load_image(job: _Job, engine) -> _Job:
    image = read_image(job.filepath)
    if image.shape[:2] != (job.height, job.width):
        raise FormatError(
            job.filepath, "image is %dx%d but the sample's metadata says %dx%d; "
            "recompute it with compute_metadata(overwrite=True)"
            % (image.shape[1], image.shape[0], job.width, job.height))
    preprocess = getattr(engine, "preprocess", None)
    # SamEngine.predict_batch takes its preprocess() results in place of images
    job.image = preprocess(image) if preprocess is not None else image
    return job


#: the attributes of the predicted Detections, declared on the label field
DETECTION_ATTRIBUTES = (
    ("source_id", "StringField"), ("obj_index", "IntField"), ("prompt", "StringField"),
    ("empty", "BooleanField"), ("stability", "FloatField"), ("fallback", "StringField"),
)


def detection_doc(label: str, bounding_box: Sequence[float], mask: np.ndarray,
                  confidence: float, source_id: Optional[str], obj_index: int,
                  prompt: Optional[str], empty: bool, stability: float,
                  fallback: Optional[str] = None) -> Dict[str, Any]:
    """The database document of a predicted ``fo.Detection``.

    Exactly what FiftyOne stores for ``fo.Detection(label=..., bounding_box=...,
    mask=..., confidence=..., **attributes)`` (the mask serialised by
    FiftyOne's own :func:`fiftyone.core.utils.serialize_numpy_array`), built
    without the label objects: 10x cheaper, which matters at millions of boxes.
    ``fallback`` (what a baseline gave instead of its mask, e.g. GrabCut's
    ``"box"``) is stored only when set.
    """
    from bson import Binary, ObjectId
    from fiftyone.core.utils import serialize_numpy_array

    doc = {
        "_id": ObjectId(),
        "_cls": "Detection",
        "attributes": {},
        "tags": [],
        "label": label,
        "bounding_box": [float(v) for v in bounding_box],
        "mask": Binary(serialize_numpy_array(np.asarray(mask, dtype=bool))),
        "confidence": float(confidence),
        "source_id": source_id,
        "obj_index": int(obj_index),
        "prompt": prompt,
        "empty": bool(empty),
        "stability": float(stability),
    }
    if fallback is not None:
        doc["fallback"] = str(fallback)
    return doc


def _build_labels(job: _Job, clip_to_rbox: bool, rbox_margin: float, class_index: Dict[str, int],
                  paint_order: str, stats: Counter, unknown: Counter):
    """The Detections document and the semantic label of one predicted job."""
    docs, painted = [], []
    results = job.results or []
    if len(results) != len(job.labels):
        raise RuntimeError("backend returned %d masks for %d prompts on %s"
                           % (len(results), len(job.labels), job.filepath))
    names = list(job.prompts.names) if job.prompts is not None else []
    for i, res in enumerate(results):
        inst = res.mask
        crop = np.asarray(inst.mask, dtype=bool)
        x0, y0 = int(inst.x0), int(inst.y0)
        if clip_to_rbox and job.quads is not None and np.isfinite(job.quads[i]).all():
            h, w = crop.shape
            crop = crop & polygon_crop(job.quads[i], (x0, y0, x0 + w, y0 + h), rbox_margin)
        tight = _tight(crop, x0, y0) if crop.size else None
        idx = class_index.get(job.labels[i])
        if idx is None:
            unknown[job.labels[i]] += 1
        if tight is None:
            # kept and flagged: the prompt box with an all-False mask
            bx0, by0, bx1, by1 = geometry.box_to_int_region(job.hboxes[i], job.width, job.height)
            box = job.hboxes[i]
            mask = np.zeros((max(by1 - by0, 1), max(bx1 - bx0, 1)), dtype=bool)
            empty = True
            stats["empty"] += 1
        else:
            mask, tx, ty = tight
            box = (tx, ty, tx + mask.shape[1], ty + mask.shape[0])
            empty = False
            painted.append((InstanceMask(mask, tx, ty), idx))
        stability = float("nan") if res.stability is None else float(res.stability)
        docs.append(detection_doc(
            job.labels[i], geometry.box_to_relative(box, job.width, job.height), mask,
            res.score, job.source_ids[i], job.obj_indexes[i],
            names[i] if i < len(names) else None, empty, stability,
            getattr(res, "fallback", None)))
    stats["boxes"] += len(docs)
    label = paint_semantic(job.height, job.width, painted, order=paint_order)
    return {"_cls": "Detections", "detections": docs}, label


def _declare_fields(dataset, label_field: str, seg_field: Optional[str]) -> None:
    """Declares the output fields (and the Detections' attributes) in the schema."""
    import fiftyone as fo

    if not dataset.has_sample_field(label_field):
        dataset.add_sample_field(label_field, fo.EmbeddedDocumentField,
                                 embedded_doc_type=fo.Detections)
    for name, ftype in DETECTION_ATTRIBUTES:
        path = "%s.detections.%s" % (label_field, name)
        if not dataset.has_sample_field(path):
            dataset.add_sample_field(path, getattr(fo, ftype))
    if seg_field and not dataset.has_sample_field(seg_field):
        dataset.add_sample_field(seg_field, fo.EmbeddedDocumentField,
                                 embedded_doc_type=fo.Segmentation)


class _Writer(threading.Thread):
    """Builds the labels, writes the PNGs and writes each batch to the database
    in one ``bulk_write`` of ``$set`` (both fields of a sample in one update)."""

    def __init__(self, dataset, label_field, seg_field, build_kwargs, on_done):
        super().__init__(name="samrs-writer", daemon=True)
        self.dataset = dataset
        self.label_field = label_field
        self.seg_field = seg_field
        self.build_kwargs = build_kwargs
        self.on_done = on_done
        self.queue: "queue.Queue[Optional[List[_Job]]]" = queue.Queue(maxsize=4)
        self.error: Optional[BaseException] = None
        self.stats: Counter = Counter()
        self.unknown: Counter = Counter()
        self.written = 0

    def run(self):
        while True:
            jobs = self.queue.get()
            if jobs is None:
                return
            if self.error is not None:
                continue  # drain after a failure
            try:
                self._write(jobs)
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                self.error = e

    def _write(self, jobs: List[_Job]):
        from datetime import datetime

        from bson import ObjectId
        from pymongo import UpdateOne

        ops, ids = [], []
        now = datetime.utcnow()
        for job in jobs:
            stats, unknown = Counter(), Counter()
            dets, label = _build_labels(job, stats=stats, unknown=unknown, **self.build_kwargs)
            update = {self.label_field: dets, "last_modified_at": now}
            if self.seg_field:
                write_label_png(job.png_path, label)
                update[self.seg_field] = {"_id": ObjectId(), "_cls": "Segmentation", "tags": [],
                                          "mask_path": job.png_path}
            ops.append(UpdateOne({"_id": ObjectId(job.sample_id)}, {"$set": update}))
            ids.append(job.sample_id)
            self.stats.update(stats)
            self.unknown.update(unknown)
        # the PNGs are on disk before the sample counts as finished
        self.dataset._bulk_write(ops, ids=ids)
        self.written += len(jobs)
        self.on_done(jobs)


# --------------------------------------------------------------------------
# the SDK call


def _default_classes(dataset, box_field) -> List[str]:
    subset = ((dataset.info or {}).get("samrs") or {}).get("subset")
    if subset:
        return resolve_classes(subset)
    if dataset.classes.get(box_field):
        return list(dataset.classes[box_field])
    return sorted(l for l in dataset.distinct("%s.detections.label" % box_field) if l is not None)


def _check_field(dataset, name, fo_type, what):
    import fiftyone as fo

    schema = dataset.get_field_schema(flat=True)
    if name not in schema:
        return False
    doc_type = getattr(schema[name], "document_type", None)
    if doc_type is not fo_type:
        raise ValueError("%s field %r of dataset %r holds %s, expected %s"
                         % (what, name, dataset.name,
                            doc_type.__name__ if doc_type else type(schema[name]).__name__,
                            fo_type.__name__))
    return True


def _make_engine(backend, model, checkpoint, device, dtype, batch_size, decoder_chunk):
    from fiftyone_samrs.segmenting.backends import make_backend

    kwargs = {}
    if backend == "sam":
        kwargs = dict(encoder_batch=batch_size, decoder_chunk=decoder_chunk)
    return make_backend(backend, model=model, checkpoint=checkpoint, device=device, dtype=dtype,
                        **kwargs)


def _predict(engine, jobs: List[_Job]) -> None:
    """Runs the backend on the jobs that have objects; attaches the results."""
    todo = [j for j in jobs if j.prompts is not None and len(j.prompts)]
    for j in jobs:
        j.results = []
    if not todo:
        return
    out = engine.predict_batch([j.image for j in todo], [j.prompts for j in todo])
    if len(out) != len(todo):
        raise RuntimeError("backend %r returned results for %d images, expected %d"
                           % (getattr(engine, "name", engine), len(out), len(todo)))
    for j, res in zip(todo, out):
        j.results = list(res)
        j.image = None  # free memory early


def segment(
    sample_collection,
    prompt: str = "auto",
    backend: str = "sam",
    model: Optional[str] = None,
    checkpoint: Optional[str] = None,
    label_field: str = "sam",
    seg_field: Optional[str] = "sam_seg",
    box_field: str = "hbb",
    obb_field: Optional[str] = "obb",
    classes=None,
    seg_dir: Optional[str] = None,
    batch_size: int = 4,
    decoder_chunk: int = 64,
    device=None,
    dtype=None,
    overwrite: bool = False,
    shard: Optional[Tuple[int, int]] = None,
    margin: float = 0.1,
    clip_to_rbox: bool = False,
    rbox_margin: float = 2.0,
    paint_order: str = "annotation",
    num_workers: int = 2,
    progress=True,
    engine=None,
) -> SegmentResult:
    """Segments every box of a view with SAM (or a baseline backend).

    Args:
        sample_collection: a FiftyOne dataset or view of images
        prompt: a prompt name (``"hbox"``, ``"rhbox"``, ``"cp"``, ``"hbox_m"``,
            ``"rbox_m"``, ``"rhbox_m"``), a ``"+"`` combination, or ``"auto"``
            (H-Box where the source has horizontal boxes, else RH-Box)
        backend: ``"sam"``, ``"grabcut"`` or ``"boxfill"``
        model: SAM model type or FiftyOne zoo name (inferred from the
            checkpoint when None)
        checkpoint: a local SAM checkpoint (``.pth``)
        label_field: the Detections field to write
        seg_field: the Segmentation field to write, or None for no PNGs
        box_field: the Detections field with the prompt boxes
        obb_field: the Polylines field with the rotated boxes (linked by
            ``obj_index``), or None
        classes: class list of the PNGs, a subset name (``"SOTA"``) or a list;
            default: ``dataset.info["samrs"]["subset"]``, else
            ``dataset.classes[box_field]``, else the sorted labels
        seg_dir: folder of the PNGs; default
            ``<fo.config.default_dataset_dir>/<dataset name>/<seg_field>``
        batch_size: images per model call (and per database write)
        decoder_chunk: boxes per mask-decoder call (SAM)
        device: ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"cpu"``; None = auto
        dtype: encoder dtype on CUDA (None = bf16 where supported, else fp16)
        overwrite: redo samples that are already finished
        shard: ``(i, n)``: process only shard ``i`` of ``n`` (by sample id)
        margin: how far (fraction of the box side) a mask may reach beyond
            its prompt box
        clip_to_rbox: AND each mask with its rotated box grown by
            ``rbox_margin`` pixels, where the object has one
        rbox_margin: see ``clip_to_rbox``
        paint_order: ``"annotation"`` (later wins, SAMRS) or ``"small_last"``
        num_workers: image decoding threads
        progress: show a progress bar (True/False), or a FiftyOne progress
            callback (as ``fo.report_progress``; it receives a
            :class:`fiftyone.core.utils.ProgressBar` after each batch)
        engine: an already-built backend (anything with ``name`` and
            ``predict_batch``); overrides ``backend``/``model``/``checkpoint``

    Returns:
        a :class:`SegmentResult`

    Raises:
        ValueError: for bad settings, a prompt that needs rotated boxes on a
            dataset without them, or a resumed run with different settings
        FormatError: for an image that cannot be read or does not match its
            metadata
    """
    import fiftyone as fo

    start = time.time()
    if paint_order not in PAINT_ORDERS:
        raise ValueError("paint_order must be one of %s, got %r" % (PAINT_ORDERS, paint_order))
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1, got %r" % batch_size)
    if shard is not None:
        shard = (int(shard[0]), int(shard[1]))
        if not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
            raise ValueError("shard must be (i, n) with 0 <= i < n, got %r" % (shard,))
    dataset = sample_collection._dataset
    if sample_collection.media_type != "image":
        raise ValueError("segment() needs an image collection; %r holds %s"
                         % (dataset.name, sample_collection.media_type))
    if not _check_field(dataset, box_field, fo.Detections, "Box"):
        raise ValueError("Dataset %r has no box field %r (fields: %s)"
                         % (dataset.name, box_field,
                            ", ".join(sorted(dataset.get_field_schema()))))
    has_obb = bool(obb_field) and _check_field(dataset, obb_field, fo.Polylines, "Rotated-box")
    if needs_quads(prompt) and not has_obb:  # also rejects a bad prompt, before any work
        raise ValueError(
            "Prompt %r needs rotated boxes, but dataset %r has %s; use prompt='hbox' or "
            "'auto', or import the rotated boxes"
            % (prompt, dataset.name, "no field %r" % obb_field if obb_field
               else "obb_field=None"))
    if label_field in (box_field, obb_field) or label_field == seg_field:
        raise ValueError("label_field %r would overwrite an input field" % label_field)
    if dataset.has_sample_field(label_field):
        _check_field(dataset, label_field, fo.Detections, "Label")
    if seg_field and dataset.has_sample_field(seg_field):
        _check_field(dataset, seg_field, fo.Segmentation, "Segmentation")

    class_list = resolve_classes(classes) if classes is not None else _default_classes(
        dataset, box_field)
    class_index = {c: i for i, c in enumerate(class_list)}
    if seg_field:
        seg_dir = os.path.abspath(seg_dir or os.path.join(
            fo.config.default_dataset_dir, dataset.name, seg_field))
    else:
        seg_dir = None

    backend_name = getattr(engine, "name", backend) if engine is not None else backend

    # the run record: settings that change the result must match a resumed run
    settings = dict(
        prompt=prompt, backend=backend_name, model=model, checkpoint=checkpoint,
        box_field=box_field, obb_field=obb_field if has_obb else None, label_field=label_field,
        seg_field=seg_field, seg_dir=seg_dir, classes=class_list, margin=margin,
        clip_to_rbox=clip_to_rbox, rbox_margin=rbox_margin, paint_order=paint_order,
    )
    run_key = run_key_for(label_field)
    previous = get_segment_run(dataset, label_field)
    if seg_dir:
        for key in list_segment_runs(dataset):
            other = dataset.get_run_info(key).config
            if (getattr(other, "seg_dir", None) == seg_dir
                    and getattr(other, "seg_field", None) not in (None, seg_field)):
                raise ValueError(
                    "seg_dir %s already holds the PNGs of field %r (run %r); choose another "
                    "seg_dir" % (seg_dir, other.seg_field, key))

    # what to do: the shard of the view, minus what is finished
    view_ids = sample_collection.values("id")
    shard_ids = [s for s in view_ids if shard is None or shard_of(s, shard[1]) == shard[0]]
    done = set()
    if not overwrite and dataset.has_sample_field(label_field):
        done = _finished_ids(dataset, shard_ids, label_field, seg_field)
    if done and previous is not None and not overwrite:
        changed = [k for k in RESULT_SETTINGS if previous.get(k) != settings[k]]
        if changed:
            raise ValueError(
                "Field %r holds a run with other settings (%s); pass overwrite=True to redo "
                "it, or write to another label_field"
                % (label_field, "; ".join("%s: %r -> %r" % (k, previous.get(k), settings[k])
                                          for k in changed)))
    todo = [s for s in shard_ids if s not in done]

    result = SegmentResult(
        backend=backend_name, prompt=prompt, label_field=label_field, seg_field=seg_field,
        seg_dir=seg_dir, samples_in_view=len(view_ids), samples_in_shard=len(shard_ids),
        samples_skipped=len(done), classes=class_list, shard=shard,
    )
    config_cls = SegmentRunConfig
    dataset.register_run(run_key, config_cls(**settings, status="running", shard=shard),
                         overwrite=True, cleanup=False)

    if seg_field:
        targets = {i: c for i, c in enumerate(class_list)}
        if dataset.mask_targets.get(seg_field) != targets:
            dataset.mask_targets[seg_field] = targets
            dataset.save()

    if todo:
        if engine is None:  # only now: a finished run does not load the model
            engine = _make_engine(backend, model, checkpoint, device, dtype, batch_size,
                                  decoder_chunk)
        _declare_fields(dataset, label_field, seg_field)
        _ensure_metadata(sample_collection, todo)
        png_names = {}
        if seg_field:
            all_ids, all_paths = dataset.values(["id", "filepath"])
            png_names = label_png_names(all_ids, all_paths)
        _run(sample_collection, dataset, engine, todo, result, png_names, seg_dir,
             prompt=prompt, margin=margin, box_field=box_field,
             obb_field=obb_field if has_obb else None, label_field=label_field,
             seg_field=seg_field, batch_size=batch_size, num_workers=num_workers,
             progress=progress,
             build_kwargs=dict(clip_to_rbox=clip_to_rbox, rbox_margin=rbox_margin,
                               class_index=class_index, paint_order=paint_order))

    result.seconds = time.time() - start
    final = dict(settings, status="complete", shard=shard,
                 samples_processed=result.samples_processed, samples_skipped=result.samples_skipped,
                 boxes=result.boxes, empty_masks=result.empty_masks,
                 unknown_labels=dict(result.unknown_labels), seconds=round(result.seconds, 3))
    dataset.update_run_config(run_key, config_cls(**final))
    return result


def _chunks(items: Sequence, size: int = 20000):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _finished_ids(dataset, ids, label_field, seg_field) -> set:
    """Ids (among ``ids``) whose label field is set and whose PNG exists."""
    if not ids:
        return set()
    wanted = set(ids)
    view = dataset.exists(label_field)  # no huge $in: filter the ids here
    if not seg_field:
        return wanted.intersection(view.values("id"))
    if not dataset.has_sample_field(seg_field):
        return set()
    sids, paths = view.values(["id", seg_field + ".mask_path"])
    return {s for s, p in zip(sids, paths) if s in wanted and p and os.path.isfile(p)}


def _ensure_metadata(sample_collection, ids) -> None:
    """Computes the metadata of the samples (among ``ids``) that have none."""
    dataset = sample_collection._dataset
    wanted = set(ids)
    missing = [s for s in dataset.exists("metadata", False).values("id") if s in wanted]
    if missing:
        logger.info("computing metadata of %d samples", len(missing))
        for chunk in _chunks(missing):
            dataset.select(chunk).compute_metadata()


def _run(sample_collection, dataset, engine, todo, result, png_names, seg_dir, *, prompt, margin,
         box_field, obb_field, label_field, seg_field, batch_size, num_workers, progress,
         build_kwargs):
    from tqdm import tqdm

    fields = ["id", "filepath", "metadata.width", "metadata.height", box_field + ".detections"]
    if obb_field:
        fields.append(obb_field + ".polylines")
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    pool = ThreadPoolExecutor(max(1, num_workers), thread_name_prefix="samrs-load")
    ready: "queue.Queue" = queue.Queue(maxsize=2)
    stop = threading.Event()

    def load_batches():
        try:
            for ids in batches:
                if stop.is_set():
                    return
                cols = sample_collection.select(ids, ordered=True).values(fields)
                futures: List[Future] = []
                for row in zip(*cols):
                    sid, fp, w, h, dets = row[:5]
                    polylines = row[5] if obb_field else None
                    png = os.path.join(seg_dir, png_names[sid]) if seg_field else None
                    job = _make_job(sid, fp, w, h, dets, polylines, prompt, margin, png, obb_field)
                    if job.prompts is not None and len(job.prompts):
                        futures.append(pool.submit(_load_image, job, engine))
                    else:
                        f: Future = Future()
                        f.set_result(job)
                        futures.append(f)
                _put(futures)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            _put(e)
        finally:
            _put(None)

    def _put(item):
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    callback = progress if callable(progress) else None
    bar = tqdm(total=len(todo), unit="samples", disable=not progress or callback is not None,
               desc="segment", dynamic_ncols=True)
    cb_bar = fou.ProgressBar(total=len(todo), progress=callback) if callback else None
    if cb_bar is not None:
        cb_bar.start()
    t0 = time.time()

    def on_done(jobs):
        elapsed = max(time.time() - t0, 1e-9)
        bar.update(len(jobs))
        bar.set_postfix_str("%.1f boxes/s" % (writer.stats["boxes"] / elapsed), refresh=False)
        if cb_bar is not None:
            cb_bar.update(len(jobs))

    writer = _Writer(dataset, label_field, seg_field, build_kwargs, on_done)
    writer.start()
    loader = threading.Thread(target=load_batches, name="samrs-loader", daemon=True)
    loader.start()
    try:
        while True:
            item = ready.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            jobs = [f.result() for f in item]
            _predict(engine, jobs)
            if writer.error is not None:
                raise writer.error
            writer.queue.put(jobs)
    finally:
        stop.set()
        # finish the batches already predicted, so a rerun skips them
        writer.queue.put(None)
        writer.join()
        pool.shutdown(wait=True, cancel_futures=True)
        loader.join(timeout=5)
        bar.close()
        if cb_bar is not None:
            cb_bar.close()
        result.samples_processed += writer.written
        result.boxes += writer.stats["boxes"]
        result.empty_masks += writer.stats["empty"]
        result.unknown_labels.update(writer.unknown)
    if writer.error is not None:
        raise writer.error
