"""iSAID ground-truth instance masks for the DOTA v1.0 samples of a dataset.

:func:`load_isaid_masks` finds each sample's iSAID PNG pair, crops the
instances to tiles, matches them to the sample's ``hbb``/``obb`` objects
(:mod:`fiftyone_samrs.formats.isaid`) and writes them as ``gt_masks``.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Dict, List, Optional, Tuple

import fiftyone.core.labels as fol
import numpy as np

from fiftyone_samrs.core import classes as fsc
from fiftyone_samrs.core.records import FormatError, ImportReport, ObjectRecord
from fiftyone_samrs.fiftyone_io import dataset_of, label_attr, object_inputs
from fiftyone_samrs.formats.images import image_size
from fiftyone_samrs.importing.report import report_to_dict, update_samrs_info
from fiftyone_samrs.importing.sample_docs import (
    GT_FIELD,
    HBB_FIELD,
    OBB_FIELD,
    mask_box,
)
from fiftyone_samrs.importing.tiling import crop_mask

_ISAID_ID_SUFFIX = "_instance_id_RGB.png"
_ISAID_COLOR_SUFFIX = "_instance_color_RGB.png"


def _isaid_index(isaid_dir: str) -> Dict[str, Tuple[str, str]]:
    """``{image stem: (instance_id png, instance_color png)}`` found under ``isaid_dir``."""
    from fiftyone_samrs.core.paths import walk_files

    index = {}
    for id_path in walk_files(str(isaid_dir), _ISAID_ID_SUFFIX):
        stem = os.path.basename(id_path)[: -len(_ISAID_ID_SUFFIX)]
        color_path = id_path[: -len(_ISAID_ID_SUFFIX)] + _ISAID_COLOR_SUFFIX
        index.setdefault(stem, (id_path, color_path))
    return index


def _objects_from_sample(sample, hbb_field: str, obb_field: Optional[str], width: int,
                         height: int) -> List[ObjectRecord]:
    """Pixel-space objects of a sample, in ``hbb`` order (for matching).

    Each object's quad is the ``obb`` polyline with the same ``obj_index``.
    """
    dets = sample[hbb_field].detections if sample[hbb_field] is not None else []
    polys = None
    if obb_field:
        polys = sample[obb_field].polylines if sample[obb_field] is not None else []
    objs = object_inputs(dets, polys, width, height, whole=False)
    out = []
    for i, d in enumerate(dets):
        quad = objs.quads[i] if objs.quads is not None else None
        out.append(ObjectRecord(
            label=objs.labels[i], hbox=tuple(objs.hboxes[i]),
            quad=quad if quad is not None and np.isfinite(quad).all() else None,
            attributes={"obj_index": objs.obj_indexes[i],
                        "source_id": label_attr(d, "source_id")}))
    return out


def _fit_masks(dataset, sample, dets: List[fol.Detection], gt_field: str,
               report: ImportReport) -> None:
    """Moves a sample's GT masks to mask files (``mask_path``) when inline
    they would take more than :data:`~fiftyone_samrs.core.limits.INLINE_MASK_BYTES`
    or push the sample past MongoDB's document limit (as the importers do).

    Raises:
        FormatError: naming the image, when the sample is over the limit even so
    """
    from fiftyone_samrs.core import limits
    from fiftyone_samrs.core.painting import write_label_png
    from fiftyone_samrs.fiftyone_io import dataset_dir, document_sizes, serialize_mask
    from fiftyone_samrs.importing.sample_docs import mask_file_stem

    inline = sum(len(serialize_mask(d.mask)) for d in dets if d.mask is not None)
    estimate = inline + 400 * len(dets)  # a label without its mask: a few hundred bytes
    if inline <= limits.INLINE_MASK_BYTES and estimate < limits.MAX_SAMPLE_BYTES // 4:
        return
    stored = document_sizes(dataset, [sample.id], [gt_field]).get(sample.id, 0)
    if inline > limits.INLINE_MASK_BYTES or stored + estimate > limits.MAX_SAMPLE_BYTES:
        folder = os.path.join(dataset_dir(dataset, "masks", gt_field),
                              mask_file_stem(sample.filepath))
        for k, d in enumerate(dets):
            if d.mask is None:
                continue
            path = os.path.join(folder, "%d.png" % k)
            write_label_png(path, np.asarray(d.mask, dtype=bool).astype(np.uint8) * 255)
            d.mask, d.mask_path = None, path
        report.warn("masks as files", "%s: %d iSAID masks (%.1f MB inline) written as mask "
                    "files in %s" % (sample.filepath, len(dets), inline / 1e6, folder))
        estimate = 400 * len(dets)
    if stored + estimate > limits.MAX_SAMPLE_BYTES:
        raise FormatError(sample.filepath, limits.too_large_message(
            "", stored + estimate, len(dets)))


def _check_v1(dataset, root, fields, report: ImportReport) -> None:
    """Warns (``warnings.warn`` and a counted report warning) when the
    samples are not DOTA v1.0, the images iSAID annotates."""
    sources = sorted(s for s in dataset.distinct("source") if s) if "source" in fields else []
    others = [s for s in sources if s != "DOTA-v1.0"]
    if not others:
        return
    info = (root.info or {}).get("samrs") or {}
    how = info.get("version_source")
    message = (
        "iSAID annotates DOTA v1.0 images, but these samples are %s%s: the masks are matched "
        "all the same, by overlap. If the images are DOTA v1.0, re-import them with "
        "version='1.0' (CLI: -k version=1.0)"
        % (", ".join(others), " (version %s)" % how if how and how != "given" else ""))
    report.warn("not DOTA v1.0", message)
    warnings.warn(message, stacklevel=3)


def load_isaid_masks(dataset, isaid_dir, *, gt_field: str = GT_FIELD, min_iou: float = 0.3,
                     hbb_field: str = HBB_FIELD, obb_field: str = OBB_FIELD,
                     progress: bool = True) -> ImportReport:
    """Adds iSAID instance masks to the DOTA v1.0 samples of a dataset as ``gt_masks``.

    For each sample, the iSAID pair ``<stem>_instance_id_RGB.png`` /
    ``<stem>_instance_color_RGB.png`` is looked up anywhere under
    ``isaid_dir`` (``stem`` = the image's, or for a tile the source image's
    stem; tile samples get the instances cropped to their window). Instances
    are matched one-to-one to the ``hbb``/``obb`` objects by overlap
    (:func:`fiftyone_samrs.formats.isaid.match_to_objects`); a matched mask
    gets the object's label and ``obj_index``; an unmatched instance is kept
    with its iSAID class and ``obj_index`` None, counted as a warning.
    Samples without iSAID files are counted as skips. The PNG pair must have
    the DOTA image's size and look lossless (see
    :func:`fiftyone_samrs.formats.isaid.read_instances`); object regions are
    cut to the sample before rasterising, so a quad far outside its image
    costs nothing.

    Args:
        dataset: a dataset (or view) imported with :func:`load_dota`
        isaid_dir: folder holding the iSAID PNG pairs (searched recursively)
        gt_field: field to write (replaced on matched samples)
        min_iou: minimum overlap for a match
        hbb_field, obb_field: the object fields to match against
        progress: show a progress bar

    Returns:
        an :class:`ImportReport`: ``images`` = samples given masks,
        ``objects`` = masks written; also stored as
        ``dataset.info["samrs"]["isaid_report"]``

    Warns (``UserWarning``, and a counted report warning) when the samples
    are not DOTA v1.0, e.g. a v1.0 tree whose float coordinates made the
    importer guess v1.5.

    Raises:
        FormatError: no iSAID files, a missing colour PNG, a PNG whose size
            is not its image's (naming the PNG and both sizes), or a lossy
            looking instance PNG; nothing is written then
    """
    from fiftyone_samrs.formats import isaid

    report = ImportReport()
    index = _isaid_index(isaid_dir)
    if not index:
        raise FormatError(isaid_dir, "no iSAID *%s files found" % _ISAID_ID_SUFFIX)
    root = dataset_of(dataset)
    fields = root.get_field_schema()
    _check_v1(dataset, root, fields, report)
    tiled = "tile_source" in fields
    select = ["filepath", "metadata", hbb_field] + ([obb_field] if obb_field in fields else [])
    if tiled:
        select += ["tile_source", "tile_x", "tile_y"]
    values: Dict[str, Any] = {}
    cache: Dict[str, list] = {}
    seen_labels: Dict[str, None] = {}
    view = dataset.select_fields([f for f in select if f in fields])
    for sample in view.iter_samples(progress=progress):
        src = sample["tile_source"] if tiled and sample["tile_source"] else None
        stem = os.path.splitext(os.path.basename(src or sample.filepath))[0]
        if stem not in index:
            report.skip("image without iSAID files",
                        "%s: no %s%s under %s" % (sample.filepath, stem, _ISAID_ID_SUFFIX,
                                                  isaid_dir))
            continue
        id_png, color_png = index[stem]
        if sample.metadata is None or not sample.metadata.width:
            raise FormatError(sample.filepath, "sample has no metadata width/height")
        width, height = sample.metadata.width, sample.metadata.height
        if stem not in cache:
            if not os.path.exists(color_png):
                raise FormatError(color_png, "missing (the class colours for %s)" % id_png)
            # the PNGs must have the DOTA image's size: the sample's, or for a
            # tile its source image's (read from the header)
            expected: Optional[Tuple[int, int]] = (width, height)
            if src:
                if os.path.isfile(src):
                    expected = image_size(src)
                else:
                    expected = None
                    report.warn("iSAID size not checked",
                                "%s: source image %s is gone; the size of %s is not checked"
                                % (sample.filepath, src, os.path.basename(id_png)))
            cache.clear()  # tiles of one source come together; keep one image's instances
            cache[stem] = isaid.read_instances(id_png, color_png, size=expected)
        instances = cache[stem]
        if src:
            ox, oy = int(sample["tile_x"]), int(sample["tile_y"])
            cropped = []
            for inst, cls in instances:
                c = crop_mask(inst, ox, oy, width, height)
                if c is not None:
                    cropped.append((c, cls))
            instances_here = cropped
        else:
            instances_here = instances
        objects = _objects_from_sample(sample, hbb_field,
                                       obb_field if obb_field in fields else None, width, height)
        matched = isaid.match_to_objects(instances_here, objects, min_iou=min_iou,
                                         width=width, height=height)
        used = set()
        dets = []
        class_of = {id(inst): cls for inst, cls in instances_here}
        for obj, m in zip(objects, matched):
            if m is None:
                continue
            used.add(id(m))
            isaid_class = class_of.get(id(m))
            if isaid_class != obj.label:
                report.warn("cross-class match",
                            "%s (%s): the %s box got the mask of an iSAID %s instance of %s "
                            "(kept with the box's label; isaid_label says the instance's)"
                            % (sample.filepath, obj.attributes.get("source_id"), obj.label,
                               isaid_class, os.path.basename(id_png)))
            dets.append(fol.Detection(label=obj.label, bounding_box=mask_box(m, width, height),
                                      mask=m.mask.astype(bool),
                                      obj_index=int(obj.attributes["obj_index"]),
                                      source_id=obj.attributes.get("source_id"),
                                      isaid_label=isaid_class))
            seen_labels[obj.label] = None
        for inst, cls in instances_here:
            if id(inst) in used:
                continue
            report.warn("unmatched iSAID instance",
                        "%s: a %s instance of %s matched no box (IoU < %g)"
                        % (sample.filepath, cls, os.path.basename(id_png), min_iou))
            dets.append(fol.Detection(label=cls, bounding_box=mask_box(inst, width, height),
                                      mask=inst.mask.astype(bool), obj_index=None,
                                      source_id=os.path.basename(id_png)))
            seen_labels[cls] = None
        unmatched_objects = sum(m is None for m in matched)
        if unmatched_objects:
            report.warn("object without iSAID mask",
                        "%s: %d of %d objects have no iSAID instance"
                        % (sample.filepath, unmatched_objects, len(objects)))
        _fit_masks(root, sample, dets, gt_field, report)
        values[sample.id] = fol.Detections(detections=dets)
        report.images += 1
        report.objects += len(dets)
    if values:
        root.set_values(gt_field, values, key_field="id", dynamic=True)
    update_samrs_info(root, {"isaid_report": report_to_dict(report)})
    cls_map = dict(root.classes)
    base = cls_map.get(hbb_field) or list(fsc.SOTA)
    cls_map[gt_field] = base + sorted(c for c in seen_labels if c not in base)
    root.classes = cls_map
    root.save()
    return report
