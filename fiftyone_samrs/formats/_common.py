"""Helpers shared by the format parsers: XML reading and clipping to the image.

No FiftyOne import here.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import List, Optional

from fiftyone_samrs.geometry import box_area, clip_box, clip_quad, quad_area, quad_to_hbox
from fiftyone_samrs.records import FormatError, ImportReport, ObjectRecord


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


def rasterize(polygons, width: Optional[int] = None, height: Optional[int] = None):
    """Pixels whose centre lies inside any of the polygons, as an InstanceMask.

    Pixel ``(i, j)`` (column, row) covers ``[i, i + 1) x [j, j + 1)``; it is
    inside when its centre ``(i + 0.5, j + 0.5)`` is strictly inside a
    polygon (shapely), so a box ``(10, 20, 30, 25)`` gives exactly 20 x 5
    pixels. With ``width``/``height`` the result is cut to the image.

    Args:
        polygons: ``(N, 2)`` arrays of vertices in pixel coordinates

    Returns:
        an :class:`~fiftyone_samrs.records.InstanceMask` cropped to the
        polygons' pixel region (``(0, 0)`` mask when empty)
    """
    import numpy as np
    import shapely
    from shapely.geometry import Polygon

    from fiftyone_samrs.records import InstanceMask

    polys = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons]
    pts = np.concatenate(polys)
    x0, y0 = int(np.floor(pts[:, 0].min())), int(np.floor(pts[:, 1].min()))
    x1, y1 = int(np.ceil(pts[:, 0].max())), int(np.ceil(pts[:, 1].max()))
    if width is not None:
        x0, x1 = max(x0, 0), min(x1, width)
    if height is not None:
        y0, y1 = max(y0, 0), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        return InstanceMask(np.zeros((0, 0), dtype=bool), 0, 0)
    xs = np.arange(x0, x1, dtype=np.float64) + 0.5
    ys = np.arange(y0, y1, dtype=np.float64) + 0.5
    gx, gy = np.meshgrid(xs, ys)
    inside = np.zeros(gx.shape, dtype=bool)
    for p in polys:
        poly = Polygon(p)
        if not poly.is_valid:
            poly = poly.convex_hull
        if poly.area <= 0:
            continue
        shapely.prepare(poly)
        inside |= shapely.contains_xy(poly, gx, gy)
    return InstanceMask(inside, x0, y0)
