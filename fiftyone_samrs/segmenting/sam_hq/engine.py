"""The HQ-SAM engine: SAM's engine with HQ-SAM's encoder outputs and mask decoder.

HQ-SAM is SAM with a richer mask decoder, so :class:`HqSamEngine` is
:class:`~fiftyone_samrs.segmenting.sam.engine.SamEngine` (preprocessing,
batched encoding, prompts, chunks, region-only post-processing, the
``Backend`` protocol) with two changes: the encoder also keeps the early ViT
feature map HQ-SAM's decoder fuses (``interm_embeddings[0]``), and the
decoder is :class:`.decoder.HqFastDecoder`. The masks are those of HQ-SAM's
``SamPredictor.predict_torch(..., multimask_output=False, hq_token_only=...)``
followed by ``Sam.postprocess_masks``, inside each region.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import numpy as np
import torch

from fiftyone_samrs.segmenting.sam.engine import ImageEmbedding, Preprocessed, SamEngine


@dataclass
class HqImageEmbedding(ImageEmbedding):
    """An encoded image for HQ-SAM: SAM's embedding plus the early ViT features.

    Attributes:
        interm: ``(1, 64, 64, D)`` the output of the encoder's first
            global-attention block (HQ-SAM's ``interm_embeddings[0]``)
    """

    interm: Optional[torch.Tensor] = None


class HqSamEngine(SamEngine):
    """Box-prompted HQ-SAM, fast and exact: encode once, decode in chunks.

    Args:
        sam: a ``segment_anything_hq.modeling.Sam`` (see :func:`.models.load_sam_hq`)
        device, dtype, encoder_batch, decoder_chunk: as :class:`SamEngine`
        decoder: ``"fast"`` (:class:`.decoder.HqFastDecoder`) or ``"reference"``
            (HQ-SAM's own decoder on the whole map)
        hq_token_only: the HQ mask alone instead of SAM's + HQ (the predictor's option)
    """

    name = "sam_hq"
    CPU_BF16_AUTO = False  # its bf16 agreement has not been measured

    def __init__(
        self,
        sam,
        device=None,
        dtype=None,
        encoder_batch: int = 4,
        decoder_chunk: int = 64,
        decoder: str = "fast",
        hq_token_only: bool = False,
    ):
        if decoder not in ("fast", "reference"):
            raise ValueError("decoder must be 'fast' or 'reference', got %r" % (decoder,))
        super().__init__(sam, device=device, dtype=dtype, encoder_batch=encoder_batch,
                         decoder_chunk=decoder_chunk, decoder="fast")
        from fiftyone_samrs.segmenting.sam_hq.decoder import (
            HqFastDecoder,
            HqReferenceDecoder,
        )

        self.decoder_kind = decoder
        self.hq_token_only = bool(hq_token_only)
        # SamEngine.decode calls self._fast.decode(embedding, sparse, dense, windows, image_pe)
        self._fast = (HqFastDecoder(self.sam, hq_token_only=self.hq_token_only)
                      if decoder == "fast" else HqReferenceDecoder(self.sam, self.hq_token_only))

    def encode_async(self, images: Sequence[Union[np.ndarray, Preprocessed]]
                     ) -> List[HqImageEmbedding]:
        """Encodes images, ``encoder_batch`` per encoder pass (as HQ-SAM's ``set_image``);
        synchronous (no encoder stream), so :meth:`encode` and the batch
        methods of :class:`SamEngine` get ready embeddings.

        Args:
            images: RGB uint8 ``HxWx3`` arrays, or :meth:`preprocess` results
        """
        pre = [im if isinstance(im, Preprocessed) else self.preprocess(im) for im in images]
        out: List[HqImageEmbedding] = []
        for start in range(0, len(pre), self.encoder_batch):
            batch = pre[start : start + self.encoder_batch]
            with torch.inference_mode():
                x = torch.stack([
                    self.sam.preprocess(p.tensor.to(self.device, non_blocking=True)[None].float())[0]
                    for p in batch
                ])
                with self._autocast():
                    feats, interm = self.sam.image_encoder(x)
                feats, early = feats.float(), interm[0].float()
            b = len(batch)
            for i, p in enumerate(batch):
                out.append(HqImageEmbedding(
                    feats[i : i + 1].clone() if b > 1 else feats, p.input_size, p.original_size,
                    interm=early[i : i + 1].clone() if b > 1 else early))
        return out

    def decode_multimask(self, embedding, prompts):
        """Not for HQ-SAM: its decoder's extra token gives one refined mask."""
        raise NotImplementedError("HQ-SAM gives one mask per prompt; SAM's three candidate "
                                  "masks need backend='sam'")
