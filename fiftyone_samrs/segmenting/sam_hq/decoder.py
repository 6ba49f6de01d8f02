"""HQ-SAM's mask decoder (``MaskDecoderHQ``, single-mask output) computed the fast, exact way.

``MaskDecoderHQ`` runs SAM's two-way transformer with one more output token
(the HQ token), then adds two mask logits: SAM's single-mask logits (first
mask token x the upscaled embedding) and the HQ logits (HQ token's MLP x
``embedding_maskfeature(upscaled) + hq_features``, where the per-image
``hq_features`` fuse the image embedding with an early ViT feature map);
``hq_token_only`` keeps the HQ logits alone. On top of
:class:`~fiftyone_samrs.segmenting.sam.decoder.FastMaskDecoder`:

1. The tokens are reordered as ``[iou, mask_0, hq, mask_1..3, prompt...]``
   (the transformer is equivariant in its tokens), so the final attention runs
   for the three tokens that are used.
2. ``hq_features`` are computed once per image, not once per prompt (the
   reference ``repeat``\\ s them per prompt).
3. Region-only upscaling as in SAM: ``embedding_maskfeature`` has two 3x3
   convolutions, so each prompt's window is grown by 2 low-res pixels (the
   receptive field), the upscaled embedding computed there, the two
   convolutions run with their own zero padding (exact wherever the grown
   window ends at the map's border, and 2 pixels clear of every other edge),
   and the window read back.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fiftyone_samrs.segmenting.sam.decoder import FastMaskDecoder, Window

#: low-res pixels of context the HQ branch's two 3x3 convolutions need
HALO = 2


class HqFastDecoder(FastMaskDecoder):
    """HQ-SAM's mask decoder (``multimask_output=False``), fast and exact.

    Args:
        sam: a ``segment_anything_hq.modeling.Sam`` (its decoder is a ``MaskDecoderHQ``)
        hq_token_only: return the HQ logits alone (the predictor's
            ``hq_token_only=True``); default: SAM's + HQ logits, the predictor's default
    """

    def __init__(self, sam, hq_token_only: bool = False):
        super().__init__(sam)
        md = sam.mask_decoder
        if not hasattr(md, "hf_token"):
            raise ValueError("not an HQ-SAM model: its mask decoder has no HQ token")
        w = md.mask_tokens.weight
        self.tokens = torch.cat([md.iou_token.weight, w[:1], md.hf_token.weight, w[1:]],
                                dim=0).detach()
        self.hf_mlp = md.hf_mlp
        self.maskfeature = md.embedding_maskfeature
        self.hq_token_only = bool(hq_token_only)
        #: the final attention runs for the IoU, first mask and HQ tokens
        self.final_tokens = 3

    # -- per image ----------------------------------------------------------------------

    def hq_features(self, features: torch.Tensor, interm: torch.Tensor) -> torch.Tensor:
        """``(1, C2, 256, 256)``: the decoder's per-image HQ features (saving 2)."""
        vit = interm.permute(0, 3, 1, 2).float()
        return self.md.embedding_encoder(features.float()) + self.md.compress_vit_feat(vit)

    # -- transformer ----------------------------------------------------------------------

    # -- output -------------------------------------------------------------------------

    def _upscaled_block(self, flat: torch.Tensor, rows: np.ndarray, g0, g1, h0, h1) -> torch.Tensor:
        """SAM's upscaled embedding ``(C2, 4gh, 4gw)`` over 64x64 pixels ``[g0:g1, h0:h1]``."""
        index = torch.from_numpy(rows).to(flat.device)
        feats = flat.index_select(0, index)
        y = torch.addmm(self.b1, feats, self.w1).reshape(-1, self.c1)
        u = y.mean(-1, keepdim=True)
        v = (y - u).pow(2).mean(-1, keepdim=True)
        y = (y - u) / torch.sqrt(v + self.ln_eps)
        y = F.gelu(self.ln_w * y + self.ln_b)
        y = F.gelu(torch.addmm(self.b2, y, self.w2))  # (M*4, 4*C2)
        gh, gw = g1 - g0, h1 - h0
        y = y.reshape(gh, gw, 2, 2, 2, 2, self.c2).permute(6, 0, 2, 4, 1, 3, 5)
        return y.reshape(self.c2, 4 * gh, 4 * gw)

    def _window(self, flat, i, p, w, grid, hyper0, hyper_hq, hq_feats):
        side = 4 * grid
        r0, r1, c0, c1 = w
        e0, e1 = max(r0 - HALO, 0), min(r1 + HALO, side)
        f0, f1 = max(c0 - HALO, 0), min(c1 + HALO, side)
        g0, g1 = e0 // 4, min((e1 + 3) // 4, grid)
        h0, h1 = f0 // 4, min((f1 + 3) // 4, grid)
        if g1 <= g0 or h1 <= h0:
            return None
        rows = (np.arange(g0, g1)[:, None] * grid + np.arange(h0, h1)[None, :]).ravel() + i * p
        up = self._upscaled_block(flat, rows, g0, g1, h0, h1)  # (C2, h, w)
        hq = self.maskfeature(up[None])[0] + hq_feats[0, :, 4 * g0 : 4 * g1, 4 * h0 : 4 * h1]
        logits = torch.einsum("chw,c->hw", hq, hyper_hq)
        if not self.hq_token_only:
            logits = torch.einsum("chw,c->hw", up, hyper0) + logits
        return logits, (4 * g0, 4 * h0)

    def decode(
        self,
        embedding,
        sparse: torch.Tensor,
        dense: Optional[torch.Tensor],
        windows: Sequence[Optional[Window]],
        image_pe: torch.Tensor,
    ):
        """IoU predictions and windowed low-res logits for N prompts of one image.

        Args:
            embedding: an :class:`~.engine.HqImageEmbedding` (``features``,
                ``interm``; its ``cache`` keeps the per-image tensors)
            sparse, dense, windows, image_pe: as
                :meth:`~fiftyone_samrs.segmenting.sam.decoder.FastMaskDecoder.decode`

        Returns:
            ``(iou (N,), [(logits, (row, col) offset) or None] * N)``
        """
        key = ("fast_hq", id(self))
        cache = embedding.cache.get(key)
        if cache is None:
            cache = self.image_cache(embedding.features.float(), image_pe)
            cache["hq"] = self.hq_features(embedding.features, embedding.interm)
            embedding.cache[key] = cache
        grid = int(embedding.features.shape[-1])
        ious, outs = [], []
        for s0 in range(0, sparse.shape[0], self.batch):
            s1 = s0 + self.batch
            d = None if dense is None else dense[s0:s1].float()
            tokens, keys = self.transformer(cache, sparse[s0:s1].float(), d)
            ious.append(self.md.iou_prediction_head(tokens[:, 0])[:, 0])
            hyper0 = self.hyper(tokens[:, 1])
            hyper_hq = self.hf_mlp(tokens[:, 2])
            n, p, c = keys.shape
            flat = keys.reshape(n * p, c)
            for i, w in enumerate(windows[s0:s1]):
                outs.append(None if w is None else
                            self._window(flat, i, p, w, grid, hyper0[i], hyper_hq[i], cache["hq"]))
            del keys, flat
        if not ious:
            return sparse.new_zeros((0,)), []
        return torch.cat(ious), outs

    def forward_full(self, features, image_pe, sparse, dense=None, interm=None):
        """Whole low-res logits and IoU ``(N, 1, 256, 256), (N, 1)``: for tests.

        Same outputs as ``MaskDecoderHQ(..., multimask_output=False,
        hq_token_only=self.hq_token_only, interm_embeddings=[interm])``.
        """
        emb = SimpleNamespace(features=features, interm=interm, cache={})
        grid = int(features.shape[-1])
        n = sparse.shape[0]
        iou, outs = self.decode(emb, sparse, dense, [(0, 4 * grid, 0, 4 * grid)] * n, image_pe)
        return torch.stack([o[0] for o in outs])[:, None], iou[:, None]


class HqReferenceDecoder:
    """HQ-SAM's own ``MaskDecoderHQ`` on the whole map, behind the fast decoder's interface."""

    def __init__(self, sam, hq_token_only: bool = False):
        self.sam = sam
        self.hq_token_only = bool(hq_token_only)

    def decode(self, embedding, sparse, dense, windows, image_pe):
        """As :meth:`HqFastDecoder.decode`, each prompt's logits over the whole map."""
        if dense is None:
            grid = embedding.features.shape[-1]
            dense = self.sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
                sparse.shape[0], -1, grid, grid)
        low, iou = self.sam.mask_decoder(
            image_embeddings=embedding.features, image_pe=image_pe,
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
            multimask_output=False, hq_token_only=self.hq_token_only,
            interm_embeddings=[embedding.interm])
        outs: List = [(low[i, 0], (0, 0)) if w is not None else None for i, w in enumerate(windows)]
        return iou[:, 0], outs
