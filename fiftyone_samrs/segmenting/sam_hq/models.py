"""Loading HQ-SAM models (``segment-anything-hq``): checkpoints and a tiny test model.

HQ-SAM keeps SAM's ViT image encoder, prompt encoder and two-way transformer
and adds an HQ output token and a fusion of an early ViT feature map to the
mask decoder (``MaskDecoderHQ``). Its checkpoints (``sam_hq_vit_b.pth``,
``sam_hq_vit_l.pth``, ``sam_hq_vit_h.pth``) hold SAM's state dict plus the HQ
parameters, so the architecture is read from the tensor shapes as for SAM
(:func:`fiftyone_samrs.segmenting.sam.models.config_from_state_dict`).
FiftyOne's zoo has no HQ-SAM: give a checkpoint path, or put the file in
``FIFTYONE_MODEL_ZOO_DIR`` under its released name. The light HQ-SAM
(``vit_tiny``, a TinyViT encoder) is not supported.
"""

from __future__ import annotations

import logging
import os
from typing import Dict, Optional

import torch

from fiftyone_samrs.segmenting.sam.models import (
    SamConfig,
    build_sam_from_config,
    build_tiny_sam,
    find_zoo_checkpoint,
    load_checked_state,
    read_state_dict,
    resolve_device,
)

logger = logging.getLogger(__name__)

#: model type -> released checkpoint file name
SAM_HQ_CHECKPOINT_FILES: Dict[str, str] = {
    "vit_b": "sam_hq_vit_b.pth",
    "vit_l": "sam_hq_vit_l.pth",
    "vit_h": "sam_hq_vit_h.pth",
}

#: where the released checkpoints are published
SAM_HQ_CHECKPOINT_URL = "https://huggingface.co/lkeab/hq-sam/tree/main"

_HQ_KEY = "mask_decoder.hf_token.weight"


def _require_sam_hq():
    try:
        import segment_anything_hq
    except ImportError as e:
        raise ImportError(
            "backend 'sam_hq' needs the segment-anything-hq package: "
            "pip install 'fiftyone-samrs[sam_hq]' (or pip install segment-anything-hq)") from e
    return segment_anything_hq


def build_sam_hq_from_config(cfg: SamConfig):
    """A randomly initialised HQ-SAM ``Sam`` with the given architecture (eval mode)."""
    _require_sam_hq()
    return build_sam_from_config(cfg, hq=True)


def build_tiny_sam_hq(seed: int = 0, encoder_dim: int = 32, depth: int = 2):
    """A deterministic random tiny HQ-SAM (eval mode, CPU) for tests and demos.

    As :func:`fiftyone_samrs.segmenting.sam.tiny.build_tiny_sam`: a small ViT
    encoder, the real prompt encoder and (HQ) mask decoder sizes, initialised
    so that masks are neither empty nor full.
    """
    _require_sam_hq()
    return build_tiny_sam(seed, encoder_dim, depth, hq=True)


def save_tiny_sam_hq_checkpoint(path, seed: int = 0) -> str:
    """Writes the tiny HQ-SAM's state dict to ``path`` and returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save(build_tiny_sam_hq(seed).state_dict(), path)
    return path


def find_sam_hq_checkpoint(model: str) -> str:
    """The released checkpoint of ``vit_b``/``vit_l``/``vit_h`` in the zoo folder.

    Raises:
        ModelNotFoundError: with where to get and put the file
        ValueError: unknown model name
    """
    model_type = str(model).lower().replace("sam_hq_", "")
    if model_type not in SAM_HQ_CHECKPOINT_FILES:
        raise ValueError("unknown HQ-SAM model %r; use vit_b, vit_l, vit_h, 'tiny', or pass "
                         "checkpoint=PATH" % (model,))
    return find_zoo_checkpoint(SAM_HQ_CHECKPOINT_FILES[model_type], family="HQ-SAM",
                               model=model_type, url=SAM_HQ_CHECKPOINT_URL,
                               more="FiftyOne's zoo has no HQ-SAM.")


def load_sam_hq(
    model: Optional[str] = None,
    checkpoint: Optional[str] = None,
    device=None,
):
    """Loads an HQ-SAM model, in eval mode, on ``device``.

    Args:
        model: ``"vit_b"``, ``"vit_l"``, ``"vit_h"`` (the released file in the
            zoo folder), ``"tiny"`` (random, for tests), or None (the checkpoint decides)
        checkpoint: a local ``.pth`` state dict of HQ-SAM
        device: None/"auto", or a device

    Returns:
        a ``segment_anything_hq.modeling.Sam``

    Raises:
        ImportError: ``segment-anything-hq`` is missing (says how to install it)
        ModelNotFoundError: no checkpoint; says where to get one
        ValueError: a checkpoint that is no HQ-SAM's, or does not match ``model``
    """
    _require_sam_hq()
    dev = resolve_device(device)
    if model is not None and str(model).lower() == "tiny" and checkpoint is None:
        return build_tiny_sam_hq().to(dev)
    if checkpoint is None:
        if model is None:
            raise ValueError("load_sam_hq needs a model name (vit_b, vit_l, vit_h, tiny) or "
                             "checkpoint=PATH; the released checkpoints: %s" % SAM_HQ_CHECKPOINT_URL)
        checkpoint = find_sam_hq_checkpoint(model)
    sd = read_state_dict(checkpoint)
    if _HQ_KEY not in sd:
        raise ValueError("%s: not an HQ-SAM checkpoint (no %s); a plain SAM checkpoint runs with "
                         "backend='sam'" % (checkpoint, _HQ_KEY))
    want = None if model is None else str(model).lower().replace("sam_hq_", "")
    sam, cfg = load_checked_state(checkpoint, sd, want, hq=True)
    logger.info("loaded HQ-SAM %s from %s", cfg.model_type, checkpoint)
    return sam.to(dev).eval()
