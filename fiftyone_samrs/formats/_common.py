"""Helpers shared by the format parsers: the image/label pairing loop of the
``scan`` functions, hardened XML, text and colour-mask reading, checked
numbers, clipping to the image and bounded rasterising.

No FiftyOne import here.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from typing import (
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
)

from fiftyone_samrs.core.geometry import (
    box_area,
    clip_box,
    clip_quad,
    quad_area,
    quad_to_hbox,
)
from fiftyone_samrs.core.records import (
    FormatError,
    ImageRecord,
    ImportReport,
    ObjectRecord,
)
from fiftyone_samrs.core.text import num
from fiftyone_samrs.formats.images import check_decodable, image_size

#: largest coordinate magnitude accepted in a label file (pixels): 500 times
#: the largest source image (DOTA v2.0, 20000 px). Beyond it a value is an
#: error, not a far-away object: such values overflow area computations.
MAX_ABS_COORD = 1e7

#: integer fields (flags, sizes, ids) must lie in ``[-INT_LIMIT, INT_LIMIT]``
INT_LIMIT = 2 ** 31 - 1


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


def read_rgb(path, what: str = "mask", size: Optional[Tuple[int, int]] = None):
    """Reads a colour PNG as an RGB ``uint8`` array (OpenCV).

    The header is read first: a mask whose size differs from ``size``, or
    over the pixel limit of :func:`~fiftyone_samrs.formats.images.image_size`,
    is refused before any pixel is decoded. A PNG is then checked whole
    (:func:`~fiftyone_samrs.formats.images.check_decodable`: chunk CRCs and
    data length), since libpng only warns about some damage and OpenCV then
    returns the damaged pixels.

    Args:
        path: the PNG file
        what: what the file is, for messages (``"mask"``, ``"iSAID mask"``)
        size: the ``(width, height)`` it must have (its image's), or None

    Raises:
        FormatError: ``"<what> file not found"``, ``"unreadable <what> PNG"``,
            or ``"<what> is WxH but its image is WxH"``
    """
    import cv2

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FormatError(path, "%s file not found" % what)
    try:
        w, h = image_size(path)
    except FormatError as e:
        raise FormatError(path, "unreadable %s PNG (%s)" % (what, str(e)[len(path) + 2:])) from None
    if size is not None and (w, h) != (int(size[0]), int(size[1])):
        raise FormatError(path, "%s is %dx%d but its image is %dx%d"
                          % (what, w, h, int(size[0]), int(size[1])))
    with open(path, "rb") as f:
        is_png = f.read(8) == b"\x89PNG\r\n\x1a\n"
    if is_png:
        try:
            check_decodable(path)
        except FormatError as e:
            raise FormatError(path, "unreadable %s PNG (%s)" % (what, str(e)[len(path) + 2:])) \
                from None
    try:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
    except cv2.error as e:
        raise FormatError(path, "unreadable %s PNG (%s)" % (what, str(e).strip())) from None
    if img is None:
        raise FormatError(path, "unreadable %s PNG" % what)
    if img.shape[:2] != (h, w):
        raise FormatError(path, "unreadable %s PNG (decoded %dx%d, header says %dx%d)"
                          % (what, img.shape[1], img.shape[0], w, h))
    return img[..., ::-1]  # BGR -> RGB


def rgb_key(img):
    """One ``int32`` per pixel of an RGB array: ``(r << 16) | (g << 8) | b``."""
    import numpy as np

    img = img.astype(np.int32)
    return (img[..., 0] << 16) | (img[..., 1] << 8) | img[..., 2]


def read_text_lines(path, what: str = "text file") -> List[str]:
    """The lines of a UTF-8 text file (a BOM is dropped, CRLF kept as is).

    Args:
        path: the file
        what: what it is, for messages (``"label file"``, ``"split file"``)

    Raises:
        FormatError: if missing or unreadable, or not UTF-8 (naming the line
            of the first bad byte)
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FormatError(path, "%s not found" % what) from None
    except OSError as e:
        raise FormatError(path, "cannot read %s (%s)" % (what, e)) from None
    try:
        textual = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise FormatError(
            path, "not a UTF-8 %s (byte 0x%02x at offset %d: %s)"
            % (what, data[e.start], e.start, e.reason), line=line) from None
    return textual.splitlines(keepends=True)


def read_xml(path) -> ET.Element:
    """Parses an XML file with a hardened parser (``defusedxml``).

    Entity declarations (the "billion laughs" bomb) and external entities
    (XXE) are refused whatever the expat version; a ``<!DOCTYPE>`` without
    them is accepted.

    Raises:
        FormatError: if the file is missing or unreadable, is not well-formed
            XML (the message gives the parser's line and column), declares
            entities, or declares an unknown or wrong encoding
    """
    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    path = os.fspath(path)
    try:
        return DET.parse(path).getroot()
    except FileNotFoundError:
        raise FormatError(path, "annotation file not found") from None
    except ET.ParseError as e:
        line = e.position[0] if getattr(e, "position", None) else None
        raise FormatError(path, "broken XML (%s)" % e, line=line) from None
    except DefusedXmlException as e:
        raise FormatError(path, "XML with entity declarations or external references is "
                          "refused (%s)" % type(e).__name__) from None
    except LookupError as e:
        raise FormatError(path, "XML declares an unknown encoding (%s)" % e, line=1) from None
    except (UnicodeError, ValueError) as e:
        raise FormatError(path, "XML text cannot be decoded (%s)" % e) from None
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


def checked_float(t: str, path: str, what: str, limit: float = MAX_ABS_COORD) -> float:
    """``float(t)`` that refuses what cannot be stored: NaN, inf (``1e999``
    too) and magnitudes over ``limit``.

    Raises:
        FormatError: naming ``path`` and ``what``
    """
    try:
        v = float(t)
    except (ValueError, OverflowError):
        raise FormatError(path, "%s is not a number: %r" % (what, t)) from None
    if not math.isfinite(v):
        raise FormatError(path, "%s is not a finite number: %r" % (what, t))
    if abs(v) > limit:
        raise FormatError(path, "%s is out of range (|value| > %g): %r" % (what, limit, t))
    return v


def number(elem: Optional[ET.Element], tag: str, path: str, what: str) -> Optional[float]:
    """Float value of the ``tag`` child, None when absent or empty.

    Raises:
        FormatError: naming ``path`` and ``what`` when the text is not a
            finite number of magnitude at most :data:`MAX_ABS_COORD`
    """
    t = text(elem, tag)
    if t is None:
        return None
    return checked_float(t, path, "%s: <%s>" % (what, tag))


def integer(elem: Optional[ET.Element], tag: str, path: str, what: str) -> Optional[int]:
    """Integer value of the ``tag`` child (``"1.0"`` accepted), None when absent.

    Raises:
        FormatError: naming ``path`` and ``what`` when the text is not a
            finite number within ``[-INT_LIMIT, INT_LIMIT]``
    """
    t = text(elem, tag)
    if t is None:
        return None
    return int(checked_float(t, path, "%s: <%s>" % (what, tag), limit=INT_LIMIT))


def element_path(elem: ET.Element, parents: Mapping[ET.Element, ET.Element]) -> str:
    """``<a>/<b>[2]/<c>``: where an element sits (1-based index among same-tag siblings)."""
    parts = []
    while elem is not None:
        parent = parents.get(elem)
        tag = "<%s>" % elem.tag
        if parent is not None:
            same = [c for c in parent if c.tag == elem.tag]
            if len(same) > 1:
                tag += "[%d]" % (same.index(elem) + 1)
        parts.append(tag)
        elem = parent
    return "/".join(reversed(parts))


def find_objects(
    root: ET.Element, tag: str, container: Callable[[Optional[ET.Element]], bool]
) -> Tuple[List[ET.Element], List[ET.Element], Dict[ET.Element, ET.Element]]:
    """Every ``tag`` element anywhere under ``root``, in document order.

    Args:
        root: the document's root
        tag: the object element (``object``, ``HRSC_Object``)
        container: whether an object's parent is where the format puts
            objects (e.g. ``<objects>``)

    Returns:
        ``(objects, misplaced, parents)``: all the object elements, those
        whose parent fails ``container``, and the child -> parent map
    """
    parents = {c: p for p in root.iter() for c in p}
    objects = [e for e in root.iter(tag) if e is not root]
    misplaced = [e for e in objects if not container(parents.get(e))]
    return objects, misplaced, parents


def report_structure(
    path: str,
    root: ET.Element,
    objects: Sequence[ET.Element],
    misplaced: Sequence[ET.Element],
    parents: Mapping[ET.Element, ET.Element],
    markers: Sequence[str],
    once: Sequence[str],
    expected: str,
    report: Optional[ImportReport],
) -> List[str]:
    """Counts what an XML parser read in an unusual place or did not read.

    - ``"object outside container"``: an object read although it is not
      where the format puts objects (``expected``, e.g. ``"<objects>"``);
    - ``"stray element"``: a ``markers`` element (one that only makes sense
      inside an object, e.g. ``<bndbox>``) whose parent is not a read
      object, so it was not read;
    - ``"duplicate element"``: an object with two ``once`` children (the
      first is used).

    Returns:
        the warning messages (also counted in ``report`` when given)
    """
    messages = []
    for e in misplaced:
        messages.append(("object outside container", "%s: %s read although it is not in %s"
                         % (path, element_path(e, parents), expected)))
    read = set(objects)
    for marker in markers:
        for e in root.iter(marker):
            if parents.get(e) not in read:
                messages.append(("stray element", "%s: %s is not inside an object element; "
                                 "not read" % (path, element_path(e, parents))))
    for k, obj in enumerate(objects, 1):
        for tag in once:
            n = sum(1 for c in obj if c.tag == tag)
            if n > 1:
                messages.append(("duplicate element", "%s: object %d has %d <%s> elements; "
                                 "the first is used" % (path, k, n, tag)))
    if report is not None:
        for kind, msg in messages:
            report.warn(kind, msg)
    return [msg for _, msg in messages]


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
            "%s (%s, %s): box (%s) extends outside the %dx%d image; %s"
            % (where, o.source_id, o.label, ", ".join(num(v) for v in (x0, y0, x1, y1)),
               width, height, what),
        )
