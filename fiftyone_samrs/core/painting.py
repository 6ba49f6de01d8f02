"""SAMRS semantic labels: painting instance masks into one 8-bit class map.

Pure functions (numpy + OpenCV), no FiftyOne. The pipeline paints the
predicted masks of an image with :func:`paint_semantic` and writes the PNG
with :func:`write_label_png`; the exporter does the same from any field.

SAMRS semantics: pixel = class index in the subset's class list, 255 = not
covered; objects are painted in annotation order, so on overlap the later
object wins. ``order="small_last"`` paints larger masks first so that small
objects lying on large ones (a car on a bridge) stay visible.
"""

from __future__ import annotations

import os
from typing import Iterable, List, Optional, Tuple

import cv2
import numpy as np

from fiftyone_samrs.core.classes import IGNORE_INDEX
from fiftyone_samrs.core.paths import write_image
from fiftyone_samrs.core.records import FormatError, InstanceMask

#: the painting orders :func:`paint_semantic` accepts
PAINT_ORDERS = ("annotation", "small_last")


#: the class index of an instance rejected in review: painted as 255 (ignore)
REJECTED = -1


def paint_semantic(
    height: int,
    width: int,
    instances: Iterable[Tuple[InstanceMask, Optional[int]]],
    order: str = "annotation",
) -> np.ndarray:
    """Paints instance masks into a SAMRS semantic label.

    Args:
        height: image height in pixels
        width: image width in pixels
        instances: ``(mask, class_index)`` pairs in annotation order; a mask
            crop may reach beyond the image (the outside part is ignored); a
            class index of None or 255 (:data:`~fiftyone_samrs.core.classes.IGNORE_INDEX`)
            marks an object whose class is not in the list: it is not painted
            (the caller counts it); :data:`REJECTED` marks an object rejected
            in review: its pixels are set to 255 (ignore) in its turn
        order: ``"annotation"``: in the given order, later wins (SAMRS);
            ``"small_last"``: larger masks (pixel count) first, ties in the
            given order, so small objects stay visible

    Returns:
        a ``(height, width)`` uint8 array: class index where a mask is,
        255 elsewhere

    Raises:
        ValueError: for an unknown ``order``, a negative size, or a class
            index outside ``0..255``
    """
    if order not in PAINT_ORDERS:
        raise ValueError("Unknown paint order %r; use one of %s" % (order, ", ".join(PAINT_ORDERS)))
    height, width = int(height), int(width)
    if height < 0 or width < 0:
        raise ValueError("Label size must be non-negative, got %dx%d" % (width, height))
    label = np.full((height, width), IGNORE_INDEX, dtype=np.uint8)
    items: List[Tuple[InstanceMask, int]] = []
    for mask, index in instances:
        if index is None:
            continue
        index = int(index)
        if index == REJECTED:
            items.append((mask, IGNORE_INDEX))
            continue
        if not 0 <= index <= IGNORE_INDEX:
            raise ValueError("Class index %d does not fit an 8-bit label (0..254, 255 = none)"
                             % index)
        if index == IGNORE_INDEX:
            continue
        items.append((mask, index))
    if order == "small_last":
        # stable sort: equal areas keep annotation order
        items = sorted(items, key=lambda item: -item[0].area)
    for mask, index in items:
        _paint_one(label, mask, index)
    return label


def _paint_one(label: np.ndarray, inst: InstanceMask, index: int) -> None:
    """Sets ``label`` to ``index`` where the (possibly out-of-image) crop is True."""
    height, width = label.shape
    crop = np.asarray(inst.mask, dtype=bool)
    if crop.size == 0:
        return
    x0, y0, x1, y1 = inst.box
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x1, width), min(y1, height)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    sub = crop[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    label[cy0:cy1, cx0:cx1][sub] = index


def write_label_png(path, label: np.ndarray) -> None:
    """Writes a semantic label as a single-channel 8-bit PNG.

    Creates the parent folder. Written whole or not at all
    (:func:`~fiftyone_samrs.core.paths.write_image`).

    Raises:
        ValueError: if ``label`` is not a 2-D uint8 array
        OSError: naming the path, if the file cannot be written
    """
    path = os.fspath(path)
    label = np.asarray(label)
    if label.ndim != 2 or label.dtype != np.uint8:
        raise ValueError("%s: a label must be a 2-D uint8 array, got %s %s"
                         % (path, label.dtype, label.shape))
    write_image(path, label)


def read_label_png(path) -> np.ndarray:
    """Reads a SAMRS semantic label PNG.

    Returns:
        a ``(H, W)`` uint8 array

    Raises:
        FormatError: naming the path, if the file is missing, unreadable,
            or not an 8-bit single-channel image
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FormatError(path, "label PNG not found")
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if label is None:
        raise FormatError(path, "not a readable image")
    if label.ndim != 2:
        raise FormatError(path, "a semantic label must have 1 channel, found %d"
                          % label.shape[2])
    if label.dtype != np.uint8:
        raise FormatError(path, "a semantic label must be 8-bit, found %s" % label.dtype)
    return label
