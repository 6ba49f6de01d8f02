"""Loads a SAMRS-layout export back into FiftyOne (the round trip).

Reads ``annotations.json`` (instances: RLE decoded and cropped to the mask's
box), ``gray/<stem>.png`` (the semantic label, referenced by ``mask_path``),
``classes.txt`` and the images. Export, then import, gives the same masks,
classes and boxes (boxes are the tight boxes of the masks).

Like FiftyOne's own COCO importer it reads the JSON file whole.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Any, Dict, List, Optional

import numpy as np

import fiftyone.core.labels as fol
import fiftyone.core.metadata as fom
import fiftyone.utils.data as foud
from pycocotools import mask as mask_utils

from fiftyone_samrs.core import classes as classes_mod
from fiftyone_samrs.exporting.coco_rle import rle_to_crop
from fiftyone_samrs.exporting.common import StemMaker
from fiftyone_samrs.core.records import FormatError


def _read_classes(dataset_dir: str, categories: List[dict], start: int) -> List[str]:
    path = os.path.join(dataset_dir, "classes.txt")
    if os.path.isfile(path):
        with open(path) as f:
            return [line.rstrip("\n") for line in f if line.strip()]
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
    """

    def __init__(
        self,
        dataset_dir: str,
        instances_field: str = "sam",
        seg_field: str = "sam_seg",
        shuffle: bool = False,
        seed=None,
        max_samples: Optional[int] = None,
    ):
        super().__init__(dataset_dir=dataset_dir, shuffle=shuffle, seed=seed,
                         max_samples=max_samples)
        self.instances_field = instances_field
        self.seg_field = seg_field
        self._labels_path = os.path.join(dataset_dir, "annotations.json")
        self._images: List[dict] = []
        self._anns: Dict[int, List[dict]] = {}
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
        if not os.path.isfile(self._labels_path):
            raise FormatError(self._labels_path, "not found: not a SAMRS export folder")
        try:
            with open(self._labels_path) as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            raise FormatError(self._labels_path, "invalid JSON: %s" % e, line=e.lineno) from e
        start = int((data.get("info") or {}).get("category_id_start", 0))
        categories = data.get("categories") or []
        self._classes = _read_classes(self.dataset_dir, categories, start)
        names = {int(c["id"]): c["name"] for c in categories}
        index = classes_mod.class_index(self._classes)
        for cid, name in names.items():
            if name not in index:
                raise FormatError(self._labels_path, "category %r is not in classes.txt" % name)
            self._cat_index[cid] = index[name]
        anns = defaultdict(list)
        for ann in data.get("annotations") or []:
            anns[ann["image_id"]].append(ann)
        self._anns = dict(anns)
        stems = StemMaker()
        images = []
        for img in data.get("images") or []:
            stem, _ = stems(img["file_name"])
            images.append(dict(img, _stem=stem))
        self._images = self._preprocess_list(images)

    def __len__(self) -> int:
        return len(self._images)

    def __iter__(self):
        self._iter = iter(self._images)
        return self

    def __next__(self):
        img = next(self._iter)
        file_name = img["file_name"]
        image_path = file_name if os.path.isabs(file_name) else os.path.join(
            self.dataset_dir, "images", file_name)
        width, height = int(img["width"]), int(img["height"])
        metadata = fom.ImageMetadata(width=width, height=height)
        dets = [self._detection(ann, width, height) for ann in self._anns.get(img["id"], [])]
        gray = os.path.join(self.dataset_dir, "gray", img["_stem"] + ".png")
        seg = fol.Segmentation(mask_path=gray) if os.path.isfile(gray) else None
        return image_path, metadata, {self.instances_field: fol.Detections(detections=dets),
                                      self.seg_field: seg}

    def _detection(self, ann: dict, width: int, height: int) -> fol.Detection:
        seg = ann.get("segmentation")
        where = "%s: annotation %s" % (self._labels_path, ann.get("id"))
        if isinstance(seg, list):  # polygons
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
        elif isinstance(seg, dict):
            rle = seg
            if list(seg.get("size", [])) != [height, width]:
                raise FormatError(where, "mask size %s disagrees with the image %dx%d"
                                  % (seg.get("size"), width, height))
        else:
            raise FormatError(where, "has no segmentation")
        if isinstance(rle.get("counts"), list):
            rle = mask_utils.frPyObjects(rle, height, width)
        cid = ann["category_id"]
        if cid not in self._cat_index:
            raise FormatError(where, "unknown category_id %r" % cid)
        label = self._classes[self._cat_index[cid]]
        attrs: Dict[str, Any] = {}
        if ann.get("prompt_bbox") is not None:
            attrs["prompt_bbox"] = [float(v) for v in ann["prompt_bbox"]]
        area = int(mask_utils.area(rle))
        if area == 0:
            px = ann.get("prompt_bbox") or [0, 0, 0, 0]
            x, y, w, h = (int(round(v)) for v in px)
            crop = np.zeros((max(h, 0), max(w, 0)), dtype=bool)
            attrs["empty"] = True
        else:
            crop, x, y = rle_to_crop(rle)
            h, w = crop.shape
        return fol.Detection(
            label=label,
            bounding_box=[x / width, y / height, w / width, h / height],
            mask=crop,
            confidence=ann.get("score"),
            **attrs,
        )

    def get_dataset_info(self) -> Dict[str, Any]:
        subset = next((name for name, lst in classes_mod.SUBSETS.items()
                       if lst == self._classes), None)
        return {
            "classes": {self.instances_field: list(self._classes)},
            "mask_targets": {self.seg_field: {i: c for i, c in enumerate(self._classes)}},
            "samrs": {"format": "samrs-export", "subset": subset,
                      "source_dir": os.path.abspath(self.dataset_dir)},
        }


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

    Returns:
        a ``fiftyone.core.dataset.Dataset``
    """
    import fiftyone as fo

    from fiftyone_samrs.types import SAMRSDataset

    if not os.path.isdir(export_dir):
        raise FormatError(export_dir, "not a folder")
    return fo.Dataset.from_dir(
        dataset_dir=export_dir, dataset_type=SAMRSDataset, name=name, persistent=persistent,
        overwrite=overwrite, progress=progress, instances_field=label_field,
        seg_field=seg_field, max_samples=max_samples)
