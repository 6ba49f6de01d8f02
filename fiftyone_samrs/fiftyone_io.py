"""The FiftyOne boundary: every use of FiftyOne's internals, and every database
document built by hand, is in this module.

The rest of the package reads and writes datasets through these functions
(and FiftyOne's public API). The fast paths need a few private FiftyOne
names, because their public equivalents build a FiftyOne object per sample
or label, which dominates at millions of masks. Each is a
:class:`FastPath` with a public fallback:

=======================  ==================================  ===============================
fast path                private FiftyOne use                public fallback
=======================  ==================================  ===============================
``raw_values``           ``values(..., _raw=True)``          ``values()``, labels ``to_dict()``
``iter_raw_docs``        ``SampleCollection._aggregate``     ``values()`` in batches
``insert_sample_docs``   ``Dataset._sample_collection``,     ``add_samples`` of
                         ``_expand_schema``, ``_doc.id``,    ``Sample.from_dict``
                         ``odm.sample._generate_rand``
``bulk_set``             ``Dataset._bulk_write``             ``sample.save()`` per sample
``label_positions``      ``Dataset._sample_collection``      ``values("<list>.id")``
``document_sizes``       ``Dataset._sample_collection``      ``Sample.to_mongo_dict`` sizes
``dataset_of``           ``DatasetView._root_dataset``       ``fo.load_dataset`` (in the App
                                                             server another object, whose
                                                             new fields the view misses)
``view_stages``          ``DatasetView._serialize/_build``   a saved view
                                                             (``samrs-transport-*``)
``made_for_this_import`` the frames of ``Dataset.from_dir``  False (FiftyOne may leave an
                                                             empty dataset on a failure)
``clear_plugin_cache``   ``operators.decorators.cache``      FiftyOne's own check of its
                                                             plugins dir
=======================  ==================================  ===============================

Each fast path checks itself once per process, at its first use
(:meth:`FastPath.usable`): it compares its result with the public path's
on the data of that call (or a tiny probe, e.g. a temporary dataset for
the hand-built documents). Where the private name is missing or the two
disagree (a future FiftyOne), it warns once (:class:`FastPathWarning`,
naming the fast path) and the package goes on through the public API:
slower, the same results. ``tests/test_fiftyone_io.py`` compares each
with the public path, and ``tests/test_fast_path_fallbacks.py`` takes
each private name away and checks the results stay identical.

The package's own MongoDB collections (``samrs.leases``, ``samrs.claims``,
``samrs.shards``: concurrent runs, :mod:`fiftyone_samrs.segmenting.leases`)
live in FiftyOne's database, reached through its public
``fiftyone.core.odm.get_db_conn`` (:func:`samrs_collection`); their canary
checks that they sit beside the datasets.

The ``fiftyone`` range in ``pyproject.toml`` and ``fiftyone.yml`` is the one
CI tests: the whole suite on the newest, the boundary tests and one pass
through every stage on the oldest (``make test-oldest``).
"""

from __future__ import annotations

import inspect
import logging
import math
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
# fast paths: private FiftyOne uses, each checked once against the public API


class FastPathWarning(RuntimeWarning):
    """A private FiftyOne fast path is off in this process (FiftyOne changed)."""


class FastPath:
    """One private FiftyOne use and the check that it still does what
    FiftyOne's public API does.

    :meth:`usable` runs the check at the first use in a process (on the
    data of that call, or a tiny probe); where the private name is missing,
    raises, or gives another result than the public path, it warns once
    (:class:`FastPathWarning`, naming the fast path) and answers False from
    then on: the caller takes the public path, slower but the same.
    """

    def __init__(self, name: str, private: str):
        self.name = name
        self.private = private
        self.on: Optional[bool] = None

    def usable(self, check, *args) -> bool:
        if self.on is None:
            try:
                self.on = bool(check(*args))
                why = "it disagrees with FiftyOne's public API"
            except Exception as e:  # a name missing or changed
                self.on, why = False, "%s: %s" % (type(e).__name__, str(e)[:120])
            if not self.on:
                import warnings

                warnings.warn("fiftyone-samrs fast path %r off with FiftyOne %s (%s uses %s; "
                              "%s); using FiftyOne's public API instead, which is slower"
                              % (self.name, fo.__version__, self.name, self.private, why),
                              FastPathWarning, stacklevel=3)
        return self.on


#: name -> its fast path; :func:`reset_fast_paths` makes them check again
FAST_PATHS = {fp.name: fp for fp in (
    FastPath("raw_values", "values(..., _raw=True)"),
    FastPath("iter_raw_docs", "SampleCollection._aggregate"),
    FastPath("insert_sample_docs", "Dataset._sample_collection.insert_many, "
                                   "Dataset._expand_schema, Dataset._doc.id, "
                                   "fiftyone.core.odm.sample._generate_rand"),
    FastPath("bulk_set", "Dataset._bulk_write"),
    FastPath("label_positions", "Dataset._sample_collection.find"),
    FastPath("document_sizes", "Dataset._sample_collection.aggregate"),
    FastPath("dataset_of", "DatasetView._root_dataset"),
    FastPath("view_stages", "DatasetView._serialize, DatasetView._build"),
    FastPath("made_for_this_import", "the frames of Dataset.from_dir / from_importer"),
    FastPath("clear_plugin_cache", "fiftyone.operators.decorators.cache, dir_cache"),
)}


def fast_path_on(name: str, check, *args) -> bool:
    """Whether the fast path ``name`` is on (its check runs at the first use)."""
    return FAST_PATHS[name].usable(check, *args)


def reset_fast_paths() -> None:
    """Forgets every check's answer (the next use checks again)."""
    for fp in FAST_PATHS.values():
        fp.on = None


def _plain(value):
    """A value read through FiftyOne's public API in the shape of its raw
    document: labels and embedded documents as dicts (``to_dict()``),
    ``SON`` as dict, ``Binary`` as bytes; lists and dicts element by element."""
    if hasattr(value, "to_dict") and not isinstance(value, dict):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Binary):
        return bytes(value)
    return value


def _same(a, b) -> bool:
    """Whether two values read through the fast and the public path are the
    same documents (keys holding None count as absent; NaN equals NaN, as a
    boxfill mask's ``stability`` is NaN)."""
    return _comparable(_plain(a)) == _comparable(_plain(b))


#: what NaN becomes for :func:`_same`: one object, equal to itself
_NAN = object()


def _comparable(value):
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return _NAN
    return value


# --------------------------------------------------------------------------
# collections


def dataset_of(sample_collection) -> fo.Dataset:
    """The dataset a view (or dataset) belongs to: the very object the view
    runs on, so that fields added through it are fields of the view."""
    if isinstance(sample_collection, fo.Dataset):
        return sample_collection
    if fast_path_on("dataset_of", _root_dataset_agrees, sample_collection):
        return sample_collection._root_dataset
    return fo.load_dataset(sample_collection.dataset_name)


def _root_dataset_agrees(view) -> bool:
    root = view._root_dataset
    return isinstance(root, fo.Dataset) and root.name == view.dataset_name


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


def dataset_id(dataset: fo.Dataset) -> Optional[ObjectId]:
    """The dataset's id, as its sample documents store it in ``_dataset_id``
    (None without the private ``_doc``: :func:`insert_sample_docs` then
    adds samples through FiftyOne, which sets it)."""
    return getattr(getattr(dataset, "_doc", None), "id", None)


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
    fields = list(fields)
    if fast_path_on("raw_values", _raw_values_agree, sample_collection, fields):
        return sample_collection.values(fields, _raw=True)
    return _plain(sample_collection.values(fields))


def _raw_values_agree(sample_collection, fields: List[str]) -> bool:
    head = sample_collection.limit(2)
    return _same(head.values(fields, _raw=True), head.values(fields))


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
    fields = list(fields)
    if fast_path_on("iter_raw_docs", _raw_docs_agree, sample_collection, fields):
        return _aggregated_docs(sample_collection, fields)
    return _public_docs(sample_collection, fields)


def _aggregated_docs(sample_collection, fields: List[str]) -> Iterator[dict]:
    project = {"_id": 1, "filepath": 1, "metadata": 1}
    project.update({f: 1 for f in fields})
    view = sample_collection.select_fields(fields)
    return view._aggregate(pipeline=[{"$project": project}])


def _public_docs(sample_collection, fields: List[str]) -> Iterator[dict]:
    """The documents of :func:`iter_raw_docs` through ``values()``, in batches."""
    names = ["filepath", "metadata"] + fields
    for ids, values in iter_batches(sample_collection, names, raw=False):
        for k, sid in enumerate(ids):
            doc = {"_id": ObjectId(sid)}
            doc.update({f: _plain(values[f][k]) for f in names})
            yield doc


def _raw_docs_agree(sample_collection, fields: List[str]) -> bool:
    head = sample_collection.limit(1)
    keys = ["_id", "filepath", "metadata"] + fields
    ours = [{k: d.get(k) for k in keys} for d in _aggregated_docs(head, fields)]
    return _same(ours, [{k: d.get(k) for k in keys} for d in _public_docs(head, fields)])


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
    if not fast_path_on("bulk_set", lambda: callable(dataset._bulk_write)):
        return _set_through_samples(dataset, updates)
    now = datetime.utcnow()
    ids = list(updates)
    ops = [UpdateOne({"_id": ObjectId(sid)}, {"$set": dict(updates[sid], last_modified_at=now)})
           for sid in ids]
    dataset._bulk_write(ops, ids=ids)


def _set_through_samples(dataset: fo.Dataset, updates: Dict[str, dict]) -> None:
    """:func:`bulk_set` through FiftyOne's sample objects (one save each)."""
    for sample in dataset.select(list(updates)):
        for path, value in updates[sample.id].items():
            *parents, last = path.split(".")
            node = sample
            for part in parents:
                node = node[int(part)] if part.isdigit() else node[part]
            value = _from_document(value)
            if last.isdigit():
                node[int(last)] = value
            else:
                node[last] = value
        sample.save()


def _from_document(value):
    """A label document (a dict with ``_cls``) as its FiftyOne object."""
    if isinstance(value, list):
        return [_from_document(v) for v in value]
    if isinstance(value, dict) and isinstance(getattr(fol, str(value.get("_cls")), None), type):
        return getattr(fol, value["_cls"]).from_dict(value)
    return value


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
    positions = label_positions(dataset, ids, paths) if paths else {}
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


def label_positions(dataset: fo.Dataset, ids: Sequence[str],
                    paths: Sequence[str]) -> Dict[str, Dict[str, Dict[str, int]]]:
    """``{sample_id: {list_path: {label_id: position}}}`` in the dataset's
    own documents (not a view's, which may filter labels)."""
    if not fast_path_on("label_positions", lambda: callable(dataset._sample_collection.find)):
        values = dataset.select(list(ids)).values(["id"] + [p + ".id" for p in paths])
        return {sid: {p: {str(lid): k for k, lid in enumerate(v or [])}
                      for p, v in zip(paths, per)}
                for sid, *per in zip(*values)}
    positions = {}
    query = {"_id": {"$in": [ObjectId(i) for i in ids]}}
    for doc in dataset._sample_collection.find(query, {p + "._id": 1 for p in paths}):
        pos = {}
        for p in paths:
            node = doc
            for part in p.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            pos[p] = {str(e["_id"]): k for k, e in enumerate(node or []) if "_id" in e}
        positions[str(doc["_id"])] = pos
    return positions


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
    ids, without = list(ids), [f for f in without if f]
    if fast_path_on("document_sizes", _sizes_agree, dataset, ids[:1], without):
        return _aggregated_sizes(dataset, ids, without)
    return _public_sizes(dataset, ids, without)


def _aggregated_sizes(dataset: fo.Dataset, ids: List[str], without: List[str]) -> Dict[str, int]:
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


def _public_sizes(dataset: fo.Dataset, ids: List[str], without: List[str]) -> Dict[str, int]:
    out = {}
    for sample in dataset.select(ids):
        doc = {k: v for k, v in sample.to_mongo_dict(include_id=True).items()
               if v is not None}  # as stored: no None fields
        out[sample.id] = bson_size(doc) - sum(bson_size(doc[f]) for f in without
                                              if isinstance(doc.get(f), dict))
    return out


def _sizes_agree(dataset: fo.Dataset, ids: List[str], without: List[str]) -> bool:
    return _aggregated_sizes(dataset, ids, without) == _public_sizes(dataset, ids, without)


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
    if not fast_path_on("insert_sample_docs", _documents_agree):
        return _add_through_samples(dataset, docs, probe)
    if probe is not None:
        dataset._expand_schema(probe, dynamic=True)
    if docs:
        dataset._sample_collection.insert_many(docs, ordered=False)


#: the keys of a sample document that FiftyOne sets itself when adding a sample
_ADDED_KEYS = ("_id", "_dataset_id", "_rand", "created_at", "last_modified_at")


def _add_through_samples(dataset: fo.Dataset, docs: List[dict],
                         probe: Optional[fo.Sample]) -> None:
    """:func:`insert_sample_docs` through ``add_samples`` (the probe's
    fields declared by adding it and deleting it again)."""
    if docs:
        samples = [fo.Sample.from_dict({k: v for k, v in d.items() if k not in _ADDED_KEYS})
                   for d in docs]
        dataset.add_samples(samples, dynamic=probe is not None, progress=False)
    elif probe is not None:
        dataset.delete_samples(dataset.add_samples([probe.copy()], dynamic=True,
                                                   progress=False))


def _documents_agree() -> bool:
    """The document :func:`sample_doc` builds equals what ``add_sample``
    stores for the same sample (on a temporary dataset), and the private
    names the insertion uses are there."""
    import uuid

    tmp = fo.Dataset("samrs-canary-%s" % uuid.uuid4().hex[:12])  # not persistent
    try:
        tmp.media_type = "image"
        mask = np.eye(3, dtype=bool)
        det = fo.Detection(label="a", bounding_box=[0.1, 0.2, 0.3, 0.4], mask=mask, k=1)
        tmp.add_sample(fo.Sample(filepath="/samrs-canary.png", tags=["t"], s="v",
                                 metadata=fo.ImageMetadata(width=3, height=3),
                                 d=fo.Detections(detections=[det])))
        theirs = tmp._sample_collection.find_one()
        fields = {"s": "v", "d": label_list_doc(fol.Detections, [detection_doc(
            "a", [0.1, 0.2, 0.3, 0.4], mask, oid=ObjectId(det.id), k=1)])}
        ours = sample_doc(tmp, "/samrs-canary.png", {"width": 3, "height": 3}, ["t"], fields,
                          theirs["created_at"])
        same = _same({k: v for k, v in ours.items() if k not in ("_rand", "last_modified_at")},
                     {k: v for k, v in theirs.items() if k not in ("_id", "_rand",
                                                                   "last_modified_at")})
        return (same and type(ours["_rand"]) is type(theirs["_rand"])
                and callable(tmp._expand_schema) and callable(tmp._sample_collection.insert_many))
    finally:
        tmp.delete()


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
        "_rand": _generate_rand(),
    }
    doc.update(fields)
    doc["_dataset_id"] = dataset_id(dataset)
    doc["created_at"] = when
    doc["last_modified_at"] = when
    return doc


def _generate_rand() -> Optional[float]:
    """FiftyOne's ``_rand`` of a new sample (None where it moved:
    :func:`insert_sample_docs` then adds samples through FiftyOne)."""
    make = getattr(foos, "_generate_rand", None)
    return make() if callable(make) else None


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
    if not fast_path_on("made_for_this_import", _import_frames_known):
        return False
    frame = inspect.currentframe()
    while frame is not None:
        if (frame.f_code.co_name in ("from_dir", "from_importer")
                and frame.f_globals.get("__name__") == "fiftyone.core.dataset"
                and frame.f_locals.get("dataset") is dataset):
            return True
        frame = frame.f_back
    return False


def _import_frames_known() -> bool:
    return all("dataset" in getattr(fo.Dataset, name).__code__.co_varnames
               for name in ("from_dir", "from_importer"))


def clear_plugin_cache() -> None:
    """Makes a running process see a new or removed plugin now (FiftyOne
    caches its plugin contexts; without the private cache it notices a
    change of its plugins dir by itself)."""
    from fiftyone.operators import decorators

    if fast_path_on("clear_plugin_cache",
                    lambda: decorators.cache.clear() is None and "state" in decorators.dir_cache):
        decorators.dir_cache["state"] = None


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
    if fast_path_on("view_stages", _stages_round_trip, sample_collection):
        return sample_collection._serialize()
    import uuid

    name = "samrs-transport-%s" % uuid.uuid4().hex[:12]
    dataset_of(sample_collection).save_view(name, sample_collection)
    return [{_SAVED_VIEW: name}]


#: the stage list of a view sent as a saved view (the public fallback)
_SAVED_VIEW = "_samrs_saved_view"


def _stages_round_trip(view) -> bool:
    import fiftyone.core.view as fov

    stages = view._serialize()
    rebuilt = fov.DatasetView._build(dataset_of(view), stages)
    return rebuilt._serialize(include_uuids=False) == view._serialize(include_uuids=False)


def without_sorting(sample_collection):
    """The same samples without the view's ``sort_by`` stages: counting a
    sorted view makes MongoDB sort the matched whole documents first."""
    if isinstance(sample_collection, fo.Dataset) or not fast_path_on(
            "view_stages", _stages_round_trip, sample_collection):
        return sample_collection  # the same samples, counted sorted
    stages = sample_collection._serialize()
    kept = [s for s in stages if not str(s.get("_cls", "")).endswith(".SortBy")]
    if len(kept) == len(stages):
        return sample_collection
    return view_from_stages(dataset_of(sample_collection), kept)


def view_from_stages(dataset: fo.Dataset, stages: list):
    """The view of ``dataset`` that :func:`view_stages` described (the
    dataset itself for [])."""
    if not stages:
        return dataset
    if _SAVED_VIEW in stages[0]:
        return dataset.load_saved_view(stages[0][_SAVED_VIEW])
    import fiftyone.core.view as fov

    return fov.DatasetView._build(dataset, stages)
