"""``samrs-tiny``: the small SAM shipped with the package, trained on generated scenes.

A STAND-IN, for demos, tests and benchmarks where no real SAM weights can be
had: it was trained (``scripts/train_tiny_sam.py``) only on the generated
aerial scenes of :mod:`fiftyone_samrs.testing.scenes`, in six runs of
140 minutes in all on one CPU core (the JSON beside the weights,
:func:`info`, records each run's arguments, times and validation scores).
It is not a model for real imagery. On generated scenes its H-Box masks beat
a filled box on mIoU_I and mIoU_P, losing only on objects under 20 px a
side (see the README's demo table). Its masks, unlike those of the random
``model="tiny"``, follow the objects of generated scenes, so tests and
benchmarks can use masks of realistic extent (and a predicted IoU that
means something).

Architecture: SAM's own classes at 1024x1024 input, a small image encoder
and the real prompt encoder and mask decoder (width 256, 2 blocks, 8 heads,
4 mask tokens). Stored in half precision; :func:`load_sam` reads it like
any checkpoint (the architecture comes from the tensor shapes)::

    from fiftyone_samrs.segmenting.sam.models import load_sam
    sam = load_sam("samrs-tiny")               # or: load_samrs_tiny()
    fsr.segment(ds, model="samrs-tiny")        # CLI: samrs segment DS --model samrs-tiny
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict

from fiftyone_samrs.segmenting.sam.catalog import (  # noqa: F401 - is_samrs_tiny: its path here
    SAMRS_TINY_DISCLAIMER,
    SAMRS_TINY_NAME,
    is_samrs_tiny,
    samrs_tiny_checkpoint,
)

#: the model name accepted by ``load_sam`` / ``segment(model=...)`` / ``--model``
NAME = SAMRS_TINY_NAME
#: what every place showing the model says about it
DISCLAIMER = SAMRS_TINY_DISCLAIMER
#: the shipped checkpoint file (:func:`~.models.samrs_tiny_checkpoint`)
checkpoint_path = samrs_tiny_checkpoint


def info() -> Dict[str, Any]:
    """How the shipped model was made: the JSON written beside it by the training script
    (arguments, training time, loss history, validation scores)."""
    path = os.path.splitext(checkpoint_path())[0] + ".json"
    with open(path) as f:
        return json.load(f)


def load_samrs_tiny(device=None):
    """The shipped samrs-tiny model (eval mode), as ``load_sam("samrs-tiny")``.

    The easy way for tests and benchmarks to get a SAM whose masks follow the
    objects of generated scenes, e.g. to compare an fp32 and a bf16 encoder::

        from fiftyone_samrs.segmenting.sam.samrs_tiny import load_samrs_tiny
        from fiftyone_samrs.segmenting.sam.engine import SamEngine
        fp32 = SamEngine(load_samrs_tiny(), dtype="fp32")
        bf16 = SamEngine(load_samrs_tiny(), dtype="bf16")

    Args:
        device: None/"auto", or a device
    """
    from fiftyone_samrs.segmenting.sam.models import load_sam

    return load_sam(NAME, device=device)
