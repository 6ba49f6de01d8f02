"""Region-only post-processing of SAM's low-resolution mask logits.

SAM's reference post-processing (``Sam.postprocess_masks``) upsamples each
256x256 low-res logit map bilinearly to 1024x1024, crops the resized image's
extent, and resizes bilinearly again to the original image size: O(H x W)
per box. Both resizes are separable linear maps (PyTorch ``bilinear``,
``align_corners=False``), so the logits of any output window are

    A_y[y0:y1] @ L @ A_x[x0:x1].T

with ``A_y`` (H x 256) and ``A_x`` (W x 256) the composed interpolation
matrices. Only a narrow band of ``L`` feeds a window, so each box costs
O(window) instead of O(H x W). The result equals the reference up to float
rounding.

For a whole mask (no region given), the bilinear weights are all
non-negative and each output pixel is a convex combination of its taps, so a
pixel can exceed a threshold only if one of its low-res taps does:
:meth:`RegionUpsampler.support` finds the smallest output region outside
which every pixel is at or below the threshold, and only that region is
upsampled, by the matrices when it is small or by SAM's own two
``F.interpolate`` calls when it covers much of the image. The cost follows
the mask, not the image, and memory is one image's worth at most.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Optional, Tuple

import numpy as np
import torch


def bilinear_taps(in_size: int, out_size: int):
    """The two taps and weights of PyTorch's 1-D bilinear resize, ``align_corners=False``.

    Follows ``upsample_bilinear2d``: ``src = (dst + 0.5) * in / out - 0.5``,
    clamped at 0; the two taps are ``floor(src)`` and the next one (clamped
    to the last input index). The float32 scale, float32 source positions
    and float32 weights reproduce PyTorch's CPU kernel bit for bit.

    Returns:
        ``(i0, i1, w0, w1)`` arrays of length ``out_size``
    """
    f32 = np.float32
    scale = np.float64(f32(in_size) / f32(out_size))  # the scale is a float32
    dst = np.arange(out_size, dtype=np.float64)
    src = np.maximum(scale * (dst + 0.5) - 0.5, 0.0).astype(f32)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    lam1 = np.clip(src - i0.astype(f32), f32(0.0), f32(1.0)).astype(f32)
    lam0 = (f32(1.0) - lam1).astype(f32)
    return i0, i1, lam0.astype(np.float64), lam1.astype(np.float64)


def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """``(out, in)`` matrix of PyTorch's 1-D bilinear resize (see :func:`bilinear_taps`)."""
    i0, i1, w0, w1 = bilinear_taps(in_size, out_size)
    m = np.zeros((out_size, in_size), dtype=np.float64)
    rows = np.arange(out_size)
    np.add.at(m, (rows, i0), w0)
    np.add.at(m, (rows, i1), w1)
    return m


@lru_cache(maxsize=128)
def composed_matrix(orig: int, inp: int, img_size: int = 1024, low: int = 256) -> np.ndarray:
    """``(orig, low)``: low-res -> img_size, crop to ``inp``, -> ``orig`` (one axis).

    Built from the second resize's two taps per row, so its cost is
    O(orig x low) even for very large images.
    """
    stage1 = bilinear_matrix(low, img_size)[:inp]  # (inp, low)
    i0, i1, w0, w1 = bilinear_taps(inp, orig)
    m = w0[:, None] * stage1[i0] + w1[:, None] * stage1[i1]
    m.setflags(write=False)
    return m


class RegionUpsampler:
    """Upsamples low-res logits to original-image windows, for one image size.

    Args:
        input_size: ``(h, w)`` of the resized encoder input (longest side 1024)
        original_size: ``(H, W)`` of the original image
        img_size: SAM's encoder input side
        low: the low-res mask side (256)
        device: where the matrices live
    """

    def __init__(
        self,
        input_size: Tuple[int, int],
        original_size: Tuple[int, int],
        img_size: int = 1024,
        low: int = 256,
        device=None,
    ):
        self.input_size = tuple(int(v) for v in input_size)
        self.original_size = tuple(int(v) for v in original_size)
        self.low = low
        ay = composed_matrix(self.original_size[0], self.input_size[0], img_size, low)
        ax = composed_matrix(self.original_size[1], self.input_size[1], img_size, low)
        nz_y, nz_x = ay != 0, ax != 0
        # first / last+1 low-res index feeding each output row / column
        self._y_lo = nz_y.argmax(axis=1)
        self._y_hi = low - nz_y[:, ::-1].argmax(axis=1)
        self._x_lo = nz_x.argmax(axis=1)
        self._x_hi = low - nz_x[:, ::-1].argmax(axis=1)
        dev = torch.device("cpu") if device is None else torch.device(device)
        self.ay = torch.from_numpy(np.ascontiguousarray(ay, dtype=np.float32)).to(dev)
        self.ax = torch.from_numpy(np.ascontiguousarray(ax, dtype=np.float32)).to(dev)

    def support(self, logits: torch.Tensor, offset: Tuple[int, int],
                threshold: float) -> Optional[Tuple[int, int, int, int]]:
        """The output region ``(x0, y0, x1, y1)`` outside which every upsampled
        logit is ``<= threshold``, or None when no low-res logit exceeds it.

        Exact, not a heuristic: an output pixel is a convex combination of
        the low-res logits it taps (non-negative weights summing to one).

        Args:
            logits: ``(h, w)`` low-res logits whose ``[0, 0]`` is low-res
                ``(row, col) = offset``
            offset: low-res ``(row, col)`` of ``logits[0, 0]``
            threshold: the mask threshold (or a lower level, for stability)
        """
        above = (logits > threshold)
        rows = above.any(dim=1).cpu().numpy()
        cols = above.any(dim=0).cpu().numpy()
        if not rows.any():
            return None
        orow, ocol = offset
        y = _touching(rows, orow, self.low, self._y_lo, self._y_hi)
        x = _touching(cols, ocol, self.low, self._x_lo, self._x_hi)
        if y is None or x is None:
            return None
        return x[0], y[0], x[1], y[1]

    def apply_full(self, logits: torch.Tensor, region: Tuple[int, int, int, int],
                   img_size: int = 1024) -> torch.Tensor:
        """Logits of a region the reference way: the whole ``(low, low)`` map
        through ``Sam.postprocess_masks``' two bilinear resizes, then cut.

        Cheaper than :meth:`apply` when the region covers much of the image.
        """
        import torch.nn.functional as F

        x0, y0, x1, y1 = region
        h_in, w_in = self.input_size
        m = F.interpolate(logits.float()[None, None], (img_size, img_size), mode="bilinear",
                          align_corners=False)[..., :h_in, :w_in]
        m = F.interpolate(m, self.original_size, mode="bilinear", align_corners=False)
        return m[0, 0, y0:y1, x0:x1]

    def cost(self, region: Tuple[int, int, int, int]) -> Tuple[float, float]:
        """Estimated multiply-adds of :meth:`apply` and of :meth:`apply_full`
        for a region (to pick the cheaper)."""
        x0, y0, x1, y1 = region
        r0, r1, c0, c1 = self.lowres_window(region)
        h, w, r, c = y1 - y0, x1 - x0, r1 - r0, c1 - c0
        matrices = min(h * r * c + h * c * w, r * c * w + h * r * w)
        H, W = self.original_size
        return float(matrices), float(8 * (self.low * 4) ** 2 + 8 * H * W)

    def lowres_window(self, region: Tuple[int, int, int, int]) -> Tuple[int, int, int, int]:
        """The low-res rows/cols ``(r0, r1, c0, c1)`` feeding an output region.

        Args:
            region: integer ``(x0, y0, x1, y1)`` of the original image, non-empty
        """
        x0, y0, x1, y1 = region
        return (
            int(self._y_lo[y0:y1].min()),
            int(self._y_hi[y0:y1].max()),
            int(self._x_lo[x0:x1].min()),
            int(self._x_hi[x0:x1].max()),
        )

    def apply(
        self,
        logits: torch.Tensor,
        offset: Tuple[int, int],
        region: Tuple[int, int, int, int],
    ) -> torch.Tensor:
        """Logits of an original-image region from a low-res window.

        Args:
            logits: ``(h, w)`` low-res logits whose ``[0, 0]`` is low-res
                ``(row, col) = offset``; must cover :meth:`lowres_window` of
                ``region``
            offset: low-res ``(row, col)`` of ``logits[0, 0]``
            region: integer ``(x0, y0, x1, y1)``

        Returns:
            ``(y1 - y0, x1 - x0)`` float logits
        """
        x0, y0, x1, y1 = region
        r0, r1, c0, c1 = self.lowres_window(region)
        orow, ocol = offset
        win = logits[r0 - orow : r1 - orow, c0 - ocol : c1 - ocol].float()
        ay = self.ay[y0:y1, r0:r1]
        ax = self.ax[x0:x1, c0:c1]
        if (y1 - y0) * (c1 - c0) <= (r1 - r0) * (x1 - x0):
            return (ay @ win) @ ax.T
        return ay @ (win @ ax.T)


def _touching(hit: np.ndarray, offset: int, low: int, lo: np.ndarray,
              hi: np.ndarray) -> Optional[Tuple[int, int]]:
    """``(first, last + 1)`` of the output indices whose low-res taps
    ``[lo, hi)`` include a hit (``hit[k]`` = low-res index ``offset + k``)."""
    full = np.zeros(low + 1, dtype=np.int64)
    full[offset + 1 : offset + 1 + len(hit)] = hit
    count = np.cumsum(full)
    touched = np.flatnonzero(count[hi] - count[lo] > 0)
    if touched.size == 0:
        return None
    return int(touched[0]), int(touched[-1]) + 1


def stability_score(logits: torch.Tensor, threshold: float = 0.0, offset: float = 1.0) -> float:
    """SAM's stability score (``amg.calculate_stability_score``) of one logit map.

    IoU of the masks thresholded at ``threshold + offset`` and
    ``threshold - offset``; 0.0 when the looser mask is empty.
    """
    inter = int((logits > (threshold + offset)).sum())
    union = int((logits > (threshold - offset)).sum())
    return inter / union if union > 0 else 0.0


def region_mask(up: RegionUpsampler, window, region: Tuple[int, int, int, int], score: float,
                threshold: float, whole: bool, img_size: int = 1024):
    """The :class:`~fiftyone_samrs.segmenting.backends.MaskResult` of one prompt
    from its low-res logits (shared by the SAM, HQ-SAM and SAM 2 engines).

    With ``whole=False`` the mask is computed and kept inside ``region``. A
    whole mask (``whole=True``: ``window`` is the full low-res map) is
    computed exactly where the upsampled logits can exceed ``threshold - 1``
    (:meth:`RegionUpsampler.support`; the 1 is the stability score's
    offset), so the mask and its stability score are the whole image's.

    Args:
        up: the image's upsampler
        window: ``(logits, (row, col) offset)`` or None (no region)
        region: integer ``(x0, y0, x1, y1)``
        score: the predicted IoU
        threshold: the mask threshold (0 for SAM)
        whole: see above
        img_size: the model's input side (for :meth:`RegionUpsampler.apply_full`)
    """
    from fiftyone_samrs.core.records import InstanceMask
    from fiftyone_samrs.segmenting.base import MaskResult

    x0, y0, x1, y1 = region
    if window is None or x1 <= x0 or y1 <= y0:
        mask = np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), dtype=bool)
        return MaskResult(InstanceMask(mask, x0, y0), score, 0.0, True)
    logits, offset = window
    if whole:
        region = up.support(logits, offset, threshold - 1.0)
        if region is None:
            return MaskResult(InstanceMask(np.zeros((0, 0), dtype=bool), 0, 0), score, 0.0, True)
        x0, y0 = region[0], region[1]
        by_matrices, by_resize = up.cost(region)
        if by_resize < by_matrices and tuple(logits.shape[-2:]) == (up.low, up.low):
            region_logits = up.apply_full(logits, region, img_size)
        else:
            region_logits = up.apply(logits, offset, region)
    else:
        region_logits = up.apply(logits, offset, region)
    stability = stability_score(region_logits, threshold, 1.0)
    mask = (region_logits > threshold).cpu().numpy()
    return MaskResult(InstanceMask(mask, x0, y0), score, stability, not bool(mask.any()))
