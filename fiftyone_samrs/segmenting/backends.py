"""What the pipeline runs: the backend protocol, its results, and the backends by name.

A *backend* turns images and their :class:`~fiftyone_samrs.segmenting.prompts.PromptSet`
into one :class:`MaskResult` per prompt (``predict_batch``). The SAM engine
(:mod:`fiftyone_samrs.segmenting.sam`) and the baselines
(:mod:`fiftyone_samrs.segmenting.baselines`) are registered in
:data:`BACKENDS`; :func:`make_backend` builds one by name. Importing this
module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Callable,
    Dict,
    List,
    Optional,
    Protocol,
    runtime_checkable,
)

import numpy as np

from fiftyone_samrs.core.records import InstanceMask

if TYPE_CHECKING:
    from fiftyone_samrs.segmenting.prompts import PromptSet


@dataclass
class MaskResult:
    """One predicted mask.

    Attributes:
        mask: the mask over the prompt's region (``InstanceMask``: bool crop
            whose origin is the region's top-left pixel)
        score: SAM's predicted IoU (the confidence)
        stability: SAM's stability score of the region's logits (offset 1.0;
            0.0 when no logit of the region exceeds -1); NaN where the
            backend has none (the baselines)
        empty: whether the mask has no pixel
        fallback: None, or what a backend gave instead of its own mask
            (``"box"``, ``"rbox"``: GrabCut's fallback, see
            :class:`~fiftyone_samrs.segmenting.baselines.GrabCutBackend`)
    """

    mask: InstanceMask
    score: float
    stability: float
    empty: bool
    fallback: Optional[str] = None


@runtime_checkable
class Backend(Protocol):
    """What the pipeline runs: images + prompt sets -> one MaskResult per prompt."""

    name: str

    def predict_batch(
        self, images: List[np.ndarray], prompts: List["PromptSet"]
    ) -> List[List[MaskResult]]:
        ...


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """An image as ``HxWx3`` RGB uint8 (gray and RGBA are converted).

    Raises:
        ValueError: for another dtype, shape, or an empty image
    """
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError("expected a uint8 image, got dtype %s" % img.dtype)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    elif img.ndim == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError("expected an HxWx3 RGB image, got shape %s" % (img.shape,))
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError("empty image of shape %s" % (img.shape,))
    return img


def _sam(model=None, checkpoint=None, device=None, dtype=None, **kw) -> Backend:
    from fiftyone_samrs.segmenting.sam.engine import SamEngine
    from fiftyone_samrs.segmenting.sam.models import load_sam

    return SamEngine(load_sam(model=model, checkpoint=checkpoint, device=device),
                     device=device, dtype=dtype, **kw)


def _sam2(model=None, checkpoint=None, device=None, dtype=None, config=None,
          apply_postprocessing=True, **kw) -> Backend:
    from fiftyone_samrs.segmenting.sam2.engine import Sam2Engine
    from fiftyone_samrs.segmenting.sam2.models import load_sam2

    return Sam2Engine(load_sam2(model=model, checkpoint=checkpoint, config=config, device=device,
                                apply_postprocessing=apply_postprocessing),
                      device=device, dtype=dtype, **kw)


def _sam_hq(model=None, checkpoint=None, device=None, dtype=None, **kw) -> Backend:
    from fiftyone_samrs.segmenting.sam_hq.engine import HqSamEngine
    from fiftyone_samrs.segmenting.sam_hq.models import load_sam_hq

    return HqSamEngine(load_sam_hq(model=model, checkpoint=checkpoint, device=device),
                       device=device, dtype=dtype, **kw)


def _grabcut(model=None, checkpoint=None, device=None, dtype=None, **kw) -> Backend:
    from fiftyone_samrs.segmenting.baselines import GrabCutBackend

    return GrabCutBackend(**kw)


def _boxfill(model=None, checkpoint=None, device=None, dtype=None, **kw) -> Backend:
    from fiftyone_samrs.segmenting.baselines import BoxFillBackend

    return BoxFillBackend(**kw)


#: the ``margin`` a backend runs with when ``segment`` is given none: SAM
#: computes whole masks (None), as the SAMRS release; the baselines work on the
#: box grown by 10% (GrabCut needs some surroundings, a filled box no more)
DEFAULT_MARGINS: Dict[str, Optional[float]] = {"sam": None, "sam2": None, "sam_hq": None,
                                                "grabcut": 0.1, "boxfill": 0.1}

#: backend name -> factory ``(model, checkpoint, device, dtype, **kw) -> Backend``
#: (module-level functions: a backend is rebuilt by name, e.g. in a worker process)
BACKENDS: Dict[str, Callable[..., Backend]] = {
    "sam": _sam,
    "sam2": _sam2,
    "sam_hq": _sam_hq,
    "grabcut": _grabcut,
    "boxfill": _boxfill,
}


def make_backend(
    name: str = "sam",
    model: Optional[str] = None,
    checkpoint: Optional[str] = None,
    device=None,
    dtype=None,
    **kw,
) -> Backend:
    """Builds a backend by name.

    Args:
        name: a key of :data:`BACKENDS`: ``"sam"`` (:func:`.sam.models.load_sam` +
            :class:`.sam.engine.SamEngine`), ``"sam2"`` (SAM 2 / 2.1:
            :func:`.sam2.models.load_sam2` + :class:`.sam2.engine.Sam2Engine`),
            ``"sam_hq"`` (HQ-SAM: :func:`.sam_hq.models.load_sam_hq` +
            :class:`.sam_hq.engine.HqSamEngine`), ``"grabcut"`` or ``"boxfill"``
            (:mod:`.baselines`)
        model, checkpoint: for the SAM backends: see their loaders
        device, dtype: for the SAM backends
        **kw: ``config`` and ``apply_postprocessing`` for ``"sam2"``'s loader;
            the rest is passed to the backend's constructor (e.g.
            ``encoder_batch``, ``decoder_chunk`` for the SAM backends,
            ``dynamic_multimask`` for SAM 2, ``hq_token_only`` for HQ-SAM;
            ``iterations`` for GrabCut)
    """
    key = (name or "sam").lower()
    if key not in BACKENDS:
        raise ValueError("unknown backend %r; use %s" % (name, ", ".join(BACKENDS)))
    return BACKENDS[key](model=model, checkpoint=checkpoint, device=device, dtype=dtype, **kw)
