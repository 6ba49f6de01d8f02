"""PyTorch datasets over a SAMRS-layout export (``export_samrs``).

:class:`SemanticDataset` reads the labelled images of a split list with their
``gray/`` labels; :class:`InstanceDataset` reads a COCO JSON with the
instances' RLE masks, boxes and rotated boxes. Both read files only (no
FiftyOne, no database), so they work in DataLoader workers and on machines
that only hold the export.

Images are float32 ``(3, H, W)`` RGB tensors in ``[0, 1]`` (8-bit ``/ 255``).
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from pycocotools import mask as mask_utils
from torch.utils.data import Dataset

from fiftyone_samrs.training import _io

#: the gray label's "no class" value
IGNORE_INDEX = 255


class SemanticDataset(Dataset):
    """The semantic labels of one split of a SAMRS export.

    Items are the stems of ``<split>.txt`` (the labelled images of the split):
    ``(image, label)`` with ``image`` a float32 ``(3, H, W)`` tensor in
    ``[0, 1]`` and ``label`` a long ``(H, W)`` tensor read from
    ``gray/<stem>.png`` (class index, 255 = ignore). The image is the one
    ``images/<stem>.<ext>``, else the COCO JSON's ``file_name`` of the stem
    (see :func:`._io.image_file_names`).

    Args:
        export_dir: the export folder
        split: ``"train"``, ``"val"`` (or its alias ``"valid"``), ``"test"``
        transforms: optional ``transforms(image, label) -> (image, label)``

    Raises:
        FileNotFoundError: the split list is missing (named); a missing image
            or label is reported by its path when the item is read
    """

    def __init__(self, export_dir: str, split: str = "train",
                 transforms: Optional[Callable] = None) -> None:
        self.root = os.fspath(export_dir)
        self.split = _io.canonical_split(split)
        self.transforms = transforms
        self.stems = _io.read_stems(_io.split_list_path(self.root, split))
        self.classes = _io.read_classes(self.root)
        self._file_names = _io.image_file_names(self.root, self.stems, self.split)

    def __len__(self) -> int:
        return len(self.stems)

    def image_path(self, index: int) -> str:
        """The image file of item ``index``."""
        stem = self.stems[index]
        names = self._file_names[stem]
        if len(names) != 1:
            raise FileNotFoundError(
                "%s image files for stem %r (listed in %s.txt): looked for %s.* %s" % (
                    "several" if names else "no", stem, self.split,
                    os.path.join(self.root, "images", stem),
                    names if names else "and in the COCO JSON"))
        return os.path.join(self.root, "images", names[0])

    def label_path(self, index: int) -> str:
        """The gray label of item ``index``."""
        return os.path.join(self.root, "gray", self.stems[index] + ".png")

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        image = _io.read_image(self.image_path(index))
        label = _io.read_label(self.label_path(index))
        if label.shape != image.shape[1:]:
            raise ValueError("%s: label is %s but its image is %s" % (
                self.label_path(index), tuple(label.shape), tuple(image.shape[1:])))
        if self.transforms is not None:
            image, label = self.transforms(image, label)
        return image, label


def _decode_masks(anns: Sequence[dict], height: int, width: int) -> torch.Tensor:
    """``(N, H, W)`` uint8 masks of COCO segmentations (RLE with ``counts`` a
    str or a list, or polygons)."""
    if not anns:
        return torch.zeros((0, height, width), dtype=torch.uint8)
    rles = []
    for ann in anns:
        seg = ann["segmentation"]
        if isinstance(seg, list):  # polygons
            rles.append(mask_utils.merge(mask_utils.frPyObjects(seg, height, width)))
        elif isinstance(seg.get("counts"), list):  # uncompressed RLE
            rles.append(mask_utils.frPyObjects(seg, height, width))
        else:
            rles.append(seg)
    masks = mask_utils.decode(rles)  # (H, W, N)
    return torch.from_numpy(np.ascontiguousarray(masks.transpose(2, 0, 1)))


def _rboxes(anns: Sequence[dict]) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(N, 8)`` rotated boxes (zeros where absent) and the ``(N,)`` flags."""
    has = [isinstance(a.get("rbox"), (list, tuple)) and len(a["rbox"]) == 8 for a in anns]
    rows = [a["rbox"] if h else [0.0] * 8 for a, h in zip(anns, has)]
    return (torch.tensor(rows, dtype=torch.float32).reshape(-1, 8),
            torch.tensor(has, dtype=torch.bool))


def instance_target(anns: Sequence[dict], image_id: int, height: int, width: int,
                    category_id_start: int = 0) -> Dict[str, Any]:
    """The target dict of one image's COCO annotations.

    Args:
        anns: the image's annotations
        image_id: the COCO image id
        height, width: the image size
        category_id_start: the category id of class index 0

    Returns:
        ``{"masks": (N, H, W) uint8, "boxes": (N, 4) float32 xyxy,
        "rboxes": (N, 8) float32, "has_rbox": (N,) bool, "labels": (N,) long
        (0-based class index), "area": (N,) float32, "iscrowd": (N,) long,
        "image_id": int}``
    """
    xywh = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
    rboxes, has_rbox = _rboxes(anns)
    return {
        "masks": _decode_masks(anns, height, width),
        "boxes": torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1),
        "rboxes": rboxes,
        "has_rbox": has_rbox,
        "labels": torch.tensor([a["category_id"] - category_id_start for a in anns],
                               dtype=torch.long),
        "area": torch.tensor([float(a.get("area", 0)) for a in anns], dtype=torch.float32),
        "iscrowd": torch.tensor([int(a.get("iscrowd", 0)) for a in anns], dtype=torch.long),
        "image_id": int(image_id),
    }


class InstanceDataset(Dataset):
    """The instances of one split of a SAMRS export (its COCO JSON).

    Items are the images of ``annotations_<split>.json`` (``split=None``:
    ``annotations.json``, all images), in file order: ``(image, target)``
    with ``image`` a float32 ``(3, H, W)`` tensor in ``[0, 1]`` and
    ``target`` as :func:`instance_target` (``labels`` are 0-based class
    indices: ``category_id - info["category_id_start"]``, start 0 when the
    JSON does not say). Images without instances give ``N = 0`` tensors.

    Args:
        export_dir: the export folder
        split: ``"train"``, ``"val"`` (or ``"valid"``), ``"test"`` or None
        transforms: optional ``transforms(image, target) -> (image, target)``
        skip_empty: leave out the images without instances

    Raises:
        FileNotFoundError: the JSON is missing (named); a missing image is
            reported by its path when the item is read
        ValueError: an annotation's class index is negative
    """

    def __init__(self, export_dir: str, split: Optional[str] = "train",
                 transforms: Optional[Callable] = None, skip_empty: bool = False) -> None:
        self.root = os.fspath(export_dir)
        self.split = _io.canonical_split(split)
        self.transforms = transforms
        self.json_path = _io.annotations_path(self.root, self.split)
        data = _io.read_json(self.json_path)
        info = data.get("info") or {}
        self.category_id_start = int(info.get("category_id_start", 0))
        self.classes = _io.read_classes(self.root) or [
            c["name"] for c in sorted(data.get("categories", []), key=lambda c: c["id"])]
        self._anns = self._group(data.get("annotations") or [])
        self.images: List[dict] = [im for im in data["images"]
                                   if not skip_empty or self._anns.get(im["id"])]

    def _group(self, annotations: List[dict]) -> Dict[int, List[dict]]:
        by_image = defaultdict(list)
        for ann in annotations:
            if ann["category_id"] < self.category_id_start:
                raise ValueError("%s: annotation %r has category_id %r, below "
                                 "info.category_id_start %d" % (
                                     self.json_path, ann.get("id"), ann["category_id"],
                                     self.category_id_start))
            by_image[ann["image_id"]].append(ann)
        return dict(by_image)

    def __len__(self) -> int:
        return len(self.images)

    def image_path(self, index: int) -> str:
        """The image file of item ``index``."""
        return os.path.join(self.root, "images", self.images[index]["file_name"])

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, Dict[str, Any]]:
        info = self.images[index]
        image = _io.read_image(self.image_path(index))
        height, width = int(info["height"]), int(info["width"])
        if tuple(image.shape[1:]) != (height, width):
            raise ValueError("%s: the image is %dx%d but %s says %dx%d" % (
                self.image_path(index), image.shape[2], image.shape[1],
                self.json_path, width, height))
        target = instance_target(self._anns.get(info["id"], []), info["id"], height, width,
                                 self.category_id_start)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


def collate_instances(batch: Sequence[Tuple[torch.Tensor, Dict[str, Any]]]
                      ) -> Tuple[List[torch.Tensor], List[Dict[str, Any]]]:
    """DataLoader ``collate_fn`` for :class:`InstanceDataset`: images and
    targets as two lists (images may differ in size, and each target has its
    own ``N``), as torchvision's detection models take them."""
    images, targets = zip(*batch) if batch else ((), ())
    return list(images), list(targets)
