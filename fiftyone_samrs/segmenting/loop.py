"""The per-sample loop of segmenting: read, predict, write.

:class:`SampleLoop` segments a list of sample ids of a view:

- a loader thread reads each batch's samples from the database and builds
  the prompts (:mod:`.prompts`), and a pool of ``num_workers`` threads
  decodes the images (and runs the engine's ``preprocess``) while the model
  runs;
- the calling thread only runs the engine (``engine.predict_batches``: the
  SAM engine queues the next batch's encoder pass before this batch decodes,
  on CUDA they overlap);
- a writer thread (:class:`~.writer.Writer`) builds the labels, paints and
  writes the PNGs and writes each batch to the database in one bulk write.

With the field's claims (:mod:`.leases`), each batch is claimed before it is
loaded: samples another live process holds are deferred, samples another
process finished are counted as theirs. A plain ``segment`` call and each
Ray worker (:mod:`.distributed`) run this same loop with the same
:class:`~.options.LoopOptions` and add to the same :class:`~.result.Counts`.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional

import numpy as np

from fiftyone_samrs.core.paths import png_complete
from fiftyone_samrs.core.records import FormatError, InstanceMask
from fiftyone_samrs.fiftyone_io import ObjectInputs, object_inputs, raw_labels, raw_values
from fiftyone_samrs.formats.images import read_image
from fiftyone_samrs.segmenting.base import Engine, MaskResult
from fiftyone_samrs.segmenting.options import LoopOptions
from fiftyone_samrs.segmenting.prompts import build_prompts, needs_quads, parse_prompt
from fiftyone_samrs.segmenting.result import Counts, Progress
from fiftyone_samrs.segmenting.runs import SegmentSettings
from fiftyone_samrs.segmenting.writer import LabelOptions, Writer, label_png_names

logger = logging.getLogger(__name__)

_QUAD_NAMES = ("rhbox", "rbox_m", "rhbox_m")

#: seconds between looks at samples that other processes hold
POLL_SECONDS = 0.5


@dataclass
class _Job:
    """One sample on its way through the loop (source pixels)."""

    sample_id: str
    filepath: str
    width: int
    height: int
    objects: Optional[ObjectInputs]
    prompts: Any = None
    png_path: Optional[str] = None
    image: Any = None  # the decoded image, or the engine's preprocess() result
    results: Optional[list] = None
    failed: Optional[str] = None  # why the sample is skipped (skip_failures)
    sent: Any = None  # the prompts the engine gets (None: all); see _degenerate

    @property
    def engine_prompts(self):
        return self.prompts if self.sent is None else self.prompts.subset(self.sent)


def _make_job(sample_id, filepath, width, height, dets, polylines, prompt, margin,
              png_path, mask_frame: str = "sam", mask_prompts: bool = True) -> _Job:
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
                                    mask_frame=mask_frame, mask_inputs=mask_prompts)
        bad = _degenerate(job.prompts)
        if bad.any():
            job.sent = np.flatnonzero(~bad)
    return job


def _degenerate(prompts) -> np.ndarray:
    """The prompts whose box has no area (an inverted or zero-size source
    box): they are not sent to the engine and get an empty mask
    (:func:`_no_mask`), where SAM would invent one."""
    b = prompts.base_boxes
    return ~((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1]))


def _no_mask() -> MaskResult:
    return MaskResult(InstanceMask(np.zeros((0, 0), dtype=bool), 0, 0), score=0.0,
                      stability=float("nan"), empty=True, fallback="degenerate")


def _load_image(job: _Job, engine: Engine) -> _Job:
    image = read_image(job.filepath)
    if image.shape[:2] != (job.height, job.width):
        raise FormatError(
            job.filepath, "image is %dx%d but the sample's metadata says %dx%d; "
            "recompute it with compute_metadata(overwrite=True)"
            % (image.shape[1], image.shape[0], job.width, job.height))
    # SamEngine.predict_batch takes its preprocess() results in place of images
    job.image = engine.preprocess(image)
    return job


def _load_image_or_fail(job: _Job, engine: Engine, skip_failures: bool) -> _Job:
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


def _done_future(job: _Job) -> Future:
    future: Future = Future()
    future.set_result(job)
    return future


def _todo(jobs: List[_Job]) -> List[_Job]:
    """The jobs with prompts for the engine that have not failed (the
    others get no results, or only the empty ones of degenerate prompts)."""
    for j in jobs:
        j.results = [_no_mask() for _ in range(len(j.prompts))] if j.sent is not None else []
    return [j for j in jobs if j.prompts is not None and not j.failed
            and len(j.prompts if j.sent is None else j.sent)]


def _attach(engine: Engine, todo: List[_Job], out) -> None:
    """Attaches the backend's results ``out`` to the jobs ``todo``."""
    if len(out) != len(todo):
        raise RuntimeError("backend %r returned results for %d images, expected %d"
                           % (engine.name, len(out), len(todo)))
    for j, res in zip(todo, out):
        if j.sent is None:
            j.results = list(res)
        else:
            for i, r in zip(j.sent, res):
                j.results[int(i)] = r
        j.image = None  # free memory early


class _Inputs:
    """The engine's input stream over job batches; remembers each batch so
    that its results can be attached (and an error of the stream)."""

    def __init__(self, batches: Iterator[List[_Job]]):
        self.batches = batches
        self.pending: List[tuple] = []
        self.error: Optional[Exception] = None

    def __iter__(self):
        try:
            for jobs in self.batches:
                todo = _todo(jobs)
                self.pending.append((jobs, todo))
                yield [j.image for j in todo], [j.engine_prompts for j in todo]
        except Exception as e:
            self.error = e


def _predict_all(engine: Engine, batches: Iterator[List[_Job]]) -> Iterator[List[_Job]]:
    """The engine over a stream of job batches, yielding each batch when done."""
    inputs = _Inputs(batches)
    for out in engine.predict_batches(iter(inputs)):
        jobs, todo = inputs.pending.pop(0)
        _attach(engine, todo, out)
        yield jobs
    if inputs.error is not None:
        raise inputs.error


def finished_among(dataset, ids, label_field: str, seg_field: Optional[str]) -> set:
    """The samples of ``ids`` (all when None) that are finished: the label
    field set and the whole PNG on disk (an empty or cut file, left by a
    full disk or a kill before writes were atomic, is not done)."""
    if (ids is not None and not ids) or not dataset.has_sample_field(label_field):
        return set()
    view = dataset if ids is None else dataset.select(list(ids))
    view = view.exists(label_field)
    if not seg_field:
        return set(view.values("id"))
    if not dataset.has_sample_field(seg_field):
        return set()
    sids, paths = view.values(["id", seg_field + ".mask_path"])
    return {s for s, p in zip(sids, paths) if p and png_complete(p)}


class SampleLoop:
    """Segments lists of sample ids of a view (see the module doc).

    Args:
        sample_collection: the view
        dataset: its dataset
        engine: the :class:`~.base.Engine`
        settings: the run's :class:`~.runs.SegmentSettings`
        options: :class:`~.options.LoopOptions`
        progress: the call's :class:`~.result.Progress`
        claims: the field's claims of this process (:meth:`.leases.FieldLease.claims`),
            or None to work without claiming
        check: called before each claim (the lease's ``check``: raises when
            the lease was lost), or None
    """

    def __init__(self, sample_collection, dataset, engine: Engine, settings: SegmentSettings,
                 options: LoopOptions, progress: Progress, claims=None, check=None):
        self.view, self.dataset, self.engine = sample_collection, dataset, engine
        self.settings, self.options, self.progress = settings, options, progress
        self.claims, self.check = claims, check
        self.fields = ["id", "filepath", "metadata.width", "metadata.height",
                       settings.box_field + ".detections"]
        if settings.obb_field:
            self.fields.append(settings.obb_field + ".polylines")
        self.png_names = {}
        if settings.seg_field:
            self.png_names = label_png_names(*dataset.values(["id", "filepath"]))
        self.label_options = LabelOptions(
            clip_to_rbox=settings.clip_to_rbox, rbox_margin=settings.rbox_margin,
            class_index={c: i for i, c in enumerate(settings.classes)},
            paint_order=settings.paint_order)
        self._failed_lock = threading.Lock()

    # ---- the whole work, with other processes

    def run_shared(self, todo: List[str], counts: Counts, lease) -> None:
        """Segments ``todo``; then waits for the samples other processes
        held, taking over those whose claims expire."""
        deferred, said = self.run(todo, counts), False
        while deferred:
            lease.check()
            done, free, held = self.claims.status(deferred)
            counts.samples_by_others += len(done)
            self.progress.update(len(done))
            deferred = held + (self.run(free, counts) if free else [])
            if held and not free:
                if not said:
                    said = True
                    logger.warning(
                        "waiting for %d samples that other processes hold (%s): they are "
                        "done by them, or taken over when a holder ends or %.0f s after its "
                        "last heartbeat", len(held), ", ".join(self.claims.holders(held)),
                        self.claims.ttl)
                time.sleep(POLL_SECONDS)

    # ---- one pass

    def run(self, todo: List[str], counts: Counts) -> List[str]:
        """Segments the samples ``todo``, adding to ``counts``.

        Returns:
            the deferred sample ids (held by other live processes)
        """
        self._counts, self._deferred, self._boxes0 = counts, [], counts.boxes
        self._stop = threading.Event()
        self._ready: "queue.Queue" = queue.Queue(maxsize=2)
        self._pool = ThreadPoolExecutor(max(1, self.options.num_workers),
                                        thread_name_prefix="samrs-load")
        self._writer = Writer(self.dataset, self.settings.label_field, self.settings.seg_field,
                              self.label_options, self._on_done,
                              on_failure=self._on_write_failure
                              if self.options.skip_failures else None)
        self._writer.start()
        windows = [todo[i : i + self.options.batch_size]
                   for i in range(0, len(todo), self.options.batch_size)]
        loader = threading.Thread(target=self._load_batches, args=(windows,),
                                  name="samrs-loader", daemon=True)
        loader.start()
        try:
            for jobs in _predict_all(self.engine, self._loaded()):
                if self._writer.error is not None:
                    raise self._writer.error
                self._writer.queue.put(jobs)
        finally:
            self._finish(loader)
        if self._writer.error is not None:
            raise self._writer.error
        return self._deferred

    def _finish(self, loader: threading.Thread) -> None:
        """Finishes the batches already predicted (so a rerun skips them)
        and adds the writer's counts."""
        self._stop.set()
        writer = self._writer
        writer.queue.put(None)
        writer.join()
        self._pool.shutdown(wait=True, cancel_futures=True)
        loader.join(timeout=5)
        counts = self._counts
        counts.samples_processed += writer.written
        counts.boxes += writer.stats["boxes"]
        counts.empty_masks += writer.stats["empty"]
        counts.unknown_labels.update(writer.unknown)
        counts.mask_files += writer.mask_files

    # ---- the loader thread

    def _load_batches(self, windows: List[List[str]]) -> None:
        try:
            for window in windows:
                if self._stop.is_set():
                    return
                ids = self._claimed(window)
                if ids:
                    self._put(self._read(ids))
        except BaseException as e:
            self._put(e)
        finally:
            self._put(None)

    def _claimed(self, window: List[str]) -> List[str]:
        """The samples of a window this process segments."""
        if self.claims is None:
            return window
        if self.check is not None:
            self.check()
        got = self.claims.claim(window)
        self._deferred.extend(got.held)
        gone = list(got.done)
        if got.reclaimed and not self.options.overwrite:
            # a process that died may have written some before it did
            written = finished_among(self.dataset, got.reclaimed, self.settings.label_field,
                                     self.settings.seg_field)
            if written:
                self.claims.mark_done(written)
                gone.extend(written)
        if gone:
            self._counts.samples_by_others += len(gone)
            self.progress.update(len(gone))
        gone = set(gone)
        return [s for s in got.mine if s not in gone]

    def _read(self, ids: List[str]) -> List[Future]:
        """The batch's jobs: each image decoding in the pool (a future each).
        The labels are read as raw documents (building FiftyOne label objects
        took most of a boxfill run)."""
        cols = raw_values(self.view.select(ids, ordered=True), self.fields)
        return [self._submit(row) for row in zip(*cols)]

    def _submit(self, row) -> Future:
        sid, fp, w, h = str(row[0]), row[1], row[2], row[3]
        dets = raw_labels(row[4])
        settings = self.settings
        if not w or not h:
            error = FormatError(fp, "sample %s has no image size in its metadata "
                                    "(is the image file there and readable?)" % sid)
            if not self.options.skip_failures:
                raise error
            return _done_future(_Job(sid, fp, 0, 0, None, failed=str(error)))
        polylines = raw_labels(row[5]) if settings.obb_field else None
        png = (os.path.join(settings.seg_dir, self.png_names[sid])
               if settings.seg_field else None)
        job = _make_job(sid, fp, w, h, dets, polylines, settings.prompt, settings.margin,
                        png, mask_frame=self.engine.mask_frame,
                        mask_prompts=self.engine.mask_prompts)
        if job.prompts is None or not len(job.prompts):
            return _done_future(job)
        return self._pool.submit(_load_image_or_fail, job, self.engine,
                                 self.options.skip_failures)

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._ready.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    # ---- the calling thread

    def _loaded(self) -> Iterator[List[_Job]]:
        while True:
            item = self._ready.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            jobs = [f.result() for f in item]
            for j in jobs:
                if j.failed:
                    self._record_failure(j)
            yield jobs

    # ---- the writer thread

    def _on_done(self, jobs: List[_Job]) -> None:
        if self.claims is not None:
            self.claims.mark_done([j.sample_id for j in jobs])
        self.progress.update(len(jobs), self._boxes0 + self._writer.stats["boxes"])

    def _on_write_failure(self, job: _Job, error: Exception) -> None:
        """A sample too large to store (``skip_failures``)."""
        job.failed = str(error)
        self._record_failure(job)

    def _record_failure(self, job: _Job) -> None:
        with self._failed_lock:
            self._counts.add_failure(job.sample_id, job.filepath, job.failed)
