"""fiftyone-samrs: remote-sensing detection datasets to segmentation datasets
with Segment Anything (the SAMRS method), inside FiftyOne.

Usage::

    import fiftyone_samrs as fsr

    dataset = fsr.load_dota("/data/DOTA/val", name="dota-val", tile=True)
    fsr.segment(dataset, prompt="auto", checkpoint="sam_vit_h_4b8939.pth")
    fsr.evaluate(dataset, pred_field="sam", gt_field="gt_masks")
    fsr.export_samrs(dataset, "/data/SOTA", subset="SOTA")

Names are imported lazily, so ``import fiftyone_samrs`` is cheap and does not
start FiftyOne's database or import torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    # importers
    "load_dota": "importers",
    "load_dior": "importers",
    "load_fair1m": "importers",
    "load_hrsc": "importers",
    "load_isaid_masks": "importers",
    "load_records": "importers",
    "tile_images": "tiling",
    # segmentation
    "segment": "pipeline",
    # evaluation
    "evaluate": "evaluation",
    "prompt_study": "study",
    "compute_quality": "quality",
    "save_qa_views": "qa",
    # export
    "export_samrs": "exporters",
    "export_coco": "exporters",
    "load_samrs": "exporters",
}

__all__ = sorted(_EXPORTS) + ["types", "classes", "geometry"]


def __getattr__(name):
    if name in _EXPORTS:
        module = importlib.import_module("fiftyone_samrs." + _EXPORTS[name])
        return getattr(module, name)
    if name in ("types", "classes", "geometry", "records"):
        return importlib.import_module("fiftyone_samrs." + name)
    raise AttributeError("module 'fiftyone_samrs' has no attribute %r" % name)
