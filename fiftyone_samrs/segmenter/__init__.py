"""The Segment Anything engine: model loading, fast exact decoding, baselines.

- :mod:`.models`: :func:`~.models.load_sam`, devices and dtypes;
- :mod:`.tiny`: a tiny random SAM for tests and demos;
- :mod:`.engine`: :class:`~.engine.SamEngine` (encode once, decode many
  prompts) and :func:`~.engine.make_backend`;
- :mod:`.decoder`: the fast mask decoder, exact w.r.t. SAM's own;
- :mod:`.upsample`: region-only post-processing of the low-res logits;
- :mod:`.baselines`: the ``grabcut`` and ``boxfill`` backends.

The SDK call that runs all this over a FiftyOne view is
:func:`fiftyone_samrs.segment` (in :mod:`fiftyone_samrs.pipeline`).
Submodules import torch; import them explicitly.
"""
