"""Fake-but-realistic source trees (DOTA, HRSC2016, DIOR, FAIR1M) for tests,
the demo and the benchmarks.

Each ``make_*_tree`` writes real image files and valid label files in the
official layout of its format, and returns the ground truth it drew::

    {
        "root": "/abs/root", "format": "dota", "version": "1.0",
        "classes": [...],                    # the normalised class list used
        "n_objects": 48,
        "images": [
            {
                "id": "P0000", "filepath": "/abs/.../P0000.png",
                "label_path": "/abs/.../P0000.txt", "width": 800, "height": 600,
                "split": None, "objects": [
                    {
                        "label": "small-vehicle",   # normalised class name
                        "raw_label": "small-vehicle",  # as written in the file
                        "quad": (4, 2) float array,     # as written in the file
                        "hbox": (x0, y0, x1, y1),       # what the parser must return
                        "shape": "rect" | "ellipse" | "cross" | "ship",
                        "mask": InstanceMask | None,   # the drawn pixels (gt_masks=True)
                        "color": (r, g, b),            # base colour in the image
                        ...format specific keys (see each function)
                    }, ...
                ],
            }, ...
        ],
    }

Images look like (simplified) aerial imagery, so that segmenting them is a
real task: land-cover patches (fields with crop rows, forest, soil, concrete,
water) with hedges and tracks, roads, clutter that is no object (trees,
unlabelled buildings, spots), cast shadows, and a blur + noise + JPEG
"sensor". Each object is a shape with a base colour (``"color"``: a material
of its class, or for some objects a colour close to the ground under them),
sun shading and class details (windscreens, roof ridges, court lines, decks,
engines): rotated rectangles for vehicles and courts, circles for storage tanks
and roundabouts, a cross for planes and a pointed hull for ships. HRSC trees
are sea scenes (ships get wakes). The GT mask is exactly the pixels painted
for the object (shadows, wakes and clutter are never in it; the sensor blurs
its border in the image, not in the mask), so a segmenter's mask is
meaningful and differs from a filled box. Objects are placed on a jittered
grid (one object per cell), so they never overlap. A classical GrabCut from
the H-Box scores roughly 75-90 mIoU on these scenes, filling the box ~52.

Generation is deterministic for a given ``seed`` (each image uses its own
``default_rng([seed, index])``, so ``workers`` does not change the output).
Rendering draws from a child stream of that generator, so the label files
(placement, classes, ``gsd``, ``difficult``, HRSC ``seg_color``...) of a seed
are the same as those of the first, flat-colour version of this module.
Pass ``gt_masks=False`` for large benchmark trees to skip keeping masks.
"""

from __future__ import annotations

import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union
from xml.sax.saxutils import escape

import numpy as np

from fiftyone_samrs.core import classes as C
from fiftyone_samrs.core.geometry import quad_to_hbox, rbox_to_quad
from fiftyone_samrs.core.records import InstanceMask

__all__ = ["make_dota_tree", "make_hrsc_tree", "make_dior_tree", "make_fair1m_tree"]

# ----------------------------------------------------------------------------
# shapes and sizes per class keyword

_ELLIPSE_KEYS = ("tank", "roundabout", "chimney")
_CROSS_KEYS = ("plane", "helicopter", "boeing", "a220", "a321", "a330", "a350",
               "arj21", "c919")
_SHIP_KEYS = ("ship", "boat", "tugboat", "warship")
#: (keyword, (min length, max length), (min width/length, max width/length))
_SIZES = [
    ("container-crane", (30, 80), (0.2, 0.35)),
    ("ground-track-field", (120, 260), (0.5, 0.6)),
    ("groundtrackfield", (120, 260), (0.5, 0.6)),
    ("airport", (150, 300), (0.3, 0.6)),
    ("stadium", (100, 220), (0.6, 0.8)),
    ("golf", (100, 250), (0.5, 0.9)),
    ("dam", (80, 200), (0.2, 0.4)),
    ("expressway", (80, 200), (0.4, 0.7)),
    ("trainstation", (100, 220), (0.3, 0.5)),
    ("intersection", (60, 160), (0.8, 1.0)),
    ("overpass", (80, 200), (0.2, 0.4)),
    ("harbor", (60, 200), (0.2, 0.4)),
    ("bridge", (60, 200), (0.12, 0.25)),
    ("soccer", (80, 160), (0.6, 0.7)),
    ("football", (80, 160), (0.6, 0.7)),
    ("roundabout", (50, 120), (1.0, 1.0)),
    ("tank", (14, 50), (1.0, 1.0)),
    ("chimney", (10, 30), (1.0, 1.0)),
    ("windmill", (14, 40), (0.3, 0.5)),
    ("helipad", (20, 40), (0.9, 1.0)),
    ("court", (28, 70), (0.5, 0.6)),
    ("field", (60, 140), (0.6, 0.9)),
    ("diamond", (50, 120), (0.9, 1.0)),
    ("pool", (12, 40), (0.4, 0.7)),
    ("plane", (30, 80), (0.8, 1.0)),
    ("helicopter", (16, 30), (0.8, 1.0)),
    ("boeing", (40, 80), (0.8, 1.0)),
    ("a3", (40, 80), (0.8, 1.0)),
    ("a220", (30, 60), (0.8, 1.0)),
    ("arj21", (28, 50), (0.8, 1.0)),
    ("c919", (35, 60), (0.8, 1.0)),
    ("ship", (30, 120), (0.18, 0.32)),
    ("boat", (16, 50), (0.25, 0.4)),
    ("large-vehicle", (22, 45), (0.3, 0.45)),
    ("truck", (20, 40), (0.3, 0.45)),
    ("bus", (22, 40), (0.3, 0.4)),
    ("trailer", (20, 40), (0.3, 0.4)),
    ("excavator", (14, 28), (0.4, 0.6)),
    ("tractor", (10, 20), (0.4, 0.6)),
    ("vehicle", (10, 24), (0.4, 0.55)),
    ("car", (10, 20), (0.4, 0.55)),
    ("van", (12, 22), (0.4, 0.55)),
]


def _shape_of(label: str) -> str:
    key = label.lower()
    if any(k in key for k in _ELLIPSE_KEYS):
        return "ellipse"
    if any(k in key for k in _CROSS_KEYS):
        return "cross"
    if any(k in key for k in _SHIP_KEYS):
        return "ship"
    return "rect"


def _size_of(label: str) -> Tuple[Tuple[float, float], Tuple[float, float]]:
    key = label.lower()
    for k, length, aspect in _SIZES:
        if k in key:
            return length, aspect
    return (20, 60), (0.4, 0.8)


def _local_polygons(shape: str, length: float, width: float) -> List[np.ndarray]:
    """The shape's polygons in box axes (u along ``length``, v across), centred."""
    L, W = length / 2.0, width / 2.0
    if shape == "ellipse":
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        return [np.stack([L * np.cos(t), W * np.sin(t)], axis=1)]
    if shape == "cross":
        body = max(W * 0.22, 1.0)
        wing_u = L * 0.1
        tail = L * 0.75
        fus = np.array([[-L, -body * 0.8], [L * 0.8, -body], [L, 0], [L * 0.8, body], [-L, body * 0.8]])
        wings = np.array([[wing_u - L * 0.2, -W], [wing_u + L * 0.05, -W],
                          [wing_u + L * 0.05, W], [wing_u - L * 0.2, W]])
        tailp = np.array([[-tail - L * 0.1, -W * 0.45], [-tail + L * 0.05, -W * 0.45],
                          [-tail + L * 0.05, W * 0.45], [-tail - L * 0.1, W * 0.45]])
        return [fus, wings, tailp]
    if shape == "ship":
        return [np.array([[-L, -W], [L * 0.55, -W], [L, 0.0], [L * 0.55, W], [-L, W]])]
    return [np.array([[-L, -W], [L, -W], [L, W], [-L, W]])]


def _to_image(polys: List[np.ndarray], cx: float, cy: float, angle: float) -> List[np.ndarray]:
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, s], [-s, c]])  # row vectors: [u, v] @ rot = [u c - v s, u s + v c]
    return [p @ rot + np.array([cx, cy]) for p in polys]


def _shape_mask(o: Dict[str, Any], width: int, height: int) -> Optional[InstanceMask]:
    """Pixels whose centre is strictly inside the object's shape (tight crop).

    Convex polygons are tested edge by edge (half-planes), ellipses
    analytically: exact, and much faster than a general point-in-polygon test.
    """
    pts = np.concatenate(o["polys"])
    x0, y0 = max(int(np.floor(pts[:, 0].min())), 0), max(int(np.floor(pts[:, 1].min())), 0)
    x1 = min(int(np.ceil(pts[:, 0].max())), width)
    y1 = min(int(np.ceil(pts[:, 1].max())), height)
    if x1 <= x0 or y1 <= y0:
        return None
    gx = (np.arange(x0, x1, dtype=np.float64) + 0.5)[None, :]
    gy = (np.arange(y0, y1, dtype=np.float64) + 0.5)[:, None]
    if o["shape"] == "ellipse":
        c, s = math.cos(o["angle"]), math.sin(o["angle"])
        dx, dy = gx - o["cx"], gy - o["cy"]
        u, v = dx * c + dy * s, -dx * s + dy * c
        inside = (u / (o["length"] / 2)) ** 2 + (v / (o["width"] / 2)) ** 2 < 1.0
    else:
        inside = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        for poly in o["polys"]:
            n = len(poly)
            area2 = float(np.dot(poly[:, 0], np.roll(poly[:, 1], -1))
                          - np.dot(poly[:, 1], np.roll(poly[:, 0], -1)))
            sign = 1.0 if area2 > 0 else -1.0
            part = np.ones_like(inside)
            for i in range(n):
                (ax, ay), (bx, by) = poly[i], poly[(i + 1) % n]
                part &= sign * ((bx - ax) * (gy - ay) - (by - ay) * (gx - ax)) > 0
            inside |= part
    if not inside.any():
        return None
    t = InstanceMask.from_full(inside)
    return InstanceMask(t.mask, t.x0 + x0, t.y0 + y0)


# ----------------------------------------------------------------------------
# images
#
# One image is rendered in five steps (``_render``):
#
# 1. land cover: Voronoi patches of fields, forest, soil, concrete, water...
#    with crop rows (stripes) and mottling per patch, a low-frequency colour
#    and illumination field, roads and tracks (``_land_cover``, ``_roads``);
# 2. clutter that is no object: tree clumps, unlabelled buildings, spots,
#    whitecaps and ship wakes at sea (``_Clutter``);
# 3. cast shadows of the clutter and of the objects, away from the sun;
# 4. the objects: a material colour of their class, or for some of them a
#    colour close to the ground under them, sun shading and class details
#    (windscreens, roof ridges, court lines, decks, engines...) (``_paint``);
# 5. the sensor: Gaussian blur, noise and a JPEG round trip (``_sensor``).
#
# Only step 4 is ground truth: an object's mask is exactly the pixels painted
# in step 4; the sensor changes their values, not which object they show.
# Shadows, wakes and clutter are never part of a mask.
#
# The main random stream of an image (``rng``) is consumed exactly as by the
# first version of this module (placement, then ``_legacy_draws`` and one
# colour per object, then what the generators draw after rendering), so the
# label files of a seed did not change; everything new draws from a child
# stream (``rng.spawn``), which does not advance ``rng``.


def _legacy_draws(rng: np.random.Generator, width: int, height: int):
    """The draws of the first background: (low-frequency offsets, fine noise)."""
    gh, gw = height // 64 + 2, width // 64 + 2
    base = rng.integers(80, 140, size=(1, 1, 3))
    low = base + rng.integers(-40, 40, size=(gh, gw, 1)) + rng.integers(-12, 12, size=(gh, gw, 3))
    nh, nw = height // 4 + 1, width // 4 + 1
    noise = rng.integers(0, 24, size=(nh, nw, 3), dtype=np.uint8)
    return (low - base).astype(np.float32), noise


def _object_color(rng: np.random.Generator) -> Tuple[int, int, int]:
    # a bright, saturated colour; only some objects keep it (see _material)
    hue = rng.uniform(0, 1)
    k = np.array([5.0, 3.0, 1.0]) + hue * 6
    rgb = 1 - np.clip(np.minimum(k % 6, 4 - k % 6), 0, 1) * rng.uniform(0.55, 0.9)
    rgb = rgb * rng.uniform(190, 255)
    return tuple(int(v) for v in rgb)


#: land-cover types: (name, RGB, weight on land, weight at sea, P(stripes),
#: stripe amplitude range, mottle amplitude)
_COVER = (
    ("grass", (98, 116, 66), 3.0, 0.0, 0.25, (5, 12), 9.0),
    ("forest", (54, 74, 46), 1.5, 0.0, 0.0, (0, 0), 16.0),
    ("crops", (126, 138, 80), 3.0, 0.0, 0.9, (6, 16), 7.0),
    ("soil", (146, 122, 96), 2.0, 0.0, 0.6, (5, 14), 9.0),
    ("dry", (176, 162, 130), 1.0, 0.0, 0.3, (4, 10), 8.0),
    ("concrete", (156, 154, 148), 2.0, 0.5, 0.0, (0, 0), 6.0),
    ("asphalt", (92, 94, 96), 1.0, 0.3, 0.0, (0, 0), 5.0),
    ("water", (46, 70, 80), 0.6, 9.0, 0.7, (2, 6), 5.0),
)
_WATER = 7  # index of "water" in _COVER

#: classes drawn flat (no cast shadow) and per-keyword heights (x length / x width)
_FLAT_KEYS = ("court", "field", "diamond", "soccer", "football", "pool", "harbor",
              "bridge", "roundabout", "helipad", "dam", "expressway", "intersection",
              "golf", "airport", "overpass")
_VEHICLE_KEYS = ("vehicle", "car", "truck", "bus", "van", "trailer", "excavator", "tractor")
_LARGE_VEHICLE_KEYS = ("large", "truck", "bus", "trailer", "excavator")
_COURT_KEYS = ("court", "field", "diamond", "soccer", "football", "golf")


def _has(key: str, words: Sequence[str]) -> bool:
    return any(w in key for w in words)


def _land_cover(r2: np.random.Generator, width: int, height: int, low: np.ndarray,
                fine: np.ndarray, scene: str):
    """Patches of land cover, computed at half resolution and upscaled, with
    field boundaries (hedges, tracks) drawn at full resolution.

    Returns:
        (RGB uint8 image, half-resolution patch map, cover type per patch)
    """
    import cv2

    w2, h2 = (width + 1) // 2, (height + 1) // 2
    k = int(np.clip(width * height / 190.0 ** 2, 3, 250))
    sub = cv2.Subdiv2D((0, 0, w2 + 1, h2 + 1))
    seeds = r2.uniform(0.25, 1.0, size=(k, 2)) * [w2, h2]
    sub.insert([(float(x), float(y)) for x, y in seeds])
    facets, _ = sub.getVoronoiFacetList([])
    patch = np.zeros((h2, w2), dtype=np.uint8)
    for i, f in enumerate(facets):
        cv2.fillPoly(patch, [np.round(f * 16).astype(np.int32)], i, shift=4)
    weights = np.array([c[3] if scene == "sea" else c[2] for c in _COVER])
    types = r2.choice(len(_COVER), size=k, p=weights / weights.sum())
    base = np.array([_COVER[t][1] for t in types], dtype=np.float64)
    col = base + r2.normal(0, 7, (k, 3)) + r2.normal(0, 10, (k, 1))
    wet = types == _WATER  # one water colour per image, slightly varied
    col[wet] = base[wet] + r2.normal(0, 6, 3) + r2.normal(0, 2.5, (int(wet.sum()), 3))
    stripes = r2.uniform(size=k) < np.array([_COVER[t][4] for t in types])
    lo, hi = np.array([_COVER[t][5] for t in types], dtype=np.float64).T
    amp = np.where(stripes, r2.uniform(lo, hi + 1e-9), 0.0)
    theta = r2.uniform(0, np.pi, k)
    period = r2.uniform(2.0, 5.0, k)  # half-resolution pixels
    mott = np.array([_COVER[t][6] for t in types]) * r2.uniform(0.6, 1.4, k)

    def lut(values, dtype):  # per-patch values as a 256-entry table for cv2.LUT
        t = np.zeros(256, dtype=dtype)
        t[:k] = values
        return t

    # stripes (crop rows): a triangle wave of the phase, in fixed point (256 steps a period)
    cu = cv2.LUT(patch, lut(np.round(np.cos(theta) / period * 1024), np.int32))
    cv = cv2.LUT(patch, lut(np.round(np.sin(theta) / period * 1024), np.int32))
    xs = np.arange(w2, dtype=np.int32)
    ys = np.arange(h2, dtype=np.int32)[:, None]
    phase = ((xs * cu + ys * cv) >> 2).astype(np.uint8)  # wraps: modulo 256
    tri = (np.abs(np.arange(256) - 127.5) / 127.5 - 0.5).astype(np.float32)
    lum = cv2.LUT(phase, tri) * cv2.LUT(patch, lut(amp, np.float32))
    blot = r2.standard_normal((h2 // 10 + 2, w2 // 10 + 2), dtype=np.float32)
    lum += cv2.resize(blot, (w2, h2), interpolation=cv2.INTER_CUBIC) * cv2.LUT(
        patch, lut(mott, np.float32))
    lum3 = cv2.cvtColor(np.clip(lum + 128, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    lut3 = np.zeros((256, 1, 3), dtype=np.uint8)
    lut3[:k, 0] = np.clip(np.round(col), 0, 255)
    img = cv2.LUT(cv2.cvtColor(patch, cv2.COLOR_GRAY2RGB), lut3)
    img = cv2.addWeighted(img, 1.0, lum3, 1.0, -128.0)
    # the first generator's low-frequency colour field and fine noise
    fh, fw = fine.shape[:2]
    lf = cv2.resize(low * np.float32(0.35), (fw, fh), interpolation=cv2.INTER_LINEAR)
    lf += fine.astype(np.float32) * np.float32(0.5) + np.float32(128 - 6)
    lf = cv2.resize(np.clip(lf, 0, 255).astype(np.uint8), (w2, h2),
                    interpolation=cv2.INTER_LINEAR)
    img = cv2.addWeighted(img, 1.0, lf, 1.0, -128.0)
    img = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
    # field boundaries: hedges, tracks or nothing
    style = r2.uniform(size=k)
    for f, s, t in zip(facets, style, types):
        if s < 0.35 or t == _WATER:
            continue
        rgb, thick = (((46.0, 64.0, 40.0), 2) if s < 0.7 else ((168.0, 150.0, 118.0), 1))
        cv2.polylines(img, [np.round(f * 32).astype(np.int32)], True, rgb, thick, cv2.LINE_AA, 4)
    return img, patch, types


def _roads(r2: np.random.Generator, img: np.ndarray, scene: str) -> None:
    """Straight roads and tracks across the image (in place)."""
    import cv2

    height, width = img.shape[:2]
    n = r2.poisson((0.3 if scene == "sea" else 1.6) * width * height / 1024.0 ** 2)
    diag = math.hypot(width, height)
    for _ in range(int(n)):
        p = r2.uniform(0, 1, 2) * [width, height]
        a = r2.uniform(0, np.pi)
        d = np.array([math.cos(a), math.sin(a)]) * diag
        kind = r2.uniform()
        if kind < 0.5:
            rgb, thick = r2.uniform(70, 100) + r2.normal(0, 3, 3), r2.uniform(6, 16)
        elif kind < 0.8:
            rgb, thick = r2.uniform(140, 180) + r2.normal(0, 3, 3), r2.uniform(5, 12)
        else:  # dirt track
            rgb, thick = np.array([150.0, 128, 100]) + r2.normal(0, 8, 3), r2.uniform(2, 5)
        a0, a1 = np.round((p - d) * 16).astype(int), np.round((p + d) * 16).astype(int)
        cv2.line(img, tuple(int(v) for v in a0), tuple(int(v) for v in a1),
                 tuple(float(v) for v in rgb), int(round(thick)), cv2.LINE_AA, 4)
        if thick > 9 and r2.uniform() < 0.7:  # dashed centre line
            t = np.arange(-diag, diag, 20.0)
            u = d / diag
            segs = [np.round(np.stack([p + u * s, p + u * (s + 8.0)]) * 16).astype(np.int32)
                    for s in t]
            cv2.polylines(img, segs, False, (215, 212, 200), 1, cv2.LINE_AA, 4)


def _sweep(poly: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The convex hull swept by a (convex) polygon moving by ``d``."""
    import cv2

    pts = np.concatenate([poly, poly + d]).astype(np.float32)
    return cv2.convexHull(pts)[:, 0, :].astype(np.float64)


def _fill(img: np.ndarray, polys: Sequence[np.ndarray], rgb, origin=(0.0, 0.0)) -> None:
    """Fills polygons given in image coordinates (pixel centres at +0.5)."""
    import cv2

    o = np.array([origin[0] + 0.5, origin[1] + 0.5])
    for p in polys:
        cv2.fillPoly(img, [np.round((p - o) * 16).astype(np.int32)], rgb, cv2.LINE_AA, 4)


@functools.lru_cache(maxsize=None)
def _height_factors(label: str, shape: str) -> Tuple[float, float]:
    """An object's height as ``(a, b)``: ``a * length + b * width`` pixels."""
    key = label.lower()
    if _has(key, _FLAT_KEYS):
        return 0.0, 0.0
    for k, a in (("chimney", 2.5), ("windmill", 1.5), ("crane", 0.6), ("tank", 0.45)):
        if k in key:
            return a, 0.0
    if _has(key, _VEHICLE_KEYS):
        return 0.0, (0.65 if _has(key, _LARGE_VEHICLE_KEYS) else 0.45)
    if shape == "cross":
        return 0.0, 0.15
    if shape == "ship":
        return 0.0, 0.5
    if "stadium" in key or "station" in key:
        return 0.08, 0.0
    return 0.0, 0.3


class _Clutter:
    """Things that are no object: tree clumps, unlabelled buildings, spots
    (dark on land, light whitecaps on water). Parameters are drawn in bulk."""

    def __init__(self, r2, width, height, patch, types, sun):
        scale = width * height / 1024.0 ** 2
        self.sun = sun

        def spots(n):  # random points and whether they are on water
            pts = r2.uniform(0, 1, (int(n), 2)) * [width, height]
            ix = np.minimum((pts / 2).astype(int), [patch.shape[1] - 1, patch.shape[0] - 1])
            return pts, types[patch[ix[:, 1], ix[:, 0]]] == _WATER

        # trees: clumps of 1-4 crowns
        pts, wet = spots(r2.poisson(70 * scale))
        pts = pts[~wet]
        per = r2.integers(1, 5, len(pts))
        centres = np.repeat(pts, per, axis=0) + r2.normal(0, 5, (int(per.sum()), 2))
        radii = r2.uniform(2.5, 7.0, len(centres))
        rgb = (np.array([48.0, 66, 42]) + r2.normal(0, 6, (len(pts), 3))
               + r2.normal(0, 8, (len(pts), 1)))
        self.tree_xyr = np.round(np.column_stack([centres, radii]) * 16).astype(int)
        self.tree_rgb = np.repeat(rgb, per, axis=0).tolist()
        # buildings: rotated boxes with a darker roof slope
        pts, wet = spots(r2.poisson(30 * scale))
        pts = pts[~wet]
        n = len(pts)
        size = np.column_stack([r2.uniform(8, 36, n), r2.uniform(6, 22, n)])
        ang = r2.uniform(0, np.pi, n)
        c, s = np.cos(ang)[:, None], np.sin(ang)[:, None]
        loc = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])[None] * (size[:, None] / 2)
        self.houses = np.stack([loc[..., 0] * c - loc[..., 1] * s + pts[:, :1],
                                loc[..., 0] * s + loc[..., 1] * c + pts[:, 1:]], axis=-1)
        kind = r2.uniform(size=n)
        grey = np.repeat(r2.uniform(110, 210, (n, 1)), 3, axis=1)
        dark = np.repeat(r2.uniform(55, 90, (n, 1)), 3, axis=1)
        red = np.array([150.0, 82, 64]) + r2.normal(0, 10, (n, 3))
        rgb = np.where((kind < 0.5)[:, None], grey, np.where((kind < 0.8)[:, None], red, dark))
        self.house_rgb = np.clip(rgb + r2.normal(0, 4, (n, 3)), 0, 255)
        self.house_h = r2.uniform(0.25, 0.6, n) * size[:, 1]
        # spots
        pts, wet = spots(r2.poisson(45 * scale))
        n = len(pts)
        light = wet | (r2.uniform(size=n) < 0.4)
        lum = np.where(light, r2.uniform(150, 215, n), r2.uniform(30, 70, n))
        self.spot_rgb = np.clip(lum[:, None] + r2.normal(0, 5, (n, 3)), 0, 255).tolist()
        axes = r2.uniform(1.0, 4.0, (n, 2))
        self.spot_p = np.round(np.column_stack([pts, axes]) * 16).astype(int)
        self.spot_a = r2.uniform(0, 180, n).tolist()

    def shadows(self, canvas: np.ndarray, k_sun: float) -> None:
        """Draws the clutter's cast shadows (value 1) on a mask."""
        import cv2

        d = np.array([math.cos(self.sun), math.sin(self.sun)])
        off = np.round(d * k_sun * 6.0 * 16).astype(int)
        for x, y, r in self.tree_xyr.tolist():
            cv2.circle(canvas, (x + int(off[0]), y + int(off[1])), r, 1, -1, cv2.LINE_8, 4)
        for poly, h in zip(self.houses, self.house_h):
            _fill(canvas, [_sweep(poly, d * h * k_sun)], 1)

    def draw(self, img: np.ndarray) -> None:
        import cv2

        for (x, y, r), rgb in zip(self.tree_xyr.tolist(), self.tree_rgb):
            cv2.circle(img, (x, y), r, rgb, -1, cv2.LINE_AA, 4)
        for poly, rgb in zip(self.houses, self.house_rgb):
            half = np.array([poly[0], poly[1], (poly[1] + poly[2]) / 2, (poly[0] + poly[3]) / 2])
            _fill(img, [poly], rgb.tolist())
            _fill(img, [half], (rgb * 0.82).tolist())
        for (x, y, a, b), ang, rgb in zip(self.spot_p.tolist(), self.spot_a, self.spot_rgb):
            cv2.ellipse(img, (x, y), (a, b), ang, 0, 360, rgb, -1, cv2.LINE_AA, 4)


def _material(label: str, legacy: Tuple[int, int, int], r2: np.random.Generator) -> np.ndarray:
    """A plausible base colour for an object of this class."""
    key = label.lower()
    u = r2.uniform()
    grey = lambda lo, hi: np.full(3, r2.uniform(lo, hi)) + r2.normal(0, 4, 3)  # noqa: E731
    toned = 0.7 * np.asarray(legacy, float) + 0.3 * np.mean(legacy)
    if "pool" in key:
        return np.array([70.0, 150, 190]) + r2.normal(0, 12, 3)
    if _has(key, _COURT_KEYS) or "track" in key:
        courts = np.array([[70, 128, 80], [60, 96, 150], [160, 92, 70], [118, 140, 88],
                           [150, 150, 140]], dtype=float)
        return courts[int(r2.integers(len(courts)))] + r2.normal(0, 8, 3)
    if _has(key, _VEHICLE_KEYS):
        return grey(150, 235) if u < 0.4 else grey(30, 75) if u < 0.65 else toned
    if _has(key, ("plane", "helicopter", "boeing", "a2", "a3", "arj", "c919", "tank",
                  "chimney", "ship", "boat", "warship", "tugboat")):
        return grey(160, 235) if u < 0.7 else grey(60, 110) if u < 0.85 else toned
    if _has(key, ("bridge", "overpass", "dam", "expressway", "intersection", "roundabout",
                  "harbor", "airport", "station", "helipad", "stadium")):
        return grey(90, 185) if u < 0.8 else toned
    return toned if u < 0.6 else grey(80, 220)


_CIRCLE = np.stack([np.cos(np.linspace(0, 2 * np.pi, 28, endpoint=False)),
                    np.sin(np.linspace(0, 2 * np.pi, 28, endpoint=False))], axis=1)


def _box(u0: float, u1: float, v0: float, v1: float) -> np.ndarray:
    return np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]], dtype=np.float64)


def _seg(u0: float, v0: float, u1: float, v1: float) -> np.ndarray:
    return np.array([[u0, v0], [u1, v1]], dtype=np.float64)


def _details(key: str, shape: str, L: float, W: float, base: np.ndarray, r2):
    """Class details of an object, as drawing operations in its box axes.

    Returns:
        a list of ``(points, RGB, thickness)``: points in units of the half
        length / half width (``(1, 1)`` is a corner of the box), thickness -1
        for a filled polygon, else a closed (``>= 100``: open, minus 100) line
    """
    lum = float(np.mean(base))

    def rgb(f: float, add: float = 0.0):
        return tuple(float(min(max(v * f + add, 0.0), 255.0)) for v in base)

    light = (228.0, 226.0, 218.0) if lum < 170 else (72.0, 74.0, 72.0)
    ops: List[Tuple[np.ndarray, Tuple[float, ...], int]] = []
    if shape == "rect":
        if _has(key, _VEHICLE_KEYS):
            if _has(key, _LARGE_VEHICLE_KEYS):
                cab = rgb(1.1, 6)
                if r2.uniform() < 0.5:  # a cab of another colour
                    cab = tuple(float(v) for v in np.clip(_material("car", base, r2), 0, 255))
                ops += [(_box(0.55, 1.0, -1, 1), cab, -1),                # cab
                        (_box(0.5, 0.58, -1, 1), rgb(0.35), -1),          # gap
                        (_box(0.82, 0.95, -0.8, 0.8), rgb(0.3, 10), -1)]  # windscreen
                ops += [(_seg(t, -0.9, t, 0.9), rgb(0.82), 101)
                        for t in np.linspace(-0.85, 0.35, int(r2.integers(2, 6)))]
            else:
                ops += [(_box(-0.55, 0.25, -0.72, 0.72), rgb(1.06, 4), -1),  # roof
                        (_box(0.27, 0.45, -0.8, 0.8), rgb(0.45, 10), -1),    # windscreen
                        (_box(-0.74, -0.6, -0.72, 0.72), rgb(0.6, 8), -1)]   # rear window
        elif _has(key, _COURT_KEYS) or "track" in key:
            t = max(1, int(round(L / 90)))
            if "track" in key:
                ops += [(_CIRCLE * [0.8, 0.62], (82.0, 128, 74), -1),
                        (_CIRCLE * [0.8, 0.62], light, t), (_CIRCLE * [0.92, 0.84], rgb(0.85), t)]
            elif "diamond" in key:
                ops += [(np.array([[0, -0.55], [0.55, 0], [0, 0.55], [-0.55, 0]]),
                         (168.0, 130, 96), -1)]
            else:
                ops += [(_box(-0.85, 0.85, -0.8, 0.8), light, t),
                        (_seg(0, -0.8, 0, 0.8), light, 100 + t)]
                if "tennis" in key or "basketball" in key:
                    ops += [(_seg(-0.45, 0, 0.45, 0), light, 100 + t)]
        elif "pool" in key:
            ops += [(_box(-0.92, 0.92, -0.88, 0.88), (200.0, 225, 230), 1),
                    (_seg(-0.8, -0.3, 0.8, -0.3), rgb(0.8), 101),
                    (_seg(-0.8, 0.3, 0.8, 0.3), rgb(0.8), 101)]
        elif _has(key, ("bridge", "overpass", "dam", "expressway")):
            ops += [(_seg(-1, v, 1, v), rgb(1.2, 10), 101) for v in (-0.75, 0.75)]
            ops += [(_seg(u, 0, u + 0.1, 0), light, 101) for u in np.arange(-0.95, 0.95, 0.2)]
        elif "helipad" in key:
            t = max(1, int(round(L / 25)))
            ops += [(_CIRCLE * 0.8, light, t), (_seg(-0.3, -0.35, -0.3, 0.35), light, 100 + t),
                    (_seg(0.3, -0.35, 0.3, 0.35), light, 100 + t),
                    (_seg(-0.3, 0, 0.3, 0), light, 100 + t)]
        else:  # a roof: two slopes and a ridge
            ops += [(_box(-1, 1, 0, 1), rgb(0.84), -1),
                    (_seg(-1, 0, 1, 0), rgb(1.15, 8), 100 + max(1, int(round(W / 25))))]
    elif shape == "ellipse":
        if "roundabout" in key:
            ops += [(_CIRCLE * 0.5, (84.0, 122, 70), -1)]
        else:
            ops += [(_CIRCLE * 0.86, rgb(0.72), max(1, int(round(L / 16)))),
                    (_CIRCLE * 0.16, rgb(0.8), -1)]
    elif shape == "cross":
        ops += [(_box(-1, 0.9, -0.1, 0.1), rgb(1.05, 3), -1),      # fuselage top
                (_box(0.78, 0.9, -0.05, 0.05), rgb(0.3), -1)]   # cockpit
        ops += [(_box(0.08, 0.22, v - 0.05, v + 0.05), rgb(0.55), -1)  # engines
                for v in (-0.55, -0.3, 0.3, 0.55)]
    elif shape == "ship":
        ops += [(_box(-0.7, -0.35, -0.55, 0.55), rgb(1.0, 45) if lum < 150 else rgb(0.7), -1)]
        ops += [(_box(u, u + 0.1, -0.5, 0.5), rgb(0.75), -1)
                for u in np.linspace(-0.2, 0.45, int(r2.integers(2, 5)))]
        ops += [(_seg(-1, 0, 0.9, 0), rgb(0.85), 101)]
    return ops


def _paint(o: Dict[str, Any], m: InstanceMask, img: np.ndarray, base: np.ndarray,
           sun: float, r2: np.random.Generator) -> None:
    """Paints one object on its mask: its base colour, sun shading and details."""
    import cv2

    x0, y0, x1, y1 = m.box
    L, W = o["length"], o["width"]
    cx, cy, ang = o["cx"], o["cy"], o.get("draw_angle", o["angle"])
    # sun shading: the side facing the sun is brighter
    g = r2.uniform(0.05, 0.14) / (max(L, W) / 2)
    gx = np.arange(x0 + 0.5 - cx, x1 - cx, dtype=np.float32)[: x1 - x0] * np.float32(
        -g * math.cos(sun))
    gy = np.arange(y0 + 0.5 - cy, y1 - cy, dtype=np.float32)[: y1 - y0, None] * np.float32(
        -g * math.sin(sun)) + np.float32(1.0)
    shade = gx + gy
    tex = cv2.merge([cv2.convertScaleAbs(shade, alpha=float(v)) for v in base])
    if m.area >= 40:
        ops = _details(o["label"].lower(), o["shape"], L, W, base, r2)
        if ops:
            c, s = math.cos(ang), math.sin(ang)
            rot = np.array([[c, s], [-s, c]])
            pts = np.concatenate([p for p, _, _ in ops]) * [L / 2, W / 2]
            pts = np.round((pts @ rot + [cx - x0 - 0.5, cy - y0 - 0.5]) * 16).astype(np.int32)
            i = 0
            for p, colour, t in ops:
                q = pts[i:i + len(p)]
                i += len(p)
                if t < 0:
                    cv2.fillPoly(tex, [q], colour, cv2.LINE_AA, 4)
                else:
                    cv2.polylines(tex, [q], t < 100, colour, t % 100, cv2.LINE_AA, 4)
    cv2.copyTo(tex, m.mask.view(np.uint8), img[y0:y1, x0:x1])


def _sensor(r2: np.random.Generator, img: np.ndarray, jpeg: bool = True) -> np.ndarray:
    """Blur (optics), noise and a JPEG round trip, as imagery usually went through
    (``jpeg=False``: no round trip, for images written as JPEG anyway)."""
    import cv2

    height, width = img.shape[:2]
    img = cv2.GaussianBlur(img, (5, 5), r2.uniform(0.45, 0.8))
    raw = np.frombuffer(r2.bytes(height * width), dtype=np.uint8).reshape(height, width)
    img = cv2.subtract(cv2.add(img, cv2.cvtColor(raw & 7, cv2.COLOR_GRAY2RGB)),
                       cv2.cvtColor(raw >> 5, cv2.COLOR_GRAY2RGB))  # luminance noise
    quality = int(r2.integers(70, 93))
    if jpeg:  # (channels swapped for the codec: no matter for the artefacts, saves 2 copies)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    np.bitwise_and(img, 0xFC, out=img)  # quantised: keeps PNGs smaller
    return img


def _wake(r2: np.random.Generator, img: np.ndarray, o: Dict[str, Any]) -> None:
    """A lighter, translucent trail of churned water behind a moving ship (no object)."""
    import cv2

    L, W = o["length"], o["width"]
    wl = r2.uniform(0.8, 2.5) * L
    local = np.array([[-L / 2, -W * 0.3], [-L / 2, W * 0.3], [-L / 2 - wl, W * 1.1],
                      [-L / 2 - wl, -W * 1.1]])
    p = _to_image([local], o["cx"], o["cy"], o.get("draw_angle", o["angle"]))[0]
    height, width = img.shape[:2]
    x0, y0 = np.clip(np.floor(p.min(axis=0)).astype(int), 0, [width, height])
    x1, y1 = np.clip(np.ceil(p.max(axis=0)).astype(int) + 1, 0, [width, height])
    if x1 <= x0 or y1 <= y0:
        return
    crop = img[y0:y1, x0:x1]
    over = crop.copy()
    _fill(over, [p], (185.0, 200.0, 200.0), (x0, y0))
    a = r2.uniform(0.25, 0.5)
    crop[:] = cv2.addWeighted(over, a, crop, 1 - a, 0)


def _render(rng, width: int, height: int, objs: List[Dict[str, Any]], gt_masks: bool,
            scene: str = "land", camouflage: float = 0.15, jpeg: bool = True):
    """Draws the objects on a generated scene (see the steps above).

    Args:
        rng: the image's random generator
        width, height: image size
        objs: placed objects (``_place``); each gets ``"polys"`` (unless
            given) and ``"color"`` (its base colour)
        gt_masks: return the masks (else a list of None)
        scene: ``"land"`` or ``"sea"`` (mostly water; ships get wakes)
        camouflage: probability that an object's colour is taken close to the
            ground under it
        jpeg: end with a JPEG round trip (False for images saved as JPEG)

    Returns:
        ``(RGB image, instance id map, per-object masks)``; a pixel belongs to
        an object when its centre is inside the object's polygons, and the
        object's mask is exactly the pixels painted for it.
    """
    import cv2

    low, fine = _legacy_draws(rng, width, height)
    legacy = []
    for o in objs:
        if "polys" not in o:
            local = _local_polygons(o["shape"], o["length"], o["width"])
            o["polys"] = _to_image(local, o["cx"], o["cy"], o["angle"])
        legacy.append(o.get("color") or _object_color(rng))
    r2 = rng.spawn(1)[0]  # does not advance rng

    sun = r2.uniform(0, 2 * math.pi)
    k_sun = r2.uniform(0.5, 1.1)
    img, patch, types = _land_cover(r2, width, height, low, fine, scene)
    _roads(r2, img, scene)
    shapes = [_shape_mask(o, width, height) for o in objs]
    # the mean ground colour under each object (before shadows): look-alikes take it
    under = [None if m is None else cv2.mean(img[m.y0:m.y0 + m.mask.shape[0],
                                                 m.x0:m.x0 + m.mask.shape[1]],
                                             m.mask.view(np.uint8))[:3] for m in shapes]
    clutter = _Clutter(r2, width, height, patch, types, sun)
    shade = np.zeros((height, width), dtype=np.uint8)
    clutter.shadows(shade, k_sun)
    d = np.array([math.cos(sun), math.sin(sun)])
    for o in objs:
        a, b = _height_factors(o["label"], o["shape"])
        h = (a * o["length"] + b * o["width"]) * k_sun
        if h > 0.5:
            _fill(shade, [_sweep(p, d * h) for p in o["polys"]], 1)
    tint = tuple(float(v) for v in np.array([0.5, 0.54, 0.62]) * r2.uniform(0.8, 1.15))
    cv2.copyTo(cv2.multiply(img, tint + (0.0,)), shade, img)
    clutter.draw(img)
    if scene == "sea":
        for o in objs:
            if o["shape"] == "ship" and r2.uniform() < 0.6:
                _wake(r2, img, o)

    ids = np.zeros((height, width), dtype=np.uint16)
    masks: List[Optional[InstanceMask]] = []
    for k, (o, leg, m, ground) in enumerate(zip(objs, legacy, shapes, under), start=1):
        if m is None:
            o["color"] = tuple(leg)
        else:
            x0, y0, x1, y1 = m.box
            if o.get("color") is not None:
                base = np.asarray(o["color"], dtype=float)
            elif r2.uniform() < camouflage:
                base = (np.array(ground) + r2.normal(0, 5, 3)
                        + r2.choice([-1.0, 1.0]) * r2.uniform(8, 24))
            else:
                base = _material(o["label"], leg, r2)
            o["color"] = tuple(int(v) for v in np.clip(np.round(base), 0, 255))
            _paint(o, m, img, np.array(o["color"], dtype=float), sun, r2)
            np.copyto(ids[y0:y1, x0:x1], k, where=m.mask)
        masks.append(m if gt_masks else None)
    return _sensor(r2, img, jpeg), ids, masks


def _place(rng, n: int, width: int, height: int, labels: Sequence[str],
           margin: int = 2) -> List[Dict[str, Any]]:
    """Random non-overlapping objects: one per cell of a jittered grid."""
    if n <= 0:
        return []
    cols = max(1, int(math.ceil(math.sqrt(n * width / height))))
    rows = max(1, int(math.ceil(n / cols)))
    cw, ch = width / cols, height / rows
    if min(cw, ch) < 8 + 2 * margin:
        raise ValueError("%d objects do not fit a %dx%d image" % (n, width, height))
    cells = np.sort(rng.choice(rows * cols, size=n, replace=False))
    out = []
    for cell in cells:
        r, c = divmod(int(cell), cols)
        label = labels[int(rng.integers(len(labels)))]
        (lmin, lmax), (amin, amax) = _size_of(label)
        length = rng.uniform(lmin, lmax)
        wid = length * rng.uniform(amin, amax)
        angle = rng.uniform(-math.pi / 2, math.pi / 2)
        shape = _shape_of(label)
        if shape == "ellipse" and amin == 1.0:
            angle = 0.0
        bw = abs(length * math.cos(angle)) + abs(wid * math.sin(angle))
        bh = abs(length * math.sin(angle)) + abs(wid * math.cos(angle))
        scale = min(1.0, (cw - 2 * margin) / bw, (ch - 2 * margin) / bh)
        length, wid, bw, bh = length * scale, wid * scale, bw * scale, bh * scale
        cx = c * cw + margin + bw / 2 + rng.uniform(0, max(cw - 2 * margin - bw, 0))
        cy = r * ch + margin + bh / 2 + rng.uniform(0, max(ch - 2 * margin - bh, 0))
        out.append(dict(label=label, shape=shape, cx=cx, cy=cy, length=length,
                        width=wid, angle=angle))
    return out


def _write_image(path: str, rgb: np.ndarray, photo: bool = False) -> None:
    """Writes an RGB (or label) image; ``photo``: a rendered scene, not a mask.

    PNG settings are chosen for speed: masks compress well with run lengths,
    scenes (noisy, no runs) with a horizontal filter and Huffman coding only.
    """
    import cv2

    params: List[int] = []
    ext = os.path.splitext(path)[1].lower()
    if ext == ".png" and photo:
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY,
                  cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY, cv2.IMWRITE_PNG_FILTER,
                  cv2.IMWRITE_PNG_FILTER_SUB]
    elif ext == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY,
                  cv2.IMWRITE_PNG_STRATEGY_RLE]
    elif ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, 92]
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    if not cv2.imwrite(path, bgr, params):
        raise OSError("could not write %s" % path)


def _run(fn, n: int, workers: int) -> List[Any]:
    if workers and workers > 1 and n > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(fn, range(n)))
    return [fn(i) for i in range(n)]


def _rbox_quad(o: Dict[str, Any]) -> np.ndarray:
    return rbox_to_quad(o["cx"], o["cy"], o["length"], o["width"], o["angle"])


# ----------------------------------------------------------------------------
# DOTA


def make_dota_tree(
    root,
    n_images: int = 4,
    n_objects: int = 12,
    size: Tuple[int, int] = (800, 600),
    version: str = "1.0",
    seed: int = 0,
    with_isaid: bool = False,
    split: Union[str, Sequence[str], None] = None,
    gt_masks: bool = True,
    workers: int = 1,
    difficult_rate: float = 0.1,
) -> Dict[str, Any]:
    """Writes a DOTA tree: ``images/P0000.png`` and ``labelTxt/P0000.txt``.

    Label files have the ``imagesource:`` and ``gsd:`` header lines and CRLF
    line endings; v1.0 uses integer coordinates, v1.5/v2.0 floats
    (``"123.0"``). Classes are drawn uniformly from the version's list.

    Args:
        root: where to write (created)
        n_images: number of images
        n_objects: objects per image
        size: ``(width, height)`` of every image
        version: ``"1.0"``, ``"1.5"`` or ``"2.0"``
        seed: random seed
        with_isaid: also write iSAID ``iSAID/<stem>_instance_id_RGB.png`` and
            ``iSAID/<stem>_instance_color_RGB.png`` (only the 15 iSAID classes
            are painted; instance ``k`` has RGB colour ``(k % 256, k // 256, 0)``
            with ``k`` = 1 + object index)
        split: None (flat tree), a split name (``root/<split>/images``...) or
            a list of names (images dealt round-robin to ``root/<name>/``)
        gt_masks: keep each object's drawn mask in the returned ground truth
        workers: threads used to render and write images
        difficult_rate: fraction of objects written with ``difficult`` 1

    Returns:
        the ground truth (see the module docstring); each image also has
        ``"gsd"``, ``"imagesource"`` and, with iSAID, ``"isaid_instance"`` and
        ``"isaid_color"`` paths; each object has ``"difficult"`` and
        ``"isaid"`` (bool: painted in the iSAID PNGs)
    """
    from fiftyone_samrs.formats.isaid import ISAID_COLORS

    if version not in C.DOTA_CLASSES:
        raise ValueError("Unknown DOTA version %r" % version)
    labels = C.DOTA_CLASSES[version]
    isaid_rgb = {name: rgb for rgb, name in ISAID_COLORS.items()}
    root = os.path.abspath(os.fspath(root))
    width, height = size
    if split is None:
        splits: List[Optional[str]] = [None]
    elif isinstance(split, str):
        splits = [split]
    else:
        splits = list(split)
    for s in splits:
        base = root if s is None else os.path.join(root, s)
        os.makedirs(os.path.join(base, "images"), exist_ok=True)
        os.makedirs(os.path.join(base, "labelTxt"), exist_ok=True)
        if with_isaid:
            os.makedirs(os.path.join(base, "iSAID"), exist_ok=True)

    def one(i: int) -> Dict[str, Any]:
        rng = np.random.default_rng([seed, i])
        s = splits[i % len(splits)]
        base = root if s is None else os.path.join(root, s)
        stem = "P%04d" % i
        objs = _place(rng, n_objects, width, height, labels)
        img, ids, masks = _render(rng, width, height, objs, gt_masks)
        img_path = os.path.join(base, "images", stem + ".png")
        _write_image(img_path, img, photo=True)
        gsd = round(float(rng.uniform(0.1, 1.0)), 6)
        imagesource = "GoogleEarth" if i % 2 == 0 else "GF2"
        lines = ["imagesource:%s" % imagesource, "gsd:%s" % gsd]
        gt_objs = []
        for o, m in zip(objs, masks):
            q = _rbox_quad(o)
            if version == "1.0":
                q = np.round(q)
                coords = " ".join("%d" % v for v in q.reshape(-1))
            else:
                q = np.round(q, 1)
                coords = " ".join("%.1f" % v for v in q.reshape(-1))
            diff = 1 if rng.uniform() < difficult_rate else 0
            lines.append("%s %s %d" % (coords, o["label"], diff))
            gt_objs.append(dict(label=o["label"], raw_label=o["label"], quad=q,
                                hbox=quad_to_hbox(q), shape=o["shape"], mask=m,
                                color=o["color"], difficult=diff,
                                isaid=o["label"] in isaid_rgb))
        label_path = os.path.join(base, "labelTxt", stem + ".txt")
        with open(label_path, "w", newline="") as f:
            f.write("\r\n".join(lines) + "\r\n")
        rec = dict(id=stem, filepath=img_path, label_path=label_path, width=width,
                   height=height, split=s, gsd=gsd, imagesource=imagesource, objects=gt_objs)
        if with_isaid:
            inst = np.zeros((height, width, 3), dtype=np.uint8)
            col = np.zeros((height, width, 3), dtype=np.uint8)
            n = len(objs)
            lut_inst = np.zeros((n + 1, 3), dtype=np.uint8)
            lut_col = np.zeros((n + 1, 3), dtype=np.uint8)
            for k, o in enumerate(objs, start=1):
                if o["label"] in isaid_rgb:
                    lut_inst[k] = (k % 256, k // 256, 0)
                    lut_col[k] = isaid_rgb[o["label"]]
            inst = lut_inst[ids]
            col = lut_col[ids]
            rec["isaid_instance"] = os.path.join(base, "iSAID", stem + "_instance_id_RGB.png")
            rec["isaid_color"] = os.path.join(base, "iSAID", stem + "_instance_color_RGB.png")
            _write_image(rec["isaid_instance"], inst)
            _write_image(rec["isaid_color"], col)
        return rec

    images = _run(one, n_images, workers)
    return dict(root=root, format="dota", version=version, classes=list(labels),
                n_objects=sum(len(r["objects"]) for r in images), images=images)


# ----------------------------------------------------------------------------
# HRSC2016


def make_hrsc_tree(
    root,
    n_images: int = 4,
    n_objects: int = 3,
    size: Tuple[int, int] = (600, 400),
    seed: int = 0,
    mask_dir: str = "Segmentations",
    unmasked_every: int = 0,
    gt_masks: bool = True,
    workers: int = 1,
    test_every: int = 3,
) -> Dict[str, Any]:
    """Writes an HRSC2016 tree: ``FullDataSet/{AllImages,Annotations,<mask_dir>}``
    and ``ImageSets/{trainval,test}.txt``.

    Ships are pointed hulls. ``mbox_*`` is the rotated rectangle around the
    hull (``mbox_w`` the long side, ``mbox_ang`` in radians in the convention
    of :func:`fiftyone_samrs.core.geometry.rbox_to_quad`), ``box_*`` the integer
    H-Box of the hull, ``header_x/y`` the bow tip. Every ship has a unique
    ``seg_color`` and is painted in that colour in ``<mask_dir>/<id>.png``.

    Args:
        root: the HRSC root (created)
        n_images: number of images (ids ``100000001``...)
        n_objects: ships per image
        size: ``(width, height)``
        seed: random seed
        mask_dir: ``"Segmentations"`` or ``"LandMask"``
        unmasked_every: if ``k > 0``, every k-th ship (counted over the whole
            tree, 1-based) gets an empty ``seg_color`` and is not painted
        gt_masks: keep each ship's drawn mask in the returned ground truth
        workers: threads used to render and write images
        test_every: every ``k``-th image (the ``k-1``, ``2k-1``... th) goes to
            ``test.txt``, the others to ``trainval.txt``

    Returns:
        the ground truth; each image has ``"mask_path"`` (None when no ship
        is painted) and ``"all_masked"``; each object has ``"rbox"``
        ``(cx, cy, w, h, angle)``, ``"seg_color"`` (tuple or None),
        ``"masked"``, ``"header"`` and ``"object_id"``
    """
    root = os.path.abspath(os.fspath(root))
    full = os.path.join(root, "FullDataSet")
    for d in ("AllImages", "Annotations", mask_dir):
        os.makedirs(os.path.join(full, d), exist_ok=True)
    os.makedirs(os.path.join(root, "ImageSets"), exist_ok=True)
    width, height = size

    def one(i: int) -> Dict[str, Any]:
        rng = np.random.default_rng([seed, i])
        img_id = "%d" % (100000001 + i)
        objs = _place(rng, n_objects, width, height, ["ship"], margin=3)
        colors = set()
        for o in objs:  # unique seg colours, never black
            while True:
                c = tuple(int(v) for v in rng.integers(1, 256, size=3))
                if c not in colors:
                    colors.add(c)
                    break
            o["seg_color"] = c
            # the bow is at +u or -u: flip the hull by adding pi to its angle
            o["bow_front"] = bool(rng.integers(2))
        for o in objs:
            ang = o["angle"] + (0.0 if o["bow_front"] else math.pi)
            local = _local_polygons("ship", o["length"], o["width"])
            o["polys"] = _to_image(local, o["cx"], o["cy"], ang)
            o["draw_angle"] = ang
        img, _, masks = _render(rng, width, height, objs, gt_masks=True, scene="sea")
        img_path = os.path.join(full, "AllImages", img_id + ".bmp")
        _write_image(img_path, img, photo=True)
        seg = np.zeros((height, width, 3), dtype=np.uint8)
        gt_objs = []
        xml_objs = []
        for j, (o, m) in enumerate(zip(objs, masks)):
            ship_no = i * n_objects + j + 1
            masked = not (unmasked_every and ship_no % unmasked_every == 0)
            if masked and m is not None:
                x0, y0, x1, y1 = m.box
                seg[y0:y1, x0:x1][m.mask] = o["seg_color"]
            hull = o["polys"][0]
            hx0, hy0, hx1, hy1 = quad_to_hbox(hull)
            hbox = (math.floor(hx0), math.floor(hy0), math.ceil(hx1), math.ceil(hy1))
            ang_sign = 1.0 if o["bow_front"] else -1.0
            bow = (o["cx"] + ang_sign * o["length"] / 2 * math.cos(o["angle"]),
                   o["cy"] + ang_sign * o["length"] / 2 * math.sin(o["angle"]))
            rbox = (round(o["cx"], 4), round(o["cy"], 4), round(o["length"], 4),
                    round(o["width"], 4), round(o["angle"], 6))
            obj_id = "%d" % (100000000 + ship_no)
            seg_color = o["seg_color"] if masked else None
            gt_objs.append(dict(
                label="ship", raw_label="ship", quad=rbox_to_quad(*rbox), hbox=hbox,
                shape="ship", mask=m if gt_masks else None, color=o["color"],
                rbox=rbox, seg_color=seg_color, masked=masked,
                header=(int(round(bow[0])), int(round(bow[1]))), object_id=obj_id,
                class_id="100000013"))
            xml_objs.append(_hrsc_object_xml(obj_id, rbox, hbox, seg_color,
                                             gt_objs[-1]["header"]))
        any_masked = any(o["masked"] for o in gt_objs)
        mask_path = None
        if any_masked:
            mask_path = os.path.join(full, mask_dir, img_id + ".png")
            _write_image(mask_path, seg)
        xml = _HRSC_XML % dict(id=img_id, w=width, h=height, seg=int(any_masked),
                               objects="".join(xml_objs))
        label_path = os.path.join(full, "Annotations", img_id + ".xml")
        with open(label_path, "w") as f:
            f.write(xml)
        split = "test" if test_every and i % test_every == test_every - 1 else "trainval"
        return dict(id=img_id, filepath=img_path, label_path=label_path, width=width,
                    height=height, split=split, objects=gt_objs, mask_path=mask_path,
                    all_masked=bool(gt_objs) and all(o["masked"] for o in gt_objs))

    images = _run(one, n_images, workers)
    for s in ("trainval", "test"):
        with open(os.path.join(root, "ImageSets", s + ".txt"), "w") as f:
            f.write("".join(r["id"] + "\n" for r in images if r["split"] == s))
    return dict(root=root, format="hrsc", version="2016", classes=list(C.HRSC),
                n_objects=sum(len(r["objects"]) for r in images), images=images)


_HRSC_XML = """<HRSC_Image>
  <Img_ID>%(id)s</Img_ID>
  <Place_ID>100000001</Place_ID>
  <Source_ID>100000001</Source_ID>
  <Img_NO>%(id)s</Img_NO>
  <Img_FileName>%(id)s</Img_FileName>
  <Img_FileFmt>bmp</Img_FileFmt>
  <Img_Date>1900-01-01</Img_Date>
  <Img_CusType>sealand</Img_CusType>
  <Img_Des>
  </Img_Des>
  <Img_Location>69.040297,33.070036</Img_Location>
  <Img_SizeWidth>%(w)d</Img_SizeWidth>
  <Img_SizeHeight>%(h)d</Img_SizeHeight>
  <Img_SizeDepth>3</Img_SizeDepth>
  <Img_Resolution>1.07</Img_Resolution>
  <segmented>%(seg)d</segmented>
  <Img_Havemask>0</Img_Havemask>
  <Img_MaskFileName>
  </Img_MaskFileName>
  <Annotated>1</Annotated>
  <HRSC_Objects>%(objects)s
  </HRSC_Objects>
</HRSC_Image>
"""


def _hrsc_object_xml(obj_id, rbox, hbox, seg_color, header) -> str:
    cx, cy, w, h, a = rbox
    seg = "%d,%d,%d" % seg_color if seg_color else "\n      "
    return """
    <HRSC_Object>
      <Object_ID>%s</Object_ID>
      <Class_ID>100000013</Class_ID>
      <Object_NO>%s</Object_NO>
      <truncated>0</truncated>
      <difficult>0</difficult>
      <box_xmin>%d</box_xmin>
      <box_ymin>%d</box_ymin>
      <box_xmax>%d</box_xmax>
      <box_ymax>%d</box_ymax>
      <mbox_cx>%.4f</mbox_cx>
      <mbox_cy>%.4f</mbox_cy>
      <mbox_w>%.4f</mbox_w>
      <mbox_h>%.4f</mbox_h>
      <mbox_ang>%.6f</mbox_ang>
      <segmented>%d</segmented>
      <seg_color>%s</seg_color>
      <header_x>%d</header_x>
      <header_y>%d</header_y>
    </HRSC_Object>""" % (obj_id, obj_id, hbox[0], hbox[1], hbox[2], hbox[3], cx, cy, w, h, a,
                         int(bool(seg_color)), seg, header[0], header[1])


# ----------------------------------------------------------------------------
# DIOR

#: DIOR class names as they appear in the official XML files
DIOR_RAW_NAMES: List[str] = [
    "airplane", "airport", "baseballfield", "basketballcourt", "bridge", "chimney",
    "Expressway-Service-area", "Expressway-toll-station", "dam", "golffield",
    "groundtrackfield", "harbor", "overpass", "ship", "stadium", "storagetank",
    "tenniscourt", "trainstation", "vehicle", "windmill",
]


def make_dior_tree(
    root,
    n_images: int = 3,
    n_objects: int = 6,
    seed: int = 0,
    hbb: bool = True,
    obb: bool = True,
    gt_masks: bool = True,
    workers: int = 1,
) -> Dict[str, Any]:
    """Writes a DIOR / DIOR-R tree: 800x800 JPEGs in ``JPEGImages-trainval/``
    and ``JPEGImages-test/``, ``Annotations/Horizontal Bounding Boxes/*.xml``
    (``hbb``) and ``Annotations/Oriented Bounding Boxes/*.xml`` (``obb``),
    ``ImageSets/Main/{train,val,test}.txt``.

    Image ``i`` (id ``%05d % (i + 1)``) goes to test when ``i % 3 == 2``, else
    to train (even ``i``) or val. Names are written in DIOR's own mixed case
    (``Expressway-Service-area``); integer coordinates.

    Returns:
        the ground truth; each object's ``"hbox"`` is the HBB box when
        ``hbb`` else the RH-Box of the quad, ``"quad"`` the OBB corners
        (also when ``obb`` is False: the true rotated box)
    """
    if not (hbb or obb):
        raise ValueError("make_dior_tree needs hbb or obb")
    root = os.path.abspath(os.fspath(root))
    hdir = os.path.join(root, "Annotations", "Horizontal Bounding Boxes")
    odir = os.path.join(root, "Annotations", "Oriented Bounding Boxes")
    for d in ("JPEGImages-trainval", "JPEGImages-test", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    if hbb:
        os.makedirs(hdir, exist_ok=True)
    if obb:
        os.makedirs(odir, exist_ok=True)
    width = height = 800

    def one(i: int) -> Dict[str, Any]:
        rng = np.random.default_rng([seed, i])
        stem = "%05d" % (i + 1)
        split = "test" if i % 3 == 2 else ("train" if i % 2 == 0 else "val")
        folder = "JPEGImages-test" if split == "test" else "JPEGImages-trainval"
        objs = _place(rng, n_objects, width, height, DIOR_RAW_NAMES)
        img, _, masks = _render(rng, width, height, objs, gt_masks, jpeg=False)
        img_path = os.path.join(root, folder, stem + ".jpg")
        _write_image(img_path, img, photo=True)
        gt_objs, h_xml, o_xml = [], [], []
        for o, m in zip(objs, masks):
            q = np.round(_rbox_quad(o))
            q = np.clip(q, 0, [width, height])
            box = tuple(int(v) for v in quad_to_hbox(q))
            name = o["label"]
            h_xml.append(_DIOR_HBB_OBJ % (escape(name), *box))
            o_xml.append(_DIOR_OBB_OBJ % (escape(name), *[int(v) for v in q.reshape(-1)],
                                          int(round(math.degrees(o["angle"])))))
            gt_objs.append(dict(label=C.normalize_dior(name), raw_label=name, quad=q,
                                hbox=tuple(float(v) for v in box), shape=o["shape"], mask=m,
                                color=o["color"], difficult=0, truncated=False))
        paths = {}
        if hbb:
            paths["hbb"] = os.path.join(hdir, stem + ".xml")
            with open(paths["hbb"], "w") as f:
                f.write(_DIOR_XML % (folder, stem, width, height, "".join(h_xml)))
        if obb:
            paths["obb"] = os.path.join(odir, stem + ".xml")
            with open(paths["obb"], "w") as f:
                f.write(_DIOR_XML % (folder, stem, width, height, "".join(o_xml)))
        return dict(id=stem, filepath=img_path, label_path=paths.get("hbb") or paths["obb"],
                    label_paths=paths, width=width, height=height, split=split,
                    objects=gt_objs)

    images = _run(one, n_images, workers)
    for s in ("train", "val", "test"):
        with open(os.path.join(root, "ImageSets", "Main", s + ".txt"), "w") as f:
            f.write("".join(r["id"] + "\n" for r in images if r["split"] == s))
    return dict(root=root, format="dior", version="DIOR-R" if obb else "DIOR",
                classes=list(C.SIOR), n_objects=sum(len(r["objects"]) for r in images),
                images=images)


_DIOR_XML = """<annotation>
\t<folder>%s</folder>
\t<filename>%s.jpg</filename>
\t<source>
\t\t<database>Unknown</database>
\t</source>
\t<size>
\t\t<width>%d</width>
\t\t<height>%d</height>
\t\t<depth>3</depth>
\t</size>
\t<segmented>0</segmented>%s
</annotation>
"""
_DIOR_HBB_OBJ = """
\t<object>
\t\t<name>%s</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>0</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox>
\t\t\t<xmin>%d</xmin>
\t\t\t<ymin>%d</ymin>
\t\t\t<xmax>%d</xmax>
\t\t\t<ymax>%d</ymax>
\t\t</bndbox>
\t</object>"""
_DIOR_OBB_OBJ = """
\t<object>
\t\t<type>robndbox</type>
\t\t<name>%s</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>0</truncated>
\t\t<difficult>0</difficult>
\t\t<robndbox>
\t\t\t<x_left_top>%d</x_left_top>
\t\t\t<y_left_top>%d</y_left_top>
\t\t\t<x_right_top>%d</x_right_top>
\t\t\t<y_right_top>%d</y_right_top>
\t\t\t<x_right_bottom>%d</x_right_bottom>
\t\t\t<y_right_bottom>%d</y_right_bottom>
\t\t\t<x_left_bottom>%d</x_left_bottom>
\t\t\t<y_left_bottom>%d</y_left_bottom>
\t\t</robndbox>
\t\t<angle>%d</angle>
\t</object>"""


# ----------------------------------------------------------------------------
# FAIR1M


def fair1m_raw_name(name: str) -> str:
    """A FAST name as FAIR1M writes it (``Small-Car`` -> ``Small Car``)."""
    return name if name.startswith("other-") else name.replace("-", " ")


def make_fair1m_tree(
    root,
    n_images: int = 3,
    n_objects: int = 6,
    size: Tuple[int, int] = (700, 700),
    seed: int = 0,
    gt_masks: bool = True,
    workers: int = 1,
    version: str = "2.0",
) -> Dict[str, Any]:
    """Writes a FAIR1M tree: ``train/part1/{images,labelXml}`` and
    ``validation/{images,labelXml}``, ``.tif`` images, 5-point polygons.

    The first ``ceil(n_images / 2)`` images go to train, the rest to
    validation; stems restart at ``0`` in each split, so they collide
    (``train/part1/images/0.tif`` and ``validation/images/0.tif``), as in the
    real dataset. Names are written the FAIR1M way (``Small Car``,
    ``Dry Cargo Ship``, ``other-airplane``), coordinates as ``"%.6f"``.

    Returns:
        the ground truth; each image also has ``"uid"`` (``train_<stem>`` or
        ``valid_<stem>``)
    """
    root = os.path.abspath(os.fspath(root))
    width, height = size
    n_train = (n_images + 1) // 2
    dirs = {"train": os.path.join(root, "train", "part1"),
            "val": os.path.join(root, "validation")}
    for d in dirs.values():
        os.makedirs(os.path.join(d, "images"), exist_ok=True)
        os.makedirs(os.path.join(d, "labelXml"), exist_ok=True)
    raw_names = [fair1m_raw_name(n) for n in C.FAST]

    def one(i: int) -> Dict[str, Any]:
        rng = np.random.default_rng([seed, i])
        split = "train" if i < n_train else "val"
        stem = "%d" % (i if split == "train" else i - n_train)
        base = dirs[split]
        objs = _place(rng, n_objects, width, height, raw_names)
        img, _, masks = _render(rng, width, height, objs, gt_masks)
        img_path = os.path.join(base, "images", stem + ".tif")
        _write_image(img_path, img, photo=True)
        gt_objs, xml_objs = [], []
        for o, m in zip(objs, masks):
            q = np.round(_rbox_quad(o), 6)
            pts = "".join("\n\t\t\t\t<point>%.6f,%.6f</point>" % (x, y)
                          for x, y in list(q) + [q[0]])
            xml_objs.append(_FAIR1M_OBJ % (escape(o["label"]), pts))
            gt_objs.append(dict(label=C.normalize_fair1m(o["label"]), raw_label=o["label"],
                                quad=q, hbox=quad_to_hbox(q), shape=o["shape"], mask=m,
                                color=o["color"]))
        label_path = os.path.join(base, "labelXml", stem + ".xml")
        with open(label_path, "w") as f:
            f.write(_FAIR1M_XML % (stem, version, width, height, "".join(xml_objs)))
        return dict(id=stem, filepath=img_path, label_path=label_path, width=width,
                    height=height, split=split,
                    uid=("train_" if split == "train" else "valid_") + stem,
                    objects=gt_objs)

    images = _run(one, n_images, workers)
    return dict(root=root, format="fair1m", version=version, classes=list(C.FAST),
                n_objects=sum(len(r["objects"]) for r in images), images=images)


_FAIR1M_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotation>
\t<source>
\t\t<filename>%s.tif</filename>
\t\t<origin>GF2/GF3</origin>
\t</source>
\t<research>
\t\t<version>%s</version>
\t\t<provider>FAIR1M</provider>
\t\t<author>Cyber</author>
\t\t<pluginname>FAIR1M</pluginname>
\t\t<pluginclass>object detection</pluginclass>
\t\t<time>2021-07-21</time>
\t</research>
\t<size>
\t\t<width>%d</width>
\t\t<height>%d</height>
\t\t<depth>3</depth>
\t</size>
\t<objects>%s
\t</objects>
</annotation>
"""
_FAIR1M_OBJ = """
\t\t<object>
\t\t\t<coordinate>pixel</coordinate>
\t\t\t<type>rectangle</type>
\t\t\t<description>None</description>
\t\t\t<possibleresult>
\t\t\t\t<name>%s</name>
\t\t\t</possibleresult>
\t\t\t<points>%s
\t\t\t</points>
\t\t</object>"""
