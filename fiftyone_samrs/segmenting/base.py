"""The engine contract: everything the pipeline and the prompt study call on
a backend, declared once, with its defaults.

A backend subclasses :class:`Engine` and overrides what differs: a model-free
baseline only ``predict_batch`` (and ``name``, ``default_margin``); the SAM
engines also ``preprocess`` (in the loader threads), ``predict_batches`` (the
next batch's encoder pass overlapping this batch's decoding), ``encode`` /
``decode`` (one encoding per image serves many prompt sets), ``describe`` and
``settings``. An object that does not subclass it (an engine written against
0.2.0's duck-typed contract) is wrapped by :func:`as_engine`, the one place
that looks for the optional members.

Importing this module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

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


class Engine:
    """What the pipeline runs: images + prompt sets -> one :class:`MaskResult`
    per prompt. Subclass it and override :meth:`predict_batch`; every other
    member has a default.

    Attributes:
        name: the backend name recorded with a run
        default_margin: the ``margin`` a run uses when it is given none
            (None: whole masks, as SAM)
        mask_frame: the frame mask prompts are built in (``"sam"``: SAM's
            resized frame; ``"square"``: SAM 2's)
        encodes: whether :meth:`encode` / :meth:`decode` exist (the prompt
            study then encodes each image once for all its configurations)
        mask_prompts: whether it reads the prompts' mask inputs (SAM's
            low-resolution mask prompts); False spares building them (the
            baselines)
    """

    name: str = "engine"
    default_margin: Optional[float] = None
    mask_frame: str = "sam"
    encodes: bool = False
    mask_prompts: bool = True

    def preprocess(self, image: np.ndarray) -> Any:
        """Work done in the loader threads on each image (SAM: resize and
        normalise); its result is what :meth:`predict_batch` receives."""
        return image

    def predict_batch(self, images: List[Any], prompts: List["PromptSet"]
                      ) -> List[List[MaskResult]]:
        """One list of :class:`MaskResult` per image, one per prompt."""
        raise NotImplementedError("%s must implement predict_batch" % type(self).__name__)

    def predict_batches(self, batches: Iterable[Tuple[Sequence[Any], Sequence["PromptSet"]]]
                        ) -> Iterator[List[List[MaskResult]]]:
        """:meth:`predict_batch` over a stream of ``(images, prompt sets)``
        batches, in order (the SAM engine overlaps the next encoder pass)."""
        for images, prompts in batches:
            yield self.predict_batch(list(images), list(prompts)) if len(images) else []

    def encode(self, images: Sequence[Any]) -> List[Any]:
        """Image embeddings, for :meth:`decode` (engines with ``encodes``)."""
        raise NotImplementedError("%s does not encode images" % self.name)

    def decode(self, embedding: Any, prompts: "PromptSet") -> List[MaskResult]:
        """The masks of one prompt set on one embedding (engines with ``encodes``)."""
        raise NotImplementedError("%s does not decode embeddings" % self.name)

    def describe(self) -> Optional[str]:
        """The engine's settings as one line for summaries, or None."""
        return None

    def settings(self) -> Optional[Dict[str, Any]]:
        """The engine's settings for the run record, or None."""
        return None


class _Adapter(Engine):
    """An object with 0.2.0's duck-typed contract, as an :class:`Engine`."""

    def __init__(self, obj: Any):
        self.obj = obj
        self.name = getattr(obj, "name", type(obj).__name__)
        self.default_margin = getattr(obj, "default_margin", None)
        self.mask_frame = getattr(obj, "mask_frame", "sam")
        self.encodes = callable(getattr(obj, "encode", None)) and callable(
            getattr(obj, "decode", None))

    def _optional(self, member: str):
        fn = getattr(self.obj, member, None)
        return fn if callable(fn) else None

    def preprocess(self, image):
        fn = self._optional("preprocess")
        return fn(image) if fn else image

    def predict_batch(self, images, prompts):
        return self.obj.predict_batch(images, prompts)

    def predict_batches(self, batches):
        fn = self._optional("predict_batches")
        return fn(batches) if fn else super().predict_batches(batches)

    def encode(self, images):
        return self.obj.encode(images)

    def decode(self, embedding, prompts):
        return self.obj.decode(embedding, prompts)

    def describe(self):
        fn = self._optional("describe")
        return fn() if fn else None

    def settings(self):
        fn = self._optional("settings")
        return fn() if fn else None


def as_engine(obj: Any) -> Optional[Engine]:
    """``obj`` as an :class:`Engine` (itself when it is one; None stays None).

    Raises:
        TypeError: for an object without ``predict_batch``
    """
    if obj is None or isinstance(obj, Engine):
        return obj
    if not callable(getattr(obj, "predict_batch", None)):
        raise TypeError("engine=%r has no predict_batch(images, prompts); subclass "
                        "fiftyone_samrs.segmenting.base.Engine" % (obj,))
    return _Adapter(obj)


__all__ = ["Engine", "MaskResult", "as_engine", "as_rgb_uint8"]
