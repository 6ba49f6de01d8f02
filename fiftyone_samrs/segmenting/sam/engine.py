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

The encoder side (issue 16): the encoder runs under autocast in bf16 where
that is fast (CUDA; CPUs with AMX-BF16 or AVX512-BF16, see
:func:`.models.resolve_dtype`), with its attention through
``scaled_dot_product_attention`` (:mod:`.attention`, exact to float
rounding), optionally compiled (regional ``torch.compile`` of its blocks,
on by default on CUDA, with an eager fallback). On CUDA, images are pinned
in the loader threads and copied asynchronously, and each encoder batch
runs on its own stream, so the next batch's encoder pass overlaps the
current batch's decoding (:meth:`SamEngine.predict_batches`, and inside
:meth:`SamEngine.predict_batch` across its encoder batches).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from fiftyone_samrs.core.geometry import box_to_int_region
from fiftyone_samrs.segmenting.base import Engine, MaskResult, as_rgb_uint8
from fiftyone_samrs.segmenting.prompts import PromptSet
from fiftyone_samrs.segmenting.sam.models import (
    dtype_name,
    resolve_device,
    resolve_dtype_with_reason,
)
from fiftyone_samrs.segmenting.sam.upsample import RegionUpsampler, region_mask

logger = logging.getLogger(__name__)

#: ``compile="auto"`` per device type: compile the encoder or not. On CUDA it
#: is segment-anything-fast's main saving. On the CPU it depends on the job:
#: see :data:`CPU_COMPILE_MIN_IMAGES`.
COMPILE_AUTO: Dict[str, bool] = {"cuda": True, "cpu": False}

#: On the CPU, ``compile="auto"`` compiles when the engine is told it will
#: encode at least this many images (``expected_images``; the pipeline passes
#: the number of samples to segment). Measured on the 2-core build machine
#: (ViT-B, bf16 + fused attention, docs/engine.md): compiling makes the
#: encoder about 20% faster (CPU time 0.40 vs 0.50 of fp32) but costs 30 s
#: to 2.5 min per engine, about 30-130 images' worth of that saving; smaller
#: jobs (tests, demos, the prompt study) stay uncompiled.
CPU_COMPILE_MIN_IMAGES: int = 200


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
        ready: a CUDA event recorded when ``features`` is computed on the
            encoder's stream (:meth:`SamEngine.encode_async`), else None;
            :meth:`wait` makes the current stream wait for it
    """

    features: torch.Tensor
    input_size: Tuple[int, int]
    original_size: Tuple[int, int]
    cache: Dict[str, Any] = field(default_factory=dict, repr=False)
    ready: Any = field(default=None, repr=False)

    def wait(self) -> "ImageEmbedding":
        """Orders the current CUDA stream after the encoder pass that made ``features``.

        A no-op off CUDA or once done. Returns self.
        """
        if self.ready is not None:
            torch.cuda.current_stream(self.features.device).wait_event(self.ready)
            self.ready = None
        return self


def padded_batch(n: int, cap: int) -> int:
    """The batch a compiled encoder pass of ``n`` images runs: the next power of two, at most ``cap``.

    So a run compiles at most ``log2(cap) + 1`` graphs per block kind (in
    practice one for the full batches and one for a short last batch), and
    padding never more than doubles a pass.
    """
    size = 1
    while size < n:
        size *= 2
    return max(n, min(size, cap))


def _region_ints(regions: np.ndarray, height: int, width: int) -> List[Tuple[int, int, int, int]]:
    return [box_to_int_region(r, width, height) for r in np.asarray(regions, dtype=np.float64)]


class SamEngine(Engine):
    """Box-prompted SAM, fast and exact: encode once, decode in chunks.

    Args:
        sam: a ``segment_anything.modeling.Sam`` (see :func:`.models.load_sam`)
        device: None/"auto", or a device; the model is moved there
        dtype: the encoder's autocast dtype (None/"auto": bf16/fp16 on CUDA,
            bf16 on CPUs with AMX-BF16 or AVX512-BF16 while
            :data:`.models.CPU_BF16_AUTO` is on, else fp32; see
            :func:`.models.resolve_dtype`); the decoder always runs in fp32.
            :meth:`settings` and :meth:`describe` say what was chosen and why
        encoder_batch: images per encoder pass
        decoder_chunk: prompts per decoder call (prompt encoder, decoder,
            post-processing). The fast decoder further works on a few prompts
            at a time (``FastMaskDecoder.batch``: 2 on a CPU, 32 on a GPU), so
            its memory stays small; the reference decoder needs about 40 MB
            per prompt of the chunk.
        decoder: ``"fast"`` (:class:`.decoder.FastMaskDecoder`) or
            ``"reference"`` (SAM's own mask decoder on the full map)
        attention: ``"fused"``: the encoder's attention through
            ``scaled_dot_product_attention`` (:mod:`.attention`; switched on
            the given ``sam`` in place, its state dict unchanged), or
            ``"reference"``: SAM's own (switched back if fused)
        compile: compile the encoder's blocks with ``torch.compile``: True,
            False, or ``"auto"`` (:data:`COMPILE_AUTO`: on for CUDA; on the CPU
            only when ``expected_images`` reaches :data:`CPU_COMPILE_MIN_IMAGES`).
            A failing compilation logs a warning and runs uncompiled.
            Compiled passes are padded to a power of two images (at most
            ``encoder_batch``; :func:`padded_batch`), so a short last batch
            costs at most one more compilation.
        compile_mode: ``torch.compile``'s ``mode`` (None: its default)
        expected_images: how many images this engine will encode, if known
            (for ``compile="auto"``)
        overlap: on CUDA, run each encoder batch on a side stream so that it
            overlaps decoding, and pin images for asynchronous copies
            (ignored elsewhere)
    """

    name = "sam"
    encodes = True
    #: whether ``dtype="auto"`` picks bf16 on CPUs with fast bf16 (measured for SAM)
    CPU_BF16_AUTO = True
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
        attention: str = "fused",
        compile: Union[bool, str] = "auto",
        compile_mode: Optional[str] = None,
        overlap: bool = True,
        expected_images: Optional[int] = None,
    ):
        self.device = resolve_device(device)
        self.dtype, self.dtype_reason = resolve_dtype_with_reason(self.device, dtype,
                                                                  cpu_bf16=self.CPU_BF16_AUTO)
        self.sam = sam.to(self.device).eval()
        self._set_attention(attention)
        self._set_compile(compile, compile_mode, expected_images)
        self.set_overlap(overlap)
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
        logger.info("SAM engine on %s: %s", self.device, self.describe())

    # -- encoder settings ---------------------------------------------------------

    def _set_attention(self, attention: str) -> None:
        from fiftyone_samrs.segmenting.sam.attention import (
            disable_fused_attention,
            enable_fused_attention,
        )

        if attention not in ("fused", "reference"):
            raise ValueError("attention must be 'fused' or 'reference', got %r" % (attention,))
        self.attention = attention
        if attention == "fused":
            enable_fused_attention(self.sam)
        else:
            disable_fused_attention(self.sam)

    def _set_compile(self, compile: Union[bool, str], mode: Optional[str],
                     expected_images: Optional[int] = None) -> None:
        from fiftyone_samrs.segmenting.sam.attention import (
            GuardedEncoder,
            compile_encoder_blocks,
        )

        if isinstance(compile, str):
            if compile.lower() != "auto":
                raise ValueError("compile must be True, False or 'auto', got %r" % (compile,))
            compile = COMPILE_AUTO.get(self.device.type, False) or (
                self.device.type == "cpu" and expected_images is not None
                and expected_images >= CPU_COMPILE_MIN_IMAGES)
        self._guarded: Optional[GuardedEncoder] = None
        self._encoder = self.sam.image_encoder
        if compile:
            try:
                compiled = compile_encoder_blocks(self.sam, mode=mode)
            except Exception as e:
                logger.warning("cannot compile the SAM image encoder (%s: %s); running it "
                               "uncompiled", type(e).__name__, e)
            else:
                self._guarded = GuardedEncoder(self.sam.image_encoder, compiled)
                self._encoder = self._guarded

    def set_overlap(self, overlap: bool) -> None:
        """Turns the CUDA encoder stream and pinned loading on or off (see ``overlap``)."""
        self.overlap = bool(overlap) and self.device.type == "cuda"
        self._stream = torch.cuda.Stream(self.device) if self.overlap else None
        self._pin = self.overlap

    @property
    def compiled(self) -> bool:
        """Whether the encoder runs compiled (False after a fallback)."""
        return self._guarded is not None and self._guarded.active

    def settings(self) -> Dict[str, Any]:
        """The encoder's speed settings, for run records: dtype (and why),
        attention, compilation, overlap."""
        if self._guarded is None:
            comp = "off"
        elif self._guarded.active:
            comp = "on"
        else:
            comp = "failed, uncompiled: %s" % self._guarded.error
        return {
            "device": str(self.device),
            "dtype": dtype_name(self.dtype),
            "dtype_reason": self.dtype_reason,
            "attention": self.attention,
            "compile": comp,
            "overlap": self.overlap,
        }

    def describe(self) -> str:
        """One line: ``"encoder bf16 (auto: CPU has AVX512-BF16), fused attention, not compiled"``."""
        st = self.settings()
        comp = {"on": "compiled", "off": "not compiled"}.get(st["compile"], "compile " + st["compile"])
        return "encoder %s (%s), %s attention, %s%s" % (
            st["dtype"], st["dtype_reason"], st["attention"], comp,
            ", encoder/decoder overlap" if st["overlap"] else "")

    # -- encoding -----------------------------------------------------------------

    def preprocess(self, image: np.ndarray) -> Preprocessed:
        """Resizes an RGB uint8 image for the encoder (as ``SamPredictor.set_image``).

        Thread-safe and model-free: run it in background workers.
        """
        img = as_rgb_uint8(image)
        resized = self.transform.apply_image(img)
        tensor = torch.as_tensor(resized).permute(2, 0, 1).contiguous()
        if self._pin:  # page-locked: the copy to the GPU runs asynchronously
            tensor = tensor.pin_memory()
        return Preprocessed(tensor, tuple(resized.shape[:2]), tuple(img.shape[:2]))

    def _autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def _encode_pass(self, batch: Sequence[Preprocessed]) -> torch.Tensor:
        """One encoder pass over up to ``encoder_batch`` images: ``(n, 256, 64, 64)`` fp32."""
        x = torch.stack(
            [self.sam.preprocess(p.tensor.to(self.device, non_blocking=True)[None].float())[0]
             for p in batch]
        )
        n = x.shape[0]
        if self.compiled:
            # few input shapes, few compilations: pad to the next power of two
            size = padded_batch(n, self.encoder_batch)
            if size > n:
                x = torch.cat([x, x.new_zeros((size - n,) + tuple(x.shape[1:]))])
        with self._autocast():
            feats = self._encoder(x)
        return feats[:n].float()

    def encode_async(self, images: Sequence[Union[np.ndarray, Preprocessed]]) -> List[ImageEmbedding]:
        """Starts encoding images, ``encoder_batch`` per encoder pass.

        On CUDA with ``overlap``, the passes run on the engine's encoder
        stream and this returns once they are queued: each embedding carries
        a ``ready`` event, which :meth:`decode` waits for (on the GPU, not the
        host). Read ``features`` yourself only after :meth:`ImageEmbedding.wait`.
        Elsewhere it is :meth:`encode`.

        Args:
            images: RGB uint8 ``HxWx3`` arrays, or :meth:`preprocess` results
        """
        pre = [im if isinstance(im, Preprocessed) else self.preprocess(im) for im in images]
        out: List[ImageEmbedding] = []
        stream = self._stream
        for start in range(0, len(pre), self.encoder_batch):
            batch = pre[start : start + self.encoder_batch]
            ready = None
            with torch.inference_mode():
                if stream is None:
                    feats = self._encode_pass(batch)
                    parts = [feats[i : i + 1].clone() for i in range(len(batch))] if len(batch) > 1 else [feats]
                else:
                    main = torch.cuda.current_stream(self.device)
                    stream.wait_stream(main)  # weights and earlier work are in place
                    with torch.cuda.stream(stream):
                        feats = self._encode_pass(batch)
                        parts = [feats[i : i + 1].clone() for i in range(len(batch))]
                        ready = torch.cuda.Event()
                        ready.record(stream)
                    for f in parts:  # made on the encoder stream, used on the main one
                        f.record_stream(main)
            for f, p in zip(parts, batch):
                out.append(ImageEmbedding(f, p.input_size, p.original_size, ready=ready))
        return out

    def encode(self, images: Sequence[Union[np.ndarray, Preprocessed]]) -> List[ImageEmbedding]:
        """Encodes images, ``encoder_batch`` per encoder pass.

        Args:
            images: RGB uint8 ``HxWx3`` arrays, or :meth:`preprocess` results

        Returns:
            one :class:`ImageEmbedding` per image, ready to read on the
            current stream
        """
        return [e.wait() for e in self.encode_async(images)]

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
        return [masks[0] for masks in self._decode(embedding, prompts, multimask=False)]

    def decode_multimask(self, embedding: ImageEmbedding, prompts: PromptSet
                         ) -> List[List[MaskResult]]:
        """SAM's three candidate masks of each prompt (``multimask_output=True``,
        as ``SamPredictor.predict``), each with its predicted IoU and stability
        score, in SAM's order; one embedding serves them all. Runs SAM's own
        mask decoder (the fast decoder computes the single-mask output only).

        Returns:
            per prompt, in order, its three :class:`MaskResult`
        """
        return self._decode(embedding, prompts, multimask=True)

    def _decode(self, embedding: ImageEmbedding, prompts: PromptSet, multimask: bool
                ) -> List[List[MaskResult]]:
        n = len(prompts)
        if prompts.image_size is not None and tuple(prompts.image_size) != tuple(embedding.original_size):
            raise ValueError(
                "prompts were built for a %dx%d image but the embedding is of a %dx%d image"
                % (prompts.image_size[1], prompts.image_size[0],
                   embedding.original_size[1], embedding.original_size[0])
            )
        if n == 0:
            return []
        embedding.wait()
        height, width = embedding.original_size
        up = self._upsampler(embedding)
        regions = _region_ints(prompts.regions, height, width)
        results: List[List[MaskResult]] = []
        for start in range(0, n, self.decoder_chunk):
            sl = slice(start, min(start + self.decoder_chunk, n))
            chunk_regions = regions[sl]
            windows = [
                up.lowres_window(r) if (r[2] > r[0] and r[3] > r[1]) else None for r in chunk_regions
            ]
            iou, logit_windows = self._decode_chunk(embedding, prompts, sl, windows, multimask)
            for i, region in enumerate(chunk_regions):
                results.append([region_mask(
                    up, logit_windows[i][k] if logit_windows[i] is not None else None, region,
                    float(iou[i, k]), self.mask_threshold,
                    whole=region == (0, 0, width, height), img_size=self.img_size)
                    for k in range(iou.shape[1])])
        return results

    def _decode_chunk(self, embedding, prompts, sl, windows, multimask: bool):
        """Predicted IoUs ``(n, k)`` and, per prompt, its ``k`` low-res logit
        windows (None where the prompt has no region)."""
        with torch.inference_mode():
            points, boxes, masks = self._prompt_tensors(prompts, embedding, sl)
            sparse, dense = self.sam.prompt_encoder(points=points, boxes=boxes, masks=masks)
            if self._fast is not None and not multimask:
                iou, logit_windows = self._fast.decode(
                    embedding,
                    sparse,
                    dense if masks is not None else None,
                    windows,
                    image_pe=self._dense_pe,
                )
                return (iou.float().cpu().numpy()[:, None],
                        [[w] if w is not None else None for w in logit_windows])
            low, iou = self.sam.mask_decoder(
                image_embeddings=embedding.features,
                image_pe=self._dense_pe,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
            )
            logit_windows = [[(low[i, k], (0, 0)) for k in range(low.shape[1])]
                             if w is not None else None for i, w in enumerate(windows)]
            return iou.float().cpu().numpy(), logit_windows

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
        # on CUDA the later encoder passes run while the first images decode
        embeddings = self.encode_async(images)
        return [self.decode(e, p) for e, p in zip(embeddings, prompts)]

    def predict_batches(
        self, batches: Iterable[Tuple[Sequence[Union[np.ndarray, Preprocessed]], Sequence[PromptSet]]]
    ) -> Iterator[List[List[MaskResult]]]:
        """:meth:`predict_batch` over a stream of batches, the next batch's
        encoder pass queued before the current batch decodes.

        On CUDA (with ``overlap``) the GPU encodes batch ``i + 1`` on the
        encoder stream while the host decodes batch ``i`` (so batch ``i + 1``
        is taken from ``batches`` before batch ``i`` is yielded); elsewhere
        it is the plain loop. Results are the same either way.

        Args:
            batches: ``(images, prompt sets)`` pairs, as :meth:`predict_batch` takes

        Yields:
            each batch's results, in order
        """
        if not self.overlap:  # nothing runs in the background: the plain loop
            for images, prompts in batches:
                yield self.predict_batch(images, prompts)
            return
        it = iter(batches)
        current = next(it, None)
        pending = None
        if current is not None:
            self._check_pair(current)
            pending = self.encode_async(current[0])
        while current is not None:
            embeddings = pending
            nxt = next(it, None)
            pending = None
            if nxt is not None:
                self._check_pair(nxt)
                pending = self.encode_async(nxt[0])
            yield [self.decode(e, p) for e, p in zip(embeddings, current[1])]
            current = nxt

    @staticmethod
    def _check_pair(pair) -> None:
        images, prompts = pair
        if len(images) != len(prompts):
            raise ValueError("got %d images but %d prompt sets" % (len(images), len(prompts)))
