"""Loads a SAMRS-layout export back into FiftyOne (the round trip).

Reads ``annotations.json`` (instances: RLE decoded and cropped to the mask's
box), ``gray/<stem>.png`` (the semantic label, referenced by ``mask_path``),
``classes.txt`` and the images. Export, then import, gives the same masks,
classes and boxes (boxes are the tight boxes of the masks).

The JSON is streamed (``ijson``) in two passes, so memory stays flat
whatever the export's size: a check of every entry, then the load, the
annotations read beside their images (an export of this package writes
them grouped by image; a JSON that does not is read whole). Every entry
is checked before a sample is made (a FormatError names the file and the
entry, and no dataset is left): image file names must stay inside the
export's ``images/`` folder (absolute names, as a labels-only export writes
them, only with ``allow_outside=True``), ids must be unique and refer to
each other, and every RLE must cover exactly its image (``pycocotools``
decodes garbage into some mask without complaint).
"""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import datetime
from typing import Any, Dict, Iterator, List, Optional, Tuple

import fiftyone.core.labels as fol
import fiftyone.core.metadata as fom
import fiftyone.utils.data as foud
import numpy as np
from pycocotools import mask as mask_utils

from fiftyone_samrs.core import classes as classes_mod
from fiftyone_samrs.core import limits
from fiftyone_samrs.core.records import FormatError
from fiftyone_samrs.exporting.coco_rle import check_rle, rle_to_crop
from fiftyone_samrs.exporting.common import StemMaker
from fiftyone_samrs.fiftyone_io import (
    bson_size,
    declare_label_field,
    detection_doc,
    insert_sample_docs,
    label_list_doc,
    sample_doc,
    segmentation_doc,
)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _numbers(v, n: Optional[int] = None) -> bool:
    import math

    return (isinstance(v, list) and (n is None or len(v) == n)
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                    for x in v))


def safe_file_name(file_name, allow_outside: bool = False) -> Optional[str]:
    """Why an ``images[].file_name`` may not be used (None when it may): it
    must be a relative path inside ``images/`` (no ``..``, not absolute),
    unless ``allow_outside`` accepts absolute names."""
    if not isinstance(file_name, str) or not file_name.strip() or "\0" in file_name:
        return "file_name must be a non-empty string"
    if os.path.isabs(file_name) or file_name.startswith(("/", "\\")):
        return None if allow_outside else (
            "file_name %r is an absolute path, outside the export folder (a labels-only "
            "export writes those: pass allow_outside=True, CLI --allow-outside, if you trust "
            "this file)" % file_name)
    parts = file_name.replace("\\", "/").split("/")
    if ".." in parts:
        return "file_name %r leads outside the export's images/ folder" % file_name
    return None


def _read_classes(dataset_dir: str, categories: List[dict], start: int) -> List[str]:
    path = os.path.join(dataset_dir, "classes.txt")
    if os.path.isfile(path):
        with open(path, encoding="utf-8", errors="strict") as f:
            try:
                return [line.rstrip("\n") for line in f if line.strip()]
            except UnicodeDecodeError as e:
                raise FormatError(path, "not UTF-8 text (%s)" % e) from None
    ids = sorted(int(c["id"]) for c in categories)
    names = {int(c["id"]): c["name"] for c in categories}
    if ids != list(range(start, start + len(ids))):
        raise FormatError(os.path.join(dataset_dir, "annotations.json"),
                          "category ids %s are not consecutive from %d and there is no "
                          "classes.txt" % (ids[:10], start))
    return [names[i] for i in ids]


class SAMRSDatasetImporter(foud.LabeledImageDatasetImporter):
    """Imports a folder written by :func:`fiftyone_samrs.exporting.samrs_export`.

    Use through FiftyOne::

        fo.Dataset.from_dir(export_dir, dataset_type=fsr.types.SAMRSDataset)

    Each sample gets ``instances_field`` (Detections with masks, ``confidence``
    = the exported ``score``, attribute ``prompt_bbox`` in pixels where
    exported) and ``seg_field`` (Segmentation whose ``mask_path`` is the gray
    PNG; None for images without objects). The dataset gets
    ``classes[instances_field]`` and ``mask_targets[seg_field]``.

    Args:
        dataset_dir: the export folder
        instances_field: name of the instance field
        seg_field: name of the semantic field
        shuffle, seed, max_samples: as FiftyOne importers
        allow_outside: accept absolute image file names (a labels-only
            export, ``export_media=False``); ``..`` is refused always
    """

    def __init__(
        self,
        dataset_dir: str,
        instances_field: str = "sam",
        seg_field: str = "sam_seg",
        shuffle: bool = False,
        seed=None,
        max_samples: Optional[int] = None,
        allow_outside: bool = False,
    ):
        super().__init__(dataset_dir=dataset_dir, shuffle=shuffle, seed=seed,
                         max_samples=max_samples)
        self.instances_field = instances_field
        self.seg_field = seg_field
        self.allow_outside = allow_outside
        self.labels_path = os.path.join(dataset_dir, "annotations.json")
        self._images: List[dict] = []
        self._grouped = True
        self._anns_of = None
        self._classes: List[str] = []
        self._cat_index: Dict[int, int] = {}
        self._iter = None

    @property
    def has_dataset_info(self) -> bool:
        return True

    @property
    def has_image_metadata(self) -> bool:
        return True

    @property
    def label_cls(self):
        return {self.instances_field: fol.Detections, self.seg_field: fol.Segmentation}

    def setup(self) -> None:
        """Checks the whole export before any sample is made, streaming the
        JSON (flat memory: the images' ids and sizes are kept, not the
        annotations): categories and classes, every image, every annotation."""
        path = self.labels_path
        if not os.path.isfile(path):
            raise FormatError(path, "not found: not a SAMRS export folder")
        info = self._stream_one("info") or {}
        if not isinstance(info, dict):
            info = {}
        start = info.get("category_id_start", 0)
        if not _is_int(start):
            raise FormatError(path, "info.category_id_start must be an integer, found %r"
                              % (start,))
        self._read_categories(self._stream_list("categories"), start)
        images, sizes, order = [], {}, {}
        stems = StemMaker()
        for k, img in enumerate(self._stream_list("images")):
            where = "images[%d]" % k
            iid = self._check_image(img, where, sizes)
            sizes[iid] = (img["height"], img["width"])
            order[iid] = k
            stem, _ = stems(img["file_name"])
            self._check_files(img["file_name"], stem, img["width"], img["height"], where)
            images.append({"id": iid, "file_name": img["file_name"], "width": img["width"],
                           "height": img["height"], "_stem": stem})
        self._grouped = self._check_annotations(sizes, order)
        self._images = self._preprocess_list(images)

    # -- streaming the JSON ------------------------------------------------

    def _stream(self, prefix: str):
        """The items at ``prefix`` of the JSON, streamed (ijson); a syntax
        error is a FormatError naming the file."""
        import ijson

        with open(self.labels_path, "rb") as f:
            try:
                yield from ijson.items(f, prefix, use_float=True)
            except ijson.JSONError as e:
                raise FormatError(self.labels_path, "invalid JSON: %s"
                                  % str(e).strip().splitlines()[0][:200]) from None
            except (UnicodeDecodeError, RecursionError, MemoryError) as e:
                raise FormatError(self.labels_path, "unreadable JSON (%s)"
                                  % type(e).__name__) from None

    def _stream_one(self, key: str):
        return next(iter(self._stream(key)), None)

    def _stream_list(self, key: str):
        """The entries of a top-level list (``images``...); it must be a list."""
        import ijson

        with open(self.labels_path, "rb") as f:
            try:
                for prefix, event, _ in ijson.parse(f):
                    if prefix == "" and event not in ("start_map", "map_key", "end_map"):
                        raise FormatError(self.labels_path, "the top level must be an "
                                          "object, found %s" % _JSON_KINDS.get(event, event))
                    if prefix == key:
                        if event != "start_array":
                            raise FormatError(self.labels_path, "%r must be a list, found %s"
                                              % (key, _JSON_KINDS.get(event, event)))
                        break
                    if prefix == "" and event == "end_map":
                        return  # no such key: an empty list
            except ijson.JSONError as e:
                raise FormatError(self.labels_path, "invalid JSON: %s"
                                  % str(e).strip().splitlines()[0][:200]) from None
        yield from self._stream(key + ".item")

    def _read_categories(self, categories, start: int) -> None:
        path = self.labels_path
        categories = list(categories)
        for k, c in enumerate(categories):
            if not isinstance(c, dict) or not _is_int(c.get("id")) or not isinstance(
                    c.get("name"), str):
                raise FormatError(path, "categories[%d]: needs an integer 'id' and a string "
                                        "'name', found %r" % (k, _short(c)))
        names = {c["id"]: c["name"] for c in categories}
        if len(names) != len(categories):
            raise FormatError(path, "categories: repeated ids")
        self._classes = _read_classes(self.dataset_dir, categories, start)
        index = classes_mod.class_index(self._classes)
        for cid, name in names.items():
            if name not in index:
                raise FormatError(path, "category %r is not in classes.txt" % name)
            self._cat_index[cid] = index[name]

    def _check_image(self, img, where: str, sizes: dict) -> int:
        path = self.labels_path
        if not isinstance(img, dict):
            raise FormatError(path, "%s: must be an object, found %r" % (where, _short(img)))
        iid, w, h = img.get("id"), img.get("width"), img.get("height")
        if not _is_int(iid) or not (_is_int(w) and w > 0) or not (_is_int(h) and h > 0):
            raise FormatError(path, "%s: needs an integer 'id' and positive integer "
                                    "'width' and 'height', found %r" % (where, _short(img)))
        if iid in sizes:
            raise FormatError(path, "%s: image id %d is repeated" % (where, iid))
        why = safe_file_name(img.get("file_name"), self.allow_outside)
        if why:
            raise FormatError(path, "%s: %s" % (where, why))
        return iid

    def _check_annotations(self, sizes: dict, order: dict) -> bool:
        """Checks every annotation; returns whether they come grouped by
        image in the images' order (this package's exports: they are then
        streamed again beside the images, else read whole)."""
        grouped, last = True, -1
        for k, ann in enumerate(self._stream_list("annotations")):
            iid = self._check_annotation(ann, k, sizes)
            grouped = grouped and order[iid] >= last
            last = order[iid]
        return grouped

    def _check_annotation(self, ann, k: int, sizes: dict) -> int:
        path = self.labels_path
        where = "annotations[%d]" % k
        if not isinstance(ann, dict):
            raise FormatError(path, "%s: must be an object, found %r" % (where, _short(ann)))
        where = "%s (id %r)" % (where, ann.get("id"))
        iid = ann.get("image_id")
        if not _is_int(iid) or iid not in sizes:
            raise FormatError(path, "%s: image_id %r is not the id of an image" % (where, iid))
        if ann.get("category_id") not in self._cat_index:
            raise FormatError(path, "%s: unknown category_id %r"
                              % (where, ann.get("category_id")))
        for key in ("bbox", "prompt_bbox"):
            if ann.get(key) is not None and not _numbers(ann[key], 4):
                raise FormatError(path, "%s: %s must be 4 finite numbers, found %r"
                                  % (where, key, _short(ann[key])))
        score = ann.get("score")
        if score is not None and not _numbers([score]):
            raise FormatError(path, "%s: score must be a finite number, found %r"
                              % (where, _short(score)))
        h, w = sizes[iid]
        self._check_segmentation(ann.get("segmentation"), h, w, path, where)
        return iid

    def _check_files(self, file_name: str, stem: str, width: int, height: int,
                     where: str) -> None:
        """An image under ``images/`` and its ``gray/`` PNG must lie in the
        export (a link leading out of it only with ``allow_outside``), and
        the PNG must be a whole 8-bit gray PNG of the image's size."""
        from fiftyone_samrs.core.paths import is_inside

        paths = [os.path.join(self.dataset_dir, "gray", stem + ".png")]
        if not os.path.isabs(file_name):
            paths.append(os.path.join(self.dataset_dir, "images", file_name))
        for path in paths:
            if (os.path.lexists(path) and not self.allow_outside
                    and not is_inside(self.dataset_dir, path)):
                raise FormatError(path, "%s: leads out of the export folder (to %s); pass "
                                        "allow_outside=True (CLI --allow-outside) if you "
                                        "trust it" % (where, os.path.realpath(path)))
        why = gray_png_problem(paths[0], width, height)
        if why:
            raise FormatError(paths[0], "%s: %s" % (where, why))

    @staticmethod
    def _check_segmentation(seg, height: int, width: int, path: str, where: str) -> None:
        if isinstance(seg, list):  # polygons
            if not seg or not all(_numbers(p) and len(p) >= 6 and len(p) % 2 == 0 for p in seg):
                raise FormatError(path, "%s: polygons must be lists of at least 3 finite "
                                        "x, y pairs" % where)
            return
        if not isinstance(seg, dict):
            raise FormatError(path, "%s: has no segmentation (an RLE or polygons)" % where)
        try:
            check_rle(seg, height, width)
        except ValueError as e:
            raise FormatError(path, "%s: bad RLE: %s" % (where, e)) from None

    def __len__(self) -> int:
        return len(self._images)

    def entries(self) -> Iterator[Tuple[dict, List[dict]]]:
        """``(image entry, its annotations)`` per image, in order (after
        :meth:`setup`); the entries were checked there."""
        anns_of = self._annotations_by_image()
        for img in self._images:
            yield img, anns_of(img["id"])

    def __iter__(self):
        self._iter = self.entries()
        return self

    def _annotations_by_image(self):
        """``image id -> its annotations``, one image after the other: the
        annotations streamed beside the images when they come grouped in
        the images' order (this package's exports), else read whole."""
        anns = self._stream_list("annotations")
        if not self._grouped or self.shuffle:
            by_image = defaultdict(list)
            for ann in anns:
                by_image[ann["image_id"]].append(ann)
            return lambda iid: by_image.pop(iid, [])
        pending: List[dict] = []

        def take(iid):
            out = [a for a in pending if a["image_id"] == iid]
            pending[:] = [a for a in pending if a["image_id"] != iid]
            for ann in anns:
                if ann["image_id"] != iid:
                    pending.append(ann)  # the next image's first annotation
                    break
                out.append(ann)
            return out

        return take

    def __next__(self):
        img, anns = next(self._iter)
        width, height = img["width"], img["height"]
        dets = [fol.Detection(**self.instance(ann, width, height)) for ann in anns]
        gray = self.gray_path(img)
        return self.image_path(img), fom.ImageMetadata(width=width, height=height), {
            self.instances_field: fol.Detections(detections=dets),
            self.seg_field: fol.Segmentation(mask_path=gray) if gray else None}

    def image_path(self, img: dict) -> str:
        """The absolute path of an image entry's image."""
        name = img["file_name"]
        return name if os.path.isabs(name) else os.path.normpath(
            os.path.join(self.dataset_dir, "images", name))

    def gray_path(self, img: dict) -> Optional[str]:
        """The image's ``gray/`` PNG, None when the export has none for it."""
        gray = os.path.join(self.dataset_dir, "gray", img["_stem"] + ".png")
        return gray if os.path.isfile(gray) else None

    def instance(self, ann: dict, width: int, height: int) -> Dict[str, Any]:
        """The fields of the Detection of an (already checked) annotation:
        label, relative box, the mask cropped to its tight box, confidence
        (the exported score, where there is one) and the attributes
        ``prompt_bbox`` (pixels) and ``empty`` (an empty mask)."""
        crop, x, y = rle_to_crop(_rle(ann["segmentation"], height, width))
        fields: Dict[str, Any] = {"label": self._classes[self._cat_index[ann["category_id"]]]}
        if ann.get("prompt_bbox") is not None:
            fields["prompt_bbox"] = [float(v) for v in ann["prompt_bbox"]]
        if not crop.size:  # an empty mask: an empty crop at the prompt's place
            x, y, w, h = (int(round(v)) for v in ann.get("prompt_bbox") or [0, 0, 0, 0])
            crop = np.zeros((max(h, 0), max(w, 0)), dtype=bool)
            fields["empty"] = True
        h, w = crop.shape
        fields["bounding_box"] = [x / width, y / height, w / width, h / height]
        fields["mask"] = crop
        if ann.get("score") is not None:
            fields["confidence"] = float(ann["score"])
        return fields

    def get_dataset_info(self) -> Dict[str, Any]:
        subset = classes_mod.subset_name(self._classes)
        return {
            "classes": {self.instances_field: list(self._classes)},
            "mask_targets": {self.seg_field: {i: c for i, c in enumerate(self._classes)}},
            "samrs": {"format": "samrs-export", "subset": subset,
                      "source_dir": os.path.abspath(self.dataset_dir)},
        }


def _rle(seg, height: int, width: int) -> dict:
    """The RLE of a checked ``segmentation``: as given, polygons merged."""
    if isinstance(seg, list):
        return mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
    return seg


def gray_png_problem(path: str, width: int, height: int) -> Optional[str]:
    """What is wrong with a label PNG (None: nothing, or no file): it must
    be a whole PNG (:func:`~fiftyone_samrs.core.paths.png_complete`), 8-bit
    gray, ``width`` x ``height``. Reads 40 bytes."""
    import struct

    from fiftyone_samrs.core.paths import png_complete

    if not os.path.lexists(path):
        return None
    if not png_complete(path):
        return "not a whole PNG file (empty, cut, or another format)"
    with open(path, "rb") as f:
        head = f.read(33)
    w, h, depth, color = struct.unpack(">IIBB", head[16:26])
    if head[12:16] != b"IHDR" or depth != 8 or color != 0:
        return "not an 8-bit gray PNG (bit depth %d, color type %d)" % (depth, color)
    if (w, h) != (width, height):
        return "is %dx%d, the image is %dx%d" % (w, h, width, height)
    return None


#: what a JSON event means, for messages
_JSON_KINDS = {"start_map": "dict", "start_array": "list", "string": "str", "number": "int",
               "boolean": "bool", "null": "NoneType"}


def _short(value, n: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def load_samrs(
    export_dir: str,
    name: Optional[str] = None,
    *,
    label_field: str = "sam",
    seg_field: str = "sam_seg",
    persistent: bool = True,
    overwrite: bool = False,
    max_samples: Optional[int] = None,
    progress=True,
    allow_outside: bool = False,
):
    """Loads a SAMRS-layout folder (gray PNGs + COCO JSON + images) into a dataset.

    Args:
        export_dir: the folder written by :func:`~fiftyone_samrs.exporting.samrs_export`
        name: the dataset name (default: FiftyOne's generated name)
        label_field: the Detections field to create
        seg_field: the Segmentation field to create
        persistent: keep the dataset in the database
        overwrite: replace an existing dataset of that name
        max_samples: import at most this many images
        progress: progress bar
        allow_outside: accept absolute image paths in the JSON (what a
            labels-only export, ``export_media=False``, writes); by default
            only names inside the export's ``images/`` are accepted

    Returns:
        a ``fiftyone.core.dataset.Dataset``

    Raises:
        FormatError: naming ``annotations.json`` and the entry, for malformed
            JSON, a file name leading outside the folder, or a garbage RLE;
            no dataset is left behind
        ValueError: for an existing name without ``overwrite``
    """
    import fiftyone as fo

    from fiftyone_samrs.importing.report import update_samrs_info

    if not os.path.isdir(export_dir):
        raise FormatError(export_dir, "not a folder")
    importer = SAMRSDatasetImporter(export_dir, instances_field=label_field,
                                    seg_field=seg_field, max_samples=max_samples,
                                    allow_outside=allow_outside)
    importer.setup()  # reads and checks the whole JSON before a dataset exists
    if name and fo.dataset_exists(name) and not overwrite:
        raise ValueError("A FiftyOne dataset named %r already exists: pass overwrite=True "
                         "(CLI: --overwrite) to replace it, or choose another name" % name)
    dataset = fo.Dataset(name, persistent=persistent, overwrite=overwrite)
    try:
        _add_samples(dataset, importer, progress)
        update_samrs_info(dataset, {"import_complete": True})
        dataset.save()
    except BaseException:
        if not dataset.deleted:
            dataset.delete()  # no partial dataset
        raise
    return dataset


#: a batch of sample documents is inserted at this many samples or bytes of masks
_BATCH_SAMPLES = 256
_BATCH_MASK_BYTES = 32 << 20


def _add_samples(dataset, importer: SAMRSDatasetImporter, progress) -> None:
    """Adds the export's samples as the documents FiftyOne's ``add_importer``
    would write for :meth:`SAMRSDatasetImporter.__next__`'s samples (the
    labels are not built as FiftyOne objects: 5x faster), in batches."""
    from tqdm import tqdm

    dataset.media_type = "image"
    declare_label_field(dataset, importer.instances_field, fol.Detections, {})
    declare_label_field(dataset, importer.seg_field, fol.Segmentation, {})
    foud.parse_dataset_info(dataset, importer.get_dataset_info())
    batch, size = [], 0
    with tqdm(total=len(importer), desc="loading", unit="img", disable=not progress,
              mininterval=0.5) as bar:
        for img, anns in importer.entries():
            doc, mask_bytes = _sample_doc(dataset, importer, img, anns)
            batch.append(doc)
            size += mask_bytes
            if len(batch) >= _BATCH_SAMPLES or size >= _BATCH_MASK_BYTES:
                insert_sample_docs(dataset, batch)
                bar.update(len(batch))
                batch, size = [], 0
        insert_sample_docs(dataset, batch)
        bar.update(len(batch))


def _sample_doc(dataset, importer: SAMRSDatasetImporter, img: dict,
                anns: List[dict]) -> Tuple[dict, int]:
    """One image's sample document and the bytes of its masks; a document
    over MongoDB's limit is a FormatError naming the image."""
    width, height = img["width"], img["height"]
    dets = [detection_doc(**importer.instance(ann, width, height)) for ann in anns]
    gray = importer.gray_path(img)
    fields = {importer.instances_field: label_list_doc(fol.Detections, dets)}
    if gray:  # FiftyOne leaves None fields out of the document
        fields[importer.seg_field] = segmentation_doc(gray)
    doc = sample_doc(dataset, importer.image_path(img), {"width": width, "height": height},
                     [], fields, datetime.utcnow())
    mask_bytes = sum(len(d["mask"]) for d in dets)
    if mask_bytes > limits.MAX_SAMPLE_BYTES // 2 and bson_size(doc) > limits.MAX_SAMPLE_BYTES:
        raise FormatError(importer.labels_path, "image %r: its %d masks make a sample of "
                          "%.1f MB, over MongoDB's 16 MB document limit" % (
                              img["file_name"], len(dets), bson_size(doc) / 1e6))
    return doc, mask_bytes
