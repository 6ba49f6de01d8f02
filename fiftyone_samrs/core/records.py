"""Plain records passed between the format parsers, tiling and the importers.

Parsers in :mod:`fiftyone_samrs.formats` return these; they hold source
pixel coordinates and no FiftyOne objects. :mod:`fiftyone_samrs.importing.importers`
turns them into samples.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from fiftyone_samrs.core.text import plural


@dataclass
class InstanceMask:
    """A boolean instance mask cropped to its region.

    Attributes:
        mask: ``(h, w)`` bool array
        x0: column of ``mask[:, 0]`` in the full image
        y0: row of ``mask[0]`` in the full image
    """

    mask: np.ndarray
    x0: int
    y0: int

    @property
    def box(self) -> Tuple[int, int, int, int]:
        """The region ``(x0, y0, x1, y1)`` the crop covers."""
        h, w = self.mask.shape
        return self.x0, self.y0, self.x0 + w, self.y0 + h

    def to_full(self, height: int, width: int) -> np.ndarray:
        """Pastes the crop into an all-False ``(height, width)`` mask."""
        full = np.zeros((height, width), dtype=bool)
        inner = self.clipped(height, width)
        x0, y0, x1, y1 = inner.box
        if inner.mask.size:
            full[y0:y1, x0:x1] = inner.mask
        return full

    def clipped(self, height: int, width: int) -> "InstanceMask":
        """The part of the crop inside a ``(height, width)`` image (``self``
        when all of it is; a ``(0, 0)`` mask when none is)."""
        x0, y0, x1, y1 = self.box
        cx0, cy0 = max(x0, 0), max(y0, 0)
        cx1, cy1 = min(x1, width), min(y1, height)
        if (cx0, cy0, cx1, cy1) == (x0, y0, x1, y1):
            return self
        if cx1 <= cx0 or cy1 <= cy0:
            return InstanceMask(np.zeros((0, 0), dtype=bool), 0, 0)
        return InstanceMask(self.mask[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0], cx0, cy0)

    def tight_box(self) -> Optional[Tuple[int, int, int, int]]:
        """``(x0, y0, x1, y1)`` of the set pixels in image coordinates, or
        None when the mask is empty."""
        m = np.asarray(self.mask, dtype=bool)
        rows = np.flatnonzero(m.any(axis=1)) if m.size else np.zeros(0, dtype=np.int64)
        if rows.size == 0:
            return None
        cols = np.flatnonzero(m.any(axis=0))
        return (self.x0 + int(cols[0]), self.y0 + int(rows[0]),
                self.x0 + int(cols[-1]) + 1, self.y0 + int(rows[-1]) + 1)

    def tight(self) -> "InstanceMask":
        """The crop cut to the tight box of its set pixels (lossless); an
        empty mask gives a ``(0, 0)`` crop at the origin."""
        box = self.tight_box()
        if box is None:
            return InstanceMask(np.zeros((0, 0), dtype=bool), 0, 0)
        x0, y0, x1, y1 = box
        if box == self.box:
            return self
        crop = np.asarray(self.mask, dtype=bool)[y0 - self.y0 : y1 - self.y0,
                                                 x0 - self.x0 : x1 - self.x0]
        return InstanceMask(np.ascontiguousarray(crop), x0, y0)

    @classmethod
    def from_full(cls, full: np.ndarray) -> "InstanceMask":
        """Crops a full-image mask to the tight box of its True pixels.

        An empty mask gives a ``(0, 0)`` crop at the origin.
        """
        return cls(np.asarray(full, dtype=bool), 0, 0).tight()

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))


@dataclass
class ObjectRecord:
    """One annotated object, in source pixels.

    Attributes:
        label: the normalised class name
        hbox: ``(x0, y0, x1, y1)``: the H-Box, or the RH-Box (circumscribed
            box of ``quad``) where the source has only rotated boxes
        quad: ``(4, 2)`` corners of the rotated box, or None
        difficult: the source's difficult flag (DOTA: 0, 1 or 2), or None
        truncated: whether the object is cut (by the image or a tile), or None
        source_id: where it came from, e.g. ``"P0001.txt:5"`` (file and line)
            or the HRSC ``Object_ID``
        degenerate: True for a zero-area box or quadrilateral (kept, flagged)
        hbox_is_rh: True when ``hbox`` was derived from ``quad`` (RH-Box)
        mask: ground-truth instance mask, where the source has one
        attributes: any other per-object values worth keeping
    """

    label: str
    hbox: Tuple[float, float, float, float]
    quad: Optional[np.ndarray] = None
    difficult: Optional[int] = None
    truncated: Optional[bool] = None
    source_id: Optional[str] = None
    degenerate: bool = False
    hbox_is_rh: bool = False
    mask: Optional[InstanceMask] = None
    attributes: Dict[str, Any] = field(default_factory=dict)


@dataclass
class ImageRecord:
    """One image and its objects, in source pixels.

    Attributes:
        filepath: absolute path of the image file
        width, height: image size in pixels, or None when the label file
            does not give it (the importer then reads the image header)
        objects: the annotated objects, in annotation order
        source: format and version, e.g. ``"DOTA-v1.0"``, ``"HRSC2016"``
        split: ``"train"``, ``"val"``, ``"test"``, ... or None
        gsd: ground sample distance (m/pixel) where given
        imagesource: the DOTA ``imagesource`` header where given
        label_path: the annotation file it was parsed from
        tile: for a tile, ``{"source_image": path, "x": ox, "y": oy}``
        attributes: other per-image values (e.g. HRSC ``all_masked``)
    """

    filepath: str
    width: Optional[int]
    height: Optional[int]
    objects: List[ObjectRecord] = field(default_factory=list)
    source: str = ""
    split: Optional[str] = None
    gsd: Optional[float] = None
    imagesource: Optional[str] = None
    label_path: Optional[str] = None
    tile: Optional[Dict[str, Any]] = None
    attributes: Dict[str, Any] = field(default_factory=dict)


class FormatError(ValueError):
    """Bad input: the message names the file (and line) and what is wrong."""

    def __init__(self, path, message: str, line: Optional[int] = None):
        self.path = str(path)
        self.line = line
        self.message = message
        where = self.path if line is None else "%s:%d" % (self.path, line)
        super().__init__("%s: %s" % (where, message))

    def __reduce__(self):
        # rebuilt from its arguments (not from ``args``, the joined text), so
        # it crosses processes (Ray workers, multiprocessing) with its file and line
        return (type(self), (self.path, self.message, self.line))


@dataclass
class ImportReport:
    """What an import did: counts, and every skip and warning with its reason.

    Skips and warnings are counted by kind (e.g. ``"image without labels"``)
    and each keeps a message naming the file; ``info`` holds facts about the
    source (e.g. the DOTA version and how it was known), stored in
    ``dataset.info["samrs"]`` by the importers.
    """

    images: int = 0
    objects: int = 0
    skipped: Counter = field(default_factory=Counter)
    warned: Counter = field(default_factory=Counter)
    messages: List[str] = field(default_factory=list)
    #: facts about the source found while parsing (DOTA: ``version`` and
    #: ``version_source``: "given", "label folder name" or "guessed from ...")
    info: Dict[str, Any] = field(default_factory=dict)

    def skip(self, kind: str, message: str) -> None:
        self.skipped[kind] += 1
        self.messages.append("skipped (%s): %s" % (kind, message))

    def warn(self, kind: str, message: str) -> None:
        self.warned[kind] += 1
        self.messages.append("warning (%s): %s" % (kind, message))

    def merge(self, other: "ImportReport") -> None:
        self.images += other.images
        self.objects += other.objects
        self.skipped.update(other.skipped)
        self.warned.update(other.warned)
        self.messages.extend(other.messages)
        self.info.update(other.info)

    def summary(self, max_messages: int = 10) -> str:
        lines = ["%s, %s" % (plural(self.images, "image"), plural(self.objects, "object"))]
        if self.info.get("previews"):
            lines.append("browser previews: %s in %s (preview_path, shown by the App; "
                         "filepath keeps the originals)"
                         % (plural(self.info["previews"], "JPEG"), self.info.get("preview_dir")))
        for title, counter in (("skipped", self.skipped), ("warnings", self.warned)):
            if counter:
                lines.append(
                    "%s: %s"
                    % (title, ", ".join("%d %s" % (n, k) for k, n in sorted(counter.items())))
                )
        for msg in self.messages[:max_messages]:
            lines.append("  " + msg)
        if len(self.messages) > max_messages:
            lines.append("  ... and %d more" % (len(self.messages) - max_messages))
        return "\n".join(lines)
