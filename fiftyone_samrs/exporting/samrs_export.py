"""The SAMRS output layout.

::

    <export_dir>/
      images/<stem>.<ext>     the images (copied, moved, linked, or not exported)
      gray/<stem>.png         uint8 class index per pixel, 255 = not covered; every
                              image has one (all 255 when it has no object)
      color/<stem>.png        the same in the fixed palette (viewing only)
      rbbtxts/<stem>.txt      rotated boxes in DOTA format (x1 y1 ... x4 y4 class
                              difficult), the source's or derived from the masks
      classes.txt             the class list, line i = pixel value i
      palette.json            class -> colour
      annotations.json        COCO instance JSON (RLE), see export_coco
      annotations_<split>.json   the same per split (train, val, test)
      <SUBSET>_<train|valid>_ins_segmentation.json   the same, as MTP names them
      train.txt, valid.txt, val.txt, test.txt   the labelled images of each split
      README.md, stats.json, splits.json   the dataset card and statistics
      pickles/<stem>.pkl      optional: the SAMRS release's per-image pickle
      samrs_export_manifest.jsonl   every file and folder this export wrote

``overwrite=True`` removes only what the manifest of an earlier export
lists (see :class:`~fiftyone_samrs.exporting.common.ExportManifest`): files
the user put in the folder are kept, and the export refuses to replace a
file it did not write.

Unlike the release, an image whose field holds no object gets a label PNG
too (all 255), so loaders that pair every image with a label work; the split
lists name only the labelled images. Splits follow the samples' ``split``
field (:mod:`~fiftyone_samrs.exporting.splits`).

The gray label is re-painted from the instance field with
:func:`fiftyone_samrs.core.painting.paint_semantic` and the chosen class list
(``gray_from="instances"``, the default): it always agrees with
``annotations.json`` of the same export, also for a filtered view. The
painting order is the one the segmentation run recorded (``annotation`` by
default). ``gray_from="seg"`` instead reuses the PNGs of the segmentation field
(``sam_seg``), remapped from its ``mask_targets`` to the chosen class list;
on an unfiltered view the two give identical pixels.
"""

from __future__ import annotations

import os
import pickle
from typing import Any, Dict, List, Optional

import fiftyone.core.labels as fol
import numpy as np

from fiftyone_samrs.core.classes import IGNORE_INDEX, subset_name
from fiftyone_samrs.core.paths import atomic_copy, atomic_write_bytes, write_image
from fiftyone_samrs.core.records import FormatError, InstanceMask
from fiftyone_samrs.exporting.coco_export import FolderExporter, run_export
from fiftyone_samrs.exporting.common import (
    MANIFEST_NAME,
    ExportResult,
    Instance,
    Timer,
    existing_field,
    resolve_paint_order,
    write_text,
)
from fiftyone_samrs.exporting.palette import colorize_bgr, write_palette_files
from fiftyone_samrs.exporting.splits import SPLIT_LISTS, SPLITS

#: MTP's file-name prefix of each SAMRS subset (its ``<prefix>_<split>_ins_segmentation.json``)
MTP_PREFIX = {"SOTA": "sota_rbb", "SIOR": "sior", "FAST": "fast"}

#: the export split -> MTP's split name
MTP_SPLITS = {"train": "train", "val": "valid"}

#: where the gray label comes from
GRAY_SOURCES = ("instances", "seg")

#: the files and folders of the layout
LAYOUT = ("images", "gray", "color", "rbbtxts", "pickles", "annotations.json",
          "classes.txt", "palette.json", "train.txt", "valid.txt", "val.txt", "test.txt",
          "README.md", "stats.json", "splits.json", MANIFEST_NAME)


def _write_png(path: str, label: np.ndarray) -> None:
    from fiftyone_samrs.core.painting import write_label_png

    write_label_png(path, label)


def _write_color(path: str, label: np.ndarray) -> None:
    write_image(path, colorize_bgr(label))


def link_or_copy(src: str, dst: str) -> None:
    """A hard link of ``src`` at ``dst``, or a copy where links cannot be made."""
    try:
        os.link(src, dst)
    except OSError:
        atomic_copy(src, dst)


def _write_pickle(path: str, items: List[dict]) -> None:
    atomic_write_bytes(path, pickle.dumps(items, protocol=4))


class SAMRSDatasetExporter(FolderExporter):
    """Writes the SAMRS layout (see the module doc).

    Use through FiftyOne::

        dataset.export(export_dir, dataset_type=fsr.types.SAMRSDataset,
                       label_field="sam", classes="SOTA")

    ``label_field`` may also be a dict naming the roles of several fields:
    ``{"sam": "instances", "hbb": "prompts", "sam_seg": "semantic"}``
    (prompts: the prompt boxes of the pickles and ``prompt_bbox``; semantic:
    used with ``gray_from="seg"``). :func:`export_samrs` is the faster SDK
    route.

    Args:
        export_dir: the folder to write
        classes: a subset name (``"SOTA"``), a list, or None (from the
            collection)
        export_media: True / "copy", "move", "symlink", or False
        unknown: ``"error"`` or ``"ignore"`` (not painted: 255; not in the
            JSON; counted)
        paint_order: ``"annotation"``, ``"small_last"``, or None (as the
            segmentation run recorded, else ``"annotation"``)
        gray_from: ``"instances"`` (re-paint) or ``"seg"`` (reuse the
            segmentation field's PNGs, remapped)
        split_ratio: fraction of the source images without a ``split`` field
            that go to train (the rest to val); None: they go to train
        seed: seed of the split
        pickles: also write ``pickles/<stem>.pkl`` (SAMRS release format)
        color: write ``color/`` PNGs
        category_id_start, keep_empty, overwrite, num_workers: as
            :class:`~fiftyone_samrs.exporting.coco_export.COCOInstanceDatasetExporter`
        instances_field, seg_field: the field names (defaults for the class
            list, painting order and the semantic field's mask targets)
    """

    _format = "samrs"

    def __init__(
        self,
        export_dir: str,
        classes=None,
        export_media=True,
        unknown: str = "error",
        paint_order: Optional[str] = None,
        gray_from: str = "instances",
        split_ratio: Optional[float] = None,
        seed: int = 0,
        pickles: bool = False,
        color: bool = True,
        category_id_start: int = 0,
        keep_empty: bool = False,
        overwrite: bool = False,
        num_workers: int = 2,
        instances_field: str = "sam",
        seg_field: Optional[str] = "sam_seg",
        info: Optional[Dict[str, Any]] = None,
        # accepted for FiftyOne's export(): the layout fixes these
        labels_path: Optional[str] = None,
        data_path: Optional[str] = None,
    ):
        from fiftyone_samrs.core.painting import PAINT_ORDERS

        if export_dir is None:
            raise ValueError("Give export_dir")
        if labels_path is not None or data_path is not None:
            raise ValueError("The SAMRS layout fixes annotations.json and images/ inside "
                             "export_dir; do not pass labels_path/data_path")
        if gray_from not in GRAY_SOURCES:
            raise ValueError("gray_from must be one of %s, got %r" % (GRAY_SOURCES, gray_from))
        if paint_order is not None and paint_order not in PAINT_ORDERS:
            raise ValueError("paint_order must be one of %s, got %r" % (PAINT_ORDERS, paint_order))
        if split_ratio is not None and not 0.0 <= float(split_ratio) <= 1.0:
            raise ValueError("split_ratio must be within [0, 1], got %r" % split_ratio)
        export_dir = os.path.abspath(export_dir)
        super().__init__(
            export_dir=export_dir, labels_path=os.path.join(export_dir, "annotations.json"),
            data_path=os.path.join(export_dir, "images"), export_media=export_media,
            classes=classes, category_id_start=category_id_start, unknown=unknown,
            keep_empty=keep_empty, overwrite=overwrite, num_workers=num_workers,
            instances_field=instances_field, seg_field=seg_field, info=info,
            split_ratio=split_ratio, seed=seed)
        self.paint_order = paint_order
        self.gray_from = gray_from
        self.pickles = pickles
        self.color = color
        self._order = paint_order or "annotation"
        self._lut: Optional[np.ndarray] = None
        self._lut_bad: Dict[int, str] = {}

    @property
    def label_cls(self):
        return {"instances": fol.Detections, "prompts": fol.Detections,
                "quads": fol.Polylines, "semantic": fol.Segmentation}

    def setup(self) -> None:
        super().setup()
        for sub in ("gray", "color", "rbbtxts", "pickles"):
            if sub == "color" and not self.color or sub == "pickles" and not self.pickles:
                continue
            self._manifest.makedirs(os.path.join(self.export_dir, sub))
        for path in self._split_list_paths():
            self._claim(path)

    def _on_classes(self) -> None:
        for path in self._mtp_paths().values():
            self._claim(path)
        coll = self._collection
        self._order = resolve_paint_order(coll, self.paint_order, self.instances_field)
        if self.gray_from == "seg":
            targets = None
            if coll is not None and self.seg_field:
                targets = coll.mask_targets.get(self.seg_field) or coll.default_mask_targets
            if not targets:
                raise ValueError(
                    "gray_from='seg' needs the mask_targets of the segmentation field %r "
                    "(dataset.mask_targets[%r]) to map its pixel values to classes; use "
                    "gray_from='instances'" % (self.seg_field, self.seg_field))
            self._lut, self._lut_bad = _remap_table(targets, self._index)

    # -- per image -----------------------------------------------------------

    def _write_extras(self, stem, filepath, width, height, instances, indices, written,
                      has_label, semantic, split) -> None:
        if not instances:
            label = np.full((height, width), IGNORE_INDEX, np.uint8)
        elif self.gray_from == "seg":
            label = self._semantic_label(semantic, width, height, filepath)
        else:
            from fiftyone_samrs.core.painting import paint_semantic

            label = paint_semantic(
                height, width,
                ((InstanceMask(inst.crop, inst.x0, inst.y0), idx)
                 for inst, idx in zip(instances, indices)),
                order=self._order)
        self._pool.submit(_write_png, self._claim(os.path.join(self.export_dir, "gray",
                                                               stem + ".png")), label)
        if self.color:
            self._pool.submit(_write_color, self._claim(
                os.path.join(self.export_dir, "color", stem + ".png")), label)
        self._pool.submit(write_text, self._claim(
            os.path.join(self.export_dir, "rbbtxts", stem + ".txt")),
            rbbtxt(written, self._class_list))
        if self.pickles and instances:
            self._pool.submit(_write_pickle, self._claim(
                os.path.join(self.export_dir, "pickles", stem + ".pkl")),
                              [_pickle_item(inst, idx, rle, area, self._class_list)
                               for inst, idx, rle, area in written])
        if written:
            self.result.labeled_images += 1

    def _semantic_label(self, semantic, width, height, filepath) -> np.ndarray:
        """The segmentation field's label of one image, remapped."""
        from fiftyone_samrs.core.painting import read_label_png

        if semantic is None:
            raise FormatError(filepath, "has no semantic mask in field %r (gray_from='seg'); "
                                        "segment it or use gray_from='instances'"
                              % self.seg_field)
        if isinstance(semantic, dict):  # raw document
            raw, path = semantic.get("mask"), semantic.get("mask_path")
            if raw is not None and isinstance(raw, (bytes, bytearray)):
                from fiftyone_samrs.fiftyone_io import deserialize_mask

                raw = deserialize_mask(raw)
        else:
            raw, path = semantic.mask, semantic.mask_path
        if raw is not None:
            label = np.asarray(raw)
            where = "%s (field %r)" % (filepath, self.seg_field)
        elif path:
            if not os.path.isfile(path):
                raise FormatError(filepath, "semantic mask file %s (field %r) does not exist"
                                  % (path, self.seg_field))
            label = read_label_png(path)
            where = path
        else:
            raise FormatError(filepath, "semantic label in field %r has neither mask nor "
                                        "mask_path" % self.seg_field)
        if label.shape[:2] != (height, width):
            raise FormatError(filepath, "semantic mask %s is %dx%d but the image is %dx%d"
                              % (where, label.shape[1], label.shape[0], width, height))
        if label.dtype != np.uint8 or label.ndim != 2:
            raise FormatError(filepath, "semantic mask %s must be 8-bit single channel" % where)
        present = np.flatnonzero(np.bincount(label.ravel(), minlength=256))
        for v in present:
            if int(v) in self._lut_bad:
                reason = self._lut_bad[int(v)]
                if reason.startswith("class") and self.unknown == "ignore":
                    self.result.skip("unknown class", "%s: pixel value %d (%s) -> 255"
                                     % (filepath, v, reason))
                    continue
                raise FormatError(filepath, "semantic mask %s has pixel value %d: %s%s"
                                  % (where, v, reason,
                                     "; pass unknown='ignore' to map it to 255"
                                     if reason.startswith("class") else ""))
        return self._lut[label]

    def _finish(self) -> None:
        for name in ("classes.txt", "palette.json"):
            self._claim(os.path.join(self.export_dir, name))
        write_palette_files(self.export_dir, self._class_list)
        for split in SPLITS:
            counts = self._split_counts.get(split)
            if split == "test" and counts is None:
                continue  # test.txt only where there are test images
            text = "".join(s + "\n" for s in sorted(counts.stems if counts else []))
            for name in SPLIT_LISTS[split]:
                write_text(os.path.join(self.export_dir, name), text)

    def _split_list_paths(self) -> List[str]:
        return [os.path.join(self.export_dir, name) for split in SPLITS
                for name in SPLIT_LISTS[split]]

    def _mtp_paths(self) -> Dict[str, str]:
        """``{split: path}`` of the JSON names MTP reads for a SAMRS subset
        (``sota_rbb_train_ins_segmentation.json``...); empty for another
        class list."""
        prefix = MTP_PREFIX.get(subset_name(self._class_list))
        if prefix is None:
            return {}
        return {split: os.path.join(self.export_dir, "%s_%s_ins_segmentation.json"
                                    % (prefix, name)) for split, name in MTP_SPLITS.items()}

    def _after_json(self) -> None:
        """MTP's names for the per-split JSONs: hard links (copies where the
        file system has none) of ``annotations_<split>.json``."""
        for split, path in self._mtp_paths().items():
            if split in self._split_coco:
                link_or_copy(self.split_labels_path(split), self._claim(path))


def rbbtxt(written, classes) -> str:
    """The DOTA-format rotated boxes of one image's written instances
    (``x1 y1 ... x4 y4 class difficult``, one line each)."""
    from fiftyone_samrs.core.rboxes import dota_lines

    kept = [(inst.rbox, classes[idx], inst.difficult) for inst, idx, _, _ in written
            if inst.rbox is not None]
    return dota_lines(*zip(*kept)) if kept else ""


def _remap_table(targets: Dict[Any, str], index: Dict[str, int]):
    """LUT from the segmentation field's pixel values to the export's class
    indices, and the values that cannot be mapped (value -> reason)."""
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    bad: Dict[int, str] = {}
    named = {int(k): v for k, v in targets.items()}
    for v in range(256):
        if v == IGNORE_INDEX:
            continue
        if v not in named:
            bad[v] = "not a value of the field's mask_targets"
        elif named[v] not in index:
            bad[v] = "class %r is not in the class list" % named[v]
        else:
            lut[v] = index[named[v]]
    return lut, bad


def _pickle_item(inst: Instance, idx: int, rle: dict, area: int, classes) -> dict:
    """One object in the SAMRS release's pickle format.

    As the release's scripts write them: ``mask`` (COCO RLE of the full-image
    mask, ``counts`` a string), the prompt geometry, ``category`` (name),
    ``label`` (class index) and ``size`` (mask pixels). The geometry is
    ``bbox`` (the prompt H-Box, ``xyxy``) for H-Box prompts (DOTA, DIOR), and
    ``rbox`` (the rotated box, ``(4, 2)``) + ``rhbox`` (the prompt RH-Box) for
    RH-Box prompts (FAIR1M), as numpy arrays.
    """
    counts = rle["counts"]
    item = {"mask": {"size": [int(s) for s in rle["size"]],
                     "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}}
    box = None if inst.prompt_box is None else np.asarray(inst.prompt_box, dtype=np.float64)
    if str(inst.prompt or "").startswith("rhbox"):
        item["rbox"] = None if inst.prompt_quad is None else np.asarray(inst.prompt_quad,
                                                                         dtype=np.float64)
        item["rhbox"] = box
    else:
        item["bbox"] = box
    item.update({"category": classes[idx], "label": int(idx), "size": np.int64(area)})
    return item


def export_samrs(
    sample_collection,
    export_dir: str,
    classes=None,
    *,
    subset=None,
    label_field: str = "sam",
    seg_field: Optional[str] = "sam_seg",
    prompt_field: Optional[str] = "hbb",
    quads_field: Optional[str] = "obb",
    export_media=True,
    unknown: str = "error",
    paint_order: Optional[str] = None,
    gray_from: str = "instances",
    split_ratio: Optional[float] = None,
    seed: int = 0,
    pickles: bool = False,
    color: bool = True,
    category_id_start: int = 0,
    keep_empty: bool = False,
    overwrite: bool = False,
    num_workers: int = 2,
    progress=True,
) -> ExportResult:
    """Exports a segmented collection in the SAMRS layout (see the module doc).

    Args:
        sample_collection: a dataset or view (view stages apply)
        export_dir: the folder to write; refused when it holds files, unless
            ``overwrite``
        classes: ``"SOTA"``, ``"SIOR"``, ``"FAST"``, ``"HRSC"``, a list of class
            names, or None (the segmentation field's mask targets, then
            ``info["samrs"]["subset"]``, the dataset classes, the sorted labels)
        subset: the same as ``classes`` (the name 0.1.0 used)
        label_field: the Detections field with instance masks
        seg_field: the Segmentation field (defaults; ``gray_from="seg"``)
        prompt_field: the prompt boxes (pickle ``bbox``/``rhbox``, JSON ``prompt_bbox``)
        quads_field: the rotated boxes (``rbbtxts/``, JSON ``rbox``, pickle
            ``rbox``); where a sample has none, they are derived from the masks
        export_media: True / ``"copy"``, ``"move"``, ``"symlink"`` or False
        unknown: ``"error"`` or ``"ignore"`` (255 in the PNG, left out of the
            JSON, counted)
        paint_order: ``"annotation"`` / ``"small_last"`` / None (as the
            segmentation run)
        gray_from: ``"instances"`` (re-paint) or ``"seg"`` (reuse the
            segmentation PNGs, remapped)
        split_ratio: e.g. 0.8: the fraction of the source images *without* a
            ``split`` field that go to train (the rest to val; every tile of a
            source image in one split); None: they go to train. Samples with
            a ``split`` keep it
        seed: the split's seed
        pickles: also write the SAMRS release's per-image pickles
        color: write the colour PNGs
        category_id_start: 0 (SAMRS) or 1 (COCO) for ``annotations.json``
        keep_empty: keep objects with empty masks in ``annotations.json``
        overwrite: replace an existing export
        num_workers: threads encoding PNGs and copying media
        progress: progress bar (or a FiftyOne progress callback)

    Returns:
        an :class:`~fiftyone_samrs.exporting.common.ExportResult`

    Raises:
        FormatError: naming the sample, for a class not in the list, a
            missing mask file, a mask whose size disagrees with the image
        FileExistsError: for a non-empty ``export_dir`` without ``overwrite``
    """
    timer = Timer()
    if subset is not None:
        if classes is not None and classes != subset:
            raise ValueError("give the class list once: classes=%r or subset=%r"
                             % (classes, subset))
        classes = subset
    if gray_from == "seg" and not existing_field(sample_collection, seg_field):
        raise ValueError("gray_from='seg' needs the segmentation field %r, which %s does not "
                         "have" % (seg_field, sample_collection.name))
    exporter = SAMRSDatasetExporter(
        export_dir, classes=classes, export_media=export_media, unknown=unknown,
        paint_order=paint_order, gray_from=gray_from, split_ratio=split_ratio, seed=seed,
        pickles=pickles, color=color, category_id_start=category_id_start,
        keep_empty=keep_empty, overwrite=overwrite, num_workers=num_workers,
        instances_field=label_field, seg_field=seg_field)
    result = run_export(exporter, sample_collection, label_field, prompt_field,
                        seg_field if gray_from == "seg" else None, progress,
                        quads_field=quads_field)
    result.seconds = timer.seconds
    return result


__all__ = ["SAMRSDatasetExporter", "export_samrs", "LAYOUT", "GRAY_SOURCES"]
