"""The names of the models ``load_sam`` knows without torch: the shipped
stand-in samrs-tiny (:mod:`.samrs_tiny`). Importing this module imports no
torch (the export's dataset card asks it whether a run used samrs-tiny)."""

from __future__ import annotations

import os

#: the model name accepted by ``load_sam`` / ``segment(model=...)`` / ``--model``
SAMRS_TINY_NAME = "samrs-tiny"

#: what every place showing the model says about it
SAMRS_TINY_DISCLAIMER = (
    "samrs-tiny is a stand-in SAM trained on generated scenes, for demos and tests; "
    "it is not a model for real data"
)

_SAMRS_TINY_DIR = os.path.dirname(os.path.abspath(__file__))
_SAMRS_TINY_FILE = "samrs-tiny.pth"


def is_samrs_tiny(model) -> bool:
    """Whether a model name means samrs-tiny (:mod:`.samrs_tiny`, the shipped
    stand-in): ``"samrs-tiny"``, ``"samrs_tiny"``."""
    return model is not None and str(model).strip().lower().replace("_", "-") == SAMRS_TINY_NAME


def samrs_tiny_checkpoint() -> str:
    """The shipped checkpoint file (inside the installed package).

    Raises:
        FileNotFoundError: the package was installed without its data files
    """
    path = os.path.join(_SAMRS_TINY_DIR, "weights", _SAMRS_TINY_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            "the samrs-tiny checkpoint is missing from the package (%s); reinstall "
            "fiftyone-samrs, or retrain it with scripts/train_tiny_sam.py" % path)
    return path
