"""The settings of a :func:`~fiftyone_samrs.segment` run, its record in the
dataset (a FiftyOne run), and the resume plan.

:class:`SegmentSettings` holds everything that decides a run's result; it is
recorded with the run, and a resumed run must have the same. The resume
plan (:func:`plan_resume`) is a pure function of the view's sample ids, the
shard, the samples already finished and the recorded settings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple

import fiftyone as fo
import fiftyone.core.runs as fors

from fiftyone_samrs.fiftyone_io import run_key

#: ``method`` of the recorded runs
METHOD = "samrs.segment"

#: the settings that change the result: a resumed run must use the same ones
RESULT_SETTINGS = (
    "prompt", "backend", "model", "checkpoint", "box_field", "obb_field", "seg_field",
    "seg_dir", "classes", "margin", "clip_to_rbox", "rbox_margin", "paint_order",
)


@dataclass(frozen=True)
class SegmentSettings:
    """What decides the result of a run (see :func:`fiftyone_samrs.segment`).

    ``obb_field`` is None when the dataset has no rotated boxes; ``seg_dir``
    is None when no semantic field is written; ``classes`` is the PNGs'
    class list.
    """

    prompt: str
    backend: str
    model: Optional[str]
    checkpoint: Optional[str]
    box_field: str
    obb_field: Optional[str]
    label_field: str
    seg_field: Optional[str]
    seg_dir: Optional[str]
    classes: Tuple[str, ...]
    margin: Optional[float]
    clip_to_rbox: bool
    rbox_margin: float
    paint_order: str

    def record(self) -> Dict[str, Any]:
        """The settings as stored in the run config (``classes`` as a list)."""
        d = asdict(self)
        d["classes"] = list(self.classes)
        return d

    def hash(self) -> str:
        """A short hash of the settings that decide the result (and the
        field): the field's lease is taken under it (:mod:`.leases`)."""
        record = self.record()
        keyed = {k: record.get(k) for k in RESULT_SETTINGS + ("label_field",)}
        text = json.dumps(keyed, sort_keys=True, default=str)
        return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]

    def changed_from(self, previous: Dict[str, Any]) -> List[str]:
        """The result settings that differ from a recorded run's, as
        ``"name: old -> new"`` strings."""
        mine = self.record()
        return ["%s: %r -> %r" % (k, previous.get(k), mine[k]) for k in RESULT_SETTINGS
                if previous.get(k) != mine[k]]


@dataclass(frozen=True)
class ResumePlan:
    """Which samples a run processes.

    Attributes:
        view_ids: every sample of the view
        shard_ids: the samples of this shard (= the view without sharding)
        done: samples of the shard already finished (skipped)
        todo: the samples to process, in view order
    """

    view_ids: Tuple[str, ...]
    shard_ids: Tuple[str, ...]
    done: FrozenSet[str]
    todo: Tuple[str, ...]


def shard_of(sample_id: str, n: int) -> int:
    """The shard (``0..n-1``) a sample belongs to: its ObjectId modulo ``n``."""
    return int(sample_id, 16) % n


def plan_resume(
    view_ids: Sequence[str],
    shard: Optional[Tuple[int, int]],
    finished: FrozenSet[str],
    previous: Optional[Dict[str, Any]],
    settings: SegmentSettings,
    overwrite: bool,
) -> ResumePlan:
    """The samples to process, and a check that a resumed run changes nothing.

    Args:
        view_ids: the view's sample ids, in order
        shard: ``(i, n)`` or None
        finished: samples whose outputs exist (label set, PNG on disk)
        previous: the recorded settings of the run that wrote the field, or None
        settings: this run's settings
        overwrite: redo finished samples

    Raises:
        ValueError: when finished samples exist, were made with other result
            settings, and ``overwrite`` is False
    """
    shard_ids = tuple(s for s in view_ids if shard is None or shard_of(s, shard[1]) == shard[0])
    done = frozenset() if overwrite else frozenset(finished).intersection(shard_ids)
    if done and previous is not None:
        changed = settings.changed_from(previous)
        if changed:
            raise ValueError(
                "Field %r holds a run with other settings (%s); pass overwrite=True to redo "
                "it, or write to another label_field" % (settings.label_field, "; ".join(changed)))
    return ResumePlan(tuple(view_ids), shard_ids, done,
                      tuple(s for s in shard_ids if s not in done))


class SegmentRunConfig(fors.RunConfig):
    """The settings of a :func:`~fiftyone_samrs.segment` run, stored as a
    FiftyOne run (``dataset.list_runs()``, ``dataset.get_run_info(key).config``)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("method", METHOD)
        super().__init__(**kwargs)


class SegmentRun(fors.Run):
    """A :func:`~fiftyone_samrs.segment` run; deleting its record leaves the
    fields alone."""

    def get_fields(self, samples, key):
        return [f for f in (getattr(self.config, "label_field", None),
                            getattr(self.config, "seg_field", None)) if f]

    def cleanup(self, samples, key):
        """Drops the field's shard records with its run record (the fields stay)."""
        from fiftyone_samrs.fiftyone_io import dataset_of
        from fiftyone_samrs.segmenting.leases import delete_shard_records

        field = getattr(self.config, "label_field", None)
        if field:
            delete_shard_records(dataset_of(samples), field)


def segment_run_key(label_field: str) -> str:
    """The run key under which a run writing ``label_field`` is recorded."""
    return run_key(label_field)


def get_segment_run(sample_collection, label_field: str = "sam") -> Optional[Dict[str, Any]]:
    """The recorded settings (and final counts) of the run that wrote ``label_field``.

    Returns:
        a dict, or None when no run is recorded under that field
    """
    key = segment_run_key(label_field)
    if not sample_collection.has_run(key):
        return None
    config = sample_collection.get_run_info(key).config
    if getattr(config, "method", None) != METHOD:
        return None
    out = config.serialize()
    for k in ("cls", "type"):
        out.pop(k, None)
    return out


def list_segment_runs(sample_collection) -> List[str]:
    """Keys of the :func:`~fiftyone_samrs.segment` runs recorded on the dataset."""
    return sample_collection.list_runs(method=METHOD)


def default_seg_field(label_field: str) -> str:
    """The semantic field that goes with an instance field: ``sam`` ->
    ``sam_seg``, ``grabcut`` -> ``grabcut_seg``."""
    return "%s_seg" % label_field


def check_seg_outputs_free(dataset, settings: SegmentSettings) -> None:
    """Refuses a ``seg_field`` that another run's instance field owns, and a
    ``seg_dir`` that holds another field's PNGs.

    Raises:
        ValueError: naming the field and run that use them
    """
    others = [(key, dataset.get_run_info(key).config) for key in list_segment_runs(dataset)]
    for key, other in others:
        owner = getattr(other, "label_field", None)
        if (settings.seg_field and getattr(other, "seg_field", None) == settings.seg_field
                and owner not in (None, settings.label_field)
                and dataset.has_sample_field(owner)):
            raise ValueError(
                "seg_field %r holds the semantic masks of the run that wrote %r (run %r); "
                "writing %r into it would replace them. Pass another seg_field (CLI: "
                "--seg-field NAME, or --seg-field '' for none; default: %r), or delete that "
                "run's fields first" % (settings.seg_field, owner, key, settings.label_field,
                                        default_seg_field(settings.label_field)))
    if not settings.seg_dir:
        return
    for key, other in others:
        if (getattr(other, "seg_dir", None) == settings.seg_dir
                and getattr(other, "seg_field", None) not in (None, settings.seg_field)):
            raise ValueError("seg_dir %s already holds the PNGs of field %r (run %r); choose "
                             "another seg_dir" % (settings.seg_dir, other.seg_field, key))


def start_run(dataset, settings: SegmentSettings, shard: Optional[Tuple[int, int]],
              lease=None, samples_in_shard: int = 0) -> str:
    """Records a run as ``running``; returns its key.

    With a :class:`~.leases.FieldLease`, the shard's own record is started and
    the field's record is their summary (:func:`record_run`); without one,
    the record is written as before (one run, no shard records).
    """
    key = segment_run_key(settings.label_field)
    if lease is not None:
        lease.start_shard(samples_in_shard)
        record_run(dataset, settings, lease)
        return key
    _save_record(dataset, key, SegmentRunConfig(**settings.record(), status="running",
                                                shard=shard))
    return key


def finish_run(dataset, settings: SegmentSettings, shard: Optional[Tuple[int, int]],
               counts: Dict[str, Any], lease=None, complete: bool = True) -> None:
    """Records a run's end with its counts: ``complete`` (without a lease),
    or this process's part of its shard record and the field's summary."""
    key = segment_run_key(settings.label_field)
    if lease is not None:
        lease.finish_shard(complete, counts)
        record_run(dataset, settings, lease)
        return
    _save_record(dataset, key, SegmentRunConfig(**settings.record(), status="complete",
                                                shard=shard, **counts))


def record_run(dataset, settings: SegmentSettings, lease, rounds: int = 6) -> Dict[str, Any]:
    """Writes the field's FiftyOne run record as the summary of its shard
    records (:func:`.leases.shard_summary`): ``status`` is ``complete`` only
    when every shard of the run is, the counts are summed over the shards,
    ``shards`` has each shard's status.

    Several processes may write it at once, and two that loaded the dataset
    before the run existed each register it (a run document each; the
    dataset keeps one). So each write is checked against the record the
    dataset holds after a reload, and made again (to the record kept) until
    that record is the shard records' summary: the last write reflects the
    last change.

    Returns:
        the summary written
    """
    key = segment_run_key(settings.label_field)
    summary, recount = None, None
    for _ in range(rounds):
        summary = lease.summary()
        if summary.get("status") == "complete":
            # the calls' own counts miss what a killed call wrote: count the field
            recount = recount or recount_field(dataset, settings)
            summary.update(recount)
        config = SegmentRunConfig(**settings.record(), **summary)
        if _stored_config(dataset, key) == _comparable(config):
            break
        _save_record(dataset, key, config)
    return summary


def recount_field(dataset, settings: SegmentSettings) -> Dict[str, Any]:
    """What the field holds when its run completes (whatever calls wrote it,
    killed ones included): ``samples_segmented`` (samples with the field),
    ``boxes``, ``empty_masks``, ``mask_files`` and ``unknown_labels`` (labels
    not in the class list), in one aggregation pass."""
    from fiftyone import ViewField as F

    field = settings.label_field
    if not dataset.has_sample_field(field):
        return {"samples_segmented": 0}
    dets = field + ".detections"
    samples, boxes, labels = dataset.aggregate([
        fo.Count(field), fo.Count(dets), fo.CountValues(dets + ".label")])
    flagged = dataset.filter_labels(field, F("empty") == True, only_matches=False)  # noqa: E712
    files = dataset.filter_labels(field, F("mask_path").exists(), only_matches=False)
    known = set(settings.classes)
    return {"samples_segmented": int(samples), "boxes": int(boxes),
            "empty_masks": int(flagged.count(dets)), "mask_files": int(files.count(dets)),
            "unknown_labels": {k: int(v) for k, v in labels.items() if k not in known}}


def _comparable(config: SegmentRunConfig) -> str:
    return json.dumps(config.serialize(), sort_keys=True, default=str)


def _stored_config(dataset, key: str) -> Optional[str]:
    """The run record ``key`` as the database holds it now (comparable with
    :func:`_comparable`), or None."""
    dataset.reload()
    if not dataset.has_run(key):
        return None
    return _comparable(dataset.get_run_info(key).config)


def _save_record(dataset, key: str, config: SegmentRunConfig, attempts: int = 8) -> None:
    """Stores ``config`` as the run ``key``: updated in place when a segment
    run is recorded there, else registered.

    Another process may have replaced the run's document since this dataset
    object was loaded (FiftyOne then says ``Failed to update ...``): the
    dataset is reloaded and the write tried again.
    """
    import time

    error = None
    for attempt in range(attempts):
        try:
            if attempt:
                dataset.reload()
            if (dataset.has_run(key)
                    and getattr(dataset.get_run_info(key).config, "method", None) == METHOD):
                dataset.update_run_config(key, config)
            else:
                dataset.register_run(key, config, overwrite=True, cleanup=False)
            return
        except ValueError as e:  # the run document changed under us
            error = e
            time.sleep(0.05 * (attempt + 1))
    raise RuntimeError("could not record the run %r of dataset %r (%s); the masks are "
                       "written, run segment again to record it" % (key, dataset.name, error))
