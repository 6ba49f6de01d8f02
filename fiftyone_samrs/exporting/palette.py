"""The fixed colour palette of the SAMRS colour labels: the release's.

Class ``i`` of a class list gets colour ``PALETTE[i]``: for ``i < 37`` the
colour the SAMRS release paints it with (its ``MAPPING``; the first 15 are
iSAID's class colours), beyond that a PASCAL VOC label colour not used
above. Pixel value 255 (not covered) is white, as the release's colour PNGs.
The palette does not depend on the class list, so the same index always has
the same colour across exports.
"""

from __future__ import annotations

import json
import os
from typing import List, Sequence

import numpy as np

from fiftyone_samrs.core.classes import IGNORE_INDEX
from fiftyone_samrs.core.paths import atomic_write_text

#: colour of "not covered" (pixel value 255): white, as the release
IGNORE_COLOR = (255, 255, 255)

#: the SAMRS release's colour of each class index (RGB)
RELEASE_COLORS = (
    (0, 127, 255), (0, 63, 0), (0, 127, 63), (0, 63, 255), (0, 0, 127), (0, 127, 127),
    (0, 0, 63), (0, 63, 127), (0, 63, 191), (0, 191, 127), (0, 127, 191), (0, 63, 63),
    (0, 100, 155), (0, 0, 255), (0, 0, 191), (64, 191, 127), (64, 0, 191), (128, 63, 63),
    (128, 0, 63), (191, 63, 0), (255, 127, 0), (63, 0, 0), (127, 63, 0), (63, 255, 0),
    (0, 127, 0), (127, 127, 0), (63, 0, 63), (63, 127, 0), (63, 191, 0), (191, 127, 0),
    (127, 191, 0), (63, 63, 0), (100, 155, 0), (0, 255, 0), (0, 191, 0), (191, 127, 64),
    (0, 191, 64),
)


def _voc_colormap(n: int = 256) -> np.ndarray:
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


def _build_palette() -> np.ndarray:
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[: len(RELEASE_COLORS)] = RELEASE_COLORS
    used = {tuple(c) for c in RELEASE_COLORS} | {IGNORE_COLOR, (0, 0, 0)}
    spare = [tuple(int(v) for v in c) for c in _voc_colormap(1024) if tuple(c) not in used]
    palette[len(RELEASE_COLORS) : IGNORE_INDEX] = spare[: IGNORE_INDEX - len(RELEASE_COLORS)]
    palette[IGNORE_INDEX] = IGNORE_COLOR
    return palette


#: ``(256, 3)`` uint8 RGB colour of each pixel value
PALETTE: np.ndarray = _build_palette()


#: the palette as an OpenCV look-up table, BGR: ``(1, 256, 3)``
_BGR_LUT = np.ascontiguousarray(PALETTE[:, ::-1]).reshape(1, 256, 3)


def colorize(label: np.ndarray) -> np.ndarray:
    """RGB ``(H, W, 3)`` uint8 image of a class-index label."""
    return PALETTE[np.asarray(label, dtype=np.uint8)]


def colorize_bgr(label: np.ndarray) -> np.ndarray:
    """BGR ``(H, W, 3)`` uint8 image of a class-index label, for ``cv2.imwrite``
    (``cv2.LUT``: about 10x faster than indexing)."""
    import cv2

    label = np.ascontiguousarray(label, dtype=np.uint8)
    return cv2.LUT(cv2.merge([label, label, label]), _BGR_LUT)


def palette_for(classes: Sequence[str]) -> List[dict]:
    """``[{"index", "name", "color": [r, g, b]}]`` for a class list, plus 255."""
    rows = [
        {"index": i, "name": name, "color": [int(v) for v in PALETTE[i]]}
        for i, name in enumerate(classes)
    ]
    rows.append({"index": IGNORE_INDEX, "name": None, "color": list(IGNORE_COLOR)})
    return rows


def write_palette_files(export_dir: str, classes: Sequence[str]) -> None:
    """Writes ``classes.txt`` (one name a line, line i = pixel value i) and
    ``palette.json`` into ``export_dir``."""
    os.makedirs(export_dir, exist_ok=True)
    atomic_write_text(os.path.join(export_dir, "classes.txt"),
                      "".join(name + "\n" for name in classes))
    atomic_write_text(os.path.join(export_dir, "palette.json"), json.dumps(
        {"classes": list(classes), "ignore_index": IGNORE_INDEX,
         "palette": palette_for(classes)}, indent=1))
