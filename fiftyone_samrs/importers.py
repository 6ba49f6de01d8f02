"""FiftyOne importers for DOTA, DIOR, FAIR1M and HRSC2016 (and iSAID GT masks).

Each source format is reachable three ways, all on one implementation
(:func:`load_records`):

- SDK: :func:`load_dota`, :func:`load_dior`, :func:`load_fair1m`,
  :func:`load_hrsc` (and :func:`load_isaid_masks` to add iSAID ground-truth
  masks to a DOTA v1.0 dataset);
- FiftyOne dataset types: ``fo.Dataset.from_dir(d, dataset_type=fsr.types.DOTADataset)``
  (the importer classes below);
- the CLI: ``samrs import dota DIR --name NAME``.

The parsers in :mod:`fiftyone_samrs.formats` yield plain
:class:`~fiftyone_samrs.records.ImageRecord` s in source pixels; this module
converts them to FiftyOne's relative coordinates and writes them.

Fields written (see ``docs/importing.md``):

- ``hbb``: :class:`fiftyone.core.labels.Detections`, the H-Box (RH-Box where
  the source has only rotated boxes), on every sample (empty when the image
  has no objects);
- ``obb``: :class:`fiftyone.core.labels.Polylines`, closed and filled quads,
  where the source has rotated boxes;
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

Speed: the samples are not built as :class:`fiftyone.core.sample.Sample`
objects. :func:`load_records` writes exactly the MongoDB documents that
``Dataset.add_samples(samples, dynamic=True)`` would write (same ``_cls``,
``_id`` per label, ``tags``, ``attributes``, ``_rand``, ``_media_type``,
``created_at`` ...), declares the schema FiftyOne would infer from them
(through FiftyOne's own schema inference on a probe sample holding the first
value of every field and attribute seen), and bulk-inserts the documents.
``tests/test_importers.py`` checks the result against ``add_samples``.
"""

from __future__ import annotations

import glob
import logging
import os
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np

import fiftyone as fo
import fiftyone.core.labels as fol
import fiftyone.core.odm.sample as foos
import fiftyone.core.utils as fou
import fiftyone.utils.data as foud
from bson import ObjectId

from fiftyone_samrs import classes as fsc
from fiftyone_samrs import geometry as geo
from fiftyone_samrs.records import FormatError, ImageRecord, ImportReport, InstanceMask, ObjectRecord

logger = logging.getLogger(__name__)

HBB_FIELD = "hbb"
OBB_FIELD = "obb"
GT_FIELD = "gt_masks"

#: per-object attributes every label gets, in this order
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

#: source names whose objects have rotated boxes (``obb`` even when empty)
_QUAD_SOURCES = ("DOTA", "DIOR-R", "FAIR1M", "HRSC")


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


def _image_size(record: ImageRecord) -> Tuple[int, int, Optional[int]]:
    """(width, height, num_channels or None) of a record's image."""
    channels = record.attributes.get("num_channels")
    if record.width and record.height:
        return int(record.width), int(record.height), channels
    try:
        from fiftyone_samrs.formats.images import image_size

        w, h = image_size(record.filepath)
        return int(w), int(h), channels
    except ImportError:  # pragma: no cover - formats.images is part of the package
        from PIL import Image

        try:
            with Image.open(record.filepath) as im:
                return im.width, im.height, len(im.getbands())
        except Exception as e:
            raise FormatError(record.filepath, "cannot read the image header: %s" % e) from e


def _has_quads(record: ImageRecord) -> bool:
    if any(o.quad is not None for o in record.objects):
        return True
    return bool(record.source) and record.source.startswith(_QUAD_SOURCES)


def _quad_points(quad: np.ndarray, width: float, height: float) -> List[List[float]]:
    q = np.asarray(quad, dtype=np.float64).reshape(-1, 2) / (width, height)
    return q.tolist()


def _quads_points(quads: List[np.ndarray], width: float, height: float) -> list:
    """Relative points of many quads at once (one numpy call instead of one per quad)."""
    arrays = [np.asarray(q, dtype=np.float64).reshape(-1, 2) for q in quads]
    if len({a.shape for a in arrays}) == 1:
        return (np.stack(arrays) / (float(width), float(height))).tolist()
    return [_quad_points(a, width, height) for a in arrays]


def _mask_box(mask: InstanceMask, width: int, height: int) -> List[float]:
    return geo.box_to_relative(mask.box, width, height)


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
                                      closed=True, filled=True, **attrs))
        if obj.mask is not None and obj.mask.mask.size:
            masks.append(fol.Detection(label=obj.label,
                                       bounding_box=_mask_box(obj.mask, width, height),
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
    width, height, channels = _image_size(record)
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


class _DocBuilder:
    """Builds FiftyOne sample documents from records and tracks the schema they need.

    ``top`` holds, per sample field, the first non-None value seen; ``attrs``
    per label field the first non-None value of every attribute; ``labels``
    the label fields seen. A probe sample built from them gets the same
    schema from FiftyOne's inference as the real samples would.
    """

    def __init__(self, dataset_id, tags: Optional[List[str]], report: ImportReport):
        self.dataset_id = dataset_id
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
        width, height, channels = _image_size(record)
        filepath = os.path.abspath(os.path.expanduser(record.filepath))
        metadata = {"_cls": "ImageMetadata", "width": width, "height": height}
        if channels is not None:
            metadata["num_channels"] = int(channels)
        doc = {
            "filepath": filepath,
            "tags": ([record.split] if record.split else []) + self.tags,
            "metadata": metadata,
            "_media_type": "image",
            "_rand": foos._generate_rand(),
        }
        for key, value in record_fields(record, self.report).items():
            if value is not None:
                doc[key] = value
                if key not in self.top:
                    self.top[key] = value
                    self.changed = True

        dets, polys, masks = [], [], []
        objects = record.objects
        with_quad = [o for o in objects if o.quad is not None]
        quads = bool(with_quad)
        points = []
        if with_quad:
            points = _quads_points([o.quad for o in with_quad], width, height)
        n_masks = sum(1 for o in objects if o.mask is not None)
        ids = iter(_OIDS.take(len(objects) + len(with_quad) + n_masks, now))
        k = 0
        for i, obj in enumerate(objects):
            attrs = object_attributes(obj, i)
            label = obj.label
            self.label_names[label] = None
            x0, y0, x1, y1 = obj.hbox
            det = {"_id": next(ids), "_cls": "Detection", "tags": [], "attributes": {},
                   "label": label,
                   "bounding_box": [x0 / width, y0 / height, (x1 - x0) / width,
                                    (y1 - y0) / height]}
            det.update(attrs)
            dets.append(det)
            if obj.quad is not None:
                poly = {"_id": next(ids), "_cls": "Polyline", "tags": [], "attributes": {},
                        "label": label, "points": [points[k]], "closed": True, "filled": True}
                k += 1
                poly.update(attrs)
                polys.append(poly)
            if obj.mask is not None:
                oid = next(ids)
                if obj.mask.mask.size == 0:
                    self.report.warn("empty mask", "%s: object %d (%s) has an empty GT mask; "
                                     "no gt_masks label" % (record.filepath, i, obj.source_id))
                else:
                    m = {"_id": oid, "_cls": "Detection", "tags": [], "attributes": {},
                         "label": label, "bounding_box": _mask_box(obj.mask, width, height),
                         "mask": fou.serialize_numpy_array(obj.mask.mask.astype(bool))}
                    m.update(attrs)
                    masks.append(m)

        doc[HBB_FIELD] = {"_cls": "Detections", "detections": dets}
        self._see_label(HBB_FIELD, fol.Detections)
        if dets:
            self._see_attrs(HBB_FIELD, _merge_first(dets))
        if quads or _has_quads(record):
            doc[OBB_FIELD] = {"_cls": "Polylines", "polylines": polys}
            self._see_label(OBB_FIELD, fol.Polylines)
            if polys:
                self._see_attrs(OBB_FIELD, _merge_first(polys))
        if masks:
            doc[GT_FIELD] = {"_cls": "Detections", "detections": masks}
            self._see_label(GT_FIELD, fol.Detections)
            self._see_attrs(GT_FIELD, _merge_first(masks))

        doc["_dataset_id"] = self.dataset_id
        doc["created_at"] = now
        doc["last_modified_at"] = now
        self.images += 1
        self.tiles += record.tile is not None
        self.objects += len(record.objects)
        self.labels_written += len(dets) + len(polys) + len(masks)
        return doc

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
        list_name = doc_type._LABEL_LIST_FIELD if hasattr(doc_type, "_LABEL_LIST_FIELD") \
            else None
        if list_name is None:
            continue
        for attr, ftype in STANDARD_ATTRIBUTE_FIELDS.items():
            path = "%s.%s.%s" % (field, list_name, attr)
            if path not in schema:
                dataset.add_sample_field(path, ftype)


def _get_or_create(name: Optional[str], dataset, overwrite: bool, persistent: bool) -> fo.Dataset:
    if dataset is not None:
        return dataset
    if name and fo.dataset_exists(name):
        if not overwrite:
            raise ValueError(
                "A FiftyOne dataset named %r already exists: pass overwrite=True "
                "(CLI: --overwrite) to replace it, or choose another name" % name
            )
        fo.delete_dataset(name)
    return fo.Dataset(name, persistent=persistent)


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _class_list(fmt: str, classes: Optional[List[str]], seen: Iterable[str]) -> List[str]:
    if classes is not None:
        base = fsc.resolve_classes(classes)
    elif fmt in fsc.DEFAULT_SUBSET:
        base = list(fsc.SUBSETS[fsc.DEFAULT_SUBSET[fmt]])
    else:
        base = []
    extra = [c for c in seen if c not in base]
    return base + sorted(extra)


def report_to_dict(report: ImportReport, max_messages: int = 1000,
                   source: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
    """JSON-friendly form of an :class:`ImportReport` (stored in ``dataset.info``).

    Args:
        report: the report
        max_messages: how many messages to keep (``num_messages`` has the total)
        source: for tiled imports, ``{"source_images", "source_objects"}``
            the parser read (``images``/``objects`` are the tiles written)
    """
    summary = report.summary()
    d = {
        "images": report.images,
        "objects": report.objects,
        "skipped": dict(report.skipped),
        "warnings": dict(report.warned),
        "messages": report.messages[:max_messages],
        "num_messages": len(report.messages),
    }
    if source:
        d.update(source)
        first, _, rest = summary.partition("\n")
        summary = "%s (tiles of %d source images with %d objects)%s" % (
            first, source["source_images"], source["source_objects"], "\n" + rest if rest else "")
    d["summary"] = summary
    return d


def load_records(
    records: Iterable[ImageRecord],
    name: Optional[str] = None,
    dataset: Optional[fo.Dataset] = None,
    overwrite: bool = False,
    persistent: bool = True,
    fmt: str = "",
    classes: Optional[List[str]] = None,
    report: Optional[ImportReport] = None,
    batch_size: int = 1000,
    progress: bool = True,
    source_dir: Optional[str] = None,
    tags: Optional[List[str]] = None,
) -> fo.Dataset:
    """Writes image records into a FiftyOne dataset, fast.

    The documents are exactly those ``dataset.add_samples(samples, dynamic=True)``
    would write for :func:`record_to_sample` samples, bulk-inserted in
    batches after declaring their schema.

    Args:
        records: the records, e.g. from ``formats.dota.scan``
        name: name of a new dataset (None: FiftyOne picks one)
        dataset: an existing dataset to add to (then ``name`` is ignored)
        overwrite: replace an existing dataset called ``name``; without it an
            existing name is an error
        persistent: whether a new dataset is persistent
        fmt: the source format (``"dota"``, ``"dior"``, ``"fair1m"``,
            ``"hrsc"``), recorded in ``dataset.info["samrs"]``
        classes: class list for ``dataset.classes`` (default: the format's
            SAMRS subset, then any other label seen, sorted)
        report: the import report the parser filled (skips, warnings); its
            ``images``/``objects`` are set to what this call wrote
        batch_size: samples per bulk insert
        progress: show a progress bar
        source_dir: recorded in ``dataset.info["samrs"]["source_dir"]``
        tags: extra tags for every sample

    Returns:
        the dataset; ``dataset.info["samrs"]["import_report"]`` holds the report
        as a dict (``summary`` is the printable text; :func:`import_report`
        rebuilds the :class:`ImportReport`)
    """
    report = report if report is not None else ImportReport()
    created = dataset is None
    dataset = _get_or_create(name, dataset, overwrite, persistent)
    try:
        _insert_records(dataset, records, fmt, classes, report, batch_size, progress,
                        source_dir, tags)
    except BaseException:
        if created and not dataset.deleted:
            dataset.delete()  # no half-imported dataset left behind
        raise
    return dataset


def _insert_records(dataset, records, fmt, classes, report, batch_size, progress, source_dir,
                    tags) -> None:
    if dataset.media_type is None:
        dataset.media_type = "image"
    elif dataset.media_type != "image":
        raise ValueError("Cannot import images into a %s dataset" % dataset.media_type)

    builder = _DocBuilder(dataset._doc.id, tags, report)
    coll = dataset._sample_collection
    from tqdm import tqdm

    with tqdm(desc="importing", unit="img", disable=not progress, mininterval=0.5) as bar:
        for batch in _batches(records, batch_size):
            now = datetime.utcnow()
            docs = [builder.build(r, now) for r in batch]
            if builder.changed:
                dataset._expand_schema(builder.probe(), dynamic=True)
                builder.changed = False
            if docs:
                coll.insert_many(docs, ordered=False)
            bar.update(len(docs))

    declare_standard_fields(dataset, list(builder.labels))
    # a parser counts what it read; with tiling that differs from what was written
    scanned = (report.images, report.objects)
    source = None
    if builder.tiles and scanned[0]:
        source = {"source_images": scanned[0], "source_objects": scanned[1]}
    report.images = builder.images
    report.objects = builder.objects
    _finish(dataset, fmt, classes, builder.label_names, report, source_dir,
            fields=list(builder.labels), source=source)
    logger.info("Imported %d images, %d objects", report.images, report.objects)


def _finish(dataset, fmt, classes, seen_labels, report, source_dir, fields,
            source=None) -> None:
    info = dict(dataset.info)
    samrs = dict(info.get("samrs") or {})
    samrs.update({
        "format": fmt,
        "subset": fsc.DEFAULT_SUBSET.get(fmt),
        "source_dir": None if source_dir is None else os.path.abspath(str(source_dir)),
        "import_report": report_to_dict(report, source=source),
    })
    info["samrs"] = samrs
    dataset.info = info
    class_list = _class_list(fmt, classes, seen_labels)
    dataset_classes = dict(dataset.classes)
    for field in fields:
        dataset_classes[field] = class_list
    dataset.classes = dataset_classes
    dataset.save()


def import_report(dataset: fo.Dataset, key: str = "import_report") -> ImportReport:
    """The :class:`ImportReport` of the last import into ``dataset``, from its info.

    Args:
        dataset: a dataset imported by this module
        key: ``"import_report"`` or ``"isaid_report"``
    """
    d = (dataset.info.get("samrs") or {}).get(key)
    if d is None:
        raise ValueError("Dataset %r has no samrs %s" % (dataset.name, key))
    from collections import Counter

    return ImportReport(images=d["images"], objects=d["objects"],
                        skipped=Counter(d["skipped"]), warned=Counter(d["warnings"]),
                        messages=list(d["messages"]))


# ---------------------------------------------------------------------------
# per-format loaders
# ---------------------------------------------------------------------------


def _tile_dir(dataset: fo.Dataset, tile_dir: Optional[str]) -> str:
    if tile_dir:
        return os.path.abspath(tile_dir)
    return os.path.join(fo.config.default_dataset_dir, dataset.name, "tiles")


def _tiled(records, fmt, dataset, tile, tile_dir, tile_size, gap, keep_thresh, report,
           tile_options=None):
    """Routes records through :func:`fiftyone_samrs.tiling.tile_images` when asked."""
    if not tile:
        return records
    from fiftyone_samrs import tiling

    defaults = tiling.DEFAULTS.get(fmt) or tiling.DEFAULTS["dota"]
    opts = dict(tile_options or {})
    return tiling.tile_images(
        records,
        _tile_dir(dataset, tile_dir),
        size=tile_size if tile_size is not None else defaults["size"],
        gap=gap if gap is not None else defaults["gap"],
        keep_thresh=keep_thresh if keep_thresh is not None else defaults["keep_thresh"],
        report=report,
        **opts,
    )


def _load(fmt: str, scan: Callable[[ImportReport], Iterable[ImageRecord]], dataset_dir,
          name, dataset, tile, tile_dir, tile_size, gap, keep_thresh, overwrite, persistent,
          progress, classes=None, tags=None, tile_options=None, batch_size=1000):
    if not os.path.isdir(str(dataset_dir)):
        raise FormatError(dataset_dir, "not a directory")
    report = ImportReport()
    created = dataset is None
    dataset = _get_or_create(name, dataset, overwrite, persistent)
    try:
        records = scan(report)
        records = _tiled(records, fmt, dataset, tile, tile_dir, tile_size, gap, keep_thresh,
                         report, tile_options)
        return load_records(records, dataset=dataset, fmt=fmt, classes=classes, report=report,
                            progress=progress, source_dir=dataset_dir, tags=tags,
                            batch_size=batch_size)
    except BaseException:
        if created and not dataset.deleted:
            dataset.delete()  # no half-imported dataset left behind
        raise


def load_dota(dataset_dir, name=None, version=None, split=None, tile=False, tile_dir=None,
              tile_size=None, gap=None, keep_thresh=None, keep_unknown=False, unlabeled="skip",
              overwrite=False, persistent=True, progress=True, dataset=None, classes=None,
              tags=None, tile_options=None, batch_size=1000) -> fo.Dataset:
    """Imports a DOTA v1.0/1.5/2.0 tree (``images/`` + ``labelTxt/``, or split folders).

    Args:
        dataset_dir: the DOTA root (with ``images/`` and ``labelTxt/``, or
            ``train/``, ``val/``, ``test/`` folders holding them)
        name: dataset name
        version: ``"1.0"``, ``"1.5"``, ``"2.0"`` or None (detected)
        split: the split to import (None: all found)
        tile: cut the images into tiles first (DOTA devkit style) and import
            the tiles
        tile_dir: where the tile images go (default
            ``<fo.config.default_dataset_dir>/<name>/tiles``)
        tile_size, gap, keep_thresh: tiling settings (default 1024, 200, 0.7)
        keep_unknown: keep objects of unknown classes (counted warning)
            instead of raising
        unlabeled: ``"skip"`` (counted) or ``"keep"`` images without label files
        overwrite: replace an existing dataset of that name
        persistent: make the dataset persistent
        progress: show progress bars
        dataset: add to this existing dataset instead of creating one
        classes: class list for ``dataset.classes`` (default SOTA)
        tags: extra tags for every sample
        tile_options: extra keyword arguments for
            :func:`fiftyone_samrs.tiling.tile_images` (``skip_empty``,
            ``pad``, ``ext``, ``workers``)
        batch_size: samples per bulk insert

    Returns:
        the dataset (``dataset.info["samrs"]["import_report"]`` has the report)
    """
    from fiftyone_samrs.formats import dota

    def scan(report):
        return dota.scan(dataset_dir, version=version, split=split, keep_unknown=keep_unknown,
                         unlabeled=unlabeled, report=report)

    return _load("dota", scan, dataset_dir, name, dataset, tile, tile_dir, tile_size, gap,
                 keep_thresh, overwrite, persistent, progress, classes, tags, tile_options,
                 batch_size)


def load_dior(dataset_dir, name=None, split=None, unlabeled="skip", tile=False, tile_dir=None,
              tile_size=None, gap=None, keep_thresh=None, overwrite=False, persistent=True,
              progress=True, dataset=None, classes=None, tags=None, tile_options=None,
              batch_size=1000) -> fo.Dataset:
    """Imports DIOR / DIOR-R (JPEG images, HBB and/or OBB VOC-style XML).

    Args:
        dataset_dir: the DIOR root (``JPEGImages-*``, ``Annotations``, ``ImageSets``)
        name: dataset name
        split: ``"train"``, ``"val"``, ``"test"`` or None (all)
        unlabeled: ``"skip"`` (counted) or ``"keep"`` images without annotations
        tile...: as :func:`load_dota` (DIOR images are 800x800, so tiling is
            off by default and has no format defaults: DOTA's are used)
        overwrite, persistent, progress, dataset, classes, tags, batch_size:
            as :func:`load_dota` (default classes: SIOR)
    """
    from fiftyone_samrs.formats import dior

    def scan(report):
        return dior.scan(dataset_dir, split=split, report=report, unlabeled=unlabeled)

    return _load("dior", scan, dataset_dir, name, dataset, tile, tile_dir, tile_size, gap,
                 keep_thresh, overwrite, persistent, progress, classes, tags, tile_options,
                 batch_size)


def load_fair1m(dataset_dir, name=None, tile=False, tile_dir=None, tile_size=None, gap=None,
                keep_thresh=None, overwrite=False, persistent=True, progress=True, dataset=None,
                classes=None, tags=None, tile_options=None, batch_size=1000) -> fo.Dataset:
    """Imports FAIR1M 1.0/2.0 (``.tif`` images, ``labelXml`` polygons).

    ``hbb`` holds the RH-Box of each rotated box (``rh`` = True). Tiling
    defaults are FAIR1M's: 600 / 150 / 0.5.

    Args:
        dataset_dir: the FAIR1M root (``train/part*/``, ``validation/``, or
            ``images/`` + ``labelXml/``)
        name, tile, tile_dir, tile_size, gap, keep_thresh, overwrite, persistent,
        progress, dataset, classes, tags, tile_options, batch_size: as
            :func:`load_dota` (default classes: FAST)
    """
    from fiftyone_samrs.formats import fair1m

    def scan(report):
        return fair1m.scan(dataset_dir, report=report)

    return _load("fair1m", scan, dataset_dir, name, dataset, tile, tile_dir, tile_size, gap,
                 keep_thresh, overwrite, persistent, progress, classes, tags, tile_options,
                 batch_size)


def load_hrsc(dataset_dir, name=None, split=None, with_masks=True, tile=False, tile_dir=None,
              tile_size=None, gap=None, keep_thresh=None, overwrite=False, persistent=True,
              progress=True, dataset=None, classes=None, tags=None, tile_options=None,
              batch_size=1000) -> fo.Dataset:
    """Imports HRSC2016 (``FullDataSet`` + ``ImageSets``), with GT masks.

    Samples get ``all_masked`` (every ship of the image has a GT mask: the
    paper's 124 test images protocol) and ``gt_masks`` where masks exist.

    Args:
        dataset_dir: the HRSC root (containing ``FullDataSet``) or ``FullDataSet``
        name: dataset name
        split: ``"trainval"``, ``"test"`` ... or None (all)
        with_masks: read the GT masks from the colour PNGs
        others: as :func:`load_dota` (default classes: ``["ship"]``)
    """
    from fiftyone_samrs.formats import hrsc

    def scan(report):
        return hrsc.scan(dataset_dir, split=split, with_masks=with_masks, report=report)

    return _load("hrsc", scan, dataset_dir, name, dataset, tile, tile_dir, tile_size, gap,
                 keep_thresh, overwrite, persistent, progress, classes, tags, tile_options,
                 batch_size)


LOADERS: Dict[str, Callable[..., fo.Dataset]] = {
    "dota": load_dota,
    "dior": load_dior,
    "fair1m": load_fair1m,
    "hrsc": load_hrsc,
}


# ---------------------------------------------------------------------------
# iSAID ground-truth masks for DOTA v1.0 samples
# ---------------------------------------------------------------------------

_ISAID_ID_SUFFIX = "_instance_id_RGB.png"
_ISAID_COLOR_SUFFIX = "_instance_color_RGB.png"


def _isaid_index(isaid_dir: str) -> Dict[str, Tuple[str, str]]:
    """``{image stem: (instance_id png, instance_color png)}`` found under ``isaid_dir``."""
    index = {}
    pattern = os.path.join(glob.escape(str(isaid_dir)), "**", "*" + _ISAID_ID_SUFFIX)
    for id_path in sorted(glob.glob(pattern, recursive=True)):
        stem = os.path.basename(id_path)[: -len(_ISAID_ID_SUFFIX)]
        color_path = id_path[: -len(_ISAID_ID_SUFFIX)] + _ISAID_COLOR_SUFFIX
        index.setdefault(stem, (id_path, color_path))
    return index


def _label_attr(label, name: str):
    return label.get_field(name) if label.has_field(name) else None


def _objects_from_sample(sample, hbb_field: str, obb_field: Optional[str], width: int,
                         height: int) -> List[ObjectRecord]:
    """Pixel-space objects of a sample, in ``hbb`` order (for matching).

    Each object's quad is the ``obb`` polyline with the same ``obj_index``.
    """
    quads = {}
    polys = sample[obb_field] if obb_field else None
    for p in (polys.polylines if polys is not None else []):
        idx = _label_attr(p, "obj_index")
        if p.points and idx is not None:
            quads[idx] = geo.relative_to_points(p.points[0], width, height)
    objects = []
    dets = sample[hbb_field]
    for i, d in enumerate(dets.detections if dets is not None else []):
        idx = _label_attr(d, "obj_index")
        idx = i if idx is None else idx
        objects.append(ObjectRecord(
            label=d.label, hbox=geo.relative_to_box(d.bounding_box, width, height),
            quad=quads.get(idx),
            attributes={"obj_index": idx, "source_id": _label_attr(d, "source_id")}))
    return objects


def _crop_instance(mask: InstanceMask, x: int, y: int, w: int, h: int) -> Optional[InstanceMask]:
    """An instance mask restricted to the window ``[x, x+w) x [y, y+h)``, in window pixels."""
    x0, y0, x1, y1 = mask.box
    cx0, cy0, cx1, cy1 = max(x0, x), max(y0, y), min(x1, x + w), min(y1, y + h)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    crop = mask.mask[cy0 - y0: cy1 - y0, cx0 - x0: cx1 - x0]
    if not crop.any():
        return None
    m = InstanceMask.from_full(crop)
    return InstanceMask(m.mask, m.x0 + cx0 - x, m.y0 + cy0 - y)


def load_isaid_masks(dataset, isaid_dir, gt_field: str = GT_FIELD, min_iou: float = 0.3,
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
    Samples without iSAID files are counted as skips.

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
    """
    from fiftyone_samrs.formats import isaid

    report = ImportReport()
    index = _isaid_index(isaid_dir)
    if not index:
        raise FormatError(isaid_dir, "no iSAID *%s files found" % _ISAID_ID_SUFFIX)
    root = dataset._root_dataset if hasattr(dataset, "_root_dataset") else dataset
    fields = root.get_field_schema()
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
        if stem not in cache:
            if not os.path.exists(color_png):
                raise FormatError(color_png, "missing (the class colours for %s)" % id_png)
            cache.clear()  # tiles of one source come together; keep one image's instances
            cache[stem] = isaid.read_instances(id_png, color_png)
        instances = cache[stem]
        if sample.metadata is None or not sample.metadata.width:
            raise FormatError(sample.filepath, "sample has no metadata width/height")
        width, height = sample.metadata.width, sample.metadata.height
        if src:
            ox, oy = int(sample["tile_x"]), int(sample["tile_y"])
            cropped = []
            for inst, cls in instances:
                c = _crop_instance(inst, ox, oy, width, height)
                if c is not None:
                    cropped.append((c, cls))
            instances_here = cropped
        else:
            instances_here = instances
        objects = _objects_from_sample(sample, hbb_field,
                                       obb_field if obb_field in fields else None, width, height)
        matched = isaid.match_to_objects(instances_here, objects, min_iou=min_iou)
        used = set()
        dets = []
        for obj, m in zip(objects, matched):
            if m is None:
                continue
            used.add(id(m))
            dets.append(fol.Detection(label=obj.label, bounding_box=_mask_box(m, width, height),
                                      mask=m.mask.astype(bool),
                                      obj_index=int(obj.attributes["obj_index"]),
                                      source_id=obj.attributes.get("source_id")))
            seen_labels[obj.label] = None
        for inst, cls in instances_here:
            if id(inst) in used:
                continue
            report.warn("unmatched iSAID instance",
                        "%s: a %s instance of %s matched no box (IoU < %g)"
                        % (sample.filepath, cls, os.path.basename(id_png), min_iou))
            dets.append(fol.Detection(label=cls, bounding_box=_mask_box(inst, width, height),
                                      mask=inst.mask.astype(bool), obj_index=None,
                                      source_id=os.path.basename(id_png)))
            seen_labels[cls] = None
        unmatched_objects = sum(m is None for m in matched)
        if unmatched_objects:
            report.warn("object without iSAID mask",
                        "%s: %d of %d objects have no iSAID instance"
                        % (sample.filepath, unmatched_objects, len(objects)))
        values[sample.id] = fol.Detections(detections=dets)
        report.images += 1
        report.objects += len(dets)
    if values:
        root.set_values(gt_field, values, key_field="id", dynamic=True)
    info = dict(root.info)
    samrs = dict(info.get("samrs") or {})
    samrs["isaid_report"] = report_to_dict(report)
    info["samrs"] = samrs
    root.info = info
    cls_map = dict(root.classes)
    base = cls_map.get(hbb_field) or list(fsc.SOTA)
    cls_map[gt_field] = base + sorted(c for c in seen_labels if c not in base)
    root.classes = cls_map
    root.save()
    return report


# ---------------------------------------------------------------------------
# FiftyOne dataset importers (``fo.Dataset.from_dir(..., dataset_type=fsr.types.*)``)
# ---------------------------------------------------------------------------


class _SAMRSImporter(foud.LabeledImageDatasetImporter, foud.BatchDatasetImporter):
    """Base of the format importers.

    FiftyOne sees a :class:`~fiftyone.utils.data.importers.BatchDatasetImporter`
    and calls :meth:`import_samples`, which runs :func:`load_records` (the fast
    path): ``fo.Dataset.from_dir`` gives the same dataset as ``load_*``.
    Iterating the importer yields ``(image_path, ImageMetadata, labels)``
    tuples (labels: a dict of the label and sample fields), as a
    :class:`~fiftyone.utils.data.importers.LabeledImageDatasetImporter`.
    """

    fmt = ""
    _loader_name = ""

    def __init__(self, dataset_dir=None, shuffle=False, seed=None, max_samples=None, **options):
        super().__init__(dataset_dir=dataset_dir, shuffle=shuffle, seed=seed,
                         max_samples=max_samples)
        self.options = options
        self.report = ImportReport()
        self._iter = None

    # -- batch import (the fast path) --------------------------------------

    def import_samples(self, dataset, tags=None, progress=None):
        loader = LOADERS[self.fmt]
        before = len(dataset)
        opts = dict(self.options)
        if progress is not None:
            opts["progress"] = bool(progress)
        if self.shuffle or self.max_samples is not None:
            records = self._records(self.report)
            records = self._preprocess_list(list(records) if self.shuffle else records)
            records = _tiled(records, self.fmt, dataset, opts.pop("tile", False),
                             opts.pop("tile_dir", None), opts.pop("tile_size", None),
                             opts.pop("gap", None), opts.pop("keep_thresh", None), self.report,
                             opts.pop("tile_options", None))
            load_records(records, dataset=dataset, fmt=self.fmt, report=self.report,
                         classes=opts.get("classes"), progress=opts.get("progress", True),
                         source_dir=self.dataset_dir, tags=tags)
        else:
            loader(self.dataset_dir, dataset=dataset, tags=tags, **opts)
            self.report = import_report(dataset)
        return dataset.skip(before).values("id")

    # -- iteration (the generic FiftyOne path) -----------------------------

    def _scan_kwargs(self) -> Dict[str, Any]:
        raise NotImplementedError

    def _records(self, report: ImportReport) -> Iterator[ImageRecord]:
        raise NotImplementedError

    def setup(self):
        records = self._records(self.report)
        self._iter = iter(self._preprocess_list(list(records) if self.shuffle else records))

    def __next__(self):
        if self._iter is None:
            self.setup()
        record = next(self._iter)
        width, height, channels = _image_size(record)
        labels = dict(record_to_labels(record, width, height))
        labels.update({k: v for k, v in record_fields(record, self.report).items()
                       if v is not None})
        if record.split:
            labels["tags"] = [record.split]
        metadata = fo.ImageMetadata(width=width, height=height, num_channels=channels)
        return record.filepath, metadata, labels

    @property
    def has_dataset_info(self):
        return False

    @property
    def has_image_metadata(self):
        return True

    @property
    def label_cls(self):
        return None


class DOTADatasetImporter(_SAMRSImporter):
    """Importer for DOTA trees; see :func:`load_dota` for the options.

    Example::

        ds = fo.Dataset.from_dir("/data/DOTA/val", dataset_type=fsr.types.DOTADataset,
                                 name="dota-val", version="1.0")
    """

    fmt = "dota"

    def __init__(self, dataset_dir=None, version=None, split=None, tile=False, tile_dir=None,
                 tile_size=None, gap=None, keep_thresh=None, keep_unknown=False,
                 unlabeled="skip", classes=None, tile_options=None, shuffle=False, seed=None,
                 max_samples=None):
        super().__init__(dataset_dir, shuffle, seed, max_samples, version=version, split=split,
                         tile=tile, tile_dir=tile_dir, tile_size=tile_size, gap=gap,
                         keep_thresh=keep_thresh, keep_unknown=keep_unknown,
                         unlabeled=unlabeled, classes=classes, tile_options=tile_options)

    def _records(self, report):
        from fiftyone_samrs.formats import dota

        o = self.options
        return dota.scan(self.dataset_dir, version=o["version"], split=o["split"],
                         keep_unknown=o["keep_unknown"], unlabeled=o["unlabeled"], report=report)


class DIORDatasetImporter(_SAMRSImporter):
    """Importer for DIOR / DIOR-R; see :func:`load_dior` for the options."""

    fmt = "dior"

    def __init__(self, dataset_dir=None, split=None, unlabeled="skip", tile=False,
                 tile_dir=None, tile_size=None, gap=None, keep_thresh=None, classes=None,
                 tile_options=None, shuffle=False, seed=None, max_samples=None):
        super().__init__(dataset_dir, shuffle, seed, max_samples, split=split,
                         unlabeled=unlabeled, tile=tile, tile_dir=tile_dir, tile_size=tile_size,
                         gap=gap, keep_thresh=keep_thresh, classes=classes,
                         tile_options=tile_options)

    def _records(self, report):
        from fiftyone_samrs.formats import dior

        return dior.scan(self.dataset_dir, split=self.options["split"], report=report,
                         unlabeled=self.options["unlabeled"])


class FAIR1MDatasetImporter(_SAMRSImporter):
    """Importer for FAIR1M 1.0/2.0; see :func:`load_fair1m` for the options."""

    fmt = "fair1m"

    def __init__(self, dataset_dir=None, tile=False, tile_dir=None, tile_size=None, gap=None,
                 keep_thresh=None, classes=None, tile_options=None, shuffle=False, seed=None,
                 max_samples=None):
        super().__init__(dataset_dir, shuffle, seed, max_samples, tile=tile, tile_dir=tile_dir,
                         tile_size=tile_size, gap=gap, keep_thresh=keep_thresh, classes=classes,
                         tile_options=tile_options)

    def _records(self, report):
        from fiftyone_samrs.formats import fair1m

        return fair1m.scan(self.dataset_dir, report=report)


class HRSC2016DatasetImporter(_SAMRSImporter):
    """Importer for HRSC2016; see :func:`load_hrsc` for the options."""

    fmt = "hrsc"

    def __init__(self, dataset_dir=None, split=None, with_masks=True, tile=False,
                 tile_dir=None, tile_size=None, gap=None, keep_thresh=None, classes=None,
                 tile_options=None, shuffle=False, seed=None, max_samples=None):
        super().__init__(dataset_dir, shuffle, seed, max_samples, split=split,
                         with_masks=with_masks, tile=tile, tile_dir=tile_dir,
                         tile_size=tile_size, gap=gap, keep_thresh=keep_thresh, classes=classes,
                         tile_options=tile_options)

    def _records(self, report):
        from fiftyone_samrs.formats import hrsc

        return hrsc.scan(self.dataset_dir, split=self.options["split"],
                         with_masks=self.options["with_masks"], report=report)
