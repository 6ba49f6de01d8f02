"""Helpers shared by the format parsers: the image/label pairing loop of the
``scan`` functions, XML and colour-mask reading, clipping to the image.

No FiftyOne import here.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Callable, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Tuple

from fiftyone_samrs.formats.images import image_size
from fiftyone_samrs.core.geometry import box_area, clip_box, clip_quad, quad_area, quad_to_hbox
from fiftyone_samrs.core.records import FormatError, ImageRecord, ImportReport, ObjectRecord


def check_scan_args(report: Optional[ImportReport], unlabeled: str) -> ImportReport:
    """The report a ``scan`` fills (a new one if None), after checking ``unlabeled``.

    Raises:
        ValueError: if ``unlabeled`` is not ``"skip"`` or ``"keep"``
    """
    if unlabeled not in ("skip", "keep"):
        raise ValueError("unlabeled must be 'skip' or 'keep', not %r" % unlabeled)
    return ImportReport() if report is None else report


def scan_root(dataset_dir, name: str) -> str:
    """The absolute path of a dataset folder.

    Raises:
        FormatError: ``"<name> folder not found"`` when it is not a folder
    """
    root = os.path.abspath(os.fspath(dataset_dir))
    if not os.path.isdir(root):
        raise FormatError(root, "%s folder not found" % name)
    return root


class Pair(NamedTuple):
    """One image of a scan with its parsed annotation (see :func:`paired_records`)."""

    stem: str
    image: str
    label: Optional[str]
    header: dict
    objects: List[ObjectRecord]
    width: int
    height: int


def paired_records(
    stems: Iterable[str],
    images: Mapping[str, str],
    labels: Mapping[str, str],
    report: ImportReport,
    unlabeled: str,
    parse: Callable[[str, str], Tuple[dict, List[ObjectRecord]]],
    build: Callable[[Pair], ImageRecord],
    image_hint: str,
    label_hint: Tuple[str, str],
    size_first: bool = False,
) -> Iterator[ImageRecord]:
    """The pairing loop shared by the ``scan`` functions: one record per image.

    Per stem: a label file without image is a counted ``"label without
    image"`` skip; an image without label file a counted ``"image without
    labels"`` skip (``unlabeled="skip"``) or kept with no object
    (``"keep"``); an image whose header cannot be read a counted
    ``"unreadable image"`` skip. The others are parsed, built and counted in
    ``report.images`` / ``report.objects``.

    Args:
        stems: the stems to visit, in output order
        images: ``{stem: image path}``
        labels: ``{stem: label file path}``
        report: receives the skips and counts
        unlabeled: ``"skip"`` or ``"keep"``
        parse: ``parse(stem, label_path) -> (header, objects)``
        build: makes the record of a :class:`Pair` (clipping, extra fields)
        image_hint: what follows ``"no image <stem>"`` in a skip message,
            e.g. ``".* in /data/images"``
        label_hint: ``(kind, rest)`` giving ``"no <kind> <stem><rest>"``,
            e.g. ``("label file", ".xml")``
        size_first: read the image size before parsing the label file (so
            an unreadable image is skipped without parsing its labels)
    """
    for stem in stems:
        img, lab = images.get(stem), labels.get(stem)
        if img is None:
            report.skip("label without image", "%s: no image %s%s" % (lab, stem, image_hint))
            continue
        if lab is None and unlabeled == "skip":
            kind, rest = label_hint
            report.skip("image without labels", "%s: no %s %s%s" % (img, kind, stem, rest))
            continue
        header: dict = {}
        objects: List[ObjectRecord] = []
        if lab is not None and not size_first:
            header, objects = parse(stem, lab)
        try:
            width, height = image_size(img)
        except FormatError as e:
            report.skip("unreadable image", str(e))
            continue
        if lab is not None and size_first:
            header, objects = parse(stem, lab)
        record = build(Pair(stem, img, lab, header, objects, width, height))
        report.images += 1
        report.objects += len(record.objects)
        yield record


def read_rgb(path, what: str = "mask"):
    """Reads a colour PNG as an RGB ``uint8`` array (OpenCV).

    Raises:
        FormatError: ``"<what> file not found"`` or ``"unreadable <what> PNG"``
    """
    import cv2

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FormatError(path, "%s file not found" % what)
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise FormatError(path, "unreadable %s PNG" % what)
    return img[..., ::-1]  # BGR -> RGB


def rgb_key(img):
    """One ``int32`` per pixel of an RGB array: ``(r << 16) | (g << 8) | b``."""
    import numpy as np

    img = img.astype(np.int32)
    return (img[..., 0] << 16) | (img[..., 1] << 8) | img[..., 2]


def read_xml(path) -> ET.Element:
    """Parses an XML file.

    Raises:
        FormatError: if the file is missing or is not well-formed XML (the
            message gives the parser's line and column)
    """
    path = os.fspath(path)
    try:
        return ET.parse(path).getroot()
    except FileNotFoundError:
        raise FormatError(path, "annotation file not found") from None
    except ET.ParseError as e:
        line = e.position[0] if getattr(e, "position", None) else None
        raise FormatError(path, "broken XML (%s)" % e, line=line) from None
    except OSError as e:
        raise FormatError(path, "cannot read annotation file (%s)" % e) from None


def text(elem: Optional[ET.Element], tag: str) -> Optional[str]:
    """Stripped text of the first ``tag`` child, None when absent or empty."""
    if elem is None:
        return None
    child = elem.find(tag)
    if child is None or child.text is None:
        return None
    t = child.text.strip()
    return t or None


def number(elem: Optional[ET.Element], tag: str, path: str, what: str) -> Optional[float]:
    """Float value of the ``tag`` child, None when absent or empty.

    Raises:
        FormatError: naming ``path`` and ``what`` when the text is not a number
    """
    t = text(elem, tag)
    if t is None:
        return None
    try:
        return float(t)
    except ValueError:
        raise FormatError(path, "%s: <%s> is not a number: %r" % (what, tag, t)) from None


def integer(elem: Optional[ET.Element], tag: str, path: str, what: str) -> Optional[int]:
    """Integer value of the ``tag`` child (``"1.0"`` accepted), None when absent."""
    v = number(elem, tag, path, what)
    return None if v is None else int(v)


def clip_objects(
    objects: List[ObjectRecord],
    width: int,
    height: int,
    where: str,
    report: ImportReport,
    clip_quads: bool = False,
) -> None:
    """Clips objects reaching outside the image, in place, and counts them.

    The H-Box is clipped to ``[0, width] x [0, height]``; with ``clip_quads``
    the quad's corners are clamped into the image too and an RH-Box
    (``hbox_is_rh``) is recomputed from the clamped quad. Clipped objects get
    ``truncated=True``; one left with no area gets ``degenerate=True``. Each is
    a ``"object outside image"`` warning naming ``where`` and the object.
    """
    for o in objects:
        x0, y0, x1, y1 = o.hbox
        outside = x0 < 0 or y0 < 0 or x1 > width or y1 > height
        if clip_quads and o.quad is not None:
            qx0, qy0, qx1, qy1 = quad_to_hbox(o.quad)
            outside = outside or qx0 < 0 or qy0 < 0 or qx1 > width or qy1 > height
        if not outside:
            continue
        if clip_quads and o.quad is not None:
            o.quad = clip_quad(o.quad, width, height)
            if o.hbox_is_rh:
                o.hbox = quad_to_hbox(o.quad)
            else:
                o.hbox = clip_box(o.hbox, width, height)
            if quad_area(o.quad) <= 0:
                o.degenerate = True
            what = "quad and box clipped"
        else:
            o.hbox = clip_box(o.hbox, width, height)
            what = "H-Box clipped"
        if box_area(o.hbox) <= 0:
            o.degenerate = True
        o.truncated = True
        report.warn(
            "object outside image",
            "%s (%s, %s): box (%.1f, %.1f, %.1f, %.1f) extends outside the %dx%d image; %s"
            % (where, o.source_id, o.label, x0, y0, x1, y1, width, height, what),
        )
