"""FAIR1M 1.0 / 2.0: ``.tif`` images and ``labelXml`` polygons.

Layout::

    train/part1/{images,labelXml}   train/part2/...   (or train/{images,labelXml})
    validation/{images,labelXml}                       (or val/)
    test/images                                        (no labels)
    {images,labelXml}                                  (a single flat folder)

Stems collide between train and validation, so every record gets
``attributes["uid"]``: ``train_<stem>`` / ``valid_<stem>`` (SAMRS's prefixes).

No FiftyOne import here.
"""

from __future__ import annotations

import os
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from fiftyone_samrs.core.classes import normalize_fair1m
from fiftyone_samrs.core.geometry import quad_area, quad_to_hbox
from fiftyone_samrs.core.records import (
    FormatError,
    ImageRecord,
    ImportReport,
    ObjectRecord,
)
from fiftyone_samrs.formats._common import (
    Pair,
    check_scan_args,
    checked_float,
    clip_objects,
    find_objects,
    integer,
    paired_records,
    read_xml,
    report_structure,
    scan_root,
    text,
)
from fiftyone_samrs.formats.images import index_files, index_images

#: split folder name -> (split, uid prefix)
SPLIT_FOLDERS = {
    "train": ("train", "train_"),
    "validation": ("val", "valid_"),
    "val": ("val", "valid_"),
    "test": ("test", "test_"),
}


def parse_xml(path, report: Optional[ImportReport] = None) -> Tuple[dict, List[ObjectRecord]]:
    """Parses one FAIR1M ``labelXml`` file.

    Every ``<object>`` element is read, wherever it is: one outside
    ``<objects>`` (a file without that wrapper, say) is kept and counted as
    an ``"object outside container"`` warning. A ``<points>`` or
    ``<possibleresult>`` outside any object (``"stray element"``) and a
    repeated one inside an object (``"duplicate element"``, the first is
    used) are counted warnings too.

    Each object's ``<points>`` has 5 points (the 5th repeating the 1st) or 4;
    with 5 distinct points the 5th is dropped. Coordinates may be fractional,
    negative or beyond the image: they are kept as written here (:func:`scan`
    clips them). ``hbox`` is the RH-Box of the quad (``hbox_is_rh=True``).

    Args:
        path: the XML file
        report: receives the structure warnings

    Returns:
        ``(header, objects)``; header has ``filename``, ``version`` (e.g.
        ``"1.0"`` or None), ``width``, ``height``, ``origin``, and
        ``warnings`` (the structure warnings' messages) when there are any

    Raises:
        FormatError: broken or hostile XML, an unknown class name, bad points
            (not ``x,y``, NaN/inf, out of range) or a bad ``<probability>``,
            naming the file and the object (1-based)
    """
    path = os.fspath(path)
    root = read_xml(path)
    name = os.path.basename(path)
    size = root.find("size")
    source = root.find("source")
    header = {
        "filename": text(source, "filename"),
        "origin": text(source, "origin"),
        "version": text(root.find("research"), "version"),
        "width": integer(size, "width", path, "<size>"),
        "height": integer(size, "height", path, "<size>"),
    }
    elems, misplaced, parents = find_objects(
        root, "object", lambda p: p is not None and p.tag == "objects")
    warnings = report_structure(
        path, root, elems, misplaced, parents, markers=("points", "possibleresult"),
        once=("possibleresult", "points"), expected="<objects>", report=report)
    if warnings:
        header["warnings"] = warnings
    objects: List[ObjectRecord] = []
    for k, obj in enumerate(elems, 1):
        what = "object %d" % k
        result = obj.find("possibleresult")
        raw = text(result, "name")
        if raw is None:
            raise FormatError(path, "%s: no <possibleresult><name>" % what)
        label = normalize_fair1m(raw)
        if label is None:
            raise FormatError(path, "%s: unknown class %r (not a FAIR1M class)" % (what, raw))
        pts = []
        points = obj.find("points")
        for p in points.findall("point") if points is not None else []:
            xy = (p.text or "").split(",")
            if len(xy) != 2:
                raise FormatError(path, "%s: bad point %r (expected 'x,y')" % (what, p.text))
            pts.append(tuple(checked_float(v.strip(), path, "%s: bad point %r" % (what, p.text))
                             for v in xy))
        if len(pts) == 5:
            pts = pts[:4]
        if len(pts) != 4:
            raise FormatError(path, "%s: expected 4 or 5 points, got %d" % (what, len(pts)))
        quad = np.asarray(pts, dtype=np.float64)
        if not np.isfinite(quad).all():
            raise FormatError(path, "%s: non-finite point" % what)
        attrs = {}
        prob = text(result, "probability")
        if prob is not None:
            attrs["probability"] = checked_float(prob, path, "%s: <probability>" % what)
        if raw.strip() != label:
            attrs["raw_label"] = raw.strip()
        objects.append(
            ObjectRecord(
                label=label,
                hbox=quad_to_hbox(quad),
                quad=quad,
                source_id="%s#%d" % (name, k),
                degenerate=quad_area(quad) <= 0,
                hbox_is_rh=True,
                attributes=attrs,
            )
        )
    return header, objects


def _is_leaf(d: str) -> bool:
    return os.path.isdir(os.path.join(d, "images")) or os.path.isdir(os.path.join(d, "labelXml"))


def _leaves(root: str) -> List[Tuple[str, Optional[str], str]]:
    """``(folder, split, uid prefix)`` of every images/labelXml pair under the root."""
    out = []
    if _is_leaf(root):
        out.append((root, None, ""))
    for e in sorted(os.listdir(root)):
        d = os.path.join(root, e)
        if e.lower() not in SPLIT_FOLDERS or not os.path.isdir(d):
            continue
        split, prefix = SPLIT_FOLDERS[e.lower()]
        if _is_leaf(d):
            out.append((d, split, prefix))
        for part in sorted(os.listdir(d)):
            pd = os.path.join(d, part)
            if os.path.isdir(pd) and part.lower() not in ("images", "labelxml") and _is_leaf(pd):
                out.append((pd, split, prefix))
    return out


def scan(
    dataset_dir,
    report: Optional[ImportReport] = None,
    split: Optional[str] = None,
    unlabeled: str = "skip",
) -> Iterator[ImageRecord]:
    """Yields one :class:`ImageRecord` per annotated FAIR1M image.

    Args:
        dataset_dir: the FAIR1M root (``train/``, ``validation/``...) or a
            single folder with ``images/`` and ``labelXml/``
        report: filled with counts, skips and warnings (one is made if None)
        split: ``"train"``, ``"val"`` or ``"test"`` to keep only that split
        unlabeled: ``"skip"`` (counted) or ``"keep"`` images without labels

    Yields:
        records sorted by folder then stem, with ``split`` (``"train"``,
        ``"val"``, or None for a flat folder) and ``attributes["uid"]``;
        quads reaching outside the image are clamped into it (counted
        ``"object outside image"`` warnings, ``truncated=True``)

    Raises:
        FormatError: on a missing folder, broken XML or an unknown class
    """
    report = check_scan_args(report, unlabeled)
    root = scan_root(dataset_dir, "FAIR1M")
    leaves = _leaves(root)
    if not leaves:
        raise FormatError(
            root, "not a FAIR1M folder: expected train/, validation/ or images/ + labelXml/"
        )
    if split is not None:
        leaves = [leaf for leaf in leaves if leaf[1] == split]
        if not leaves:
            raise FormatError(root, "no %r split folder" % split)
    seen_uids: Dict[str, str] = {}

    def parse(stem: str, lab: str):
        return parse_xml(lab, report=report)

    for folder, sp, prefix in leaves:
        images_dir = os.path.join(folder, "images")
        images = index_images(images_dir, report=report)
        labels = index_files(os.path.join(folder, "labelXml"), ".xml")

        def build(p: Pair, folder=folder, sp=sp, prefix=prefix) -> ImageRecord:
            clip_objects(p.objects, p.width, p.height, p.label or p.image, report,
                         clip_quads=True)
            uid = prefix + p.stem
            if uid in seen_uids:
                new_uid = "%s%s_%s" % (prefix, os.path.basename(folder), p.stem)
                report.warn("duplicate stem", "%s: uid %r already used by %s; using %r"
                            % (p.image, uid, seen_uids[uid], new_uid))
                uid = new_uid
            seen_uids[uid] = p.image
            version = p.header.get("version")
            return ImageRecord(
                filepath=p.image,
                width=p.width,
                height=p.height,
                objects=p.objects,
                source="FAIR1M-%s" % version if version in ("1.0", "2.0") else "FAIR1M",
                split=sp,
                label_path=p.label,
                attributes={"uid": uid},
            )

        yield from paired_records(
            sorted(set(images) | set(labels), key=_stem_key), images, labels, report,
            unlabeled, parse, build,
            image_hint=".* in %s" % images_dir,
            label_hint=("label file", ".xml"),
        )


def _stem_key(stem: str):
    """Numeric stems in numeric order (``2`` before ``10``), then the others."""
    return (0, int(stem), "") if stem.isdigit() else (1, 0, stem)
