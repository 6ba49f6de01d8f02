"""Backends that need no SAM weights: ``grabcut`` and ``boxfill``.

Both implement the :class:`~fiftyone_samrs.segmenting.backends.Backend` protocol and return one
:class:`~fiftyone_samrs.segmenting.backends.MaskResult` per prompt, over the prompt's region, like the
SAM engine:

- :class:`GrabCutBackend`: OpenCV GrabCut initialised from the prompt box
  (rect mode) on the region's crop only, the classical way of turning boxes
  into masks. ``score`` is 1.0 (GrabCut has no confidence) and
  ``stability`` is NaN. Deterministic per object: OpenCV's random generator
  is seeded from the object's own crop and box before each call
  (:func:`grabcut_seed`), so a resumed, sharded or reordered run gives the
  same masks as an uninterrupted one. Where GrabCut cannot run (box too
  small, no background around it) or returns an empty mask, the object gets
  its rotated box where the prompt set has one, else the prompt box,
  flagged in ``MaskResult.fallback`` (``"rbox"`` / ``"box"``; the pipeline
  writes it as the Detection attribute ``fallback``).
- :class:`BoxFillBackend`: the box itself as the mask, or the rotated box
  where the prompt used one (``rhbox``, ``rbox_m``, ``rhbox_m`` rows with a
  quad). A pixel is in when its centre is. ``score`` 1.0, ``stability`` NaN.

The prompt box is the PromptSet's box prompt, or for point/mask-only
prompts the box the region was grown from (``PromptSet.base_boxes``).
"""

from __future__ import annotations

import hashlib
import logging
from typing import List, Optional, Sequence, Tuple

import numpy as np

from fiftyone_samrs.core.geometry import box_to_int_region
from fiftyone_samrs.core.masks import polygon_pixels
from fiftyone_samrs.core.records import InstanceMask
from fiftyone_samrs.segmenting.base import Engine, MaskResult, as_rgb_uint8
from fiftyone_samrs.segmenting.prompts import PromptSet

logger = logging.getLogger(__name__)

_ROTATED = ("rhbox", "rbox_m", "rhbox_m")


def _prompt_box(prompts: PromptSet, i: int) -> np.ndarray:
    if prompts.boxes is not None:
        return np.asarray(prompts.boxes[i], dtype=np.float64)
    if prompts.base_boxes is not None:
        return np.asarray(prompts.base_boxes[i], dtype=np.float64)
    return np.asarray(prompts.regions[i], dtype=np.float64)


def box_mask(box: Sequence[float], x0: int, y0: int, width: int, height: int) -> np.ndarray:
    """Pixels of the window whose centre lies in the box ``[bx0, bx1] x [by0, by1]``."""
    bx0, by0, bx1, by1 = (float(v) for v in box)
    xs = x0 + np.arange(width) + 0.5
    ys = y0 + np.arange(height) + 0.5
    return ((ys >= by0) & (ys <= by1))[:, None] & ((xs >= bx0) & (xs <= bx1))[None, :]


def grabcut_seed(crop: np.ndarray, rect: Sequence[int], iterations: int) -> int:
    """The seed of OpenCV's generator for one GrabCut call: a hash of its inputs.

    GrabCut draws from OpenCV's (per-thread) generator to initialise its
    colour models; seeding it from the crop's pixels, the rectangle and the
    iteration count makes each object's mask a function of the object alone,
    not of what ran before it in the process.
    """
    h = hashlib.blake2b(digest_size=8)
    h.update(np.asarray(crop.shape, dtype=np.int64).tobytes())
    h.update(np.asarray(list(rect) + [iterations], dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(crop).tobytes())
    return int.from_bytes(h.digest(), "little") & 0x7FFFFFFF


class _Baseline(Engine):
    name = "baseline"
    #: the prompt box grown by 10%: GrabCut's surroundings (see ``segment``)
    default_margin = 0.1
    mask_prompts = False  # the box (or rotated box) is all they use

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """Checks and converts an image to RGB uint8 (thread-safe; mirrors SamEngine)."""
        return as_rgb_uint8(image)

    def predict_batch(
        self, images: Sequence[np.ndarray], prompts: Sequence[PromptSet]
    ) -> List[List[MaskResult]]:
        """One list of MaskResults per image, one result per prompt."""
        if len(images) != len(prompts):
            raise ValueError("got %d images but %d prompt sets" % (len(images), len(prompts)))
        return [self.predict(im, ps) for im, ps in zip(images, prompts)]

    def predict(self, image: np.ndarray, prompts: PromptSet) -> List[MaskResult]:
        raise NotImplementedError


class BoxFillBackend(_Baseline):
    """Fills the prompt box, or the rotated box where the prompt used one."""

    name = "boxfill"

    def predict(self, image, prompts: PromptSet) -> List[MaskResult]:
        """Masks for one image (the image only gives its size)."""
        img = np.asarray(image)
        height, width = img.shape[:2]
        out = []
        for i in range(len(prompts)):
            x0, y0, x1, y1 = box_to_int_region(prompts.regions[i], width, height)
            w, h = max(x1 - x0, 0), max(y1 - y0, 0)
            quad = None
            if prompts.quads is not None and any(p in _ROTATED for p in prompts.names[i].split("+")):
                q = np.asarray(prompts.quads[i], dtype=np.float64)
                if np.isfinite(q).all():
                    quad = q
            if quad is not None:
                mask = polygon_pixels(quad, (x0, y0, x0 + w, y0 + h))
            else:
                mask = box_mask(_prompt_box(prompts, i), x0, y0, w, h)
            out.append(MaskResult(InstanceMask(mask, x0, y0), 1.0, float("nan"), not mask.any()))
        return out


class GrabCutBackend(_Baseline):
    """OpenCV GrabCut from each prompt box, on the prompt's region only.

    Args:
        iterations: GrabCut iterations
        max_side: crops longer than this are downscaled for GrabCut and the
            mask scaled back (nearest), which bounds the time per object

    Attributes:
        fallbacks: how many objects got their box (or rotated box) instead
            of a GrabCut mask: GrabCut could not run (box too small, or no
            background around it in the region) or returned an empty mask;
            logged at the end of each batch
        empty_fallbacks: of those, how many because GrabCut's mask was empty
    """

    name = "grabcut"

    def __init__(self, iterations: int = 3, max_side: int = 320):
        self.iterations = int(iterations)
        self.max_side = int(max_side)
        self.fallbacks = 0
        self.empty_fallbacks = 0

    def _grabcut(self, crop: np.ndarray, rect: Tuple[int, int, int, int]) -> Optional[np.ndarray]:
        import cv2

        h, w = crop.shape[:2]
        rx, ry, rw, rh = rect
        if rw < 2 or rh < 2 or (rx <= 0 and ry <= 0 and rx + rw >= w and ry + rh >= h):
            return None
        mask = np.zeros((h, w), dtype=np.uint8)
        bgd = np.zeros((1, 65), dtype=np.float64)
        fgd = np.zeros((1, 65), dtype=np.float64)
        cv2.setRNGSeed(grabcut_seed(crop, rect, self.iterations))
        try:
            cv2.grabCut(crop, mask, rect, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_RECT)
        except cv2.error:
            return None
        return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)

    def predict(self, image, prompts: PromptSet) -> List[MaskResult]:
        """Masks for one image."""
        import cv2

        img = as_rgb_uint8(image)
        height, width = img.shape[:2]
        out = []
        before = self.fallbacks
        for i in range(len(prompts)):
            x0, y0, x1, y1 = box_to_int_region(prompts.regions[i], width, height)
            w, h = max(x1 - x0, 0), max(y1 - y0, 0)
            box = _prompt_box(prompts, i)
            if w == 0 or h == 0:
                mask = np.zeros((h, w), dtype=bool)
                out.append(MaskResult(InstanceMask(mask, x0, y0), 1.0, float("nan"), True))
                continue
            crop = np.ascontiguousarray(img[y0:y1, x0:x1])
            scale = min(1.0, self.max_side / max(w, h))
            if scale < 1.0:
                small = cv2.resize(crop, (max(1, round(w * scale)), max(1, round(h * scale))),
                                   interpolation=cv2.INTER_AREA)
            else:
                small = crop
            sh, sw = small.shape[:2]
            bx0 = int(np.clip(np.floor((box[0] - x0) * scale), 0, sw))
            by0 = int(np.clip(np.floor((box[1] - y0) * scale), 0, sh))
            bx1 = int(np.clip(np.ceil((box[2] - x0) * scale), 0, sw))
            by1 = int(np.clip(np.ceil((box[3] - y0) * scale), 0, sh))
            fg = self._grabcut(small, (bx0, by0, bx1 - bx0, by1 - by0))
            fallback = None
            if fg is not None and not fg.any():
                self.empty_fallbacks += 1
                fg = None
            if fg is None:
                self.fallbacks += 1
                mask, fallback = _fallback_mask(prompts, i, box, x0, y0, w, h)
            elif scale < 1.0:
                mask = cv2.resize(fg.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
            else:
                mask = fg
            out.append(MaskResult(InstanceMask(mask, x0, y0), 1.0, float("nan"), not mask.any(),
                                  fallback=fallback))
        if self.fallbacks > before:
            logger.info("grabcut: %d object(s) got their box or rotated box (too small, no "
                        "background, or an empty GrabCut mask)", self.fallbacks - before)
        return out


def _fallback_mask(prompts: PromptSet, i: int, box: np.ndarray, x0: int, y0: int, w: int,
                   h: int) -> Tuple[np.ndarray, str]:
    """The rotated box of object ``i`` where the prompt set has one, else its prompt box."""
    if prompts.quads is not None:
        q = np.asarray(prompts.quads[i], dtype=np.float64)
        if np.isfinite(q).all():
            mask = polygon_pixels(q, (x0, y0, x0 + w, y0 + h))
            if mask.any():
                return mask, "rbox"
    return box_mask(box, x0, y0, w, h), "box"
