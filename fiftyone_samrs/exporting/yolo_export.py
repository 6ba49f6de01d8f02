"""ultralytics' YOLO segmentation layout.

::

    <export_dir>/
      data.yaml                     path, train/val[/test] image folders, names
      images/<split>/<stem>.<ext>   the images (copied, moved or linked)
      labels/<split>/<stem>.txt     one line per instance: class x1 y1 x2 y2 ...
                                    (0-based class, coordinates normalised)
      README.md, stats.json, splits.json   the dataset card and statistics
      samrs_export_manifest.jsonl   every file and folder this export wrote

Each instance mask becomes one polygon (:func:`~fiftyone_samrs.exporting.yolo_labels.mask_polygon`:
its pixel outline, parts joined as ultralytics joins COCO's). Every image
gets a label file (empty without objects: a background image for
ultralytics). Splits follow the samples' ``split`` field, as in the SAMRS
layout (:mod:`~fiftyone_samrs.exporting.splits`). Load the result with
``ultralytics.YOLO("yolov8n-seg.yaml").train(data="<export_dir>/data.yaml")``.
"""

from __future__ import annotations

import os
from typing import List, Optional

from fiftyone_samrs.exporting.coco_export import (
    FolderExporter,
    Written,
    kept_instances,
    run_export,
)
from fiftyone_samrs.exporting.common import ExportResult, Timer, write_text
from fiftyone_samrs.exporting.yolo_labels import data_yaml, mask_polygon, yolo_line


class YOLODatasetExporter(FolderExporter):
    """Writes ultralytics' YOLO-seg layout (see the module doc).

    Args:
        export_dir: the folder to write (new or empty, unless ``overwrite``)
        classes, export_media, unknown, overwrite, num_workers, split_ratio,
        seed, instances_field, seg_field: as
            :class:`~fiftyone_samrs.exporting.coco_export.COCOInstanceDatasetExporter`
    """

    _format = "yolo"
    _writes_json = False

    def __init__(self, export_dir: str, classes=None, export_media=True,
                 unknown: str = "error", overwrite: bool = False, num_workers: int = 2,
                 split_ratio: Optional[float] = None, seed: int = 0,
                 instances_field: str = "sam", seg_field: Optional[str] = None):
        if export_dir is None:
            raise ValueError("Give export_dir")
        if export_media is False or export_media in ("false", "False", "none"):
            raise ValueError("a YOLO export needs its images under images/<split>/: use "
                             "export_media='copy', 'symlink' or 'move'")
        export_dir = os.path.abspath(export_dir)
        super().__init__(
            export_dir=export_dir, labels_path=os.path.join(export_dir, "annotations.json"),
            data_path=os.path.join(export_dir, "images"), export_media=export_media,
            classes=classes, unknown=unknown, overwrite=overwrite, num_workers=num_workers,
            instances_field=instances_field, seg_field=seg_field, split_ratio=split_ratio,
            seed=seed)
        self._folders: set = set()

    def setup(self) -> None:
        super().setup()
        self._claim(os.path.join(self.export_dir, "data.yaml"))

    def _folder(self, *parts: str) -> str:
        folder = os.path.join(self.export_dir, *parts)
        if folder not in self._folders:
            self._manifest.makedirs(folder)
            self._folders.add(folder)
        return folder

    def _media_name(self, name: str, split: str) -> str:
        self._folder("images", split)
        return os.path.join(split, name)

    def _write_json(self, file_name, width, height, instances, indices, filepath, image_id,
                    split) -> List[Written]:
        """The instances kept, with their areas (no JSON in this layout)."""
        keep = kept_instances(instances, indices, self.keep_empty, filepath, self.result)
        return [(inst, idx, None, int(inst.crop.sum())) for inst, idx in keep]

    def _write_extras(self, stem, filepath, width, height, instances, indices, written,
                      has_label, semantic, split) -> None:
        lines = []
        for inst, idx, _, _ in written:
            polygon = mask_polygon(inst.crop, inst.x0, inst.y0)
            if polygon is None:
                self.result.skip("no polygon", "%s: a %r mask too small for a polygon"
                                 % (filepath, inst.label))
                continue
            lines.append(yolo_line(idx, polygon, width, height) + "\n")
        path = os.path.join(self._folder("labels", split), stem + ".txt")
        self._pool.submit(write_text, self._claim(path), "".join(lines))
        if written:
            self.result.labeled_images += 1

    def _finish(self) -> None:
        splits = [s for s in ("train", "val", "test") if s in self._split_counts]
        folders = {}
        for need, other in (("val", "train"), ("train", "val")):  # ultralytics needs both
            if need not in splits and other in splits:
                folders[need] = "images/" + other
                self.result.split_rule += ("; no %s images: data.yaml's %s is images/%s (pass "
                                           "split_ratio to hold some out)" % (need, need, other))
        if not splits:
            raise ValueError("nothing to export: the collection has no images")
        write_text(os.path.join(self.export_dir, "data.yaml"), data_yaml(
            self.export_dir, self._class_list, set(splits) | set(folders), folders))


def export_yolo(
    sample_collection,
    export_dir: str,
    classes=None,
    *,
    label_field: str = "sam",
    export_media="copy",
    unknown: str = "error",
    split_ratio: Optional[float] = None,
    seed: int = 0,
    overwrite: bool = False,
    num_workers: int = 2,
    progress=True,
) -> ExportResult:
    """Exports a segmented collection in ultralytics' YOLO-seg layout (see
    the module doc).

    Args:
        sample_collection: a dataset or view
        export_dir: the folder to write
        classes: a subset name (``"SOTA"``), a list, or None (the dataset's)
        label_field: the Detections field with instance masks
        export_media: ``"copy"``, ``"symlink"`` or ``"move"``
        unknown: ``"error"`` or ``"ignore"`` (leave out and count)
        split_ratio, seed: as :func:`~fiftyone_samrs.export_samrs`
        overwrite: replace an earlier export in the folder
        num_workers: threads writing files
        progress: progress bar (or a FiftyOne progress callback)

    Returns:
        an :class:`~fiftyone_samrs.exporting.common.ExportResult`
    """
    timer = Timer()
    exporter = YOLODatasetExporter(
        export_dir, classes=classes, export_media=export_media, unknown=unknown,
        overwrite=overwrite, num_workers=num_workers, split_ratio=split_ratio, seed=seed,
        instances_field=label_field)
    result = run_export(exporter, sample_collection, label_field, None, None, progress)
    result.labels_path = os.path.join(exporter.export_dir, "data.yaml")
    result.seconds = timer.seconds
    return result


__all__ = ["YOLODatasetExporter", "export_yolo"]
