"""COCO run-length encoding of instance masks stored as crops.

A mask crop placed at ``(x0, y0)`` in an ``height x width`` image is encoded
straight from the crop: the runs are computed in the image's column-major
(Fortran) pixel order without building the full-size mask, then compressed by
:func:`pycocotools.mask.frPyObjects`. The result is byte-for-byte what
``pycocotools.mask.encode(np.asfortranarray(full_mask))`` gives (the tests
check it), at a cost proportional to the crop's columns times the image height
instead of the whole image: about 10x faster for typical remote-sensing
objects in 1024 x 1024 tiles.

Pure numpy + pycocotools; no FiftyOne.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from pycocotools import mask as mask_utils

#: ``pycocotools.mask.area`` overflows on lists longer than this (numpy 2)
_AREA_CHUNK = 255


def clip_crop(
    crop: np.ndarray, x0: int, y0: int, height: int, width: int
) -> Tuple[np.ndarray, int, int]:
    """Clips a crop placed at ``(x0, y0)`` to the ``height x width`` image.

    Returns:
        ``(crop, x0, y0)``: the part inside the image (possibly ``(0, 0)``)
    """
    h, w = crop.shape[:2]
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x0 + w, width), min(y0 + h, height)
    if cx1 <= cx0 or cy1 <= cy0:
        return np.zeros((0, 0), dtype=bool), 0, 0
    if (cx0, cy0, cx1, cy1) == (x0, y0, x0 + w, y0 + h):
        return crop, x0, y0
    return crop[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0], cx0, cy0


def crop_to_uncompressed_rle(
    crop: np.ndarray, x0: int, y0: int, height: int, width: int
) -> Dict[str, object]:
    """Uncompressed COCO RLE (``counts`` as a list) of a crop in a full image.

    Args:
        crop: ``(h, w)`` mask (anything non-zero is foreground)
        x0, y0: position of ``crop[0, 0]`` in the image (may lie outside: the
            crop is clipped)
        height, width: the image size

    Returns:
        ``{"size": [height, width], "counts": [zeros, ones, zeros, ...]}``
    """
    total = int(height) * int(width)
    crop, x0, y0 = clip_crop(np.asarray(crop), int(x0), int(y0), height, width)
    h, w = crop.shape[:2]
    if h == 0 or w == 0:
        return {"size": [int(height), int(width)], "counts": [total]}

    # one row per crop column, padded with background above and below
    padded = np.zeros((w, h + 2), dtype=np.int8)
    padded[:, 1:-1] = crop.T != 0
    step = np.diff(padded, axis=1)
    cols_s, rows_s = np.nonzero(step == 1)
    cols_e, rows_e = np.nonzero(step == -1)
    if cols_s.size == 0:
        return {"size": [int(height), int(width)], "counts": [total]}

    # start / end (exclusive) of each run as column-major indices in the image
    starts = (x0 + cols_s).astype(np.int64) * height + (y0 + rows_s)
    ends = (x0 + cols_e).astype(np.int64) * height + (y0 + rows_e)

    # a run touching the bottom of a column continues at the top of the next
    # one when the crop spans the full image height
    joined = starts[1:] == ends[:-1]
    if joined.any():
        starts = starts[np.concatenate(([True], ~joined))]
        ends = ends[np.concatenate((~joined, [True]))]

    bounds = np.empty(2 * starts.size + 2, dtype=np.int64)
    bounds[0] = 0
    bounds[1:-1:2] = starts
    bounds[2:-1:2] = ends
    bounds[-1] = total
    counts = np.diff(bounds)
    if counts[-1] == 0:  # the last run reaches the end of the image
        counts = counts[:-1]
    return {"size": [int(height), int(width)], "counts": counts.tolist()}


def encode_crops(
    crops: Sequence[Tuple[np.ndarray, int, int]], height: int, width: int
) -> List[Dict[str, object]]:
    """Compressed COCO RLEs of several crops of one image.

    Args:
        crops: ``(crop, x0, y0)`` per instance
        height, width: the image size

    Returns:
        one ``{"size": [h, w], "counts": bytes}`` per crop, as
        ``pycocotools.mask.encode`` returns them
    """
    if not crops:
        return []
    uncompressed = [crop_to_uncompressed_rle(c, x, y, height, width) for c, x, y in crops]
    return mask_utils.frPyObjects(uncompressed, int(height), int(width))


def encode_crop(crop: np.ndarray, x0: int, y0: int, height: int, width: int) -> Dict[str, object]:
    """Compressed COCO RLE of one crop placed in a ``height x width`` image."""
    return encode_crops([(crop, x0, y0)], height, width)[0]


def rle_area(rles: Sequence[Dict[str, object]]) -> List[int]:
    """Pixel counts of RLEs (``pycocotools.mask.area``, chunked)."""
    out: List[int] = []
    for i in range(0, len(rles), _AREA_CHUNK):
        out.extend(int(a) for a in mask_utils.area(list(rles[i : i + _AREA_CHUNK])))
    return out


def rle_bbox(rles: Sequence[Dict[str, object]]) -> List[List[float]]:
    """Tight ``[x, y, w, h]`` boxes of RLEs (``pycocotools.mask.toBbox``)."""
    if not rles:
        return []
    return [[float(v) for v in box] for box in mask_utils.toBbox(list(rles))]


def rle_to_json(rle: Dict[str, object]) -> Dict[str, object]:
    """A compressed RLE with ``counts`` as ``str``, ready for JSON."""
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    return {"size": [int(s) for s in rle["size"]], "counts": counts}


def rle_to_crop(
    rle: Dict[str, object], bbox: Optional[Sequence[float]] = None
) -> Tuple[np.ndarray, int, int]:
    """Decodes an RLE and crops it to ``bbox`` (default: its tight box).

    Returns:
        ``(crop, x0, y0)``, the crop a bool array
    """
    if isinstance(rle.get("counts"), list):
        h, w = rle["size"]
        rle = mask_utils.frPyObjects(rle, h, w)
    full = mask_utils.decode(rle).astype(bool)
    if bbox is None:
        bbox = mask_utils.toBbox(rle)
    x, y, w, h = (int(round(v)) for v in bbox)
    return full[y : y + h, x : x + w], x, y


def rle_counts(counts) -> List[int]:
    """The run lengths of a COCO RLE ``counts`` value: a list as given, or a
    compressed string decoded as ``pycocotools`` does (``rleFrString``).

    Raises:
        ValueError: for a value that is neither, a character outside the
            encoding's alphabet, a string cut in the middle of a number, or a
            negative run
    """
    if isinstance(counts, (list, tuple)):
        out = []
        for v in counts:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError("run lengths must be integers, found %r" % (v,))
            if v < 0:
                raise ValueError("negative run length %d" % v)
            out.append(int(v))
        return out
    if isinstance(counts, str):
        counts = counts.encode("latin-1", errors="replace")
    if not isinstance(counts, (bytes, bytearray)):
        raise ValueError("counts must be a list or a string, found %s" % type(counts).__name__)
    out: List[int] = []
    p, n = 0, len(counts)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise ValueError("compressed counts cut inside a number")
            c = counts[p] - 48
            if not 0 <= c < 64:
                raise ValueError("byte 0x%02x is not in the RLE alphabet" % counts[p])
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        if x < 0:
            raise ValueError("negative run length %d at run %d" % (x, len(out)))
        out.append(x)
    return out


def check_rle(rle, height: int, width: int) -> None:
    """Checks that an RLE describes a ``height x width`` mask: the size
    matches and the runs add up to exactly ``height * width`` pixels
    (``pycocotools`` decodes garbage into some mask without complaint).

    Raises:
        ValueError: saying what is wrong
    """
    if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
        raise ValueError("an RLE needs 'size' and 'counts'")
    size = rle["size"]
    if not isinstance(size, (list, tuple)) or [int(v) if isinstance(v, (int, np.integer))
                                               else None for v in size] != [height, width]:
        raise ValueError("mask size %r disagrees with the image %dx%d (size is [height, width])"
                         % (size, width, height))
    runs = rle_counts(rle["counts"])
    total = sum(runs)
    if total != height * width:
        raise ValueError("its runs cover %d pixels, the %dx%d image has %d (garbage or cut RLE)"
                         % (total, width, height, height * width))
