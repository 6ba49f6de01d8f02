"""COCO instance JSON with RLE masks, written as a stream.

:class:`COCOJSONWriter` writes the ``images`` and ``annotations`` arrays to
two part files as samples arrive and joins them under the header at the end,
so memory does not grow with the dataset. :class:`COCOInstanceDatasetExporter`
is the FiftyOne exporter (``dataset.export(dataset_type=
fiftyone_samrs.types.COCOInstanceDataset, label_field="sam")``);
:func:`export_coco` is the SDK call, which reads the database documents
directly (no ``Sample`` objects) and is several times faster.

Each annotation: ``segmentation`` = COCO RLE of the full-image mask
(``counts`` a string), ``bbox`` ``[x, y, w, h]`` and ``area`` computed from the
mask with ``pycocotools.mask.toBbox`` / ``area`` (not the prompt box),
``iscrowd`` 0, plus ``score`` (SAM's predicted IoU), ``prompt_bbox`` (the
prompt box, ``[x, y, w, h]`` pixels) where known, and ``rbox`` (the rotated
box, ``[x1, y1, ..., x4, y4]``) with ``rbox_source`` (``"source"``, or
``"mask"`` where it is derived from the mask), and ``review`` (the review
decision, where one was made; rejected instances are left out). Category ids are the class
list positions plus ``category_id_start`` (1 by default; the SAMRS layout
passes 0, as the release and MTP: category id = pixel value in its PNG).

Beside the whole file, one file per split (``<stem>_<split>.json``: splits
follow the samples' ``split`` field, :mod:`~fiftyone_samrs.exporting.splits`)
and the dataset card (:mod:`~fiftyone_samrs.exporting.card`).
:class:`FolderExporter` is the base of the layouts that own a folder (SAMRS,
YOLO).

Image ids are stable: ``images[].id`` is the sample's ``coco_id`` field (an
integer that FiftyOne's own COCO importer also uses), given once to every
sample of the dataset that lacks one (1..N in dataset order the first time,
then the next free numbers for new samples; see :func:`assign_image_ids`).
So exports of different views of one dataset (ground truth from one view,
predictions from another) agree on every image's id, and
``COCO.loadRes`` scores each image's predictions against its own ground
truth. Annotation ids count from 1 over the whole file (the per-split files
keep them: unique in each).
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from typing import Any, Dict, List, Optional, Sequence, Tuple

import fiftyone.core.labels as fol
import fiftyone.utils.data as foud
import numpy as np

from fiftyone_samrs import __version__
from fiftyone_samrs.core.classes import class_index
from fiftyone_samrs.exporting.card import CARD_FILES, ExportStats
from fiftyone_samrs.exporting.coco_rle import (
    encode_crops,
    rle_area,
    rle_bbox,
    rle_to_json,
)
from fiftyone_samrs.exporting.common import (
    HOLD_NAME,
    LOCK_NAME,
    MANIFEST_NAME,
    MANIFEST_SUFFIX,
    UNKNOWN_CHOICES,
    BackgroundWriter,
    ExportLock,
    ExportManifest,
    ExportResult,
    Instance,
    SampleDoc,
    StemMaker,
    Timer,
    check_known_classes,
    class_indices,
    derive_rboxes,
    existing_field,
    instances_of,
    iter_sample_docs,
    normalize_export_media,
    prepare_export_target,
    resolve_export_classes,
    transfer_media,
)
from fiftyone_samrs.exporting.splits import SPLITS, SplitCounts, SplitPlan, plan_splits
from fiftyone_samrs.fiftyone_io import check_label_field, image_metadata, raw_labels

_JSON = dict(separators=(",", ":"))

#: ``(instance, class index, compressed RLE, area)`` of a written annotation
Written = Tuple[Instance, int, Dict[str, Any], int]


def kept_instances(instances, indices, keep_empty: bool, filepath: str,
                   result: ExportResult) -> List[Tuple[Instance, int]]:
    """The objects to write: a known class, and a mask unless ``keep_empty``
    (an empty mask is skipped and counted); not one rejected in review."""
    keep: List[Tuple[Instance, int]] = []
    for i, (inst, idx) in enumerate(zip(instances, indices)):
        if idx is None or inst.rejected:
            continue
        if not keep_empty and inst.empty:
            result.skip("empty mask", "%s: object %d (%r) has an empty mask"
                        % (filepath, i, inst.label))
            continue
        keep.append((inst, idx))
    return keep


class COCOJSONWriter:
    """Streams a COCO instance JSON file.

    Args:
        labels_path: the JSON file to write
        classes: the class list (category ``i + category_id_start``)
        category_id_start: id of the first category (0 as SAMRS, 1 as COCO)
        keep_empty: write objects whose mask is empty (area 0); by default
            they are skipped and counted
        info: extra ``info`` entries
        flush_every: flush the part files every this many images
    """

    def __init__(
        self,
        labels_path: str,
        classes: Sequence[str],
        category_id_start: int = 0,
        keep_empty: bool = False,
        info: Optional[Dict[str, Any]] = None,
        flush_every: int = 256,
    ):
        self.labels_path = os.path.abspath(labels_path)
        self.classes = list(classes)
        self.category_id_start = int(category_id_start)
        self.keep_empty = keep_empty
        self.info = dict(info or {})
        self.flush_every = max(int(flush_every), 1)
        self.num_images = 0
        self.num_annotations = 0
        self._last_id = 0
        self._parts = None
        self._first = [True, True]

    def open(self) -> None:
        parent = os.path.dirname(self.labels_path)
        os.makedirs(parent, exist_ok=True)
        self._parts = (
            open(self.labels_path + ".images.part", "w"),
            open(self.labels_path + ".annotations.part", "w"),
        )

    def _append(self, which: int, items: List[str]) -> None:
        if not items:
            return
        f = self._parts[which]
        if not self._first[which]:
            f.write(",\n")
        f.write(",\n".join(items))
        self._first[which] = False

    def add_image(
        self,
        file_name: str,
        width: int,
        height: int,
        instances: Sequence[Instance],
        indices: Sequence[Optional[int]],
        filepath: str,
        result: ExportResult,
        image_id: Optional[int] = None,
        mirrors: Sequence["COCOJSONWriter"] = (),
    ) -> List[Written]:
        """Writes one image and its annotations.

        Args:
            file_name: ``images[].file_name``
            width, height: the image size
            instances: the objects, in annotation order
            indices: class index per object; None = left out (already counted)
            filepath: the sample's filepath, for messages
            result: where to count skipped empty masks
            image_id: ``images[].id`` (default: the image's position in the file)
            mirrors: writers that get the same lines (the per-split files;
                annotation ids are this file's, so unique in each)

        Returns:
            what was written (for the SAMRS pickles, rotated boxes, statistics);
            each instance's ``rbox`` is set (the source's, or derived from its mask)
        """
        if image_id is None:
            image_id = self.num_images + 1
        image_line = json.dumps({"id": image_id, "file_name": file_name,
                                 "width": int(width), "height": int(height)}, **_JSON)
        keep = kept_instances(instances, indices, self.keep_empty, filepath, result)
        out: List[Written] = []
        lines = []
        if keep:
            rles = encode_crops([(inst.crop, inst.x0, inst.y0) for inst, _ in keep],
                                height, width)
            derive_rboxes([inst for inst, _ in keep])
            for (inst, idx), rle, area, box in zip(keep, rles, rle_area(rles), rle_bbox(rles)):
                self._last_id += 1
                lines.append(json.dumps(self._annotation(inst, idx, rle, area, box, image_id),
                                        **_JSON))
                out.append((inst, idx, rle, area))
        for writer in (self,) + tuple(mirrors):
            writer.add_lines(image_line, lines)
        return out

    def _annotation(self, inst: Instance, idx: int, rle, area: int, box, image_id: int
                    ) -> Dict[str, Any]:
        ann = {
            "id": self._last_id,
            "image_id": image_id,
            "category_id": idx + self.category_id_start,
            "segmentation": rle_to_json(rle),
            "area": area,
            "bbox": box,
            "iscrowd": 0,
        }
        if inst.score is not None:
            ann["score"] = inst.score
        if inst.prompt_box is not None:
            x0, y0, x1, y1 = inst.prompt_box
            ann["prompt_bbox"] = [x0, y0, round(x1 - x0, 6), round(y1 - y0, 6)]
        if inst.rbox is not None:
            ann["rbox"] = np.round(inst.rbox, 2).ravel().tolist()
            ann["rbox_source"] = inst.rbox_source
        if inst.review:
            ann["review"] = inst.review
        return ann

    def add_lines(self, image_line: str, annotation_lines: List[str]) -> None:
        """Appends one image's JSON lines (made by :meth:`add_image`)."""
        if self._parts is None:
            raise RuntimeError("COCOJSONWriter.open() was not called")
        self.num_images += 1
        self.num_annotations += len(annotation_lines)
        self._append(0, [image_line])
        self._append(1, annotation_lines)
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if self.num_images % self.flush_every == 0:
            for f in self._parts:
                f.flush()

    def close(self) -> None:
        """Joins header, images and annotations into ``labels_path``."""
        if self._parts is None:
            return
        for f in self._parts:
            f.close()
        info = {
            "description": "instance masks exported by fiftyone-samrs",
            "version": __version__,
            "date_created": datetime.now().replace(microsecond=0).isoformat(),
            "category_id_start": self.category_id_start,
        }
        info.update(self.info)
        categories = [{"id": i + self.category_id_start, "name": c, "supercategory": ""}
                      for i, c in enumerate(self.classes)]
        tmp = self.labels_path + ".tmp"
        with open(tmp, "w") as out:
            out.write('{"info":%s,\n"licenses":[],\n"categories":%s,\n"images":[\n'
                      % (json.dumps(info, **_JSON), json.dumps(categories, **_JSON)))
            with open(self.labels_path + ".images.part") as f:
                shutil.copyfileobj(f, out, 1 << 20)
            out.write('\n],\n"annotations":[\n')
            with open(self.labels_path + ".annotations.part") as f:
                shutil.copyfileobj(f, out, 1 << 20)
            out.write("\n]}\n")
        os.replace(tmp, self.labels_path)
        self._remove_parts()
        self._parts = None

    def abort(self) -> None:
        """Closes and removes the part files (after an error; a close that
        fails, e.g. on a full disk, does not hide that error)."""
        if self._parts is not None:
            for f in self._parts:
                try:
                    f.close()
                except OSError:
                    pass
            self._parts = None
        self._remove_parts()

    def _remove_parts(self) -> None:
        for suffix in (".images.part", ".annotations.part", ".tmp"):
            try:
                os.remove(self.labels_path + suffix)
            except FileNotFoundError:
                pass


class COCOInstanceDatasetExporter(foud.LabeledImageDatasetExporter, foud.ExportPathsMixin):
    """Exports instance masks as COCO instance JSON with RLE segmentations.

    Use through FiftyOne::

        dataset.export(export_dir, dataset_type=fsr.types.COCOInstanceDataset,
                       label_field="sam", classes="SOTA")

    ``label_field`` may also be a dict ``{"sam": "instances", "hbb":
    "prompts"}`` to record the prompt boxes. :func:`export_coco` is the faster
    SDK route.

    Args:
        export_dir: the folder (``annotations.json`` + ``images/``)
        labels_path: the JSON path (default ``<export_dir>/annotations.json``)
        data_path: the images folder (default ``<export_dir>/images``, or
            ``images/`` beside ``labels_path``)
        export_media: True / "copy", "move", "symlink", or False (the JSON
            then holds absolute image paths)
        classes: a subset name (``"SOTA"``), a list, or None (found from the
            collection: see :func:`~fiftyone_samrs.exporting.common.resolve_export_classes`)
        category_id_start: 1 (COCO convention, default) or 0 (SAMRS release)
        unknown: ``"error"`` or ``"ignore"`` (leave out and count) for labels
            not in ``classes``
        keep_empty: also write objects with empty masks
        overwrite: replace existing files instead of refusing
        num_workers: background threads for media copies
        instances_field, seg_field: field names used only to find defaults
            (classes) in the collection
        stable_ids: image ids from the samples' ``coco_id`` (given where
            missing, see :func:`assign_image_ids`); False numbers the images
            of this file 1..N
        split_ratio: fraction of the source images *without* a ``split``
            field that go to train (the rest to val), whole source images
            at a time (:mod:`~fiftyone_samrs.exporting.splits`); None: they
            go to train
        seed: seed of that assignment
        split_files: also write ``<labels stem>_<split>.json`` per split
        card: also write ``README.md``, ``stats.json`` and ``splits.json``
            beside the labels file (:mod:`~fiftyone_samrs.exporting.card`)
    """

    #: FiftyOne leaves existing-folder handling to us (refuse unless overwrite)
    _manages_existing_export_dir = True
    _format = "coco"
    #: whether the layout has COCO JSON files (the YOLO layout has none)
    _writes_json = True

    def __init__(
        self,
        export_dir: Optional[str] = None,
        labels_path: Optional[str] = None,
        data_path: Optional[str] = None,
        export_media=None,
        classes=None,
        category_id_start: int = 1,
        unknown: str = "error",
        keep_empty: bool = False,
        overwrite: bool = False,
        num_workers: int = 2,
        instances_field: str = "sam",
        seg_field: Optional[str] = "sam_seg",
        info: Optional[Dict[str, Any]] = None,
        stable_ids: bool = True,
        split_ratio: Optional[float] = None,
        seed: int = 0,
        split_files: bool = True,
        card: bool = True,
    ):
        if export_dir is None and labels_path is None:
            raise ValueError("Give export_dir or labels_path")
        if unknown not in UNKNOWN_CHOICES:
            raise ValueError("unknown must be one of %s, got %r" % (UNKNOWN_CHOICES, unknown))
        labels_path = self._parse_labels_path(export_dir, labels_path, "annotations.json")
        if data_path is None:
            data_path = os.path.join(os.path.dirname(os.path.abspath(labels_path)), "images")
        elif export_dir is not None and not os.path.isabs(data_path):
            data_path = os.path.join(export_dir, data_path)
        super().__init__(export_dir=export_dir)
        self.labels_path = os.path.abspath(labels_path)
        self.data_path = os.path.abspath(data_path)
        self.export_media = normalize_export_media(export_media)
        self.classes = classes
        self.category_id_start = category_id_start
        self.unknown = unknown
        self.keep_empty = keep_empty
        self.overwrite = overwrite
        self.num_workers = num_workers
        self.instances_field = instances_field
        self.seg_field = seg_field
        self.info = info
        self.stable_ids = stable_ids
        self.split_ratio = split_ratio
        self.seed = seed
        self.split_files = split_files
        self.card = card
        self._plan = SplitPlan()
        self._split_counts: Dict[str, SplitCounts] = {}
        self._split_coco: Dict[str, COCOJSONWriter] = {}
        self._stats: Optional[ExportStats] = None
        self._image_ids: Dict[str, int] = {}
        self._image_ids_by_path: Dict[str, int] = {}
        self.result = ExportResult(format=self._format)
        self._collection = None
        self._class_list: Optional[List[str]] = None
        self._index: Dict[str, int] = {}
        self._coco: Optional[COCOJSONWriter] = None
        self._stems = StemMaker()
        self._pool: Optional[BackgroundWriter] = None
        self._timer: Optional[Timer] = None
        self._manifest: Optional[ExportManifest] = None
        self._lock: Optional[ExportLock] = None

    # -- FiftyOne exporter interface ---------------------------------------

    @property
    def requires_image_metadata(self) -> bool:
        return True

    @property
    def label_cls(self):
        return {"instances": fol.Detections, "prompts": fol.Detections,
                "quads": fol.Polylines}

    def _contents(self) -> List[str]:
        """What must not exist (a folder: be non-empty) unless ``overwrite``."""
        out = [self.labels_path]
        if self.export_media is not False:
            out.append(self.data_path)
        return out

    def _manifest_path(self) -> str:
        return self.labels_path + MANIFEST_SUFFIX

    def _roots(self) -> List[str]:
        """The folders this export writes into (its manifest lists nothing else)."""
        out = [os.path.dirname(self.labels_path)]
        if self.export_media is not False:
            out.append(self.data_path)
        return out

    def setup(self) -> None:
        self._timer = Timer()
        self._manifest = ExportManifest(self._manifest_path(), self._roots(), self._format)
        self._lock = ExportLock(self._manifest.base).acquire()
        try:
            prepare_export_target(self._manifest, self._contents(), self.overwrite,
                                  "The export target %s" % (self.export_dir or self.labels_path))
        except BaseException:
            self._lock.release()
            raise
        json_files = [self.labels_path] if self._writes_json else []
        if self._writes_json and self.split_files:
            json_files += [self.split_labels_path(split) for split in SPLITS]
        for path in json_files:
            for suffix in ("", ".images.part", ".annotations.part", ".tmp"):
                self._manifest.claim(path + suffix)
        for path in self._card_paths().values():
            self._manifest.claim(path)
        if self.export_media is not False:
            self._manifest.makedirs(self.data_path)
        self._pool = BackgroundWriter(self.num_workers)
        self.result.export_dir = self.export_dir and os.path.abspath(self.export_dir)
        self.result.labels_path = self.labels_path

    def split_labels_path(self, split: str) -> str:
        """``<labels stem>_<split>.json`` beside the labels file."""
        stem, ext = os.path.splitext(self.labels_path)
        return "%s_%s%s" % (stem, split, ext or ".json")

    def _card_paths(self) -> Dict[str, str]:
        """``README.md``, ``stats.json``, ``splits.json`` beside the labels
        file; prefixed with its stem (``sam.README.md``) unless it is
        ``annotations.json``, so several JSON files can share a folder."""
        if not self.card:
            return {}
        folder, base = os.path.split(self.labels_path)
        prefix = "" if base == "annotations.json" else os.path.splitext(base)[0] + "."
        return {name: os.path.join(folder, prefix + name) for name in CARD_FILES}

    def log_collection(self, sample_collection) -> None:
        self._collection = sample_collection
        self._plan = plan_splits(sample_collection, self.split_ratio, self.seed)
        self.result.split_rule = self._plan.describe()
        if self.stable_ids:
            self._image_ids, self._image_ids_by_path = assign_image_ids(sample_collection)

    def export_sample(self, image_or_path, label, metadata=None) -> None:
        if not isinstance(image_or_path, str):
            raise ValueError("%s exports images from their files; in-memory images are not "
                             "supported" % type(self).__name__)
        filepath = image_or_path
        if metadata is None or not metadata.width:
            metadata = image_metadata(filepath)
        if isinstance(label, dict):
            if "instances" not in label:
                raise ValueError(
                    "No instance field to export (got fields for %s); pass "
                    "label_field='sam' (or {'sam': 'instances', 'hbb': 'prompts'})"
                    % ", ".join(sorted(label)))
            instances_label = label.get("instances")
            prompts = label.get("prompts")
            quads = label.get("quads")
            semantic = label.get("semantic")
        else:
            instances_label, prompts, quads, semantic = label, None, None, None
        instances = instances_of(
            instances_label.detections if instances_label is not None else None,
            metadata.width, metadata.height, filepath, field_name=self.instances_field,
            prompts=prompts.detections if prompts is not None else None,
            quads=quads.polylines if quads is not None else None, result=self.result)
        self.write(filepath, metadata.width, metadata.height, instances,
                   has_label=instances_label is not None, semantic=semantic)

    def close(self, *args) -> None:
        try:
            self._close(bool(args) and args[0] is not None)
        finally:
            if self._lock is not None:
                self._lock.release()

    def _close(self, failed: bool) -> None:
        try:
            if self._pool is not None:
                self._pool.close(wait_errors=not failed)
        finally:
            if failed:
                for writer in [self._coco] + list(self._split_coco.values()):
                    if writer is not None:
                        writer.abort()
                if self._manifest is not None:
                    self._manifest.close(complete=False)
                    if self._manifest.holds_previous:
                        self._manifest.restore_held()  # the earlier export, as it was
                return
        self._ensure_classes()
        self.result.instances = sum(c.instances for c in self._split_counts.values())
        self.result.splits = {k: self._split_counts[k].to_dict() for k in SPLITS
                              if k in self._split_counts}
        self._finish()
        for writer in [self._coco] + list(self._split_coco.values()):
            if writer is not None:
                writer.close()
        self._after_json()
        if self.card:
            self._write_card()
        if self._manifest is not None:
            self._manifest.close(complete=True)
            self._manifest.drop_held()
        self.result.seconds = self._timer.seconds if self._timer else 0.0

    def _write_card(self) -> None:
        from fiftyone_samrs.exporting.card import (
            card_dict,
            import_provenance,
            model_provenance,
            write_card,
        )
        from fiftyone_samrs.segmenting.runs import get_segment_run

        coll = self._collection
        run = get_segment_run(coll, self.instances_field) if coll is not None else None
        card = card_dict(
            dataset_name=getattr(coll, "dataset_name", None) or getattr(coll, "name", "export"),
            fmt=self._format, classes=self._class_list,
            category_id_start=self.category_id_start, model=model_provenance(run),
            source=import_provenance(coll.info if coll is not None else None),
            splits=self.result.splits, plan=self.result.split_rule, result=self.result)
        write_card(self._card_paths(), card, self._stats.to_dict(
            self.instances_field, rejected=self.result.skipped.get("rejected in review", 0)))

    # -- shared by both routes ---------------------------------------------

    def write_doc(self, doc: SampleDoc) -> None:
        """Exports one sample read by :func:`~fiftyone_samrs.exporting.common.iter_sample_docs`."""
        instances = instances_of(
            raw_labels(doc.labels), doc.width, doc.height, doc.filepath,
            field_name=self.instances_field, prompts=raw_labels(doc.prompts),
            quads=raw_labels(doc.quads), result=self.result)
        self.write(doc.filepath, doc.width, doc.height, instances,
                   has_label=doc.labels is not None, semantic=doc.semantic, sample_id=doc.id)

    def _image_id(self, sample_id: Optional[str], filepath: str) -> Optional[int]:
        if sample_id is not None and sample_id in self._image_ids:
            return self._image_ids[sample_id]
        return self._image_ids_by_path.get(filepath)

    def write(self, filepath: str, width: int, height: int, instances: List[Instance],
              has_label: bool = True, semantic=None, sample_id: Optional[str] = None) -> None:
        """Exports one image and its instances."""
        self._ensure_classes()
        stem, seen = self._stems(filepath)
        if seen:
            self.result.skip("duplicate image", "%s appears twice in the collection; exported "
                                                "once" % filepath)
            return
        split = self._plan.of(sample_id, filepath)
        if self.export_media is False:
            file_name = os.path.abspath(filepath)
        else:
            file_name = self._media_name(stem + os.path.splitext(filepath)[1], split)
            target = self._claim(os.path.join(self.data_path, file_name),
                                 moved=self.export_media == "move")
            self._pool.submit(transfer_media, filepath, target, self.export_media, filepath)
        indices = class_indices(instances, self._index, self.unknown, filepath, self.result,
                                self._class_list)
        written = self._write_json(file_name, width, height, instances, indices, filepath,
                                   self._image_id(sample_id, filepath), split)
        self._count(stem, split, written)
        self._write_extras(stem, filepath, width, height, instances, indices, written,
                           has_label, semantic, split)

    def _write_json(self, file_name, width, height, instances, indices, filepath, image_id,
                    split) -> List[Written]:
        return self._coco.add_image(file_name, width, height, instances, indices, filepath,
                                    self.result, image_id=image_id,
                                    mirrors=self._split_writers(split))

    def _media_name(self, name: str, split: str) -> str:
        """Where an image goes, relative to the images folder."""
        return name

    def _split_writers(self, split: str) -> List[COCOJSONWriter]:
        """The per-split writer of ``split`` (opened at its first image)."""
        if not (self._writes_json and self.split_files):
            return []
        if split not in self._split_coco:
            writer = COCOJSONWriter(self.split_labels_path(split), self._class_list,
                                    category_id_start=self.category_id_start,
                                    keep_empty=self.keep_empty,
                                    info=dict(self.info or {}, split=split))
            writer.open()
            self._split_coco[split] = writer
        return [self._split_coco[split]]

    def _count(self, stem: str, split: str, written: List[Written]) -> None:
        self.result.images += 1
        self._split_counts.setdefault(split, SplitCounts()).add(stem, len(written))
        self._stats.add(written)
        for inst, *_ in written:
            if inst.rbox_source == "source":
                self.result.rbox_from_source += 1
            elif inst.rbox_source == "mask":
                self.result.rbox_derived += 1

    def _claim(self, path: str, moved: bool = False) -> str:
        """``path``, listed in the manifest before it is written (refused when
        it exists and is not an earlier export's)."""
        return self._manifest.claim(path, moved=moved) if self._manifest is not None else path

    def _write_extras(self, stem, filepath, width, height, instances, indices, written,
                      has_label, semantic, split) -> None:
        """Hook for the SAMRS and YOLO layouts (label PNGs and files, pickles)."""

    def _finish(self) -> None:
        """Hook run before the JSON is closed."""

    def _after_json(self) -> None:
        """Hook run once the JSON files are complete."""

    def _ensure_classes(self) -> None:
        if self._class_list is not None:
            return
        if self.classes is None and self._collection is None:
            raise ValueError("Give classes=... (a subset name such as 'SOTA' or a list)")
        self._class_list = resolve_export_classes(self._collection, self.classes,
                                                  self.instances_field, self.seg_field)
        if not self._class_list:
            raise ValueError("No class list found; pass classes='SOTA' or a list of names")
        self._index = class_index(self._class_list)
        self.result.classes = list(self._class_list)
        self._coco = self._open_json() if self._writes_json else None
        self._stats = ExportStats(self._class_list)
        self._on_classes()

    def _open_json(self) -> COCOJSONWriter:
        writer = COCOJSONWriter(self.labels_path, self._class_list,
                                category_id_start=self.category_id_start,
                                keep_empty=self.keep_empty, info=self.info)
        writer.open()
        return writer

    def _on_classes(self) -> None:
        """Hook run once the class list is known."""


class FolderExporter(COCOInstanceDatasetExporter):
    """An exporter that owns a whole folder (the SAMRS and YOLO layouts): the
    folder must be new or empty unless ``overwrite``, and its manifest lies
    inside it."""

    def _contents(self) -> List[str]:
        if not os.path.isdir(self.export_dir):
            return []
        return [os.path.join(self.export_dir, e) for e in sorted(os.listdir(self.export_dir))
                if e not in (LOCK_NAME, HOLD_NAME)]

    def _manifest_path(self) -> str:
        return os.path.join(self.export_dir, MANIFEST_NAME)

    def _roots(self) -> List[str]:
        return [self.export_dir]

    def setup(self) -> None:
        if not self.overwrite and self._contents():
            raise FileExistsError(
                "Export folder %s is not empty; pass overwrite=True (CLI: --overwrite) to "
                "replace what an earlier samrs export wrote in it (listed in its %s; other "
                "files are kept), or choose an empty folder" % (self.export_dir, MANIFEST_NAME))
        super().setup()


#: the sample field holding a sample's COCO image id (FiftyOne's COCO importer
#: writes the same field)
IMAGE_ID_FIELD = "coco_id"


def assign_image_ids(sample_collection, field_name: str = IMAGE_ID_FIELD
                     ) -> Tuple[Dict[str, int], Dict[str, int]]:
    """The stable COCO image id of every sample of a collection.

    Every sample of the collection's dataset without an integer
    ``field_name`` gets one, once: the next numbers after the largest id in
    use, in dataset order (so a fresh dataset gets 1..N, as a whole-dataset
    export always numbered them). Ids already there (e.g. from FiftyOne's COCO
    importer) are kept; they must be unique.

    Returns:
        ``({sample id: image id}, {filepath: image id})`` for the collection

    Raises:
        ValueError: when two samples of the collection share an id
    """
    import fiftyone as fo

    from fiftyone_samrs.fiftyone_io import dataset_of

    root = dataset_of(sample_collection)  # the object the view runs on (see dataset_of)
    if not root.has_sample_field(field_name):
        root.add_sample_field(field_name, fo.IntField,
                              description="COCO image id (stable across exports)")
    ids, paths, current = root.values(["id", "filepath", field_name])
    missing = [i for i, c in zip(ids, current) if c is None]
    if missing:
        start = max((int(c) for c in current if c is not None), default=0) + 1
        new = dict(zip(missing, range(start, start + len(missing))))
        root.set_values(field_name, new, key_field="id")
        current = [new.get(i, c) for i, c in zip(ids, current)]
    all_ids = dict(zip(ids, current))
    by_id = {i: int(all_ids[i]) for i in sample_collection.values("id")}
    if len(set(by_id.values())) < len(by_id):
        raise ValueError("%r holds the same COCO image id for several samples: COCO image ids "
                         "must be unique" % field_name)
    in_view = set(by_id)
    return by_id, {p: int(c) for i, p, c in zip(ids, paths, current) if i in in_view}


def run_export(exporter, sample_collection, label_field: str, prompt_field: Optional[str],
               seg_field: Optional[str], progress,
               quads_field: Optional[str] = None) -> ExportResult:
    """Drives an exporter over the raw documents of a collection (the fast
    route of :func:`export_coco` and :func:`~fiftyone_samrs.exporting.samrs_export.export_samrs`)."""
    prompt_field = existing_field(sample_collection, prompt_field)
    quads_field = existing_field(sample_collection, quads_field)
    if sample_collection.has_field(label_field):  # e.g. a Polylines field: say so, first
        check_label_field(sample_collection, label_field, fol.Detections, "Label")
    ok = False
    exporter.setup()
    try:
        exporter.log_collection(sample_collection)
        exporter._ensure_classes()
        if exporter.unknown == "error" and sample_collection.has_field(label_field):
            check_known_classes(sample_collection, label_field, exporter._index,
                                exporter._class_list)
        for doc in iter_sample_docs(sample_collection, label_field, prompt_field, seg_field,
                                    progress=progress, quads_field=quads_field):
            exporter.write_doc(doc)
        ok = True
    finally:
        if ok:
            exporter.close()
        else:
            exporter.close(RuntimeError("export failed"))
    return exporter.result


def export_coco(
    sample_collection,
    labels_path: str,
    label_field: str = "sam",
    classes=None,
    *,
    export_media=True,
    images_dir: Optional[str] = None,
    prompt_field: Optional[str] = "hbb",
    quads_field: Optional[str] = "obb",
    category_id_start: int = 1,
    unknown: str = "error",
    keep_empty: bool = False,
    overwrite: bool = False,
    num_workers: int = 2,
    progress=True,
    stable_ids: bool = True,
    split_ratio: Optional[float] = None,
    seed: int = 0,
    split_files: bool = True,
    card: bool = True,
) -> ExportResult:
    """Writes the instance masks of a collection as COCO instance JSON.

    Image ids are the samples' stable ``coco_id`` (see
    :func:`assign_image_ids`): a sample has the same id in every export of
    any view of its dataset, so a ground-truth export and a prediction export
    line up for ``COCO.loadRes`` / ``COCOeval``.

    Args:
        sample_collection: a dataset or view (view stages apply: a
            ``filter_labels`` view exports only the kept masks)
        labels_path: the JSON file to write
        label_field: the Detections field with instance masks
        classes: a subset name (``"SOTA"``), a list of names, or None (from the
            dataset: the segmentation's mask targets, ``info["samrs"]["subset"]``,
            ``classes``, else the sorted labels)
        export_media: True / ``"copy"`` (default), ``"move"`` or
            ``"symlink"`` (into ``images_dir``, ``file_name`` relative to it),
            or False (``file_name`` = the absolute image path: converters
            then write next to your source images)
        images_dir: where media go; default ``images/`` beside ``labels_path``
        prompt_field: the field of the prompt boxes (``prompt_bbox``), or
            None; ignored when the dataset has no such field
        quads_field: the rotated boxes (``rbox``); ignored when missing;
            without one, ``rbox`` is derived from the mask
        category_id_start: 1 (COCO convention, default: torchvision and
            ultralytics treat 0 as background) or 0 (the SAMRS release; id =
            pixel value of the SAMRS PNG)
        unknown: ``"error"`` (default) or ``"ignore"``: leave out objects whose
            class is not in the list, and count them
        keep_empty: also write objects whose mask is empty (skipped and
            counted by default)
        overwrite: replace an existing JSON / images folder instead of refusing
        num_workers: threads copying media
        progress: show a progress bar (or a FiftyOne progress callback)
        stable_ids: False numbers this file's images 1..N instead (and
            writes no ``coco_id`` field)
        split_ratio, seed: as :func:`~fiftyone_samrs.export_samrs` (which
            split each image's annotations go to)
        split_files: also write ``<labels stem>_<split>.json`` per split
        card: also write ``README.md``, ``stats.json``, ``splits.json``
            beside the labels file

    Returns:
        an :class:`~fiftyone_samrs.exporting.common.ExportResult`

    Raises:
        FormatError: naming the sample, for a class not in the list, a
            missing mask file, a mask that does not fit its image
        FileExistsError: when the target exists and ``overwrite`` is False
    """
    timer = Timer()
    exporter = COCOInstanceDatasetExporter(
        labels_path=labels_path, data_path=images_dir, export_media=export_media,
        classes=classes, category_id_start=category_id_start, unknown=unknown,
        keep_empty=keep_empty, overwrite=overwrite, num_workers=num_workers,
        instances_field=label_field, stable_ids=stable_ids, split_ratio=split_ratio,
        seed=seed, split_files=split_files, card=card)
    result = run_export(exporter, sample_collection, label_field, prompt_field, None, progress,
                        quads_field=quads_field)
    if export_media is not False:
        result.export_dir = exporter.data_path
    result.seconds = timer.seconds
    return result


__all__ = ["COCOJSONWriter", "kept_instances", "FolderExporter", "COCOInstanceDatasetExporter",
           "export_coco", "run_export",
           "assign_image_ids", "IMAGE_ID_FIELD"]
