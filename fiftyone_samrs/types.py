"""FiftyOne dataset types for the source formats and the SAMRS outputs.

Use them with FiftyOne's own import/export calls::

    import fiftyone as fo
    import fiftyone_samrs as fsr

    ds = fo.Dataset.from_dir("/data/DOTA/val", dataset_type=fsr.types.DOTADataset)
    ds.export("/out/SOTA", dataset_type=fsr.types.SAMRSDataset, label_field="sam")

Each type is a thin pointer to the importer or exporter class that does the
work (:mod:`fiftyone_samrs.importing.importers`, :mod:`fiftyone_samrs.exporting`).
"""

from __future__ import annotations

import importlib

import fiftyone.types as fot

from fiftyone_samrs.formats.registry import FORMATS


def _cls(path: str):
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def _source_type(spec) -> type:
    def get_dataset_importer_cls(self):
        return _cls("fiftyone_samrs.importing.importers.%sDatasetImporter" % spec.class_prefix)

    return type(spec.class_prefix + "Dataset", (fot.LabeledImageDataset,), {
        "__module__": __name__, "get_dataset_importer_cls": get_dataset_importer_cls,
        "__doc__": "%s: %s (``hbb`` + ``obb``; see ``load_%s``)."
                   % (spec.title, spec.layout, spec.name)})


#: one dataset type per source format of the registry (``DOTADataset``,
#: ``DIORDataset``, ``FAIR1MDataset``, ``HRSCDataset``)
SOURCE_TYPES = {name: _source_type(spec) for name, spec in FORMATS.items()}
globals().update({t.__name__: t for t in SOURCE_TYPES.values()})


class SAMRSDataset(fot.LabeledImageDataset):
    """The SAMRS layout: ``gray/`` and ``color/`` PNGs, COCO instance JSON, images."""

    def get_dataset_importer_cls(self):
        return _cls("fiftyone_samrs.exporting.samrs_import.SAMRSDatasetImporter")

    def get_dataset_exporter_cls(self):
        return _cls("fiftyone_samrs.exporting.samrs_export.SAMRSDatasetExporter")


class COCOInstanceDataset(fot.LabeledImageDataset):
    """COCO instance JSON with RLE masks computed by pycocotools."""

    def get_dataset_exporter_cls(self):
        return _cls("fiftyone_samrs.exporting.coco_export.COCOInstanceDatasetExporter")
