"""Mask metrics of the SAMRS paper (Eq. 1): per-instance IoU, mIoU_I, mIoU_P.

Pure functions on :class:`fiftyone_samrs.core.records.InstanceMask` crops; no
FiftyOne here.

- The IoU of two instance masks is computed in full-image pixels but without
  pasting full images: only the overlap of the two crops is compared, and
  ``union = area(a) + area(b) - intersection``.
- Over ``N`` instances, ``mIoU_I = mean_i(I_i / U_i)`` (every instance
  weighs the same) and ``mIoU_P = sum_i I_i / sum_i U_i`` (every pixel
  weighs the same, so big objects dominate).
- Matching predicted to ground-truth instances, where no link between them
  is known, is one-to-one by mask IoU with the Hungarian algorithm
  (:func:`scipy.optimize.linear_sum_assignment`, maximising the summed IoU);
  pairs that do not overlap are never matched.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from fiftyone_samrs.core.records import InstanceMask

Match = Tuple[Optional[int], Optional[int], int, int]


def mask_intersection(a: InstanceMask, b: InstanceMask) -> int:
    """Number of pixels set in both masks (compared on the crops' overlap only)."""
    ax0, ay0, ax1, ay1 = a.box
    bx0, by0, bx1, by1 = b.box
    x0, y0 = max(ax0, bx0), max(ay0, by0)
    x1, y1 = min(ax1, bx1), min(ay1, by1)
    if x1 <= x0 or y1 <= y0:
        return 0
    pa = np.asarray(a.mask[y0 - ay0 : y1 - ay0, x0 - ax0 : x1 - ax0], dtype=bool)
    pb = np.asarray(b.mask[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0], dtype=bool)
    return int(np.count_nonzero(pa & pb))


def mask_iou(
    a: InstanceMask, b: InstanceMask, size: Optional[Tuple[int, int]] = None
) -> Tuple[int, int]:
    """Intersection and union of two instance masks, in full-image pixels.

    Args:
        a: an instance mask (crop + offset)
        b: another instance mask
        size: optional ``(height, width)`` of the image: pixels of a crop that
            fall outside it are ignored (crops made by this project never
            leave the image; this guards against hand-made ones)

    Returns:
        ``(intersection, union)`` as pixel counts; ``(0, 0)`` when both are
        empty
    """
    if size is not None:
        a, b = a.clipped(*size), b.clipped(*size)
    inter = mask_intersection(a, b)
    union = int(np.count_nonzero(a.mask)) + int(np.count_nonzero(b.mask)) - inter
    return inter, union


def iou_of(inter: int, union: int) -> float:
    """``inter / union``; NaN when the union is empty (nothing to measure)."""
    return float(inter) / float(union) if union > 0 else float("nan")


def miou(inters: Sequence[int], unions: Sequence[int]) -> Tuple[float, float]:
    """The paper's mIoU_I and mIoU_P over N instances.

    ``mIoU_I = mean(I_i / U_i)``, ``mIoU_P = sum(I_i) / sum(U_i)``. Instances
    whose union is 0 (both masks empty: nothing to measure) are left out of
    both. A ground-truth instance without a prediction enters with
    ``I = 0, U = area(gt)``, i.e. IoU 0.

    Args:
        inters: per-instance intersections (pixels)
        unions: per-instance unions (pixels)

    Returns:
        ``(mIoU_I, mIoU_P)`` as fractions in [0, 1]; ``(nan, nan)`` when there
        is no instance to measure
    """
    i = np.asarray(inters, dtype=np.float64).reshape(-1)
    u = np.asarray(unions, dtype=np.float64).reshape(-1)
    if i.shape != u.shape:
        raise ValueError("inters and unions differ in length: %d vs %d" % (i.size, u.size))
    if np.any(i < 0) or np.any(i > u):
        raise ValueError("need 0 <= intersection <= union for every instance")
    keep = u > 0
    if not keep.any():
        return float("nan"), float("nan")
    i, u = i[keep], u[keep]
    return float(np.mean(i / u)), float(i.sum() / u.sum())


def _boxes(masks: Sequence[InstanceMask]) -> np.ndarray:
    if not masks:
        return np.zeros((0, 4), dtype=np.int64)
    return np.array([m.box for m in masks], dtype=np.int64).reshape(-1, 4)


def pairwise_intersections(
    preds: Sequence[InstanceMask], gts: Sequence[InstanceMask]
) -> np.ndarray:
    """``(P, G)`` pixel intersections, computed only where the crops overlap."""
    out = np.zeros((len(preds), len(gts)), dtype=np.int64)
    if not len(preds) or not len(gts):
        return out
    pb, gb = _boxes(preds), _boxes(gts)
    ox = (np.minimum(pb[:, None, 2], gb[None, :, 2]) > np.maximum(pb[:, None, 0], gb[None, :, 0]))
    oy = (np.minimum(pb[:, None, 3], gb[None, :, 3]) > np.maximum(pb[:, None, 1], gb[None, :, 1]))
    for p, g in zip(*np.nonzero(ox & oy)):
        out[p, g] = mask_intersection(preds[p], gts[g])
    return out


def match_by_iou(
    preds: Sequence[InstanceMask], gts: Sequence[InstanceMask], min_iou: float = 0.0
) -> List[Match]:
    """One-to-one matching of predicted and ground-truth masks by mask IoU.

    Hungarian assignment maximising the total IoU over pairs whose IoU is
    above ``min_iou`` (pairs that do not overlap are never matched).

    Args:
        preds: predicted instance masks
        gts: ground-truth instance masks
        min_iou: a pair must have IoU strictly greater than this to match

    Returns:
        a list of ``(pred_index, gt_index, intersection, union)``:
        first one row per ground truth in ground-truth order (``pred_index``
        None when it is missed: ``intersection = 0``, ``union = its area``),
        then one row per unmatched prediction in prediction order
        (``gt_index`` None, ``union = its area``)
    """
    from scipy.optimize import linear_sum_assignment

    inter = pairwise_intersections(preds, gts)
    pa = np.array([int(np.count_nonzero(m.mask)) for m in preds], dtype=np.int64)
    ga = np.array([int(np.count_nonzero(m.mask)) for m in gts], dtype=np.int64)
    union = pa[:, None] + ga[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    gt_to_pred = {}
    if inter.size and (iou > min_iou).any():
        weights = np.where(iou > min_iou, iou, 0.0)
        rows, cols = linear_sum_assignment(weights, maximize=True)
        for p, g in zip(rows, cols):
            if iou[p, g] > min_iou and inter[p, g] > 0:
                gt_to_pred[int(g)] = int(p)
    out: List[Match] = []
    for g in range(len(gts)):
        p = gt_to_pred.get(g)
        if p is None:
            out.append((None, g, 0, int(ga[g])))
        else:
            out.append((p, g, int(inter[p, g]), int(union[p, g])))
    matched = set(gt_to_pred.values())
    for p in range(len(preds)):
        if p not in matched:
            out.append((p, None, 0, int(pa[p])))
    return out
