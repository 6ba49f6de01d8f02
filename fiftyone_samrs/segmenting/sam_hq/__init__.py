"""The HQ-SAM backend (``backend="sam_hq"``, optional extra ``fiftyone-samrs[sam_hq]``).

:mod:`.models` loads HQ-SAM checkpoints (``sam_hq_vit_{b,l,h}.pth``, the
architecture read from the state dict) and builds a tiny random HQ-SAM for
tests; :mod:`.decoder` is HQ-SAM's mask decoder computed the fast exact way;
:mod:`.engine` is :class:`~.engine.HqSamEngine`, the SAM engine with HQ-SAM's
encoder outputs and decoder.

Submodules import torch and ``segment_anything_hq``; import them explicitly.
"""
