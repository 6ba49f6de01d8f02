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
