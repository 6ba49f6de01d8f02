"""What the fast decoders of the SAM family share beyond SAM's own.

SAM 2's and HQ-SAM's decoders (:mod:`.sam2.decoder`, :mod:`.sam_hq.decoder`)
extend :class:`~fiftyone_samrs.segmenting.sam.decoder.FastMaskDecoder`, whose
final token-to-image attention runs for SAM's two used tokens (IoU, first
mask). They need a few more output tokens: :class:`FinalTokensMixin` runs it
for the first ``final_tokens`` tokens.
"""

from __future__ import annotations

import torch


class FinalTokensMixin:
    """The final token -> image attention for the first ``final_tokens`` tokens.

    Mix into a ``FastMaskDecoder`` subclass (before it) and set ``final_tokens``.
    """

    final_tokens: int = 2

    def _final(self, queries, keys, x0, pe):
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
