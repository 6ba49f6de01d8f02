"""Tiling of large images into fixed-size windows, as SAMRS did before SAM.

SAMRS cut its sources with BboxToolkit's ``img_split`` (1024/200, keep
threshold 0.7, padding value (104, 116, 124), empty tiles skipped); the
windows below are BboxToolkit's (and the DOTA devkit's):

- windows of ``size`` pixels with stride ``size - gap``; the last window of a
  row or column is pushed back to end exactly at the image border (images no
  larger than the window give one window at the origin);
- an object is kept in a tile when the area of its quad (its H-Box when it
  has no quad) inside the tile, divided by its whole area, is at least
  ``keep_thresh`` (shapely);
- an object cut by the tile border is clipped to it and marked
  ``truncated=True``. Its quad becomes the clipped polygon reduced back to 4
  corners by dropping, one at a time, the corner whose removal loses the
  least area (the devkit instead merges the two ends of the shortest edge of
  a 5-corner polygon and drops objects with more corners; this keeps every
  object, loses less area, and stays inside both the object and the tile).
  The quad keeps the source quad's orientation and starts at the corner
  nearest the source's first corner. Its ``hbox`` becomes the
  bounds of the clipped polygon (when the H-Box was derived from the quad,
  as for DOTA and FAIR1M), or the source H-Box clipped to the tile (when the
  source has a separate H-Box). ``difficult`` is kept as it was (the devkit
  writes 2 there; here ``truncated`` says it);
- an object cut by the tile border also keeps its whole geometry in tile
  coordinates, which may reach beyond the tile: ``attributes["prompt_box"]``
  (its H-Box, or RH-Box) and ``attributes["prompt_quad"]``. SAM is prompted
  with those, as the release prompted with the whole object's box, while the
  stored labels stay clipped;
- zero-area objects are dropped, as the devkit, BboxToolkit and mmrotate do
  (counted ``"degenerate object"``);
- GT masks are cropped to the tile.

Tiles are written as ``<stem>__<size>__<x>___<y><ext>`` (devkit names;
``names="release"`` gives BboxToolkit's ``<stem>_<window:04d>``), where the
stem is the record's ``uid`` when it has one (FAIR1M's ``train_0`` /
``valid_0``: stems repeat across splits), and two tiles of one run may never
share a file. Edge tiles are padded to ``size`` with :data:`PAD_VALUE`.
No FiftyOne import here.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from fiftyone_samrs.core.geometry import box_area, clip_box, quad_area, quad_to_hbox
from fiftyone_samrs.core.parallel import ordered_map
from fiftyone_samrs.core.paths import write_image
from fiftyone_samrs.core.records import (
    FormatError,
    ImageRecord,
    ImportReport,
    InstanceMask,
    ObjectRecord,
)

_EPS = 1e-9

#: the padding of edge tiles, BGR (OpenCV's channel order), as SAMRS's
#: BboxToolkit split configuration: the ImageNet mean
PAD_VALUE = (104, 116, 124)

#: tile name styles: the DOTA devkit's, or BboxToolkit's (the SAMRS release)
NAME_STYLES = ("devkit", "release")


def _starts(length: int, size: int, step: int) -> List[int]:
    out, p = [], 0
    while True:
        if p + size >= length:
            out.append(max(length - size, 0))
            return out
        out.append(p)
        p += step


def windows(width: int, height: int, size: int, gap: int) -> List[Tuple[int, int]]:
    """Top-left corners of the tiles of an image, DOTA-devkit style.

    Stride is ``size - gap``; the last window in each direction ends at the
    border. Ordered column by column (x outer, y inner), as the devkit.

    Raises:
        ValueError: if ``size <= 0`` or ``gap`` is not in ``[0, size)``
    """
    if size <= 0 or gap < 0 or gap >= size:
        raise ValueError("need size > 0 and 0 <= gap < size (got size=%r, gap=%r)" % (size, gap))
    xs = _starts(int(width), int(size), int(size - gap))
    ys = _starts(int(height), int(size), int(size - gap))
    return [(x, y) for x in xs for y in ys]


def tile_name(stem: str, size: int, x: int, y: int, ext: str = ".png",
              style: str = "devkit", index: int = 0) -> str:
    """A tile's file name: the devkit's ``<stem>__<size>__<x>___<y><ext>``, or
    (``style="release"``) BboxToolkit's ``<stem>_<index:04d><ext>``, ``index``
    being the window's position among all the image's windows."""
    if style == "release":
        return "%s_%04d%s" % (stem, index, ext)
    return "%s__%d__%d___%d%s" % (stem, size, x, y, ext)


def _polygon(obj: ObjectRecord):
    from shapely.geometry import Polygon

    if obj.quad is not None:
        pts = np.asarray(obj.quad, dtype=np.float64).reshape(-1, 2)
    else:
        x0, y0, x1, y1 = obj.hbox
        pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
    poly = Polygon(pts)
    if not poly.is_valid:  # e.g. a self-crossing ("bow-tie") quad
        poly = poly.convex_hull
    return poly


_NEXT = {n: np.r_[1:n, 0] for n in range(3, 9)}
_PREV = {n: np.r_[n - 1, 0 : n - 1] for n in range(3, 9)}


def _next(n: int) -> np.ndarray:
    """Index of each corner's successor (``np.roll(..., -1)`` as an index)."""
    return _NEXT[n] if n in _NEXT else np.r_[1:n, 0]


def _prev(n: int) -> np.ndarray:
    return _PREV[n] if n in _PREV else np.r_[n - 1, 0 : n - 1]


def _signed_area(q: np.ndarray) -> float:
    x, y = q[:, 0], q[:, 1]
    nxt = _next(len(q))
    return float(np.dot(x, y[nxt]) - np.dot(y, x[nxt])) / 2.0


def _reduce_polygon(pts: np.ndarray, n: int = 4) -> np.ndarray:
    """Drops, one at a time, the corner whose removal loses the least area.

    On a convex polygon (a quad clipped by a tile is convex) the result stays
    inside the polygon, so inside both the object and the tile.
    """
    pts = np.asarray(pts, dtype=np.float64)
    while len(pts) > n:
        prev, nxt = pts[_prev(len(pts))], pts[_next(len(pts))]
        tri = np.abs((pts[:, 0] - prev[:, 0]) * (nxt[:, 1] - prev[:, 1])
                     - (nxt[:, 0] - prev[:, 0]) * (pts[:, 1] - prev[:, 1]))
        pts = np.delete(pts, int(np.argmin(tri)), axis=0)
    return pts


def _reduce_to_quad(inter, original: np.ndarray) -> np.ndarray:
    """A 4-corner quad for a clipped polygon, oriented like the source quad."""
    if inter.geom_type != "Polygon":
        inter = inter.convex_hull
    if inter.geom_type != "Polygon":  # collapsed to a line or point
        b = inter.bounds
        q = np.array([[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]], dtype=np.float64)
    else:
        pts = np.asarray(inter.exterior.coords, dtype=np.float64)[:-1]
        if len(pts) < 4:  # a triangle: repeat its last corner
            pts = np.concatenate([pts, pts[-1:].repeat(4 - len(pts), axis=0)])
        q = _reduce_polygon(pts, 4)
    # same orientation as the source quad, starting at the corner nearest its first one
    if original is not None and len(original) == 4:
        if _signed_area(q) * _signed_area(original) < 0:
            q = q[::-1]
        d = q - original[0]
        start = int(np.argmin(np.hypot(d[:, 0], d[:, 1])))
        if start:
            q = q[np.r_[start:len(q), 0:start]]
    return q


def crop_mask(m: Optional[InstanceMask], x: int, y: int, tw: int, th: int) -> Optional[InstanceMask]:
    """A mask restricted to the window ``[x, x + tw) x [y, y + th)``, in window
    pixels; None when nothing of it (or no mask) is there."""
    if m is None:
        return None
    mx0, my0, mx1, my1 = m.box
    cx0, cy0, cx1, cy1 = max(mx0, x), max(my0, y), min(mx1, x + tw), min(my1, y + th)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    crop = m.mask[cy0 - my0 : cy1 - my0, cx0 - mx0 : cx1 - mx0]
    t = InstanceMask.from_full(crop)
    if t.area == 0:
        return None
    return InstanceMask(t.mask, t.x0 + cx0 - x, t.y0 + cy0 - y)


def _hbox_from_quad(obj: ObjectRecord) -> bool:
    if obj.quad is None:
        return False
    if obj.hbox_is_rh:
        return True
    return bool(np.allclose(obj.hbox, quad_to_hbox(obj.quad), atol=1e-6))


def _object_bounds(obj: ObjectRecord) -> Tuple[float, float, float, float]:
    """The box around an object's quad and H-Box (what a tile must meet)."""
    ox0, oy0, ox1, oy1 = quad_to_hbox(obj.quad) if obj.quad is not None else obj.hbox
    hx0, hy0, hx1, hy1 = obj.hbox
    return min(ox0, hx0), min(oy0, hy0), max(ox1, hx1), max(oy1, hy1)


def _object_area(obj: ObjectRecord) -> float:
    return quad_area(obj.quad) if obj.quad is not None else box_area(obj.hbox)


def _copy(obj: ObjectRecord) -> ObjectRecord:
    """``copy.copy(obj)``, without its generic machinery (a hot path)."""
    out = object.__new__(type(obj))
    out.__dict__.update(obj.__dict__)
    return out


def _inside_copy(obj: ObjectRecord, x: int, y: int, tw: int, th: int,
                 quad: Optional[np.ndarray] = None) -> ObjectRecord:
    """An object wholly inside a tile, translated to tile pixels (``quad``:
    its quad already translated, when the caller has it)."""
    hx0, hy0, hx1, hy1 = obj.hbox
    out = _copy(obj)
    if quad is not None:
        out.quad = quad
    else:
        out.quad = None if obj.quad is None else (np.asarray(obj.quad, dtype=np.float64)
                                                  - np.array([x, y], dtype=np.float64))
    out.hbox = (hx0 - x, hy0 - y, hx1 - x, hy1 - y)
    out.mask = crop_mask(obj.mask, x, y, tw, th)
    out.attributes = dict(obj.attributes)
    return out


def _cut_copy(obj: ObjectRecord, inter, x: int, y: int, tw: int, th: int) -> ObjectRecord:
    """An object cut by a tile border: ``inter`` is its part inside the tile."""
    hx0, hy0, hx1, hy1 = obj.hbox
    shift = np.array([x, y], dtype=np.float64)
    out = _copy(obj)
    out.attributes = dict(obj.attributes)
    out.truncated = True
    # the whole object, in tile pixels: what SAM is prompted with
    from_quad = _hbox_from_quad(obj)
    whole = quad_to_hbox(obj.quad) if from_quad else obj.hbox
    out.attributes["prompt_box"] = [whole[0] - x, whole[1] - y, whole[2] - x, whole[3] - y]
    if obj.quad is not None:
        quad = np.asarray(obj.quad, dtype=np.float64)
        out.attributes["prompt_quad"] = (quad - shift).tolist()
        out.quad = _reduce_to_quad(inter, quad) - shift
    if from_quad:
        b = inter.bounds
        out.hbox = (b[0] - x, b[1] - y, b[2] - x, b[3] - y)
    else:
        out.hbox = tuple(v for v in clip_box((hx0 - x, hy0 - y, hx1 - x, hy1 - y), tw, th))
    out.mask = crop_mask(obj.mask, x, y, tw, th)
    return out


def _object_in_tile(obj: ObjectRecord, x: int, y: int, tw: int, th: int,
                    keep_thresh: float) -> Tuple[Optional[ObjectRecord], float]:
    """The object as seen in a tile (or None) and the fraction of it inside."""
    from shapely.geometry import box as sbox

    x1, y1 = x + tw, y + th
    bx0, by0, bx1, by1 = _object_bounds(obj)
    if bx1 < x or by1 < y or bx0 > x1 or by0 > y1:
        return None, 0.0
    if obj.degenerate or _object_area(obj) <= _EPS:
        return None, 0.0
    if bx0 >= x and by0 >= y and bx1 <= x1 and by1 <= y1:
        return _inside_copy(obj, x, y, tw, th), 1.0
    poly = _polygon(obj)
    inter = poly.intersection(sbox(x, y, x1, y1))
    ratio = inter.area / poly.area if poly.area > 0 else 0.0
    if ratio < keep_thresh or inter.is_empty or inter.area <= 0:
        return None, ratio
    return _cut_copy(obj, inter, x, y, tw, th), ratio


class _ObjectIndex:
    """The objects of one image as arrays, for windows x objects in numpy.

    ``bounds`` (the box around each object's quad and H-Box, as
    :func:`_object_in_tile` tests it) finds the objects a window meets;
    those wholly inside are translated without geometry, and only those
    cut by the window's border go through shapely (polygons built once per
    object, intersected with the window in one vectorised call).
    """

    def __init__(self, objects: Sequence[ObjectRecord]):
        self.objects = list(objects)
        n = len(self.objects)
        bounds = np.empty((n, 4), dtype=np.float64)
        area = np.empty(n, dtype=np.float64)
        quads = [k for k, o in enumerate(self.objects)
                 if o.quad is not None and np.shape(o.quad) == (4, 2)]
        #: the (4, 2) quads stacked (NaN rows for the other objects)
        self.quads = np.full((n, 4, 2), np.nan)
        self.has_quad = np.zeros(n, dtype=bool)
        self.has_quad[quads] = True
        if quads:
            q = np.stack([np.asarray(self.objects[k].quad, dtype=np.float64) for k in quads])
            self.quads[quads] = q
            qx, qy = q[:, :, 0], q[:, :, 1]
            qb = np.stack([qx.min(1), qy.min(1), qx.max(1), qy.max(1)], axis=1)
            h = np.array([self.objects[k].hbox for k in quads], dtype=np.float64).reshape(-1, 4)
            bounds[quads] = np.concatenate([np.minimum(qb[:, :2], h[:, :2]),
                                            np.maximum(qb[:, 2:], h[:, 2:])], axis=1)
            nxt = _next(4)
            area[quads] = np.abs((qx * qy[:, nxt]).sum(1) - (qy * qx[:, nxt]).sum(1)) / 2.0
        for k in np.flatnonzero(~self.has_quad):
            bounds[k] = _object_bounds(self.objects[k])
            area[k] = _object_area(self.objects[k])
        # exactly the scalar area where it decides (zero-area objects)
        for k in np.flatnonzero(~(area >= 1e-6)):
            area[k] = _object_area(self.objects[k])
        self.bounds = bounds
        degenerate = np.array([bool(o.degenerate) for o in self.objects], dtype=bool)
        self.skip = (degenerate | (area <= _EPS)) if n else np.zeros(0, dtype=bool)
        self._polys = np.empty(n, dtype=object)
        self._poly_area = np.full(n, np.nan)
        self._made = np.zeros(n, dtype=bool)

    def polygons(self, idx: np.ndarray):
        """The shapely polygons of objects ``idx`` (as :func:`_polygon`) and
        their areas, made once per object."""
        import shapely

        missing = idx[~self._made[idx]]
        if missing.size:
            quad = missing[self.has_quad[missing]]
            if quad.size:
                polys = shapely.polygons(self.quads[quad])
                bad = ~shapely.is_valid(polys)  # e.g. a self-crossing ("bow-tie") quad
                if bad.any():
                    polys[bad] = shapely.convex_hull(polys[bad])
                self._polys[quad] = polys
            for k in missing[~self.has_quad[missing]]:
                self._polys[k] = _polygon(self.objects[k])
            self._poly_area[missing] = shapely.area(self._polys[missing])
            self._made[missing] = True
        return self._polys[idx], self._poly_area[idx]

    def column(self, x: int, x1: int) -> np.ndarray:
        """Objects (not skipped) whose bounds meet the columns ``[x, x1]``."""
        b = self.bounds
        return np.flatnonzero((b[:, 2] >= x) & (b[:, 0] <= x1) & ~self.skip)

    def window(self, candidates: np.ndarray, x: int, y: int, tw: int, th: int,
               keep_thresh: float, best: np.ndarray) -> List[ObjectRecord]:
        """The objects kept in a window, in input order; ``best`` gets each
        object's largest inside fraction so far."""
        import shapely
        from shapely.geometry import box as sbox

        x1, y1 = x + tw, y + th
        b = self.bounds[candidates]
        sel_mask = (b[:, 3] >= y) & (b[:, 1] <= y1)
        sel = candidates[sel_mask]
        if not sel.size:
            return []
        b = b[sel_mask]
        inside = (b[:, 0] >= x) & (b[:, 1] >= y) & (b[:, 2] <= x1) & (b[:, 3] <= y1)
        inside_idx = sel[inside]
        best[inside_idx] = 1.0
        kept: dict = {}
        if inside_idx.size:
            moved = self.quads[inside_idx] - np.array([x, y], dtype=np.float64)
            for j, k in enumerate(inside_idx.tolist()):
                kept[k] = _inside_copy(self.objects[k], x, y, tw, th,
                                       moved[j] if self.has_quad[k] else None)
        cut = sel[~inside]
        if cut.size:
            polys, areas = self.polygons(cut)
            inters = shapely.intersection(polys, sbox(x, y, x1, y1))
            inter_area = shapely.area(inters)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(areas > 0, inter_area / np.where(areas > 0, areas, 1.0), 0.0)
            np.fmax.at(best, cut, ratio)
            keep = (ratio >= keep_thresh) & (inter_area > 0) & ~shapely.is_empty(inters)
            for k, inter in zip(cut[keep], inters[keep]):
                kept[int(k)] = _cut_copy(self.objects[k], inter, x, y, tw, th)
        return [kept[k] for k in sorted(kept)]


def tile_objects(
    objects: Sequence[ObjectRecord],
    x: int,
    y: int,
    size: int,
    width: int,
    height: int,
    keep_thresh: float,
) -> List[ObjectRecord]:
    """The objects kept in the tile at ``(x, y)``, in tile coordinates.

    The tile covers ``[x, x + size) x [y, y + size)`` of a ``width x height``
    image, cut at the image border (padding holds no objects).

    Args:
        objects: the image's objects, in source pixels
        x, y: the tile's top-left corner
        size: the window size
        width, height: the image size
        keep_thresh: keep an object when (area inside the tile) / (its area)
            is at least this

    Returns:
        new :class:`ObjectRecord` s (the inputs are not changed), in input order
    """
    tw, th = min(size, width - x), min(size, height - y)
    out = []
    for obj in objects:
        o, _ = _object_in_tile(obj, x, y, tw, th, keep_thresh)
        if o is not None:
            out.append(o)
    return out


def _record_size(record: ImageRecord) -> Tuple[int, int]:
    if record.width is not None and record.height is not None:
        return int(record.width), int(record.height)
    from fiftyone_samrs.formats.images import image_size

    return image_size(record.filepath)


def tile_record(
    record: ImageRecord,
    size: int,
    gap: int,
    keep_thresh: float,
    skip_empty: bool = True,
    out_dir=None,
    ext: str = ".png",
    pad: bool = True,
    report: Optional[ImportReport] = None,
    names: str = "devkit",
) -> List[ImageRecord]:
    """Plans the tiles of one image: records only, no file is written.

    Args:
        record: the source image and its objects
        size, gap, keep_thresh: see :func:`windows` and :func:`tile_objects`
        skip_empty: leave out tiles with no object (counted ``"empty tile"``)
        out_dir: folder of the planned tile files (default: the image's folder)
        ext: tile file extension
        pad: tiles are ``size x size`` (edge tiles padded); else cut at the border
        report: where empty tiles, degenerate objects and objects kept in no
            tile are counted
        names: ``"devkit"`` or ``"release"`` (see :func:`tile_name`)

    Returns:
        one record per tile: ``filepath`` the planned tile file, ``tile =
        {"source_image", "x", "y"}``, the source's ``source``, ``split``,
        ``gsd``, ``imagesource``, ``label_path`` and attributes (a FAIR1M
        ``uid`` gets the tile suffix ``__<size>__<x>___<y>``)
    """
    if names not in NAME_STYLES:
        raise ValueError("names must be one of %s, got %r" % (NAME_STYLES, names))
    width, height = _record_size(record)
    stem = record.attributes.get("uid") or os.path.splitext(os.path.basename(record.filepath))[0]
    folder = os.fspath(out_dir) if out_dir is not None else os.path.dirname(record.filepath)
    best = np.zeros(len(record.objects), dtype=np.float64)
    tiles = []
    if report is not None:
        for obj in record.objects:
            if obj.degenerate:
                report.skip("degenerate object",
                            "%s (%s, %s): zero-area object left out of the tiles"
                            % (record.label_path or record.filepath, obj.source_id, obj.label))
    index = _ObjectIndex(record.objects)
    column, column_x = None, None
    for n, (x, y) in enumerate(windows(width, height, size, gap)):
        tw, th = min(size, width - x), min(size, height - y)
        if x != column_x:  # windows run column by column
            column, column_x = index.column(x, x + tw), x
        objs = index.window(column, x, y, tw, th, keep_thresh, best)
        name = tile_name(stem, size, x, y, ext, style=names, index=n)
        if not objs and skip_empty:
            if report is not None:
                report.skip("empty tile", "%s: tile %s has no object" % (record.filepath, name))
            continue
        attrs = dict(record.attributes)
        if "uid" in attrs:
            attrs["uid"] = "%s__%d__%d___%d" % (attrs["uid"], size, x, y)
        tiles.append(
            ImageRecord(
                filepath=os.path.abspath(os.path.join(folder, name)),
                width=size if pad else tw,
                height=size if pad else th,
                objects=objs,
                source=record.source,
                split=record.split,
                gsd=record.gsd,
                imagesource=record.imagesource,
                label_path=record.label_path,
                tile={"source_image": record.filepath, "x": x, "y": y},
                attributes=attrs,
            )
        )
    if report is not None:
        for k, obj in enumerate(record.objects):
            if best[k] < keep_thresh and not obj.degenerate:
                report.warn(
                    "object in no tile",
                    "%s (%s, %s): at most %.0f%% of it falls in one tile (keep_thresh %.2f)"
                    % (record.label_path or record.filepath, obj.source_id, obj.label,
                       100 * best[k], keep_thresh),
                )
    return tiles


def pad_tile(crop: np.ndarray, size: int, value: Sequence[int] = PAD_VALUE) -> np.ndarray:
    """An edge crop padded at its right and bottom to ``size x size`` with
    ``value`` (one value per channel, BGR; the first for a one-channel image)."""
    value = np.asarray(value, dtype=np.float64).reshape(-1)
    channels = crop.shape[2] if crop.ndim == 3 else 1
    fill = value[:channels] if len(value) >= channels else np.resize(value, channels)
    padded = np.empty((size, size) + crop.shape[2:], dtype=crop.dtype)
    padded[...] = fill.astype(crop.dtype) if crop.ndim == 3 else fill[0].astype(crop.dtype)
    padded[: crop.shape[0], : crop.shape[1]] = crop
    return padded


class _PixelBudget:
    """Bounds the pixels of source images decoded at the same time.

    A 20000x20000 RGB image is 1.2 GB decoded: with several workers, two of
    them at once would double that. An image larger than the budget waits
    until it is the only one decoded.
    """

    def __init__(self, pixels: int):
        self.pixels = int(pixels)
        self.used = 0
        self._cond = threading.Condition()

    def acquire(self, n: int) -> None:
        with self._cond:
            while self.used and self.used + n > self.pixels:
                self._cond.wait()
            self.used += n

    def release(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()


#: source pixels decoded at once across the tiling workers (about 0.8 GB of
#: RGB); a larger image is decoded alone
DECODE_BUDGET_PIXELS = 1 << 28


def _write_tiles(record: ImageRecord, tiles: List[ImageRecord], size: int, pad: bool,
                 report: ImportReport, pad_value: Sequence[int] = PAD_VALUE,
                 on_tile: Optional[Callable[[int], None]] = None,
                 budget: Optional[_PixelBudget] = None, writers: int = 1) -> List[ImageRecord]:
    """Writes the tile files of one image: the image is decoded once, then
    every tile is a crop of it (padded at the edges), written by ``writers``
    threads; ``on_tile(n)`` is called as tiles are done."""
    import cv2

    todo = [t for t in tiles if not os.path.isfile(t.filepath)]
    if on_tile is not None and len(tiles) > len(todo):
        on_tile(len(tiles) - len(todo))
    if not todo:
        return tiles
    try:
        w, h = _record_size(record)
        pixels = int(w) * int(h)
    except FormatError:
        pixels = 0
    if budget is not None:
        budget.acquire(pixels)
    try:
        img = cv2.imread(record.filepath, cv2.IMREAD_UNCHANGED)
        if img is None:
            report.skip("unreadable image", "%s: cannot read the image to tile it"
                        % record.filepath)
            return []

        def write(t: ImageRecord) -> None:
            x, y = t.tile["x"], t.tile["y"]
            crop = img[y : y + size, x : x + size]  # a view: no copy of the image
            if pad and crop.shape[:2] != (size, size):
                crop = pad_tile(crop, size, pad_value)
            write_image(t.filepath, crop)
            if on_tile is not None:
                on_tile(1)

        if writers > 1 and len(todo) > 1:
            with ThreadPoolExecutor(max_workers=writers,
                                    thread_name_prefix="samrs-tile-write") as pool:
                for f in [pool.submit(write, t) for t in todo]:
                    f.result()
        else:
            for t in todo:
                write(t)
        img = None  # free the decoded image before the next one is read
    finally:
        if budget is not None:
            budget.release(pixels)
    return tiles


def tile_images(
    records: Iterable[ImageRecord],
    out_dir,
    *,
    size: int = 1024,
    gap: int = 200,
    keep_thresh: float = 0.7,
    skip_empty: bool = True,
    pad: bool = True,
    pad_value: Sequence[int] = PAD_VALUE,
    names: str = "devkit",
    ext: str = ".png",
    workers: int = 2,
    report: Optional[ImportReport] = None,
    progress: bool = True,
) -> Iterator[ImageRecord]:
    """Cuts images into tile files and yields the tile records.

    Each source image is decoded once (``cv2.IMREAD_UNCHANGED``, so bit depth
    and channels are kept) and its tiles are crops of that one array; at
    most :data:`DECODE_BUDGET_PIXELS` source pixels are decoded at a time
    over all workers (a larger image is decoded alone), so a 20000x20000
    image is in memory once. Resumable: a tile file that already exists is
    not written again (and its image not read when all its tiles exist).
    Tiles are written to a ``.partial`` name and renamed, so an interrupted
    run leaves no half-written tile behind. The progress bar counts tiles
    (its total grows as each image's tiles are planned).

    Args:
        records: source images with their objects (e.g. from a ``scan``)
        out_dir: where tile files go (created)
        size, gap, keep_thresh: see :func:`windows` and :func:`tile_objects`
        skip_empty: leave out tiles with no object (counted ``"empty tile"``)
        pad: pad edge tiles to ``size x size``
        pad_value: their padding, BGR (default :data:`PAD_VALUE`, as SAMRS)
        names: tile names, ``"devkit"`` or ``"release"`` (see :func:`tile_name`)
        ext: tile file extension (``.png`` is lossless)
        workers: threads reading images (and writing the tiles of a large one)
        report: receives skips (``"empty tile"``, ``"unreadable image"``) and
            ``"object in no tile"`` warnings; image and object counts are
            left to the caller (they describe the source)
        progress: show a progress bar (tiles written)

    Yields:
        tile records (see :func:`tile_record`), in input order

    Raises:
        ValueError: when two tiles of the run would share a file (e.g. two
            source images of one stem), naming both sources
    """
    from tqdm import tqdm

    if report is None:
        report = ImportReport()
    out_dir = os.path.abspath(os.fspath(out_dir))
    os.makedirs(out_dir, exist_ok=True)
    total = len(records) if hasattr(records, "__len__") else None  # type: ignore[arg-type]
    owners: dict = {}
    workers = max(1, int(workers or 1))
    budget = _PixelBudget(DECODE_BUDGET_PIXELS)
    lock = threading.Lock()
    images_done = [0]
    bar = tqdm(total=0, desc="tiling", unit="tile", leave=False, disable=not progress,
               mininterval=0.5)

    def planned(n: int) -> None:
        with lock:
            bar.total += n
            bar.refresh()

    def on_tile(n: int) -> None:
        with lock:
            bar.update(n)

    def image_done() -> None:
        with lock:
            images_done[0] += 1
            bar.set_postfix_str("image %d%s" % (images_done[0],
                                                "/%d" % total if total else ""), refresh=False)

    def work(record: ImageRecord) -> Tuple[List[ImageRecord], ImportReport]:
        local = ImportReport()
        try:
            tiles = tile_record(record, size, gap, keep_thresh, skip_empty=skip_empty,
                                out_dir=out_dir, ext=ext, pad=pad, report=local, names=names)
        except FormatError as e:  # no size given and the image header is unreadable
            local.skip("unreadable image", str(e))
            return [], local
        for t in tiles:  # one file per tile, whatever the stems of the sources
            first = owners.setdefault(t.filepath, record.filepath)
            if first != record.filepath:
                raise ValueError(
                    "tiles of %s and %s would share the file %s (their stems are equal); "
                    "tile them into different folders or give the records a unique 'uid'"
                    % (first, record.filepath, t.filepath))
        if tiles:
            planned(len(tiles))
            tiles = _write_tiles(record, tiles, size, pad, local, pad_value, on_tile=on_tile,
                                 budget=budget, writers=workers)
        return tiles, local

    try:
        for tiles, local in ordered_map(work, records, workers):
            report.merge(local)
            image_done()
            yield from tiles
    finally:
        bar.close()
