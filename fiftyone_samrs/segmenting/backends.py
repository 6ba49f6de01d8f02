"""The backends by name: one :class:`BackendSpec` each.

A *backend* is an :class:`~fiftyone_samrs.segmenting.base.Engine`: it turns
images and their :class:`~fiftyone_samrs.segmenting.prompts.PromptSet` into one
:class:`~fiftyone_samrs.segmenting.base.MaskResult` per prompt. The SAM engine
(:mod:`fiftyone_samrs.segmenting.sam`) and the baselines
(:mod:`fiftyone_samrs.segmenting.baselines`) are registered in
:data:`BACKEND_SPECS` (one :class:`BackendSpec` each, read by the SDK, CLI,
App form and prompt study); :func:`make_backend` builds one by name. Importing this
module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from fiftyone_samrs.segmenting.base import (  # noqa: F401 - MaskResult, as_rgb_uint8: 0.2.0 paths
    Engine,
    MaskResult,
    as_rgb_uint8,
)

#: 0.2.0's name of the engine contract (:class:`~.base.Engine`)
Backend = Engine


def _sam(model=None, checkpoint=None, device=None, dtype=None, **kw) -> Backend:
    from fiftyone_samrs.segmenting.sam.engine import SamEngine
    from fiftyone_samrs.segmenting.sam.models import load_sam

    return SamEngine(load_sam(model=model, checkpoint=checkpoint, device=device),
                     device=device, dtype=dtype, **kw)


def _sam2(model=None, checkpoint=None, device=None, dtype=None, config=None,
          apply_postprocessing=True, **kw) -> Backend:
    from fiftyone_samrs.segmenting.sam2.engine import Sam2Engine
    from fiftyone_samrs.segmenting.sam2.models import load_sam2

    return Sam2Engine(load_sam2(model=model, checkpoint=checkpoint, config=config, device=device,
                                apply_postprocessing=apply_postprocessing),
                      device=device, dtype=dtype, **kw)


def _sam_hq(model=None, checkpoint=None, device=None, dtype=None, **kw) -> Backend:
    from fiftyone_samrs.segmenting.sam_hq.engine import HqSamEngine
    from fiftyone_samrs.segmenting.sam_hq.models import load_sam_hq

    return HqSamEngine(load_sam_hq(model=model, checkpoint=checkpoint, device=device),
                       device=device, dtype=dtype, **kw)


def _grabcut(model=None, checkpoint=None, device=None, dtype=None, **kw) -> Backend:
    from fiftyone_samrs.segmenting.baselines import GrabCutBackend

    return GrabCutBackend(**kw)


def _boxfill(model=None, checkpoint=None, device=None, dtype=None, **kw) -> Backend:
    from fiftyone_samrs.segmenting.baselines import BoxFillBackend

    return BoxFillBackend(**kw)


@dataclass(frozen=True)
class BackendSpec:
    """One backend, as every part of the package sees it: the SDK and CLI
    (names, defaults), the App form (title, models, checkpoint help), the
    prompt study and the pipeline (what a worker rebuilds by name).

    Attributes:
        name: the ``backend=`` value
        title: how the App lists it
        short: how summaries name it (``"SAM 2"``)
        factory: ``(model, checkpoint, device, dtype, **kw) -> Backend`` (a
            module-level function: a worker process rebuilds it by name)
        default_margin: the ``margin`` it runs with when ``segment`` is given
            none (SAM: whole masks, None; the baselines: the box grown by 10%)
        models: ``(value, label)`` of the architectures it loads (first =
            default); empty for a model-free backend
        checkpoint_help: what its checkpoint file is, for forms and errors
        extra: the pip extra that installs it (``fiftyone-samrs[<extra>]``)
        batched: it encodes images in batches and decodes boxes in chunks
            (``encoder_batch`` / ``decoder_chunk`` apply)
        sized: its factory takes ``expected_images`` (the images the engine
            will see: SAM compiles its encoder on a CPU only for large jobs)
    """

    name: str
    title: str
    short: str
    factory: Callable[..., Backend]
    default_margin: Optional[float] = None
    models: Tuple[Tuple[str, str], ...] = ()
    checkpoint_help: Optional[str] = None
    extra: Optional[str] = None
    batched: bool = False
    sized: bool = False

    @property
    def needs_model(self) -> bool:
        return bool(self.models)


_SAM_MODELS = (
    ("vit_h", "ViT-H (sam_vit_h_4b8939.pth)"),
    ("vit_l", "ViT-L (sam_vit_l_0b3195.pth)"),
    ("vit_b", "ViT-B (sam_vit_b_01ec64.pth)"),
    ("samrs-tiny", "samrs-tiny (shipped stand-in trained on generated scenes: demos and "
                   "tests only, not for real data)"),
)
_SAM2_MODELS = tuple(
    ("segment-anything-2.1-hiera-%s-image-torch" % size, "SAM 2.1 Hiera-%s (sam2.1_hiera_%s.pt)"
     % (short, size.replace("-", "_")))
    for size, short in (("large", "L"), ("base-plus", "B+"), ("small", "S"), ("tiny", "T")))
_HQ_MODELS = tuple(("vit_%s" % k, "HQ-SAM ViT-%s (sam_hq_vit_%s.pth)" % (k.upper(), k))
                   for k in ("h", "l", "b"))

#: every backend, by name (the one place that lists them; see :func:`register_backend`)
BACKEND_SPECS: Dict[str, BackendSpec] = {}


def register_backend(spec: BackendSpec) -> BackendSpec:
    """Adds (or replaces) a backend: the SDK, CLI, App form and prompt study
    offer it from then on."""
    BACKEND_SPECS[spec.name] = spec
    return spec


for _spec in (
    BackendSpec("sam", "Segment Anything", "SAM", _sam, None, _SAM_MODELS,
                "a SAM .pth checkpoint", None, True, True),
    BackendSpec("sam2", "SAM 2.1 (needs the sam2 package)", "SAM 2", _sam2, None, _SAM2_MODELS,
                "a SAM 2 / 2.1 .pt checkpoint", "sam2", True),
    BackendSpec("sam_hq", "HQ-SAM (needs segment-anything-hq)", "HQ-SAM", _sam_hq, None,
                _HQ_MODELS, "an HQ-SAM .pth checkpoint", "sam_hq", True),
    BackendSpec("grabcut", "GrabCut (no model, baseline)", "grabcut", _grabcut, 0.1),
    BackendSpec("boxfill", "Filled boxes (no model, baseline)", "boxfill", _boxfill, 0.1),
):
    register_backend(_spec)


def backend_spec(name: Optional[str]) -> BackendSpec:
    """The spec of a backend by name (case-insensitive; None = ``"sam"``).

    Raises:
        ValueError: naming the backends there are
    """
    key = (name or "sam").lower()
    if key not in BACKEND_SPECS:
        raise ValueError("unknown backend %r; use %s" % (name, ", ".join(BACKEND_SPECS)))
    return BACKEND_SPECS[key]


def model_backends() -> Tuple[str, ...]:
    """The backends that load a model (SAM, SAM 2.1, HQ-SAM...)."""
    return tuple(n for n, s in BACKEND_SPECS.items() if s.needs_model)


def baseline_backends() -> Tuple[str, ...]:
    """The model-free backends (GrabCut, boxfill...)."""
    return tuple(n for n, s in BACKEND_SPECS.items() if not s.needs_model)


def default_margin(name: Optional[str]) -> Optional[float]:
    """The ``margin`` a backend runs with when ``segment`` is given none."""
    return backend_spec(name).default_margin


def make_backend(
    name: str = "sam",
    model: Optional[str] = None,
    checkpoint: Optional[str] = None,
    device=None,
    dtype=None,
    **kw,
) -> Backend:
    """Builds a backend by name.

    Args:
        name: a key of :data:`BACKEND_SPECS`: ``"sam"`` (:func:`.sam.models.load_sam` +
            :class:`.sam.engine.SamEngine`), ``"sam2"`` (SAM 2 / 2.1:
            :func:`.sam2.models.load_sam2` + :class:`.sam2.engine.Sam2Engine`),
            ``"sam_hq"`` (HQ-SAM: :func:`.sam_hq.models.load_sam_hq` +
            :class:`.sam_hq.engine.HqSamEngine`), ``"grabcut"`` or ``"boxfill"``
            (:mod:`.baselines`)
        model, checkpoint: for the SAM backends: see their loaders
        device, dtype: for the SAM backends
        **kw: ``config`` and ``apply_postprocessing`` for ``"sam2"``'s loader;
            the rest is passed to the backend's constructor (e.g.
            ``encoder_batch``, ``decoder_chunk`` for the SAM backends,
            ``dynamic_multimask`` for SAM 2, ``hq_token_only`` for HQ-SAM;
            ``iterations`` for GrabCut)
    """
    return backend_spec(name).factory(model=model, checkpoint=checkpoint, device=device,
                                      dtype=dtype, **kw)
