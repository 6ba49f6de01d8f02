"""The SAM 2 / 2.1 backend (``backend="sam2"``, optional extra ``fiftyone-samrs[sam2]``).

:mod:`.models` loads SAM 2 models (checkpoint + config from a path, FiftyOne
zoo names, the config inferred from the checkpoint, a tiny random model for
tests), :mod:`.decoder` is SAM 2's mask decoder computed the fast exact way
(high-resolution features, the dynamic multimask fallback), :mod:`.engine`
is :class:`~.engine.Sam2Engine`, the pipeline's backend.

Submodules import torch and the ``sam2`` package; import them explicitly.
"""
