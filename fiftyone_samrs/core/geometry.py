"""Pure geometry on boxes and quadrilaterals, in source pixel coordinates.

Conventions:
    - a *box* is ``(x0, y0, x1, y1)`` with ``x0 <= x1``, ``y0 <= y1``
      (continuous pixel coordinates: pixel ``i`` spans ``[i, i + 1)``);
    - a *quad* is a ``(4, 2)`` float array of corners ``(x, y)`` in source
      order (DOTA: clockwise, first corner semantic);
    - an *rbox* is ``(cx, cy, w, h, angle)`` with the angle in radians,
      counter-clockwise-positive in image coordinates as HRSC2016 stores it.

FiftyOne's relative ``[x, y, w, h]`` only appears in :func:`box_to_relative`
and :func:`points_to_relative`, used at the FiftyOne boundary.
"""

from __future__ import annotations

from typing import Iterable, List, Sequence, Tuple

import numpy as np

Box = Tuple[float, float, float, float]


def quad_to_hbox(quad: np.ndarray) -> Box:
    """The horizontal box circumscribing a polygon (H-Box / RH-Box).

    Uses min/max over all corners, which is right for any quadrilateral
    (the SAMRS release's corners 1 and 3 are only right for axis-aligned ones).
    """
    q = np.asarray(quad, dtype=np.float64).reshape(-1, 2)
    return (
        float(q[:, 0].min()),
        float(q[:, 1].min()),
        float(q[:, 0].max()),
        float(q[:, 1].max()),
    )


def rbox_to_quad(cx: float, cy: float, w: float, h: float, angle: float) -> np.ndarray:
    """Corners of a rotated box, angle in radians.

    The box's ``w`` side runs along direction ``(cos a, sin a)`` in image
    coordinates (x right, y down). Corners are returned in the order
    (-w/2, -h/2), (+w/2, -h/2), (+w/2, +h/2), (-w/2, +h/2) in box axes.
    """
    c, s = np.cos(angle), np.sin(angle)
    dx = np.array([-w / 2, w / 2, w / 2, -w / 2])
    dy = np.array([-h / 2, -h / 2, h / 2, h / 2])
    xs = cx + dx * c - dy * s
    ys = cy + dx * s + dy * c
    return np.stack([xs, ys], axis=1)


def quad_area(quad: np.ndarray) -> float:
    """Unsigned area of a polygon (shoelace formula)."""
    q = np.asarray(quad, dtype=np.float64).reshape(-1, 2)
    x, y = q[:, 0], q[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def box_area(box: Sequence[float]) -> float:
    """Area of a box; 0 for an empty or inverted one."""
    x0, y0, x1, y1 = box
    return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def clip_box(box: Sequence[float], width: float, height: float) -> Box:
    """Clips a box to the image ``[0, width] x [0, height]``."""
    x0, y0, x1, y1 = box
    return (
        float(min(max(x0, 0.0), width)),
        float(min(max(y0, 0.0), height)),
        float(min(max(x1, 0.0), width)),
        float(min(max(y1, 0.0), height)),
    )


def clip_quad(quad: np.ndarray, width: float, height: float) -> np.ndarray:
    """Clamps every corner into the image (keeps 4 corners)."""
    q = np.asarray(quad, dtype=np.float64).reshape(-1, 2).copy()
    q[:, 0] = np.clip(q[:, 0], 0.0, width)
    q[:, 1] = np.clip(q[:, 1], 0.0, height)
    return q


def box_center(box: Sequence[float]) -> Tuple[float, float]:
    """Centre point of a box."""
    x0, y0, x1, y1 = box
    return ((x0 + x1) / 2.0, (y0 + y1) / 2.0)


def expand_box(box: Sequence[float], margin: float, width: float, height: float) -> Box:
    """Grows a box by ``margin`` pixels on each side, clipped to the image."""
    x0, y0, x1, y1 = box
    return clip_box((x0 - margin, y0 - margin, x1 + margin, y1 + margin), width, height)


def box_to_int_region(box: Sequence[float], width: int, height: int) -> Tuple[int, int, int, int]:
    """The integer pixel region ``[x0, x1) x [y0, y1)`` covering a box."""
    x0, y0, x1, y1 = box
    ix0 = int(np.clip(np.floor(x0), 0, width))
    iy0 = int(np.clip(np.floor(y0), 0, height))
    ix1 = int(np.clip(np.ceil(x1), 0, width))
    iy1 = int(np.clip(np.ceil(y1), 0, height))
    return ix0, iy0, ix1, iy1


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two boxes."""
    inter = box_area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def box_to_relative(box: Sequence[float], width: float, height: float) -> List[float]:
    """Pixel ``(x0, y0, x1, y1)`` to FiftyOne's relative ``[x, y, w, h]``."""
    x0, y0, x1, y1 = box
    return [x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height]


def relative_to_box(rel: Sequence[float], width: float, height: float) -> Box:
    """FiftyOne's relative ``[x, y, w, h]`` to pixel ``(x0, y0, x1, y1)``."""
    x, y, w, h = rel
    return (x * width, y * height, (x + w) * width, (y + h) * height)


def points_to_relative(points: np.ndarray, width: float, height: float) -> List[List[float]]:
    """Pixel points ``(N, 2)`` to FiftyOne's relative ``[[x, y], ...]``."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return [[float(x) / width, float(y) / height] for x, y in p]


def relative_to_points(points: Iterable[Sequence[float]], width: float, height: float) -> np.ndarray:
    """FiftyOne's relative points to a pixel ``(N, 2)`` array."""
    p = np.asarray(list(points), dtype=np.float64).reshape(-1, 2)
    return p * np.array([width, height], dtype=np.float64)
