"""Module paths of 0.1.0 under which FiftyOne stored run classes.

FiftyOne records a run's config and results by their full class path
(``fiftyone_samrs.pipeline.SegmentRunConfig``...). Datasets segmented or
evaluated with 0.1.0 hold those paths, so they stay importable as aliases of
the modules that define the classes now. Nothing else of the old layout is
kept.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

#: old module -> the module that now holds its stored run classes
RUN_CLASS_MODULES = {
    "fiftyone_samrs.pipeline": "fiftyone_samrs.segmenting.runs",
    "fiftyone_samrs.evaluation": "fiftyone_samrs.evaluating.evaluation",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in RUN_CLASS_MODULES:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(RUN_CLASS_MODULES[spec.name])

    def exec_module(self, module):
        pass  # the real module is already executed; it keeps its own name


def install() -> None:
    """Adds the alias finder to ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
