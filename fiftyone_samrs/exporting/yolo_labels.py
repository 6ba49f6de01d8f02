"""The pieces of a YOLO segmentation export (ultralytics' layout).

An ultralytics segmentation dataset is::

    data.yaml                  path, train/val[/test] image folders, names {0: name, ...}
    images/<split>/<stem>.<ext>
    labels/<split>/<stem>.txt  one line per instance: "class x1 y1 x2 y2 ...", 0-based
                               class, coordinates normalised by the image width / height

ultralytics finds a label file by replacing the last ``/images/`` of the
image's path with ``/labels/`` and the extension with ``.txt``; an image with
an empty or missing label file is a background image (no instances).

:func:`mask_polygon` turns an instance mask into the one polygon a label line
holds, :func:`yolo_line` writes the line and :func:`data_yaml` the dataset
file. The polygon is the exact outline of the mask's pixels, with vertices on
pixel corners: a mask covering columns ``a .. b-1`` spans ``x`` in ``[a, b]``,
its area is the mask's pixel count (holes filled) and its extent is the mask's
COCO box. A mask of several parts becomes one polygon joined the way
ultralytics joins COCO's multi-part objects (:func:`merge_parts`).

Pure numpy + OpenCV; no FiftyOne.
"""

from __future__ import annotations

import os
import re
from typing import Dict, Iterable, List, Optional, Sequence, Union

import cv2
import numpy as np

#: the splits a ``data.yaml`` may name, in the order it lists them
YOLO_SPLITS = ("train", "val", "test")

#: distance rows computed at once when looking for the closest pair of points
_CHUNK = 1 << 20

#: plain YAML scalars kept unquoted: they start with a letter, ``_`` or ``/``
#: (never a number, a date or an indicator) and hold no ``:``, ``#`` or quote
_YAML_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_ ./()+-]*$")
#: plain words YAML 1.1 (PyYAML, which ultralytics uses) reads as booleans or null
_YAML_WORDS = {
    v
    for w in ("y", "n", "yes", "no", "true", "false", "on", "off", "null")
    for v in (w, w.title(), w.upper())
}


def mask_polygon(crop: np.ndarray, x0: int, y0: int) -> Optional[np.ndarray]:
    """The outline of an instance mask, as one polygon in image pixels.

    The outline follows the pixels' edges exactly (vertices on pixel corners,
    only where it turns); holes are filled (``RETR_EXTERNAL``). A mask of
    several parts gives one polygon: the parts, in OpenCV's contour order,
    joined at their closest points by :func:`merge_parts`, as ultralytics
    does for COCO polygons and masks of several parts.

    Args:
        crop: ``(h, w)`` mask (anything non-zero is foreground)
        x0, y0: position of ``crop[0, 0]`` in the image

    Returns:
        a ``(k, 2)`` float array of ``x, y``, or None for an empty mask
    """
    crop = np.asarray(crop) != 0
    if crop.ndim != 2 or not crop.any():
        return None
    parts = _corner_outlines(crop)
    points = merge_parts(parts) if len(parts) > 1 else parts[0]
    if len(points) < 3:
        return None
    return points / 2.0 + np.array([x0, y0], dtype=float)


def _corner_outlines(crop: np.ndarray) -> List[np.ndarray]:
    """The outlines of a mask's parts, in doubled pixel-corner coordinates.

    Each pixel ``(y, x)`` covers cells ``2y .. 2y+2, 2x .. 2x+2`` of a grid
    twice as fine, whose border cells are then the pixels' corners and edge
    midpoints. OpenCV's border following cuts each concave corner by one
    diagonal step; the corner (the cell with both coordinates even) is put
    back and only the points where the outline turns are kept.
    """
    h, w = crop.shape
    grid = np.zeros((2 * h + 1, 2 * w + 1), dtype=np.uint8)
    for dy in range(3):
        for dx in range(3):
            grid[dy : dy + 2 * h : 2, dx : dx + 2 * w : 2] |= crop
    contours = cv2.findContours(grid, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[0]
    return [_turns(_fill_corners(c.reshape(-1, 2).astype(np.int64))) for c in contours]


def _fill_corners(points: np.ndarray) -> np.ndarray:
    """Puts back the corner skipped by each diagonal step of a closed outline."""
    step = np.roll(points, -1, axis=0) - points
    diagonal = np.flatnonzero((step[:, 0] != 0) & (step[:, 1] != 0))
    if diagonal.size == 0:
        return points
    corners = points[diagonal].copy()
    odd_x = corners[:, 0] % 2 == 1  # move along x first when that lands on a corner
    corners[odd_x, 0] += step[diagonal[odd_x], 0]
    corners[~odd_x, 1] += step[diagonal[~odd_x], 1]
    return np.insert(points, diagonal + 1, corners, axis=0)


def _turns(points: np.ndarray) -> np.ndarray:
    """The points of a closed outline where its direction changes."""
    if len(points) < 3:
        return points
    ahead = np.roll(points, -1, axis=0) - points
    behind = points - np.roll(points, 1, axis=0)
    keep = (ahead[:, 0] * behind[:, 1] != ahead[:, 1] * behind[:, 0]) | (
        (ahead * behind).sum(axis=1) < 0
    )
    return points[keep]


def merge_parts(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Joins the outlines of several parts into one polygon, like ultralytics.

    The same polygon as ``np.concatenate(merge_multi_segment(parts))`` of
    ``ultralytics.data.converter`` (which ultralytics uses to turn COCO
    objects of several polygons, or RLE masks, into YOLO lines): each part is
    linked to the next at their closest pair of points (the first pair when
    several are as close), the first and last parts are walked whole, the
    parts between are walked to their next link on the way out and the rest
    of the way on the way back, so that each link is a zero-width seam
    crossed twice. Each part's loop is closed by repeating its first point.

    Args:
        parts: ``(k_i, 2)`` outlines, in the order to link them (at least two)

    Returns:
        the ``(n, 2)`` polygon
    """
    parts = [np.asarray(p).reshape(-1, 2) for p in parts]
    links = [_closest_pair(a, b) for a, b in zip(parts[:-1], parts[1:])]
    out, back = [], []
    for i, part in enumerate(parts):
        if i in (0, len(parts) - 1):
            start = links[0][0] if i == 0 else links[-1][1]
            out.append(_closed(np.roll(part, -start, axis=0)))
            continue
        enter, leave = links[i - 1][1], links[i][0]
        if enter > leave:
            part, enter, leave = part[::-1], len(part) - 1 - enter, len(part) - 1 - leave
        loop = _closed(np.roll(part, -enter, axis=0))
        out.append(loop[: leave - enter + 1])
        back.append(loop[leave - enter :])
    return np.concatenate(out + back[::-1])


def _closed(loop: np.ndarray) -> np.ndarray:
    return np.concatenate([loop, loop[:1]])


def _closest_pair(a: np.ndarray, b: np.ndarray):
    """Indices ``(i, j)`` of the closest ``a[i]``, ``b[j]`` (the first such pair)."""
    best, pair = None, (0, 0)
    rows = max(1, _CHUNK // max(len(b), 1))
    for s in range(0, len(a), rows):
        d = ((a[s : s + rows, None, :] - b[None, :, :]) ** 2).sum(-1)
        k = int(np.argmin(d))
        if best is None or d.flat[k] < best:
            best, pair = d.flat[k], (s + k // len(b), k % len(b))
    return pair


def yolo_line(class_index: int, polygon: np.ndarray, width: int, height: int) -> str:
    """A YOLO segmentation label line: ``class x1 y1 x2 y2 ...``.

    Args:
        class_index: the 0-based class (position in ``names``)
        polygon: ``(k, 2)`` points in image pixels, ``k >= 3`` (ultralytics
            reads a line of 4 numbers as a box)
        width, height: the image size

    Returns:
        the line (no newline), coordinates divided by ``width`` / ``height``,
        clipped to ``[0, 1]``, with 6 decimals
    """
    points = np.asarray(polygon, dtype=float).reshape(-1, 2)
    if len(points) < 3:
        raise ValueError("a YOLO polygon needs at least 3 points, got %d" % len(points))
    if int(class_index) != class_index or class_index < 0:
        raise ValueError("class index must be a non-negative integer: %r" % (class_index,))
    scaled = np.clip(points / np.array([width, height], dtype=float), 0.0, 1.0) + 0.0  # no -0
    return "%d %s" % (class_index, " ".join("%.6f" % v for v in scaled.ravel()))


def data_yaml(
    path: Optional[Union[str, "os.PathLike[str]"]],
    names: Sequence[str],
    splits: Iterable[str],
    folders: Optional[Dict[str, str]] = None,
) -> str:
    """The ``data.yaml`` of a YOLO dataset, as text.

    Args:
        path: the dataset root, written as given (make it absolute: ultralytics
            resolves a relative ``path`` against the working directory, then
            its datasets dir); None leaves it out, and ultralytics then uses
            the folder of the ``data.yaml``
        names: class names, index ``i`` = class ``i`` of the label lines
        splits: the splits with an ``images/<split>`` folder, among
            :data:`YOLO_SPLITS`; ultralytics requires ``train`` and ``val``
        folders: another folder (relative to ``path``) for some splits, e.g.
            ``{"val": "images/train"}`` for an export without val images

    Returns:
        YAML text (names quoted where YAML would read them otherwise)
    """
    splits = set(splits)
    folders = dict({s: "images/%s" % s for s in splits}, **(folders or {}))
    unknown = splits.difference(YOLO_SPLITS)
    if unknown:
        raise ValueError("unknown splits %s (YOLO has %s)" % (sorted(unknown), YOLO_SPLITS))
    if not {"train", "val"} <= splits:
        raise ValueError("ultralytics needs a train and a val split, got %s" % sorted(splits))
    if not names:
        raise ValueError("a YOLO dataset needs at least one class name")
    lines = ["# YOLO segmentation dataset (ultralytics layout) written by fiftyone-samrs"]
    if path is not None:
        lines.append("path: %s" % yaml_scalar(os.fspath(path)))
    lines += ["%s: %s" % (s, yaml_scalar(folders[s])) for s in YOLO_SPLITS if s in splits]
    lines.append("names:")
    lines += ["  %d: %s" % (i, yaml_scalar(str(n))) for i, n in enumerate(names)]
    return "\n".join(lines) + "\n"


def yaml_scalar(text: str) -> str:
    """A YAML string scalar: plain when YAML reads it back as is, else quoted.

    Quoted strings are YAML double-quoted scalars: ``\\``, ``"`` and the
    characters that are not printable (control characters, line and
    paragraph separators, ...) are escaped.
    """
    if _YAML_PLAIN.match(text) and text not in _YAML_WORDS and text == text.rstrip():
        return text
    return '"%s"' % "".join(_yaml_char(c) for c in text)


def _yaml_char(c: str) -> str:
    if c in '\\"':
        return "\\" + c
    if c.isprintable():
        return c
    code = ord(c)
    if code < 0x100:
        return "\\x%02x" % code
    return "\\u%04x" % code if code < 0x10000 else "\\U%08x" % code
