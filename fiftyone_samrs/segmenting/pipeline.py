"""Runs a segmentation backend over a FiftyOne view: the ``segment`` SDK call.

For every sample of the view it turns the box field (``hbb``, with the
rotated boxes of ``obb`` where a prompt needs them) into prompts
(:mod:`.inputs`, :mod:`.prompts`), runs the backend (:mod:`.backends`), and
writes (:mod:`.writer`)

- ``label_field``: one :class:`fiftyone.core.labels.Detection` per prompt
  object, in the prompt order, with the mask stored as its tight crop;
- ``seg_field``: a :class:`fiftyone.core.labels.Segmentation` whose
  ``mask_path`` is a SAMRS semantic PNG (:mod:`fiftyone_samrs.core.painting`).

How the work is spread:

- a loader thread reads each batch's samples from the database and builds
  the prompts, and a pool of ``num_workers`` threads decodes the images (and
  runs the engine's ``preprocess`` when it has one) while the model runs;
- the calling thread only runs the engine (``engine.predict_batches`` where
  it has one, so the next batch's encoder pass overlaps this batch's
  decoding on CUDA; else ``predict_batch``);
- a writer thread builds the labels, paints and writes the PNGs and writes
  each batch to the database in one bulk write.

A sample is *finished* when its ``label_field`` is set and its
``seg_field`` PNG exists; finished samples are skipped unless
``overwrite=True``, so a killed run resumes where it stopped (the plan:
:func:`.runs.plan_resume`). Shards split a view by sample id, independent of
what is already done.

Several calls may work on one field at once (processes, machines, shards,
Ray workers: :mod:`.distributed`): each takes part in the field's lease and
claims each batch before loading it (:mod:`.leases`), so a run with other
settings is refused, the same settings share the work, and the field's run
record is complete only when every shard is.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

import fiftyone as fo
import fiftyone.core.utils as fou

from fiftyone_samrs.core.classes import resolve_classes
from fiftyone_samrs.core.painting import PAINT_ORDERS
from fiftyone_samrs.core.records import FormatError
from fiftyone_samrs.core.text import plural
from fiftyone_samrs.fiftyone_io import (
    ObjectInputs,
    check_label_field,
    dataset_dir,
    dataset_of,
    declare_label_field,
    default_classes,
    ensure_image_sizes,
    object_inputs,
)
from fiftyone_samrs.formats.images import read_image
from fiftyone_samrs.segmenting.backends import backend_spec
from fiftyone_samrs.segmenting.base import as_engine
from fiftyone_samrs.segmenting.leases import COUNTS, MAX_FAILURES_LISTED, FieldLease
from fiftyone_samrs.segmenting.prompts import build_prompts, needs_quads, parse_prompt
from fiftyone_samrs.segmenting.runs import (
    SegmentSettings,
    check_seg_outputs_free,
    default_seg_field,
    finish_run,
    get_segment_run,
    plan_resume,
    start_run,
)
from fiftyone_samrs.segmenting.writer import (
    DETECTION_ATTRIBUTES,
    LabelOptions,
    Writer,
    label_png_names,
)

logger = logging.getLogger(__name__)

_QUAD_NAMES = ("rhbox", "rbox_m", "rhbox_m")


@dataclass
class SegmentResult:
    """What a :func:`segment` call did.

    Attributes:
        backend: name of the backend that ran (``"sam"``, ``"grabcut"``, ...)
        prompt: the prompt setting
        label_field: the Detections field written
        seg_field: the Segmentation field written, or None
        seg_dir: where the semantic PNGs are, or None
        samples_in_view: samples in the view
        samples_in_shard: samples of this shard (= the view without sharding)
        samples_processed: samples segmented by this call
        samples_skipped: samples of the shard already finished (resume)
        boxes: prompts (objects) segmented
        empty_masks: masks that came out empty (kept, flagged ``empty``)
        unknown_labels: objects whose label is not in the class list, by
            label: they have a Detection but are not painted (255)
        classes: the class list of the PNGs (index = pixel value)
        shard: ``(i, n)`` or None
        seconds: wall time
        samples_failed: samples left out with ``skip_failures=True`` (an
            image that cannot be read, a sample too large to store); they stay
            unfinished, so a later run tries them again
        failures: ``{"id", "filepath", "error"}`` of each failed sample
        mask_files: predicted masks written as mask files (``mask_path``)
            because their sample's document would be too large otherwise
        encoder: the SAM encoder's settings as one line (dtype and why,
            attention, compilation: ``SamEngine.describe()``), or None for
            backends without them
        samples_by_others: samples of this call's plan that another process
            working on the same field (same settings) finished meanwhile
        workers: the number of Ray workers, or None (this process)
        worker_samples: with Ray workers, the samples each one segmented
    """

    backend: str
    prompt: str
    label_field: str
    seg_field: Optional[str]
    seg_dir: Optional[str]
    samples_in_view: int = 0
    samples_in_shard: int = 0
    samples_processed: int = 0
    samples_skipped: int = 0
    boxes: int = 0
    empty_masks: int = 0
    unknown_labels: Counter = field(default_factory=Counter)
    classes: List[str] = field(default_factory=list)
    shard: Optional[Tuple[int, int]] = None
    seconds: float = 0.0
    samples_failed: int = 0
    failures: List[dict] = field(default_factory=list)
    mask_files: int = 0
    encoder: Optional[str] = None
    samples_by_others: int = 0
    workers: Optional[int] = None
    worker_samples: Optional[dict] = None

    def counts(self) -> dict:
        """What this call counted (the run record's and a Ray worker's
        report; :meth:`add_counts` adds one into another)."""
        return dict(samples_processed=self.samples_processed,
                    samples_skipped=self.samples_skipped,
                    samples_by_others=self.samples_by_others, boxes=self.boxes,
                    empty_masks=self.empty_masks, unknown_labels=dict(self.unknown_labels),
                    seconds=round(self.seconds, 3), samples_failed=self.samples_failed,
                    failures=self.failures[:MAX_FAILURES_LISTED], mask_files=self.mask_files)

    def add_counts(self, counts: dict) -> None:
        """Adds another call's :meth:`counts` (a Ray worker's chunk) to these
        (the summed counts of a shard record, :data:`~.leases.COUNTS`, but
        ``samples_skipped``: the plan's, counted once by the driver)."""
        for key in COUNTS:
            if key != "samples_skipped":
                setattr(self, key, getattr(self, key) + counts.get(key, 0))
        self.unknown_labels.update(counts.get("unknown_labels") or {})
        self.failures.extend(counts.get("failures") or [])

    def summary(self, max_failures: int = 10) -> str:
        """A few human-readable lines."""
        secs = max(self.seconds, 1e-9)
        lines = [
            "backend %s, prompt %s -> field %r%s"
            % (self.backend, self.prompt, self.label_field,
               ", semantic PNGs %r in %s" % (self.seg_field, self.seg_dir)
               if self.seg_field else ""),
            "%s segmented, %d already done (skipped)%s%s%s; %s, %s"
            % (plural(self.samples_processed, "sample"), self.samples_skipped,
               ", %d by other processes" % self.samples_by_others
               if self.samples_by_others else "",
               ", shard %d/%d: %d of %s" % (self.shard[0], self.shard[1],
                                            self.samples_in_shard,
                                            plural(self.samples_in_view, "sample"))
               if self.shard else "",
               ", %d Ray workers" % self.workers if self.workers else "",
               plural(self.boxes, "box"), plural(self.empty_masks, "empty mask")),
            "%.1f s (%.2f samples/s, %.1f boxes/s)"
            % (self.seconds, self.samples_processed / secs, self.boxes / secs),
        ]
        if self.encoder:
            lines.append(self.encoder)
        if self.unknown_labels:
            n = sum(self.unknown_labels.values())
            lines.append(
                "%d object%s with labels not in the class list (not painted, 255): %s"
                % (n, "" if n == 1 else "s",
                   ", ".join("%s: %d" % kv for kv in sorted(self.unknown_labels.items())))
            )
        if self.mask_files:
            lines.append("%d masks written as mask files (mask_path): their samples would "
                         "pass MongoDB's 16 MB document limit with inline masks" % self.mask_files)
        if self.samples_failed:
            lines.append("%d sample%s FAILED and skipped (skip_failures=True; not segmented, "
                         "a rerun tries them again):" % (self.samples_failed,
                                                        "" if self.samples_failed == 1 else "s"))
            for f in self.failures[:max_failures]:
                lines.append("  %s (sample %s): %s" % (f["filepath"], f["id"], f["error"]))
            if self.samples_failed > max_failures:
                lines.append("  ... and %d more (SegmentResult.failures, and the run record)"
                             % (self.samples_failed - max_failures))
        return "\n".join(lines)


# --------------------------------------------------------------------------
# per-sample work


@dataclass
class _Job:
    """One sample on its way through the pipeline (source pixels)."""

    sample_id: str
    filepath: str
    width: int
    height: int
    objects: ObjectInputs
    prompts: Any = None
    png_path: Optional[str] = None
    image: Any = None  # the decoded image, or the engine's preprocess() result
    results: Optional[list] = None
    failed: Optional[str] = None  # why the sample is skipped (skip_failures)


def _make_job(sample_id, filepath, width, height, dets, polylines, prompt, margin,
              png_path, mask_frame: str = "sam") -> _Job:
    objs = object_inputs(dets, polylines, width, height)
    n = len(objs)
    if polylines is None and n and needs_quads(prompt, objs.has_hbox):
        raise ValueError(
            "%s: prompt %r needs rotated boxes (%s), but the dataset has no rotated-box field"
            % (filepath, prompt, "the sample's boxes are all RH-Boxes" if prompt == "auto"
               else "it uses " + ", ".join(p for p in parse_prompt(prompt) if p in _QUAD_NAMES)))
    job = _Job(sample_id, filepath, int(width), int(height), objs, png_path=png_path)
    if n:
        job.prompts = build_prompts(objs.hboxes, objs.quads, prompt, (int(height), int(width)),
                                    has_hbox=objs.has_hbox, margin=margin,
                                    mask_frame=mask_frame)
    return job


def _load_image(job: _Job, engine) -> _Job:
    image = read_image(job.filepath)
    if image.shape[:2] != (job.height, job.width):
        raise FormatError(
            job.filepath, "image is %dx%d but the sample's metadata says %dx%d; "
            "recompute it with compute_metadata(overwrite=True)"
            % (image.shape[1], image.shape[0], job.width, job.height))
    # SamEngine.predict_batch takes its preprocess() results in place of images
    job.image = engine.preprocess(image)
    return job


def _load_image_or_fail(job: _Job, engine, skip_failures: bool) -> _Job:
    """:func:`_load_image`; with ``skip_failures`` a :class:`FormatError`
    marks the job failed instead of stopping the run."""
    try:
        return _load_image(job, engine)
    except FormatError as e:
        message = str(e)
        if message.startswith(e.path + ": "):
            message = message[len(e.path) + 2:]
        error = FormatError(e.path, "%s (sample %s)" % (message, job.sample_id))
        if not skip_failures:
            raise error from None
        job.failed = str(error)
        return job


def _todo(jobs: List[_Job]) -> List[_Job]:
    """The jobs with objects that have not failed (the others get no results)."""
    for j in jobs:
        j.results = []
    return [j for j in jobs if j.prompts is not None and len(j.prompts) and not j.failed]


def _attach(engine, todo: List[_Job], out) -> None:
    """Attaches the backend's results ``out`` to the jobs ``todo``."""
    if len(out) != len(todo):
        raise RuntimeError("backend %r returned results for %d images, expected %d"
                           % (engine.name, len(out), len(todo)))
    for j, res in zip(todo, out):
        j.results = list(res)
        j.image = None  # free memory early


def _predict_all(engine, batches):
    """The engine over a stream of job batches (``engine.predict_batches``:
    the SAM engine queues the next batch's encoder pass before the current
    batch decodes, on CUDA they overlap; the others run batch by batch),
    yielding each batch when done."""
    pending: "collections.deque" = collections.deque()
    error: List[Exception] = []

    def pairs():
        try:
            for jobs in batches:
                todo = _todo(jobs)
                pending.append((jobs, todo))
                yield [j.image for j in todo], [j.prompts for j in todo]
        except Exception as e:
            error.append(e)

    for out in engine.predict_batches(pairs()):
        jobs, todo = pending.popleft()
        _attach(engine, todo, out)
        yield jobs
    if error:
        raise error[0]


# --------------------------------------------------------------------------
# the SDK call


def segment(
    sample_collection,
    prompt: str = "auto",
    backend: str = "sam",
    model: Optional[str] = None,
    checkpoint: Optional[str] = None,
    *,
    label_field: str = "sam",
    seg_field: Optional[str] = "auto",
    box_field: str = "hbb",
    obb_field: Optional[str] = "obb",
    classes=None,
    seg_dir: Optional[str] = None,
    batch_size: int = 4,
    decoder_chunk: int = 64,
    device=None,
    dtype=None,
    overwrite: bool = False,
    shard: Optional[Tuple[int, int]] = None,
    margin: Optional[float] = None,
    clip_to_rbox: bool = False,
    rbox_margin: float = 2.0,
    paint_order: str = "annotation",
    num_workers: int = 2,
    progress=True,
    engine=None,
    skip_failures: bool = False,
    workers: Optional[int] = None,
    ray_address: Optional[str] = None,
    keep_workers: bool = False,
) -> SegmentResult:
    """Segments every box of a view with SAM (or a baseline backend).

    Args:
        sample_collection: a FiftyOne dataset or view of images
        prompt: a prompt name (``"hbox"``, ``"rhbox"``, ``"cp"``, ``"hbox_m"``,
            ``"rbox_m"``, ``"rhbox_m"``), a ``"+"`` combination, or ``"auto"``
            (H-Box where the source has horizontal boxes, else RH-Box)
        backend: ``"sam"``, ``"sam2"`` (SAM 2 / 2.1), ``"sam_hq"`` (HQ-SAM),
            ``"grabcut"`` or ``"boxfill"`` (:mod:`fiftyone_samrs.segmenting.backends`)
        model: model type or FiftyOne zoo name (inferred from the
            checkpoint when None); for ``"sam2"`` also its config (``.yaml``)
        checkpoint: a local checkpoint (``.pth`` / ``.pt``)
        label_field: the Detections field to write
        seg_field: the Segmentation field to write, or None for no PNGs;
            ``"auto"`` (default): ``<label_field>_seg`` (``sam`` -> ``sam_seg``).
            A semantic field that another run's instance field owns is refused
        box_field: the Detections field with the prompt boxes
        obb_field: the Polylines field with the rotated boxes (linked by
            ``obj_index``), or None
        classes: class list of the PNGs, a subset name (``"SOTA"``) or a list;
            default: ``dataset.info["samrs"]["subset"]``, else
            ``dataset.classes[box_field]``, else the sorted labels
        seg_dir: folder of the PNGs; default
            ``<fo.config.default_dataset_dir>/<dataset name>/<seg_field>``
        batch_size: images per model call (and per database write)
        decoder_chunk: boxes per mask-decoder call (SAM)
        device: ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"cpu"``; None = auto
        dtype: the SAM encoder's dtype: None/``"auto"`` = bf16 on CUDA (fp16
            where bf16 is not supported) and on CPUs with AMX-BF16 or
            AVX512-BF16, else fp32; or ``"bf16"``, ``"fp16"``, ``"fp32"``. The
            choice and its reason are in the summary and the run record
            (``encoder_settings``)
        overwrite: redo samples that are already finished
        shard: ``(i, n)``: process only shard ``i`` of ``n`` (by sample id)
        margin: None (default): SAM's whole masks, wherever they reach, as
            the SAMRS release (computed only where they can be, so the cost
            follows the mask); a fraction: masks are cut to their prompt box
            grown by ``max(margin * side, 8 px)``. The baselines run with 0.1
            when None (its :class:`~.backends.BackendSpec`'s ``default_margin``)
        clip_to_rbox: AND each mask with its rotated box grown by
            ``rbox_margin`` pixels, where the object has one
        rbox_margin: see ``clip_to_rbox``
        paint_order: ``"annotation"`` (later wins, SAMRS) or ``"small_last"``
        num_workers: image decoding threads
        progress: show a progress bar (True/False), or a FiftyOne progress
            callback (as ``fo.report_progress``; it receives a
            :class:`fiftyone.core.utils.ProgressBar` after each batch)
        engine: an already-built backend (an :class:`~.base.Engine`, or
            anything with ``name`` and ``predict_batch``, wrapped by
            :func:`~.base.as_engine`); overrides ``backend``/``model``/``checkpoint``
            (with ``workers``, it must pickle: each worker gets a copy)
        skip_failures: False (default): the first sample that cannot be
            segmented (its image missing, unreadable or undecodable, its size
            unknown, or its document too large) stops the run with a
            FormatError naming the sample and the file. True: such samples
            are skipped, counted and listed (``result.samples_failed``,
            ``result.failures``, the summary and the run record), and stay
            unfinished
        workers: None (default): this process does the work; N >= 1: N Ray
            workers (actors) do it, each loading the model once, on its own
            GPU where the cluster has GPUs (needs ``pip install
            fiftyone-samrs[ray]``; :mod:`.distributed`)
        ray_address: the Ray cluster to join (``"auto"``, ``"HOST:6379"``);
            None starts a local Ray on this machine's CPUs/GPUs (or uses the
            one this process already joined)
        keep_workers: keep the Ray workers, models loaded, for the next
            calls of this process (they hold their CPUs/GPUs until
            :func:`.distributed.shutdown_workers`); default: they end with
            the call

    Several calls may work on one field at once (processes, machines,
    shards): a run with other settings than the live one is refused at once
    (:class:`~.leases.LeaseConflict`, a ``ValueError``), a run with the same
    settings shares the work by claiming batches of samples
    (:mod:`.leases`), and waits until the samples other processes took are
    finished (taking over those of a process that died).

    Returns:
        a :class:`SegmentResult`

    Raises:
        ValueError: for bad settings, a prompt that needs rotated boxes on a
            dataset without them, a resumed run with different settings, or
            another live run on the field with other settings
        FormatError: for an image that cannot be read or does not match its
            metadata (unless ``skip_failures``)
    """
    start = time.time()
    shard = _check_arguments(sample_collection, prompt, batch_size, shard, paint_order)
    workers = _check_workers(workers, ray_address)
    dataset = dataset_of(sample_collection)
    engine = as_engine(engine)
    backend_name = engine.name if engine is not None else backend
    if margin is None and engine is not None:
        margin = engine.default_margin
    elif margin is None:
        margin = backend_spec(backend_name).default_margin
    if seg_field == "auto":
        seg_field = default_seg_field(label_field)
    settings = _resolve_settings(
        dataset, prompt=prompt, backend=backend_name,
        model=model, checkpoint=checkpoint, label_field=label_field, seg_field=seg_field,
        box_field=box_field, obb_field=obb_field, classes=classes, seg_dir=seg_dir,
        margin=margin, clip_to_rbox=clip_to_rbox, rbox_margin=rbox_margin,
        paint_order=paint_order)
    check_seg_outputs_free(dataset, settings)

    # refused here when another live run writes the field with other settings
    lease = FieldLease(dataset, settings, shard).acquire()
    started = False
    result = None
    try:
        if not lease.creator:
            dataset.reload()  # the schema its opener declared
        plan = plan_resume(sample_collection.values("id"), shard,
                           _finished_ids(dataset, label_field, seg_field),
                           get_segment_run(dataset, label_field), settings, overwrite)
        result = SegmentResult(
            backend=settings.backend, prompt=prompt, label_field=label_field,
            seg_field=seg_field, seg_dir=settings.seg_dir, samples_in_view=len(plan.view_ids),
            samples_in_shard=len(plan.shard_ids), samples_skipped=len(plan.done),
            classes=list(settings.classes), shard=shard, workers=workers)
        if lease.creator or plan.todo:
            _set_up_fields(dataset, settings, declare=bool(plan.todo))
        lease.set_ready()
        start_run(dataset, settings, shard, lease, len(plan.shard_ids))
        started = True

        if plan.todo:
            ensure_image_sizes(sample_collection, plan.todo)
            if workers:
                from fiftyone_samrs.segmenting.distributed import run_on_ray

                run_on_ray(sample_collection, dataset, plan, settings, result, lease,
                           engine=engine, engine_spec=dict(
                               backend=backend, model=model, checkpoint=checkpoint,
                               device=device, dtype=dtype, batch_size=batch_size,
                               decoder_chunk=decoder_chunk),
                           workers=workers, ray_address=ray_address, batch_size=batch_size,
                           num_workers=num_workers, overwrite=overwrite, progress=progress,
                           keep_workers=keep_workers, skip_failures=skip_failures)
            else:
                if engine is None:  # only now: a finished run does not load the model
                    engine = _make_engine(backend, model, checkpoint, device, dtype,
                                          batch_size, decoder_chunk, n_images=len(plan.todo))
                bar = _Progress(len(plan.todo), progress)
                try:
                    _run_shared(sample_collection, dataset, engine, list(plan.todo), settings,
                                result, lease, batch_size=batch_size,
                                num_workers=num_workers, progress=bar, overwrite=overwrite,
                                skip_failures=skip_failures)
                finally:
                    bar.close()
        result.seconds = time.time() - start
        result.encoder = engine.describe() if engine is not None else None
        finish_run(dataset, settings, shard, dict(
            result.counts(), encoder_settings=engine.settings() if engine is not None else None),
            lease=lease, complete=True)
    except BaseException:
        if started:
            try:
                result.seconds = time.time() - start
                finish_run(dataset, settings, shard, result.counts(), lease=lease,
                           complete=False)
            except Exception as e:
                logger.warning("could not record the interrupted run: %s", e)
        raise
    finally:
        lease.release()
    return result


def _set_up_fields(dataset, settings: SegmentSettings, declare: bool) -> None:
    """The semantic field's mask targets, and the output fields declared
    (``declare``); done by the process that opens the field's lease, before
    any other starts (schema changes are not safe concurrently)."""
    seg_field = settings.seg_field
    if seg_field:
        targets = dict(enumerate(settings.classes))
        if dataset.mask_targets.get(seg_field) != targets:
            dataset.mask_targets[seg_field] = targets
            dataset.save()
    if declare:
        declare_label_field(dataset, settings.label_field, fo.Detections, DETECTION_ATTRIBUTES)
        if seg_field:
            declare_label_field(dataset, seg_field, fo.Segmentation, {})


def _check_workers(workers, ray_address) -> Optional[int]:
    if workers is None or workers == 0:
        if ray_address is not None:
            raise ValueError("ray_address needs workers=N (the number of Ray workers)")
        return None
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise ValueError("workers must be None or a number >= 1, got %r" % (workers,))
    from fiftyone_samrs.segmenting.distributed import import_ray

    import_ray()  # before anything is recorded: a clear ImportError when Ray is missing
    return int(workers)


def _check_arguments(sample_collection, prompt, batch_size, shard, paint_order):
    """Checks the arguments that need no dataset lookup; returns the shard as ints.

    Raises:
        ValueError: naming the bad argument
    """
    if paint_order not in PAINT_ORDERS:
        raise ValueError("paint_order must be one of %s, got %r" % (PAINT_ORDERS, paint_order))
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1, got %r" % batch_size)
    parse_prompt(prompt)
    if shard is not None:
        shard = (int(shard[0]), int(shard[1]))
        if not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
            raise ValueError("shard must be (i, n) with 0 <= i < n, got %r" % (shard,))
    if sample_collection.media_type != "image":
        raise ValueError("segment() needs an image collection; %r holds %s"
                         % (dataset_of(sample_collection).name, sample_collection.media_type))
    return shard


def _resolve_settings(dataset, *, prompt, backend, model, checkpoint, label_field, seg_field,
                      box_field, obb_field, classes, seg_dir, margin, clip_to_rbox,
                      rbox_margin, paint_order) -> SegmentSettings:
    """The run's settings: input and output fields checked, class list and
    PNG folder resolved.

    Raises:
        ValueError: a missing box field, a field of the wrong type, a prompt
            that needs rotated boxes on a dataset without them, or an output
            that would overwrite an input
    """
    check_label_field(dataset, box_field, fo.Detections, "Box")
    has_obb = bool(obb_field) and check_label_field(dataset, obb_field, fo.Polylines,
                                                    "Rotated-box", required=False)
    if needs_quads(prompt) and not has_obb:
        raise ValueError(
            "Prompt %r needs rotated boxes, but dataset %r has %s; use prompt='hbox' or "
            "'auto', or import the rotated boxes"
            % (prompt, dataset.name, "no field %r" % obb_field if obb_field
               else "obb_field=None"))
    if label_field in (box_field, obb_field) or label_field == seg_field:
        raise ValueError("label_field %r would overwrite an input field" % label_field)
    check_label_field(dataset, label_field, fo.Detections, "Label", required=False)
    if seg_field:
        check_label_field(dataset, seg_field, fo.Segmentation, "Segmentation", required=False)
        seg_dir = os.path.abspath(seg_dir) if seg_dir else dataset_dir(dataset, seg_field)
    else:
        seg_dir = None
    class_list = resolve_classes(classes) if classes is not None else default_classes(
        dataset, [box_field])
    return SegmentSettings(
        prompt=prompt, backend=backend, model=model, checkpoint=checkpoint,
        box_field=box_field, obb_field=obb_field if has_obb else None, label_field=label_field,
        seg_field=seg_field, seg_dir=seg_dir, classes=tuple(class_list), margin=margin,
        clip_to_rbox=clip_to_rbox, rbox_margin=rbox_margin, paint_order=paint_order)


def _finished_ids(dataset, label_field, seg_field) -> frozenset:
    """Samples whose label field is set and whose PNG exists."""
    if not dataset.has_sample_field(label_field):
        return frozenset()
    view = dataset.exists(label_field)
    if not seg_field:
        return frozenset(view.values("id"))
    if not dataset.has_sample_field(seg_field):
        return frozenset()
    sids, paths = view.values(["id", seg_field + ".mask_path"])
    return frozenset(s for s, p in zip(sids, paths) if p and os.path.isfile(p))


def _make_engine(backend, model, checkpoint, device, dtype, batch_size, decoder_chunk,
                 n_images=None):
    from fiftyone_samrs.segmenting.backends import make_backend

    kwargs = {}
    if backend_spec(backend).batched:
        kwargs = dict(encoder_batch=batch_size, decoder_chunk=decoder_chunk)
    if backend == "sam":
        # n_images: compile="auto" compiles the encoder on a CPU for large jobs only
        kwargs["expected_images"] = n_images
    return make_backend(backend, model=model, checkpoint=checkpoint, device=device, dtype=dtype,
                        **kwargs)


class _Progress:
    """The one progress bar of a call: tqdm, or a FiftyOne progress callback
    (as ``fo.report_progress``), or nothing."""

    def __init__(self, total: int, progress):
        from tqdm import tqdm

        callback = progress if callable(progress) else None
        self.t0 = time.time()
        self.bar = tqdm(total=total, unit="samples", disable=not progress or callback is not None,
                        desc="segment", dynamic_ncols=True)
        self.cb_bar = fou.ProgressBar(total=total, progress=callback) if callback else None
        if self.cb_bar is not None:
            self.cb_bar.start()
        self.done = 0
        self.lock = threading.Lock()

    def update(self, n: int, boxes: Optional[int] = None) -> None:
        if n <= 0:
            return
        with self.lock:
            self.done += n
            self.bar.update(n)
            if boxes is not None:
                elapsed = max(time.time() - self.t0, 1e-9)
                self.bar.set_postfix_str("%.1f boxes/s" % (boxes / elapsed), refresh=False)
            if self.cb_bar is not None:
                self.cb_bar.update(n)

    def set_done(self, done: int, boxes: Optional[int] = None) -> None:
        """Moves the bar to ``done`` samples (the Ray driver's polling)."""
        self.update(done - self.done, boxes)

    def close(self) -> None:
        self.bar.close()
        if self.cb_bar is not None:
            self.cb_bar.close()


#: seconds between looks at samples that other processes hold
POLL_SECONDS = 0.5


def _run_shared(sample_collection, dataset, engine, todo: List[str], settings: SegmentSettings,
                result: SegmentResult, lease, *, batch_size: int, num_workers: int,
                progress: "_Progress", overwrite: bool, claims=None,
                skip_failures: bool = False) -> None:
    """Segments ``todo``, claiming each batch first; then waits for the
    samples other processes held, taking over those whose claims expire."""
    claims = claims or lease.claims()
    deferred = _run(sample_collection, dataset, engine, todo, settings, result,
                    batch_size=batch_size, num_workers=num_workers, progress=progress,
                    claims=claims, overwrite=overwrite, check=lease.check,
                    skip_failures=skip_failures)
    while deferred:
        lease.check()
        done, free, held = claims.status(deferred)
        result.samples_by_others += len(done)
        progress.update(len(done))
        if free:
            deferred = held + _run(sample_collection, dataset, engine, free, settings, result,
                                   batch_size=batch_size, num_workers=num_workers,
                                   progress=progress, claims=claims, overwrite=overwrite,
                                   check=lease.check, skip_failures=skip_failures)
        else:
            deferred = held
            if held:
                time.sleep(POLL_SECONDS)


def _finished_among(dataset, ids: List[str], label_field: str, seg_field: Optional[str]):
    """The samples of ``ids`` that are finished (label set, PNG on disk)."""
    if not ids or not dataset.has_sample_field(label_field):
        return set()
    view = dataset.select(ids).exists(label_field)
    if not seg_field:
        return set(view.values("id"))
    if not dataset.has_sample_field(seg_field):
        return set()
    sids, paths = view.values(["id", seg_field + ".mask_path"])
    return {s for s, p in zip(sids, paths) if p and os.path.isfile(p)}


def _run(sample_collection, dataset, engine, todo: List[str], settings: SegmentSettings,
         result: SegmentResult, *, batch_size: int, num_workers: int, progress: "_Progress",
         claims=None, overwrite: bool = False, check=None,
         skip_failures: bool = False) -> List[str]:
    """Segments the samples ``todo`` (loader threads -> engine -> writer).

    With ``claims``, each batch is claimed before it is loaded: samples held
    by another live process are skipped and returned (deferred), samples
    another process finished count in ``result.samples_by_others``.

    Returns:
        the deferred sample ids
    """
    box_field, obb_field = settings.box_field, settings.obb_field
    seg_field, seg_dir = settings.seg_field, settings.seg_dir
    png_names = {}
    if seg_field:
        all_ids, all_paths = dataset.values(["id", "filepath"])
        png_names = label_png_names(all_ids, all_paths)
    todo = list(todo)
    fields = ["id", "filepath", "metadata.width", "metadata.height", box_field + ".detections"]
    if obb_field:
        fields.append(obb_field + ".polylines")
    windows = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    pool = ThreadPoolExecutor(max(1, num_workers), thread_name_prefix="samrs-load")
    ready: "queue.Queue" = queue.Queue(maxsize=2)
    stop = threading.Event()
    deferred: List[str] = []
    others = [0]

    def claimed(window):
        """The samples of a window this process segments."""
        if claims is None:
            return window
        if check is not None:
            check()
        got = claims.claim(window)
        deferred.extend(got.held)
        gone = list(got.done)
        if got.reclaimed and not overwrite:
            # a process that died may have written some before it did
            written = _finished_among(dataset, got.reclaimed, settings.label_field, seg_field)
            if written:
                claims.mark_done(written)
                gone.extend(written)
        if gone:
            others[0] += len(gone)
            progress.update(len(gone))
        gone = set(gone)
        return [s for s in got.mine if s not in gone]

    def load_batches():
        try:
            for window in windows:
                if stop.is_set():
                    return
                ids = claimed(window)
                if not ids:
                    continue
                cols = sample_collection.select(ids, ordered=True).values(fields)
                futures: List[Future] = []
                for row in zip(*cols):
                    sid, fp, w, h, dets = row[:5]
                    polylines = (row[5] or []) if obb_field else None
                    if not w or not h:
                        error = FormatError(fp, "sample %s has no image size in its metadata "
                                                "(is the image file there and readable?)" % sid)
                        if not skip_failures:
                            raise error
                        job = _Job(sid, fp, 0, 0, None, failed=str(error))
                        f_failed: Future = Future()
                        f_failed.set_result(job)
                        futures.append(f_failed)
                        continue
                    png = os.path.join(seg_dir, png_names[sid]) if seg_field else None
                    job = _make_job(sid, fp, w, h, dets, polylines, settings.prompt,
                                    settings.margin, png,
                                    mask_frame=engine.mask_frame)
                    if job.prompts is not None and len(job.prompts):
                        futures.append(pool.submit(_load_image_or_fail, job, engine,
                                                   skip_failures))
                    else:
                        f: Future = Future()
                        f.set_result(job)
                        futures.append(f)
                _put(futures)
        except BaseException as e:
            _put(e)
        finally:
            _put(None)

    def _put(item):
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def on_done(jobs):
        if claims is not None:
            claims.mark_done([j.sample_id for j in jobs])
        progress.update(len(jobs), boxes0 + writer.stats["boxes"])

    boxes0 = result.boxes
    options = LabelOptions(clip_to_rbox=settings.clip_to_rbox, rbox_margin=settings.rbox_margin,
                           class_index={c: i for i, c in enumerate(settings.classes)},
                           paint_order=settings.paint_order)

    def on_failure(job, error) -> None:  # the writer's: a sample too large to store
        job.failed = str(error)
        _failed(job)

    failed_lock = threading.Lock()

    def _failed(job) -> None:
        with failed_lock:
            result.samples_failed += 1
            result.failures.append({"id": job.sample_id, "filepath": job.filepath,
                                    "error": job.failed})

    writer = Writer(dataset, settings.label_field, seg_field, options, on_done,
                    on_failure=on_failure if skip_failures else None)
    writer.start()
    loader = threading.Thread(target=load_batches, name="samrs-loader", daemon=True)
    loader.start()

    def loaded():
        while True:
            item = ready.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            jobs = [f.result() for f in item]
            for j in jobs:
                if j.failed:
                    _failed(j)
            yield jobs

    try:
        for jobs in _predict_all(engine, loaded()):
            if writer.error is not None:
                raise writer.error
            writer.queue.put(jobs)
    finally:
        stop.set()
        # finish the batches already predicted, so a rerun skips them
        writer.queue.put(None)
        writer.join()
        pool.shutdown(wait=True, cancel_futures=True)
        loader.join(timeout=5)
        result.samples_processed += writer.written
        result.samples_by_others += others[0]
        result.boxes += writer.stats["boxes"]
        result.empty_masks += writer.stats["empty"]
        result.unknown_labels.update(writer.unknown)
        result.mask_files += writer.mask_files
    if writer.error is not None:
        raise writer.error
    return deferred
