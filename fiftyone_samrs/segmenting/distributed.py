"""Segmenting with Ray: ``segment(view, ..., workers=N, ray_address=None)``.

The calling process (the *driver*) does what a plain ``segment`` call does
before and after the work: the settings, the field's lease
(:mod:`.leases`), the resume plan, the run records. The work itself goes to
N Ray actors (:class:`SegmentWorker`):

- each actor loads the model once (``make_backend`` by name, so it runs on
  the actor's own device: one GPU each, ``num_gpus=1``, where the cluster
  has GPUs, else CPU cores) and connects to the same MongoDB (the driver's
  ``FIFTYONE_DATABASE_URI``, or its embedded ``mongod`` for a local Ray);
- the driver hands out chunks of sample ids; an actor runs the ordinary
  pipeline on its chunk (:func:`~.pipeline._run`: loader threads, engine,
  writer thread, bulk writes), claiming each batch under its own name in the
  lease's epoch, so Ray workers, plain processes and other machines share
  one field without doing a sample twice;
- an actor that dies is restarted by Ray and its chunk retried
  (``max_restarts``, ``max_task_retries``): the retry takes back the
  actor's own claims and skips what it had already written. When an actor
  cannot come back, its claims are dropped and its chunk goes to another;
- one progress bar on the driver, from the claims marked done.

The actors are built without arguments and each call names the run it
belongs to, so Ray can restart one as it is. They end with the call, unless
``keep_workers=True``: then they stay up for the next calls (models loaded,
their CPUs/GPUs reserved) until :func:`shutdown_workers` or the end of the
Ray session. When ``segment`` started Ray itself, it ends it.

``ray_address=None`` starts a local Ray on this machine (or uses the one this
process already joined with ``ray.init``); an address (``"auto"``,
``"HOST:6379"``) joins a cluster, whose nodes need this package installed
and a database they can reach (``FIFTYONE_DATABASE_URI``, see
docs/segmenting.md).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from typing import Any, Dict, List, Optional

logger = logging.getLogger(__name__)

#: Ray options of the actors: restarts after a crash, and retries of the
#: chunk it was working on (on the restarted actor)
ACTOR_OPTIONS = {"max_restarts": 2, "max_task_retries": 2}
#: chunks queued per actor (the next one starts as soon as one ends)
IN_FLIGHT = 2
#: seconds between progress updates on the driver
POLL_SECONDS = 0.5


def import_ray():
    """``import ray``, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ImportError("segment(workers=N) runs on Ray, which is not installed: "
                          "pip install 'fiftyone-samrs[ray]'") from None
    return ray


def worker_env() -> Dict[str, str]:
    """The environment of the actors: this process's ``FIFTYONE_*`` and
    ``SAMRS_*`` variables, with the database it uses spelled out."""
    import fiftyone as fo

    from fiftyone_samrs.fiftyone_io import database_uri

    env = {k: v for k, v in os.environ.items() if k.startswith(("FIFTYONE_", "SAMRS_"))}
    env.pop("FIFTYONE_PRIVATE_DATABASE_PORT", None)  # the URI says where
    env["FIFTYONE_DATABASE_URI"] = database_uri()
    env["FIFTYONE_DATABASE_NAME"] = fo.config.database_name
    return env


def chunk_size(n: int, workers: int, batch_size: int) -> int:
    """Samples per chunk: about four chunks per worker, at most 16 batches,
    a whole number of batches."""
    per = math.ceil(n / max(1, workers * 4))
    batches = min(16, max(1, math.ceil(per / batch_size)))
    return batches * batch_size


class SegmentWorker:
    """A Ray actor: models loaded once, and the pipeline over chunks.

    It is built with no arguments (so that Ray can restart it as it is); each
    call carries the run it belongs to (``job``: an id and an object-store
    reference to the run's settings, view, claims and engine), and the actor
    sets itself up for a run on its first chunk of it. A model named by
    ``engine_spec`` stays loaded for the next runs with the same spec.
    """

    def __init__(self):
        self.job_id = None
        self.engine_key = None
        self.engine = None

    def info(self) -> Dict[str, Any]:
        """Where the worker runs."""
        import socket

        import fiftyone_samrs

        return {"host": socket.gethostname(), "pid": os.getpid(),
                "package": os.path.dirname(os.path.abspath(fiftyone_samrs.__file__)),
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}

    def _setup(self, job: Dict[str, Any]) -> None:
        import fiftyone as fo

        from fiftyone_samrs.fiftyone_io import view_from_stages
        from fiftyone_samrs.segmenting.runs import SegmentSettings

        self.dataset = fo.load_dataset(job["dataset"])
        self.dataset.reload()  # the schema the driver declared
        self.view = view_from_stages(self.dataset, job["stages"])
        record = dict(job["settings"])
        record["classes"] = tuple(record["classes"])
        self.settings = SegmentSettings(**record)
        self.batch_size = job["batch_size"]
        self.num_workers = job["num_workers"]
        self.overwrite = job["overwrite"]
        self.skip_failures = job.get("skip_failures", False)
        if job["engine"] is not None:
            self.engine, self.engine_key = job["engine"], None
        else:
            spec = dict(job["engine_spec"])
            key = repr(sorted(spec.items()))
            if key != self.engine_key:
                from fiftyone_samrs.segmenting.pipeline import _make_engine

                self.engine = None  # free the previous model first
                self.engine = _make_engine(spec["backend"], spec.get("model"),
                                           spec.get("checkpoint"), spec.get("device"),
                                           spec.get("dtype"), spec["batch_size"],
                                           spec.get("decoder_chunk", 64))
                self.engine_key = key
        self.job_id = job["id"]

    def process(self, job: Dict[str, Any], claims, ids: List[str]) -> Dict[str, Any]:
        """Segments the chunk ``ids`` (those this worker can claim) of the run ``job``.

        Returns:
            the counts, and ``deferred``: samples held by other processes
        """
        import ray

        from fiftyone_samrs.segmenting.pipeline import SegmentResult, _Progress, _run

        if job["id"] != self.job_id:
            self._setup(ray.get(job["ref"]))
        result = SegmentResult(backend=self.settings.backend, prompt=self.settings.prompt,
                               label_field=self.settings.label_field,
                               seg_field=self.settings.seg_field, seg_dir=self.settings.seg_dir)
        progress = _Progress(len(ids), False)
        try:
            deferred = _run(self.view, self.dataset, self.engine, list(ids), self.settings,
                            result, batch_size=self.batch_size, num_workers=self.num_workers,
                            progress=progress, claims=claims, overwrite=self.overwrite,
                            skip_failures=self.skip_failures)
        finally:
            progress.close()
        return dict(result.counts(), deferred=deferred)


#: the actors of this driver, kept between calls while the caller's Ray
#: session lasts (see :func:`shutdown_workers`)
_POOL: Dict[str, Any] = {"key": None, "actors": []}


def _actors(ray, n: int, options: Dict[str, Any]) -> List[Any]:
    """``n`` actors with ``options``: the kept ones where they match, more
    started as needed."""
    key = (ray.get_runtime_context().get_job_id(), repr(sorted(
        (k, repr(v)) for k, v in options.items())))
    if _POOL["key"] != key:
        shutdown_workers()
        _POOL["key"] = key
    remote = ray.remote(SegmentWorker)
    while len(_POOL["actors"]) < n:
        _POOL["actors"].append(remote.options(**options).remote())
    return _POOL["actors"][:n]


def _forget(actor) -> None:
    if actor in _POOL["actors"]:
        _POOL["actors"].remove(actor)


def shutdown_workers() -> None:
    """Ends the Ray workers kept between ``segment`` calls (they keep their
    models loaded while the caller's own Ray session lasts)."""
    actors, _POOL["actors"], _POOL["key"] = _POOL["actors"], [], None
    if not actors:
        return
    ray = import_ray()
    for actor in actors:
        try:
            ray.kill(actor)
        except Exception:
            pass


def _resources(ray, workers: int, device) -> Dict[str, Any]:
    """Per-actor resources: one GPU each where the cluster has GPUs (and the
    device is not forced to something else), else a share of the CPUs."""
    total = ray.cluster_resources()
    gpus = int(total.get("GPU", 0))
    cpus = max(1, int(total.get("CPU", 1)))
    if gpus and (device is None or str(device).startswith("cuda")):
        if workers > gpus:
            logger.warning("%d workers asked, the cluster has %d GPUs: using %d", workers,
                           gpus, gpus)
        return {"num_gpus": 1, "num_cpus": 1, "workers": min(workers, gpus), "device": "cuda"}
    if workers > cpus:
        logger.warning("%d workers asked, the cluster has %d CPUs: using %d", workers, cpus,
                       cpus)
        workers = cpus
    return {"num_gpus": 0, "num_cpus": max(1, cpus // workers), "workers": workers,
            "device": device}


def run_on_ray(sample_collection, dataset, plan, settings, result, lease, *, engine,
               engine_spec, workers: int, ray_address: Optional[str], batch_size: int,
               num_workers: int, overwrite: bool, progress, keep_workers: bool = False,
               skip_failures: bool = False) -> None:
    """Segments ``plan.todo`` with ``workers`` Ray actors (see the module doc);
    adds the counts to ``result``."""
    from fiftyone_samrs.fiftyone_io import view_stages
    from fiftyone_samrs.segmenting.pipeline import _Progress

    ray = import_ray()
    from ray.exceptions import RayActorError, RayTaskError

    started = False
    if not ray.is_initialized():
        ray.init(address=ray_address, include_dashboard=False, log_to_driver=True,
                 logging_level=logging.WARNING)
        started = True
    bar = _Progress(len(plan.todo), progress)
    try:
        res = _resources(ray, workers, engine_spec.get("device"))
        result.workers = res["workers"]
        base = lease.claims()
        options = dict(ACTOR_OPTIONS, num_cpus=res["num_cpus"], num_gpus=res["num_gpus"],
                       runtime_env={"env_vars": worker_env()})
        actors = _actors(ray, res["workers"], options)
        job_id = "%s:%s" % (lease.epoch, lease.owner)
        job = {"id": job_id, "ref": ray.put({
            "id": job_id, "dataset": dataset.name, "stages": view_stages(sample_collection),
            "settings": settings.record(), "engine": engine,
            "engine_spec": dict(engine_spec, device=res["device"]), "batch_size": batch_size,
            "num_workers": num_workers, "overwrite": overwrite,
            "skip_failures": skip_failures})}
        names = ["w%d" % i for i in range(len(actors))]
        claims = {name: base.for_worker(name) for name in names}

        size = chunk_size(len(plan.todo), len(actors), batch_size)
        todo = list(plan.todo)
        chunks = deque(todo[i : i + size] for i in range(0, len(todo), size))
        failures: Dict[str, int] = {}
        alive = set(range(len(actors)))
        inflight: Dict[Any, Any] = {}
        load = {a: 0 for a in alive}
        deferred: List[str] = []
        others = 0
        per_worker: Dict[str, int] = {}
        result.worker_samples = per_worker

        def submit():
            while chunks and alive:
                a = min(alive, key=lambda k: load[k])
                if load[a] >= IN_FLIGHT:
                    return
                chunk = chunks.popleft()
                ref = actors[a].process.remote(job, claims[names[a]], chunk)
                inflight[ref] = (a, chunk)
                load[a] += 1

        submit()
        while inflight or chunks or deferred:
            lease.check()
            if not inflight and not chunks:
                done, free, held = base.status(deferred)
                others += len(done)
                deferred = held
                if free:
                    chunks.extend(free[i : i + size] for i in range(0, len(free), size))
                elif held:
                    time.sleep(POLL_SECONDS)
            if not alive and (chunks or inflight):
                raise RuntimeError("every Ray worker died; the samples written so far are "
                                   "kept, run segment again to resume")
            submit()
            if inflight:
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=POLL_SECONDS)
            else:
                ready = []
            for ref in ready:
                a, chunk = inflight.pop(ref)
                load[a] -= 1
                try:
                    out = ray.get(ref)
                except RayActorError as e:
                    # the actor is gone for good (Ray's restarts and retries spent):
                    # its claims are void, its chunk goes to another worker
                    base.release(claims[names[a]].owner)
                    alive.discard(a)
                    _forget(actors[a])
                    key = chunk[0] if chunk else ""
                    failures[key] = failures.get(key, 0) + 1
                    if failures[key] > len(actors):
                        raise RuntimeError("a chunk of %d samples killed every worker that "
                                           "took it (%s)" % (len(chunk), e)) from None
                    logger.warning("Ray worker %s died (%s); its chunk goes to another",
                                   names[a], type(e).__name__)
                    chunks.appendleft(chunk)
                    continue
                except RayTaskError as e:
                    cause = getattr(e, "cause", None)
                    if isinstance(cause, BaseException):
                        raise cause from None
                    raise
                result.add_counts(out)
                per_worker[names[a]] = per_worker.get(names[a], 0) + out["samples_processed"]
                deferred.extend(out["deferred"])
            bar.set_done(min(len(todo), base.count_done() + result.samples_by_others + others),
                         result.boxes)
        result.samples_by_others += others
        bar.set_done(len(plan.todo), result.boxes)
    except BaseException:
        # a worker may still be on a chunk of this run: end them
        shutdown_workers()
        raise
    finally:
        bar.close()
        if started or not keep_workers:
            shutdown_workers()
        if started:
            ray.shutdown()
