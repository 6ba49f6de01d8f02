"""Mask agreement between two encoder precisions of one SAM (issue 16's bf16 rule).

The rule: bf16 may be the CPU default of ``dtype="auto"``
(:data:`fiftyone_samrs.segmenting.sam.models.CPU_BF16_AUTO`) only while the
masks of the bf16 encoder agree with those of the fp32 encoder to a mean
per-instance IoU of at least :data:`BF16_MIN_MEAN_IOU` (0.98) on a model
whose masks mean something (the small SAM trained on generated scenes,
``model="samrs-tiny"``), prompted with the boxes of generated scenes.

:func:`mask_agreement` takes any SAM and any scenes (:func:`mask_agreements`:
several prompts, each image encoded once per setting); :func:`generated_scenes`
makes the scenes (generated DOTA images with their boxes and rotated
boxes). ``benchmarks/bench_precision.py`` runs it from the command line and
``tests/test_precision.py`` uses it.

Example::

    from fiftyone_samrs.segmenting.sam.models import load_sam
    from fiftyone_samrs.testing.precision import generated_scenes, mask_agreement

    agreement = mask_agreement(load_sam("samrs-tiny"), generated_scenes())
    print(agreement.mean_iou, agreement.passes())
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

#: the mean per-instance IoU (fp32 vs bf16 masks) bf16 must reach to be a default
BF16_MIN_MEAN_IOU = 0.98


@dataclass
class Scene:
    """One image and its prompt objects (source pixels).

    Attributes:
        image: ``(H, W, 3)`` RGB uint8
        hboxes: ``(n, 4)`` xyxy boxes
        quads: ``(n, 4, 2)`` rotated boxes (NaN rows where none)
        name: where it came from
    """

    image: np.ndarray
    hboxes: np.ndarray
    quads: Optional[np.ndarray] = None
    name: str = ""


def generated_scenes(n_images: int = 3, n_objects: int = 30, size: Tuple[int, int] = (1024, 1024),
                     seed: int = 1616, version: str = "1.0") -> List[Scene]:
    """Generated aerial scenes (:func:`fiftyone_samrs.testing.synthetic.make_dota_tree`)
    with their objects' boxes.

    The default seed is not one the stand-in model is trained on (issue 13
    trains on its own seeds); pass another to measure other scenes.

    Args:
        n_images: images
        n_objects: objects per image
        size: ``(width, height)``
        seed: the generator's seed
        version: the DOTA class list to draw from
    """
    import cv2

    from fiftyone_samrs.testing.synthetic import make_dota_tree

    with tempfile.TemporaryDirectory(prefix="samrs-precision-") as root:
        gt = make_dota_tree(root, n_images=n_images, n_objects=n_objects, size=size,
                            version=version, seed=seed, gt_masks=False)
        scenes = []
        for im in gt["images"]:
            bgr = cv2.imread(im["filepath"], cv2.IMREAD_COLOR)
            if bgr is None:
                raise OSError("could not read %s" % im["filepath"])
            objs = im["objects"]
            hboxes = np.array([o["hbox"] for o in objs], dtype=np.float64).reshape(-1, 4)
            quads = np.array([o["quad"] for o in objs], dtype=np.float64).reshape(-1, 4, 2)
            scenes.append(Scene(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), hboxes, quads,
                                os.path.basename(im["filepath"])))
    return scenes


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks of one shape; 1.0 when both are empty."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError("masks of shapes %s and %s" % (a.shape, b.shape))
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


@dataclass
class Agreement:
    """Per-instance agreement of two encoder settings' masks.

    Attributes:
        reference: the reference setting (``"fp32, reference attention"``)
        candidate: the compared setting (``"bf16, fused attention"``)
        prompt: the prompt used
        ious: per-instance IoU of the two masks (over the prompt's region)
        images: images measured
        empty_flips: instances empty in one setting and not in the other
    """

    reference: str
    candidate: str
    prompt: str
    ious: np.ndarray
    images: int
    empty_flips: int = 0

    @property
    def instances(self) -> int:
        """Instances measured."""
        return int(self.ious.size)

    @property
    def mean_iou(self) -> float:
        """Mean per-instance IoU (the rule's figure)."""
        return float(self.ious.mean()) if self.ious.size else float("nan")

    @property
    def min_iou(self) -> float:
        """The worst instance."""
        return float(self.ious.min()) if self.ious.size else float("nan")

    def quantile(self, q: float) -> float:
        """A quantile of the per-instance IoU (``0.05``: the 5th percentile)."""
        return float(np.quantile(self.ious, q)) if self.ious.size else float("nan")

    def share_below(self, iou: float) -> float:
        """The share of instances whose IoU is below ``iou``."""
        return float((self.ious < iou).mean()) if self.ious.size else float("nan")

    def passes(self, threshold: float = BF16_MIN_MEAN_IOU) -> bool:
        """Whether the mean per-instance IoU reaches ``threshold``."""
        return self.ious.size > 0 and self.mean_iou >= threshold


def _setting(dtype, attention: str) -> str:
    return "%s, %s attention" % (dtype or "fp32", attention)


def mask_agreement(
    sam,
    scenes: Sequence[Scene],
    candidate: str = "bf16",
    reference: str = "fp32",
    prompt: str = "hbox",
    device=None,
    attention: str = "fused",
    reference_attention: str = "reference",
    margin: Optional[float] = 0.1,
) -> Agreement:
    """Per-instance IoU of the masks of two encoder settings of one SAM.

    Runs :class:`~fiftyone_samrs.segmenting.sam.engine.SamEngine` (fast
    decoder, region-only masks, uncompiled) twice over the scenes: with
    ``reference`` dtype and ``reference_attention``, then with ``candidate``
    and ``attention``. The default compares what ``dtype="auto"`` ships on a
    bf16 CPU (bf16, fused attention) with SAM as released (fp32, its own
    attention). The model's attention modules are left as they were found.

    Args:
        sam: any ``segment_anything.modeling.Sam``
        scenes: images and boxes (:func:`generated_scenes`, or your own)
        candidate, reference: encoder dtypes (``"bf16"``, ``"fp16"``, ``"fp32"``)
        prompt: the prompt built from each scene's boxes (``"hbox"``, ``"rhbox"``...)
        device: where to run (None: CUDA if any, else the CPU)
        attention, reference_attention: ``"fused"`` or ``"reference"``
        margin: the prompts' region margin (see ``build_prompts``)

    Returns:
        an :class:`Agreement`
    """
    return mask_agreements(sam, scenes, [prompt], candidate, reference, device, attention,
                           reference_attention, margin)[prompt]


def mask_agreements(
    sam,
    scenes: Sequence[Scene],
    prompts: Sequence[str] = ("hbox", "rbox_m"),
    candidate: str = "bf16",
    reference: str = "fp32",
    device=None,
    attention: str = "fused",
    reference_attention: str = "reference",
    margin: Optional[float] = 0.1,
) -> Dict[str, Agreement]:
    """:func:`mask_agreement` for several prompts, each image encoded once per setting.

    Returns:
        prompt -> :class:`Agreement`
    """
    from fiftyone_samrs.segmenting.prompts import build_prompts
    from fiftyone_samrs.segmenting.sam.attention import (
        disable_fused_attention,
        enable_fused_attention,
        fused_attention_enabled,
    )
    from fiftyone_samrs.segmenting.sam.engine import SamEngine

    was_fused = fused_attention_enabled(sam)
    built = {p: [build_prompts(s.hboxes, s.quads, p, s.image.shape[:2], margin=margin)
                 for s in scenes] for p in prompts}

    def masks(dtype, attn):
        engine = SamEngine(sam, device=device, dtype=dtype, attention=attn, compile=False,
                           encoder_batch=1)
        out = {p: [] for p in prompts}
        for i, s in enumerate(scenes):
            emb = engine.encode([s.image])[0]
            for p in prompts:
                out[p].append([r.mask for r in engine.decode(emb, built[p][i])])
        return out

    try:
        ref = masks(reference, reference_attention)
        cand = masks(candidate, attention)
    finally:
        (enable_fused_attention if was_fused else disable_fused_attention)(sam)
    result: Dict[str, Agreement] = {}
    for p in prompts:
        ious: List[float] = []
        flips = 0
        for ra, ca in zip(ref[p], cand[p]):
            for a, b in zip(ra, ca):
                if (a.x0, a.y0) != (b.x0, b.y0):
                    raise RuntimeError("the two runs gave masks over different regions")
                ious.append(mask_iou(a.mask, b.mask))
                flips += int(bool(a.mask.any()) != bool(b.mask.any()))
        result[p] = Agreement(_setting(reference, reference_attention),
                              _setting(candidate, attention), p,
                              np.asarray(ious, dtype=np.float64), len(scenes), flips)
    return result
