"""SAM prompts built from boxes and rotated boxes (pure numpy / OpenCV).

The prompts of the SAMRS paper's Table 1:

- ``cp``: the centre point as one foreground point (the rotated box's centre
  where the object has one, as the SAMRS release did for HRSC2016; otherwise
  the H-Box centre);
- ``hbox``: the horizontal box;
- ``rhbox``: the horizontal box circumscribing the rotated box;
- ``hbox_m``, ``rbox_m``, ``rhbox_m``: the H-Box, the rotated box or the
  RH-Box region as a *mask* prompt: +1000 inside, -1000 outside, resized like
  SAM's low-resolution mask input (see :func:`box_mask_prompt`).

Prompts combine with ``+`` (``"hbox+cp"``, ``"rhbox+rbox_m"``): at most one
box prompt, one mask prompt and the centre point. ``"auto"`` is the paper's
rule: ``hbox`` where the source has horizontal boxes, otherwise ``rhbox``.

An object without a rotated box (its ``quads`` row is NaN) falls back to its
H-Box for the rotated prompts (``rhbox`` -> ``hbox``, ``rbox_m`` and
``rhbox_m`` -> ``hbox_m``); its entry in :attr:`PromptSet.names` says what
was actually used.

Each prompt also gets a *region*: the prompt's box grown by a margin and
clipped to the image. The engine computes and keeps each mask only there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

#: the single prompt names
PROMPTS: Tuple[str, ...] = ("cp", "hbox", "rhbox", "hbox_m", "rbox_m", "rhbox_m")

#: the prompt configurations of the SAMRS paper's Table 1 (HRSC2016 test set),
#: in the table's order: each box alone, then with the centre point and/or
#: the mask prompts
TABLE1: List[str] = [
    "cp",
    "hbox",
    "hbox+cp",
    "hbox_m",
    "hbox+hbox_m",
    "hbox+cp+hbox_m",
    "rhbox",
    "rhbox+cp",
    "rbox_m",
    "rhbox+rbox_m",
    "rhbox+cp+rbox_m",
    "rhbox_m",
    "rhbox+rhbox_m",
    "rhbox+cp+rhbox_m",
]

_BOX_PROMPTS = ("hbox", "rhbox")
_MASK_PROMPTS = ("hbox_m", "rbox_m", "rhbox_m")
_ROTATED = ("rhbox", "rbox_m", "rhbox_m")
_FALLBACK = {"rhbox": "hbox", "rbox_m": "hbox_m", "rhbox_m": "hbox_m"}

#: SAM's encoder input side and low-resolution mask side
SAM_INPUT_SIZE = 1024
SAM_MASK_SIZE = 256

#: frames of the low-resolution mask prompts: ``"sam"``: SAM and HQ-SAM (longest
#: side resized to 1024, padded to a square); ``"square"``: SAM 2 (the whole image
#: stretched to 1024x1024). A backend names its frame in its ``mask_frame``.
MASK_FRAMES = ("sam", "square")


@dataclass
class PromptSet:
    """The SAM prompts of N objects of one image, in source pixels.

    Attributes:
        boxes: ``(N, 4)`` xyxy float boxes, or None
        points: ``(N, P, 2)`` xy points, or None
        point_labels: ``(N, P)`` labels (1 = foreground), or None
        mask_inputs: ``(N, 1, 256, 256)`` float32 mask prompts (+1000 in,
            -1000 out, SAM's low-resolution frame), or None
        regions: ``(N, 4)`` xyxy float: where each mask is computed and kept
            (the prompt box grown by the margin, clipped to the image)
        names: the prompt name per row (e.g. ``"hbox"``)
        image_size: ``(height, width)`` of the image, or None
        base_boxes: ``(N, 4)`` xyxy: the box each region was grown from (the
            prompt's own extent: its box and/or mask-prompt box), or None
        quads: ``(N, 4, 2)`` the rotated boxes given (NaN rows where none), or None
        mask_frame: the frame of ``mask_inputs`` (see :data:`MASK_FRAMES`)
    """

    boxes: Optional[np.ndarray]
    points: Optional[np.ndarray]
    point_labels: Optional[np.ndarray]
    mask_inputs: Optional[np.ndarray]
    regions: np.ndarray
    names: List[str]
    image_size: Optional[Tuple[int, int]] = field(default=None, compare=False)
    base_boxes: Optional[np.ndarray] = field(default=None, compare=False)
    quads: Optional[np.ndarray] = field(default=None, compare=False)
    mask_frame: str = field(default="sam", compare=False)

    def __len__(self) -> int:
        return int(len(self.regions))

    def subset(self, index) -> "PromptSet":
        """The prompts of the rows ``index`` (a slice, an int array or a mask)."""

        def take(a):
            return None if a is None else a[index]

        idx = np.arange(len(self))[index]
        return PromptSet(
            boxes=take(self.boxes),
            points=take(self.points),
            point_labels=take(self.point_labels),
            mask_inputs=take(self.mask_inputs),
            regions=self.regions[index],
            names=[self.names[int(i)] for i in np.atleast_1d(idx)],
            image_size=self.image_size,
            base_boxes=take(self.base_boxes),
            quads=take(self.quads),
            mask_frame=self.mask_frame,
        )


def parse_prompt(prompt: str, has_hbox: bool = True) -> List[str]:
    """Splits a prompt configuration into its single prompts, checking them.

    Args:
        prompt: a name from :data:`PROMPTS`, a ``"+"`` combination, or ``"auto"``
        has_hbox: for ``"auto"``: whether the source has horizontal boxes

    Returns:
        the single prompt names, in the order given

    Raises:
        ValueError: unknown names, repeated names, or two box (or two mask)
            prompts in one combination
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt must be a non-empty string, got %r" % (prompt,))
    text = prompt.strip().lower().replace(" ", "")
    if text == "auto":
        return ["hbox" if has_hbox else "rhbox"]
    parts = text.split("+")
    for p in parts:
        if p == "auto":
            raise ValueError("'auto' cannot be combined with other prompts: %r" % prompt)
        if p not in PROMPTS:
            raise ValueError(
                "unknown prompt %r in %r; known: %s, combinations joined by '+', or 'auto'"
                % (p, prompt, ", ".join(PROMPTS))
            )
    if len(set(parts)) != len(parts):
        raise ValueError("prompt %r repeats a name" % prompt)
    if sum(p in _BOX_PROMPTS for p in parts) > 1:
        raise ValueError("prompt %r has more than one box prompt (SAM takes one box)" % prompt)
    if sum(p in _MASK_PROMPTS for p in parts) > 1:
        raise ValueError("prompt %r has more than one mask prompt (SAM takes one mask)" % prompt)
    return parts


def needs_quads(prompt: str, has_hbox: bool = True) -> bool:
    """Whether a prompt configuration uses the rotated boxes."""
    return any(p in _ROTATED for p in parse_prompt(prompt, has_hbox))


def _quad_box(quad: np.ndarray) -> np.ndarray:
    return np.array([quad[:, 0].min(), quad[:, 1].min(), quad[:, 0].max(), quad[:, 1].max()])


def build_prompts(
    hboxes: np.ndarray,
    quads: Optional[np.ndarray],
    prompt: str,
    image_size: Tuple[int, int],
    has_hbox: bool = True,
    margin: Optional[float] = 0.1,
    min_margin: float = 8.0,
    mask_frame: str = "sam",
    mask_inputs: bool = True,
) -> PromptSet:
    """Builds the SAM prompts of one image's objects.

    Args:
        hboxes: ``(N, 4)`` xyxy H-Boxes (or RH-Boxes where the source has only
            rotated boxes), source pixels
        quads: ``(N, 4, 2)`` rotated-box corners, or None; a row may be NaN
            where its object has no rotated box (it then falls back to its H-Box)
        prompt: a prompt name, a ``"+"`` combination, or ``"auto"``
        image_size: ``(height, width)``
        has_hbox: whether the source has horizontal boxes (for ``"auto"``)
        margin: the region is the prompt box grown on each side by
            ``max(margin * box side, min_margin)`` pixels, clipped to the
            image; None: the whole image
        min_margin: the smallest growth in pixels
        mask_frame: the frame of the mask prompts, :data:`MASK_FRAMES`
            (``"square"`` for SAM 2)
        mask_inputs: compute the mask prompts (False for engines that do not
            read them, the baselines: ``mask_inputs`` is then None; the
            regions are the same)

    Returns:
        the :class:`PromptSet`

    Raises:
        ValueError: a bad prompt, bad shapes, or a rotated prompt without quads
    """
    parts = parse_prompt(prompt, has_hbox)
    if mask_frame not in MASK_FRAMES:
        raise ValueError("mask_frame must be one of %s, got %r" % (MASK_FRAMES, mask_frame))
    height, width = int(image_size[0]), int(image_size[1])
    if height <= 0 or width <= 0:
        raise ValueError("image_size must be positive (height, width), got %r" % (image_size,))
    hb = np.asarray(hboxes, dtype=np.float64).reshape(-1, 4)
    n = len(hb)
    q, has_quad = _checked_quads(quads, n, parts, prompt)

    box_part = next((p for p in parts if p in _BOX_PROMPTS), None)
    mask_part = next((p for p in parts if p in _MASK_PROMPTS), None)
    use_cp = "cp" in parts

    boxes = np.zeros((n, 4), dtype=np.float64) if box_part else None
    points = np.zeros((n, 1, 2), dtype=np.float64) if use_cp else None
    labels = np.ones((n, 1), dtype=np.int64) if use_cp else None
    masks = (np.zeros((n, 1, SAM_MASK_SIZE, SAM_MASK_SIZE), dtype=np.float32)
             if mask_part and mask_inputs else None)
    regions = np.zeros((n, 4), dtype=np.float64)
    bases = np.zeros((n, 4), dtype=np.float64)
    names: List[str] = []

    for i in range(n):
        quad = q[i] if has_quad[i] else None
        used = [p if (p not in _ROTATED or quad is not None) else _FALLBACK[p] for p in parts]
        names.append("+".join(used))
        extent: List[np.ndarray] = []
        if box_part:
            bp = used[parts.index(box_part)]
            b = hb[i] if bp == "hbox" else _quad_box(quad)
            boxes[i] = b
            extent.append(b)
        if mask_part:
            part = used[parts.index(mask_part)]
            if masks is None:
                extent.append(hb[i] if part == "hbox_m" else _quad_box(quad))
            else:
                masks[i], b = _mask_input(part, hb[i], quad, (height, width), mask_frame)
                extent.append(b)
        if use_cp:
            if quad is not None:
                points[i, 0] = quad.mean(axis=0)
            else:
                points[i, 0] = ((hb[i, 0] + hb[i, 2]) / 2.0, (hb[i, 1] + hb[i, 3]) / 2.0)
        if not extent:  # cp alone: the object's box
            extent.append(hb[i] if quad is None or has_hbox else _quad_box(quad))
        e = np.array(extent)
        base = (e[:, 0].min(), e[:, 1].min(), e[:, 2].max(), e[:, 3].max())
        bases[i] = base
        regions[i] = region_for_box(base, (height, width), margin, min_margin)

    return PromptSet(
        boxes=boxes,
        points=points,
        point_labels=labels,
        mask_inputs=masks,
        regions=regions,
        names=names,
        image_size=(height, width),
        base_boxes=bases,
        quads=None if q is None else q.copy(),
        mask_frame=mask_frame,
    )


def _checked_quads(quads, n: int, parts, prompt: str):
    """The quads as ``(n, 4, 2)`` (or None) and which rows have one."""
    if quads is None:
        if any(p in _ROTATED for p in parts):
            raise ValueError("prompt %r needs rotated boxes (quads), but none were given" % prompt)
        return None, np.zeros(n, dtype=bool)
    q = np.asarray(quads, dtype=np.float64)
    if q.size == 0 and n == 0:
        q = np.zeros((0, 4, 2))
    q = q.reshape(-1, 4, 2)
    if len(q) != n:
        raise ValueError("got %d quads for %d boxes" % (len(q), n))
    return q, np.isfinite(q).all(axis=(1, 2))


def _mask_input(part: str, hbox: np.ndarray, quad, image_size, mask_frame: str):
    """One object's mask prompt (``hbox_m``, ``rhbox_m`` or ``rbox_m``) and
    the box it covers."""
    if part == "hbox_m":
        return box_mask_prompt(hbox, image_size, mask_frame), hbox
    box = _quad_box(quad)
    if part == "rhbox_m":
        return box_mask_prompt(box, image_size, mask_frame), box
    return box_mask_prompt(quad, image_size, mask_frame), box  # rbox_m


def region_for_box(
    box: Sequence[float],
    image_size: Tuple[int, int],
    margin: Optional[float] = 0.1,
    min_margin: float = 8.0,
) -> np.ndarray:
    """A box grown by ``max(margin * side, min_margin)`` per side, clipped.

    Args:
        box: xyxy
        image_size: ``(height, width)``
        margin: fraction of the box side; None: the whole image
        min_margin: the smallest growth in pixels

    Returns:
        ``(4,)`` float xyxy inside ``[0, width] x [0, height]``
    """
    height, width = image_size
    if margin is None:
        return np.array([0.0, 0.0, float(width), float(height)])
    x0, y0, x1, y1 = (float(v) for v in box)
    if not np.isfinite([x0, y0, x1, y1]).all():
        raise ValueError("box %r is not finite" % (tuple(box),))
    x0, x1 = min(x0, x1), max(x0, x1)
    y0, y1 = min(y0, y1), max(y0, y1)
    mx = max(margin * (x1 - x0), min_margin)
    my = max(margin * (y1 - y0), min_margin)
    return np.array(
        [
            min(max(x0 - mx, 0.0), width),
            min(max(y0 - my, 0.0), height),
            min(max(x1 + mx, 0.0), width),
            min(max(y1 + my, 0.0), height),
        ]
    )


def preprocess_shape(height: int, width: int, long_side: int = SAM_INPUT_SIZE) -> Tuple[int, int]:
    """SAM's resized input size: longest side to ``long_side`` (ResizeLongestSide)."""
    scale = long_side * 1.0 / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def _cv2_linear_taps(in_size: int, out_size: int):
    """The two taps and weights of OpenCV's INTER_LINEAR resize along one axis."""
    scale = in_size / out_size
    fx = (np.arange(out_size) + 0.5) * scale - 0.5
    sx = np.floor(fx).astype(np.int64)
    fx = fx - sx
    low = sx < 0
    sx[low], fx[low] = 0, 0.0
    high = sx >= in_size - 1
    sx[high], fx[high] = in_size - 1, 0.0
    return sx, np.minimum(sx + 1, in_size - 1), 1.0 - fx, fx


@lru_cache(maxsize=64)
def _mask_prompt_matrix(in_size: int, resized: int) -> np.ndarray:
    """``(256, in_size)``: resize to ``resized``, pad to 1024, resize to 256."""
    a0, a1, aw0, aw1 = _cv2_linear_taps(in_size, resized)  # resized -> in
    d0, d1, dw0, dw1 = _cv2_linear_taps(SAM_INPUT_SIZE, SAM_MASK_SIZE)  # 256 -> 1024
    out = np.zeros((SAM_MASK_SIZE, in_size))
    rows = np.arange(SAM_MASK_SIZE)
    for j, wj in ((d0, dw0), (d1, dw1)):
        valid = j < resized  # padded rows hold no region
        r, jv, w = rows[valid], j[valid], wj[valid]
        np.add.at(out, (r, a0[jv]), w * aw0[jv])
        np.add.at(out, (r, a1[jv]), w * aw1[jv])
    out.setflags(write=False)
    return out


def box_mask_prompt(box_or_quad, image_size: Tuple[int, int], frame: str = "sam") -> np.ndarray:
    """A box or rotated-box region as SAM's low-resolution mask prompt.

    Reproduces the SAMRS release: the region is drawn on a full-size canvas
    (``cv2.rectangle`` from the integer-truncated corners, or ``cv2.fillPoly``
    of the integer-truncated quad), valued +1000 inside and -1000 outside,
    resized (bilinear) so the longest side is 1024, padded with -1000 to
    1024x1024 and resized (bilinear) to 256x256. The same linear maps are
    applied here to a small window around the region only, so the cost does
    not grow with the image size.

    With ``frame="square"`` (SAM 2) the canvas is resized to 1024x1024
    without keeping its aspect (no padding), as SAM 2 resizes the image.

    Args:
        box_or_quad: ``(4,)`` xyxy box or ``(4, 2)`` quad, source pixels
        image_size: ``(height, width)``
        frame: ``"sam"`` or ``"square"`` (:data:`MASK_FRAMES`)

    Returns:
        ``(1, 256, 256)`` float32
    """
    import cv2

    height, width = int(image_size[0]), int(image_size[1])
    shape = np.asarray(box_or_quad, dtype=np.float64)
    if shape.shape == (4,):
        x0, y0, x1, y1 = (int(v) for v in shape)  # truncation, as the release
        pts = None
        bx0, by0, bx1, by1 = min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)
    else:
        pts = shape.reshape(-1, 2).astype(np.int32)
        bx0, by0 = int(pts[:, 0].min()), int(pts[:, 1].min())
        bx1, by1 = int(pts[:, 0].max()), int(pts[:, 1].max())
    wx0, wy0 = max(bx0 - 1, 0), max(by0 - 1, 0)
    wx1, wy1 = min(bx1 + 2, width), min(by1 + 2, height)
    out = np.full((1, SAM_MASK_SIZE, SAM_MASK_SIZE), -1000.0, dtype=np.float32)
    if wx1 <= wx0 or wy1 <= wy0:
        return out
    canvas = np.zeros((wy1 - wy0, wx1 - wx0), dtype=np.uint8)
    if pts is None:
        cv2.rectangle(canvas, (x0 - wx0, y0 - wy0), (x1 - wx0, y1 - wy0), 1, -1)
    else:
        cv2.fillPoly(canvas, [(pts - np.array([wx0, wy0], dtype=np.int32)).reshape(-1, 1, 2)], 1)
    rh, rw = (SAM_INPUT_SIZE, SAM_INPUT_SIZE) if frame == "square" else preprocess_shape(height, width)
    ty = _mask_prompt_matrix(height, rh)[:, wy0:wy1]
    tx = _mask_prompt_matrix(width, rw)[:, wx0:wx1]
    rows = np.flatnonzero(ty.any(axis=1))
    cols = np.flatnonzero(tx.any(axis=1))
    if rows.size == 0 or cols.size == 0:
        return out
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    inside = ty[r0:r1] @ canvas.astype(np.float64) @ tx[c0:c1].T
    out[0, r0:r1, c0:c1] = (-1000.0 + 2000.0 * inside).astype(np.float32)
    return out


def describe(prompt: str) -> Dict[str, object]:
    """What a prompt configuration is made of (for reports and the UI)."""
    parts = parse_prompt(prompt)
    return {
        "prompt": "+".join(parts),
        "box": next((p for p in parts if p in _BOX_PROMPTS), None),
        "mask": next((p for p in parts if p in _MASK_PROMPTS), None),
        "point": "cp" in parts,
        "needs_quads": any(p in _ROTATED for p in parts),
    }
