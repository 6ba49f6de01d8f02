"""iSAID ground-truth instance masks for DOTA v1.0 images.

iSAID gives, per DOTA image, ``<id>_instance_id_RGB.png`` (each instance
painted in its own RGB colour, black = none) and
``<id>_instance_color_RGB.png`` (each pixel painted in its class colour).
Its instances do not map one-to-one to the DOTA boxes, so
:func:`match_to_objects` pairs them by overlap.

The instance PNG must be lossless: a JPEG round trip turns every instance
edge into a fringe of near colours, each of which would be read as one more
tiny "instance" (18,333 of them on one damaged file). :func:`read_instances`
refuses a file where such specks (colours covering fewer than
:data:`MIN_INSTANCE_PIXELS` pixels) are both numerous (more than
:data:`MAX_SPECKS`) and a large share (over :data:`MAX_SPECK_FRACTION`) of
all instance colours.

No FiftyOne import here.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from fiftyone_samrs.core.limits import max_image_pixels
from fiftyone_samrs.core.masks import rasterize
from fiftyone_samrs.core.metrics import iou_of
from fiftyone_samrs.core.metrics import mask_iou as _inter_union
from fiftyone_samrs.core.records import FormatError, InstanceMask, ObjectRecord
from fiftyone_samrs.formats._common import read_rgb, rgb_key

#: iSAID class colours in ``*_instance_color_RGB.png`` (RGB order, as PIL reads
#: them; OpenCV gives BGR) -> DOTA v1.0 class name. From the iSAID devkit
#: palette (also mmdetection's ``iSAIDDataset``).
ISAID_COLORS: Dict[Tuple[int, int, int], str] = {
    (0, 0, 63): "ship",
    (0, 63, 63): "storage-tank",
    (0, 63, 0): "baseball-diamond",
    (0, 63, 127): "tennis-court",
    (0, 63, 191): "basketball-court",
    (0, 63, 255): "ground-track-field",
    (0, 127, 63): "bridge",
    (0, 127, 127): "large-vehicle",
    (0, 0, 127): "small-vehicle",
    (0, 0, 191): "helicopter",
    (0, 0, 255): "swimming-pool",
    (0, 191, 127): "roundabout",
    (0, 127, 191): "soccer-ball-field",
    (0, 127, 255): "plane",
    (0, 100, 155): "harbor",
}

_UNKNOWN = "unknown"

#: an instance colour covering fewer pixels than this is a "speck"
MIN_INSTANCE_PIXELS = 10

#: more specks than this, if they are also over MAX_SPECK_FRACTION of the
#: colours, make the instance PNG implausible (lossy or damaged)
MAX_SPECKS = 50

#: see MAX_SPECKS
MAX_SPECK_FRACTION = 0.25


def read_instances(
    instance_id_png,
    color_png,
    size: Optional[Tuple[int, int]] = None,
    min_pixels: int = MIN_INSTANCE_PIXELS,
    max_specks: int = MAX_SPECKS,
    max_speck_fraction: float = MAX_SPECK_FRACTION,
) -> List[Tuple[InstanceMask, str]]:
    """Reads the iSAID instances of one image.

    Args:
        instance_id_png: the ``*_instance_id_RGB.png`` file
        color_png: the ``*_instance_color_RGB.png`` file
        size: the DOTA image's ``(width, height)``; PNGs of another size are
            refused (checked from their headers, before decoding)
        min_pixels, max_specks, max_speck_fraction: the plausibility rule
            (see the module docstring); ``max_specks=None`` turns it off

    Returns:
        ``[(mask, class name), ...]`` ordered by instance colour; the class is
        the most frequent class colour under the instance (``"unknown"``
        when it is not in :data:`ISAID_COLORS`)

    Raises:
        FormatError: if a file is missing or unreadable, their sizes differ
            from each other or from ``size`` (naming the file and both
            sizes), or the instance PNG looks lossy (too many specks)
    """
    inst = read_rgb(instance_id_png, "iSAID mask", size=size)
    col = read_rgb(color_png, "iSAID mask", size=size)
    if inst.shape != col.shape:
        raise FormatError(
            instance_id_png,
            "size %dx%d differs from %s (%dx%d)"
            % (inst.shape[1], inst.shape[0], color_png, col.shape[1], col.shape[0]),
        )
    width = inst.shape[1]
    keys = rgb_key(inst).reshape(-1)
    idx = np.flatnonzero(keys)
    if idx.size == 0:
        return []
    inst_keys = keys[idx]
    order = np.argsort(inst_keys, kind="stable")
    idx, inst_keys = idx[order], inst_keys[order]
    class_keys = rgb_key(col).reshape(-1)[idx]
    bounds = np.flatnonzero(np.diff(inst_keys)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [idx.size]])
    if max_specks is not None:
        specks = int(np.count_nonzero(ends - starts < min_pixels))
        if specks > max_specks and specks > max_speck_fraction * len(starts):
            raise FormatError(
                instance_id_png,
                "%d of its %d instance colours cover fewer than %d pixels: the PNG looks "
                "lossy or damaged (e.g. saved as JPEG); iSAID instance PNGs must be lossless"
                % (specks, len(starts), min_pixels),
            )
    color_names = {(r << 16) | (g << 8) | b: name for (r, g, b), name in ISAID_COLORS.items()}
    out = []
    for s, e in zip(starts, ends):
        pix = idx[s:e]
        ys, xs = np.divmod(pix, width)
        x0, y0 = int(xs.min()), int(ys.min())
        mask = np.zeros((int(ys.max()) - y0 + 1, int(xs.max()) - x0 + 1), dtype=bool)
        mask[ys - y0, xs - x0] = True
        vals, counts = np.unique(class_keys[s:e], return_counts=True)
        name = color_names.get(int(vals[np.argmax(counts)]), _UNKNOWN)
        out.append((InstanceMask(mask, x0, y0), name))
    return out


def _region_polygon(obj: ObjectRecord) -> np.ndarray:
    if obj.quad is not None:
        return np.asarray(obj.quad, dtype=np.float64).reshape(-1, 2)
    x0, y0, x1, y1 = obj.hbox
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def region_mask(obj: ObjectRecord, width: Optional[int] = None,
                height: Optional[int] = None) -> InstanceMask:
    """Rasterises an object's quad (or its H-Box when it has none).

    Pixel ``(i, j)`` is inside when its centre ``(i + 0.5, j + 0.5)`` is
    inside the polygon. With ``width``/``height`` the region is cut to the
    image before rasterising (a quad far outside costs nothing).
    """
    return rasterize([_region_polygon(obj)], width, height)


def mask_iou(a: InstanceMask, b: InstanceMask) -> float:
    """IoU of two cropped masks (0 when both are empty)."""
    iou = iou_of(*_inter_union(a, b))
    return 0.0 if iou != iou else iou


def match_to_objects(
    instances: Sequence[Tuple[InstanceMask, str]],
    objects: Sequence[ObjectRecord],
    min_iou: float = 0.3,
    width: Optional[int] = None,
    height: Optional[int] = None,
) -> List[Optional[InstanceMask]]:
    """Pairs iSAID instances with DOTA objects, one-to-one, by mask IoU.

    The IoU is between the instance mask and the object's rasterised quad (or
    H-Box), cut to the image when ``width``/``height`` are given. Pairs are
    taken greedily: same-class pairs first, then by decreasing IoU; pairs
    below ``min_iou`` are never taken. Only objects whose box meets some
    instance's box are rasterised, so hostile geometry (a quad far outside
    the image) costs no pixel work; without ``width``/``height`` a region
    larger than the pixel limit (larger than any mask image) is not matched.

    Args:
        instances: from :func:`read_instances`
        objects: the image's objects
        min_iou: the smallest IoU accepted
        width, height: the image (or tile) size the instances live in

    Returns:
        per object, its matched instance mask or None
    """
    boxes = [m.box for m, _ in instances]
    if boxes:
        ux0, uy0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        ux1, uy1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    regions: List[Optional[InstanceMask]] = []
    for o in objects:
        poly = _region_polygon(o)
        if not boxes or not np.isfinite(poly).all():
            regions.append(None)
            continue
        px0, py0 = np.floor(poly.min(axis=0))
        px1, py1 = np.ceil(poly.max(axis=0))
        if px0 >= ux1 or ux0 >= px1 or py0 >= uy1 or uy0 >= py1:
            regions.append(None)  # meets no instance: nothing to rasterise
            continue
        if width is None or height is None:
            if (px1 - px0) * (py1 - py0) > max_image_pixels():
                regions.append(None)  # uncut and larger than any mask image: no match
                continue
        regions.append(rasterize([poly], width, height))
    pairs = []
    for j, (m, name) in enumerate(instances):
        mx0, my0, mx1, my1 = m.box
        for i, (o, r) in enumerate(zip(objects, regions)):
            if r is None:
                continue
            rx0, ry0, rx1, ry1 = r.box
            if rx0 >= mx1 or mx0 >= rx1 or ry0 >= my1 or my0 >= ry1:
                continue
            iou = mask_iou(m, r)
            if iou >= min_iou and iou > 0:
                pairs.append((name == o.label, iou, -i, -j, i, j))
    pairs.sort(reverse=True)
    out: List[Optional[InstanceMask]] = [None] * len(objects)
    used = set()
    for _, _, _, _, i, j in pairs:
        if out[i] is None and j not in used:
            out[i] = instances[j][0]
            used.add(j)
    return out


def find_isaid_files(isaid_dir, stem: str) -> Optional[Tuple[str, str]]:
    """The ``(instance_id, color)`` PNG paths of an image in a folder, or None."""
    inst = os.path.join(os.fspath(isaid_dir), stem + "_instance_id_RGB.png")
    col = os.path.join(os.fspath(isaid_dir), stem + "_instance_color_RGB.png")
    if os.path.isfile(inst) and os.path.isfile(col):
        return inst, col
    return None
