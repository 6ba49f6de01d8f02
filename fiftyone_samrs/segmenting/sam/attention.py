"""Fused attention for SAM's image encoder, and regional ``torch.compile``.

SAM's ``segment_anything.modeling.image_encoder.Attention`` materialises the
attention map: ``(q * scale) @ k^T`` (``B * heads`` maps of ``N x N``, N =
4096 tokens for the global blocks of a 1024x1024 image: 805 MB in fp32 for
ViT-B), adds the decomposed relative-position terms in another pass, takes
the softmax in a third and multiplies by ``v`` in a fourth.

:class:`FusedAttention` computes the same function with
``torch.nn.functional.scaled_dot_product_attention`` (SDPA), passing the
decomposed relative-position terms as its additive attention bias, as
segment-anything-fast does::

    bias[b, h, (qh, qw), (kh, kw)] = q[b, h, (qh, qw)] . Rh[qh, kh] + q[b, h, (qh, qw)] . Rw[qw, kw]
    out = softmax(q k^T / sqrt(d) + bias) v

where ``Rh``/``Rw`` are SAM's own ``get_rel_pos`` tables, dotted with the
unscaled ``q`` exactly as ``add_decomposed_rel_pos`` does. The fused kernel
(CPU flash attention; CUDA memory-efficient or cuDNN attention, which take a
bias) never writes the attention map and keeps the softmax in fp32
accumulators. It is the same function as SAM's to float rounding (tests:
fp32 ``allclose`` on windowed and global blocks of the tiny model and of a
ViT-B-sized block).

:func:`enable_fused_attention` switches a loaded ``Sam`` (or its
``ImageEncoderViT``) to it by changing the class of each block's ``attn``
module to :class:`FusedAttention`, a subclass with the same parameters: the
state dict, ``isinstance(attn, Attention)`` and checkpoints are unchanged,
and :func:`disable_fused_attention` switches back.

:func:`compile_encoder_blocks` compiles each transformer block with
``torch.compile`` (regional compilation: the blocks share their code, so
only one graph per block kind, windowed or global, is compiled, not the
whole 12-32 block encoder). :class:`GuardedEncoder` runs the compiled
encoder and falls back to the eager one, with a logged warning, where
compilation fails.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable, List, Optional, Tuple

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)


def _encoder_of(model):
    """The ``ImageEncoderViT`` of a ``Sam`` (or the encoder itself)."""
    enc = getattr(model, "image_encoder", model)
    if not hasattr(enc, "blocks"):
        raise TypeError("expected a segment_anything Sam or ImageEncoderViT, got %s"
                        % type(model).__name__)
    return enc


def _attention_class():
    from segment_anything.modeling.image_encoder import Attention

    return Attention


def decomposed_rel_pos_bias(
    q: torch.Tensor,
    rel_pos_h: torch.Tensor,
    rel_pos_w: torch.Tensor,
    q_size: Tuple[int, int],
    k_size: Tuple[int, int],
) -> torch.Tensor:
    """SAM's decomposed relative-position terms as an additive attention bias.

    The terms ``add_decomposed_rel_pos`` adds to the attention map, as a
    tensor to pass to SDPA's ``attn_mask``.

    Args:
        q: ``(B, heads, q_h * q_w, head_dim)`` queries (unscaled)
        rel_pos_h, rel_pos_w: the block's ``(2 * size - 1, head_dim)`` tables
        q_size, k_size: ``(h, w)`` token grids of the queries and keys

    Returns:
        ``(B, heads, q_h * q_w, k_h * k_w)`` bias, in ``q``'s dtype
    """
    from segment_anything.modeling.image_encoder import get_rel_pos

    q_h, q_w = q_size
    k_h, k_w = k_size
    b, heads, _, dim = q.shape
    rh = get_rel_pos(q_h, k_h, rel_pos_h)
    rw = get_rel_pos(q_w, k_w, rel_pos_w)
    r_q = q.reshape(b * heads, q_h, q_w, dim)
    rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, rh)
    rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, rw)
    bias = rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]
    return bias.reshape(b, heads, q_h * q_w, k_h * k_w).to(q.dtype)


def _make_fused_class():
    Attention = _attention_class()

    class FusedAttention(Attention):
        """SAM's encoder ``Attention`` through ``scaled_dot_product_attention``.

        The same parameters and function as its base class (see the module
        docstring); only ``forward`` differs.
        """

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, h, w, _ = x.shape
            heads = self.num_heads
            # (3, B, heads, N, head_dim), as SAM splits its qkv projection
            qkv = self.qkv(x).reshape(b, h * w, 3, heads, -1).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)
            bias: Optional[torch.Tensor] = None
            if self.use_rel_pos:
                bias = decomposed_rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, (h, w), (h, w))
            # SDPA's default scale is head_dim ** -0.5 = self.scale
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            out = out.view(b, heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
            return self.proj(out)

    FusedAttention.__module__ = __name__
    FusedAttention.__qualname__ = "FusedAttention"
    return FusedAttention


_FUSED = None


def fused_attention_class():
    """The :class:`FusedAttention` class (built on first use: it needs segment_anything)."""
    global _FUSED
    if _FUSED is None:
        _FUSED = _make_fused_class()
    return _FUSED


def __getattr__(name):  # ``from .attention import FusedAttention``
    if name == "FusedAttention":
        return fused_attention_class()
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def _attn_modules(model) -> List[torch.nn.Module]:
    return [blk.attn for blk in _encoder_of(model).blocks]


def enable_fused_attention(model) -> int:
    """Switches the image encoder's attention to :class:`FusedAttention`, in place.

    Args:
        model: a ``segment_anything.modeling.Sam`` or its ``ImageEncoderViT``

    Returns:
        the number of attention modules switched (0 when all already were)
    """
    fused = fused_attention_class()
    base = _attention_class()
    n = 0
    for attn in _attn_modules(model):
        if type(attn) is base:
            attn.__class__ = fused
            n += 1
        elif not isinstance(attn, fused):
            logger.warning("encoder attention of type %s left as it is", type(attn).__name__)
    return n


def disable_fused_attention(model) -> int:
    """Switches :class:`FusedAttention` modules back to SAM's ``Attention``.

    Returns:
        the number of modules switched back
    """
    fused = fused_attention_class()
    base = _attention_class()
    n = 0
    for attn in _attn_modules(model):
        if type(attn) is fused:
            attn.__class__ = base
            n += 1
    return n


def fused_attention_enabled(model) -> bool:
    """Whether every encoder block of ``model`` uses :class:`FusedAttention`."""
    fused = fused_attention_class()
    return all(isinstance(a, fused) for a in _attn_modules(model))


# -- compilation ---------------------------------------------------------------------


def compile_encoder_blocks(model, mode: Optional[str] = None, **kwargs) -> torch.nn.Module:
    """A copy-free compiled view of the image encoder (regional compilation).

    Each transformer block is wrapped by ``torch.compile``; the blocks share
    their code, so dynamo compiles one graph per block kind (windowed,
    global) and reuses it for the others. Parameters are the encoder's own
    (no copy); the encoder module itself is not changed.

    Args:
        model: a ``Sam`` or its ``ImageEncoderViT``
        mode: ``torch.compile``'s mode (None: default)
        **kwargs: passed to ``torch.compile``

    Returns:
        a module computing ``ImageEncoderViT.forward`` with compiled blocks
    """
    enc = _encoder_of(model)
    blocks = [torch.compile(blk, mode=mode, **kwargs) for blk in enc.blocks]
    return _RegionalEncoder(enc, blocks)


class _RegionalEncoder(torch.nn.Module):
    """``ImageEncoderViT.forward`` with its blocks replaced by compiled ones."""

    def __init__(self, encoder, blocks: Iterable[Callable]):
        super().__init__()
        # plain attributes, not submodules: the encoder stays owned by its Sam
        object.__setattr__(self, "encoder", encoder)
        object.__setattr__(self, "compiled_blocks", list(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc = self.encoder
        x = enc.patch_embed(x)
        if enc.pos_embed is not None:
            x = x + enc.pos_embed
        for blk in self.compiled_blocks:
            x = blk(x)
        return enc.neck(x.permute(0, 3, 1, 2))


class GuardedEncoder:
    """Runs a compiled encoder; on any failure, warns once and runs the eager one.

    Args:
        eager: the eager image encoder (``sam.image_encoder``)
        compiled: its compiled version (:func:`compile_encoder_blocks`)
    """

    def __init__(self, eager: Callable, compiled: Callable):
        self.eager = eager
        self.compiled: Optional[Callable] = compiled
        self.error: Optional[str] = None

    @property
    def active(self) -> bool:
        """Whether the compiled encoder is (still) in use."""
        return self.compiled is not None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.compiled is not None:
            try:
                return self.compiled(x)
            except Exception as e:
                self.error = "%s: %s" % (type(e).__name__, (str(e).strip().splitlines() or [""])[0][:300])
                logger.warning("torch.compile of the SAM image encoder failed (%s); "
                               "running it uncompiled", self.error)
                self.compiled = None
        return self.eager(x)
