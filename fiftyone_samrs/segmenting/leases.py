"""Concurrent :func:`~fiftyone_samrs.segment` runs on one field: a lease per
field, a claim per sample, a record per shard.

Everything lives in FiftyOne's database (the package's own collections,
:func:`fiftyone_samrs.fiftyone_io.samrs_collection`), so processes on other
machines that share a MongoDB (``FIFTYONE_DATABASE_URI``) coordinate too.

- **The lease** (``samrs.leases``, one document per dataset and label
  field): the settings hash of the run writing the field, an *epoch* id and
  the processes taking part (*owners*), each with a heartbeat expiry. A run
  with other settings is refused at once while any owner is alive
  (:class:`LeaseConflict`); a run with the same settings joins the epoch. The
  process that opens an epoch sets the field up (schema, mask targets) before
  the others start (``ready``). Every change is a compare-and-swap on the
  document's ``version``, so two processes never both take it.
- **Claims** (``samrs.claims``, one document per sample and epoch, unique
  ``_id``): a process claims each batch of samples before it loads them
  (:meth:`Claims.claim`, one ``insert_many``), and marks them done once
  written. A sample claimed by a live process is left to it; the claims of a
  process that died expire ``ttl`` seconds after its last heartbeat and are
  taken over. So no two processes segment the same sample, and a killed
  one's samples are done by the others.
- **Shard records** (``samrs.shards``, one per shard ``i/n`` of the field's
  run): status (``running`` / ``complete`` / ``interrupted``), counts and
  owners. The field's FiftyOne run record is their summary
  (:func:`shard_summary`): ``complete`` only when every shard is.

The heartbeat period is a quarter of ``ttl`` (:func:`lease_ttl`: the
``SAMRS_LEASE_TTL`` environment variable, 60 s by default). Clocks of the
machines must agree to well within ``ttl``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterable, List, Optional, Tuple

from fiftyone_samrs.core.processes import owner_gone, process_gone
from fiftyone_samrs.fiftyone_io import dataset_id, is_connection_error, samrs_collection
from fiftyone_samrs.segmenting.result import COUNTS, MAX_FAILURES_LISTED

logger = logging.getLogger(__name__)

#: environment variable: seconds after its last heartbeat that a process's
#: lease and claims expire
TTL_ENV = "SAMRS_LEASE_TTL"
DEFAULT_TTL = 60.0
#: claims are dropped by MongoDB this long after they last expired
_GC_AFTER = timedelta(days=7)
class LeaseConflict(ValueError):
    """Another live run writes the field with other settings."""


class DatabaseLost(ConnectionError):
    """The database stopped answering during a run (an ``OSError``: the CLI
    prints it as one line). What was written is kept; a rerun resumes."""


def database_lost(error: BaseException) -> DatabaseLost:
    """The one-line error of a run that lost its database (``error``: pymongo's)."""
    from fiftyone_samrs.fiftyone_io import database_address

    first = (str(error).strip().splitlines() or [""])[0].split(", Timeout:")[0]
    return DatabaseLost("lost the connection to the database at %s (%s: %s); what was written "
                        "is kept: run the same command again to resume"
                        % (database_address(), type(error).__name__, first[:160]))


class LeaseLost(RuntimeError):
    """This process's lease was taken over (it stopped heartbeating for longer
    than the lease's ttl)."""


def lease_ttl() -> float:
    """The lease and claim expiry in seconds (``SAMRS_LEASE_TTL``, default 60)."""
    text = os.environ.get(TTL_ENV)
    if not text:
        return DEFAULT_TTL
    try:
        ttl = float(text)
    except ValueError:
        raise ValueError("%s must be a number of seconds, got %r" % (TTL_ENV, text)) from None
    if not ttl > 0:
        raise ValueError("%s must be > 0, got %r" % (TTL_ENV, text))
    return ttl


def _now() -> datetime:
    # naive UTC, as pymongo returns datetimes
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_owner() -> str:
    """A process-unique owner name: ``host:pid:random``."""
    return "%s:%d:%s" % (socket.gethostname(), os.getpid(), uuid.uuid4().hex[:6])


def _field_key(name: str) -> str:
    """An owner name usable as a MongoDB field name (no dots, no leading $)."""
    return name.replace(".", "_").replace("$", "_")


def _alive(entries: Dict[str, Any], now: datetime) -> Dict[str, Any]:
    """The owners whose lease has not expired and whose process is not known
    to have ended (a killed process of this machine frees the field at once)."""
    return {k: e for k, e in (entries or {}).items() if e.get("expires") and e["expires"] > now
            and not process_gone(e.get("host"), e.get("pid"))}


def _gone(group: Optional[str], cache: Dict[str, bool]) -> bool:
    """:func:`~fiftyone_samrs.core.processes.owner_gone`, once per group."""
    if not group:
        return False
    if group not in cache:
        cache[group] = owner_gone(group)
    return cache[group]


# --------------------------------------------------------------------------
# claims


@dataclass
class ClaimResult:
    """What :meth:`Claims.claim` got, each in the order asked.

    Attributes:
        mine: claimed now by this worker
        reclaimed: those of ``mine`` that were claimed before (by a process
            that died, or by this worker before a restart): they may be
            written already
        held: claimed by another live process
        done: finished in this epoch by someone
    """

    mine: List[str] = field(default_factory=list)
    reclaimed: List[str] = field(default_factory=list)
    held: List[str] = field(default_factory=list)
    done: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class Claims:
    """The claims of one worker in one epoch of a field's lease (picklable:
    Ray workers get one each).

    Attributes:
        epoch: the lease's epoch
        group: the lease owner whose heartbeat keeps these claims alive
        owner: the worker (= ``group`` for a plain process)
        ttl: seconds a claim lives without a heartbeat
    """

    epoch: str
    group: str
    owner: str
    ttl: float

    def for_worker(self, name: str) -> "Claims":
        """The claims of a worker of this process (a Ray actor)."""
        return Claims(self.epoch, self.group, "%s/%s" % (self.group, name), self.ttl)

    def _key(self, sid: str) -> str:
        return "%s:%s" % (self.epoch, sid)

    def claim(self, ids: Iterable[str]) -> ClaimResult:
        """Claims what it can of ``ids`` (one ``insert_many``; samples already
        claimed are taken over only when their claim expired, or was this
        worker's)."""
        from pymongo.errors import BulkWriteError

        ids = list(ids)
        out = ClaimResult()
        if not ids:
            return out
        coll = samrs_collection("claims")
        now = _now()
        expires = now + timedelta(seconds=self.ttl)
        docs = [{"_id": self._key(s), "epoch": self.epoch, "sid": s, "group": self.group,
                 "owner": self.owner, "token": uuid.uuid4().hex, "expires": expires,
                 "gc_at": expires + _GC_AFTER, "done": False} for s in ids]
        taken, gone = set(), {}
        try:
            coll.insert_many(docs, ordered=False)
        except BulkWriteError as e:
            for err in e.details.get("writeErrors", []):
                if err.get("code") != 11000:
                    raise
                taken.add(docs[err["index"]]["sid"])
        state: Dict[str, str] = {s: "mine" for s in ids if s not in taken}
        if taken:
            found = {d["sid"]: d for d in coll.find({"_id": {"$in": [self._key(s)
                                                                     for s in taken]}})}
            for sid in taken:
                d = found.get(sid)
                if d is None:  # released meanwhile: next time
                    state[sid] = "held"
                elif d.get("done"):
                    state[sid] = "done"
                elif (d.get("owner") == self.owner or d["expires"] <= now
                      or _gone(d.get("group"), gone)):
                    won = coll.update_one(
                        {"_id": d["_id"], "token": d["token"], "done": False},
                        {"$set": {"group": self.group, "owner": self.owner,
                                  "token": uuid.uuid4().hex, "expires": expires,
                                  "gc_at": expires + _GC_AFTER}}).modified_count
                    state[sid] = "reclaimed" if won else "held"
                else:
                    state[sid] = "held"
        for sid in ids:
            s = state[sid]
            if s in ("mine", "reclaimed"):
                out.mine.append(sid)
                if s == "reclaimed":
                    out.reclaimed.append(sid)
            elif s == "done":
                out.done.append(sid)
            else:
                out.held.append(sid)
        return out

    def mark_done(self, ids: Iterable[str]) -> None:
        """Marks this worker's claims of ``ids`` done (after their write)."""
        keys = [self._key(s) for s in ids]
        if keys:
            samrs_collection("claims").update_many(
                {"_id": {"$in": keys}, "owner": self.owner}, {"$set": {"done": True}})

    def status(self, ids: Iterable[str]) -> Tuple[List[str], List[str], List[str]]:
        """``(done, free, held)`` of samples claimed by others: finished,
        claimable now (released or expired), still held by a live process."""
        ids = list(ids)
        found = {d["sid"]: d for d in samrs_collection("claims").find(
            {"_id": {"$in": [self._key(s) for s in ids]}},
            {"sid": 1, "done": 1, "expires": 1, "group": 1})}
        now, gone = _now(), {}
        done, free, held = [], [], []
        for sid in ids:
            d = found.get(sid)
            if d is None or (not d.get("done") and (d["expires"] <= now
                                                    or _gone(d.get("group"), gone))):
                free.append(sid)
            elif d.get("done"):
                done.append(sid)
            else:
                held.append(sid)
        return done, free, held

    def holders(self, ids: Iterable[str]) -> List[str]:
        """The processes (lease owners) holding open claims of ``ids``."""
        return sorted(samrs_collection("claims").distinct("group", {
            "_id": {"$in": [self._key(s) for s in ids]}, "done": False}))

    def heartbeat(self) -> None:
        """Keeps the group's open claims alive."""
        expires = _now() + timedelta(seconds=self.ttl)
        samrs_collection("claims").update_many(
            {"epoch": self.epoch, "group": self.group, "done": False},
            {"$set": {"expires": expires, "gc_at": expires + _GC_AFTER}})

    def release(self, owner: Optional[str] = None) -> int:
        """Drops the open claims of ``owner`` (default: this worker), so that
        others take those samples at once; returns how many."""
        return samrs_collection("claims").delete_many(
            {"epoch": self.epoch, "owner": owner or self.owner, "done": False}).deleted_count

    def release_group(self) -> int:
        """Drops the open claims of the whole group."""
        return samrs_collection("claims").delete_many(
            {"epoch": self.epoch, "group": self.group, "done": False}).deleted_count

    def count_done(self) -> int:
        """Samples the group finished in this epoch."""
        return samrs_collection("claims").count_documents(
            {"epoch": self.epoch, "group": self.group, "done": True})


# --------------------------------------------------------------------------
# the lease


class FieldLease:
    """A process's part in the run writing one field (see the module doc).

    Args:
        dataset: the dataset
        settings: the run's :class:`~.runs.SegmentSettings`
        shard: ``(i, n)`` or None
        ttl: seconds (default :func:`lease_ttl`)
        owner: this process's name (default :func:`new_owner`)
    """

    def __init__(self, dataset, settings, shard: Optional[Tuple[int, int]] = None,
                 ttl: Optional[float] = None, owner: Optional[str] = None):
        self.dataset_name = dataset.name
        self.dataset_id = str(dataset_id(dataset))
        self.label_field = settings.label_field
        self.key = "%s:%s" % (self.dataset_id, self.label_field)
        self.settings = settings
        self.hash = settings.hash()
        self.shard = tuple(shard) if shard else (0, 1)
        self.shard_key = "%d/%d" % self.shard
        self.ttl = float(ttl or lease_ttl())
        self.owner = owner or new_owner()
        self._okey = _field_key(self.owner)
        self.epoch: Optional[str] = None
        self.creator = False
        self.lost = False
        self._stop = threading.Event()
        self.db_error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None
        self._shard_started = False

    # -- taking and leaving ------------------------------------------------

    def _entry(self, now: datetime) -> Dict[str, Any]:
        return {"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                "shard": self.shard_key, "since": now,
                "expires": now + timedelta(seconds=self.ttl)}

    def _fresh(self, now: datetime, version: int) -> Dict[str, Any]:
        return {"_id": self.key, "dataset_id": self.dataset_id, "dataset": self.dataset_name,
                "label_field": self.label_field, "settings_hash": self.hash,
                "settings": self.settings.record(), "epoch": uuid.uuid4().hex,
                "version": version, "ready": False, "created_at": now,
                "owners": {self._okey: self._entry(now)}}

    def acquire(self, timeout: Optional[float] = None) -> "FieldLease":
        """Takes part in the field's run, or refuses.

        Opens a new epoch when nobody is alive on the field (this process then
        sets the field up and calls :meth:`set_ready`), joins the live epoch
        of a run with the same settings (waiting until its opener has set the
        field up), and starts the heartbeat.

        Raises:
            LeaseConflict: another live run writes the field with other
                settings
        """
        coll = samrs_collection("leases")
        deadline = time.monotonic() + (timeout if timeout is not None else 10 * self.ttl + 60)
        while True:
            if time.monotonic() > deadline:
                raise RuntimeError("could not take part in the run on field %r of %r: its "
                                   "lease stayed busy" % (self.label_field, self.dataset_name))
            now = _now()
            doc = coll.find_one({"_id": self.key})
            if doc is None:
                fresh = self._fresh(now, 1)
                try:
                    coll.insert_one(fresh)
                except Exception as e:
                    if getattr(e, "code", None) != 11000:
                        raise
                    continue
                self._opened(fresh)
                break
            live = _alive(doc.get("owners"), now)
            same = doc.get("settings_hash") == self.hash
            if same and doc.get("ready"):
                update: Dict[str, Any] = {"$set": {"owners." + self._okey: self._entry(now)},
                                          "$inc": {"version": 1}}
                stale = [k for k in doc.get("owners", {}) if k not in live and k != self._okey]
                if stale:
                    update["$unset"] = {"owners." + k: "" for k in stale}
                if coll.update_one({"_id": self.key, "version": doc["version"]},
                                   update).modified_count:
                    self.epoch, self.creator = doc["epoch"], False
                    break
                continue
            if live:
                if same:  # its opener is setting the field up
                    time.sleep(min(0.2, self.ttl / 10))
                    continue
                raise LeaseConflict(self._conflict(doc, live, now))
            # nobody alive: a new epoch (the old one's open claims are void)
            fresh = self._fresh(now, doc["version"] + 1)
            if coll.replace_one({"_id": self.key, "version": doc["version"]},
                                fresh).modified_count:
                samrs_collection("claims").delete_many({"epoch": doc.get("epoch")})
                self._opened(fresh)
                break
        self._start_heartbeat()
        return self

    def _opened(self, doc):
        self.epoch, self.creator = doc["epoch"], True

    def _conflict(self, doc, live, now) -> str:
        changed = self.settings.changed_from(doc.get("settings") or {})
        owners = ", ".join(
            "%s pid %s (shard %s, heartbeat %.0f s ago)"
            % (e.get("host"), e.get("pid"), e.get("shard"),
               max(0.0, self.ttl - (e["expires"] - now).total_seconds()))
            for e in live.values())
        return ("Field %r of dataset %r is being written by another segment run with other "
                "settings (%s; theirs -> this call's); its processes: %s. Wait for it to "
                "finish or stop it, or write to another label_field; a run that was killed "
                "frees the field %.0f s after its last heartbeat (%s)"
                % (self.label_field, self.dataset_name, "; ".join(changed) or "settings hash",
                   owners, self.ttl, TTL_ENV))

    def set_ready(self) -> None:
        """Marks the field set up: processes waiting to join may start."""
        if self.creator:
            samrs_collection("leases").update_one(
                {"_id": self.key, "epoch": self.epoch},
                {"$set": {"ready": True}, "$inc": {"version": 1}})

    def release(self) -> None:
        """Leaves the run: stops the heartbeat, drops this process's open
        claims, and closes the epoch when it was the last one alive."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.epoch is None or self.db_error is not None:
            return  # without a database: its claims expire after ttl
        coll = samrs_collection("leases")
        try:
            self.claims().release_group()
            coll.update_one({"_id": self.key, "epoch": self.epoch},
                            {"$unset": {"owners." + self._okey: ""}, "$inc": {"version": 1}})
            doc = coll.find_one({"_id": self.key, "epoch": self.epoch})
            if doc is not None and not _alive(doc.get("owners"), _now()):
                if coll.delete_one({"_id": self.key, "version": doc["version"]}).deleted_count:
                    samrs_collection("claims").delete_many({"epoch": self.epoch})
        except Exception as e:
            logger.warning("could not release the lease of field %r: %s", self.label_field, e)

    # -- heartbeat -----------------------------------------------------------

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="samrs-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        period = self.ttl / 4.0
        while not self._stop.wait(period):
            try:
                self.heartbeat()
            except Exception as e:
                if is_connection_error(e):
                    self.db_error = e  # the run stops at its next check()
                    return
                logger.warning("lease heartbeat failed: %s", e)

    def heartbeat(self) -> None:
        """Extends this process's lease, claims and shard record by ``ttl``."""
        expires = _now() + timedelta(seconds=self.ttl)
        found = samrs_collection("leases").update_one(
            {"_id": self.key, "epoch": self.epoch, "owners." + self._okey: {"$exists": True}},
            {"$set": {"owners.%s.expires" % self._okey: expires}}).matched_count
        if not found:
            self.lost = True
            return
        self.claims().heartbeat()
        if self._shard_started:
            samrs_collection("shards").update_one(
                {"_id": self._shard_id}, {"$set": {"owners." + self._okey: expires}})

    def check(self) -> None:
        """Raises :class:`LeaseLost` when another run took the field over,
        :class:`DatabaseLost` when a heartbeat could not reach the database."""
        if self.db_error is not None:
            raise database_lost(self.db_error)
        if self.lost:
            raise LeaseLost(
                "this run on field %r lost its lease: it did not heartbeat for %.0f s and "
                "another run took the field over; run it again" % (self.label_field, self.ttl))

    def claims(self) -> Claims:
        """This process's claims in the lease's epoch."""
        return Claims(self.epoch, self.owner, self.owner, self.ttl)

    # -- the shard record ----------------------------------------------------

    @property
    def _shard_id(self) -> str:
        return "%s:%s" % (self.key, self.shard_key)

    def start_shard(self, samples_in_shard: int) -> None:
        """Records this process on its shard's record (a fresh record when the
        last run of the shard ended or had other settings)."""
        coll = samrs_collection("shards")
        now = _now()
        if self.creator:  # records of other settings are void
            coll.delete_many({"dataset_id": self.dataset_id, "label_field": self.label_field,
                              "settings_hash": {"$ne": self.hash}})
        doc = coll.find_one({"_id": self._shard_id})
        expires = now + timedelta(seconds=self.ttl)
        if (doc is None or doc.get("settings_hash") != self.hash
                or doc.get("status") != "running" or not _alive_times(doc.get("owners"), now)):
            fresh = {"_id": self._shard_id, "dataset_id": self.dataset_id,
                     "label_field": self.label_field, "settings_hash": self.hash,
                     "i": self.shard[0], "n": self.shard[1], "status": "running",
                     "samples_in_shard": int(samples_in_shard), "started_at": now,
                     "updated_at": now, "seconds": 0.0, "unknown_labels": [],
                     "owners": {self._okey: expires}}
            fresh.update({k: 0 for k in COUNTS})
            if doc is not None and doc.get("settings_hash") == self.hash:
                fresh["encoder_settings"] = doc.get("encoder_settings")  # a killed call's
            coll.replace_one({"_id": self._shard_id}, fresh, upsert=True)
        else:
            coll.update_one({"_id": self._shard_id},
                            {"$set": {"owners." + self._okey: expires, "updated_at": now}})
        self._shard_started = True

    def note_encoder(self, settings: Optional[Dict[str, Any]]) -> None:
        """Records the engine's settings in the shard record as soon as it is
        built (a run killed later still leaves them to the field's record)."""
        if settings and self._shard_started:
            samrs_collection("shards").update_one(
                {"_id": self._shard_id}, {"$set": {"encoder_settings": settings}})

    def finish_shard(self, complete: bool, counts: Dict[str, Any]) -> None:
        """Adds this process's counts to its shard record and leaves it:
        ``complete`` (all of the shard's samples are finished), else
        ``interrupted`` once no other process works on it."""
        if not self._shard_started:
            return
        coll = samrs_collection("shards")
        now = _now()
        update: Dict[str, Any] = {
            "$inc": {k: int(counts.get(k, 0) or 0) for k in COUNTS},
            "$max": {"seconds": float(counts.get("seconds", 0.0) or 0.0)},
            "$unset": {"owners." + self._okey: ""},
            "$set": {"updated_at": now},
        }
        push: Dict[str, Any] = {}
        if counts.get("unknown_labels"):
            push["unknown_labels"] = dict(counts["unknown_labels"])
        if counts.get("failures"):
            push["failures"] = {"$each": list(counts["failures"])[:MAX_FAILURES_LISTED],
                                "$slice": MAX_FAILURES_LISTED}
        if push:
            update["$push"] = push
        if counts.get("encoder_settings"):
            update["$set"]["encoder_settings"] = counts["encoder_settings"]
        if complete:
            update["$set"]["status"] = "complete"
            update["$set"]["finished_at"] = now
        coll.update_one({"_id": self._shard_id}, update)
        if not complete:
            doc = coll.find_one({"_id": self._shard_id})
            if doc is not None and doc.get("status") == "running" and not _alive_times(
                    doc.get("owners"), _now()):
                coll.update_one({"_id": self._shard_id, "status": "running"},
                                {"$set": {"status": "interrupted"}})
        self._shard_started = False

    def summary(self, n: Optional[int] = None) -> Dict[str, Any]:
        """:func:`shard_summary` of this run's settings over ``n`` shards
        (default: this process's)."""
        return shard_summary(self.dataset_id, self.label_field, self.hash,
                             n or self.shard[1])


def _alive_times(owners: Optional[Dict[str, datetime]], now: datetime) -> int:
    return sum(1 for t in (owners or {}).values() if t and t > now)


def shard_summary(dataset_id_: str, label_field: str, hash_: str, n: int) -> Dict[str, Any]:
    """The field's run over ``n`` shards, from the shard records.

    Returns:
        ``status`` (``"complete"`` when every shard ``i/n`` is, else
        ``"running"``), ``num_shards``, ``shards`` (``"i/n"`` -> status,
        samples, processes alive) and the counts summed over the shards
    """
    docs = {d["i"]: d for d in samrs_collection("shards").find(
        {"dataset_id": dataset_id_, "label_field": label_field, "settings_hash": hash_,
         "n": int(n)})}
    now = _now()
    shards: Dict[str, Any] = {}
    totals: Dict[str, Any] = {k: 0 for k in COUNTS}
    unknown: Dict[str, int] = {}
    failures: List[dict] = []
    encoder = None
    seconds = 0.0
    for i in range(int(n)):
        d = docs.get(i)
        key = "%d/%d" % (i, n)
        if d is None:
            shards[key] = {"status": "not started"}
            continue
        shards[key] = {"status": d.get("status"),
                       "samples_in_shard": d.get("samples_in_shard", 0),
                       "samples_processed": d.get("samples_processed", 0),
                       "processes_alive": _alive_times(d.get("owners"), now)}
        for k in COUNTS:
            totals[k] += int(d.get(k, 0) or 0)
        for part in d.get("unknown_labels") or []:
            for label, c in part.items():
                unknown[label] = unknown.get(label, 0) + int(c)
        failures.extend(d.get("failures") or [])
        encoder = encoder or d.get("encoder_settings")
        seconds = max(seconds, float(d.get("seconds", 0.0) or 0.0))
    complete = all(s.get("status") == "complete" for s in shards.values())
    out = {"status": "complete" if complete else "running", "num_shards": int(n),
           "shards": shards, "unknown_labels": unknown, "seconds": round(seconds, 3),
           "failures": failures[:MAX_FAILURES_LISTED], "encoder_settings": encoder}
    out.update(totals)
    return out


def delete_shard_records(dataset, label_field: str) -> int:
    """Drops the shard records of a field (when its run record is deleted)."""
    return samrs_collection("shards").delete_many(
        {"dataset_id": str(dataset_id(dataset)), "label_field": label_field}).deleted_count
