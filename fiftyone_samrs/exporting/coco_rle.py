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

from typing import Dict, List, Sequence, Tuple

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


def rle_to_crop(rle: Dict[str, object]) -> Tuple[np.ndarray, int, int]:
    """Decodes an RLE (compressed or not) straight into the crop of its
    tight box, without the full-size mask: the same pixels as
    ``pycocotools.mask.decode`` cropped to ``pycocotools.mask.toBbox``, at a
    cost proportional to the crop's columns times the image height.

    Returns:
        ``(crop, x0, y0)``, the crop a bool array; ``(0, 0)``-shaped at
        ``(0, 0)`` for an empty mask
    """
    height = int(rle["size"][0])
    ends = np.cumsum(rle_counts(rle["counts"]))
    on_start, on_end = ends[:-1][0::2], ends[1::2]  # runs alternate off, on
    keep = on_end > on_start
    on_start, on_end = on_start[keep], on_end[keep]
    if not on_start.size:
        return np.zeros((0, 0), dtype=bool), 0, 0
    x0, x1 = on_start[0] // height, (on_end[-1] - 1) // height + 1
    lo = x0 * height
    edges = np.zeros((x1 - x0) * height + 1, dtype=np.int32)
    edges[on_start - lo] += 1
    edges[on_end - lo] -= 1
    block = (np.cumsum(edges[:-1]) > 0).reshape(x1 - x0, height).T  # column-major
    rows = np.flatnonzero(block.any(axis=1))
    return np.ascontiguousarray(block[rows[0] : rows[-1] + 1]), int(x0), int(rows[0])


def rle_counts(counts) -> np.ndarray:
    """The run lengths of a COCO RLE ``counts`` value: a list as given, or a
    compressed string decoded as ``pycocotools`` does (``rleFrString``).

    Raises:
        ValueError: for a value that is neither, a character outside the
            encoding's alphabet, a string cut in the middle of a number, or a
            negative run
    """
    if isinstance(counts, (list, tuple)):
        for v in counts:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError("run lengths must be integers, found %r" % (v,))
            if v < 0:
                raise ValueError("negative run length %d" % v)
            if v >= 1 << 60:
                raise ValueError("run length %d is too large (garbage RLE)" % v)
        return np.asarray(counts, dtype=np.int64).reshape(-1)
    if isinstance(counts, str):
        counts = counts.encode("latin-1", errors="replace")
    if not isinstance(counts, (bytes, bytearray)):
        raise ValueError("counts must be a list or a string, found %s" % type(counts).__name__)
    runs = _string_numbers(counts)
    # each number after the third is a difference to the one two before it
    runs[3::2] = np.cumsum(runs[1::2])[1:]
    runs[4::2] = np.cumsum(runs[2::2])[1:]
    if runs.size and runs.min() < 0:
        k = int(np.argmax(runs < 0))
        raise ValueError("negative run length %d at run %d" % (runs[k], k))
    return runs


def _string_numbers(data: bytes) -> np.ndarray:
    """The signed numbers of a compressed counts string: characters from
    ``'0'``, 5 bits each, least significant first, bit 0x20 meaning another
    character follows, bit 0x10 of the last one the sign (vectorised)."""
    c = np.frombuffer(bytes(data), dtype=np.uint8).astype(np.int64) - 48
    bad = (c < 0) | (c >= 64)
    if bad.any():
        raise ValueError("byte 0x%02x is not in the RLE alphabet" % data[int(np.argmax(bad))])
    if not c.size:
        return np.zeros(0, dtype=np.int64)
    last = np.flatnonzero((c & 0x20) == 0)
    if not last.size or last[-1] != c.size - 1:
        raise ValueError("compressed counts cut inside a number")
    first = np.concatenate(([0], last[:-1] + 1))
    digit = np.arange(c.size) - np.repeat(first, last - first + 1)
    if digit.max() > 11:
        raise ValueError("a run length of more than 60 bits (garbage RLE)")
    numbers = np.add.reduceat((c & 0x1F) << (5 * digit), first)
    negative = (c[last] & 0x10) != 0
    numbers[negative] -= np.left_shift(1, 5 * (digit[last[negative]] + 1))
    return numbers


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
    total = int(rle_counts(rle["counts"]).sum())
    if total != height * width:
        raise ValueError("its runs cover %d pixels, the %dx%d image has %d (garbage or cut RLE)"
                         % (total, width, height, height * width))
