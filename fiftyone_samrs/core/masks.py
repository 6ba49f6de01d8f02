"""Instance masks in image pixels: where FiftyOne puts a Detection's mask,
polygons as pixels, and boxes that FiftyOne renders exactly.

Pure numpy / OpenCV / shapely; no FiftyOne import.

FiftyOne draws a Detection's mask (``Detection.to_segmentation``, its COCO
exporter, everything built on eta's ``render_instance_mask``) by

1. turning the relative box ``[x, y, w, h]`` into pixel corners
   ``int(W * x), int(H * y)`` and ``int(W * (x + w)), int(H * (y + h))``
   (coordinates clamped to ``[0, 1]``, then *truncated*), and
2. resizing the mask to that pixel box with ``cv2.resize`` (bilinear, on the
   0/1 ``uint8`` mask) when its shape differs.

:func:`render_box` and :func:`place_mask` follow those rules, so every
consumer here (evaluation, quality, export) reads a mask where FiftyOne shows
it. :func:`relative_box` goes the other way for the masks this project
writes: it picks the relative box, within a few float ulps of the exact
ratio, for which FiftyOne's truncation gives back the integer pixel box, so
FiftyOne's renderer (and the App) draws every mask exactly in place.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

from fiftyone_samrs.core.records import InstanceMask

IntBox = Tuple[int, int, int, int]


# --------------------------------------------------------------------------
# FiftyOne's box <-> pixels


def _clamp01(v: float) -> float:
    return min(max(float(v), 0.0), 1.0)


def render_box(bounding_box: Sequence[float], width: int, height: int) -> IntBox:
    """The integer pixel box ``(x0, y0, x1, y1)`` FiftyOne draws a Detection in.

    Exactly eta's ``BoundingBox.coords_in`` of FiftyOne's
    ``to_detected_object``: corners clamped to ``[0, 1]``, scaled and truncated.
    """
    x, y, w, h = (float(v) for v in bounding_box)
    return (
        int(width * 1.0 * _clamp01(x)),
        int(height * 1.0 * _clamp01(y)),
        int(width * 1.0 * _clamp01(x + w)),
        int(height * 1.0 * _clamp01(y + h)),
    )


def _start(p: int, n: int) -> float:
    """The relative coordinate nearest ``p / n`` that truncates back to ``p``."""
    r = p / n
    while int(n * 1.0 * r) < p:
        r = math.nextafter(r, math.inf)
    while r > 0 and int(n * 1.0 * r) > p:
        r = math.nextafter(r, -math.inf)
    return r


def _extent(r: float, q: int, n: int) -> float:
    """The relative size ``s`` nearest ``q / n - r`` with ``int(n * (r + s)) == q``."""
    s = q / n - r
    while int(n * 1.0 * _clamp01(r + s)) < q:
        s = math.nextafter(s, math.inf)
    while s > 0 and int(n * 1.0 * _clamp01(r + s)) > q:
        s = math.nextafter(s, -math.inf)
    return s


def relative_box(box: Sequence[int], width: int, height: int) -> List[float]:
    """FiftyOne's relative ``[x, y, w, h]`` of an integer pixel box, rendered exactly.

    ``render_box(relative_box(b, W, H), W, H) == b`` for every integer box
    inside the image (the plain ratios ``x0 / W`` and ``(x1 - x0) / W`` come
    back one pixel short about a third of the time, e.g. as 378.99999).

    Args:
        box: ``(x0, y0, x1, y1)`` integers with ``0 <= x0 <= x1 <= width`` and
            ``0 <= y0 <= y1 <= height``
        width, height: the image size
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    x = _start(x0, width)
    y = _start(y0, height)
    return [x, y, _extent(x, x1, width), _extent(y, y1, height)]


# --------------------------------------------------------------------------
# a Detection's mask in pixels


def place_mask(
    mask: Optional[np.ndarray], bounding_box: Sequence[float], width: int, height: int
) -> Tuple[InstanceMask, bool]:
    """A Detection's mask placed in image pixels, as FiftyOne renders it.

    Args:
        mask: the Detection's mask (any dtype, non-zero = foreground; a
            trailing channel axis of 1 is dropped)
        bounding_box: its relative ``[x, y, w, h]``
        width, height: the image size

    Returns:
        ``(instance, resized)``: the bool crop at its image position (inside
        the image: FiftyOne clamps the box to it), and whether the mask had
        to be resized to its box (its shape differed from the box's pixel
        size, e.g. a box reaching beyond the image)

    Raises:
        ValueError: for a mask that is not 2-D
    """
    x0, y0, x1, y1 = render_box(bounding_box, width, height)
    bw, bh = max(x1 - x0, 0), max(y1 - y0, 0)
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[:, :, 0]
    if m.ndim != 2:
        raise ValueError("an instance mask must be 2-D, found shape %s" % (m.shape,))
    crop = m if m.dtype == bool else m != 0
    resized = crop.shape != (bh, bw)
    if resized:
        if bw == 0 or bh == 0 or crop.size == 0:
            crop = np.zeros((bh, bw), dtype=bool)
        else:
            import cv2

            crop = cv2.resize(crop.astype(np.uint8), (bw, bh)).astype(bool)
    return InstanceMask(np.ascontiguousarray(crop), x0, y0), resized


# --------------------------------------------------------------------------
# polygons as pixels


def _polygon(points: np.ndarray, dilate: float = 0.0):
    """A shapely polygon of corners: invalid (self-crossing) ones become their
    convex hull; ``dilate`` grows it outward (mitred corners)."""
    from shapely.geometry import MultiPoint, Polygon

    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    poly = Polygon(pts) if len(pts) >= 3 else MultiPoint(pts).convex_hull
    if not poly.is_valid:
        poly = MultiPoint(pts).convex_hull
    if dilate > 0:
        poly = poly.buffer(dilate, cap_style="square", join_style="mitre")
    return poly


def points_in_polygon(xs: np.ndarray, ys: np.ndarray, polygon: np.ndarray,
                      dilate: float = 0.0) -> np.ndarray:
    """Which points lie strictly inside a polygon (vectorised, shapely).

    Args:
        xs, ys: point coordinates (same shape)
        polygon: ``(K, 2)`` corners (a self-crossing one counts as its convex hull)
        dilate: grow the polygon by this many pixels first

    Returns:
        a bool array of the points' shape
    """
    import shapely

    poly = _polygon(polygon, dilate)
    xs = np.asarray(xs, dtype=np.float64)
    if poly.is_empty or poly.area <= 0:
        return np.zeros(xs.shape, dtype=bool)
    shapely.prepare(poly)
    return shapely.contains_xy(poly, xs, np.asarray(ys, dtype=np.float64))


#: points tested per block by :func:`polygon_pixels` (bounds its memory)
RASTER_BLOCK = 1 << 22


def polygon_pixels(polygon: np.ndarray, region: IntBox, dilate: float = 0.0) -> np.ndarray:
    """The pixels of a region whose centre lies inside a polygon.

    Pixel ``(i, j)`` (column, row) covers ``[i, i + 1) x [j, j + 1)`` and is
    inside when ``(i + 0.5, j + 0.5)`` is strictly inside the polygon, so a
    box ``(10, 20, 30, 25)`` covers exactly 20 x 5 pixels. Only the pixels
    under the polygon's bounds are tested, in row blocks of
    :data:`RASTER_BLOCK` points, so memory stays near the (bool) result's.

    Args:
        polygon: ``(K, 2)`` corners in image pixels
        region: integer ``(x0, y0, x1, y1)`` of the result
        dilate: grow the polygon by this many pixels first (a degenerate,
            zero-area quad then gets an area)

    Returns:
        a ``(y1 - y0, x1 - x0)`` bool array
    """
    import shapely

    x0, y0, x1, y1 = (int(v) for v in region)
    out = np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), dtype=bool)
    poly = _polygon(polygon, dilate)
    if out.size == 0 or poly.is_empty or poly.area <= 0:
        return out
    px0, py0, px1, py1 = poly.bounds
    c0 = int(np.clip(np.floor(px0 - 0.5) - x0, 0, out.shape[1]))
    c1 = int(np.clip(np.ceil(px1 + 0.5) - x0, 0, out.shape[1]))
    r0 = int(np.clip(np.floor(py0 - 0.5) - y0, 0, out.shape[0]))
    r1 = int(np.clip(np.ceil(py1 + 0.5) - y0, 0, out.shape[0]))
    if c1 <= c0 or r1 <= r0:
        return out
    # scanlines where they pay (a convex polygon over many pixels), else every centre
    convex = (c1 - c0) * (r1 - r0) >= SCANLINE_MIN_PIXELS and _is_convex(poly)
    if not convex:
        shapely.prepare(poly)
    step = max(1, RASTER_BLOCK // (c1 - c0))
    for r in range(r0, r1, step):
        rows = np.arange(r, min(r + step, r1), dtype=np.float64) + (y0 + 0.5)
        cols = np.arange(c0, c1, dtype=np.float64) + (x0 + 0.5)
        block = out[r : r + len(rows), c0:c1]
        if convex:
            block[:] = _convex_scanlines(poly, rows, cols)
        else:
            block[:] = shapely.contains_xy(poly, cols[None, :], rows[:, None])
    return out


#: polygons over fewer pixels than this are rasterised by testing every
#: centre (``shapely.contains_xy`` is cheaper there than the scanline set-up)
SCANLINE_MIN_PIXELS = 2048


def _is_convex(poly) -> bool:
    if poly.geom_type != "Polygon" or poly.interiors:
        return False
    pts = np.asarray(poly.exterior.coords, dtype=np.float64)[:-1]
    d = np.roll(pts, -1, axis=0) - pts
    turns = d[:, 0] * np.roll(d[:, 1], -1) - d[:, 1] * np.roll(d[:, 0], -1)
    return bool((turns >= 0).all() or (turns <= 0).all())


#: pixel centres nearer than this to a polygon's edge are decided by shapely
#: (the exact predicate), the others by the scanline intervals
_EDGE_TOL = 1e-6


def _convex_scanlines(poly, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Which points ``(xs[j], ys[i])`` lie strictly inside a convex polygon:
    per row, the open interval between its left and right edges (the
    half-planes of the edges), filled; centres within :data:`_EDGE_TOL` of
    an edge are tested with ``shapely.contains_xy``, so the result is the
    :func:`polygon_pixels` rule exactly, at a fraction of its cost."""
    import shapely

    pts = np.asarray(poly.exterior.coords, dtype=np.float64)[:-1]
    area2 = np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1])
    if area2 > 0:
        pts = pts[::-1]  # clockwise in image coordinates (y down): inside is to the right
    a, b = pts, np.roll(pts, -1, axis=0)
    dx, dy = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]
    # inside: cross(b - a, p - a) < 0 for clockwise corners, i.e.
    # dx * (py - ay) - dy * (px - ax) < 0  <=>  dy * px > dx * (py - ay) + dy * ax
    ys = ys[:, None]
    lo = np.full((len(ys), 1), -np.inf)
    hi = np.full((len(ys), 1), np.inf)
    near = np.zeros((len(ys), 1), dtype=bool)
    for k in range(len(a)):
        rhs = dx[k] * (ys - a[k, 1]) + dy[k] * a[k, 0]
        if dy[k] > 0:
            lo = np.maximum(lo, rhs / dy[k])
        elif dy[k] < 0:
            hi = np.minimum(hi, rhs / dy[k])
        else:  # a horizontal edge: the rows on its inner side only
            side = dx[k] * (ys - a[k, 1])
            lo = np.where(side < 0, lo, np.inf)
            near |= np.abs(side) <= _EDGE_TOL * max(abs(dx[k]), 1.0)
    inside = (xs[None, :] > lo) & (xs[None, :] < hi)
    unsure = (np.abs(xs[None, :] - lo) <= _EDGE_TOL) | (np.abs(xs[None, :] - hi) <= _EDGE_TOL)
    unsure |= near  # a row (nearly) on a horizontal edge: every centre is tested
    if unsure.any():
        rr, cc = np.nonzero(unsure)
        inside[rr, cc] = shapely.contains_xy(poly, xs[cc], ys[rr, 0])
    return inside


def rasterize(polygons: Sequence[np.ndarray], width: Optional[int] = None,
              height: Optional[int] = None) -> InstanceMask:
    """The pixels inside any of the polygons (:func:`polygon_pixels` rule), as
    an :class:`InstanceMask` cropped to the polygons' pixel region.

    With ``width``/``height`` the region is cut to the image *before* any
    pixel is tested, so a polygon far outside its image costs nothing. An
    empty result is a ``(0, 0)`` mask at the origin.

    Raises:
        ValueError: on a non-finite vertex, or an uncut region over the pixel
            limit of :func:`fiftyone_samrs.core.limits.max_image_pixels`
    """
    from fiftyone_samrs.core.limits import max_image_pixels

    empty = InstanceMask(np.zeros((0, 0), dtype=bool), 0, 0)
    polys = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons]
    polys = [p for p in polys if len(p)]
    if not polys:
        return empty
    pts = np.concatenate(polys)
    if not np.isfinite(pts).all():
        raise ValueError("rasterize: non-finite polygon vertex")
    x0, y0 = math.floor(pts[:, 0].min()), math.floor(pts[:, 1].min())
    x1, y1 = math.ceil(pts[:, 0].max()), math.ceil(pts[:, 1].max())
    if width is not None:
        x0, x1 = max(x0, 0), min(x1, int(width))
    if height is not None:
        y0, y1 = max(y0, 0), min(y1, int(height))
    if x1 <= x0 or y1 <= y0:
        return empty
    if (x1 - x0) * (y1 - y0) > max_image_pixels():
        raise ValueError("rasterize: a %dx%d region is over the pixel limit; pass the "
                         "image's width and height to cut it" % (x1 - x0, y1 - y0))
    inside = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for p in polys:
        inside |= polygon_pixels(p, (x0, y0, x1, y1))
    return InstanceMask(inside, int(x0), int(y0))


def polygon_fraction(mask: InstanceMask, polygon: np.ndarray) -> Optional[float]:
    """Fraction of a mask's pixels whose centre lies inside a polygon (None
    for an empty mask)."""
    rows, cols = np.nonzero(np.asarray(mask.mask, dtype=bool))
    if rows.size == 0:
        return None
    inside = points_in_polygon(cols + mask.x0 + 0.5, rows + mask.y0 + 0.5, polygon)
    return float(np.count_nonzero(inside)) / rows.size
