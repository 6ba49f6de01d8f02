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
                        "color": (r, g, b),            # fill colour in the image
                        ...format specific keys (see each function)
                    }, ...
                ],
            }, ...
        ],
    }

Images have a textured background (low-frequency colour field plus blocky
noise, quantised so PNGs stay small) and each object is a filled shape of its
own colour with an inner detail of another shade: rotated rectangles for
vehicles and courts, circles for storage tanks and roundabouts, a cross for
planes and a pointed hull for ships. The GT mask is exactly the drawn shape,
so a segmenter's mask is meaningful and differs from a filled box. Objects are
placed on a jittered grid (one object per cell), so they never overlap.

Generation is deterministic for a given ``seed`` (each image uses its own
``default_rng([seed, index])``, so ``workers`` does not change the output).
Pass ``gt_masks=False`` for large benchmark trees to skip keeping masks.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union
from xml.sax.saxutils import escape

import numpy as np

from fiftyone_samrs import classes as C
from fiftyone_samrs.geometry import quad_to_hbox, rbox_to_quad
from fiftyone_samrs.records import InstanceMask

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


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A muted, textured RGB background: a smooth colour field plus blocky noise."""
    import cv2

    gh, gw = height // 64 + 2, width // 64 + 2
    base = rng.integers(80, 140, size=(1, 1, 3))
    low = base + rng.integers(-40, 40, size=(gh, gw, 1)) + rng.integers(-12, 12, size=(gh, gw, 3))
    field = cv2.resize(np.clip(low, 0, 255).astype(np.uint8), (width, height),
                       interpolation=cv2.INTER_LINEAR)
    nh, nw = height // 4 + 1, width // 4 + 1
    noise = rng.integers(0, 24, size=(nh, nw, 3), dtype=np.uint8)
    noise = cv2.resize(noise, (nw * 4, nh * 4), interpolation=cv2.INTER_NEAREST)[:height, :width]
    img = cv2.subtract(cv2.add(field, noise), np.full(3, 12.0))
    # quantised to multiples of 8: keeps PNGs small and still textured
    np.bitwise_and(img, 0xF8, out=img)
    return img


def _object_color(rng: np.random.Generator) -> Tuple[int, int, int]:
    # bright, saturated colours that stand out from the muted background
    hue = rng.uniform(0, 1)
    k = np.array([5.0, 3.0, 1.0]) + hue * 6
    rgb = 1 - np.clip(np.minimum(k % 6, 4 - k % 6), 0, 1) * rng.uniform(0.55, 0.9)
    rgb = rgb * rng.uniform(190, 255)
    return tuple(int(v) for v in rgb)


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


def _render(rng, width: int, height: int, objs: List[Dict[str, Any]], gt_masks: bool):
    """Draws the objects; returns (RGB image, instance id map, per-object masks).

    A pixel belongs to an object when its centre is inside the object's
    polygons (see :func:`fiftyone_samrs.formats._common.rasterize`).
    """
    import cv2

    img = _background(rng, width, height)
    ids = np.zeros((height, width), dtype=np.uint16)
    masks: List[Optional[InstanceMask]] = []
    for k, o in enumerate(objs, start=1):
        if "polys" not in o:
            local = _local_polygons(o["shape"], o["length"], o["width"])
            o["polys"] = _to_image(local, o["cx"], o["cy"], o["angle"])
        color = o.get("color") or _object_color(rng)
        o["color"] = color
        m = _shape_mask(o, width, height)
        if m is not None:
            x0, y0, x1, y1 = m.box
            img[y0:y1, x0:x1][m.mask] = color
            ids[y0:y1, x0:x1][m.mask] = k
        masks.append(m if gt_masks else None)
        if m is not None:
            # inner detail of another shade, kept inside the shape's mask
            inner = _local_polygons("rect" if o["shape"] != "ellipse" else "ellipse",
                                    o["length"] * 0.45, o["width"] * 0.35)
            inner = _to_image(inner, o["cx"], o["cy"], o["angle"])
            canvas = np.zeros(m.mask.shape, dtype=np.uint8)
            pts = [np.round((p - [x0 + 0.5, y0 + 0.5]) * 16).astype(np.int32) for p in inner]
            cv2.fillPoly(canvas, pts, 1, lineType=cv2.LINE_8, shift=4)
            shade = tuple(int(v * 0.6) for v in color)
            img[y0:y1, x0:x1][(canvas > 0) & m.mask] = shade
    return img, ids, masks


def _write_image(path: str, rgb: np.ndarray) -> None:
    import cv2

    params: List[int] = []
    ext = os.path.splitext(path)[1].lower()
    if ext == ".png":
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
        _write_image(img_path, img)
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
    of :func:`fiftyone_samrs.geometry.rbox_to_quad`), ``box_*`` the integer
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
        img, _, masks = _render(rng, width, height, objs, gt_masks=True)
        img_path = os.path.join(full, "AllImages", img_id + ".bmp")
        _write_image(img_path, img)
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
        img, _, masks = _render(rng, width, height, objs, gt_masks)
        img_path = os.path.join(root, folder, stem + ".jpg")
        _write_image(img_path, img)
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
        _write_image(img_path, img)
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
