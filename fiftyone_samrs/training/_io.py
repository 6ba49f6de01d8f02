"""Reading the files of a SAMRS-layout export: split lists, COCO JSON,
images and gray labels.

Pure numpy / OpenCV / torch; no FiftyOne. Every missing or unreadable file is
reported by its path.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional

import cv2
import numpy as np
import torch

#: what ``split="valid"`` (the SAMRS name) reads
SPLIT_ALIASES = {"valid": "val"}

#: extensions tried for ``images/<stem>.*`` when no COCO JSON names the file
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def canonical_split(split: Optional[str]) -> Optional[str]:
    """``"valid"`` -> ``"val"``; other names (and None) unchanged."""
    return SPLIT_ALIASES.get(split, split)


def split_list_path(root: str, split: str) -> str:
    """The stem list of a split: ``<split>.txt`` (``val.txt`` or
    ``valid.txt`` for ``"val"`` / ``"valid"``).

    Raises:
        FileNotFoundError: no list for that split (names the file and the
            lists the export has)
    """
    split = canonical_split(split)
    names = ["val.txt", "valid.txt"] if split == "val" else ["%s.txt" % split]
    for name in names:
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return path
    present = [s for s in ("train", "val", "test")
               if os.path.isfile(os.path.join(root, s + ".txt"))]
    raise FileNotFoundError(
        "split list not found: %s (split %r; this folder has the lists: %s)"
        % (os.path.join(root, names[0]), split, ", ".join(present) or "none"))


def read_stems(path: str) -> List[str]:
    """The non-blank lines of a split list."""
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def annotations_path(root: str, split: Optional[str]) -> str:
    """``annotations_<split>.json``, or ``annotations.json`` for ``split=None``.

    Raises:
        FileNotFoundError: the file is missing (named in the message)
    """
    split = canonical_split(split)
    name = "annotations.json" if split is None else "annotations_%s.json" % split
    path = os.path.join(root, name)
    if not os.path.isfile(path):
        hint = "" if split is None else " (split=None reads annotations.json, all images)"
        raise FileNotFoundError("COCO annotations not found: %s%s" % (path, hint))
    return path


def read_json(path: str) -> dict:
    """A COCO JSON file, checked to be an object with ``images``."""
    with open(path, "rb") as f:
        data = json.loads(f.read().decode("utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError("%s: not a COCO instance JSON (no 'images' list)" % path)
    return data


def stem_of(file_name: str) -> str:
    """``"dir/P0001.png"`` -> ``"P0001"``."""
    return os.path.splitext(os.path.basename(file_name))[0]


def _scan_images(images_dir: str) -> Dict[str, List[str]]:
    """Stem -> the image files of ``images/`` with that stem (one listing)."""
    found: Dict[str, List[str]] = {}
    if os.path.isdir(images_dir):
        for entry in sorted(os.listdir(images_dir)):
            stem, ext = os.path.splitext(entry)
            if ext.lower() in IMAGE_EXTS:
                found.setdefault(stem, []).append(entry)
    return found


def _json_file_names(root: str, split: Optional[str]) -> Dict[str, str]:
    """Stem -> ``images[].file_name`` of ``annotations_<split>.json``, else
    ``annotations.json`` (empty when neither is there)."""
    names = ([] if split is None else ["annotations_%s.json" % split]) + ["annotations.json"]
    for name in names:
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return {stem_of(im["file_name"]): im["file_name"] for im in read_json(path)["images"]}
    return {}


def image_file_names(root: str, stems: List[str],
                     split: Optional[str] = None) -> Dict[str, List[str]]:
    """Stem -> image file name(s), relative to ``images/``, for ``stems``.

    A stem with one image file in ``images/`` (any of :data:`IMAGE_EXTS`;
    sidecars such as ``.aux.xml`` are no image) has that file. The others
    (none, or several) take the COCO JSON's ``file_name``
    (``annotations_<split>.json``, else ``annotations.json``), which is read
    only then: a JSON of a large export is slow to parse. A stem still
    unresolved maps to all its candidates (none or several).
    """
    found = _scan_images(os.path.join(root, "images"))
    names = {s: found.get(s, []) for s in stems}
    unresolved = [s for s, files in names.items() if len(files) != 1]
    if unresolved:
        from_json = _json_file_names(root, canonical_split(split))
        names.update({s: [from_json[s]] for s in unresolved if s in from_json})
    return names


def _imdecode(path: str, flags: int) -> np.ndarray:
    if not os.path.isfile(path):
        raise FileNotFoundError("file not found: %s" % path)
    array = cv2.imdecode(np.fromfile(path, dtype=np.uint8), flags)
    if array is None:
        raise ValueError("%s: not an image OpenCV can read" % path)
    return array


def read_image(path: str) -> torch.Tensor:
    """An image as a float32 ``(3, H, W)`` RGB tensor in ``[0, 1]`` (8-bit
    ``/ 255``; grey images are repeated over the 3 channels)."""
    bgr = _imdecode(path, cv2.IMREAD_COLOR)
    rgb = np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1))
    return torch.from_numpy(rgb).float().div_(255.0)


def read_label(path: str) -> torch.Tensor:
    """A gray label PNG as a long ``(H, W)`` tensor (255 = ignore)."""
    gray = _imdecode(path, cv2.IMREAD_UNCHANGED)
    if gray.ndim != 2:
        raise ValueError("%s: a gray label must have one channel, found shape %s"
                         % (path, gray.shape))
    return torch.from_numpy(gray.astype(np.int64))


def read_classes(root: str) -> Optional[List[str]]:
    """``classes.txt`` (line i = class of pixel value i), or None."""
    path = os.path.join(root, "classes.txt")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\r\n") for line in f if line.strip()]
