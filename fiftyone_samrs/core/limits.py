"""The largest image the package accepts, and how to raise it.

No FiftyOne import here.
"""

from __future__ import annotations

import os
from typing import Optional

#: environment variable that overrides :data:`MAX_IMAGE_PIXELS`
MAX_PIXELS_ENV = "SAMRS_MAX_IMAGE_PIXELS"

#: default largest image (width x height) accepted: 2**30, as OpenCV's
#: ``CV_IO_MAX_IMAGE_PIXELS``; a 20000x20000 DOTA v2.0 image is 4e8
MAX_IMAGE_PIXELS = 1 << 30


def max_image_pixels(max_pixels: Optional[int] = None) -> int:
    """The pixel limit in force: ``max_pixels``, else ``$SAMRS_MAX_IMAGE_PIXELS``,
    else :data:`MAX_IMAGE_PIXELS`.

    Raises:
        ValueError: if the environment variable is not a positive integer
    """
    if max_pixels is not None:
        return int(max_pixels)
    env = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not env:
        return MAX_IMAGE_PIXELS
    try:
        value = int(float(env))
    except (ValueError, OverflowError):
        raise ValueError("%s must be a positive integer, not %r" % (MAX_PIXELS_ENV, env)) from None
    if value <= 0:
        raise ValueError("%s must be a positive integer, not %r" % (MAX_PIXELS_ENV, env))
    return value


# --------------------------------------------------------------------------
# database documents

#: MongoDB's largest document (BSON), 16 MiB: one FiftyOne sample is one document
MONGO_DOC_LIMIT = 16 * 1024 * 1024

#: the largest sample document written here: MongoDB's limit less 256 KiB
#: of headroom for what FiftyOne and later steps add to a sample (tags,
#: evaluation scores, quality signals)
MAX_SAMPLE_BYTES = MONGO_DOC_LIMIT - 256 * 1024

#: a sample whose instance masks of one field take more than this (as
#: stored: FiftyOne's zlib-compressed ``.npy`` bytes) gets them as mask files
#: (``mask_path``, one 8-bit PNG per object, 0 / 255) instead of inline
#: ``mask`` bytes. 4 MiB leaves room in the 16 MiB document for the labels
#: and two more mask fields (e.g. ``gt_masks``, ``sam`` and a baseline);
#: a sample nearer the limit than that gets mask files whatever their size.
INLINE_MASK_BYTES = 4 * 1024 * 1024


def too_large_message(what: str, size: int, n_objects: int) -> str:
    """Why a sample cannot be stored, and what to do: tile its image."""
    return ("its sample document would be %.1f MB with %d objects, over MongoDB's 16 MB "
            "document limit; import it tiled (tile=True, CLI --tile), so that each tile is "
            "a sample of its own%s" % (size / 1e6, n_objects, what))
