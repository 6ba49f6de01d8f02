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


def _cls(path: str):
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


class DOTADataset(fot.LabeledImageDataset):
    """DOTA v1.0/1.5/2.0: ``images/`` and ``labelTxt/`` (``hbb`` + ``obb``)."""

    def get_dataset_importer_cls(self):
        return _cls("fiftyone_samrs.importing.importers.DOTADatasetImporter")


class DIORDataset(fot.LabeledImageDataset):
    """DIOR / DIOR-R: JPEG images, VOC-style HBB and OBB XML (``hbb`` + ``obb``)."""

    def get_dataset_importer_cls(self):
        return _cls("fiftyone_samrs.importing.importers.DIORDatasetImporter")


class FAIR1MDataset(fot.LabeledImageDataset):
    """FAIR1M 1.0/2.0: ``.tif`` images and ``labelXml`` polygons (``hbb`` = RH-Box + ``obb``)."""

    def get_dataset_importer_cls(self):
        return _cls("fiftyone_samrs.importing.importers.FAIR1MDatasetImporter")


class HRSC2016Dataset(fot.LabeledImageDataset):
    """HRSC2016: ``FullDataSet`` with ship boxes, rotated boxes and GT masks."""

    def get_dataset_importer_cls(self):
        return _cls("fiftyone_samrs.importing.importers.HRSC2016DatasetImporter")


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
