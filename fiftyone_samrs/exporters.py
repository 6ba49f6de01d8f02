"""Exporters: the SAMRS PNG layout and COCO instance JSON, and the importer
that brings a SAMRS export back (the round trip).

This module gathers the public names; the work is done in

- :mod:`fiftyone_samrs.samrs_export`: the SAMRS layout (gray/colour PNGs,
  ``annotations.json``, pickles, split files),
- :mod:`fiftyone_samrs.coco_export`: the streaming COCO instance JSON writer,
- :mod:`fiftyone_samrs.samrs_import`: the SAMRS-layout importer,
- :mod:`fiftyone_samrs.coco_rle`: fast COCO RLE of mask crops,
- :mod:`fiftyone_samrs.palette`: the colour palette,
- :mod:`fiftyone_samrs.export_common`: shared pieces (:class:`ExportResult`).

Usage::

    import fiftyone_samrs as fsr

    fsr.export_samrs(dataset, "/out/SOTA", subset="SOTA", split_ratio=0.8)
    fsr.export_coco(dataset, "/out/sam.json", classes="SOTA")
    back = fsr.load_samrs("/out/SOTA", name="sota-back")

    # or through FiftyOne
    dataset.export("/out/SOTA", dataset_type=fsr.types.SAMRSDataset, label_field="sam")
    fo.Dataset.from_dir("/out/SOTA", dataset_type=fsr.types.SAMRSDataset)
"""

from fiftyone_samrs.coco_export import COCOInstanceDatasetExporter, COCOJSONWriter, export_coco
from fiftyone_samrs.export_common import ExportResult
from fiftyone_samrs.samrs_export import SAMRSDatasetExporter, export_samrs
from fiftyone_samrs.samrs_import import SAMRSDatasetImporter, load_samrs

__all__ = [
    "export_samrs",
    "export_coco",
    "load_samrs",
    "ExportResult",
    "SAMRSDatasetExporter",
    "SAMRSDatasetImporter",
    "COCOInstanceDatasetExporter",
    "COCOJSONWriter",
]
