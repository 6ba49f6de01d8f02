"""The tiling planner as it was before the spatial index: every window against
every object, one Python call each (0.1.0's algorithm with the SAMRS-faithful
rules of 6b4e65e).

Kept as the reference that :func:`fiftyone_samrs.importing.tiling.tile_record`
must reproduce exactly (``tests/test_tiling.py``) and as the baseline of
``benchmarks/bench_tiling.py``. Not used by the package itself.
"""

from __future__ import annotations

import copy
import os
from typing import List, Optional, Tuple

import numpy as np

from fiftyone_samrs.core.geometry import box_area, clip_box, quad_area, quad_to_hbox
from fiftyone_samrs.core.records import (
    ImageRecord,
    ImportReport,
    ObjectRecord,
)
from fiftyone_samrs.importing.tiling import (  # the leaf helpers the index did not change
    NAME_STYLES,
    _hbox_from_quad,
    _polygon,
    _record_size,
    crop_mask,
    tile_name,
    windows,
)

_EPS = 1e-9


# the geometry helpers, as they were (tiling.py may optimise its own copies)


def _signed_area(q: np.ndarray) -> float:
    x, y = q[:, 0], q[:, 1]
    return float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0


def _reduce_polygon(pts: np.ndarray, n: int = 4) -> np.ndarray:
    """Drops, one at a time, the corner whose removal loses the least area.

    On a convex polygon (a quad clipped by a tile is convex) the result stays
    inside the polygon, so inside both the object and the tile.
    """
    pts = np.asarray(pts, dtype=np.float64)
    while len(pts) > n:
        prev, nxt = np.roll(pts, 1, axis=0), np.roll(pts, -1, axis=0)
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
        start = int(np.argmin(np.hypot(*(q - original[0]).T)))
        q = np.roll(q, -start, axis=0)
    return q


def object_in_tile(obj: ObjectRecord, x: int, y: int, tw: int, th: int,
                   keep_thresh: float) -> Tuple[Optional[ObjectRecord], float]:
    """The object as seen in a tile (or None) and the fraction of it inside."""
    from shapely.geometry import box as sbox

    x1, y1 = x + tw, y + th
    ox0, oy0, ox1, oy1 = quad_to_hbox(obj.quad) if obj.quad is not None else obj.hbox
    hx0, hy0, hx1, hy1 = obj.hbox
    bx0, by0, bx1, by1 = min(ox0, hx0), min(oy0, hy0), max(ox1, hx1), max(oy1, hy1)
    if bx1 < x or by1 < y or bx0 > x1 or by0 > y1:
        return None, 0.0
    inside = bx0 >= x and by0 >= y and bx1 <= x1 and by1 <= y1
    area = quad_area(obj.quad) if obj.quad is not None else box_area(obj.hbox)
    shift = np.array([x, y], dtype=np.float64)
    if obj.degenerate or area <= _EPS:
        return None, 0.0
    if inside:
        out = copy.copy(obj)
        out.quad = None if obj.quad is None else np.asarray(obj.quad, dtype=np.float64) - shift
        out.hbox = (hx0 - x, hy0 - y, hx1 - x, hy1 - y)
        out.mask = crop_mask(obj.mask, x, y, tw, th)
        out.attributes = dict(obj.attributes)
        return out, 1.0
    poly = _polygon(obj)
    inter = poly.intersection(sbox(x, y, x1, y1))
    ratio = inter.area / poly.area if poly.area > 0 else 0.0
    if ratio < keep_thresh or inter.is_empty or inter.area <= 0:
        return None, ratio
    out = copy.copy(obj)
    out.attributes = dict(obj.attributes)
    out.truncated = True
    whole = quad_to_hbox(obj.quad) if _hbox_from_quad(obj) else obj.hbox
    out.attributes["prompt_box"] = [whole[0] - x, whole[1] - y, whole[2] - x, whole[3] - y]
    if obj.quad is not None:
        out.attributes["prompt_quad"] = (np.asarray(obj.quad, dtype=np.float64)
                                         - shift).tolist()
    if obj.quad is not None:
        q = _reduce_to_quad(inter, np.asarray(obj.quad, dtype=np.float64))
        out.quad = q - shift
    if _hbox_from_quad(obj):
        b = inter.bounds
        out.hbox = (b[0] - x, b[1] - y, b[2] - x, b[3] - y)
    else:
        out.hbox = tuple(v for v in clip_box((hx0 - x, hy0 - y, hx1 - x, hy1 - y), tw, th))
    out.mask = crop_mask(obj.mask, x, y, tw, th)
    return out, ratio


def tile_record(record: ImageRecord, size: int, gap: int, keep_thresh: float,
                skip_empty: bool = True, out_dir=None, ext: str = ".png", pad: bool = True,
                report: Optional[ImportReport] = None,
                names: str = "devkit") -> List[ImageRecord]:
    """:func:`fiftyone_samrs.importing.tiling.tile_record`, windows x objects."""
    if names not in NAME_STYLES:
        raise ValueError("names must be one of %s, got %r" % (NAME_STYLES, names))
    width, height = _record_size(record)
    stem = record.attributes.get("uid") or os.path.splitext(os.path.basename(record.filepath))[0]
    folder = os.fspath(out_dir) if out_dir is not None else os.path.dirname(record.filepath)
    best = [0.0] * len(record.objects)
    tiles = []
    if report is not None:
        for obj in record.objects:
            if obj.degenerate:
                report.skip("degenerate object",
                            "%s (%s, %s): zero-area object left out of the tiles"
                            % (record.label_path or record.filepath, obj.source_id, obj.label))
    for index, (x, y) in enumerate(windows(width, height, size, gap)):
        tw, th = min(size, width - x), min(size, height - y)
        objs = []
        for k, obj in enumerate(record.objects):
            o, ratio = object_in_tile(obj, x, y, tw, th, keep_thresh)
            best[k] = max(best[k], ratio)
            if o is not None:
                objs.append(o)
        name = tile_name(stem, size, x, y, ext, style=names, index=index)
        if not objs and skip_empty:
            if report is not None:
                report.skip("empty tile", "%s: tile %s has no object" % (record.filepath, name))
            continue
        attrs = dict(record.attributes)
        if "uid" in attrs:
            attrs["uid"] = "%s__%d__%d___%d" % (attrs["uid"], size, x, y)
        tiles.append(ImageRecord(
            filepath=os.path.abspath(os.path.join(folder, name)),
            width=size if pad else tw, height=size if pad else th, objects=objs,
            source=record.source, split=record.split, gsd=record.gsd,
            imagesource=record.imagesource, label_path=record.label_path,
            tile={"source_image": record.filepath, "x": x, "y": y}, attributes=attrs))
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
