"""SAM 2's mask decoder computed the fast, exact way (single-mask output).

SAM 2's ``MaskDecoder`` is SAM's with three additions, all handled here on
top of :class:`~fiftyone_samrs.segmenting.sam.decoder.FastMaskDecoder` (whose
two-way transformer is reused unchanged: SAM 2's has the same weights and
the same maths):

1. **An object-score token** before the IoU token (``pred_obj_scores``). The
   transformer is equivariant in its tokens (self-attention mixes them
   symmetrically, the cross-attentions treat each token on its own), so the
   tokens are reordered as ``[iou, mask_0..3, obj, prompt...]`` and the
   fast decoder's "first tokens" are the ones needed. The object score is not
   used by ``SAM2ImagePredictor`` and is not computed.
2. **High-resolution features** (``use_high_res_features``): the output
   upscaling adds the image's stride-8 and stride-4 features after each
   transposed convolution. Each 64x64 pixel still maps to its own 4x4 output
   block, so the region-only upscaling stays exact: the per-image features
   are regrouped once per image into the same per-pixel block layout and
   added block by block.
3. **Dynamic multimask fallback** (``dynamic_multimask_via_stability``, which
   ``build_sam2`` turns on): with ``multimask_output=False`` the decoder
   returns the single-mask output only if its stability over the WHOLE
   256x256 low-res map is at least the threshold, else the multimask output
   with the highest predicted IoU. That test needs the whole map, so with the
   fallback on, each prompt's whole low-res map is computed (still without
   the per-prompt copies of the image tensors and the full-size upsampling of
   the reference); without it, only the windows.

The IoU head ends with a sigmoid in SAM 2.1 (``iou_prediction_use_sigmoid``);
the module's own head is applied, so that follows.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from fiftyone_samrs.segmenting.sam.decoder import FastMaskDecoder, Window

Logits = Optional[Tuple[torch.Tensor, Tuple[int, int]]]


class Sam2FastDecoder(FastMaskDecoder):
    """SAM 2's ``sam_mask_decoder`` (``multimask_output=False``), fast and exact.

    Args:
        model: a ``sam2.modeling.sam2_base.SAM2Base``; the decoder reads its
            weights (rebuild it if the weights change or the model moves)
        dynamic_multimask: apply the dynamic multimask fallback; None: as the
            model's decoder is configured (what ``SAM2ImagePredictor`` does)
    """

    def __init__(self, model, dynamic_multimask: Optional[bool] = None):
        md = model.sam_mask_decoder
        super().__init__(SimpleNamespace(mask_decoder=md, prompt_encoder=model.sam_prompt_encoder))
        toks = [md.iou_token.weight, md.mask_tokens.weight]
        if md.pred_obj_scores:
            toks.append(md.obj_score_token.weight)  # last: equivariance (see module doc)
        self.tokens = torch.cat(toks, dim=0).detach()
        self.num_mask_tokens = int(md.num_mask_tokens)
        self.dynamic = (bool(md.dynamic_multimask_via_stability) if dynamic_multimask is None
                        else bool(dynamic_multimask))
        self.stability_delta = float(md.dynamic_multimask_stability_delta)
        self.stability_thresh = float(md.dynamic_multimask_stability_thresh)
        self.high_res = bool(md.use_high_res_features)
        self.hypers = list(md.output_hypernetworks_mlps)
        #: output tokens that the final attention runs for: the IoU token
        #: and the single-mask token, or all mask tokens for the fallback
        self.final_tokens = 1 + self.num_mask_tokens if self.dynamic else 2
        #: 64x64 pixels per piece of a whole-map upscaling (fits a CPU cache)
        self.full_rows = 512 if self.tokens.device.type == "cpu" else 4096

    # -- per image ----------------------------------------------------------------------

    def high_res_cache(self, high_res: Sequence[torch.Tensor], grid: int) -> Dict[str, torch.Tensor]:
        """The stride-4 / stride-8 features regrouped per 64x64 pixel (saving 2).

        ``s1``: ``(P, 4, C1)`` in ``[i, j]`` order, ``s0``: ``(P, 16, C2)`` in
        ``[i, j, i2, j2]`` order: the layout of the upscaling's outputs.
        """
        if not self.high_res:
            return {}
        feat_s0, feat_s1 = high_res
        c1, c2 = feat_s1.shape[1], feat_s0.shape[1]
        s1 = feat_s1[0].float().reshape(c1, grid, 2, grid, 2).permute(1, 3, 2, 4, 0)
        s0 = feat_s0[0].float().reshape(c2, grid, 2, 2, grid, 2, 2).permute(1, 4, 2, 5, 3, 6, 0)
        return {"s1": s1.reshape(grid * grid, 4, c1).contiguous(),
                "s0": s0.reshape(grid * grid, 16, c2).contiguous()}

    # -- transformer ----------------------------------------------------------------------

    # -- output -------------------------------------------------------------------------

    def _upscaled(self, feats: torch.Tensor, s1: Optional[torch.Tensor],
                  s0: Optional[torch.Tensor]) -> torch.Tensor:
        """Upscaled embedding ``(M, 16, C2)`` of M 64x64-pixel rows.

        Args:
            feats: ``(M, C)`` transformer image output at those pixels
            s1, s0: the high-res features of those pixels (``(M, 4, C1)``,
                ``(M, 16, C2)``; see :meth:`high_res_cache`), or None
        """
        y = torch.addmm(self.b1, feats, self.w1).reshape(-1, 4, self.c1)
        if s1 is not None:
            y = y + s1
        y = y.reshape(-1, self.c1)
        u = y.mean(-1, keepdim=True)
        v = (y - u).pow(2).mean(-1, keepdim=True)
        y = (y - u) / torch.sqrt(v + self.ln_eps)
        y = F.gelu(self.ln_w * y + self.ln_b)
        y = torch.addmm(self.b2, y, self.w2).reshape(-1, 16, self.c2)
        if s0 is not None:
            y = y + s0
        return F.gelu(y)

    def _window_logits(self, keys, hyper, windows, hr, grid) -> List[Logits]:
        """Low-res logits of each prompt's window (``hyper``: ``(N, C2)``)."""
        n, p, c = keys.shape
        flat = keys.reshape(n * p, c)
        out: List[Logits] = [None] * n
        idx, pixs, owners, spans = [], [], [], []
        total = 0
        for i, w in enumerate(windows):
            if w is None:
                continue
            r0, r1, c0, c1 = w
            g0, g1 = r0 // 4, min((r1 + 3) // 4, grid)
            h0, h1 = c0 // 4, min((c1 + 3) // 4, grid)
            if g1 <= g0 or h1 <= h0:
                continue
            pix = (np.arange(g0, g1)[:, None] * grid + np.arange(h0, h1)[None, :]).ravel()
            idx.append(pix + i * p)
            pixs.append(pix)
            owners.append(np.full(pix.size, i))
            spans.append((total, total + pix.size, g1 - g0, h1 - h0, g0, h0, i))
            total += pix.size
        if total == 0:
            return out
        dev = keys.device
        index = torch.from_numpy(np.concatenate(idx)).to(dev)
        pix = torch.from_numpy(np.concatenate(pixs)).to(dev)
        owner = torch.from_numpy(np.concatenate(owners)).to(dev)
        logits = torch.empty(total, 16, dtype=keys.dtype, device=dev)
        for s0 in range(0, total, self.upscale_rows):
            s1 = min(s0 + self.upscale_rows, total)
            rows = pix[s0:s1]
            y = self._upscaled(flat.index_select(0, index[s0:s1]),
                               hr["s1"].index_select(0, rows) if hr else None,
                               hr["s0"].index_select(0, rows) if hr else None)
            logits[s0:s1] = torch.einsum("mkc,mc->mk", y, hyper.index_select(0, owner[s0:s1]))
        for a0, a1, gh, gw, g0, h0, i in spans:
            blk = logits[a0:a1].reshape(gh, gw, 2, 2, 2, 2).permute(0, 2, 4, 1, 3, 5)
            out[i] = (blk.reshape(4 * gh, 4 * gw), (4 * g0, 4 * h0))
        return out

    def _full_logits(self, keys, tokens, iou_all, hr, grid):
        """Whole low-res maps with the dynamic multimask fallback.

        Every mask token's logits are taken in the same pass over the upscaled
        embedding (a few multiply-adds per pixel more than the single mask),
        ``full_rows`` 64x64 pixels at a time (cache-sized pieces).

        Returns:
            ``(iou (N,), logits (N, 4*grid, 4*grid))``
        """
        n, p, c = keys.shape
        k = self.num_mask_tokens
        # hypernetwork of every mask token: (N, K, C2)
        hyper = torch.stack([self.hypers[j](tokens[:, 1 + j]) for j in range(k)], dim=1)
        s1, s0 = hr.get("s1"), hr.get("s0")
        logits = torch.empty(n, k, p, 16, dtype=keys.dtype, device=keys.device)
        step = self.full_rows
        for i in range(n):
            for a in range(0, p, step):
                b = min(a + step, p)
                y = self._upscaled(keys[i, a:b], None if s1 is None else s1[a:b],
                                   None if s0 is None else s0[a:b])  # (m, 16, C2)
                # (m, 16, C2) @ (C2, K) as a batched matmul: a (M, C2) @ (C2, 4)
                # matmul takes a very slow path in CPU BLAS
                logits[i, :, a:b] = torch.matmul(y, hyper[i].T).permute(2, 0, 1)
        full = logits.reshape(n, k, grid, grid, 2, 2, 2, 2).permute(0, 1, 2, 4, 6, 3, 5, 7)
        full = full.reshape(n, k, 4 * grid, 4 * grid)
        # MaskDecoder._get_stability_scores / _dynamic_multimask_via_stability
        single = full[:, 0].flatten(-2)
        area_i = torch.sum(single > self.stability_delta, dim=-1).float()
        area_u = torch.sum(single > -self.stability_delta, dim=-1).float()
        stability = torch.where(area_u > 0, area_i / area_u, 1.0)
        stable = stability >= self.stability_thresh
        best = 1 + torch.argmax(iou_all[:, 1:], dim=-1)
        rows = torch.arange(n, device=keys.device)
        iou = torch.where(stable, iou_all[:, 0], iou_all[rows, best])
        chosen = torch.where(stable[:, None, None], full[:, 0], full[rows, best])
        return iou, chosen

    def decode(
        self,
        embedding,
        sparse: torch.Tensor,
        dense: Optional[torch.Tensor],
        windows: Sequence[Optional[Window]],
        image_pe: torch.Tensor,
    ):
        """IoU predictions and low-res logits for N prompts of one image.

        Args:
            embedding: a :class:`~.engine.Sam2Embedding` (``features``,
                ``high_res``; its ``cache`` keeps the per-image tensors)
            sparse: ``(N, S, C)`` sparse prompt embeddings
            dense: ``(N, C, 64, 64)`` mask-prompt embeddings, or None
            windows: per prompt the low-res window needed, or None
            image_pe: ``(1, C, 64, 64)`` dense positional encoding

        Returns:
            ``(iou (N,), [(logits, (row, col) offset) or None] * N)``; with the
            fallback on, each prompt's logits are its whole low-res map
        """
        key = ("fast2", id(self))
        cache = embedding.cache.get(key)
        grid = int(embedding.features.shape[-1])
        if cache is None:
            cache = self.image_cache(embedding.features.float(), image_pe)
            cache["hr"] = self.high_res_cache(embedding.high_res, grid)
            embedding.cache[key] = cache
        ious, outs = [], []
        for s0 in range(0, sparse.shape[0], self.batch):
            s1 = s0 + self.batch
            d = None if dense is None else dense[s0:s1].float()
            tokens, keys = self.transformer(cache, sparse[s0:s1].float(), d)
            iou_all = self.md.iou_prediction_head(tokens[:, 0])
            if self.dynamic:
                iou, full = self._full_logits(keys, tokens, iou_all, cache["hr"], grid)
                ious.append(iou)
                outs.extend((full[i], (0, 0)) if w is not None else None
                            for i, w in enumerate(windows[s0:s1]))
            else:
                ious.append(iou_all[:, 0])
                hyper = self.hypers[0](tokens[:, 1])
                outs.extend(self._window_logits(keys, hyper, windows[s0:s1], cache["hr"], grid))
            del keys
        if not ious:
            return sparse.new_zeros((0,)), []
        return torch.cat(ious), outs

    def forward_full(self, features, image_pe, sparse, dense=None, high_res=None):
        """Whole low-res logits and IoU ``(N, 1, 256, 256), (N, 1)``: for tests.

        Same outputs as ``sam_mask_decoder(..., multimask_output=False,
        repeat_image=True, high_res_features=high_res)``.
        """
        emb = SimpleNamespace(features=features, high_res=high_res, cache={})
        grid = int(features.shape[-1])
        n = sparse.shape[0]
        iou, outs = self.decode(emb, sparse, dense, [(0, 4 * grid, 0, 4 * grid)] * n, image_pe)
        return torch.stack([o[0] for o in outs])[:, None], iou[:, None]
