"""The SAM engine: encode each image once, decode all its prompts in chunks.

:class:`SamEngine` implements the
:class:`~fiftyone_samrs.segmenting.backends.Backend` protocol the pipeline
calls (``predict_batch``) and exposes ``encode`` / ``decode`` separately so
the prompt study can decode one embedding with many prompt configurations.

Per image: one encoder pass (several images per batch), then the prompts in
chunks of ``decoder_chunk`` through SAM's prompt encoder and the fast exact
mask decoder (:mod:`.decoder`), which computes the low-res logits only on
each prompt's region; then region-only bilinear post-processing
(:mod:`.upsample`) and the 0 threshold. The masks are those of
``SamPredictor.predict_torch(..., multimask_output=False)`` followed by
``Sam.postprocess_masks``, inside each region.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence, Tuple, Union

import numpy as np
import torch

from fiftyone_samrs.core.geometry import box_to_int_region
from fiftyone_samrs.segmenting.backends import MaskResult, as_rgb_uint8
from fiftyone_samrs.segmenting.prompts import PromptSet
from fiftyone_samrs.segmenting.sam.models import resolve_device, resolve_dtype
from fiftyone_samrs.segmenting.sam.upsample import RegionUpsampler, region_mask

logger = logging.getLogger(__name__)


@dataclass
class Preprocessed:
    """An image resized for SAM's encoder (what :meth:`SamEngine.preprocess` returns).

    Attributes:
        tensor: ``(3, h, w)`` uint8, longest side 1024 (not yet normalised/padded)
        input_size: ``(h, w)``
        original_size: ``(H, W)`` of the source image
    """

    tensor: torch.Tensor
    input_size: Tuple[int, int]
    original_size: Tuple[int, int]

    def __iter__(self):  # unpacks as (tensor, input_size, original_size)
        return iter((self.tensor, self.input_size, self.original_size))


@dataclass
class ImageEmbedding:
    """One encoded image.

    Attributes:
        features: ``(1, 256, 64, 64)`` float32 image embedding, on the model's device
        input_size: ``(h, w)`` of the resized encoder input
        original_size: ``(H, W)`` of the source image
        cache: per-image precomputation of the decoder (filled on first decode)
    """

    features: torch.Tensor
    input_size: Tuple[int, int]
    original_size: Tuple[int, int]
    cache: Dict[str, Any] = field(default_factory=dict, repr=False)


def _region_ints(regions: np.ndarray, height: int, width: int) -> List[Tuple[int, int, int, int]]:
    return [box_to_int_region(r, width, height) for r in np.asarray(regions, dtype=np.float64)]


class SamEngine:
    """Box-prompted SAM, fast and exact: encode once, decode in chunks.

    Args:
        sam: a ``segment_anything.modeling.Sam`` (see :func:`.models.load_sam`)
        device: None/"auto", or a device; the model is moved there
        dtype: the encoder's autocast dtype (None/"auto": bf16/fp16 on CUDA,
            fp32 elsewhere; see :func:`.models.resolve_dtype`); the decoder
            always runs in fp32
        encoder_batch: images per encoder pass
        decoder_chunk: prompts per decoder call (prompt encoder, decoder,
            post-processing). The fast decoder further works on a few prompts
            at a time (``FastMaskDecoder.batch``: 2 on a CPU, 32 on a GPU), so
            its memory stays small; the reference decoder needs about 40 MB
            per prompt of the chunk.
        decoder: ``"fast"`` (:class:`.decoder.FastMaskDecoder`) or
            ``"reference"`` (SAM's own mask decoder on the full map)
    """

    name = "sam"
    #: whole masks unless a region margin is asked for (see ``segment``)
    default_margin = None

    def __init__(
        self,
        sam,
        device=None,
        dtype=None,
        encoder_batch: int = 4,
        decoder_chunk: int = 64,
        decoder: str = "fast",
    ):
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(self.device, dtype)
        self.sam = sam.to(self.device).eval()
        self.encoder_batch = max(1, int(encoder_batch))
        self.decoder_chunk = max(1, int(decoder_chunk))
        if decoder not in ("fast", "reference"):
            raise ValueError("decoder must be 'fast' or 'reference', got %r" % (decoder,))
        self.decoder_kind = decoder
        self.img_size = int(self.sam.image_encoder.img_size)
        self.mask_threshold = float(self.sam.mask_threshold)
        from segment_anything.utils.transforms import ResizeLongestSide

        self.transform = ResizeLongestSide(self.img_size)
        self._fast = None
        if decoder == "fast":
            from fiftyone_samrs.segmenting.sam.decoder import FastMaskDecoder

            self._fast = FastMaskDecoder(self.sam)
        with torch.inference_mode():
            self._dense_pe = self.sam.prompt_encoder.get_dense_pe().float()
        self._upsamplers: Dict[Tuple, RegionUpsampler] = {}

    # -- encoding -----------------------------------------------------------------

    def preprocess(self, image: np.ndarray) -> Preprocessed:
        """Resizes an RGB uint8 image for the encoder (as ``SamPredictor.set_image``).

        Thread-safe and model-free: run it in background workers.
        """
        img = as_rgb_uint8(image)
        resized = self.transform.apply_image(img)
        tensor = torch.as_tensor(resized).permute(2, 0, 1).contiguous()
        return Preprocessed(tensor, tuple(resized.shape[:2]), tuple(img.shape[:2]))

    def _autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def encode(self, images: Sequence[Union[np.ndarray, Preprocessed]]) -> List[ImageEmbedding]:
        """Encodes images, ``encoder_batch`` per encoder pass.

        Args:
            images: RGB uint8 ``HxWx3`` arrays, or :meth:`preprocess` results

        Returns:
            one :class:`ImageEmbedding` per image
        """
        pre = [im if isinstance(im, Preprocessed) else self.preprocess(im) for im in images]
        out: List[ImageEmbedding] = []
        for start in range(0, len(pre), self.encoder_batch):
            batch = pre[start : start + self.encoder_batch]
            with torch.inference_mode():
                x = torch.stack(
                    [
                        self.sam.preprocess(p.tensor.to(self.device, non_blocking=True)[None].float())[0]
                        for p in batch
                    ]
                )
                with self._autocast():
                    feats = self.sam.image_encoder(x)
                feats = feats.float()
            for i, p in enumerate(batch):
                out.append(ImageEmbedding(feats[i : i + 1].clone() if len(batch) > 1 else feats,
                                          p.input_size, p.original_size))
        return out

    # -- decoding -----------------------------------------------------------------

    def _upsampler(self, emb: ImageEmbedding) -> RegionUpsampler:
        key = (tuple(emb.input_size), tuple(emb.original_size))
        up = self._upsamplers.get(key)
        if up is None:
            if len(self._upsamplers) > 64:
                self._upsamplers.clear()
            up = RegionUpsampler(emb.input_size, emb.original_size, self.img_size, device=self.device)
            self._upsamplers[key] = up
        return up

    def _prompt_tensors(self, prompts: PromptSet, emb: ImageEmbedding, sl: slice):
        dev = self.device
        orig = emb.original_size
        points = boxes = masks = None
        if prompts.points is not None:
            coords = self.transform.apply_coords(np.asarray(prompts.points[sl], dtype=np.float64), orig)
            labels = np.asarray(prompts.point_labels[sl])
            points = (
                torch.as_tensor(coords, dtype=torch.float, device=dev),
                torch.as_tensor(labels, dtype=torch.int, device=dev),
            )
        if prompts.boxes is not None:
            b = self.transform.apply_boxes(np.asarray(prompts.boxes[sl], dtype=np.float64), orig)
            boxes = torch.as_tensor(b, dtype=torch.float, device=dev)
        if prompts.mask_inputs is not None:
            masks = torch.as_tensor(np.asarray(prompts.mask_inputs[sl]), dtype=torch.float, device=dev)
        return points, boxes, masks

    def decode(self, embedding: ImageEmbedding, prompts: PromptSet) -> List[MaskResult]:
        """Decodes all prompts of one image on its embedding.

        Args:
            embedding: from :meth:`encode`
            prompts: the image's :class:`~fiftyone_samrs.segmenting.prompts.PromptSet`
                (source pixels of this image)

        Returns:
            one :class:`MaskResult` per prompt, in order
        """
        n = len(prompts)
        if prompts.image_size is not None and tuple(prompts.image_size) != tuple(embedding.original_size):
            raise ValueError(
                "prompts were built for a %dx%d image but the embedding is of a %dx%d image"
                % (prompts.image_size[1], prompts.image_size[0],
                   embedding.original_size[1], embedding.original_size[0])
            )
        if n == 0:
            return []
        height, width = embedding.original_size
        up = self._upsampler(embedding)
        regions = _region_ints(prompts.regions, height, width)
        results: List[MaskResult] = []
        for start in range(0, n, self.decoder_chunk):
            sl = slice(start, min(start + self.decoder_chunk, n))
            chunk_regions = regions[sl]
            windows = [
                up.lowres_window(r) if (r[2] > r[0] and r[3] > r[1]) else None for r in chunk_regions
            ]
            with torch.inference_mode():
                points, boxes, masks = self._prompt_tensors(prompts, embedding, sl)
                sparse, dense = self.sam.prompt_encoder(points=points, boxes=boxes, masks=masks)
                if self._fast is not None:
                    iou, logit_windows = self._fast.decode(
                        embedding,
                        sparse,
                        dense if masks is not None else None,
                        windows,
                        image_pe=self._dense_pe,
                    )
                else:
                    low, iou_all = self.sam.mask_decoder(
                        image_embeddings=embedding.features,
                        image_pe=self._dense_pe,
                        sparse_prompt_embeddings=sparse,
                        dense_prompt_embeddings=dense,
                        multimask_output=False,
                    )
                    iou = iou_all[:, 0]
                    logit_windows = [(low[i, 0], (0, 0)) if w is not None else None
                                     for i, w in enumerate(windows)]
                iou = iou.float().cpu().numpy()
                for i, region in enumerate(chunk_regions):
                    results.append(region_mask(
                        up, logit_windows[i], region, float(iou[i]), self.mask_threshold,
                        whole=region == (0, 0, width, height), img_size=self.img_size))
        return results

    def predict_batch(
        self, images: Sequence[Union[np.ndarray, Preprocessed]], prompts: Sequence[PromptSet]
    ) -> List[List[MaskResult]]:
        """Encodes the images (``encoder_batch`` per pass) and decodes each one's prompts.

        Args:
            images: RGB uint8 arrays or :meth:`preprocess` results
            prompts: one :class:`~fiftyone_samrs.segmenting.prompts.PromptSet` per image
        """
        if len(images) != len(prompts):
            raise ValueError("got %d images but %d prompt sets" % (len(images), len(prompts)))
        embeddings = self.encode(images)
        return [self.decode(e, p) for e, p in zip(embeddings, prompts)]
