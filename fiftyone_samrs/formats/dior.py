"""DIOR / DIOR-R: VOC-style XML with horizontal and/or oriented boxes.

Layout (folder names with spaces, as released)::

    JPEGImages-trainval/00001.jpg   JPEGImages-test/...   (or JPEGImages/)
    Annotations/Horizontal Bounding Boxes/00001.xml        (DIOR, <bndbox>)
    Annotations/Oriented Bounding Boxes/00001.xml          (DIOR-R, <robndbox>)
    Annotations/00001.xml                                  (either kind)
    ImageSets/Main/{train,val,test}.txt

No FiftyOne import here.
"""

from __future__ import annotations

import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from fiftyone_samrs.core.classes import normalize_dior
from fiftyone_samrs.core.geometry import box_area, quad_area, quad_to_hbox, rbox_to_quad
from fiftyone_samrs.core.records import (
    FormatError,
    ImageRecord,
    ImportReport,
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
    read_text_lines,
    read_xml,
    report_structure,
    scan_root,
    text,
)
from fiftyone_samrs.formats.images import index_files, index_images

_CORNERS = ("x_left_top", "y_left_top", "x_right_top", "y_right_top",
            "x_right_bottom", "y_right_bottom", "x_left_bottom", "y_left_bottom")
_BOX = ("xmin", "ymin", "xmax", "ymax")
_RBOX = ("cx", "cy", "w", "h", "angle")


def _values(elem, tags, path, what) -> Optional[List[float]]:
    vals = [number(elem, t, path, what) for t in tags]
    if all(v is None for v in vals):
        return None
    missing = [t for t, v in zip(tags, vals) if v is None]
    if missing:
        raise FormatError(path, "%s: missing <%s>" % (what, ">, <".join(missing)))
    return vals


def parse_xml(path, classes: Optional[Sequence[str]] = None,
              report: Optional[ImportReport] = None) -> Tuple[dict, List[ObjectRecord]]:
    """Parses one DIOR (HBB) or DIOR-R (OBB) annotation file.

    Every ``<object>`` element is read, wherever it is (one that is not a
    child of the root is counted as an ``"object outside container"``
    warning); a ``<bndbox>``/``<robndbox>`` outside any object (``"stray
    element"``) and a repeated child such as a second ``<bndbox>``
    (``"duplicate element"``, the first is used) are counted warnings too.
    Per ``<object>``: ``<bndbox>`` gives the H-Box; ``<robndbox>`` gives the
    quad (corners ``x_left_top .. y_left_bottom``, or roLabelImg's ``cx, cy,
    w, h, angle`` in radians), or an H-Box when it holds ``xmin..ymax`` (the
    ``robndbox``-for-``bndbox`` quirk). With only a quad, ``hbox`` is its
    RH-Box (``hbox_is_rh=True``).

    Args:
        path: the XML file
        classes: the allowed normalised names (default: the 20 DIOR classes
            via :func:`fiftyone_samrs.core.classes.normalize_dior`)
        report: receives the structure warnings (also listed in
            ``header["warnings"]``)

    Returns:
        ``(header, objects)``; header has ``filename``, ``width``, ``height``
        (ints or None), ``kind`` (``"obb"`` when any object has a quad,
        else ``"hbb"``), and ``warnings`` (the messages above) when there are any

    Raises:
        FormatError: broken or hostile XML, an unknown class, a box missing,
            not numeric, NaN/inf or out of range, naming the file and the
            object (1-based)
    """
    path = os.fspath(path)
    root = read_xml(path)
    name = os.path.basename(path)
    size = root.find("size")
    header = {
        "filename": text(root, "filename"),
        "width": integer(size, "width", path, "<size>"),
        "height": integer(size, "height", path, "<size>"),
    }
    allowed = set(classes) if classes is not None else None
    elems, misplaced, parents = find_objects(root, "object", lambda p: p is root)
    warnings = report_structure(
        path, root, elems, misplaced, parents, markers=("bndbox", "robndbox"),
        once=("name", "bndbox", "robndbox", "difficult", "truncated", "angle"),
        expected="the <annotation> root", report=report)
    if warnings:
        header["warnings"] = warnings
    objects = []
    any_quad = False
    for k, obj in enumerate(elems, 1):
        what = "object %d" % k
        raw = text(obj, "name")
        if raw is None:
            raise FormatError(path, "%s: no <name>" % what)
        label = normalize_dior(raw)
        if allowed is not None:
            label = raw.strip().lower() if label is None else label
            if label not in allowed:
                label = None
        if label is None:
            raise FormatError(path, "%s: unknown class %r (not a DIOR class)" % (what, raw))
        hbox = quad = None
        bnd = obj.find("bndbox")
        if bnd is not None:
            hbox = _values(bnd, _BOX, path, what + " <bndbox>")
            if hbox is None:
                hbox = _values(bnd, _CORNERS, path, what + " <bndbox>")
                if hbox is not None:  # corners under <bndbox>
                    quad, hbox = hbox, None
        rob = obj.find("robndbox")
        if rob is not None:
            corners = _values(rob, _CORNERS, path, what + " <robndbox>")
            if corners is not None:
                quad = corners
            else:
                rb = _values(rob, _RBOX, path, what + " <robndbox>")
                if rb is not None:
                    quad = rbox_to_quad(*rb).reshape(-1).tolist()
                elif hbox is None:
                    hbox = _values(rob, _BOX, path, what + " <robndbox>")
        if hbox is None and quad is None:
            raise FormatError(path, "%s: no <bndbox> or <robndbox> coordinates" % what)
        q = None
        if quad is not None:
            q = np.asarray(quad, dtype=np.float64).reshape(4, 2)
            any_quad = True
        is_rh = hbox is None
        box = tuple(float(v) for v in (quad_to_hbox(q) if is_rh else hbox))
        degenerate = box_area(box) <= 0 or (q is not None and quad_area(q) <= 0)
        if degenerate and report is not None:
            report.warn("degenerate object", "%s: %s (%s): %s kept, flagged degenerate (not "
                        "segmented)" % (path, what, label, _why_degenerate(box, q)))
        attrs = {}
        angle = number(obj, "angle", path, what)
        if angle is not None:
            attrs["angle"] = angle
        truncated = integer(obj, "truncated", path, what)
        objects.append(
            ObjectRecord(
                label=label,
                hbox=box,
                quad=q,
                difficult=integer(obj, "difficult", path, what),
                truncated=None if truncated is None else bool(truncated),
                source_id="%s#%d" % (name, k),
                degenerate=degenerate,
                hbox_is_rh=is_rh,
                attributes=attrs,
            )
        )
    header["kind"] = "obb" if any_quad else "hbb"
    return header, objects


def merge(hbb_path: str, hbb_objects: List[ObjectRecord], obb_path: str,
          obb_objects: List[ObjectRecord], report: ImportReport) -> List[ObjectRecord]:
    """Merges the HBB and OBB objects of one image, object by object.

    The H-Box comes from the HBB file, the quad from the OBB file; the class,
    ``difficult`` and ``truncated`` from the HBB file (a class mismatch is a
    counted ``"class mismatch"`` warning).

    Raises:
        FormatError: naming both files when their object counts differ
    """
    if len(hbb_objects) != len(obb_objects):
        raise FormatError(
            hbb_path,
            "has %d objects but the oriented file %s has %d; cannot merge them"
            % (len(hbb_objects), obb_path, len(obb_objects)),
        )
    out = []
    for k, (h, o) in enumerate(zip(hbb_objects, obb_objects), 1):
        if h.label != o.label:
            report.warn(
                "class mismatch",
                "%s: object %d is %r but %r in %s (kept %r)"
                % (hbb_path, k, h.label, o.label, obb_path, h.label),
            )
        quad = o.quad if o.quad is not None else h.quad
        hbox, is_rh = h.hbox, h.hbox_is_rh
        if is_rh and quad is not None:
            hbox = quad_to_hbox(quad)
        attrs = dict(o.attributes)
        attrs.update(h.attributes)
        out.append(
            ObjectRecord(
                label=h.label,
                hbox=hbox,
                quad=quad,
                difficult=h.difficult if h.difficult is not None else o.difficult,
                truncated=h.truncated if h.truncated is not None else o.truncated,
                source_id=h.source_id,
                degenerate=h.degenerate or o.degenerate,
                hbox_is_rh=is_rh,
                attributes=attrs,
            )
        )
    return out


def _image_folders(root: str) -> List[Tuple[str, Optional[str]]]:
    """``JPEGImages*`` folders and the split their name gives (``-trainval``...)."""
    out = []
    for e in sorted(os.listdir(root)):
        d = os.path.join(root, e)
        if not (os.path.isdir(d) and e.lower().startswith("jpegimages")):
            continue
        suffix = e[len("JPEGImages"):].strip("-_ ").lower() or None
        if not index_images(d):  # zip layout: JPEGImages-trainval/JPEGImages-trainval/
            subs = [s for s in sorted(os.listdir(d)) if os.path.isdir(os.path.join(d, s))]
            if len(subs) == 1:
                d = os.path.join(d, subs[0])
        out.append((d, suffix))
    return out


def _annotation_dirs(root: str) -> Tuple[List[str], List[str], Optional[str]]:
    ann = os.path.join(root, "Annotations")
    hbb, obb = [], []
    if not os.path.isdir(ann):
        return hbb, obb, None
    for e in sorted(os.listdir(ann)):
        d = os.path.join(ann, e)
        if not os.path.isdir(d):
            continue
        low = e.lower()
        if "horizontal" in low or low in ("hbb", "hbox"):
            hbb.append(d)
        elif "oriented" in low or low in ("obb", "rbox"):
            obb.append(d)
    return hbb, obb, ann


def _read_split_files(root: str) -> Dict[str, str]:
    splits: Dict[str, str] = {}
    main = os.path.join(root, "ImageSets", "Main")
    # the most specific name wins: train/val/test before trainval
    for s in ("trainval", "train", "val", "test"):
        p = os.path.join(main, s + ".txt")
        if os.path.isfile(p):
            for line in read_text_lines(p, "split file"):
                stem = line.strip().split()[0] if line.strip() else ""
                if stem:
                    splits[os.path.splitext(os.path.basename(stem))[0]] = s
    return splits


def scan(
    dataset_dir,
    split: Optional[str] = None,
    report: Optional[ImportReport] = None,
    unlabeled: str = "skip",
) -> Iterator[ImageRecord]:
    """Yields one :class:`ImageRecord` per annotated DIOR image.

    Args:
        dataset_dir: the DIOR root (``JPEGImages-*``, ``Annotations``, ``ImageSets``)
        split: ``"train"``, ``"val"``, ``"test"`` or ``"trainval"`` to keep
            only that split (from ``ImageSets/Main``, else from the image
            folder names); None keeps all
        report: filled with counts, skips and warnings (one is made if None)
        unlabeled: ``"skip"`` (counted) or ``"keep"`` images without annotations

    Yields:
        records sorted by image id; ``source`` is ``"DIOR-R"`` when an
        oriented annotation exists for the image, else ``"DIOR"``

    Raises:
        FormatError: on a missing folder, broken XML, an unknown class, a
            non-UTF-8 split file, or HBB and OBB files of one image with
            different object counts
    """
    report = check_scan_args(report, unlabeled)
    root = scan_root(dataset_dir, "DIOR")
    hbb_dirs, obb_dirs, ann_dir = _annotation_dirs(root)
    if ann_dir is None:
        raise FormatError(root, "not a DIOR folder: no Annotations/ folder")

    hbb: Dict[str, str] = {}
    obb: Dict[str, str] = {}
    for d in hbb_dirs:
        for stem, p in index_files(d, ".xml").items():
            hbb.setdefault(stem, p)
    for d in obb_dirs:
        for stem, p in index_files(d, ".xml").items():
            obb.setdefault(stem, p)
    plain = index_files(ann_dir, ".xml")  # kind decided when parsed

    images: Dict[str, str] = {}
    folder_split: Dict[str, Optional[str]] = {}
    for d, suffix in _image_folders(root):
        for stem, p in index_images(d, report=report).items():
            if stem in images:
                report.skip("duplicate image stem", "%s (using %s)" % (p, images[stem]))
                continue
            images[stem] = p
            folder_split[stem] = suffix
    splits = _read_split_files(root)

    def split_of(stem: str) -> Optional[str]:
        return splits.get(stem) if splits else folder_split.get(stem)

    def wanted(stem: str) -> bool:
        if split is None:
            return True
        s = split_of(stem)
        return s == split or (split == "trainval" and s in ("train", "val", "trainval"))

    if split is not None and not any(wanted(s) for s in set(images) | set(hbb) | set(obb) | set(plain)):
        raise FormatError(root, "no image is in split %r (see ImageSets/Main/%s.txt)" % (split, split))

    stems = sorted(set(images) | set(hbb) | set(obb) | set(plain))
    labels = {stem: hbb.get(stem) or plain.get(stem) or obb.get(stem) for stem in stems}
    parsed_plain: Dict[str, Tuple[dict, List[ObjectRecord]]] = {}

    def wanted_stems() -> Iterator[str]:
        for stem in stems:
            if wanted(stem):
                # a plain Annotations/ file is parsed before pairing (its kind,
                # HBB or OBB, is read from it), even when its image is missing
                parsed_plain.clear()
                if stem in plain:
                    parsed_plain[stem] = parse_xml(plain[stem], report=report)
                yield stem

    def parse(stem: str, label: str):
        h_path, o_path = hbb.get(stem), obb.get(stem)
        h_objs = o_objs = None
        header: dict = {}
        if stem in parsed_plain:
            header, objs = parsed_plain[stem]
            if header["kind"] == "obb" and o_path is None:
                o_path, o_objs = plain[stem], objs
            elif h_path is None:
                h_path, h_objs = plain[stem], objs
        if h_path is not None and h_objs is None:
            header, h_objs = parse_xml(h_path, report=report)
        if o_path is not None and o_objs is None:
            o_header, o_objs = parse_xml(o_path, report=report)
            header = header or o_header
        if h_objs is not None and o_objs is not None:
            objects = merge(h_path, h_objs, o_path, o_objs, report)
        else:
            objects = h_objs if h_objs is not None else (o_objs or [])
        return dict(header, oriented=o_path is not None), objects

    def build(p: Pair) -> ImageRecord:
        header = p.header
        if header.get("width") and header.get("height") and (
            header["width"], header["height"]) != (p.width, p.height):
            report.warn(
                "size mismatch",
                "%s: <size> says %sx%s but the image %s is %dx%d (using the image's)"
                % (p.label, header["width"], header["height"], p.image, p.width, p.height),
            )
        clip_objects(p.objects, p.width, p.height, p.label or p.image, report)
        return ImageRecord(
            filepath=p.image,
            width=p.width,
            height=p.height,
            objects=p.objects,
            source="DIOR-R" if header.get("oriented") else "DIOR",
            split=split if split is not None else split_of(p.stem),
            label_path=p.label,
        )

    yield from paired_records(
        wanted_stems(), images, labels, report, unlabeled, parse, build,
        image_hint=".* in JPEGImages*/",
        label_hint=("annotation", ".xml"),
    )


def _why_degenerate(box, quad) -> str:
    x0, y0, x1, y1 = box
    if x1 < x0 or y1 < y0:
        return "inverted box (xmax < xmin or ymax < ymin: %g,%g,%g,%g)" % (x0, y0, x1, y1)
    if box_area(box) <= 0:
        return "zero-area box (%g,%g,%g,%g)" % (x0, y0, x1, y1)
    return "zero-area rotated box"
