"""HRSC2016: ship H-Boxes, rotated boxes and colour-coded GT masks.

Layout::

    FullDataSet/AllImages/100000001.bmp
    FullDataSet/Annotations/100000001.xml
    FullDataSet/Segmentations/100000001.png   (or LandMask/)
    ImageSets/{train,val,trainval,test}.txt

Angle convention: ``mbox_ang`` is in radians and :func:`geometry.rbox_to_quad`
applied to ``(mbox_cx, mbox_cy, mbox_w, mbox_h, mbox_ang)`` as stored gives
the ship's rotated box. The H-Box cannot tell the sign of the angle (a
rectangle rotated by ``a`` or ``-a`` about its centre has the same
circumscribed box), so the bow point ``header_x/header_y`` decides: it must
lie at an end of the ``mbox_w`` axis. On the real sample ``100000006.xml`` the
stored angle puts an end 34 px from the bow, the negated angle 367 px: the
stored convention is right, and it is used unless an object's bow clearly
fits the negated angle better (then that object uses ``-mbox_ang``, flagged
``attributes["angle_negated"]`` and counted as a warning).

No FiftyOne import here.
"""

from __future__ import annotations

import math
import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from fiftyone_samrs.core.geometry import (
    box_area,
    box_iou,
    quad_area,
    quad_to_hbox,
    rbox_to_quad,
)
from fiftyone_samrs.core.records import (
    FormatError,
    ImageRecord,
    ImportReport,
    InstanceMask,
    ObjectRecord,
)
from fiftyone_samrs.formats._common import (
    Pair,
    check_scan_args,
    clip_objects,
    find_objects,
    integer,
    number,
    paired_records,
    read_rgb,
    read_text_lines,
    read_xml,
    report_structure,
    rgb_key,
    scan_root,
    text,
)
from fiftyone_samrs.formats.images import index_files, index_images

#: where the per-image colour mask PNG is looked for, in order
MASK_DIRS = ("Segmentations", "LandMask")

#: an object's RH-Box and H-Box with an IoU below this get a warning
MIN_BOX_AGREEMENT = 0.5


def parse_seg_color(value: Optional[str]) -> Optional[Tuple[int, int, int]]:
    """``"r,g,b"`` to a tuple; None when empty, malformed, out of range or black."""
    if not value:
        return None
    parts = value.replace(";", ",").split(",")
    if len(parts) != 3:
        return None
    try:
        rgb = tuple(int(float(p)) for p in parts)
    except (ValueError, OverflowError):  # "red", "nan", "inf", "1e999"
        return None
    if any(v < 0 or v > 255 for v in rgb) or rgb == (0, 0, 0):
        return None
    return rgb  # type: ignore[return-value]


def _is_black(value: str) -> bool:
    """Whether a ``seg_color`` text is black (``0,0,0``: no colour, not an error)."""
    parts = value.replace(";", ",").split(",")
    try:
        return len(parts) == 3 and all(float(p) == 0 for p in parts)
    except ValueError:
        return False


def _bow_distance(cx, cy, w, angle, hx, hy) -> float:
    dx, dy = w / 2 * math.cos(angle), w / 2 * math.sin(angle)
    return min(math.hypot(cx + dx - hx, cy + dy - hy), math.hypot(cx - dx - hx, cy - dy - hy))


_OBJECT_TAGS = ("Object_ID", "box_xmin", "box_ymin", "box_xmax", "box_ymax", "mbox_cx",
                "mbox_cy", "mbox_w", "mbox_h", "mbox_ang", "seg_color", "header_x", "header_y")


def parse_xml(path, report: Optional[ImportReport] = None) -> Tuple[dict, List[ObjectRecord]]:
    """Parses one HRSC2016 annotation file.

    Every ``<HRSC_Object>`` is read, wherever it is: one outside
    ``<HRSC_Objects>`` is kept and counted as an ``"object outside
    container"`` warning. A ``<box_xmin>`` or ``<mbox_cx>`` outside any
    object (``"stray element"``) and a repeated object child such as a second
    ``<mbox_ang>`` (``"duplicate element"``, the first is used) are counted
    warnings too.

    Objects are labelled ``"ship"``; ``hbox`` is ``box_xmin..box_ymax`` (or the
    RH-Box of the rotated box when those are empty), ``quad`` the rotated box
    from ``mbox_*`` (angle convention: see the module docstring),
    ``source_id`` the ``Object_ID``. Attributes: ``class_id`` (``Class_ID``),
    ``seg_color`` (``(r, g, b)`` or None), ``header`` (bow ``(x, y)`` or
    None), ``box_agreement`` (IoU of the RH-Box and the H-Box, when both
    exist), ``angle_negated`` (True when the bow point asked for ``-mbox_ang``).

    Args:
        path: the XML file
        report: receives the structure warnings

    Returns:
        ``(header, objects)``; header has ``id``, ``width``, ``height``,
        ``segmented`` (bool or None), ``file_format``, and ``warnings`` (the
        structure warnings' messages) when there are any

    Raises:
        FormatError: broken or hostile XML, a value that is not a finite
            number in range (``mbox_ang inf`` included), or a ``seg_color``
            that is not empty, black or ``r,g,b`` in 0..255, naming file and
            object
    """
    path = os.fspath(path)
    root = read_xml(path)
    header = {
        "id": text(root, "Img_ID") or os.path.splitext(os.path.basename(path))[0],
        "width": integer(root, "Img_SizeWidth", path, "image"),
        "height": integer(root, "Img_SizeHeight", path, "image"),
        "file_format": text(root, "Img_FileFmt"),
    }
    seg = integer(root, "segmented", path, "image")
    header["segmented"] = None if seg is None else bool(seg)
    objects: List[ObjectRecord] = []
    elems, misplaced, parents = find_objects(
        root, "HRSC_Object", lambda p: p is not None and p.tag == "HRSC_Objects")
    warnings = report_structure(
        path, root, elems, misplaced, parents, markers=("box_xmin", "mbox_cx"),
        once=_OBJECT_TAGS, expected="<HRSC_Objects>", report=report)
    if warnings:
        header["warnings"] = warnings
    for k, obj in enumerate(elems, 1):
        obj_id = text(obj, "Object_ID")
        what = "object %d (Object_ID %s)" % (k, obj_id)
        raw_color = text(obj, "seg_color")
        color = parse_seg_color(raw_color)
        if raw_color is not None and color is None and not _is_black(raw_color):
            raise FormatError(path, "%s: bad <seg_color> %r (expected r,g,b in 0..255)"
                              % (what, raw_color))
        box = [number(obj, t, path, what) for t in ("box_xmin", "box_ymin", "box_xmax", "box_ymax")]
        rb = [number(obj, t, path, what) for t in ("mbox_cx", "mbox_cy", "mbox_w", "mbox_h", "mbox_ang")]
        hx, hy = number(obj, "header_x", path, what), number(obj, "header_y", path, what)
        attrs: Dict[str, object] = {
            "class_id": text(obj, "Class_ID"),
            "seg_color": color,
            "header": (hx, hy) if hx is not None and hy is not None else None,
        }
        quad = None
        if all(v is not None for v in rb):
            cx, cy, w, h, a = rb
            if attrs["header"] is not None:
                d_keep = _bow_distance(cx, cy, w, a, hx, hy)
                d_neg = _bow_distance(cx, cy, w, -a, hx, hy)
                if d_neg + 2.0 < d_keep:
                    a = -a
                    attrs["angle_negated"] = True
            quad = rbox_to_quad(cx, cy, w, h, a)
        elif any(v is not None for v in rb):
            raise FormatError(path, "%s: incomplete mbox_* (rotated box)" % what)
        if all(v is not None for v in box):
            hbox, is_rh = tuple(float(v) for v in box), False
            if quad is not None:
                attrs["box_agreement"] = box_iou(quad_to_hbox(quad), hbox)
        elif quad is not None:
            hbox, is_rh = quad_to_hbox(quad), True
        else:
            raise FormatError(path, "%s: neither box_* nor mbox_* coordinates" % what)
        truncated = integer(obj, "truncated", path, what)
        objects.append(
            ObjectRecord(
                label="ship",
                hbox=hbox,
                quad=quad,
                difficult=integer(obj, "difficult", path, what),
                truncated=None if truncated is None else bool(truncated),
                source_id=obj_id or "%s#%d" % (os.path.basename(path), k),
                degenerate=box_area(hbox) <= 0 or (quad is not None and quad_area(quad) <= 0),
                hbox_is_rh=is_rh,
                attributes=attrs,
            )
        )
    return header, objects


def read_gt_masks(mask_png_path, objects: Sequence[ObjectRecord],
                  size: Optional[Tuple[int, int]] = None) -> List[Optional[InstanceMask]]:
    """Cuts each ship's GT mask out of the image's colour mask PNG.

    A ship's mask is the set of pixels whose RGB colour is exactly its
    ``attributes["seg_color"]``. Ships without a valid colour, or whose colour
    matches no pixel, get None.

    Args:
        mask_png_path: the colour mask PNG
        objects: the image's ships
        size: the image's ``(width, height)``; a mask of another size is
            refused (checked from the PNG header, before decoding)

    Raises:
        FormatError: if the PNG is missing or unreadable, or its size is not
            ``size`` (naming the mask file and both sizes)
    """
    key = rgb_key(read_rgb(mask_png_path, "mask", size=size))
    out: List[Optional[InstanceMask]] = []
    for o in objects:
        rgb = o.attributes.get("seg_color")
        if not rgb:
            out.append(None)
            continue
        r, g, b = rgb
        m = InstanceMask.from_full(key == ((r << 16) | (g << 8) | b))
        out.append(m if m.area > 0 else None)
    return out


def _find_dirs(dataset_dir: str) -> Tuple[str, Optional[str]]:
    """``(FullDataSet folder, ImageSets folder or None)``."""
    if os.path.isdir(os.path.join(dataset_dir, "FullDataSet")):
        full = os.path.join(dataset_dir, "FullDataSet")
        sets = os.path.join(dataset_dir, "ImageSets")
    elif os.path.isdir(os.path.join(dataset_dir, "Annotations")):
        full = dataset_dir
        sets = os.path.join(dataset_dir, "ImageSets")
        if not os.path.isdir(sets):
            sets = os.path.join(os.path.dirname(dataset_dir), "ImageSets")
    else:
        raise FormatError(
            dataset_dir, "not an HRSC2016 folder: expected FullDataSet/ (or Annotations/)"
        )
    return full, sets if os.path.isdir(sets) else None


def _read_sets(sets_dir: Optional[str]) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    if sets_dir is None:
        return out
    for s in ("trainval", "train", "val", "test"):
        p = os.path.join(sets_dir, s + ".txt")
        if os.path.isfile(p):
            out[s] = [os.path.splitext(os.path.basename(t.split()[0]))[0]
                      for t in read_text_lines(p, "split file") if t.strip()]
    return out


def scan(
    dataset_dir,
    split: Optional[str] = None,
    with_masks: bool = True,
    report: Optional[ImportReport] = None,
    unlabeled: str = "skip",
) -> Iterator[ImageRecord]:
    """Yields one :class:`ImageRecord` per annotated HRSC2016 image.

    Args:
        dataset_dir: the HRSC root (holding ``FullDataSet`` and
            ``ImageSets``), or ``FullDataSet`` itself
        split: ``"trainval"``, ``"train"``, ``"val"`` or ``"test"`` to keep
            only the ids listed in ``ImageSets/<split>.txt``
        with_masks: read GT masks from ``Segmentations/<id>.png``, else
            ``LandMask/<id>.png`` (``ObjectRecord.mask``)
        report: filled with counts, skips and warnings (one is made if None)
        unlabeled: ``"skip"`` (counted) or ``"keep"`` images without annotation

    Yields:
        records sorted by id, ``split`` from ``ImageSets`` (``test``,
        ``train``, ``val``, else ``trainval``; the asked split when given),
        ``attributes["all_masked"]``: the image has ships and every one has a
        GT mask (without ``with_masks``: a valid ``seg_color``)

    Raises:
        FormatError: on a missing folder or split file, a non-UTF-8 split
            file, broken XML, or a mask PNG whose size is not its image's
    """
    report = check_scan_args(report, unlabeled)
    dataset_dir = scan_root(dataset_dir, "HRSC2016")
    full, sets_dir = _find_dirs(dataset_dir)
    sets = _read_sets(sets_dir)
    split_of: Dict[str, str] = {}
    for s in ("trainval", "train", "val", "test"):  # most specific last
        for i in sets.get(s, []):
            split_of[i] = s
    keep_ids = None
    if split is not None:
        if split not in sets:
            raise FormatError(sets_dir or dataset_dir, "no split file %s.txt" % split)
        keep_ids = set(sets[split])
        if split == "trainval":
            keep_ids |= set(sets.get("train", [])) | set(sets.get("val", []))

    anns = index_files(os.path.join(full, "Annotations"), ".xml")
    images_dir = os.path.join(full, "AllImages")
    images = index_images(images_dir, report=report)
    mask_dirs = [os.path.join(full, d) for d in MASK_DIRS]

    def parse(stem: str, ann: str):
        return parse_xml(ann, report=report)

    def build(p: Pair) -> ImageRecord:
        objects, stem = p.objects, p.stem
        where = p.label or p.image
        for o in objects:
            if o.attributes.get("angle_negated"):
                report.warn("angle negated", "%s (%s): the bow point fits -mbox_ang; using it"
                            % (where, o.source_id))
            agree = o.attributes.get("box_agreement")
            if agree is not None and agree < MIN_BOX_AGREEMENT:
                report.warn("rotated box off H-Box", "%s (%s): RH-Box/H-Box IoU %.2f"
                            % (where, o.source_id, agree))
        clip_objects(objects, p.width, p.height, where, report)
        if with_masks and objects:
            mask_path = next((os.path.join(d, stem + ".png") for d in mask_dirs
                              if os.path.isfile(os.path.join(d, stem + ".png"))), None)
            colored = [o for o in objects if o.attributes.get("seg_color")]
            if mask_path is None:
                if colored:
                    report.warn("mask file missing", "%s: %d ships have seg_color but no %s.png in %s"
                                % (where, len(colored), stem, " or ".join(MASK_DIRS)))
            else:
                for o, m in zip(objects, read_gt_masks(mask_path, objects,
                                                       size=(p.width, p.height))):
                    o.mask = m
                    if m is None and o.attributes.get("seg_color"):
                        report.warn("empty mask", "%s (%s): seg_color %s matches no pixel of %s"
                                    % (where, o.source_id, o.attributes["seg_color"], mask_path))
            all_masked = all(o.mask is not None for o in objects)
        else:
            all_masked = bool(objects) and all(o.attributes.get("seg_color") for o in objects)
        return ImageRecord(
            filepath=p.image,
            width=p.width,
            height=p.height,
            objects=objects,
            source="HRSC2016",
            split=split if split is not None else split_of.get(stem),
            label_path=p.label,
            attributes={"all_masked": bool(objects) and all_masked},
        )

    stems = sorted(set(anns) | set(images))
    if keep_ids is not None:
        stems = [stem for stem in stems if stem in keep_ids]
    yield from paired_records(
        stems, images, anns, report, unlabeled, parse, build,
        image_hint=".bmp in %s" % images_dir,
        label_hint=("annotation", ".xml"),
    )
