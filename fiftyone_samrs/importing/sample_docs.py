"""Image records as FiftyOne samples: labels, sample fields, and the fast path's
MongoDB documents.

Fields written (see ``docs/importing.md``):

- ``hbb``: :class:`fiftyone.core.labels.Detections`, the H-Box (RH-Box where
  the source has only rotated boxes), on every sample (empty when the image
  has no objects);
- ``obb``: :class:`fiftyone.core.labels.Polylines`, closed quads drawn as
  outlines (``filled=False``, :data:`OBB_FILLED`: the App then shows the
  masks under them), where the source has rotated boxes;
- ``gt_masks``: :class:`fiftyone.core.labels.Detections` with instance masks
  (``bounding_box`` = the mask crop's box), where ground truth exists;
- label attributes ``obj_index``, ``difficult``, ``truncated``,
  ``source_id``, ``degenerate``, ``rh`` (+ any per-object extras of the
  parser, e.g. HRSC ``class_id``);
- sample fields ``source``, ``split`` (also a tag), ``gsd``,
  ``imagesource``, ``tile_source``/``tile_x``/``tile_y`` for tiles, and the
  record's scalar attributes (HRSC ``all_masked``, FAIR1M ``uid``); like
  FiftyOne's own ``add_samples``, a field whose value is None on every sample
  is not declared;
- ``metadata``: :class:`fiftyone.core.metadata.ImageMetadata` with the width
  and height (and ``num_channels`` where known).

:func:`record_to_sample` / :func:`record_to_labels` build FiftyOne objects
(the reference form). :class:`DocBuilder` builds, for
:func:`fiftyone_samrs.importing.importers.load_records`, exactly the MongoDB documents
that ``Dataset.add_samples(samples, dynamic=True)`` would write (same
``_cls``, ``_id`` per label, ``tags``, ``attributes``, ``_rand``,
``_media_type``, ``created_at`` ...), and a probe sample holding the first
value of every field and attribute seen, from which FiftyOne's own schema
inference declares the schema. ``tests/test_importers.py`` checks the
result against ``add_samples``.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Optional, Tuple

import fiftyone as fo
import fiftyone.core.labels as fol
import numpy as np
from bson import ObjectId

from fiftyone_samrs.core import geometry as geo
from fiftyone_samrs.core import limits
from fiftyone_samrs.core.masks import relative_box
from fiftyone_samrs.core.records import (
    FormatError,
    ImageRecord,
    ImportReport,
    InstanceMask,
    ObjectRecord,
)
from fiftyone_samrs.fiftyone_io import (
    LABEL_LISTS,
    bson_size,
    dataset_dir,
    detection_doc,
    label_doc,
    label_list_doc,
    polyline_doc,
    sample_doc,
)
from fiftyone_samrs.formats.images import image_size

HBB_FIELD = "hbb"
OBB_FIELD = "obb"
GT_FIELD = "gt_masks"

#: per-object attributes every label gets, in this order
#: ``obb`` quads are outlines: a filled polygon would hide the masks under it
#: in the App's sample modal
OBB_FILLED = False

OBJECT_ATTRIBUTES = ("obj_index", "difficult", "truncated", "source_id", "degenerate", "rh")

#: sample fields an importer writes from :class:`ImageRecord` values
RECORD_FIELDS = ("source", "split", "gsd", "imagesource", "tile_source", "tile_x", "tile_y")

#: sample fields declared on every import, even when all values are None (as
#: FiftyOne's own schema-providing importers do), so ``sample.gsd`` etc. work
STANDARD_SAMPLE_FIELDS = {
    "source": fo.StringField,
    "split": fo.StringField,
    "gsd": fo.FloatField,
    "imagesource": fo.StringField,
}

#: label attributes declared on every label field written, with their types
STANDARD_ATTRIBUTE_FIELDS = {
    "obj_index": fo.IntField,
    "difficult": fo.IntField,
    "truncated": fo.BooleanField,
    "source_id": fo.StringField,
    "degenerate": fo.BooleanField,
    "rh": fo.BooleanField,
}

#: record attributes that go into ``metadata`` rather than a sample field
_METADATA_KEYS = ("num_channels",)

#: names a record attribute may not take (FiftyOne's own sample fields)
_RESERVED = {"id", "_id", "filepath", "tags", "metadata", "created_at", "last_modified_at",
             "media_type", "_media_type", "_rand", "_dataset_id", HBB_FIELD, OBB_FIELD, GT_FIELD}

# ---------------------------------------------------------------------------
# record -> label values (shared by the fast path and the FiftyOne-object path)
# ---------------------------------------------------------------------------


def _py(value: Any) -> Any:
    """Plain Python (BSON-encodable) version of a parser value."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return [_py(v) for v in value]
    if isinstance(value, list):
        return [_py(v) for v in value]
    return value


def object_attributes(obj: ObjectRecord, index: int) -> Dict[str, Any]:
    """The attributes of one object's labels (``hbb``, ``obb``, ``gt_masks``).

    Args:
        obj: the object
        index: its position in the image's annotation order (``obj_index``)

    Returns:
        ``{"obj_index", "difficult", "truncated", "source_id", "degenerate",
        "rh", **extras}`` with plain Python values (None where unknown)
    """
    attrs = {
        "obj_index": int(index),
        "difficult": None if obj.difficult is None else int(obj.difficult),
        "truncated": None if obj.truncated is None else bool(obj.truncated),
        "source_id": None if obj.source_id is None else str(obj.source_id),
        "degenerate": bool(obj.degenerate),
        "rh": bool(obj.hbox_is_rh),
    }
    for key, value in obj.attributes.items():
        if key in attrs or key in ("label", "bounding_box", "mask", "points", "id", "tags",
                                   "attributes", "confidence", "index", "closed", "filled"):
            key = "src_" + key
        attrs[key] = _py(value)
    return attrs


def record_fields(record: ImageRecord, report: Optional[ImportReport] = None) -> Dict[str, Any]:
    """The sample-level field values of a record (None values included).

    ``source``, ``split``, ``gsd``, ``imagesource``, ``tile_*`` and the
    record's scalar attributes (e.g. HRSC ``all_masked``, FAIR1M ``uid``).
    Non-scalar attributes are not stored and counted as a warning in
    ``report``.
    """
    tile = record.tile or {}
    fields = {
        "source": record.source or None,
        "split": record.split,
        "gsd": None if record.gsd is None else float(record.gsd),
        "imagesource": record.imagesource,
        "tile_source": None if not tile else str(tile.get("source_image")),
        "tile_x": None if not tile else int(tile.get("x")),
        "tile_y": None if not tile else int(tile.get("y")),
    }
    for key, value in record.attributes.items():
        if key in _METADATA_KEYS:
            continue
        value = _py(value)
        if key in _RESERVED or key in fields or not isinstance(value, (str, int, float, bool,
                                                                          type(None))):
            if report is not None:
                report.warn("attribute not stored",
                            "%s: image attribute %r (%r)" % (record.filepath, key, value))
            continue
        fields[key] = value
    return fields


def record_image_size(record: ImageRecord) -> Tuple[int, int, Optional[int]]:
    """(width, height, num_channels or None) of a record's image (read from
    its header when the record has no size)."""
    channels = record.attributes.get("num_channels")
    if record.width and record.height:
        return int(record.width), int(record.height), channels
    w, h = image_size(record.filepath)
    return int(w), int(h), channels


def _has_quads(record: ImageRecord) -> bool:
    if any(o.quad is not None for o in record.objects):
        return True
    from fiftyone_samrs.formats.registry import quad_sources

    return bool(record.source) and record.source.startswith(quad_sources())


def _quad_points(quad: np.ndarray, width: float, height: float) -> List[List[float]]:
    q = np.asarray(quad, dtype=np.float64).reshape(-1, 2) / (width, height)
    return q.tolist()


def _quads_points(quads: List[np.ndarray], width: float, height: float) -> list:
    """Relative points of many quads at once (one numpy call instead of one per quad)."""
    arrays = [np.asarray(q, dtype=np.float64).reshape(-1, 2) for q in quads]
    if len({a.shape for a in arrays}) == 1:
        return (np.stack(arrays) / (float(width), float(height))).tolist()
    return [_quad_points(a, width, height) for a in arrays]


def mask_box(mask: InstanceMask, width: int, height: int) -> List[float]:
    """The relative box of a mask crop, which FiftyOne renders exactly at the
    crop's pixels (:func:`fiftyone_samrs.core.masks.relative_box`)."""
    return relative_box(mask.box, width, height)


def record_to_labels(record: ImageRecord, width: int, height: int) -> Dict[str, Any]:
    """FiftyOne labels of a record: ``{"hbb": Detections, "obb": Polylines, "gt_masks": ...}``.

    ``obb`` is present where the source has rotated boxes, ``gt_masks`` where
    an object carries a mask. This is the reference (FiftyOne-object) form of
    what :func:`load_records` writes directly.
    """
    dets, polys, masks = [], [], []
    for i, obj in enumerate(record.objects):
        attrs = object_attributes(obj, i)
        dets.append(fol.Detection(label=obj.label,
                                  bounding_box=geo.box_to_relative(obj.hbox, width, height),
                                  **attrs))
        if obj.quad is not None:
            polys.append(fol.Polyline(label=obj.label,
                                      points=[_quad_points(obj.quad, width, height)],
                                      closed=True, filled=OBB_FILLED, **attrs))
        if obj.mask is not None and obj.mask.mask.size:
            masks.append(fol.Detection(label=obj.label,
                                       bounding_box=mask_box(obj.mask, width, height),
                                       mask=obj.mask.mask.astype(bool), **attrs))
    labels = {HBB_FIELD: fol.Detections(detections=dets)}
    if polys or _has_quads(record):
        labels[OBB_FIELD] = fol.Polylines(polylines=polys)
    if masks:
        labels[GT_FIELD] = fol.Detections(detections=masks)
    return labels


def record_to_sample(record: ImageRecord, tags: Optional[List[str]] = None) -> fo.Sample:
    """A :class:`fiftyone.core.sample.Sample` equivalent to what :func:`load_records` writes.

    The slow, FiftyOne-object path: used by the tests (to compare with
    ``add_samples``) and the benchmark. Importers use :func:`load_records`.
    """
    width, height, channels = record_image_size(record)
    fields = {k: v for k, v in record_fields(record).items() if v is not None}
    sample_tags = ([record.split] if record.split else []) + list(tags or [])
    sample = fo.Sample(
        filepath=record.filepath,
        tags=sample_tags,
        metadata=fo.ImageMetadata(width=width, height=height, num_channels=channels),
        **fields,
    )
    for name, label in record_to_labels(record, width, height).items():
        sample[name] = label
    return sample


# ---------------------------------------------------------------------------
# the fast path: MongoDB documents + FiftyOne's own schema inference
# ---------------------------------------------------------------------------


class _ObjectIds:
    """ObjectIds made as bson does (4-byte time, 5-byte process random,
    3-byte counter), ~10x cheaper than ``ObjectId()`` per label."""

    def __init__(self):
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._random = os.urandom(5)
        self._counter = int.from_bytes(os.urandom(3), "big")

    def take(self, n: int, when: datetime) -> List[ObjectId]:
        if os.getpid() != self._pid:  # a forked process must not reuse the parent's ids
            self._reset()
        prefix = int(when.replace(tzinfo=timezone.utc).timestamp()).to_bytes(4, "big") \
            + self._random
        start = self._counter
        self._counter = (start + n) % 0x1000000
        return [ObjectId(prefix + ((start + i) % 0x1000000).to_bytes(3, "big"))
                for i in range(n)]


_OIDS = _ObjectIds()


#: a sample gets its exact document size computed (and checked against
#: :data:`fiftyone_samrs.core.limits.MAX_SAMPLE_BYTES`) from this many labels,
#: or this many bytes of inline masks; below both it is far under the limit
#: (a label is a few hundred bytes)
_EXACT_SIZE_LABELS = 2000
_EXACT_SIZE_MASK_BYTES = 1 << 20


def _mask_bytes(masks: List[dict]) -> int:
    return sum(len(m["mask"]) for m in masks if "mask" in m)


def mask_file_stem(filepath: str) -> str:
    """The folder name of one sample's mask files: the image stem and a
    hash of its path (stems repeat across folders)."""
    import hashlib

    stem = os.path.splitext(os.path.basename(filepath))[0] or "image"
    return "%s-%s" % (stem, hashlib.sha1(os.fsencode(filepath)).hexdigest()[:10])


class DocBuilder:
    """Builds FiftyOne sample documents from records and tracks the schema they need.

    ``top`` holds, per sample field, the first non-None value seen; ``attrs``
    per label field the first non-None value of every attribute; ``labels``
    the label fields seen. A probe sample built from them gets the same
    schema from FiftyOne's inference as the real samples would.
    """

    def __init__(self, dataset: fo.Dataset, tags: Optional[List[str]], report: ImportReport):
        self.dataset = dataset
        self.tags = list(tags or [])
        self.report = report
        self.top: Dict[str, Any] = {}
        self.attrs: Dict[str, Dict[str, Any]] = {}
        self.labels: Dict[str, type] = {}
        self.changed = False
        self.images = 0
        self.objects = 0
        self.labels_written = 0
        self.tiles = 0
        self.label_names: Dict[str, None] = {}
        self.mask_dir: Optional[str] = None

    def _see_attrs(self, field: str, attrs: Dict[str, Any]) -> None:
        seen = self.attrs[field]
        for key, value in attrs.items():
            if value is not None and key not in seen:
                seen[key] = value
                self.changed = True

    def _see_label(self, field: str, cls: type) -> None:
        if field not in self.labels:
            self.labels[field] = cls
            self.attrs[field] = {}
            self.changed = True

    def build(self, record: ImageRecord, now: datetime) -> dict:
        """The sample document of one record (no ``_id``: MongoDB adds it)."""
        width, height, channels = record_image_size(record)
        metadata = {"width": width, "height": height}
        if channels is not None:
            metadata["num_channels"] = int(channels)
        fields = {}
        for key, value in record_fields(record, self.report).items():
            if value is not None:
                fields[key] = value
                if key not in self.top:
                    self.top[key] = value
                    self.changed = True

        dets, polys, masks, mask_arrays = [], [], [], []
        objects = record.objects
        with_quad = [o for o in objects if o.quad is not None]
        points = _quads_points([o.quad for o in with_quad], width, height) if with_quad else []
        n_masks = sum(1 for o in objects if o.mask is not None)
        ids = iter(_OIDS.take(len(objects) + len(with_quad) + n_masks, now))
        k = 0
        for i, obj in enumerate(objects):
            attrs = object_attributes(obj, i)
            label = obj.label
            self.label_names[label] = None
            x0, y0, x1, y1 = obj.hbox
            dets.append(label_doc("Detection", next(ids), label, attrs, bounding_box=[
                x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height]))
            if obj.quad is not None:
                polys.append(polyline_doc(label, [points[k]], oid=next(ids),
                                          filled=OBB_FILLED, **attrs))
                k += 1
            if obj.mask is not None:
                oid = next(ids)
                if obj.mask.mask.size == 0:
                    self.report.warn("empty mask", "%s: object %d (%s) has an empty GT mask; "
                                     "no gt_masks label" % (record.filepath, i, obj.source_id))
                else:
                    masks.append(detection_doc(label, mask_box(obj.mask, width, height),
                                               obj.mask.mask, oid=oid, **attrs))
                    mask_arrays.append(obj.mask.mask)

        fields[HBB_FIELD] = label_list_doc(fol.Detections, dets)
        self._see_label(HBB_FIELD, fol.Detections)
        if dets:
            self._see_attrs(HBB_FIELD, _merge_first(dets))
        if with_quad or _has_quads(record):
            fields[OBB_FIELD] = label_list_doc(fol.Polylines, polys)
            self._see_label(OBB_FIELD, fol.Polylines)
            if polys:
                self._see_attrs(OBB_FIELD, _merge_first(polys))
        if masks:
            fields[GT_FIELD] = label_list_doc(fol.Detections, masks)
            self._see_label(GT_FIELD, fol.Detections)
            self._see_attrs(GT_FIELD, _merge_first(masks))

        if masks and _mask_bytes(masks) > limits.INLINE_MASK_BYTES:
            self._masks_to_files(record, masks, mask_arrays)
        doc = sample_doc(self.dataset, os.path.abspath(os.path.expanduser(record.filepath)),
                         metadata, ([record.split] if record.split else []) + self.tags,
                         fields, now)
        self._check_size(record, doc, len(dets) + len(polys) + len(masks), masks, mask_arrays)
        self.images += 1
        self.tiles += record.tile is not None
        self.objects += len(record.objects)
        self.labels_written += len(dets) + len(polys) + len(masks)
        return doc

    def _check_size(self, record: ImageRecord, doc: dict, n_labels: int, masks: List[dict],
                    mask_arrays: List[np.ndarray]) -> None:
        """Refuses a sample over MongoDB's document limit (with inline GT
        masks, those go to mask files first), saying to tile the image.

        The exact BSON size is computed only for samples that could come near
        the limit (many labels, or megabytes of masks), so this costs nothing
        on ordinary samples.
        """
        if n_labels < _EXACT_SIZE_LABELS and _mask_bytes(masks) < _EXACT_SIZE_MASK_BYTES:
            return
        size = bson_size(doc)
        if size > limits.MAX_SAMPLE_BYTES and any("mask" in m for m in masks):
            self._masks_to_files(record, masks, mask_arrays)
            size = bson_size(doc)
        if size > limits.MAX_SAMPLE_BYTES:
            raise FormatError(record.label_path or record.filepath, "image %s: %s" % (
                record.filepath, limits.too_large_message("", size, len(record.objects))))

    def _masks_to_files(self, record: ImageRecord, masks: List[dict],
                        mask_arrays: List[np.ndarray]) -> None:
        """Writes a sample's GT masks as 8-bit PNG files (``mask_path``)
        instead of inline bytes, and says so in the report."""
        from fiftyone_samrs.core.painting import write_label_png

        if self.mask_dir is None:
            self.mask_dir = dataset_dir(self.dataset, "masks", GT_FIELD)
        folder = os.path.join(self.mask_dir, mask_file_stem(record.filepath))
        moved = 0
        for k, (d, arr) in enumerate(zip(masks, mask_arrays)):
            if "mask" not in d:
                continue
            path = os.path.join(folder, "%d.png" % k)
            write_label_png(path, np.asarray(arr, dtype=bool).astype(np.uint8) * 255)
            moved += len(d.pop("mask"))
            d["mask_path"] = path
        self.report.warn("masks as files",
                         "%s: %d GT masks (%.1f MB inline) written as mask files in %s (over "
                         "the %d MiB per sample kept inline)"
                         % (record.filepath, len(masks), moved / 1e6, folder,
                            limits.INLINE_MASK_BYTES // (1024 * 1024)))

    def probe(self) -> fo.Sample:
        """A sample holding one value of every field and attribute seen so far."""
        sample = fo.Sample(filepath="/samrs-schema-probe.png", **self.top)
        for field, cls in self.labels.items():
            attrs = {k: v for k, v in self.attrs[field].items() if not _is_builtin(k)}
            if cls is fol.Polylines:
                items = [fol.Polyline(label="probe", points=[[[0, 0], [1, 0], [1, 1]]],
                                      closed=True, filled=True, **attrs)] if attrs else []
                sample[field] = fol.Polylines(polylines=items)
            else:
                items = [fol.Detection(label="probe", bounding_box=[0, 0, 1, 1], **attrs)] \
                    if attrs else []
                sample[field] = fol.Detections(detections=items)
        return sample


_BUILTIN_LABEL_KEYS = {"_id", "_cls", "tags", "attributes", "label", "bounding_box", "mask",
                       "points", "closed", "filled"}


def _is_builtin(key: str) -> bool:
    return key in _BUILTIN_LABEL_KEYS


def _merge_first(items: List[dict]) -> Dict[str, Any]:
    """First non-None value of every key over a list of label docs."""
    out: Dict[str, Any] = {}
    for item in items:
        for key, value in item.items():
            if value is not None and key not in out and not _is_builtin(key):
                out[key] = value
    return out


def declare_standard_fields(dataset: fo.Dataset, label_fields: Iterable[str]) -> None:
    """Declares :data:`STANDARD_SAMPLE_FIELDS` and, on each label field,
    :data:`STANDARD_ATTRIBUTE_FIELDS`, where not declared yet.

    ``add_samples`` only declares fields it has seen a non-None value of;
    like FiftyOne's schema-providing importers, the importers declare their
    standard fields up front, so ``sample.gsd`` or filtering on
    ``hbb.detections.truncated`` work even when no source value was given.
    """
    schema = dataset.get_field_schema(flat=True)
    for name, ftype in STANDARD_SAMPLE_FIELDS.items():
        if name not in schema:
            dataset.add_sample_field(name, ftype)
    for field in label_fields:
        kind = schema.get(field)
        doc_type = getattr(kind, "document_type", None)
        if doc_type is None:
            continue
        list_name = LABEL_LISTS.get(doc_type)
        if list_name is None:
            continue
        for attr, ftype in STANDARD_ATTRIBUTE_FIELDS.items():
            path = "%s.%s.%s" % (field, list_name, attr)
            if path not in schema:
                dataset.add_sample_field(path, ftype)
