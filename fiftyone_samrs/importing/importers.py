"""FiftyOne importers for DOTA, DIOR, FAIR1M and HRSC2016.

Each source format (an entry of :mod:`fiftyone_samrs.formats.registry`) is
reachable three ways, all on one implementation (:func:`load_format`):

- SDK: :func:`load_dota`, :func:`load_dior`, :func:`load_fair1m`,
  :func:`load_hrsc` (and :func:`fiftyone_samrs.load_isaid_masks` to add iSAID
  ground-truth masks to a DOTA v1.0 dataset);
- FiftyOne dataset types: ``fo.Dataset.from_dir(d, dataset_type=fsr.types.DOTADataset)``
  (the importer classes below);
- the CLI: ``samrs import dota DIR --name NAME``.

A format's scanner yields plain records, optionally through
:mod:`.tiling`; :mod:`.sample_docs` turns them into FiftyOne's documents,
which :func:`load_records` bulk-inserts; :mod:`.report` keeps the import
report on the dataset.
"""

from __future__ import annotations

import itertools
import logging
import os
from datetime import datetime
from typing import Any, Dict, Iterable, Iterator, List, Optional

import fiftyone as fo
import fiftyone.utils.data as foud

from fiftyone_samrs.core import classes as fsc
from fiftyone_samrs.core.records import FormatError, ImageRecord, ImportReport
from fiftyone_samrs.fiftyone_io import dataset_dir as dataset_folder
from fiftyone_samrs.fiftyone_io import insert_sample_docs, made_for_this_import
from fiftyone_samrs.formats.registry import FORMATS, get_format
from fiftyone_samrs.importing.report import (
    import_report,
    report_to_dict,
    update_samrs_info,
)
from fiftyone_samrs.importing.sample_docs import (
    DocBuilder,
    declare_standard_fields,
    record_fields,
    record_image_size,
    record_to_labels,
)

__all__ = [
    "load_records", "load_format", "check_not_empty", "PREVIEW_FIELD", "load_dota", "load_dior",
    "load_fair1m", "load_hrsc",
    "IMPORTERS",
]

logger = logging.getLogger(__name__)


def _jsonable(value):
    import json

    return json.loads(json.dumps(value, default=str))


def _unfinished(dataset: fo.Dataset) -> Optional[dict]:
    """The ``info["samrs"]`` of a dataset whose import did not finish, else None."""
    info = (dataset.info or {}).get("samrs") or {}
    return info if info.get("import_complete") is False else None


#: ``resumed`` of :func:`_open_target` for an import that had finished
FINISHED = "finished"


def _open_target(name: Optional[str], dataset, overwrite: bool, persistent: bool,
                 resume: bool = False, settings: Optional[dict] = None):
    """The dataset an import writes to: ``(dataset, created, resumed)``.

    A new dataset is marked ``info["samrs"]["import_complete"] = False`` (with
    the import's settings) before any sample is written, and
    :func:`_finish` sets it True: a killed import leaves a dataset that says
    it is incomplete. Such a dataset is continued with ``resume=True`` (the
    samples already there are skipped) or replaced with ``overwrite=True``;
    without either the error says so. ``resume=True`` on a finished import
    imports nothing (``resumed`` is :data:`FINISHED`).

    Raises:
        ValueError: an existing name without ``overwrite`` (or ``resume`` for
            an unfinished import), or a resume with other settings
    """
    if dataset is not None:
        return dataset, False, False
    if name and fo.dataset_exists(name):
        existing = fo.load_dataset(name)
        unfinished = _unfinished(existing)
        if resume and not overwrite and unfinished is None and (
                (existing.info or {}).get("samrs") or {}).get("import_complete") is True:
            return existing, False, FINISHED  # a rerun of a resume that got to the end
        if unfinished is not None and resume and not overwrite:
            before = unfinished.get("import_settings")
            now = _jsonable(settings or {})
            if before is not None and before != now:
                changed = ["%s: %r -> %r" % (k, before.get(k), now.get(k))
                           for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)]
                raise ValueError(
                    "Dataset %r holds an unfinished import with other settings (%s); resume it "
                    "with the same ones, or pass overwrite=True to start again"
                    % (name, "; ".join(changed)))
            return existing, False, True
        if not overwrite:
            if unfinished is not None:
                raise ValueError(
                    "Dataset %r holds an import that did not finish (%d samples written from "
                    "%s, started %s; the process was killed or crashed). Pass resume=True "
                    "(CLI: --resume) to import the rest into it, or overwrite=True (CLI: "
                    "--overwrite) to remove it and import again"
                    % (name, len(existing), unfinished.get("source_dir") or "?",
                       unfinished.get("import_started") or "?"))
            raise ValueError(
                "A FiftyOne dataset named %r already exists: pass overwrite=True "
                "(CLI: --overwrite) to replace it, or choose another name" % name
            )
        fo.delete_dataset(name)
    created = fo.Dataset(name, persistent=persistent)
    update_samrs_info(created, {
        "import_complete": False,
        "import_started": datetime.now().replace(microsecond=0).isoformat(),
        "import_settings": _jsonable(settings or {}),
        "source_dir": (settings or {}).get("source_dir"),
    })
    created.save()
    return created, True, False


def _skip_imported(records: Iterable[ImageRecord], dataset: fo.Dataset,
                   report: ImportReport) -> Iterator[ImageRecord]:
    """The records whose image is not in ``dataset`` yet (a resumed import)."""
    done = set(dataset.values("filepath"))
    for record in records:
        if os.path.abspath(os.path.expanduser(record.filepath)) in done:
            continue
        yield record


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
    elif fmt in FORMATS:
        base = fsc.resolve_classes(FORMATS[fmt].subset)
    else:
        base = []
    extra = [c for c in seen if c not in base]
    return base + sorted(extra)



def load_records(
    records: Iterable[ImageRecord],
    name: Optional[str] = None,
    *,
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
    dataset, created, _ = _open_target(name, dataset, overwrite, persistent, settings={
        "format": fmt, "source_dir": None if source_dir is None else os.path.abspath(
            str(source_dir))})
    try:
        _insert_records(dataset, records, fmt, classes, report, batch_size, progress,
                        source_dir, tags)
    except BaseException:
        if created and not dataset.deleted:
            dataset.delete()  # no half-imported dataset left behind
        raise
    return dataset


def _insert_records(dataset, records, fmt, classes, report, batch_size, progress, source_dir,
                    tags, already=(0, 0)) -> None:
    if dataset.media_type is None:
        dataset.media_type = "image"
    elif dataset.media_type != "image":
        raise ValueError("Cannot import images into a %s dataset" % dataset.media_type)

    builder = DocBuilder(dataset, tags, report)
    from tqdm import tqdm

    # the bar opens with the first record: none is printed before an early
    # error (a wrong folder, a bad first file) or for an import of nothing
    records = iter(records)
    first = next(records, None)
    if first is None:
        records = iter(())
    else:
        records = itertools.chain([first], records)
    bar = None
    try:
        for batch in _batches(records, batch_size):
            if bar is None:
                bar = tqdm(desc="importing", unit="img", disable=not progress, mininterval=0.5)
            now = datetime.utcnow()
            docs = [builder.build(r, now) for r in batch]
            probe = builder.probe() if builder.changed else None
            builder.changed = False
            insert_sample_docs(dataset, docs, probe)
            bar.update(len(docs))
    finally:
        if bar is not None:
            bar.close()

    declare_standard_fields(dataset, list(builder.labels))
    # a parser counts what it read; with tiling that differs from what was written
    scanned = (report.images, report.objects)
    source = None
    if builder.tiles and scanned[0]:
        source = {"source_images": scanned[0], "source_objects": scanned[1]}
    report.images = builder.images + already[0]
    report.objects = builder.objects + already[1]
    _finish(dataset, fmt, classes, builder.label_names, report, source_dir,
            fields=list(builder.labels), source=source)
    logger.info("Imported %d images, %d objects", report.images, report.objects)


def _finish(dataset, fmt, classes, seen_labels, report, source_dir, fields,
            source=None) -> None:
    update_samrs_info(dataset, {
        "format": fmt,
        "subset": FORMATS[fmt].subset if fmt in FORMATS else None,
        "source_dir": None if source_dir is None else os.path.abspath(str(source_dir)),
        "import_report": report_to_dict(report, source=source),
        "import_complete": True,
        **report.info,  # e.g. DOTA "version" and "version_source" (given / guessed from ...)
    })
    info = dict(dataset.info)
    for key in ("import_started", "import_settings"):  # only an unfinished import needs them
        info["samrs"].pop(key, None)
    dataset.info = info
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
    return dataset_folder(dataset, "tiles")


def _tiled(records, fmt, dataset, tile, tile_dir, tile_size, gap, keep_thresh, report,
           tile_options=None, progress=True):
    """Routes records through :func:`fiftyone_samrs.importing.tiling.tile_images`
    when asked, with the format's tiling defaults for what is not given."""
    if not tile:
        return records
    from fiftyone_samrs.importing import tiling

    defaults = get_format(fmt).tiling
    return tiling.tile_images(
        records,
        _tile_dir(dataset, tile_dir),
        size=tile_size if tile_size is not None else defaults.size,
        gap=gap if gap is not None else defaults.gap,
        keep_thresh=keep_thresh if keep_thresh is not None else defaults.keep_thresh,
        report=report,
        **dict({"progress": bool(progress)}, **dict(tile_options or {})),
    )


def decodable_records(records: Iterable[ImageRecord], report: ImportReport) -> Iterator[ImageRecord]:
    """Passes on the records whose image decodes
    (:func:`fiftyone_samrs.formats.images.check_decodable`: PNG chunks and
    zlib stream to the end, JPEG at 1/8 scale, others in full); the others are
    counted skips (``"undecodable image"``) naming the file and the fault."""
    from fiftyone_samrs.formats.images import check_decodable

    for record in records:
        try:
            check_decodable(record.filepath)
        except FormatError as e:
            report.skip("undecodable image", "%s (not imported: segment would stop there)" % e)
            continue
        yield record


#: the sample field holding a browser-viewable copy of the image (TIFF sources)
PREVIEW_FIELD = "preview_path"


def _preview_dir(dataset: fo.Dataset, preview_dir: Optional[str]) -> str:
    if preview_dir:
        return os.path.abspath(preview_dir)
    return os.path.join(fo.config.default_dataset_dir, dataset.name, "previews")


def _with_previews(records, dataset, previews: bool, preview_dir: Optional[str],
                   report: ImportReport, workers: Optional[int] = None):
    """Passes the records on; those whose image a browser cannot show (TIFF)
    get a JPEG preview (:func:`fiftyone_samrs.formats.images.write_preview`)
    whose path becomes their ``preview_path``. ``filepath`` stays the
    original, which every computation and export uses."""
    if not previews:
        return records
    from fiftyone_samrs.core.parallel import ordered_map
    from fiftyone_samrs.formats.images import (
        browser_viewable,
        preview_name,
        write_preview,
    )

    out_dir = _preview_dir(dataset, preview_dir)

    def work(record: ImageRecord):
        if browser_viewable(record.filepath):
            return record, None, None
        dst = os.path.join(out_dir, preview_name(record.filepath))
        try:
            return record, write_preview(record.filepath, dst), None
        except (FormatError, OSError) as e:
            return record, None, e

    def generate():
        workers_ = max(1, int(workers or min(4, os.cpu_count() or 1)))
        for record, path, error in ordered_map(work, records, workers_):
            if error is not None:
                report.warn("no browser preview", "%s (the App cannot show this image)"
                            % error)
            elif path is not None:
                record.attributes[PREVIEW_FIELD] = path
                report.info["previews"] = report.info.get("previews", 0) + 1
                report.info["preview_dir"] = out_dir
            yield record

    return generate()


def _finish_previews(dataset: fo.Dataset, report: ImportReport) -> None:
    """Makes the App show ``preview_path`` (grid and sample modal) when
    previews were written; samples that needed none get their ``filepath``
    there, so every sample has one."""
    if not report.info.get("previews"):
        return
    from fiftyone import ViewField as F

    missing = dataset.exists(PREVIEW_FIELD, False)
    if len(missing):
        missing.set_field(PREVIEW_FIELD, F("filepath")).save(PREVIEW_FIELD)
    app = dataset.app_config
    if PREVIEW_FIELD not in (app.media_fields or []):
        app.media_fields = list(app.media_fields or ["filepath"]) + [PREVIEW_FIELD]
    app.grid_media_field = PREVIEW_FIELD
    app.modal_media_field = PREVIEW_FIELD
    dataset.save()


def load_format(
    fmt: str,
    dataset_dir,
    name: Optional[str] = None,
    split: Optional[str] = None,
    *,
    unlabeled: str = "skip",
    tile: bool = False,
    tile_dir: Optional[str] = None,
    tile_size: Optional[int] = None,
    gap: Optional[int] = None,
    keep_thresh: Optional[float] = None,
    overwrite: bool = False,
    persistent: bool = True,
    progress: bool = True,
    dataset: Optional[fo.Dataset] = None,
    classes=None,
    tags: Optional[List[str]] = None,
    tile_options: Optional[Dict[str, Any]] = None,
    batch_size: int = 1000,
    check_images: bool = False,
    resume: bool = False,
    allow_empty: bool = False,
    previews: bool = True,
    preview_dir: Optional[str] = None,
    **options,
) -> fo.Dataset:
    """Imports a source dataset of any registered format (see ``load_dota``...).

    Args:
        fmt: a format of :data:`fiftyone_samrs.formats.registry.FORMATS`
            (``"dota"``, ``"dior"``, ``"fair1m"``, ``"hrsc"``)
        dataset_dir: the dataset's root folder
        name: dataset name
        split: only this split (the format's split names)
        unlabeled: ``"skip"`` (counted) or ``"keep"`` images without labels
        tile: cut the images into tiles first and import the tiles
        tile_dir: where the tile images go (default
            ``<fo.config.default_dataset_dir>/<name>/tiles``)
        tile_size, gap, keep_thresh: tiling settings (default: the format's)
        overwrite: replace an existing dataset of that name
        persistent: make the dataset persistent
        progress: show progress bars
        dataset: add to this existing dataset instead of creating one
        classes: class list for ``dataset.classes`` (default: the format's subset)
        tags: extra tags for every sample
        tile_options: extra keyword arguments for
            :func:`fiftyone_samrs.importing.tiling.tile_images` (``skip_empty``, ``pad_value``, ``names``,
            ``pad``, ``ext``, ``workers``)
        batch_size: samples per bulk insert
        check_images: decode-check every image first and skip (counted,
            ``"undecodable image"``) those whose body is damaged; off by
            default: it reads every image in full, which costs several times
            the import itself (see ``docs/importing.md``); without it such an
            image is found by ``segment`` (``skip_failures=True`` skips it)
        resume: continue an import into ``name`` that did not finish (killed:
            its ``info["samrs"]["import_complete"]`` is False), with the same
            settings; the samples already there are kept and skipped. Without
            it (and without ``overwrite``) such a dataset is an error that
            says so
        allow_empty: accept an import that finds no image (by default that
            is an error and no dataset is left behind)
        previews: give images a browser cannot show (TIFF: FAIR1M) a JPEG
            preview in ``preview_path``, which the App then displays
            (``dataset.app_config`` grid and modal media field); ``filepath``
            stays the original, used by SAM, the evaluation and the exports
        preview_dir: where previews go (default
            ``<fo.config.default_dataset_dir>/<name>/previews``)
        **options: the format's own scan options (DOTA ``version``,
            ``keep_unknown``; HRSC ``with_masks``)

    Returns:
        the dataset (``dataset.info["samrs"]["import_report"]`` has the report)

    Raises:
        FormatError: naming the file, for bad input; naming the folder when
            no image was imported (unless ``allow_empty``)
        ValueError: an unknown format, split or option, an existing name, or
            an unfinished import (pass ``resume`` or ``overwrite``)
    """
    spec = get_format(fmt)
    options = spec.check_options(options)
    spec.check_split(split)
    if not os.path.isdir(str(dataset_dir)):
        raise FormatError(dataset_dir, "not a directory")
    report = ImportReport()
    settings = {
        "format": spec.name, "source_dir": os.path.abspath(str(dataset_dir)), "split": split,
        "unlabeled": unlabeled, "tile": bool(tile), "tile_dir": tile_dir,
        "tile_size": tile_size, "gap": gap, "keep_thresh": keep_thresh,
        "tile_options": tile_options, "classes": classes, "tags": tags,
        "check_images": bool(check_images), "options": options,
    }
    dataset, created, resumed = _open_target(name, dataset, overwrite, persistent, resume,
                                             settings)
    if resumed == FINISHED:
        logger.warning("the import into %r had finished; nothing to resume (overwrite=True "
                       "imports again)", dataset.name)
        return dataset
    try:
        records = spec.scan(dataset_dir, split=split, unlabeled=unlabeled, report=report,
                            **options)
        if check_images:
            records = decodable_records(records, report)
        records = _tiled(records, spec.name, dataset, tile, tile_dir, tile_size, gap,
                         keep_thresh, report, tile_options, progress=progress)
        records = _with_previews(records, dataset, previews, preview_dir, report)
        already = (0, 0)
        if resumed:
            records = _skip_imported(records, dataset, report)
            already = (len(dataset), dataset.count("hbb.detections")
                       if dataset.has_sample_field("hbb") else 0)
            logger.info("resuming the import into %r: %d samples already there",
                        dataset.name, already[0])
        _insert_records(dataset, records, spec.name, classes, report, batch_size, progress,
                        dataset_dir, tags, already=already)
        if not allow_empty and not already[0]:
            check_not_empty(report, dataset_dir, spec.name)
        _finish_previews(dataset, report)
        return dataset
    except BaseException:
        if created and not dataset.deleted:
            dataset.delete()  # no half-imported dataset left behind
        raise


def check_not_empty(report: ImportReport, dataset_dir, fmt: str) -> None:
    """Raises when an import wrote no image: a wrong folder or layout (e.g.
    DIOR's ``JPEGImage/`` for ``JPEGImages-*/``) must not pass as an empty
    dataset.

    Raises:
        FormatError: naming ``dataset_dir``, the layout the format expects,
            the folder's entries and what the parser skipped
    """
    if report.images:
        return
    spec = get_format(fmt)
    try:
        entries = sorted(os.listdir(str(dataset_dir)))
    except OSError:
        entries = []
    shown = ", ".join(e + ("/" if os.path.isdir(os.path.join(str(dataset_dir), e)) else "")
                      for e in entries[:12]) + (", ..." if len(entries) > 12 else "")
    details = []
    if report.skipped:
        details.append("skipped: " + ", ".join(
            "%d %s" % (n, k) for k, n in sorted(report.skipped.items())))
    details += report.messages[:3]
    raise FormatError(
        dataset_dir,
        "no %s image imported: expected %s; the folder holds %s%s. No dataset was created "
        "(pass allow_empty=True, CLI --allow-empty, to accept an empty import)"
        % (spec.title.split(" (")[0], spec.layout, shown or "nothing",
           ("; " + "; ".join(details)) if details else ""))


def load_dota(dataset_dir, name=None, split=None, *, version=None, keep_unknown=False,
              **kwargs) -> fo.Dataset:
    """Imports a DOTA v1.0/1.5/2.0 tree (``images/`` + ``labelTxt/``, or split folders).

    Args:
        dataset_dir: the DOTA root (with ``images/`` and ``labelTxt/``, or
            ``train/``, ``val/``, ``test/`` folders holding them)
        name: dataset name
        split: the split to import (None: all found)
        version: ``"1.0"``, ``"1.5"``, ``"2.0"`` or None (from a
            ``labelTxt-v<version>`` folder name, else guessed and reported)
        keep_unknown: keep objects of unknown classes (counted warning)
            instead of raising
        **kwargs: as :func:`load_format` (``tile=True`` cuts 1024/200/0.7
            tiles; default classes SOTA)

    Returns:
        the dataset (``dataset.info["samrs"]["import_report"]`` has the report)
    """
    return load_format("dota", dataset_dir, name, split, version=version,
                       keep_unknown=keep_unknown, **kwargs)


def load_dior(dataset_dir, name=None, split=None, **kwargs) -> fo.Dataset:
    """Imports DIOR / DIOR-R (JPEG images, HBB and/or OBB VOC-style XML).

    Args:
        dataset_dir: the DIOR root (``JPEGImages-*``, ``Annotations``, ``ImageSets``)
        name: dataset name
        split: ``"train"``, ``"val"``, ``"test"``, ``"trainval"`` or None (all)
        **kwargs: as :func:`load_format` (DIOR images are 800x800: tiling is
            off by default; default classes SIOR)
    """
    return load_format("dior", dataset_dir, name, split, **kwargs)


def load_fair1m(dataset_dir, name=None, split=None, **kwargs) -> fo.Dataset:
    """Imports FAIR1M 1.0/2.0 (``.tif`` images, ``labelXml`` polygons).

    ``hbb`` holds the RH-Box of each rotated box (``rh`` = True). Browsers
    cannot show TIFF: an untiled import writes a JPEG preview per image
    (``preview_path``, shown by the App; ``previews=False`` to skip), while
    ``filepath`` keeps the ``.tif``. Tiles are PNG and need none.

    Args:
        dataset_dir: the FAIR1M root (``train/part*/``, ``validation/``, or
            ``images/`` + ``labelXml/``)
        name: dataset name
        split: ``"train"``, ``"val"``, ``"test"`` or None (all)
        **kwargs: as :func:`load_format` (tiling defaults 1024/200/0.7, as SAMRS;
            default classes FAST)
    """
    return load_format("fair1m", dataset_dir, name, split, **kwargs)


def load_hrsc(dataset_dir, name=None, split=None, *, with_masks=True, **kwargs) -> fo.Dataset:
    """Imports HRSC2016 (``FullDataSet`` + ``ImageSets``), with GT masks.

    Samples get ``all_masked`` (every ship of the image has a GT mask: the
    paper's 124 test images protocol) and ``gt_masks`` where masks exist.

    Args:
        dataset_dir: the HRSC root (containing ``FullDataSet``) or ``FullDataSet``
        name: dataset name
        split: ``"trainval"``, ``"train"``, ``"val"``, ``"test"`` or None (all)
        with_masks: read the GT masks from the colour PNGs
        **kwargs: as :func:`load_format` (default classes ``["ship"]``)
    """
    return load_format("hrsc", dataset_dir, name, split, with_masks=with_masks, **kwargs)


# ---------------------------------------------------------------------------
# FiftyOne dataset importers (``fo.Dataset.from_dir(..., dataset_type=fsr.types.*)``)
# ---------------------------------------------------------------------------


class _SAMRSImporter(foud.LabeledImageDatasetImporter, foud.BatchDatasetImporter):
    """Base of the format importers; ``fmt`` names the registry entry.

    FiftyOne sees a :class:`~fiftyone.utils.data.importers.BatchDatasetImporter`
    and calls :meth:`import_samples`, which runs :func:`load_format` (the fast
    path): ``fo.Dataset.from_dir`` gives the same dataset as ``load_*``.
    Iterating the importer yields ``(image_path, ImageMetadata, labels)``
    tuples (labels: a dict of the label and sample fields), as a
    :class:`~fiftyone.utils.data.importers.LabeledImageDatasetImporter`.

    Args:
        dataset_dir: the source root
        shuffle, seed, max_samples: as FiftyOne's importers
        **options: as :func:`load_format` (``split``, ``tile``, the format's
            own scan options...)
    """

    fmt = ""

    def __init__(self, dataset_dir=None, shuffle=False, seed=None, max_samples=None, **options):
        super().__init__(dataset_dir=dataset_dir, shuffle=shuffle, seed=seed,
                         max_samples=max_samples)
        spec = get_format(self.fmt)
        scan_keys = {o.name for o in spec.options} | {"split", "unlabeled"}
        self.scan_options = {k: v for k, v in options.items() if k in scan_keys}
        self.options = {k: v for k, v in options.items() if k not in scan_keys}
        spec.check_options({k: v for k, v in self.scan_options.items()
                            if k not in ("split", "unlabeled")})
        self.report = ImportReport()
        self._iter = None

    # -- batch import (the fast path) --------------------------------------

    def import_samples(self, dataset, tags=None, progress=None):
        before = len(dataset)
        try:
            return self._import(dataset, before, tags, progress)
        except BaseException:
            # as load_*: a failed import leaves no dataset behind (FiftyOne's
            # from_dir would keep the one it made, empty)
            if before == 0 and made_for_this_import(dataset):
                dataset.delete()
            raise

    def _import(self, dataset, before, tags, progress):
        opts = dict(self.options)
        if progress is not None:
            opts["progress"] = bool(progress)
        if self.shuffle or self.max_samples is not None:
            records = self._records(self.report)
            records = self._preprocess_list(list(records) if self.shuffle else records)
            if opts.pop("check_images", False):
                records = decodable_records(records, self.report)
            records = _tiled(records, self.fmt, dataset, opts.pop("tile", False),
                             opts.pop("tile_dir", None), opts.pop("tile_size", None),
                             opts.pop("gap", None), opts.pop("keep_thresh", None), self.report,
                             opts.pop("tile_options", None), progress=opts.get("progress", True))
            records = _with_previews(records, dataset, opts.pop("previews", True),
                                     opts.pop("preview_dir", None), self.report)
            load_records(records, dataset=dataset, fmt=self.fmt, report=self.report,
                         classes=opts.get("classes"), progress=opts.get("progress", True),
                         source_dir=self.dataset_dir, tags=tags)
            if not opts.get("allow_empty", False):
                check_not_empty(self.report, self.dataset_dir, self.fmt)
            _finish_previews(dataset, self.report)
        else:
            load_format(self.fmt, self.dataset_dir, dataset=dataset, tags=tags,
                        **self.scan_options, **opts)
            self.report = import_report(dataset)
        return dataset.skip(before).values("id")

    # -- iteration (the generic FiftyOne path) -----------------------------

    def _records(self, report: ImportReport) -> Iterator[ImageRecord]:
        spec = get_format(self.fmt)
        opts = dict(self.scan_options)
        return spec.scan(self.dataset_dir, split=opts.pop("split", None),
                         unlabeled=opts.pop("unlabeled", "skip"), report=report,
                         **spec.check_options(opts))

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


#: the import options an importer class takes besides the format's own
_IMPORTER_OPTIONS = (("split", None), ("unlabeled", "skip"), ("tile", False), ("tile_dir", None),
                     ("tile_size", None), ("gap", None), ("keep_thresh", None),
                     ("classes", None), ("tile_options", None), ("check_images", False),
                     ("allow_empty", False), ("previews", True), ("preview_dir", None))


def _importer_class(fmt: str) -> type:
    """The FiftyOne importer class of a format, with every option of the format
    as a named constructor argument (FiftyOne passes only those to it)."""
    import inspect

    spec = get_format(fmt)

    def __init__(self, dataset_dir=None, shuffle=False, seed=None, max_samples=None,
                 **options):
        _SAMRSImporter.__init__(self, dataset_dir, shuffle, seed, max_samples, **options)

    names = [("dataset_dir", None), ("shuffle", False), ("seed", None), ("max_samples", None)]
    names += list(_IMPORTER_OPTIONS) + [(o.name, o.default) for o in spec.options]
    __init__.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d)
           for n, d in names])
    return type(spec.class_prefix + "DatasetImporter", (_SAMRSImporter,), {
        "fmt": spec.name, "__module__": __name__, "__init__": __init__,
        "__doc__": "Importer for %s (``%s``); options as :func:`load_format` with fmt=%r."
                   % (spec.title, spec.layout, spec.name)})


#: the importer class of each format (``DOTADatasetImporter``...), also
#: module attributes so FiftyOne finds them by path
IMPORTERS: Dict[str, type] = {fmt: _importer_class(fmt) for fmt in FORMATS}
globals().update({cls.__name__: cls for cls in IMPORTERS.values()})
