"""The SAM 2 engine: encode each image batch once, decode all its prompts in chunks.

:class:`Sam2Engine` implements the
:class:`~fiftyone_samrs.segmenting.backends.Backend` protocol (``preprocess``
in the pipeline's loader threads, ``predict_batch`` on the main thread) and
``encode`` / ``decode`` for the prompt study, like
:class:`~fiftyone_samrs.segmenting.sam.engine.SamEngine`.

What it reproduces is ``SAM2ImagePredictor.set_image_batch`` +
``predict_batch(..., multimask_output=False)``:

- images resized to ``image_size`` x ``image_size`` (no aspect kept) and
  normalised by SAM 2's own transforms, encoded ``encoder_batch`` at a time,
  ``no_mem_embed`` added as the predictor does;
- prompts as the predictor builds them: box corners (labels 2, 3) first,
  then the points, normalised by the image size; mask prompts in SAM 2's
  frame (the whole image stretched to 256x256: build them with
  ``mask_frame="square"``, :data:`Sam2Engine.mask_frame`);
- the decoder of :mod:`.decoder` (exact, region-only where the model allows);
- post-processing ``F.interpolate(low_res, (H, W), bilinear)`` computed only
  on each prompt's region (:class:`~fiftyone_samrs.segmenting.sam.upsample.RegionUpsampler`
  with one resize stage), then the 0 threshold.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence, Tuple, Union

import numpy as np
import torch

from fiftyone_samrs.core.geometry import box_to_int_region
from fiftyone_samrs.segmenting.base import Engine, MaskResult, as_rgb_uint8
from fiftyone_samrs.segmenting.prompts import PromptSet
from fiftyone_samrs.segmenting.sam.models import resolve_device, resolve_dtype
from fiftyone_samrs.segmenting.sam.upsample import RegionUpsampler, region_mask

logger = logging.getLogger(__name__)


@dataclass
class Sam2Preprocessed:
    """An image transformed for SAM 2's encoder (:meth:`Sam2Engine.preprocess`).

    Attributes:
        tensor: ``(3, S, S)`` float32, resized and normalised
        original_size: ``(H, W)`` of the source image
    """

    tensor: torch.Tensor
    original_size: Tuple[int, int]


@dataclass
class Sam2Embedding:
    """One encoded image.

    Attributes:
        features: ``(1, 256, 64, 64)`` image embedding (``no_mem_embed`` added)
        high_res: ``[(1, 32, 256, 256), (1, 64, 128, 128)]`` features for the
            decoder's upscaling (projected by ``conv_s0`` / ``conv_s1``)
        original_size: ``(H, W)`` of the source image
        cache: per-image precomputation of the decoder (filled on first decode)
    """

    features: torch.Tensor
    high_res: List[torch.Tensor]
    original_size: Tuple[int, int]
    cache: Dict[str, Any] = field(default_factory=dict, repr=False)


class Sam2Engine(Engine):
    """Box-prompted SAM 2 / 2.1, fast and exact: encode once, decode in chunks.

    Args:
        model: a ``sam2.modeling.sam2_base.SAM2Base`` (see :func:`.models.load_sam2`)
        device: None/"auto", or a device; the model is moved there
        dtype: the encoder's autocast dtype (None/"auto": bf16/fp16 on CUDA,
            fp32 elsewhere); the decoder always runs in fp32
        encoder_batch: images per encoder pass
        decoder_chunk: prompts per prompt-encoder / decoder call
        decoder: ``"fast"`` (:class:`.decoder.Sam2FastDecoder`) or
            ``"reference"`` (SAM 2's own decoder on the whole map)
        dynamic_multimask: the decoder's fallback to the best multimask output
            for unstable single masks; None: as the model is configured
            (``build_sam2``'s default: on), which is what
            ``SAM2ImagePredictor`` returns. Off lets the fast decoder compute
            only each prompt's window (faster, no longer the predictor's masks
            where the fallback would have fired).
    """

    name = "sam2"
    encodes = True
    #: whole masks unless a region margin is asked for (see ``segment``)
    default_margin = None
    #: the frame of mask prompts (see :func:`~fiftyone_samrs.segmenting.prompts.build_prompts`)
    mask_frame = "square"

    def __init__(
        self,
        model,
        device=None,
        dtype=None,
        encoder_batch: int = 4,
        decoder_chunk: int = 64,
        decoder: str = "fast",
        dynamic_multimask=None,
    ):
        from sam2.utils.transforms import SAM2Transforms

        self.device = resolve_device(device)
        self.dtype = resolve_dtype(self.device, dtype, cpu_bf16=False)
        self.model = model.to(self.device).eval()
        self.encoder_batch = max(1, int(encoder_batch))
        self.decoder_chunk = max(1, int(decoder_chunk))
        if decoder not in ("fast", "reference"):
            raise ValueError("decoder must be 'fast' or 'reference', got %r" % (decoder,))
        self.decoder_kind = decoder
        self.img_size = int(self.model.image_size)
        self.mask_threshold = 0.0  # SAM2ImagePredictor's default
        self.transforms = SAM2Transforms(resolution=self.img_size, mask_threshold=0.0)
        md = self.model.sam_mask_decoder
        self.dynamic_multimask = (bool(md.dynamic_multimask_via_stability)
                                  if dynamic_multimask is None else bool(dynamic_multimask))
        self._fast = None
        if decoder == "fast":
            from fiftyone_samrs.segmenting.sam2.decoder import Sam2FastDecoder

            self._fast = Sam2FastDecoder(self.model, dynamic_multimask=self.dynamic_multimask)
        elif self.dynamic_multimask != bool(md.dynamic_multimask_via_stability):
            raise ValueError("decoder='reference' runs the model's decoder as configured; "
                             "dynamic_multimask must match it")
        with torch.inference_mode():
            self._dense_pe = self.model.sam_prompt_encoder.get_dense_pe().float()
        # the low-res mask side: 4x the image embedding's (256 for 1024 inputs)
        self.low = 4 * (self.img_size // int(self.model.backbone_stride))
        self._upsamplers: Dict[Tuple[int, int], RegionUpsampler] = {}

    # -- encoding -----------------------------------------------------------------------

    def preprocess(self, image: np.ndarray) -> Sam2Preprocessed:
        """Transforms an RGB uint8 image for the encoder (as ``SAM2ImagePredictor``).

        Thread-safe and model-free: run it in background workers.
        """
        img = as_rgb_uint8(image)
        with torch.inference_mode():
            tensor = self.transforms(img)
        return Sam2Preprocessed(tensor, tuple(img.shape[:2]))

    def _autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def encode(self, images: Sequence[Union[np.ndarray, Sam2Preprocessed]]) -> List[Sam2Embedding]:
        """Encodes images, ``encoder_batch`` per encoder pass.

        Args:
            images: RGB uint8 ``HxWx3`` arrays, or :meth:`preprocess` results
        """
        pre = [im if isinstance(im, Sam2Preprocessed) else self.preprocess(im) for im in images]
        out: List[Sam2Embedding] = []
        m = self.model
        for start in range(0, len(pre), self.encoder_batch):
            batch = pre[start : start + self.encoder_batch]
            with torch.inference_mode():
                x = torch.stack([p.tensor for p in batch]).to(self.device, non_blocking=True)
                with self._autocast():
                    backbone_out = m.forward_image(x)
                    _, vision_feats, _, sizes = m._prepare_backbone_features(backbone_out)
                    if m.directly_add_no_mem_embed:
                        vision_feats[-1] = vision_feats[-1] + m.no_mem_embed
                b = len(batch)
                feats = [f.permute(1, 2, 0).reshape(b, -1, *s).float()
                         for f, s in zip(vision_feats, sizes)]
            for i, p in enumerate(batch):
                one = [f[i : i + 1].clone() if b > 1 else f for f in feats]
                out.append(Sam2Embedding(one[-1], one[:-1], p.original_size))
        return out

    # -- decoding -----------------------------------------------------------------------

    def _upsampler(self, size: Tuple[int, int]) -> RegionUpsampler:
        up = self._upsamplers.get(size)
        if up is None:
            if len(self._upsamplers) > 64:
                self._upsamplers.clear()
            # one bilinear stage low -> (H, W): the "input" is the whole low-res map
            up = RegionUpsampler((self.low, self.low), size, img_size=self.low, low=self.low,
                                 device=self.device)
            self._upsamplers[size] = up
        return up

    def _sparse_dense(self, prompts: PromptSet, size: Tuple[int, int], sl: slice):
        """SAM 2's prompt embeddings, built as ``SAM2ImagePredictor._predict`` does."""
        dev = self.device
        tr = self.transforms
        concat = None
        if prompts.points is not None:
            pts = torch.as_tensor(np.asarray(prompts.points[sl]), dtype=torch.float, device=dev)
            coords = tr.transform_coords(pts, normalize=True, orig_hw=size)
            labels = torch.as_tensor(np.asarray(prompts.point_labels[sl]), dtype=torch.int,
                                     device=dev)
            concat = (coords, labels)
        if prompts.boxes is not None:
            box = torch.as_tensor(np.asarray(prompts.boxes[sl]), dtype=torch.float, device=dev)
            box_coords = tr.transform_boxes(box, normalize=True, orig_hw=size).reshape(-1, 2, 2)
            box_labels = torch.tensor([[2, 3]], dtype=torch.int, device=dev).repeat(len(box), 1)
            if concat is not None:
                concat = (torch.cat([box_coords, concat[0]], dim=1),
                          torch.cat([box_labels, concat[1]], dim=1))
            else:
                concat = (box_coords, box_labels)
        masks = None
        if prompts.mask_inputs is not None:
            masks = torch.as_tensor(np.asarray(prompts.mask_inputs[sl]), dtype=torch.float,
                                    device=dev)
        return self.model.sam_prompt_encoder(points=concat, boxes=None, masks=masks), masks

    def _reference(self, emb: Sam2Embedding, sparse, dense):
        low, iou, _, _ = self.model.sam_mask_decoder(
            image_embeddings=emb.features, image_pe=self._dense_pe,
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
            multimask_output=False, repeat_image=True, high_res_features=emb.high_res)
        return iou[:, 0], [(low[i, 0], (0, 0)) for i in range(low.shape[0])]

    def decode(self, embedding: Sam2Embedding, prompts: PromptSet) -> List[MaskResult]:
        """Decodes all prompts of one image on its embedding.

        Args:
            embedding: from :meth:`encode`
            prompts: the image's prompts (source pixels); mask prompts must be
                in SAM 2's frame (``mask_frame="square"``) unless the image is square

        Returns:
            one :class:`~fiftyone_samrs.segmenting.backends.MaskResult` per prompt, in order
        """
        size = tuple(int(v) for v in embedding.original_size)
        if prompts.image_size is not None and tuple(prompts.image_size) != size:
            raise ValueError(
                "prompts were built for a %dx%d image but the embedding is of a %dx%d image"
                % (prompts.image_size[1], prompts.image_size[0], size[1], size[0]))
        if (prompts.mask_inputs is not None and size[0] != size[1]
                and getattr(prompts, "mask_frame", "sam") != self.mask_frame):
            raise ValueError(
                "SAM 2 takes mask prompts in its own frame (the image stretched to a square); "
                "build the prompts with mask_frame=%r" % self.mask_frame)
        n = len(prompts)
        if n == 0:
            return []
        height, width = size
        up = self._upsampler(size)
        regions = [box_to_int_region(r, width, height)
                   for r in np.asarray(prompts.regions, dtype=np.float64)]
        results: List[MaskResult] = []
        for start in range(0, n, self.decoder_chunk):
            sl = slice(start, min(start + self.decoder_chunk, n))
            chunk = regions[sl]
            windows = [up.lowres_window(r) if (r[2] > r[0] and r[3] > r[1]) else None
                       for r in chunk]
            with torch.inference_mode():
                (sparse, dense), masks = self._sparse_dense(prompts, size, sl)
                if self._fast is not None:
                    iou, logit_windows = self._fast.decode(
                        embedding, sparse, dense if masks is not None else None, windows,
                        image_pe=self._dense_pe)
                else:
                    iou, logit_windows = self._reference(embedding, sparse, dense)
                iou = iou.float().cpu().numpy()
                for i, region in enumerate(chunk):
                    win = logit_windows[i] if windows[i] is not None else None
                    results.append(region_mask(
                        up, win, region, float(iou[i]), self.mask_threshold,
                        whole=region == (0, 0, width, height), img_size=self.low))
        return results

    def predict_batch(
        self,
        images: Sequence[Union[np.ndarray, Sam2Preprocessed]],
        prompts: Sequence[PromptSet],
    ) -> List[List[MaskResult]]:
        """Encodes the images (``encoder_batch`` per pass) and decodes each one's prompts."""
        if len(images) != len(prompts):
            raise ValueError("got %d images but %d prompt sets" % (len(images), len(prompts)))
        embeddings = self.encode(images)
        return [self.decode(e, p) for e, p in zip(embeddings, prompts)]
