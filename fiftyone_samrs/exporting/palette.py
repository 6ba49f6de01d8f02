"""The fixed colour palette of the SAMRS colour labels.

Class ``i`` of a class list gets colour ``PALETTE[i]``: the PASCAL VOC label
colour map shifted by one, so that no class is black; pixel value 255 (not
covered) is black. The palette does not depend on the class list, so the same
index always has the same colour across exports.
"""

from __future__ import annotations

import json
import os
from typing import List, Sequence

import numpy as np

from fiftyone_samrs.core.classes import IGNORE_INDEX

#: colour of "not covered" (pixel value 255)
IGNORE_COLOR = (0, 0, 0)


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
    voc = _voc_colormap(257)
    palette = voc[1:257].copy()  # class i -> VOC colour i + 1: never black
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
    with open(os.path.join(export_dir, "classes.txt"), "w") as f:
        f.write("".join(name + "\n" for name in classes))
    with open(os.path.join(export_dir, "palette.json"), "w") as f:
        json.dump(
            {"classes": list(classes), "ignore_index": IGNORE_INDEX,
             "palette": palette_for(classes)},
            f,
            indent=1,
        )
