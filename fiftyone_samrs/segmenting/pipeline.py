"""Runs a segmentation backend over a FiftyOne view: the ``segment`` SDK call.

For every sample of the view it turns the box field (``hbb``, with the
rotated boxes of ``obb`` where a prompt needs them) into prompts
(:mod:`.inputs`, :mod:`.prompts`), runs the backend (:mod:`.backends`), and
writes (:mod:`.writer`)

- ``label_field``: one :class:`fiftyone.core.labels.Detection` per prompt
  object, in the prompt order, with the mask stored as its tight crop;
- ``seg_field``: a :class:`fiftyone.core.labels.Segmentation` whose
  ``mask_path`` is a SAMRS semantic PNG (:mod:`fiftyone_samrs.core.painting`).

The work is done by :class:`.loop.SampleLoop` (loader threads, the engine,
a writer thread), in this process or in Ray workers (:mod:`.distributed`);
its settings are frozen in :mod:`.options`, and what it counted is a
:class:`.result.SegmentResult`.

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

import logging
import time
from typing import Optional, Tuple

import fiftyone as fo

from fiftyone_samrs.core.text import plural
from fiftyone_samrs.fiftyone_io import (
    dataset_of,
    declare_label_field,
    ensure_image_sizes,
    is_connection_error,
)
from fiftyone_samrs.segmenting.backends import backend_spec
from fiftyone_samrs.segmenting.base import Engine, as_engine
from fiftyone_samrs.segmenting.leases import FieldLease, database_lost
from fiftyone_samrs.segmenting.loop import SampleLoop, finished_among
from fiftyone_samrs.segmenting.options import (
    EngineSpec,
    LoopOptions,
    RayOptions,
    check_arguments,
    resolve_settings,
)
from fiftyone_samrs.segmenting.result import Progress, SegmentResult
from fiftyone_samrs.segmenting.runs import (
    ResumePlan,
    SegmentSettings,
    check_seg_outputs_free,
    default_seg_field,
    finish_run,
    get_segment_run,
    plan_resume,
    start_run,
)
from fiftyone_samrs.segmenting.writer import DETECTION_ATTRIBUTES

__all__ = ["segment", "SegmentResult"]

logger = logging.getLogger(__name__)


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
    shard = check_arguments(sample_collection, prompt, batch_size, shard, paint_order)
    ray_options = RayOptions(_check_workers(workers, ray_address), ray_address, keep_workers)
    dataset = dataset_of(sample_collection)
    engine = as_engine(engine)
    spec = EngineSpec(engine.name if engine is not None else backend, model, checkpoint,
                      device, dtype, batch_size, decoder_chunk)
    if margin is None:
        margin = (engine.default_margin if engine is not None
                  else backend_spec(spec.backend).default_margin)
    settings = resolve_settings(
        dataset, prompt=prompt, backend=spec.backend, model=model, checkpoint=checkpoint,
        label_field=label_field,
        seg_field=default_seg_field(label_field) if seg_field == "auto" else seg_field,
        box_field=box_field, obb_field=obb_field, classes=classes, seg_dir=seg_dir,
        margin=margin, clip_to_rbox=clip_to_rbox, rbox_margin=rbox_margin,
        paint_order=paint_order)
    check_seg_outputs_free(dataset, settings)
    # refused here when another live run writes the field with other settings
    lease = FieldLease(dataset, settings, shard).acquire()
    try:
        return _run_leased(sample_collection, settings, lease, shard, start, engine, spec,
                           LoopOptions(batch_size, num_workers, overwrite, skip_failures),
                           ray_options, progress)
    finally:
        lease.release()


def _run_leased(sample_collection, settings: SegmentSettings, lease: FieldLease, shard,
                start: float, engine: Optional[Engine], spec: EngineSpec, options: LoopOptions,
                ray_options: RayOptions, progress) -> SegmentResult:
    """The run under the field's lease: plan, fields, records, the work."""
    dataset = dataset_of(sample_collection)
    if not lease.creator:
        dataset.reload()  # the schema its opener declared
    plan = plan_resume(sample_collection.values("id"), shard,
                       frozenset(finished_among(dataset, None, settings.label_field,
                                                settings.seg_field)),
                       get_segment_run(dataset, settings.label_field), settings,
                       options.overwrite)
    result = _new_result(settings, plan, shard, ray_options.workers)
    if options.overwrite:
        _warn_reviewed(sample_collection, settings.label_field)
    if lease.creator or plan.todo:
        _set_up_fields(dataset, settings, declare=bool(plan.todo))
    lease.set_ready()
    start_run(dataset, settings, shard, lease, len(plan.shard_ids))
    try:
        engine = _work(sample_collection, plan, settings, result, lease, engine, spec,
                       options, ray_options, progress)
    except BaseException as e:
        if is_connection_error(e):  # nothing can be recorded: say so in one line
            lease.db_error = lease.db_error or e
            raise database_lost(e) from None
        _record_end(dataset, settings, shard, lease, result, start, None, complete=False)
        raise
    _record_end(dataset, settings, shard, lease, result, start, engine, complete=True)
    return result


def _warn_reviewed(sample_collection, label_field: str) -> int:
    """Says, before an ``overwrite`` run replaces them, how many labels of the
    field carry a review decision (``fsr.decide``); returns that number."""
    path = "%s.detections.review" % label_field
    if not sample_collection.has_field(path):
        return 0
    n = sample_collection.count(path)
    if n:
        logger.warning("overwrite=True replaces %s of %r: their review decisions are lost",
                       plural(n, "reviewed label"), label_field)
    return n


def _new_result(settings: SegmentSettings, plan: ResumePlan, shard, workers) -> SegmentResult:
    return SegmentResult(
        backend=settings.backend, prompt=settings.prompt, label_field=settings.label_field,
        seg_field=settings.seg_field, seg_dir=settings.seg_dir,
        samples_in_view=len(plan.view_ids), samples_in_shard=len(plan.shard_ids),
        samples_skipped=len(plan.done), classes=list(settings.classes), shard=shard,
        workers=workers)


def _work(sample_collection, plan: ResumePlan, settings: SegmentSettings,
          result: SegmentResult, lease: FieldLease, engine: Optional[Engine], spec: EngineSpec,
          options: LoopOptions, ray_options: RayOptions, progress) -> Optional[Engine]:
    """Segments ``plan.todo`` here or on Ray; returns the engine that ran
    here (None when no model was needed: nothing to do, or Ray)."""
    if not plan.todo:
        return engine
    dataset = dataset_of(sample_collection)
    ensure_image_sizes(sample_collection, plan.todo)
    if ray_options.workers:
        from fiftyone_samrs.segmenting.distributed import run_on_ray

        run_on_ray(sample_collection, plan, settings, result, lease, engine=engine, spec=spec,
                   options=options, ray_options=ray_options, progress=progress)
        return engine
    if engine is None:  # only now: a finished run does not load the model
        engine = spec.build(n_images=len(plan.todo))
    lease.note_encoder(engine.settings())
    bar = Progress(len(plan.todo), progress)
    try:
        loop = SampleLoop(sample_collection, dataset, engine, settings, options, bar,
                          claims=lease.claims(), check=lease.check)
        loop.run_shared(list(plan.todo), result, lease)
    finally:
        bar.close()
    return engine


def _record_end(dataset, settings: SegmentSettings, shard, lease: FieldLease,
                result: SegmentResult, start: float, engine: Optional[Engine],
                complete: bool) -> None:
    """Records the run's end (an interrupted one only as well as it can)."""
    result.seconds = time.time() - start
    if complete:
        result.encoder = engine.describe() if engine is not None else None
        finish_run(dataset, settings, shard, dict(
            result.as_record(),
            encoder_settings=engine.settings() if engine is not None else None),
            lease=lease, complete=True)
        return
    try:
        finish_run(dataset, settings, shard, result.as_record(), lease=lease, complete=False)
    except Exception as e:
        logger.warning("could not record the interrupted run: %s", e)


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
