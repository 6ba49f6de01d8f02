"""fiftyone-samrs: remote-sensing detection datasets to segmentation datasets
with Segment Anything (the SAMRS method), inside FiftyOne.

Usage::

    import fiftyone_samrs as fsr

    dataset = fsr.load_dota("/data/DOTA/val", name="dota-val", tile=True)
    fsr.segment(dataset, prompt="auto", checkpoint="sam_vit_h_4b8939.pth")
    fsr.evaluate(dataset, pred_field="sam", gt_field="gt_masks")
    fsr.export_samrs(dataset, "/data/SOTA", classes="SOTA")

Names are imported lazily, so ``import fiftyone_samrs`` is cheap and does not
start FiftyOne's database or import torch; it changes nothing outside the
package (no environment, config or import hook). ``fsr.quiet_database_notice()``
turns off FiftyOne's "oldest supported MongoDB" notice for the embedded
database this project installs, as the ``samrs`` CLI and the App plugin do.
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

_EXPORTS = {
    # importing
    "load_dota": "importing.importers",
    "load_dior": "importing.importers",
    "load_fair1m": "importing.importers",
    "load_hrsc": "importing.importers",
    "load_isaid_masks": "importing.isaid_gt",
    "load_records": "importing.importers",
    "tile_images": "importing.tiling",
    # segmenting
    "segment": "segmenting.pipeline",
    # evaluating
    "evaluate": "evaluating.evaluation",
    "prompt_study": "evaluating.study",
    "compute_quality": "evaluating.quality",
    "save_qa_views": "evaluating.qa",
    "resegment": "evaluating.review",
    "decide": "evaluating.review",
    "review_progress": "evaluating.review",
    "dataset_stats": "evaluating.stats",
    # exporting
    "export_samrs": "exporting.samrs_export",
    "export_coco": "exporting.coco_export",
    "export_yolo": "exporting.yolo_export",
    "load_samrs": "exporting.samrs_import",
    # set-up
    "quiet_database_notice": "tools.db",
}

#: public submodules reachable as attributes (``fsr.types``, ``fsr.classes``...)
_MODULES = {
    "types": "types",
    "classes": "core.classes",
    "geometry": "core.geometry",
    "records": "core.records",
    "training": "training",
}

__all__ = sorted(_EXPORTS) + sorted(_MODULES)


def __getattr__(name):
    if name in _EXPORTS:
        module = importlib.import_module("fiftyone_samrs." + _EXPORTS[name])
        return getattr(module, name)
    if name in _MODULES:
        return importlib.import_module("fiftyone_samrs." + _MODULES[name])
    raise AttributeError("module 'fiftyone_samrs' has no attribute %r" % name)
