"""Image files: sizes from headers, decoding, and image lookup by file stem.

No FiftyOne import here.
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Tuple

import numpy as np

from fiftyone_samrs.core.records import FormatError, ImportReport

#: file extensions recognised as images (compared case-insensitively)
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def image_size(path) -> Tuple[int, int]:
    """Reads ``(width, height)`` from an image header, without decoding pixels.

    Args:
        path: the image file

    Returns:
        ``(width, height)`` in pixels

    Raises:
        FormatError: if the file is missing or is not a readable image
    """
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FormatError(path, "image file not found")
    try:
        with Image.open(path) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise FormatError(path, "unreadable image (%s)" % e) from None
    if width <= 0 or height <= 0:
        raise FormatError(path, "image has an empty size %dx%d" % (width, height))
    return int(width), int(height)


def is_image(name: str) -> bool:
    """Whether a file name has one of :data:`IMAGE_EXTS` (any case)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTS


def index_images(
    folder, report: Optional[ImportReport] = None, recursive: bool = False
) -> Dict[str, str]:
    """Maps file stem to absolute image path for the images in a folder.

    When two images share a stem (``a.png`` and ``a.jpg``), the first in
    :data:`IMAGE_EXTS` order wins and the other is a counted skip
    (``"duplicate image stem"``).

    Args:
        folder: the folder; a missing folder gives an empty index
        report: where duplicate stems are reported
        recursive: also look into subfolders

    Returns:
        ``{stem: absolute path}``
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        return {}
    found: Dict[str, str] = {}
    if recursive:
        names = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            names.extend(os.path.join(dirpath, f) for f in filenames)
    else:
        names = [os.path.join(folder, f) for f in os.listdir(folder)]
    rank = {ext: i for i, ext in enumerate(IMAGE_EXTS)}
    names = [n for n in names if is_image(n) and os.path.isfile(n)]
    names.sort(key=lambda n: (os.path.splitext(os.path.basename(n))[0],
                              rank[os.path.splitext(n)[1].lower()], n))
    for path in names:
        stem = os.path.splitext(os.path.basename(path))[0]
        path = os.path.abspath(path)
        if stem in found:
            if report is not None:
                report.skip(
                    "duplicate image stem",
                    "%s (using %s)" % (path, found[stem]),
                )
            continue
        found[stem] = path
    return found


def index_files(folder, ext: str) -> Dict[str, str]:
    """Maps file stem to absolute path for the files of one extension.

    Args:
        folder: the folder; a missing folder gives an empty index
        ext: the extension, e.g. ``".txt"`` (compared case-insensitively)
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        return {}
    out = {}
    for name in sorted(os.listdir(folder)):
        stem, e = os.path.splitext(name)
        if e.lower() == ext.lower() and os.path.isfile(os.path.join(folder, name)):
            out.setdefault(stem, os.path.abspath(os.path.join(folder, name)))
    return out


def read_image(path: str) -> np.ndarray:
    """Decodes an image to RGB uint8 ``(H, W, 3)`` (EXIF orientation ignored,
    so pixels match the annotations' frame).

    Raises:
        FormatError: naming the file when it is missing or unreadable
    """
    import cv2

    if not os.path.isfile(path):
        raise FormatError(path, "image file not found")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise FormatError(path, "unreadable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
