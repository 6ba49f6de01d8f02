"""FiftyOne importers for DOTA, DIOR, FAIR1M and HRSC2016 (and iSAID GT masks).

Each source format is reachable three ways, all on one implementation
(:func:`load_records`):

- SDK: :func:`load_dota`, :func:`load_dior`, :func:`load_fair1m`,
  :func:`load_hrsc` (and :func:`load_isaid_masks` to add iSAID ground-truth
  masks to a DOTA v1.0 dataset);
- FiftyOne dataset types: ``fo.Dataset.from_dir(d, dataset_type=fsr.types.DOTADataset)``
  (the importer classes below);
- the CLI: ``samrs import dota DIR --name NAME``.

The parsers in :mod:`fiftyone_samrs.formats` yield plain records;
:mod:`fiftyone_samrs.importing.sample_docs` turns them into FiftyOne labels and
documents (fields written: see there and ``docs/importing.md``);
:func:`load_records` bulk-inserts those documents; :mod:`fiftyone_samrs.importing.isaid_gt`
adds iSAID masks; :mod:`fiftyone_samrs.importing.report` keeps the import report.
The names of those modules used before the split are importable from here.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

import fiftyone as fo
import fiftyone.utils.data as foud

from fiftyone_samrs.core import classes as fsc
from fiftyone_samrs.importing.report import import_report, report_to_dict, update_samrs_info
from fiftyone_samrs.importing.isaid_gt import load_isaid_masks
from fiftyone_samrs.core.records import FormatError, ImageRecord, ImportReport
from fiftyone_samrs.fiftyone_io import insert_sample_docs
from fiftyone_samrs.importing.sample_docs import (
    GT_FIELD,
    HBB_FIELD,
    OBB_FIELD,
    OBJECT_ATTRIBUTES,
    RECORD_FIELDS,
    STANDARD_ATTRIBUTE_FIELDS,
    STANDARD_SAMPLE_FIELDS,
    DocBuilder,
    declare_standard_fields,
    object_attributes,
    record_fields,
    record_image_size,
    record_to_labels,
    record_to_sample,
)

__all__ = [
    "load_records", "load_dota", "load_dior", "load_fair1m", "load_hrsc", "LOADERS",
    "DOTADatasetImporter", "DIORDatasetImporter", "FAIR1MDatasetImporter",
    "HRSC2016DatasetImporter",
    # re-exported from the modules split out of this one
    "load_isaid_masks", "import_report", "report_to_dict", "declare_standard_fields",
    "object_attributes", "record_fields", "record_to_labels", "record_to_sample",
    "HBB_FIELD", "OBB_FIELD", "GT_FIELD", "OBJECT_ATTRIBUTES", "RECORD_FIELDS",
    "STANDARD_SAMPLE_FIELDS", "STANDARD_ATTRIBUTE_FIELDS",
]

logger = logging.getLogger(__name__)


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

    builder = DocBuilder(dataset, tags, report)
    from tqdm import tqdm

    with tqdm(desc="importing", unit="img", disable=not progress, mininterval=0.5) as bar:
        for batch in _batches(records, batch_size):
            now = datetime.utcnow()
            docs = [builder.build(r, now) for r in batch]
            probe = builder.probe() if builder.changed else None
            builder.changed = False
            insert_sample_docs(dataset, docs, probe)
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
    update_samrs_info(dataset, {
        "format": fmt,
        "subset": fsc.DEFAULT_SUBSET.get(fmt),
        "source_dir": None if source_dir is None else os.path.abspath(str(source_dir)),
        "import_report": report_to_dict(report, source=source),
    })
    class_list = _class_list(fmt, classes, seen_labels)
    dataset_classes = dict(dataset.classes)
    for field in fields:
        dataset_classes[field] = class_list
    dataset.classes = dataset_classes
    dataset.save()



# ---------------------------------------------------------------------------
# per-format loaders
# ---------------------------------------------------------------------------


def _tile_dir(dataset: fo.Dataset, tile_dir: Optional[str]) -> str:
    if tile_dir:
        return os.path.abspath(tile_dir)
    return os.path.join(fo.config.default_dataset_dir, dataset.name, "tiles")


def _tiled(records, fmt, dataset, tile, tile_dir, tile_size, gap, keep_thresh, report,
           tile_options=None):
    """Routes records through :func:`fiftyone_samrs.importing.tiling.tile_images` when asked."""
    if not tile:
        return records
    from fiftyone_samrs.importing import tiling
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
            :func:`fiftyone_samrs.importing.tiling.tile_images` (``skip_empty``,
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
        width, height, channels = record_image_size(record)
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
