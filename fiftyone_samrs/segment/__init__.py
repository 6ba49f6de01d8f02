"""The Segment Anything engine: model loading, fast exact decoding, baselines.

- :mod:`.models`: :func:`~.models.load_sam`, devices and dtypes;
- :mod:`.tiny`: a tiny random SAM for tests and demos;
- :mod:`.engine`: :class:`~.engine.SamEngine` (encode once, decode many
  prompts) and :func:`~.engine.make_backend`;
- :mod:`.decoder`: the fast mask decoder, exact w.r.t. SAM's own;
- :mod:`.upsample`: region-only post-processing of the low-res logits;
- :mod:`.baselines`: the ``grabcut`` and ``boxfill`` backends.

Submodules import torch; import them explicitly.
"""

import sys as _sys
import types as _types


class _SegmentPackage(_types.ModuleType):
    """``fiftyone_samrs.segment`` is both this subpackage and the SDK call.

    Importing a subpackage binds its module to the parent package's
    attribute of the same name, which would hide the ``fsr.segment(view, ...)``
    function. Calling the package forwards to
    :func:`fiftyone_samrs.pipeline.segment`, so both uses work.
    """

    def __call__(self, *args, **kwargs):
        from ..pipeline import segment

        return segment(*args, **kwargs)


_sys.modules[__name__].__class__ = _SegmentPackage
