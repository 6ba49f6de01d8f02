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
from functools import partial
from typing import Dict, Optional

import torch

from fiftyone_samrs.segmenting.sam.models import (
    ModelNotFoundError,
    SamConfig,
    _zoo_dir,
    config_from_state_dict,
    read_state_dict,
    resolve_device,
)
from fiftyone_samrs.segmenting.sam.tiny import tiny_config

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
    from segment_anything_hq.modeling import (
        ImageEncoderViT,
        MaskDecoderHQ,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    grid = cfg.img_size // cfg.patch_size
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=cfg.depth,
            embed_dim=cfg.embed_dim,
            img_size=cfg.img_size,
            mlp_ratio=cfg.mlp_ratio,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=cfg.num_heads,
            patch_size=cfg.patch_size,
            qkv_bias=cfg.qkv_bias,
            use_rel_pos=cfg.use_rel_pos,
            global_attn_indexes=tuple(cfg.global_attn_indexes),
            window_size=cfg.window_size,
            out_chans=cfg.prompt_embed_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=cfg.prompt_embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(cfg.img_size, cfg.img_size),
            mask_in_chans=cfg.mask_in_chans,
        ),
        mask_decoder=MaskDecoderHQ(
            num_multimask_outputs=cfg.num_multimask_outputs,
            transformer=TwoWayTransformer(
                depth=cfg.decoder_depth,
                embedding_dim=cfg.prompt_embed_dim,
                mlp_dim=cfg.decoder_mlp_dim,
                num_heads=cfg.decoder_heads,
            ),
            transformer_dim=cfg.prompt_embed_dim,
            iou_head_depth=cfg.iou_head_depth,
            iou_head_hidden_dim=cfg.iou_head_hidden_dim,
            vit_dim=cfg.embed_dim,
        ),
        pixel_mean=list(cfg.pixel_mean),
        pixel_std=list(cfg.pixel_std),
    )
    return sam.eval()


def build_tiny_sam_hq(seed: int = 0, encoder_dim: int = 32, depth: int = 2):
    """A deterministic random tiny HQ-SAM (eval mode, CPU) for tests and demos.

    As :func:`fiftyone_samrs.segmenting.sam.tiny.build_tiny_sam`: a small ViT
    encoder, the real prompt encoder and (HQ) mask decoder sizes, initialised
    so that masks are neither empty nor full.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = build_sam_hq_from_config(tiny_config(encoder_dim, depth))
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            enc = sam.image_encoder
            for blk in enc.blocks:
                if getattr(blk.attn, "use_rel_pos", False):
                    blk.attn.rel_pos_h.normal_(0.0, 0.02, generator=g)
                    blk.attn.rel_pos_w.normal_(0.0, 0.02, generator=g)
            enc.pos_embed.normal_(0.0, 0.02, generator=g)
            dec = sam.mask_decoder
            for mlp in (dec.output_hypernetworks_mlps[0], dec.hf_mlp):
                mlp.layers[-1].weight.mul_(4.0)
                mlp.layers[-1].bias.zero_()
    return sam.eval()


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
    fname = SAM_HQ_CHECKPOINT_FILES[model_type]
    path = os.path.join(_zoo_dir(), fname)
    if os.path.isfile(path):
        return path
    raise ModelNotFoundError(
        "no HQ-SAM checkpoint for %r.\nLooked for: %s\nFiftyOne's zoo has no HQ-SAM: download "
        "%s from %s and pass it with checkpoint=PATH (CLI: --checkpoint PATH), or put it at %s."
        % (model, path, fname, SAM_HQ_CHECKPOINT_URL, path))


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
    cfg = config_from_state_dict(sd, source=str(checkpoint))
    if model is not None and str(model).lower() != "tiny":
        want = str(model).lower().replace("sam_hq_", "")
        if want in SAM_HQ_CHECKPOINT_FILES and cfg.model_type != want:
            raise ValueError("%s: checkpoint is a %s model, not %s" % (checkpoint, cfg.model_type,
                                                                     want))
    sam = build_sam_hq_from_config(cfg)
    try:
        sam.load_state_dict(sd)
    except RuntimeError as e:
        raise ValueError("%s: state dict does not fit the HQ-SAM architecture read from it: %s"
                         % (checkpoint, str(e).splitlines()[0])) from e
    logger.info("loaded HQ-SAM %s from %s", cfg.model_type, checkpoint)
    return sam.to(dev).eval()
