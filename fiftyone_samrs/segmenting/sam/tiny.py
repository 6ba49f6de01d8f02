"""Tiny (and official-size) randomly initialised Segment Anything models for tests, demos and benchmarks.

SAM weights cannot be downloaded everywhere (CI, air-gapped machines), so
tests and the demo build this model from the ``segment_anything.modeling``
classes: a small image encoder (width 32, 2 blocks) but the REAL prompt
encoder and mask decoder sizes (transformer width 256, depth 2, 8 heads), so
the fast decoder is checked against exactly the production decoder. It
accepts 1024x1024 inputs (64x64 embedding) and runs in about a second per
image on a CPU. Its masks mean nothing, but they are not trivial: the
initialisation is seeded and scaled so that logits cross 0 and masks cover
part of each box (neither empty nor full), which keeps exactness tests
meaningful.
"""

from __future__ import annotations

import os

import torch

# tiny_config and build_tiny_sam live in .models (load_sam("tiny") builds it)
from fiftyone_samrs.segmenting.sam.models import (  # noqa: F401 - their paths here
    build_sam_from_config,
    build_tiny_sam,
    official_config,
    tiny_config,
)


def save_tiny_checkpoint(path, seed: int = 0) -> str:
    """Writes the tiny SAM's state dict to ``path`` (a ``.pth``) and returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save(build_tiny_sam(seed).state_dict(), path)
    return path


def build_random_sam(model_type: str = "vit_b", seed: int = 0, device=None):
    """A randomly initialised official-architecture SAM (``vit_b``/``vit_l``/``vit_h``), or the tiny one.

    For benchmarks and speed checks where no weights can be had. SAM
    initialises the encoder's relative-position tables to zero; here they get
    small random values, so that the attention bias is not trivially zero.

    Args:
        model_type: ``"vit_b"``, ``"vit_l"``, ``"vit_h"`` or ``"tiny"``
        seed: the random seed
        device: where to build it (None: the CPU); building a ViT-H on the
            GPU is much faster than on the CPU (its weights then differ from
            a CPU-built one: each device has its own random stream)

    Returns:
        a ``segment_anything.modeling.Sam`` in eval mode
    """
    if model_type == "tiny":
        sam = build_tiny_sam(seed)
        return sam if device is None else sam.to(device)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        with dev:
            sam = build_sam_from_config(official_config(model_type))
        sam.to(dev)  # buffers made by legacy constructors may have stayed on the CPU
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for blk in sam.image_encoder.blocks:
                if getattr(blk.attn, "use_rel_pos", False):
                    for rel in (blk.attn.rel_pos_h, blk.attn.rel_pos_w):
                        rel.copy_(torch.randn(rel.shape, generator=g) * 0.02)
    return sam.eval()
