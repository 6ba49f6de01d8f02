"""The FiftyOne boundary: every use of FiftyOne's internals, and every database
document built by hand, is in this module.

The rest of the package reads and writes datasets through these functions
(and FiftyOne's public API). The fast paths need a few private FiftyOne
names, because their public equivalents build a FiftyOne object per sample
or label, which dominates at millions of masks:

======================================  =====================================
private use                              what it saves; its canary test
======================================  =====================================
``values(..., _raw=True)``               label documents without building
                                         labels (:func:`raw_values`)
``SampleCollection._aggregate``          one projected cursor over a view
                                         (:func:`iter_raw_docs`)
``Dataset._sample_collection``           ``insert_many`` of sample documents,
                                         the label positions of
                                         :func:`write_values` and the stored
                                         sizes of :func:`document_sizes`
``Dataset._bulk_write``                  one ``$set`` per sample
                                         (:func:`bulk_set`)
``Dataset._expand_schema``               declaring the schema of a probe
                                         sample (:func:`insert_sample_docs`)
``fiftyone.core.odm.sample._generate_rand``  the ``_rand`` of a sample document
``Dataset._doc.id``                      the ``_dataset_id`` of a sample document
``DatasetView._root_dataset``            the dataset object a view runs on
                                         (:func:`dataset_of`): the App server
                                         has no dataset singletons, so
                                         ``fo.load_dataset`` there is another
                                         object, whose new fields the view
                                         would not see
``DatasetView._serialize`` / ``_build``  a view sent to another process
                                         (:func:`view_stages`,
                                         :func:`view_from_stages`)
======================================  =====================================

The package's own MongoDB collections (``samrs.leases``, ``samrs.claims``,
``samrs.shards``: concurrent runs, :mod:`fiftyone_samrs.segmenting.leases`)
live in FiftyOne's database, reached through its public
``fiftyone.core.odm.get_db_conn`` (:func:`samrs_collection`); their canary
checks that they sit beside the datasets.

Each has a canary in ``tests/test_fiftyone_io.py`` that compares it with
FiftyOne's public slow path, so an upgrade that changes one fails there
first. The ``fiftyone`` version range in ``pyproject.toml`` is the one CI
tests.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import fiftyone as fo
import fiftyone.core.labels as fol
import fiftyone.core.odm.sample as foos
import fiftyone.core.utils as fou
import numpy as np
from bson import Binary, ObjectId
from fiftyone import ViewField as F

from fiftyone_samrs.core import geometry as _geometry
from fiftyone_samrs.core.records import FormatError, InstanceMask

logger = logging.getLogger(__name__)

#: the list field of each label-list type this package reads and writes
LABEL_LISTS = {fol.Detections: "detections", fol.Polylines: "polylines"}


# --------------------------------------------------------------------------
# collections


def dataset_of(sample_collection) -> fo.Dataset:
    """The dataset a view (or dataset) belongs to: the very object the view
    runs on, so that fields added through it are fields of the view."""
    if isinstance(sample_collection, fo.Dataset):
        return sample_collection
    root = getattr(sample_collection, "_root_dataset", None)
    if isinstance(root, fo.Dataset):
        return root
    return fo.load_dataset(sample_collection.dataset_name)


def collection_name(sample_collection) -> str:
    """The name of a dataset, or of the dataset of a view."""
    return dataset_of(sample_collection).name


def dataset_dir(dataset, *parts: str) -> str:
    """The default folder of a dataset's files (tiles, PNGs, mask files):
    ``<fo.config.default_dataset_dir>/<dataset name>/<parts...>``.

    Args:
        dataset: a dataset, a view, or a dataset name
        parts: sub-folder names (e.g. a field name)

    Raises:
        ValueError: when the name (or a part) is not a safe folder name (see
            :func:`fiftyone_samrs.core.paths.safe_folder_name`), e.g. ``../../x``
    """
    from fiftyone_samrs.core.paths import folder_under

    name = dataset if isinstance(dataset, str) else collection_name(dataset)
    return folder_under(fo.config.default_dataset_dir, name, *parts)


def dataset_id(dataset: fo.Dataset) -> ObjectId:
    """The dataset's id, as its sample documents store it in ``_dataset_id``."""
    return dataset._doc.id


def label_list_path(sample_collection, field: str) -> Optional[str]:
    """``"<field>.detections"`` / ``"<field>.polylines"`` for a label-list field,
    else None (also when the field does not exist)."""
    f = sample_collection.get_field(field) if sample_collection.has_field(field) else None
    name = LABEL_LISTS.get(getattr(f, "document_type", None))
    return None if name is None else "%s.%s" % (field, name)


def check_label_field(sample_collection, field: str, doc_type, what: str,
                      required: bool = True) -> bool:
    """Whether ``field`` exists and holds ``doc_type`` labels.

    Args:
        sample_collection: a dataset or view
        field: the field name
        doc_type: e.g. ``fo.Detections``
        what: names the field's role in messages (``"prediction"``...)
        required: a missing field is an error (else: False)

    Raises:
        ValueError: when the field is missing (and ``required``) or holds
            another type, naming the dataset and its fields
    """
    if not sample_collection.has_field(field):
        if not required:
            return False
        raise ValueError("%s field %r does not exist on %r (fields: %s)"
                         % (what, field, collection_name(sample_collection),
                            ", ".join(sorted(sample_collection.get_field_schema()))))
    found = getattr(sample_collection.get_field(field), "document_type", None)
    if found is not doc_type:
        raise ValueError("%s field %r of %r holds %s, expected %s"
                         % (what, field, collection_name(sample_collection),
                            getattr(found, "__name__", "no labels"), doc_type.__name__))
    return True


def declare_fields(sample_collection, fields: Dict[str, type]) -> None:
    """Declares fields (sample fields or ``field.detections.attr`` paths) not
    yet in the schema, so that values that are all None can still be set.

    Args:
        fields: ``{path: fiftyone field class}``, e.g. ``{"eval_iou_i": fo.FloatField}``
    """
    dataset = dataset_of(sample_collection)
    schema = dataset.get_field_schema(flat=True)
    for path, ftype in fields.items():
        if path not in schema:
            dataset.add_sample_field(path, ftype)


def declare_label_field(dataset: fo.Dataset, field: str, doc_type,
                        attributes: Dict[str, type]) -> None:
    """Declares a label field of ``doc_type`` and the attributes of its labels."""
    if not dataset.has_sample_field(field):
        dataset.add_sample_field(field, fo.EmbeddedDocumentField, embedded_doc_type=doc_type)
    list_name = LABEL_LISTS.get(doc_type)
    if list_name:
        declare_fields(dataset, {"%s.%s.%s" % (field, list_name, k): v
                                 for k, v in attributes.items()})


def image_metadata(filepath: str) -> fo.ImageMetadata:
    """The :class:`fiftyone.core.metadata.ImageMetadata` of an image from its
    header (:func:`fiftyone_samrs.formats.images.image_size`): width, height,
    ``size_bytes`` and ``mime_type``. Unlike FiftyOne's ``compute_metadata``
    (PIL), it has no 179-megapixel limit, so 20000x20000 DOTA v2.0 images work.

    Raises:
        FormatError: naming the file, when it is missing or its header unreadable
    """
    import mimetypes
    import os

    from fiftyone_samrs.formats.images import image_size

    width, height = image_size(filepath)
    return fo.ImageMetadata(width=width, height=height, size_bytes=os.path.getsize(filepath),
                            mime_type=mimetypes.guess_type(filepath)[0])


def ensure_image_sizes(sample_collection, ids: Optional[Iterable[str]] = None) -> int:
    """Fills in the image metadata of samples whose width or height is unknown,
    from the image headers (:func:`image_metadata`: no PIL size limit).

    A sample whose image is missing or unreadable is left as it is (logged);
    whoever needs its size then names it (:func:`sample_size`).

    Args:
        sample_collection: a dataset or view
        ids: only these samples (None: the whole collection)

    Returns:
        how many samples were repaired
    """
    view = sample_collection.match(
        ~F("metadata.width").exists() | ~F("metadata.height").exists())
    missing_ids, paths = view.values(["id", "filepath"])
    if ids is not None:
        wanted = set(ids)
        keep = [k for k, s in enumerate(missing_ids) if s in wanted]
        missing_ids, paths = [missing_ids[k] for k in keep], [paths[k] for k in keep]
    fixed: Dict[str, Any] = {}
    for sid, path in zip(missing_ids, paths):
        try:
            fixed[sid] = image_metadata(path)
        except FormatError as e:
            logger.warning("no image size for sample %s: %s", sid, e)
    dataset = dataset_of(sample_collection)
    if fixed:
        dataset.set_values("metadata", fixed, key_field="id")
        logger.info("read the image sizes of %d samples from their headers", len(fixed))
    return len(fixed)


def default_classes(sample_collection, fields: Sequence[str]) -> List[str]:
    """The class list a dataset implies: ``info["samrs"]["subset"]``, else the
    dataset's ``classes`` of the first of ``fields`` that has some, else the
    sorted labels of the first field."""
    from fiftyone_samrs.core.classes import resolve_classes

    subset = ((sample_collection.info or {}).get("samrs") or {}).get("subset")
    if subset:
        return resolve_classes(subset)
    for field in fields:
        if sample_collection.classes.get(field):
            return list(sample_collection.classes[field])
    path = label_list_path(sample_collection, fields[0]) if fields else None
    if path is None:
        return []
    return sorted(v for v in sample_collection.distinct(path + ".label") if v is not None)


def run_key(field: str, prefix: str = "") -> str:
    """A FiftyOne run key made from a field name (``"sam"`` -> ``"sam"``,
    ``prefix="quality_"`` -> ``"quality_sam"``): non-identifier characters
    become ``_``."""
    key = prefix + "".join(c if c.isalnum() or c == "_" else "_" for c in field)
    return key if key.isidentifier() else "_" + key


def add_sidebar_group(sample_collection, name: str, paths: Sequence[str]) -> None:
    """Shows ``paths`` in a sidebar group ``name`` of the App (replacing one of
    that name); cosmetic, so a failure is only logged."""
    try:
        dataset = dataset_of(sample_collection)
        groups = dataset.app_config.sidebar_groups
        if groups is None:
            groups = fo.DatasetAppConfig.default_sidebar_groups(dataset)
        groups = [g for g in groups if g.name != name]
        groups.append(fo.SidebarGroupDocument(name=name, paths=list(paths)))
        dataset.app_config.sidebar_groups = groups
        dataset.save()
    except Exception as e:
        logger.info("could not add sidebar group %r: %s", name, e)


def remove_sidebar_group(sample_collection, name: str) -> None:
    """Removes the sidebar group ``name`` where one was added."""
    try:
        dataset = dataset_of(sample_collection)
        groups = dataset.app_config.sidebar_groups
        if groups and any(g.name == name for g in groups):
            dataset.app_config.sidebar_groups = [g for g in groups if g.name != name]
            dataset.save()
    except Exception as e:
        logger.info("could not remove sidebar group %r: %s", name, e)


# --------------------------------------------------------------------------
# reading


class RawLabel:
    """A label read as its raw database document (see :func:`raw_values`).

    Offers what this package reads: ``id``, ``label``, ``bounding_box``,
    ``confidence``, ``points``, ``get(name)`` for other attributes, and the
    mask.
    """

    __slots__ = ("doc",)

    def __init__(self, doc: dict):
        self.doc = doc

    @property
    def id(self) -> str:
        return str(self.doc["_id"])

    @property
    def label(self):
        return self.doc.get("label")

    @property
    def bounding_box(self):
        return self.doc.get("bounding_box")

    @property
    def confidence(self):
        return self.doc.get("confidence")

    @property
    def points(self):
        return self.doc.get("points")

    def get(self, name: str, default=None):
        value = self.doc.get(name)
        return default if value is None else value

    def get_mask(self, where: Optional[str] = None) -> Optional[np.ndarray]:
        """The mask array (from ``mask`` or ``mask_path``), or None; a missing
        mask file is a FormatError naming ``where`` (default: the file)."""
        mask = self.doc.get("mask")
        if mask is not None:
            return deserialize_mask(mask) if isinstance(mask, (bytes, bytearray)) \
                else np.asarray(mask)
        path = self.doc.get("mask_path")
        return read_mask_file(path, where or path) if path else None


def raw_labels(docs) -> List[RawLabel]:
    """Wraps the raw label documents of one sample (None -> [])."""
    return [RawLabel(d) for d in (docs or [])]


def label_attr(label, name: str, default=None):
    """An attribute of a FiftyOne label or :class:`RawLabel` (None -> default)."""
    if isinstance(label, RawLabel):
        return label.get(name, default)
    try:
        value = label[name]
    except (KeyError, AttributeError):
        return default
    return default if value is None else value


def label_mask(label, where: Optional[str] = None) -> Optional[np.ndarray]:
    """The mask of a Detection or :class:`RawLabel` (``mask`` or
    ``mask_path``), or None; a missing mask file is a FormatError naming
    ``where`` (default: the file)."""
    if isinstance(label, RawLabel):
        return label.get_mask(where)
    if getattr(label, "mask", None) is not None:
        return label.mask
    path = getattr(label, "mask_path", None)
    return read_mask_file(path, where or path) if path else None


def raw_values(sample_collection, fields: Sequence[str]) -> list:
    """``values(fields)`` with label lists as raw documents (no label objects)."""
    return sample_collection.values(list(fields), _raw=True)


def iter_batches(sample_collection, fields: Sequence[str], batch_size: int = 256,
                 raw: bool = True) -> Iterator[Tuple[List[str], Dict[str, list]]]:
    """Yields ``(ids, {field: values})`` over the collection in batches, in its order.

    Each batch is one ``values()`` call; with ``raw`` label lists come as raw
    documents (wrap them with :func:`raw_labels`).
    """
    ids = sample_collection.values("id")
    for start in range(0, len(ids), batch_size):
        sub = sample_collection.select(ids[start : start + batch_size], ordered=True)
        names = ["id"] + list(fields)
        vals = raw_values(sub, names) if raw else sub.values(names)
        yield [str(i) for i in vals[0]], dict(zip(fields, vals[1:]))


def iter_raw_docs(sample_collection, fields: Sequence[str]) -> Iterator[dict]:
    """Streams the raw documents of a view, projected on ``_id``, ``filepath``,
    ``metadata`` and ``fields``, through one database cursor (view stages
    such as ``filter_labels`` apply)."""
    view = sample_collection.select_fields(list(fields))
    project = {"_id": 1, "filepath": 1, "metadata": 1}
    project.update({f: 1 for f in fields})
    return view._aggregate(pipeline=[{"$project": project}])


def sample_size(filepath: str, width, height) -> Tuple[int, int]:
    """``(width, height)`` of a sample from its metadata values.

    Raises:
        FormatError: naming the image when the size is unknown
    """
    if not width or not height:
        raise FormatError(filepath, "image size unknown (its metadata could not be computed: "
                                    "is the file there?)")
    return int(width), int(height)


def read_mask_file(path: str, where: str) -> np.ndarray:
    """Reads an instance or semantic mask file (FiftyOne's own image reader).

    Raises:
        FormatError: naming ``where`` when the file is missing or unreadable
    """
    import os

    import fiftyone.utils.image as foui

    if not os.path.isfile(path):
        raise FormatError(where, "mask file %s does not exist" % path)
    try:
        mask = foui.read(path, flag=-1)
    except Exception as e:
        raise FormatError(where, "mask file %s is not a readable image (%s)" % (path, e)) \
            from None
    if mask.ndim == 3:
        mask = mask[:, :, 0]
    return mask


_NPY_MAGIC = b"\x93NUMPY"
_NPY_HEADERS: Dict[bytes, Tuple[np.dtype, bool, Tuple[int, ...]]] = {}


def serialize_mask(mask: np.ndarray) -> Binary:
    """A bool mask as FiftyOne stores it (its own ``serialize_numpy_array``)."""
    return Binary(fou.serialize_numpy_array(np.asarray(mask, dtype=bool)))


def deserialize_mask(raw: bytes) -> np.ndarray:
    """Decodes a mask as FiftyOne stores it (zlib-compressed ``.npy`` bytes).

    The same result as ``fiftyone.core.utils.deserialize_numpy_array``, about
    3x faster: the ``.npy`` header (shape, dtype) is parsed once per distinct
    header and cached, and the data is viewed in place (read-only).
    """
    import ast
    import zlib

    data = zlib.decompress(raw)
    if data[:6] != _NPY_MAGIC or data[6] not in (1, 2, 3):
        return fou.deserialize_numpy_array(raw)
    if data[6] == 1:
        start, hlen = 10, int.from_bytes(data[8:10], "little")
    else:
        start, hlen = 12, int.from_bytes(data[8:12], "little")
    header = data[start : start + hlen]
    info = _NPY_HEADERS.get(header)
    if info is None:
        d = ast.literal_eval(header.decode("latin1"))
        dtype = np.lib.format.descr_to_dtype(d["descr"])
        if dtype.hasobject:
            raise ValueError("object arrays are not masks")
        info = (dtype, bool(d["fortran_order"]), tuple(int(v) for v in d["shape"]))
        if len(_NPY_HEADERS) < 100000:
            _NPY_HEADERS[header] = info
    dtype, fortran, shape = info
    count = int(np.prod(shape)) if shape else 1
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=start + hlen)
    return arr.reshape(shape, order="F" if fortran else "C")


# --------------------------------------------------------------------------
# writing


def bulk_set(dataset: fo.Dataset, updates: Dict[str, dict]) -> None:
    """Sets values on many samples in one bulk write (one ``$set`` per sample).

    Args:
        dataset: the dataset the samples belong to
        updates: ``{sample_id: {path: value}}`` (paths may be dotted);
            ``last_modified_at`` is set on each
    """
    from pymongo import UpdateOne

    if not updates:
        return
    now = datetime.utcnow()
    ids = list(updates)
    ops = [UpdateOne({"_id": ObjectId(sid)}, {"$set": dict(updates[sid], last_modified_at=now)})
           for sid in ids]
    dataset._bulk_write(ops, ids=ids)


def write_values(sample_collection, sample_sets: Dict[str, dict],
                 label_sets: Dict[str, Dict[str, Dict[str, dict]]]) -> None:
    """Writes per-sample and per-label values in ONE bulk write.

    Args:
        sample_collection: the collection the values belong to
        sample_sets: ``{sample_id: {field: value}}``
        label_sets: ``{sample_id: {list_path: {label_id: {attr: value}}}}``,
            ``list_path`` like ``"sam.detections"``

    The labels' positions are read from the dataset itself (not the view,
    which may filter labels), so each update addresses
    ``<list_path>.<index>.<attr>``. Fields must be declared already
    (:func:`declare_fields`).
    """
    dataset = dataset_of(sample_collection)
    ids = sorted(set(sample_sets) | set(label_sets))
    if not ids:
        return
    paths = sorted({p for per in label_sets.values() for p in per})
    positions: Dict[str, Dict[str, Dict[str, int]]] = {}
    if paths:
        projection = {p + "._id": 1 for p in paths}
        query = {"_id": {"$in": [ObjectId(i) for i in ids]}}
        for doc in dataset._sample_collection.find(query, projection):
            pos = {}
            for p in paths:
                node = doc
                for part in p.split("."):
                    node = node.get(part) if isinstance(node, dict) else None
                pos[p] = {str(e["_id"]): k for k, e in enumerate(node or []) if "_id" in e}
            positions[str(doc["_id"])] = pos
    updates: Dict[str, dict] = {}
    for sid in ids:
        update = dict(sample_sets.get(sid, {}))
        for path, by_label in label_sets.get(sid, {}).items():
            pos = positions.get(sid, {}).get(path, {})
            for label_id, values in by_label.items():
                k = pos.get(label_id)
                if k is None:
                    continue  # deleted meanwhile
                for attr, value in values.items():
                    update["%s.%d.%s" % (path, k, attr)] = value
        if update:
            updates[sid] = update
    bulk_set(dataset, updates)


def document_sizes(dataset: fo.Dataset, ids: Sequence[str],
                   without: Sequence[str] = ()) -> Dict[str, int]:
    """The stored size (BSON bytes) of sample documents, less the size of the
    fields ``without`` (those about to be replaced), in one aggregation
    (MongoDB's ``$bsonSize``).

    Returns:
        ``{sample_id: bytes}`` for the samples found
    """
    if not ids:
        return {}
    minus = [{"$ifNull": [{"$bsonSize": {"$cond": [{"$eq": [{"$type": "$" + f}, "object"]},
                                                   "$" + f, None]}}, 0]}
             for f in without if f]
    size: Any = {"$bsonSize": "$$ROOT"}
    if minus:
        size = {"$subtract": [size, {"$add": minus}]}
    pipeline = [{"$match": {"_id": {"$in": [ObjectId(i) for i in ids]}}},
                {"$project": {"size": size}}]
    return {str(d["_id"]): int(d["size"])
            for d in dataset._sample_collection.aggregate(pipeline)}


def insert_sample_docs(dataset: fo.Dataset, docs: List[dict],
                       probe: Optional[fo.Sample] = None) -> None:
    """Inserts sample documents (from :func:`sample_doc`) into a dataset.

    Args:
        dataset: the dataset
        docs: the documents
        probe: a sample holding one value of every field and label attribute
            the documents have that the schema may lack; FiftyOne's own schema
            inference declares them from it first
    """
    if probe is not None:
        dataset._expand_schema(probe, dynamic=True)
    if docs:
        dataset._sample_collection.insert_many(docs, ordered=False)


# --------------------------------------------------------------------------
# documents: exactly what FiftyOne writes for the same objects


def sample_doc(dataset: fo.Dataset, filepath: str, metadata: Dict[str, Any],
               tags: List[str], fields: Dict[str, Any], when: datetime) -> dict:
    """The document of ``fo.Sample(filepath, tags, metadata=ImageMetadata(...),
    **fields)`` added to ``dataset`` (``_id`` left to MongoDB)."""
    doc = {
        "filepath": filepath,
        "tags": list(tags),
        "metadata": dict(metadata, _cls="ImageMetadata"),
        "_media_type": "image",
        "_rand": foos._generate_rand(),
    }
    doc.update(fields)
    doc["_dataset_id"] = dataset_id(dataset)
    doc["created_at"] = when
    doc["last_modified_at"] = when
    return doc


def label_doc(cls: str, oid: ObjectId, label: Optional[str], attributes: Dict[str, Any],
              **fields) -> dict:
    """The document of a ``fo.<cls>(label=..., **fields, **attributes)`` label."""
    doc = {"_id": oid, "_cls": cls, "tags": [], "attributes": {}, "label": label}
    doc.update(fields)
    doc.update(attributes)
    return doc


def detection_doc(label: Optional[str], bounding_box: Sequence[float],
                  mask: Optional[np.ndarray] = None, oid: Optional[ObjectId] = None,
                  **attributes) -> dict:
    """The document of ``fo.Detection(label, bounding_box, mask, **attributes)``."""
    fields: Dict[str, Any] = {"bounding_box": [float(v) for v in bounding_box]}
    if mask is not None:
        fields["mask"] = serialize_mask(mask)
    return label_doc("Detection", oid or ObjectId(), label, attributes, **fields)


def polyline_doc(label: Optional[str], points: list, oid: Optional[ObjectId] = None,
                 closed: bool = True, filled: bool = True, **attributes) -> dict:
    """The document of ``fo.Polyline(label, points, closed, filled, **attributes)``."""
    return label_doc("Polyline", oid or ObjectId(), label, attributes, points=points,
                     closed=closed, filled=filled)


def bson_size(doc: dict) -> int:
    """The size in bytes of a document as MongoDB stores it (its BSON encoding)."""
    import bson

    return len(bson.encode(doc))


def label_list_doc(doc_type, items: List[dict]) -> dict:
    """The document of a ``fo.Detections`` / ``fo.Polylines`` holding ``items``."""
    return {"_cls": doc_type.__name__, LABEL_LISTS[doc_type]: items}


def segmentation_doc(mask_path: str) -> dict:
    """The document of ``fo.Segmentation(mask_path=mask_path)``."""
    return {"_id": ObjectId(), "_cls": "Segmentation", "tags": [], "mask_path": mask_path}


# --------------------------------------------------------------------------
# labels as pixels


@dataclass
class ObjectInputs:
    """The objects of one image, in source pixels.

    Attributes:
        hboxes: ``(N, 4)`` xyxy prompt boxes (the ``hbb`` Detections), clipped
            to the image
        quads: ``(N, 4, 2)`` rotated boxes linked by ``obj_index`` (NaN rows
            for objects without one), or None when no rotated-box field is read
        labels: class name per object
        ids: the id of each box Detection (the predictions' ``source_id``)
        obj_indexes: each object's ``obj_index`` (its position when unset)
        has_hbox: False when every box is an RH-Box (``rh``), i.e. the source
            has only rotated boxes (``prompt="auto"`` then uses ``rhbox``)
    """

    hboxes: np.ndarray
    quads: Optional[np.ndarray]
    labels: List[str]
    ids: List[str]
    obj_indexes: List[int]
    has_hbox: bool

    def __len__(self) -> int:
        return len(self.labels)


def object_inputs(dets: Optional[Sequence], polylines: Optional[Sequence], width: int,
                  height: int, whole: bool = True) -> ObjectInputs:
    """The :class:`ObjectInputs` of a sample's box Detections and rotated-box
    Polylines (FiftyOne labels or raw labels).

    Args:
        dets: the box Detections (None: none)
        polylines: the rotated boxes, or None when no rotated-box field is read
        width, height: the image size
        whole: for an object cut by a tile edge, its whole box and quad (the
            ``prompt_box`` / ``prompt_quad`` attributes tiling gives it, which
            may reach beyond the tile: what SAM is prompted with) instead of
            its clipped label
    """
    dets = list(dets or [])
    n = len(dets)
    hboxes = np.zeros((n, 4), dtype=np.float64)
    labels, ids, links, rh = [], [], [], []
    for i, det in enumerate(dets):
        full = label_attr(det, "prompt_box") if whole else None
        if full is not None and len(full) == 4:
            hboxes[i] = [float(v) for v in full]
        else:
            hboxes[i] = _geometry.clip_box(
                _geometry.relative_to_box(det.bounding_box, width, height), width, height)
        labels.append(det.label)
        ids.append(det.id)
        links.append(int(label_attr(det, "obj_index", i)))
        rh.append(bool(label_attr(det, "rh", False)))
    # drop the float noise of the relative round trip (40/120*120 = 40.000000000000004)
    hboxes = np.round(hboxes, 6)
    quads = None
    if polylines is not None:
        by_index = {}
        for j, pl in enumerate(polylines):
            full = label_attr(pl, "prompt_quad") if whole else None
            if full is not None and len(full) == 4:
                quad = np.asarray(full, dtype=np.float64).reshape(4, 2)
            else:
                pts = pl.points[0] if pl.points else []
                if len(pts) < 4:
                    continue
                quad = _geometry.relative_to_points(pts[:4], width, height)
            by_index.setdefault(int(label_attr(pl, "obj_index", j)), np.round(quad, 6))
        quads = np.full((n, 4, 2), np.nan)
        for i, k in enumerate(links):
            if k in by_index:
                quads[i] = by_index[k]
    return ObjectInputs(hboxes, quads, labels, ids, links, not (n and all(rh)))


def instance_from_label(label, width: int, height: int) -> Optional[InstanceMask]:
    """The instance mask of a Detection (or :class:`RawLabel`) in image pixels,
    where FiftyOne draws it (:func:`fiftyone_samrs.core.masks.place_mask`),
    or None when it has no mask."""
    from fiftyone_samrs.core.masks import place_mask

    mask = label_mask(label)
    if mask is None:
        return None
    return place_mask(mask, label.bounding_box, width, height)[0]


# --------------------------------------------------------------------------
# the package's own collections (concurrent runs) and views across processes

#: the package's collections in FiftyOne's database, and their indexes
SAMRS_COLLECTIONS = {
    "leases": [],
    "claims": [[("epoch", 1), ("group", 1), ("done", 1)],
               [("epoch", 1), ("owner", 1), ("done", 1)]],
    "shards": [[("dataset_id", 1), ("label_field", 1)]],
}
_INDEXED: set = set()


def samrs_collection(name: str):
    """The pymongo collection ``samrs.<name>`` (a key of
    :data:`SAMRS_COLLECTIONS`) in FiftyOne's database: the one that
    ``FIFTYONE_DATABASE_URI`` and ``FIFTYONE_DATABASE_NAME`` select, so every
    process working on a dataset sees the same documents. Its indexes are
    created on first use (claims also get a TTL index on ``gc_at`` that drops
    the claims of runs that died long ago)."""
    import fiftyone.core.odm as foo

    if name not in SAMRS_COLLECTIONS:
        raise ValueError("unknown samrs collection %r" % name)
    coll = foo.get_db_conn()["samrs." + name]
    if name not in _INDEXED:
        for keys in SAMRS_COLLECTIONS[name]:
            coll.create_index(keys)
        if name == "claims":
            coll.create_index([("gc_at", 1)], expireAfterSeconds=0)
        _INDEXED.add(name)
    return coll


def database_uri() -> str:
    """The MongoDB URI of this process's FiftyOne database, for other
    processes: ``FIFTYONE_DATABASE_URI`` when set, else the embedded
    ``mongod``'s address (``mongodb://localhost:PORT``), which only processes
    on this machine can reach."""
    import fiftyone.core.odm as foo

    if fo.config.database_uri:
        return fo.config.database_uri
    host, port = foo.get_db_client().address
    return "mongodb://%s:%d" % (host, port)


def made_for_this_import(dataset) -> bool:
    """Whether ``dataset`` is the one FiftyOne's ``Dataset.from_dir`` /
    ``from_importer`` created for the import running now: it leaves that
    dataset behind, empty, when the import fails (FiftyOne internal: the
    caller's frame and its local ``dataset``; canary in tests/test_fiftyone_io.py)."""
    frame = inspect.currentframe()
    while frame is not None:
        if (frame.f_code.co_name in ("from_dir", "from_importer")
                and frame.f_globals.get("__name__") == "fiftyone.core.dataset"
                and frame.f_locals.get("dataset") is dataset):
            return True
        frame = frame.f_back
    return False


def database_address() -> str:
    """Where this process's database is (``host:port``, without
    credentials), read without contacting it (for messages when it is gone)."""
    try:
        if fo.config.database_uri:
            from pymongo import uri_parser

            nodes = uri_parser.parse_uri(fo.config.database_uri)["nodelist"]
        else:
            import fiftyone.core.odm as foo

            nodes = list(foo.get_db_client().topology_description.server_descriptions())
        return ", ".join("%s:%s" % hp for hp in nodes) or "?"
    except Exception:
        return "?"


def database_server() -> Dict[str, Any]:
    """The database this process uses, as the server reports it: ``address``
    (``host:port``) and ``dbpath`` (its data folder; None when the server
    does not say, e.g. a hosted MongoDB)."""
    import fiftyone.core.odm as foo

    client = foo.get_db_client()
    try:
        opts = client.admin.command("getCmdLineOpts").get("parsed", {})
        dbpath = (opts.get("storage") or {}).get("dbPath")
    except Exception:
        dbpath = None
    return {"address": database_address(), "dbpath": dbpath}


def is_connection_error(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot be reached (pymongo's
    connection failures, server selection timeouts)."""
    from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError

    return isinstance(error, (ConnectionFailure, ServerSelectionTimeoutError))


def view_stages(sample_collection) -> list:
    """The stages of a view as JSON-able dicts ([] for a dataset), to rebuild
    it elsewhere with :func:`view_from_stages`."""
    if isinstance(sample_collection, fo.Dataset):
        return []
    return sample_collection._serialize()


def without_sorting(sample_collection):
    """The same samples without the view's ``sort_by`` stages: counting a
    sorted view makes MongoDB sort the matched whole documents first."""
    stages = view_stages(sample_collection)
    kept = [s for s in stages if not str(s.get("_cls", "")).endswith(".SortBy")]
    if len(kept) == len(stages):
        return sample_collection
    return view_from_stages(dataset_of(sample_collection), kept)


def view_from_stages(dataset: fo.Dataset, stages: list):
    """The view of ``dataset`` that :func:`view_stages` described (the
    dataset itself for [])."""
    if not stages:
        return dataset
    import fiftyone.core.view as fov

    return fov.DatasetView._build(dataset, stages)
