"""What :func:`~fiftyone_samrs.segment` writes for each predicted image, and the
thread that writes it.

Per image: one ``fo.Detection`` document per prompt object (the mask stored
as its tight crop, lossless, with a box FiftyOne renders exactly), and the
SAMRS semantic PNG (:func:`fiftyone_samrs.core.painting.paint_semantic`).
The :class:`Writer` thread writes the PNGs, then each batch of samples in one
bulk write (batches that queued up while it wrote go into one write), so a
sample counts as finished only once its PNG is on disk.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import fiftyone as fo
import numpy as np

from fiftyone_samrs.core import geometry, limits
from fiftyone_samrs.core.masks import polygon_pixels, relative_box
from fiftyone_samrs.core.painting import paint_semantic, write_label_png
from fiftyone_samrs.core.records import FormatError, InstanceMask
from fiftyone_samrs.fiftyone_io import (
    bson_size,
    bulk_set,
    dataset_dir,
    deserialize_mask,
    detection_doc,
    document_sizes,
    label_list_doc,
    segmentation_doc,
)

#: the attributes of the predicted Detections, declared on the label field
DETECTION_ATTRIBUTES = {"source_id": fo.StringField, "obj_index": fo.IntField,
                        "prompt": fo.StringField, "empty": fo.BooleanField,
                        "stability": fo.FloatField, "area": fo.IntField,
                        "fallback": fo.StringField}


@dataclass(frozen=True)
class LabelOptions:
    """How predicted masks become labels.

    Attributes:
        clip_to_rbox: AND each mask with its rotated box grown by ``rbox_margin``
        rbox_margin: see ``clip_to_rbox``
        class_index: class name -> pixel value of the PNGs
        paint_order: ``"annotation"`` or ``"small_last"``
    """

    clip_to_rbox: bool
    rbox_margin: float
    class_index: Dict[str, int]
    paint_order: str


def label_png_names(sample_ids: Sequence[str], filepaths: Sequence[str]) -> Dict[str, str]:
    """File names of the semantic PNGs: ``<stem>.png``, or ``<stem>-<id>.png``
    where two images of the dataset share a stem."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in filepaths]
    counts = Counter(stems)
    return {sid: ("%s-%s.png" % (stem, sid) if counts[stem] > 1 else stem + ".png")
            for sid, stem in zip(sample_ids, stems)}


def build_labels(job, options: LabelOptions, stats: Counter, unknown: Counter):
    """The Detections document and the semantic label of one predicted job.

    An empty mask keeps its Detection (flagged ``empty``, an all-False mask
    over the prompt box); a label outside the class list is not painted and
    counted in ``unknown``; a baseline's fallback mask (GrabCut's box where
    it found nothing) is flagged ``fallback``; a prompt without area (an
    inverted source box) was not sent to the engine: an empty mask flagged
    ``fallback="degenerate"``.
    """
    results = job.results or []
    objs = job.objects
    if len(results) != len(objs):
        raise RuntimeError("backend returned %d masks for %d prompts on %s"
                           % (len(results), len(objs), job.filepath))
    names = list(job.prompts.names) if job.prompts is not None else []
    docs, painted = [], []
    for i, res in enumerate(results):
        inst = res.mask
        if (options.clip_to_rbox and objs.quads is not None
                and np.isfinite(objs.quads[i]).all() and inst.mask.size):
            keep = polygon_pixels(objs.quads[i], inst.box, options.rbox_margin)
            inst = InstanceMask(np.asarray(inst.mask, dtype=bool) & keep, inst.x0, inst.y0)
        tight = inst.clipped(job.height, job.width).tight()
        label = objs.labels[i]
        idx = options.class_index.get(label)
        if idx is None:
            unknown[label] += 1
        if tight.area == 0:
            box = geometry.box_to_int_region(objs.hboxes[i], job.width, job.height)
            mask = np.zeros((max(box[3] - box[1], 1), max(box[2] - box[0], 1)), dtype=bool)
            bbox = geometry.box_to_relative(objs.hboxes[i], job.width, job.height)
            empty = True
            stats["empty"] += 1
        else:
            mask, bbox, empty = tight.mask, relative_box(tight.box, job.width, job.height), False
            painted.append((tight, idx))
        docs.append(detection_doc(
            label, bbox, mask, confidence=float(res.score), source_id=objs.ids[i],
            obj_index=int(objs.obj_indexes[i]), prompt=names[i] if i < len(names) else None,
            empty=bool(empty), area=int(tight.area),
            stability=float("nan") if res.stability is None else float(res.stability),
            # what a baseline gave instead of its mask (GrabCut's "box"): only when set
            **({"fallback": str(res.fallback)} if getattr(res, "fallback", None) else {})))
    stats["boxes"] += len(docs)
    semantic = paint_semantic(job.height, job.width, painted, order=options.paint_order)
    return label_list_doc(fo.Detections, docs), semantic


class Writer(threading.Thread):
    """Builds the labels, writes the PNGs and writes each batch to the database
    in one bulk write (both fields of a sample in one ``$set``).

    Args:
        dataset: the dataset
        label_field: the Detections field
        seg_field: the Segmentation field, or None
        options: how masks become labels
        on_done: called with each written batch of jobs
    """

    def __init__(self, dataset, label_field: str, seg_field: Optional[str],
                 options: LabelOptions, on_done: Callable[[List[Any]], None],
                 on_failure: Optional[Callable[[Any, Exception], None]] = None):
        super().__init__(name="samrs-writer", daemon=True)
        self.dataset = dataset
        self.label_field = label_field
        self.seg_field = seg_field
        self.options = options
        self.on_done = on_done
        self.on_failure = on_failure
        self.mask_files = 0
        self.queue: "queue.Queue[Optional[list]]" = queue.Queue(maxsize=4)
        self.error: Optional[BaseException] = None
        self.stats: Counter = Counter()
        self.unknown: Counter = Counter()
        self.written = 0

    #: at most this many samples in one bulk write when batches wait in the
    #: queue (the database lags): waiting batches are written together
    max_coalesce = 64

    def run(self):
        done = False
        while not done:
            jobs = self.queue.get()
            if jobs is None:
                return
            # batches that wait go into the same bulk write (fewer round trips
            # exactly when the database is the bottleneck)
            batches = [jobs]
            while sum(len(b) for b in batches) < self.max_coalesce:
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    done = True
                    break
                batches.append(more)
            if self.error is not None:
                continue  # drain after a failure
            try:
                self._write(batches)
            except BaseException as e:
                self.error = e

    def _write(self, batches: List[list]) -> None:
        """One bulk write for ``batches``; ``on_done`` is called per batch after it."""
        updates: Dict[str, dict] = {}
        jobs = [j for batch in batches for j in batch]
        stored = document_sizes(self.dataset, [j.sample_id for j in jobs],
                                [self.label_field, self.seg_field])
        for job in jobs:
            if getattr(job, "failed", False):
                continue
            stats, unknown = Counter(), Counter()
            dets, semantic = build_labels(job, self.options, stats, unknown)
            update = {self.label_field: dets}
            if self.seg_field:
                update[self.seg_field] = segmentation_doc(job.png_path)
            try:
                self._fit(job, update, stored.get(job.sample_id, 0))
            except FormatError as e:
                if self.on_failure is None:
                    raise
                self.on_failure(job, e)
                continue
            if self.seg_field:
                write_label_png(job.png_path, semantic)
            updates[job.sample_id] = update
            self.stats.update(stats)
            self.unknown.update(unknown)
        # the PNGs are on disk before the samples count as finished
        bulk_set(self.dataset, updates)
        self.written += len(updates)
        for batch in batches:
            self.on_done(batch)

    def _fit(self, job, update: dict, stored: int) -> None:
        """Keeps the sample under MongoDB's document limit: its masks go to
        mask files (``mask_path``) when they take more than
        :data:`~fiftyone_samrs.core.limits.INLINE_MASK_BYTES` or the document
        would pass :data:`~fiftyone_samrs.core.limits.MAX_SAMPLE_BYTES`.

        Raises:
            FormatError: naming the image, when even without inline masks the
                sample is over the limit (it has too many objects: tile it)
        """
        items = update[self.label_field]["detections"]
        inline = sum(len(d["mask"]) for d in items if "mask" in d)
        new = bson_size(update)
        if inline and (inline > limits.INLINE_MASK_BYTES
                       or stored + new > limits.MAX_SAMPLE_BYTES):
            self._masks_to_files(job, items)
            new = bson_size(update)
        if stored + new > limits.MAX_SAMPLE_BYTES:
            raise FormatError(job.filepath, "sample %s: %s" % (job.sample_id, limits.too_large_message(
                " (or segment fewer fields into it)", stored + new, len(items))))

    def _masks_to_files(self, job, items: List[dict]) -> None:
        folder = os.path.join(dataset_dir(self.dataset, "masks", self.label_field),
                              job.sample_id)
        for k, d in enumerate(items):
            if "mask" not in d:
                continue
            mask = deserialize_mask(d.pop("mask"))
            path = os.path.join(folder, "%d.png" % k)
            write_label_png(path, np.asarray(mask, dtype=bool).astype(np.uint8) * 255)
            d["mask_path"] = path
            self.mask_files += 1
