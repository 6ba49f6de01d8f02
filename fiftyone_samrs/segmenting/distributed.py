"""Segmenting with Ray: ``segment(view, ..., workers=N, ray_address=None)``.

The calling process (the *driver*) does what a plain ``segment`` call does
before and after the work: the settings, the field's lease
(:mod:`.leases`), the resume plan, the run records. The work itself goes to
N Ray actors (:class:`SegmentWorker`):

- each actor loads the model once (``make_backend`` by name, so it runs on
  the actor's own device: one GPU each, ``num_gpus=1``, where the cluster
  has GPUs, else CPU cores) and connects to the same MongoDB (the driver's
  ``FIFTYONE_DATABASE_URI``, or its embedded ``mongod`` for a local Ray);
- the driver hands out chunks of sample ids; an actor runs the same sample
  loop as a plain call on its chunk (:class:`~.loop.SampleLoop`: loader
  threads, engine, writer thread, bulk writes; the same
  :class:`~.options.LoopOptions`), claiming each batch under its own name in the
  lease's epoch, so Ray workers, plain processes and other machines share
  one field without doing a sample twice;
- an actor that dies is restarted by Ray and its chunk retried
  (``max_restarts``, ``max_task_retries``): the retry takes back the
  actor's own claims and skips what it had already written. When an actor
  cannot come back, its claims are dropped and its chunk goes to another;
- each chunk's :class:`~.result.Counts` go back to the driver, which merges
  them into the call's result (the same counts, failures and mask files as
  a plain run);
- one progress bar on the driver, from the claims marked done.

The actors are built without arguments and each call names the run it
belongs to, so Ray can restart one as it is. They end with the call, unless
``keep_workers=True``: then they stay up for the next calls (models loaded,
their CPUs/GPUs reserved) until :func:`shutdown_workers` or the end of the
Ray session. When ``segment`` started Ray itself, it ends it.

``ray_address=None`` starts a local Ray on this machine, listening on
127.0.0.1 only (:func:`start_local_ray`), or uses the one this process
already joined with ``ray.init``; an address (``"auto"``,
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
from typing import Any, Dict, List

from fiftyone_samrs.segmenting.loop import SampleLoop
from fiftyone_samrs.segmenting.options import EngineSpec, LoopOptions, RayOptions
from fiftyone_samrs.segmenting.result import Counts, Progress

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


#: Ray's switch (read when ``ray`` is imported) that, off, makes a node's
#: address the loopback one: a local Ray then listens on 127.0.0.1 only
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def start_local_ray(ray, **kwargs) -> None:
    """``ray.init`` of a Ray on this machine whose services (GCS, raylets,
    workers, object manager) listen on 127.0.0.1 only; by default they
    listen on all interfaces, reachable from the network in a container.
    Also joins such a Ray by its loopback address (``address=``); joining
    another cluster is left as Ray does it.

    Ray decides from ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (its constant
    ``ENABLE_RAY_CLUSTER``, read at import: set here for this call, and in
    the environment its processes inherit). Checked by tests/test_ray.py.
    """
    from ray._private import ray_constants

    kwargs = dict(dict(include_dashboard=False, log_to_driver=True,
                       logging_level=logging.WARNING), **kwargs)
    before_env, before = os.environ.get(LOOPBACK_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[LOOPBACK_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(**kwargs)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before
        if before_env is None:
            os.environ.pop(LOOPBACK_ENV, None)
        else:
            os.environ[LOOPBACK_ENV] = before_env


def _on_loopback(address: str) -> bool:
    """Whether a Ray address is this machine's loopback (a local Ray that
    :func:`start_local_ray` started: joining it needs the same setting)."""
    host = str(address).rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


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
    """A Ray actor: models loaded once, and the sample loop over chunks.

    It is built with no arguments (so that Ray can restart it as it is); each
    call carries the run it belongs to (``job``: an id and an object-store
    reference to the run's settings, view, options and engine), and the
    actor sets itself up for a run on its first chunk of it. A model built
    from an :class:`~.options.EngineSpec` stays loaded for the next runs with
    the same spec.
    """

    def __init__(self):
        self.job_id = None
        self.spec = None
        self.engine = None
        self.loop = None

    def info(self) -> Dict[str, Any]:
        """Where the worker runs."""
        import socket

        import fiftyone_samrs

        return {"host": socket.gethostname(), "pid": os.getpid(),
                "package": os.path.dirname(os.path.abspath(fiftyone_samrs.__file__)),
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}

    def _setup(self, job: Dict[str, Any], claims) -> None:
        import fiftyone as fo

        from fiftyone_samrs.fiftyone_io import view_from_stages
        from fiftyone_samrs.segmenting.runs import SegmentSettings

        dataset = fo.load_dataset(job["dataset"])
        dataset.reload()  # the schema the driver declared
        record = dict(job["settings"])
        record["classes"] = tuple(record["classes"])
        if job["engine"] is not None:
            self.engine, self.spec = job["engine"], None
        elif job["spec"] != self.spec:
            self.engine = None  # free the previous model first
            self.engine, self.spec = job["spec"].build(), job["spec"]
        self.loop = SampleLoop(view_from_stages(dataset, job["stages"]), dataset, self.engine,
                               SegmentSettings(**record), job["options"],
                               Progress(0, False), claims=claims)
        self.job_id = job["id"]

    def process(self, job: Dict[str, Any], claims, ids: List[str]) -> Dict[str, Any]:
        """Segments the chunk ``ids`` (those this worker can claim) of the run ``job``.

        Returns:
            ``counts`` (:class:`~.result.Counts`) and ``deferred``: samples
            held by other processes
        """
        import ray

        if job["id"] != self.job_id:
            self._setup(ray.get(job["ref"]), claims)
        counts = Counts()
        deferred = self.loop.run(list(ids), counts)
        return {"counts": counts, "deferred": deferred}


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


def run_on_ray(sample_collection, plan, settings, result, lease, *, engine,
               spec: EngineSpec, options: LoopOptions, ray_options: RayOptions,
               progress) -> None:
    """Segments ``plan.todo`` with ``ray_options.workers`` Ray actors (see the
    module doc); merges their counts into ``result``."""
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        if ray_options.address is None or _on_loopback(ray_options.address):
            start_local_ray(ray, address=ray_options.address)
        else:
            ray.init(address=ray_options.address, include_dashboard=False,
                     log_to_driver=True, logging_level=logging.WARNING)
        started = True
    bar = Progress(len(plan.todo), progress)
    try:
        res = _resources(ray, ray_options.workers, spec.device)
        result.workers = res["workers"]
        actors = _actors(ray, res["workers"], dict(
            ACTOR_OPTIONS, num_cpus=res["num_cpus"], num_gpus=res["num_gpus"],
            runtime_env={"env_vars": worker_env()}))
        job = _job(ray, sample_collection, settings, lease, engine,
                   spec.on_device(res["device"]), options)
        size = chunk_size(len(plan.todo), len(actors), options.batch_size)
        _Scheduler(ray, actors, job, lease, result, bar).run(list(plan.todo), size)
        bar.set_done(len(plan.todo), result.boxes)
    except BaseException:
        # a worker may still be on a chunk of this run: end them
        shutdown_workers()
        raise
    finally:
        bar.close()
        if started or not ray_options.keep_workers:
            shutdown_workers()
        if started:
            ray.shutdown()


def _job(ray, sample_collection, settings, lease, engine, spec: EngineSpec,
         options: LoopOptions) -> Dict[str, Any]:
    """What the actors need to know of the run (in Ray's object store)."""
    from fiftyone_samrs.fiftyone_io import dataset_of, view_stages

    job_id = "%s:%s" % (lease.epoch, lease.owner)
    return {"id": job_id, "ref": ray.put({
        "id": job_id, "dataset": dataset_of(sample_collection).name,
        "stages": view_stages(sample_collection), "settings": settings.record(),
        "engine": engine, "spec": spec, "options": options})}


class _Scheduler:
    """Hands chunks of sample ids to the actors (at most :data:`IN_FLIGHT`
    each), merges their counts, gives the chunk of an actor that died to
    another, and waits for the samples that other processes held."""

    def __init__(self, ray, actors: List[Any], job: Dict[str, Any], lease, result, bar):
        self.ray, self.actors, self.job, self.lease = ray, actors, job, lease
        self.result, self.bar = result, bar
        self.base = lease.claims()
        self.names = ["w%d" % i for i in range(len(actors))]
        self.claims = {name: self.base.for_worker(name) for name in self.names}
        self.alive = set(range(len(actors)))
        self.load = {a: 0 for a in self.alive}
        self.inflight: Dict[Any, Any] = {}
        self.chunks: deque = deque()
        self.deferred: List[str] = []
        self.deaths: Dict[str, int] = {}
        self.others = 0
        result.worker_samples = {}

    def run(self, todo: List[str], size: int) -> None:
        self.chunks.extend(todo[i : i + size] for i in range(0, len(todo), size))
        self._submit()
        while self.inflight or self.chunks or self.deferred:
            self.lease.check()
            if not self.inflight and not self.chunks:
                self._look_at_deferred(size)
            if not self.alive and (self.chunks or self.inflight):
                raise RuntimeError("every Ray worker died; the samples written so far are "
                                   "kept, run segment again to resume")
            self._submit()
            ready = []
            if self.inflight:
                ready, _ = self.ray.wait(list(self.inflight), num_returns=1,
                                         timeout=POLL_SECONDS)
            for ref in ready:
                self._collect(ref)
            self.bar.set_done(min(len(todo), self.base.count_done()
                                  + self.result.samples_by_others + self.others),
                              self.result.boxes)
        self.result.samples_by_others += self.others

    def _look_at_deferred(self, size: int) -> None:
        done, free, held = self.base.status(self.deferred)
        self.others += len(done)
        self.deferred = held
        if free:
            self.chunks.extend(free[i : i + size] for i in range(0, len(free), size))
        elif held:
            time.sleep(POLL_SECONDS)

    def _submit(self) -> None:
        while self.chunks and self.alive:
            a = min(self.alive, key=lambda k: self.load[k])
            if self.load[a] >= IN_FLIGHT:
                return
            chunk = self.chunks.popleft()
            ref = self.actors[a].process.remote(self.job, self.claims[self.names[a]], chunk)
            self.inflight[ref] = (a, chunk)
            self.load[a] += 1

    def _collect(self, ref) -> None:
        from ray.exceptions import RayActorError, RayTaskError

        a, chunk = self.inflight.pop(ref)
        self.load[a] -= 1
        try:
            out = self.ray.get(ref)
        except RayActorError as e:
            self._lost(a, chunk, e)
            return
        except RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from None
            raise
        counts: Counts = out["counts"]
        self.result.merge(counts)
        name = self.names[a]
        self.result.worker_samples[name] = (self.result.worker_samples.get(name, 0)
                                            + counts.samples_processed)
        self.deferred.extend(out["deferred"])

    def _lost(self, a: int, chunk: List[str], error: Exception) -> None:
        """The actor is gone for good (Ray's restarts and retries spent): its
        claims are void, its chunk goes to another worker."""
        self.base.release(self.claims[self.names[a]].owner)
        self.alive.discard(a)
        _forget(self.actors[a])
        key = chunk[0] if chunk else ""
        self.deaths[key] = self.deaths.get(key, 0) + 1
        if self.deaths[key] > len(self.actors):
            raise RuntimeError("a chunk of %d samples killed every worker that took it (%s)"
                               % (len(chunk), error)) from None
        logger.warning("Ray worker %s died (%s); its chunk goes to another", self.names[a],
                       type(error).__name__)
        self.chunks.appendleft(chunk)
