"""Loading Segment Anything models: local checkpoints, FiftyOne zoo names, tiny, samrs-tiny.

:func:`load_sam` builds the ``segment_anything.modeling.Sam`` matching a
checkpoint's state dict (the architecture is read from the tensor shapes, so
``vit_b``/``vit_l``/``vit_h`` and the tiny test model all load without being
named), or finds the checkpoint FiftyOne's model zoo would use.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from functools import partial
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from fiftyone_samrs.segmenting.sam.catalog import (
    SAMRS_TINY_DISCLAIMER,
    is_samrs_tiny,
    samrs_tiny_checkpoint,
)

logger = logging.getLogger(__name__)

#: model type -> FiftyOne zoo model name
SAM_ZOO_NAMES: Dict[str, str] = {
    "vit_b": "segment-anything-vitb-torch",
    "vit_l": "segment-anything-vitl-torch",
    "vit_h": "segment-anything-vith-torch",
}

#: model type -> official checkpoint file name (as FiftyOne's zoo stores it)
SAM_CHECKPOINT_FILES: Dict[str, str] = {
    "vit_b": "sam_vit_b_01ec64.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_h": "sam_vit_h_4b8939.pth",
}

#: where the official checkpoints are published
SAM_CHECKPOINT_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything/"

#: the encoder settings of the official models
_OFFICIAL = {
    "vit_b": dict(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11)),
    "vit_l": dict(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)),
    "vit_h": dict(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)),
}

_ZOO_TO_TYPE = {v: k for k, v in SAM_ZOO_NAMES.items()}


class ModelNotFoundError(FileNotFoundError):
    """No checkpoint could be found or downloaded; the message says where to put one."""


@dataclass
class SamConfig:
    """The architecture of a SAM model, as read from a state dict."""

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: Tuple[int, ...]
    img_size: int = 1024
    patch_size: int = 16
    mlp_ratio: float = 4.0
    window_size: int = 14
    use_rel_pos: bool = True
    qkv_bias: bool = True
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_heads: int = 8
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    pixel_mean: Tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: Tuple[float, float, float] = (58.395, 57.12, 57.375)

    @property
    def model_type(self) -> str:
        """``vit_b``/``vit_l``/``vit_h`` when the encoder matches one, else ``custom``."""
        for name, spec in _OFFICIAL.items():
            if (
                spec["embed_dim"] == self.embed_dim
                and spec["depth"] == self.depth
                and tuple(spec["global_attn_indexes"]) == tuple(self.global_attn_indexes)
            ):
                return name
        return "custom"


def official_config(model_type: str) -> SamConfig:
    """The :class:`SamConfig` of ``vit_b``, ``vit_l`` or ``vit_h``."""
    if model_type not in _OFFICIAL:
        raise ValueError("unknown SAM model type %r; known: %s" % (model_type, ", ".join(_OFFICIAL)))
    spec = _OFFICIAL[model_type]
    return SamConfig(
        embed_dim=spec["embed_dim"],
        depth=spec["depth"],
        num_heads=spec["num_heads"],
        global_attn_indexes=tuple(spec["global_attn_indexes"]),
    )


def build_sam_from_config(cfg: SamConfig, hq: bool = False):
    """A randomly initialised ``Sam`` with the given architecture (eval mode):
    segment-anything's, or with ``hq`` HQ-SAM's (``segment_anything_hq``: the
    same encoders, ``MaskDecoderHQ``)."""
    if hq:
        import segment_anything_hq.modeling as modeling
    else:
        import segment_anything.modeling as modeling

    grid = cfg.img_size // cfg.patch_size
    decoder = modeling.MaskDecoderHQ if hq else modeling.MaskDecoder
    sam = modeling.Sam(
        image_encoder=modeling.ImageEncoderViT(
            depth=cfg.depth,
            embed_dim=cfg.embed_dim,
            img_size=cfg.img_size,
            mlp_ratio=cfg.mlp_ratio,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=cfg.num_heads,
            patch_size=cfg.patch_size,
            qkv_bias=cfg.qkv_bias,
            use_rel_pos=cfg.use_rel_pos,
            global_attn_indexes=tuple(cfg.global_attn_indexes),
            window_size=cfg.window_size,
            out_chans=cfg.prompt_embed_dim,
        ),
        prompt_encoder=modeling.PromptEncoder(
            embed_dim=cfg.prompt_embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(cfg.img_size, cfg.img_size),
            mask_in_chans=cfg.mask_in_chans,
        ),
        mask_decoder=decoder(
            num_multimask_outputs=cfg.num_multimask_outputs,
            transformer=modeling.TwoWayTransformer(
                depth=cfg.decoder_depth,
                embedding_dim=cfg.prompt_embed_dim,
                mlp_dim=cfg.decoder_mlp_dim,
                num_heads=cfg.decoder_heads,
            ),
            transformer_dim=cfg.prompt_embed_dim,
            iou_head_depth=cfg.iou_head_depth,
            iou_head_hidden_dim=cfg.iou_head_hidden_dim,
            **({"vit_dim": cfg.embed_dim} if hq else {}),
        ),
        pixel_mean=list(cfg.pixel_mean),
        pixel_std=list(cfg.pixel_std),
    )
    return sam.eval()


def load_checked_state(checkpoint, state_dict, want: Optional[str], hq: bool = False):
    """The model of ``state_dict`` (its architecture read from the tensor
    shapes), its weights loaded: the one builder of SAM and HQ-SAM.

    Args:
        checkpoint: the file, for messages
        state_dict: its state dict
        want: the model type asked for (``vit_h``...), checked against the
            checkpoint where it is an official one; None or ``tiny``: no check
        hq: HQ-SAM

    Returns:
        ``(model, config)``

    Raises:
        ValueError: the checkpoint is another type than ``want``, or does not
            fit the architecture read from it
    """
    family = "HQ-SAM" if hq else "SAM"
    cfg = config_from_state_dict(state_dict, source=str(checkpoint))
    if want is not None and want in _OFFICIAL and cfg.model_type != want:
        raise ValueError("%s: checkpoint is a %s model, not %s" % (checkpoint, cfg.model_type,
                                                                 want))
    sam = build_sam_from_config(cfg, hq=hq)
    try:
        sam.load_state_dict(state_dict)
    except RuntimeError as e:
        raise ValueError("%s: state dict does not fit the %s architecture read from it: %s"
                         % (checkpoint, family, str(e).splitlines()[0])) from e
    return sam, cfg


def config_from_state_dict(state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> SamConfig:
    """Reads a SAM architecture from the shapes of its state dict.

    Works for the official checkpoints and for any SAM built from
    ``segment_anything.modeling`` with other encoder sizes (e.g. the tiny
    test model): embed dim, depth, heads, window size and global-attention
    blocks all follow from the tensor shapes.

    Raises:
        ValueError: the state dict is not a SAM's (names ``source``)
    """
    sd = state_dict
    try:
        patch_w = sd["image_encoder.patch_embed.proj.weight"]
    except KeyError:
        raise ValueError(
            "%s: not a Segment Anything state dict (no image_encoder.patch_embed.proj.weight)"
            % source
        ) from None
    embed_dim, _, patch, _ = patch_w.shape
    block_ids = sorted(
        {int(m.group(1)) for k in sd for m in [re.match(r"image_encoder\.blocks\.(\d+)\.", k)] if m}
    )
    depth = len(block_ids)
    if depth == 0:
        raise ValueError("%s: SAM state dict without encoder blocks" % source)
    if "image_encoder.pos_embed" in sd:
        grid = sd["image_encoder.pos_embed"].shape[1]
    else:
        grid = 64
    img_size = grid * patch
    use_rel_pos = "image_encoder.blocks.0.attn.rel_pos_h" in sd
    num_heads = None
    window_size = 14
    global_idx: List[int] = []
    if use_rel_pos:
        sizes = {}
        for i in block_ids:
            rel = sd["image_encoder.blocks.%d.attn.rel_pos_h" % i]
            sizes[i] = (rel.shape[0] + 1) // 2
            num_heads = embed_dim // rel.shape[1]
        global_idx = [i for i in block_ids if sizes[i] == grid]
        windowed = [sizes[i] for i in block_ids if sizes[i] != grid]
        if windowed:
            window_size = windowed[0]
    if num_heads is None:
        # without relative positions the head count is not in the weights:
        # the official heads for the official widths, else 64-wide heads
        num_heads = {768: 12, 1024: 16, 1280: 16}.get(embed_dim, max(1, embed_dim // 64))
    mlp_hidden = sd["image_encoder.blocks.0.mlp.lin1.weight"].shape[0]
    prompt_dim = sd["mask_decoder.iou_token.weight"].shape[1]
    dec_ids = {
        int(m.group(1))
        for k in sd
        for m in [re.match(r"mask_decoder\.transformer\.layers\.(\d+)\.", k)]
        if m
    }
    mask_tokens = sd["mask_decoder.mask_tokens.weight"].shape[0]
    iou_layers = {
        int(m.group(1))
        for k in sd
        for m in [re.match(r"mask_decoder\.iou_prediction_head\.layers\.(\d+)\.", k)]
        if m
    }
    return SamConfig(
        embed_dim=int(embed_dim),
        depth=depth,
        num_heads=int(num_heads),
        global_attn_indexes=tuple(global_idx),
        img_size=int(img_size),
        patch_size=int(patch),
        mlp_ratio=float(mlp_hidden) / float(embed_dim),
        window_size=int(window_size),
        use_rel_pos=use_rel_pos,
        qkv_bias="image_encoder.blocks.0.attn.qkv.bias" in sd,
        prompt_embed_dim=int(prompt_dim),
        mask_in_chans=int(sd["prompt_encoder.mask_downscaling.3.weight"].shape[0]),
        decoder_depth=len(dec_ids),
        decoder_mlp_dim=int(sd["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0]),
        num_multimask_outputs=int(mask_tokens) - 1,
        iou_head_depth=len(iou_layers),
        iou_head_hidden_dim=int(sd["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0]),
    )


def _load_error(error: Exception) -> str:
    """One short line on why ``torch.load(weights_only=True)`` refused a file."""
    text = str(error)
    if "zip archive" in text or "central directory" in text:
        return "a truncated or damaged PyTorch file"
    if "Unsupported global" in text or "GLOBAL" in text:
        return ("it holds pickled Python objects besides tensors, which torch.load("
                "weights_only=True) refuses (such files are never loaded here)")
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    first = first.replace("Weights only load failed.", "").strip() or type(error).__name__
    return "not a PyTorch weights file (torch.load(weights_only=True): %s)" % first[:120]


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Reads a checkpoint's state dict on the CPU (``{"model": ...}`` wrappers allowed)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelNotFoundError("SAM checkpoint not found: %s" % path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        # torch's own message (several paragraphs, suggesting weights_only=False)
        # is replaced by a short one; the file is never loaded unsafely
        raise ValueError("%s: not a SAM checkpoint: %s. Give a segment-anything .pth "
                         "(sam_vit_b_01ec64.pth, sam_vit_l_0b3195.pth, sam_vit_h_4b8939.pth)"
                         % (path, _load_error(e))) from None
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise ValueError("%s: the checkpoint holds no state dict" % path)
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}


def resolve_device(device=None) -> torch.device:
    """The device to run on: ``None``/``"auto"`` picks cuda, then mps, then cpu."""
    if isinstance(device, torch.device):
        return device
    if device is None or str(device).lower() == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(str(device))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device %r requested but CUDA is not available" % str(device))
    return dev


_DTYPES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "fp32": None,
    "float32": None,
    "float": None,
}


#: The CPU half of ``dtype="auto"``: whether the image encoder runs in bf16
#: (autocast) on CPUs with fast bf16 matrix instructions (AMX-BF16 or
#: AVX512-BF16; see :func:`cpu_bf16_support`). The issue-16 rule: bf16 is the
#: CPU default only while fp32 and bf16 masks agree to a mean per-instance IoU
#: of at least 0.98 on a trained model (``benchmarks/bench_precision.py``);
#: otherwise set this to False and bf16 stays opt-in (``dtype="bf16"``).
#: CPUs without fast bf16 always get fp32 from ``"auto"``.
CPU_BF16_AUTO: bool = True


@dataclass(frozen=True)
class CpuBf16Support:
    """Whether this CPU runs bf16 matrix products natively.

    Attributes:
        fast: AMX-BF16 or AVX512-BF16 is there (and oneDNN, which uses them)
        features: the bf16 features found (``"amx_bf16"``, ``"avx512_bf16"``)
        source: where they were read (``"torch"``, ``"/proc/cpuinfo"``)
        isa: ``torch.backends.cpu.get_cpu_capability()`` (``"AVX512"``...)
    """

    fast: bool
    features: Tuple[str, ...]
    source: str
    isa: str = ""

    def describe(self) -> str:
        """``"AMX-BF16"``, ``"AVX512-BF16"``, or ``"no AMX-BF16/AVX512-BF16"``."""
        if not self.features:
            return "no AMX-BF16/AVX512-BF16"
        return "+".join(f.upper().replace("_", "-") for f in self.features)


_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def _cpuinfo_flags(path: str = "/proc/cpuinfo") -> set:
    flags: set = set()
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    flags.update(value.split())
    except OSError:
        pass
    return flags


_CPU_BF16: Optional[CpuBf16Support] = None


def _torch_bf16_features() -> Optional[List[str]]:
    """The bf16 features torch reads from CPUID, or None where this torch cannot say."""
    cpu = getattr(torch, "cpu", None)
    try:
        caps = cpu.get_capabilities() if hasattr(cpu, "get_capabilities") else None
        if isinstance(caps, Mapping):
            return [f for f in _BF16_FLAGS if caps.get(f)]
        probes = {"amx_bf16": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported"}
        if all(hasattr(cpu, fn) for fn in probes.values()):
            return [f for f, fn in probes.items() if getattr(cpu, fn)()]
    except Exception:
        pass
    return None


def cpu_bf16_support(refresh: bool = False) -> CpuBf16Support:
    """Detects AMX-BF16 / AVX512-BF16 (cached).

    Reads both torch's CPUID probe (``torch.cpu.get_capabilities()``, or the
    private ``torch.cpu._is_amx_tile_supported`` / ``_is_avx512_bf16_supported``
    of older releases) and ``/proc/cpuinfo``'s flags; either one finding
    ``amx_bf16`` or ``avx512_bf16`` suffices. Fast bf16 also needs oneDNN
    (``torch.backends.mkldnn``), which holds the bf16 kernels.
    ``torch.backends.cpu.get_cpu_capability()`` (kept in ``isa``) names only
    the vector ISA torch dispatches to (``"AVX512"``, ``"AVX2"``), not bf16.
    """
    global _CPU_BF16
    if _CPU_BF16 is not None and not refresh:
        return _CPU_BF16
    from_torch = _torch_bf16_features()
    flags = _cpuinfo_flags()
    from_file = [f for f in _BF16_FLAGS if f in flags]
    # either source suffices: an older torch may not know AMX, a container may hide cpuinfo
    found = [f for f in _BF16_FLAGS if f in (from_torch or []) or f in from_file]
    sources = [name for name, got in (("torch", from_torch), ("/proc/cpuinfo", from_file))
               if got]
    if not sources:
        sources = [name for name, ok in (("torch", from_torch is not None),
                                         ("/proc/cpuinfo", bool(flags))) if ok] or ["none"]
    mkldnn = bool(getattr(torch.backends, "mkldnn", None) and torch.backends.mkldnn.is_available())
    try:
        isa = str(torch.backends.cpu.get_cpu_capability())
    except Exception:
        isa = ""
    _CPU_BF16 = CpuBf16Support(bool(found) and mkldnn, tuple(found), "+".join(sources), isa)
    return _CPU_BF16


def dtype_name(dtype: Optional[torch.dtype]) -> str:
    """``"fp32"`` (None), ``"bf16"``, ``"fp16"``: an autocast dtype's short name."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))


def resolve_dtype_with_reason(device, dtype=None, *,
                              cpu_bf16: bool = True) -> Tuple[Optional[torch.dtype], str]:
    """:func:`resolve_dtype` and a few words saying why (for logs and run records).

    Returns:
        ``(autocast dtype or None for fp32, reason)``, e.g.
        ``(torch.bfloat16, "auto: CPU has AVX512-BF16")``
    """
    device = resolve_device(device)
    if isinstance(dtype, torch.dtype):
        return (None if dtype == torch.float32 else dtype), "requested"
    if dtype is None or str(dtype).lower() == "auto":
        if device.type == "cuda":
            if torch.cuda.is_bf16_supported():
                return torch.bfloat16, "auto: CUDA with bf16"
            return torch.float16, "auto: CUDA without bf16"
        if device.type == "cpu":
            if not cpu_bf16:
                return None, "auto: CPU (fp32: bf16 agreement is measured for SAM's encoder only)"
            cpu = cpu_bf16_support()
            if not cpu.fast:
                return None, "auto: CPU has %s" % cpu.describe()
            if not CPU_BF16_AUTO:
                return None, "auto: CPU has %s, but CPU_BF16_AUTO is off" % cpu.describe()
            return torch.bfloat16, "auto: CPU has %s" % cpu.describe()
        return None, "auto: %s" % device.type
    key = str(dtype).lower().replace("torch.", "")
    if key not in _DTYPES:
        raise ValueError("unknown dtype %r; use auto, bf16, fp16 or fp32" % (dtype,))
    return _DTYPES[key], "requested"


def resolve_dtype(device, dtype=None, *, cpu_bf16: bool = True) -> Optional[torch.dtype]:
    """The autocast dtype of the image encoder.

    Args:
        device: the device the model runs on
        dtype: None or ``"auto"``: CUDA -> bf16 where supported, else fp16;
            a CPU with AMX-BF16 or AVX512-BF16 -> bf16 (while
            :data:`CPU_BF16_AUTO` is on); other CPUs and devices -> None
            (fp32). Or ``"bf16"``, ``"fp16"``, ``"fp32"``, or a ``torch.dtype``.
        cpu_bf16: False: "auto" is fp32 on every CPU (the encoders whose bf16
            agreement has not been measured)

    Returns:
        the autocast dtype, or None for plain fp32
    """
    return resolve_dtype_with_reason(device, dtype, cpu_bf16=cpu_bf16)[0]


def _zoo_dir() -> str:
    env = os.environ.get("FIFTYONE_MODEL_ZOO_DIR")
    if env:
        return os.path.expanduser(env)
    try:
        import fiftyone.core.config as focn

        return focn.load_config().model_zoo_dir
    except Exception:
        return os.path.join(os.path.expanduser("~"), "fiftyone", "__models__")


def find_zoo_checkpoint(fname: str, *, family: str, model: str, url: str,
                        zoo_name: Optional[str] = None, download: bool = True,
                        more: str = "") -> str:
    """The checkpoint file ``fname`` in FiftyOne's model zoo folder
    (``FIFTYONE_MODEL_ZOO_DIR``); if missing and ``download``, asked of
    FiftyOne's zoo as ``zoo_name`` (where the zoo has the model and the
    machine can download). The one finder of SAM, SAM 2 and HQ-SAM.

    Args:
        fname: the file name (as the zoo stores it)
        family, model: for the message (``"SAM"``, ``"vit_h"``)
        url: where the file is published
        zoo_name: FiftyOne's zoo name, or None when the zoo has no such model
        download: let FiftyOne's zoo download it
        more: a last line of the message

    Raises:
        ModelNotFoundError: saying where it looked, where to get the file and
            where to put it
    """
    path = os.path.join(_zoo_dir(), fname)
    if os.path.isfile(path):
        return path
    why = ""
    if download and zoo_name:
        try:
            import fiftyone.zoo as foz

            logger.info("downloading %s with FiftyOne's model zoo", zoo_name)
            foz.download_zoo_model(zoo_name)
            if os.path.isfile(path):
                return path
            why = "the zoo download did not produce the file"
        except Exception as e:
            why = "download failed (%s: %s)" % (type(e).__name__,
                                                str(e).splitlines()[0] if str(e) else "")
    lines = ["no %s checkpoint for %r%s%s." % (family, model, " (%s)" % zoo_name if zoo_name
                                               else "", (": " + why) if why else ""),
             "Looked for: " + path,
             "Download %s from %s and pass it with checkpoint=PATH (CLI: --checkpoint PATH), "
             "or put it at %s%s (FIFTYONE_MODEL_ZOO_DIR sets that folder)."
             % (fname, url, path, " so FiftyOne's zoo finds it" if zoo_name else "")]
    raise ModelNotFoundError("\n".join(lines + ([more] if more else [])))


def find_checkpoint(model: str, download: bool = True) -> str:
    """The local checkpoint of ``vit_b``/``vit_l``/``vit_h`` or a zoo name
    (:func:`find_zoo_checkpoint`).

    Raises:
        ModelNotFoundError: with where to put a checkpoint
        ValueError: unknown model name
    """
    model_type = _ZOO_TO_TYPE.get(model, model)
    if model_type not in SAM_CHECKPOINT_FILES:
        raise ValueError(
            "unknown SAM model %r; use vit_b, vit_l, vit_h, a zoo name (%s), 'tiny', "
            "'samrs-tiny' (a stand-in for demos and tests), or pass checkpoint=PATH"
            % (model, ", ".join(SAM_ZOO_NAMES.values()))
        )
    fname = SAM_CHECKPOINT_FILES[model_type]
    return find_zoo_checkpoint(
        fname, family="SAM", model=model_type, url=SAM_CHECKPOINT_BASE_URL + fname,
        zoo_name=SAM_ZOO_NAMES[model_type], download=download,
        more="Official checkpoints: " + ", ".join(
            "%s: %s%s" % (k, SAM_CHECKPOINT_BASE_URL, v) for k, v in SAM_CHECKPOINT_FILES.items()))


# ---- the random tiny SAM (:mod:`.tiny`), which load_sam builds by name


def tiny_config(encoder_dim: int = 32, depth: int = 2) -> SamConfig:
    """The architecture of the tiny SAM (see :func:`build_tiny_sam`)."""
    heads = 2 if encoder_dim % 2 == 0 else 1
    return SamConfig(
        embed_dim=encoder_dim,
        depth=depth,
        num_heads=heads,
        global_attn_indexes=(depth - 1,),
        mlp_ratio=2.0,
        window_size=14,
    )


def build_tiny_sam(seed: int = 0, encoder_dim: int = 32, depth: int = 2, hq: bool = False):
    """A deterministic random tiny SAM (eval mode, CPU).

    Args:
        seed: the random seed: the same seed gives the same weights
        encoder_dim: the image encoder width
        depth: the number of encoder blocks (the last uses global attention)
        hq: HQ-SAM's (:func:`~fiftyone_samrs.segmenting.sam_hq.models.build_tiny_sam_hq`)

    Returns:
        a ``segment_anything.modeling.Sam``
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = build_sam_from_config(tiny_config(encoder_dim, depth), hq=hq)
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            enc = sam.image_encoder
            # relative positions start at zero in SAM; give them values
            for blk in enc.blocks:
                if getattr(blk.attn, "use_rel_pos", False):
                    blk.attn.rel_pos_h.normal_(0.0, 0.02, generator=g)
                    blk.attn.rel_pos_w.normal_(0.0, 0.02, generator=g)
            enc.pos_embed.normal_(0.0, 0.02, generator=g)
            # output tokens and the no-mask embedding start at N(0, 1)
            dec = sam.mask_decoder
            # the hypernetwork's last layer sets the logit scale: make it
            # large enough that logits cross 0 within an image (HQ-SAM: its own too)
            for mlp in [dec.output_hypernetworks_mlps[0]] + ([dec.hf_mlp] if hq else []):
                mlp.layers[-1].weight.mul_(4.0)
                mlp.layers[-1].bias.zero_()
    return sam.eval()


def load_sam(
    model: Optional[str] = None,
    checkpoint: Optional[str] = None,
    device=None,
    download: bool = True,
):
    """Loads a Segment Anything model, in eval mode, on ``device``.

    Args:
        model: ``"vit_b"``, ``"vit_l"``, ``"vit_h"``, a FiftyOne zoo name
            (``"segment-anything-vith-torch"``...), ``"tiny"`` (a random tiny
            SAM for exactness tests), ``"samrs-tiny"`` (the small SAM shipped
            with the package, a stand-in trained on generated scenes for demos
            and tests, not for real data; see :mod:`.samrs_tiny`), or None
            (inferred from ``checkpoint``)
        checkpoint: a local ``.pth`` state dict; its architecture is read from
            its tensor shapes when ``model`` is None
        device: None/"auto" (cuda, mps, cpu), or a device
        download: let FiftyOne's zoo download a missing official checkpoint

    Returns:
        a ``segment_anything.modeling.Sam``

    Raises:
        ModelNotFoundError: no checkpoint could be had; says where to put one
        ValueError: bad names, or a checkpoint that does not match ``model``
    """
    dev = resolve_device(device)
    stand_in = is_samrs_tiny(model)
    if stand_in:
        if checkpoint is None:
            checkpoint = samrs_tiny_checkpoint()
        model = None  # a checkpoint like any other: the architecture is read from it
    if model is not None and str(model).lower() == "tiny" and checkpoint is None:
        return build_tiny_sam().to(dev)
    if checkpoint is None:
        if model is None:
            raise ValueError(
                "load_sam needs a model name (vit_b, vit_l, vit_h, a zoo name, tiny, samrs-tiny) "
                "or checkpoint=PATH. The official checkpoints: "
                + ", ".join("%s%s" % (SAM_CHECKPOINT_BASE_URL, f) for f in SAM_CHECKPOINT_FILES.values())
                + "; FiftyOne's zoo keeps them in %s" % _zoo_dir()
            )
        checkpoint = find_checkpoint(str(model), download=download)
    want = None if model is None else _ZOO_TO_TYPE.get(model, model)
    sam, cfg = load_checked_state(checkpoint, read_state_dict(checkpoint), want)
    if stand_in:
        logger.warning("loaded samrs-tiny from %s: %s", checkpoint, SAMRS_TINY_DISCLAIMER)
    else:
        logger.info("loaded SAM %s from %s", cfg.model_type, checkpoint)
    return sam.to(dev).eval()


def describe_model(sam) -> Dict[str, Any]:
    """A short description of a loaded SAM (type, parameter count)."""
    cfg = config_from_state_dict(sam.state_dict())
    return {
        "model_type": cfg.model_type,
        "embed_dim": cfg.embed_dim,
        "depth": cfg.depth,
        "parameters": int(sum(p.numel() for p in sam.parameters())),
    }
