"""A fast mask decoder, exact w.r.t. SAM's ``MaskDecoder`` (``multimask_output=False``).

It runs the same computation as ``MaskDecoder.forward`` + ``TwoWayTransformer``
with the weights of a real ``Sam`` (same state dict, no retraining), reordered
so that most of the per-prompt work disappears. With P = 64x64 image
positions, C = 256 channels, I = 128 attention channels, H = 8 heads and
T = 5 + S tokens (S = 2 for a box), the reference costs about 4.5 P*C*I
multiply-adds per prompt in each transformer block plus the output
upscaling of the whole 256x256 map. Here:

1. **Per-image projections** (block 1): with box/point prompts the dense
   prompt embedding is the no-mask embedding, the same for every prompt, so
   the first block's image-side projections (token-to-image keys and values,
   image-to-token queries) are computed once per image, not per prompt.
2. **Region-only upscaling**: the output upscaling (ConvTranspose 2x2
   stride 2, LayerNorm2d, GELU, ConvTranspose, GELU) maps each 64x64 input
   pixel to its own 4x4 output block, so only the 64x64 pixels under each
   prompt's region are upscaled, and the hypernetwork product (only for the
   first mask token: ``multimask_output=False``) is taken only there.
3. **Output projection before mixing** (image-to-token attention): every
   image position attends to only T tokens, so ``out_proj`` is applied to the
   H*T per-head value vectors first and the attention weights mix the
   results (H*T*C instead of I*C per position).
4. **Absorbed projections** (every other image-side projection): the
   token-to-image keys ``k_proj(x)`` and the image-to-token queries
   ``q_proj(x)`` are never formed: the few token-side vectors are multiplied
   into the weight matrices instead (``q . Wk x = (Wk^T q) . x``; the key
   bias only shifts each softmax row and is dropped), and token-to-image
   values are ``(attn @ x) Wv^T + bv`` (attention rows sum to 1). Each
   costs H*T*C per position instead of C*I.
5. **Final attention for two tokens**: only the IoU token and the first mask
   token are used, so the final token-to-image attention runs for 2 queries.
6. No ``repeat_interleave`` of the image embedding or positional encoding
   per prompt: they broadcast.

The results equal the reference up to float rounding (the tests check the
low-res logits and IoU predictions with ``allclose`` and the masks by IoU).
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

Window = Tuple[int, int, int, int]  # low-res (r0, r1, c0, c1)


class _Heads:
    """An ``Attention`` module's weights split per head (a snapshot of the module)."""

    def __init__(self, attn):
        self.m = attn
        self.h = attn.num_heads
        self.i = attn.internal_dim
        self.d = self.i // self.h
        c = attn.q_proj.in_features
        self.scale = 1.0 / math.sqrt(self.d)
        self.wq = attn.q_proj.weight.detach().reshape(self.h, self.d, c)
        self.bq = attn.q_proj.bias.detach().reshape(self.h, self.d)
        self.wk = attn.k_proj.weight.detach().reshape(self.h, self.d, c)
        self.wv = attn.v_proj.weight.detach().reshape(self.h, self.d, c)
        self.bv = attn.v_proj.bias.detach().reshape(self.h, self.d)
        # out_proj.weight is (C, I): per head (d, C)
        self.wo = attn.out_proj.weight.detach().reshape(c, self.h, self.d).permute(1, 2, 0).contiguous()
        self.bo = attn.out_proj.bias.detach()


class FastMaskDecoder:
    """SAM's mask decoder (single-mask output) computed the fast, exact way.

    Args:
        sam: a ``segment_anything.modeling.Sam``; the decoder reads its
            weights (rebuild it if the weights change or the model moves)
    """

    #: output tokens the final attention runs for (the rest are never read)
    final_tokens: int = 2

    def __init__(self, sam):
        md = sam.mask_decoder
        self.md = md
        self.tr = md.transformer
        self.no_mask = sam.prompt_encoder.no_mask_embed.weight.detach().reshape(-1)
        self.layers = list(self.tr.layers)
        self.t2i = [_Heads(layer.cross_attn_token_to_image) for layer in self.layers]
        self.i2t = [_Heads(layer.cross_attn_image_to_token) for layer in self.layers]
        self.final = _Heads(self.tr.final_attn_token_to_image)
        ct1, ln, _act1, ct2, _act2 = list(md.output_upscaling)
        c, c1 = ct1.weight.shape[0], ct1.weight.shape[1]
        c2 = ct2.weight.shape[1]
        self.c, self.c1, self.c2 = c, c1, c2
        # ConvTranspose2d(k=2, s=2) as a per-pixel matmul; output layout [i, j, o]
        self.w1 = ct1.weight.detach().permute(0, 2, 3, 1).reshape(c, 4 * c1).contiguous()
        self.b1 = ct1.bias.detach().repeat(4)
        self.ln_w, self.ln_b, self.ln_eps = ln.weight.detach(), ln.bias.detach(), ln.eps
        self.w2 = ct2.weight.detach().permute(0, 2, 3, 1).reshape(c1, 4 * c2).contiguous()
        self.b2 = ct2.bias.detach().repeat(4)
        self.hyper = md.output_hypernetworks_mlps[0]
        self.tokens = torch.cat([md.iou_token.weight, md.mask_tokens.weight], dim=0).detach()
        self.upscale_rows = 32768  # 64x64 pixels per upscaling batch (bounds memory)
        #: prompts per transformer pass. Each prompt holds a few (64x64x256)
        #: float maps (4 MB each). On a CPU the decoder is bound by memory
        #: bandwidth, and 2 prompts at a time keep those maps in the cache
        #: (measured 1.5-2x faster than 16); GPUs want larger batches.
        self.batch = 2 if self.tokens.device.type == "cpu" else 32

    # -- per image ------------------------------------------------------------------

    def image_cache(self, features: torch.Tensor, image_pe: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Per-image tensors: the flattened embedding, positional encoding and
        the first block's image-side projections for the no-mask dense prompt."""
        src0 = features.flatten(2)[0].transpose(0, 1)  # (P, C), no mask embedding yet
        pe = image_pe.flatten(2)[0].transpose(0, 1).contiguous()  # (P, C)
        src = src0 + self.no_mask
        srcpe = src + pe
        a, b = self.t2i[0], self.i2t[0]
        p = src.shape[0]
        k1 = a.m.k_proj(srcpe).reshape(p, a.h, a.d).permute(1, 2, 0).contiguous()  # (H, d, P)
        v1 = a.m.v_proj(src).reshape(p, a.h, a.d).permute(1, 0, 2).contiguous()  # (H, P, d)
        qi = (b.m.q_proj(srcpe) * b.scale).reshape(p, b.h, b.d).permute(1, 2, 0).contiguous()  # (H, d, P)
        return {"src0": src0.contiguous(), "src": src, "pe": pe, "k1": k1, "v1": v1, "qi": qi}

    # -- transformer ----------------------------------------------------------------------

    def _self_attn(self, layer, queries, x0, first: bool):
        if first and layer.skip_first_layer_pe:
            queries = layer.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + x0
            queries = queries + layer.self_attn(q=q, k=q, v=queries)
        return layer.norm1(queries)

    def _token_mlp(self, layer, queries):
        return layer.norm3(queries + layer.mlp(queries))

    def _block1_shared(self, layer, cache, queries, x0):
        """Block 1 when every prompt shares the image-side tensors (saving 1)."""
        n, t, _ = queries.shape
        a, b = self.t2i[0], self.i2t[0]
        queries = self._self_attn(layer, queries, x0, first=True)
        # token -> image: keys/values precomputed per image; the prompts are
        # folded into the rows of one matmul per head (no broadcast copies)
        q = (a.m.q_proj(queries + x0) * a.scale).reshape(n * t, a.h, a.d).transpose(0, 1)  # (H, N*T, d)
        attn = torch.softmax(q @ cache["k1"], dim=-1)  # (H, N*T, P)
        out = (attn @ cache["v1"]).transpose(0, 1).reshape(n, t, a.i)
        queries = layer.norm2(queries + a.m.out_proj(out))
        queries = self._token_mlp(layer, queries)
        # image -> token: queries precomputed per image, out_proj before mixing
        kt = b.m.k_proj(queries + x0).reshape(n * t, b.h, b.d).transpose(0, 1)  # (H, N*T, d)
        s = torch.softmax((kt @ cache["qi"]).reshape(b.h, n, t, -1), dim=2)  # softmax over the tokens
        s = s.transpose(0, 1).reshape(n, b.h * t, -1)  # (N, H*T, P)
        keys = torch.baddbmm(cache["src"], s.transpose(1, 2), self._vo(b, queries))
        return queries, layer.norm4(keys)

    def _vo(self, b, queries):
        """The image-to-token values with the output projection applied (saving 3).

        ``(N, H*T, C)``; the output bias is spread over the heads (each
        head's attention weights sum to 1), so no separate bias add is needed.
        """
        n, t, _ = queries.shape
        vt = b.m.v_proj(queries).reshape(n, t, b.h, b.d)
        vo = torch.einsum("nthd,hdc->nhtc", vt, b.wo) + b.bo / b.h
        return vo.reshape(n, b.h * t, -1)

    def _block(self, idx, layer, queries, keys, x0, pe, first: bool):
        """A two-way block with per-prompt image tensors (absorbed projections)."""
        n, t, _ = queries.shape
        a, b = self.t2i[idx], self.i2t[idx]
        queries = self._self_attn(layer, queries, x0, first)
        kpe = keys + pe
        kpe_t = kpe.transpose(1, 2)
        # token -> image, absorbed: scores = (Wk^T q) . (keys + pe); values (attn @ keys) Wv^T + bv
        q = a.m.q_proj(queries + x0).reshape(n, t, a.h, a.d)
        qk = torch.einsum("nthd,hdc->nhtc", q * a.scale, a.wk).reshape(n, a.h * t, -1)
        attn = torch.softmax(qk @ kpe_t, dim=-1)  # (N, H*T, P)
        ak = (attn @ keys).reshape(n, a.h, t, -1)
        out = torch.einsum("nhtc,hdc->nthd", ak, a.wv) + a.bv
        queries = layer.norm2(queries + a.m.out_proj(out.reshape(n, t, a.i)))
        queries = self._token_mlp(layer, queries)
        # image -> token, absorbed queries, out_proj before mixing
        kt = b.m.k_proj(queries + x0).reshape(n, t, b.h, b.d) * b.scale
        kq = torch.einsum("nthd,hdc->nhtc", kt, b.wq).reshape(n, b.h * t, -1)
        bq = torch.einsum("nthd,hd->nht", kt, b.bq).reshape(n, b.h * t, 1)
        s = torch.baddbmm(bq, kq, kpe_t)  # (N, H*T, P)
        del kpe, kpe_t
        s = torch.softmax(s.reshape(n, b.h, t, -1), dim=2).reshape(n, b.h * t, -1)
        keys = keys.baddbmm_(s.transpose(1, 2), self._vo(b, queries))  # in place: keys is ours
        return queries, layer.norm4(keys)

    def _final(self, queries, keys, x0, pe):
        """Final token -> image attention for the first :attr:`final_tokens`
        tokens only (SAM's IoU and first mask tokens; SAM 2 and HQ-SAM read more)."""
        f = self.final
        t = self.final_tokens
        q2 = queries[:, :t]
        n = q2.shape[0]
        q = f.m.q_proj(q2 + x0[:, :t]).reshape(n, t, f.h, f.d)
        qk = torch.einsum("nthd,hdc->nhtc", q * f.scale, f.wk).reshape(n, f.h * t, -1)
        s = torch.baddbmm(qk @ pe.T, qk, keys.transpose(1, 2))  # qk . (keys + pe)
        attn = torch.softmax(s, dim=-1)
        ak = (attn @ keys).reshape(n, f.h, t, -1)
        out = torch.einsum("nhtc,hdc->nthd", ak, f.wv) + f.bv
        q2 = q2 + f.m.out_proj(out.reshape(n, t, f.i))
        return self.tr.norm_final_attn(q2)

    def transformer(
        self,
        cache: Dict[str, torch.Tensor],
        sparse: torch.Tensor,
        dense: Optional[torch.Tensor],
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The two-way transformer for N prompts.

        Args:
            cache: from :meth:`image_cache`
            sparse: ``(N, S, C)`` sparse prompt embeddings
            dense: ``(N, C, 64, 64)`` dense prompt embeddings (mask prompts), or
                None for the no-mask embedding (shared per image)

        Returns:
            ``(iou_and_mask_tokens (N, 2, C), keys (N, P, C))``
        """
        n = sparse.shape[0]
        x0 = torch.cat([self.tokens.unsqueeze(0).expand(n, -1, -1), sparse], dim=1)
        pe = cache["pe"]
        queries = x0
        if dense is None:
            queries, keys = self._block1_shared(self.layers[0], cache, queries, x0)
            start = 1
        else:
            keys = cache["src0"] + dense.flatten(2).transpose(1, 2)
            start = 0
        for idx in range(start, len(self.layers)):
            queries, keys = self._block(idx, self.layers[idx], queries, keys, x0, pe, first=(idx == 0))
        return self._final(queries, keys, x0, pe), keys

    # -- output ------------------------------------------------------------------------

    def upscale(
        self,
        keys: torch.Tensor,
        hyper: torch.Tensor,
        windows: Sequence[Optional[Window]],
        grid: int = 64,
    ) -> List[Optional[Tuple[torch.Tensor, Tuple[int, int]]]]:
        """Low-res logits on each prompt's window only (saving 2).

        Args:
            keys: ``(N, P, C)`` transformer output
            hyper: ``(N, C2)`` hypernetwork output of the first mask token
            windows: per prompt the low-res ``(r0, r1, c0, c1)`` needed, or None
            grid: the embedding side (64)

        Returns:
            per prompt ``(logits (4h, 4w), (row, col) low-res offset)`` on the
            window aligned to the 64-grid, or None
        """
        n, p, c = keys.shape
        flat = keys.reshape(n * p, c)
        spans = []
        idx = []
        owners = []
        total = 0
        for i, w in enumerate(windows):
            if w is None:
                continue
            r0, r1, c0, c1 = w
            g0, g1 = r0 // 4, min((r1 + 3) // 4, grid)
            h0, h1 = c0 // 4, min((c1 + 3) // 4, grid)
            if g1 <= g0 or h1 <= h0:
                continue
            idx.append((np.arange(g0, g1)[:, None] * grid + np.arange(h0, h1)[None, :]).ravel() + i * p)
            m = (g1 - g0) * (h1 - h0)
            owners.append(np.full(m, i))
            spans.append((total, total + m, g1 - g0, h1 - h0, g0, h0, i))
            total += m
        out: List[Optional[Tuple[torch.Tensor, Tuple[int, int]]]] = [None] * n
        if total == 0:
            return out
        index = torch.from_numpy(np.concatenate(idx)).to(keys.device)
        owner = torch.from_numpy(np.concatenate(owners)).to(keys.device)
        logits = torch.empty(total, 16, dtype=keys.dtype, device=keys.device)
        for s0 in range(0, total, self.upscale_rows):
            s1 = min(s0 + self.upscale_rows, total)
            feats = flat.index_select(0, index[s0:s1])  # (M, C)
            y = torch.addmm(self.b1, feats, self.w1).reshape(-1, self.c1)  # (M*4, C1)
            u = y.mean(-1, keepdim=True)
            v = (y - u).pow(2).mean(-1, keepdim=True)
            y = (y - u) / torch.sqrt(v + self.ln_eps)
            y = F.gelu(self.ln_w * y + self.ln_b)
            y = F.gelu(torch.addmm(self.b2, y, self.w2))  # (M*4, 4*C2): [i2, j2, o2]
            y = y.reshape(s1 - s0, 16, self.c2)  # 16 = [i, j, i2, j2]
            hrows = hyper.index_select(0, owner[s0:s1])
            logits[s0:s1] = torch.einsum("mkc,mc->mk", y, hrows)
        for s in spans:
            a0, a1, gh, gw, g0, h0, i = s
            blk = logits[a0:a1].reshape(gh, gw, 2, 2, 2, 2)  # [R, C, i, j, i2, j2]
            blk = blk.permute(0, 2, 4, 1, 3, 5).reshape(4 * gh, 4 * gw)
            out[i] = (blk, (4 * g0, 4 * h0))
        return out

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
            embedding: an :class:`~.engine.ImageEmbedding` (its ``cache`` keeps
                the per-image tensors between calls)
            sparse: ``(N, S, C)`` sparse prompt embeddings
            dense: ``(N, C, 64, 64)`` mask-prompt embeddings, or None
            windows: per prompt the low-res window to compute, or None
            image_pe: ``(1, C, 64, 64)`` dense positional encoding

        Returns:
            ``(iou (N,), [(logits, offset) or None] * N)``
        """
        key = ("fast", id(self))
        cache = embedding.cache.get(key)
        if cache is None:
            cache = self.image_cache(embedding.features.float(), image_pe)
            embedding.cache[key] = cache
        grid = int(embedding.features.shape[-1])
        ious, outs = [], []
        for s0 in range(0, sparse.shape[0], self.batch):
            s1 = s0 + self.batch
            d = None if dense is None else dense[s0:s1].float()
            tokens, keys = self.transformer(cache, sparse[s0:s1].float(), d)
            ious.append(self.md.iou_prediction_head(tokens[:, 0])[:, 0])
            hyper = self.hyper(tokens[:, 1])
            outs.extend(self.upscale(keys, hyper, windows[s0:s1], grid))
            del keys
        if not ious:
            return sparse.new_zeros((0,)), []
        return torch.cat(ious), outs

    def forward_full(self, features, image_pe, sparse, dense=None):
        """Full 256x256 low-res logits and IoU (N, 1, 256, 256), (N, 1): for tests.

        Same outputs as ``MaskDecoder(..., multimask_output=False)``.
        """
        cache = self.image_cache(features.float(), image_pe)
        tokens, keys = self.transformer(cache, sparse.float(), None if dense is None else dense.float())
        iou = self.md.iou_prediction_head(tokens[:, 0])[:, :1]
        hyper = self.hyper(tokens[:, 1])
        grid = int(round(math.sqrt(keys.shape[1])))
        wins = self.upscale(keys, hyper, [(0, 4 * grid, 0, 4 * grid)] * keys.shape[0], grid)
        return torch.stack([w[0] for w in wins])[:, None], iou
