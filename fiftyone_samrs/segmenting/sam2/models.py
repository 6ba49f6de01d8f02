"""Loading SAM 2 / SAM 2.1 image models: checkpoints with configs, zoo names, tiny.

A SAM 2 model is a ``sam2.modeling.sam2_base.SAM2Base`` built from one of the
package's Hydra/OmegaConf configs (``configs/sam2.1/sam2.1_hiera_t.yaml``...)
or a config file of your own, with the checkpoint's ``{"model": state_dict}``
loaded into it. :func:`load_sam2` finds each piece:

- ``checkpoint`` (a ``.pt``) and ``config`` (a packaged config name or a YAML
  path); without ``config`` the variant is read from the checkpoint (the
  Hiera width and depth, and SAM 2 vs 2.1 from the 2.1-only parameters), as
  far as the official variants go;
- a FiftyOne zoo name (``segment-anything-2.1-hiera-tiny-image-torch``...) or
  a short name (``sam2.1_hiera_t``, ``hiera_t``): the file FiftyOne's zoo
  keeps under ``FIFTYONE_MODEL_ZOO_DIR``, downloaded by the zoo where the
  machine can, else a clear error saying where to put it;
- ``"tiny"``: a randomly initialised small model for tests and demos.

Models are built as ``sam2.build_sam.build_sam2`` builds them (what
``SAM2ImagePredictor`` and FiftyOne's zoo model use), including its
``apply_postprocessing`` overrides: the decoder's dynamic fallback to the
best multimask output when the single mask is unstable.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Dict, Mapping, Optional, Tuple

import torch

from fiftyone_samrs.segmenting.sam.models import (
    ModelNotFoundError,
    find_zoo_checkpoint,
    resolve_device,
)

logger = logging.getLogger(__name__)

#: short name -> (packaged config, FiftyOne zoo name, zoo file name, download URL)
SAM2_MODELS: Dict[str, Tuple[str, str, str, str]] = {
    "sam2.1_hiera_t": ("configs/sam2.1/sam2.1_hiera_t.yaml",
                       "segment-anything-2.1-hiera-tiny-image-torch", "sam2.1_hiera_tiny_image.pt",
                       "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt"),
    "sam2.1_hiera_s": ("configs/sam2.1/sam2.1_hiera_s.yaml",
                       "segment-anything-2.1-hiera-small-image-torch", "sam2.1_hiera_small_image.pt",
                       "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_small.pt"),
    "sam2.1_hiera_b+": ("configs/sam2.1/sam2.1_hiera_b+.yaml",
                        "segment-anything-2.1-hiera-base-plus-image-torch",
                        "sam2.1_hiera_base_plus_image.pt",
                        "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
                        "sam2.1_hiera_base_plus.pt"),
    "sam2.1_hiera_l": ("configs/sam2.1/sam2.1_hiera_l.yaml",
                       "segment-anything-2.1-hiera-large-image-torch", "sam2.1_hiera_large_image.pt",
                       "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_large.pt"),
    "sam2_hiera_t": ("configs/sam2/sam2_hiera_t.yaml",
                     "segment-anything-2-hiera-tiny-image-torch", "sam2_hiera_tiny_image.pt",
                     "https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_tiny.pt"),
    "sam2_hiera_s": ("configs/sam2/sam2_hiera_s.yaml",
                     "segment-anything-2-hiera-small-image-torch", "sam2_hiera_small_image.pt",
                     "https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_small.pt"),
    "sam2_hiera_b+": ("configs/sam2/sam2_hiera_b+.yaml",
                      "segment-anything-2-hiera-base-plus-image-torch",
                      "sam2_hiera_base_plus_image.pt",
                      "https://dl.fbaipublicfiles.com/segment_anything_2/072824/"
                      "sam2_hiera_base_plus.pt"),
    "sam2_hiera_l": ("configs/sam2/sam2_hiera_l.yaml",
                     "segment-anything-2-hiera-large-image-torch", "sam2_hiera_large_image.pt",
                     "https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_large.pt"),
}

#: Hiera trunk (embed dim, blocks) -> variant letter of the official configs
HIERA_VARIANTS: Dict[Tuple[int, int], str] = {(96, 12): "t", (96, 16): "s", (112, 24): "b+",
                                              (144, 48): "l"}

#: what ``sam2.build_sam.build_sam2(apply_postprocessing=True)`` adds to a config
POSTPROCESSING = {
    "model.sam_mask_decoder_extra_args": {
        "dynamic_multimask_via_stability": True,
        "dynamic_multimask_stability_delta": 0.05,
        "dynamic_multimask_stability_thresh": 0.98,
    }
}

#: the tiny test model: a 4-stage Hiera 8 channels wide (the neck, prompt
#: encoder and mask decoder keep their real sizes)
TINY_OVERRIDES: Dict[str, Any] = {
    "model.image_encoder.trunk.embed_dim": 8,
    "model.image_encoder.trunk.num_heads": 1,
    "model.image_encoder.trunk.stages": [1, 1, 2, 1],
    "model.image_encoder.trunk.global_att_blocks": [3],
    "model.image_encoder.neck.backbone_channel_list": [64, 32, 16, 8],
    "model.memory_attention.num_layers": 1,
}

#: scale of the tiny model's hypernetwork output layers (see :func:`build_tiny_sam2`)
HYPER_SCALE = 10.0

_ALIASES: Dict[str, str] = {}
for _short, (_cfg, _zoo, _file, _url) in SAM2_MODELS.items():
    _ALIASES[_short] = _short
    _ALIASES[_zoo] = _short
    if _short.startswith("sam2.1_"):
        _ALIASES[_short[len("sam2.1_"):]] = _short  # "hiera_t": SAM 2.1


def _require_sam2():
    try:
        import sam2
    except ImportError as e:
        raise ImportError(
            "backend 'sam2' needs the sam2 package: pip install 'fiftyone-samrs[sam2]' "
            "(or pip install sam2; set SAM2_BUILD_CUDA=0 to build it without CUDA)") from e
    return sam2


def model_name(name: str) -> str:
    """The short name (``sam2.1_hiera_t``...) of a zoo name, short name or alias.

    Raises:
        ValueError: an unknown name
    """
    key = str(name).strip()
    if key.endswith(".yaml"):
        key = os.path.basename(key)[:-5]
    short = _ALIASES.get(key) or _ALIASES.get(key.lower())
    if short is None:
        raise ValueError(
            "unknown SAM 2 model %r; use a FiftyOne zoo name (%s), a short name (%s), 'tiny', "
            "or checkpoint=PATH" % (name, ", ".join(v[1] for v in SAM2_MODELS.values()),
                                    ", ".join(SAM2_MODELS)))
    return short


def config_path(config: str) -> str:
    """The YAML file of a config: a path, or a config packaged with ``sam2``.

    Accepts ``configs/sam2.1/sam2.1_hiera_t.yaml``, ``sam2.1_hiera_t.yaml``,
    ``sam2.1_hiera_t``, a zoo name, or any existing file.

    Raises:
        FileNotFoundError: no such config
    """
    config = os.fspath(config)
    if os.path.isfile(config):
        return config
    sam2 = _require_sam2()
    root = os.path.dirname(sam2.__file__)
    candidates = [os.path.join(root, config)]
    try:
        candidates.append(os.path.join(root, SAM2_MODELS[model_name(config)][0]))
    except ValueError:
        pass
    for c in candidates:
        if os.path.isfile(c):
            return c
    raise FileNotFoundError(
        "SAM 2 config %r not found (neither a file nor a config of the sam2 package; "
        "packaged: %s)" % (config, ", ".join(v[0] for v in SAM2_MODELS.values())))


def build_sam2_model(
    config: str,
    overrides: Optional[Mapping[str, Any]] = None,
    apply_postprocessing: bool = True,
):
    """A randomly initialised ``SAM2Base`` from a config, as ``build_sam2`` builds it.

    Args:
        config: see :func:`config_path`
        overrides: dotted keys -> values set on the config (as Hydra's ``++key=value``)
        apply_postprocessing: add ``build_sam2``'s decoder settings (the dynamic
            multimask fallback; see :data:`POSTPROCESSING`)

    Returns:
        the model, in eval mode, on the CPU
    """
    _require_sam2()
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    path = config_path(config)
    try:
        cfg = OmegaConf.load(path)
        items = dict(overrides or {})
        if apply_postprocessing:
            items.update(POSTPROCESSING)
        for key, value in items.items():
            OmegaConf.update(cfg, key, value, force_add=True)
        OmegaConf.resolve(cfg)
        if "model" not in cfg:
            raise ValueError("no 'model' section")
        model_cfg = OmegaConf.to_container(cfg.model)
    except Exception as e:
        raise ValueError("%s: not a SAM 2 config: %s" % (path, _first_line(e))) from None
    check_config_targets(model_cfg, path)
    return instantiate(cfg.model, _recursive_=True).eval()


#: what a SAM 2 config may build (Hydra ``_target_``): classes of the sam2 package only
TARGET_PREFIX = "sam2."


def check_config_targets(node, path: str, where: str = "model") -> None:
    """Refuses a config that would build anything outside the ``sam2``
    package: Hydra's ``instantiate`` calls whatever ``_target_`` names (e.g.
    ``pathlib.Path.write_text``), so a config shipped with a "fine-tuned SAM 2"
    could write files. Walked before anything is built.

    Raises:
        ValueError: naming the file, the key and the target
    """
    if isinstance(node, dict):
        for key, value in node.items():
            here = "%s.%s" % (where, key)
            if key == "_target_" and not (isinstance(value, str)
                                          and value.startswith(TARGET_PREFIX)):
                raise ValueError("%s: %s is %r; a SAM 2 config may only build classes of the "
                                 "sam2 package (%s*)" % (path, here, value, TARGET_PREFIX))
            check_config_targets(value, path, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            check_config_targets(value, path, "%s[%d]" % (where, i))


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return "%s: %s" % (type(error).__name__, text.splitlines()[0] if text else "")


def read_sam2_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """The state dict of a SAM 2 checkpoint (``{"model": ...}`` as released, or bare)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelNotFoundError("SAM 2 checkpoint not found: %s" % path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError("%s: cannot read as a PyTorch checkpoint: %s" % (path, e)) from e
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or "image_encoder.trunk.patch_embed.proj.weight" not in obj:
        raise ValueError("%s: not a SAM 2 checkpoint (no image_encoder.trunk.patch_embed weights)"
                         % path)
    return dict(obj)


def infer_config(state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> str:
    """The packaged config of an official SAM 2 / 2.1 variant, read from a state dict.

    Raises:
        ValueError: the trunk matches no official variant (pass ``config=``)
    """
    embed = int(state_dict["image_encoder.trunk.patch_embed.proj.weight"].shape[0])
    blocks = {int(m.group(1)) for k in state_dict
              for m in [re.match(r"image_encoder\.trunk\.blocks\.(\d+)\.", k)] if m}
    variant = HIERA_VARIANTS.get((embed, len(blocks)))
    if variant is None:
        raise ValueError(
            "%s: a Hiera trunk %d wide with %d blocks is no official SAM 2 variant (%s); pass "
            "its config (config=PATH.yaml)" % (source, embed, len(blocks), ", ".join(
                "%s: %dx%d" % (v, e, d) for (e, d), v in HIERA_VARIANTS.items())))
    version = "sam2.1" if "no_obj_embed_spatial" in state_dict else "sam2"
    return SAM2_MODELS["%s_hiera_%s" % (version, variant)][0]


def find_sam2_checkpoint(model: str, download: bool = True) -> str:
    """The local checkpoint of a SAM 2 zoo model (downloaded by FiftyOne's zoo if allowed).

    Raises:
        ModelNotFoundError: with where to put the file
    """
    short = model_name(model)
    _cfg, zoo_name, fname, url = SAM2_MODELS[short]
    return find_zoo_checkpoint(fname, family="SAM 2", model=model, url=url, zoo_name=zoo_name,
                               download=download)


def build_tiny_sam2(seed: int = 0, apply_postprocessing: bool = True):
    """A deterministic random tiny SAM 2.1 (eval mode, CPU) for tests and demos.

    The image encoder is a 4-stage Hiera 8 channels wide; the FPN neck, prompt
    encoder and mask decoder have their real sizes (so the fast decoder is
    checked against the production decoder). Its masks mean nothing but are
    not trivial: logits cross 0 inside images.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_sam2_model(SAM2_MODELS["sam2.1_hiera_t"][0], TINY_OVERRIDES,
                                 apply_postprocessing=apply_postprocessing)
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            model.no_mem_embed.normal_(0.0, 0.02, generator=g)
            # the hypernetworks' last layers set the logit scale: large enough
            # that masks are not all near the threshold (stabilities ~0.95)
            for mlp in model.sam_mask_decoder.output_hypernetworks_mlps:
                mlp.layers[-1].weight.mul_(HYPER_SCALE)
                mlp.layers[-1].bias.zero_()
    return model.eval()


def save_sam2_checkpoint(model, path) -> str:
    """Writes ``{"model": state_dict}`` (the released layout) to ``path``."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save({"model": model.state_dict()}, path)
    return path


def load_sam2(
    model: Optional[str] = None,
    checkpoint: Optional[str] = None,
    config: Optional[str] = None,
    device=None,
    download: bool = True,
    apply_postprocessing: bool = True,
):
    """Loads a SAM 2 / 2.1 image model, in eval mode, on ``device``.

    Args:
        model: a FiftyOne zoo name (``segment-anything-2.1-hiera-tiny-image-torch``),
            a short name (``sam2.1_hiera_t``, ``hiera_b+``...), ``"tiny"``, a
            config (``.yaml`` path or packaged name ending in ``.yaml``: then
            it is ``config``), or None (the checkpoint decides)
        checkpoint: a local ``.pt`` (``{"model": state_dict}``)
        config: the config: a YAML path or a packaged config name; None: the
            config of ``model``, else inferred from the checkpoint
        device: None/"auto", or a device
        download: let FiftyOne's zoo download a missing official checkpoint
        apply_postprocessing: as ``build_sam2`` (the dynamic multimask fallback)

    Returns:
        a ``sam2.modeling.sam2_base.SAM2Base``

    Raises:
        ImportError: the ``sam2`` package is missing (says how to install it)
        ModelNotFoundError: no checkpoint could be had; says where to put one
        ValueError: bad names, or a checkpoint that does not fit its config
    """
    _require_sam2()
    dev = resolve_device(device)
    if model is not None and config is None and (
            str(model).lower().endswith((".yaml", ".yml")) or os.path.isfile(str(model))):
        config, model = str(model), None  # a config names the architecture
        if checkpoint is None:
            raise ValueError("SAM 2 config %s given without a checkpoint (checkpoint=PATH)"
                             % config)
    if model is not None and str(model).lower() == "tiny" and checkpoint is None:
        return build_tiny_sam2(apply_postprocessing=apply_postprocessing).to(dev)
    if checkpoint is None:
        if model is None:
            raise ValueError(
                "load_sam2 needs a model name (%s, 'tiny') or checkpoint=PATH"
                % ", ".join(v[1] for v in SAM2_MODELS.values()))
        checkpoint = find_sam2_checkpoint(model, download=download)
    sd = read_sam2_state_dict(checkpoint)
    if config is None:
        if model is not None and str(model).lower() != "tiny":
            config = SAM2_MODELS[model_name(model)][0]
            inferred = None
            try:
                inferred = infer_config(sd, str(checkpoint))
            except ValueError:
                pass
            if inferred is not None and inferred != config:
                raise ValueError("%s: checkpoint is a %s model, not %s"
                                 % (checkpoint, os.path.basename(inferred)[:-5], model))
        else:
            config = infer_config(sd, str(checkpoint))
    net = build_sam2_model(config, apply_postprocessing=apply_postprocessing)
    try:
        net.load_state_dict(sd)
    except RuntimeError as e:
        raise ValueError("%s: state dict does not fit the SAM 2 config %s: %s"
                         % (checkpoint, config, str(e).splitlines()[0])) from e
    logger.info("loaded SAM 2 (%s) from %s", config, checkpoint)
    return net.to(dev).eval()
