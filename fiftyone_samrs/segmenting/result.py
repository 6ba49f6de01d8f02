"""What a segment run counted: :class:`Counts` (one type, merged the same
way by a plain run, its shards and its Ray workers), :class:`SegmentResult`
(the counts and what the run was), and the run's :class:`Progress` bar."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import fiftyone.core.utils as fou

from fiftyone_samrs.core.text import plural

#: the counts a shard record sums over the processes that ran it
COUNTS = ("samples_processed", "samples_skipped", "samples_by_others", "boxes",
          "empty_masks", "samples_failed", "mask_files")

#: at most this many failed samples are listed in a shard record and a run record
MAX_FAILURES_LISTED = 100


@dataclass
class Counts:
    """What segmenting counted (a call, a chunk of a Ray worker, a shard).

    Attributes:
        samples_processed: samples segmented
        samples_skipped: samples already finished (resume)
        samples_by_others: samples of the plan that another process working
            on the same field (same settings) finished meanwhile
        boxes: prompts (objects) segmented
        empty_masks: masks that came out empty (kept, flagged ``empty``)
        samples_failed: samples left out with ``skip_failures=True`` (an
            image that cannot be read, a sample too large to store); they stay
            unfinished, so a later run tries them again
        mask_files: predicted masks written as mask files (``mask_path``)
            because their sample's document would be too large otherwise
        unknown_labels: objects whose label is not in the class list, by
            label: they have a Detection but are not painted (255)
        failures: ``{"id", "filepath", "error"}`` of each failed sample
        seconds: wall time
    """

    samples_processed: int = 0
    samples_skipped: int = 0
    samples_by_others: int = 0
    boxes: int = 0
    empty_masks: int = 0
    samples_failed: int = 0
    mask_files: int = 0
    unknown_labels: Counter = field(default_factory=Counter)
    failures: List[dict] = field(default_factory=list)
    seconds: float = 0.0

    def as_record(self) -> dict:
        """The counts as a run record and a shard record store them."""
        out = {key: getattr(self, key) for key in COUNTS}
        out.update(unknown_labels=dict(self.unknown_labels), seconds=round(self.seconds, 3),
                   failures=self.failures[:MAX_FAILURES_LISTED])
        return out

    def merge(self, other: "Counts") -> None:
        """Adds ``other``'s counts (a Ray worker's chunk) to these."""
        for key in COUNTS:
            setattr(self, key, getattr(self, key) + getattr(other, key))
        self.unknown_labels.update(other.unknown_labels)
        self.failures.extend(other.failures)
        self.seconds = max(self.seconds, other.seconds)

    def add_failure(self, sample_id: str, filepath: str, error: str) -> None:
        """Counts a sample left out (``skip_failures``)."""
        self.samples_failed += 1
        self.failures.append({"id": sample_id, "filepath": filepath, "error": error})


@dataclass
class SegmentResult(Counts):
    """What a :func:`~fiftyone_samrs.segment` call did: its :class:`Counts` and

    Attributes:
        backend: name of the backend that ran (``"sam"``, ``"grabcut"``, ...)
        prompt: the prompt setting
        label_field: the Detections field written
        seg_field: the Segmentation field written, or None
        seg_dir: where the semantic PNGs are, or None
        samples_in_view: samples in the view
        samples_in_shard: samples of this shard (= the view without sharding)
        classes: the class list of the PNGs (index = pixel value)
        shard: ``(i, n)`` or None
        encoder: the SAM encoder's settings as one line (dtype and why,
            attention, compilation: ``SamEngine.describe()``), or None for
            backends without them
        workers: the number of Ray workers, or None (this process)
        worker_samples: with Ray workers, the samples each one segmented
    """

    backend: str = ""
    prompt: str = "auto"
    label_field: str = ""
    seg_field: Optional[str] = None
    seg_dir: Optional[str] = None
    samples_in_view: int = 0
    samples_in_shard: int = 0
    classes: List[str] = field(default_factory=list)
    shard: Optional[Tuple[int, int]] = None
    encoder: Optional[str] = None
    workers: Optional[int] = None
    worker_samples: Optional[dict] = None

    def summary(self, max_failures: int = 10) -> str:
        """A few human-readable lines."""
        secs = max(self.seconds, 1e-9)
        lines = [self._what(), self._how_many(),
                 "%.1f s (%.2f samples/s, %.1f boxes/s)"
                 % (self.seconds, self.samples_processed / secs, self.boxes / secs)]
        if self.encoder:
            lines.append(self.encoder)
        if self.unknown_labels:
            n = sum(self.unknown_labels.values())
            lines.append(
                "%s with labels not in the class list (not painted, 255): %s"
                % (plural(n, "object"),
                   ", ".join("%s: %d" % kv for kv in sorted(self.unknown_labels.items()))))
        if self.mask_files:
            lines.append("%d masks written as mask files (mask_path): their samples would "
                         "pass MongoDB's 16 MB document limit with inline masks" % self.mask_files)
        return "\n".join(lines + self._failure_lines(max_failures))

    def _what(self) -> str:
        return "backend %s, prompt %s -> field %r%s" % (
            self.backend, self.prompt, self.label_field,
            ", semantic PNGs %r in %s" % (self.seg_field, self.seg_dir) if self.seg_field else "")

    def _how_many(self) -> str:
        return "%s segmented, %d already done (skipped)%s%s%s; %s, %s" % (
            plural(self.samples_processed, "sample"), self.samples_skipped,
            ", %d by other processes" % self.samples_by_others if self.samples_by_others else "",
            ", shard %d/%d: %d of %s" % (self.shard[0], self.shard[1], self.samples_in_shard,
                                         plural(self.samples_in_view, "sample"))
            if self.shard else "",
            ", %d Ray workers" % self.workers if self.workers else "",
            plural(self.boxes, "box"), plural(self.empty_masks, "empty mask"))

    def _failure_lines(self, max_failures: int) -> List[str]:
        if not self.samples_failed:
            return []
        lines = ["%s FAILED and skipped (skip_failures=True; not segmented, a rerun tries "
                 "them again):" % plural(self.samples_failed, "sample")]
        for f in self.failures[:max_failures]:
            lines.append("  %s (sample %s): %s" % (f["filepath"], f["id"], f["error"]))
        if self.samples_failed > max_failures:
            lines.append("  ... and %d more (SegmentResult.failures, and the run record)"
                         % (self.samples_failed - max_failures))
        return lines


class Progress:
    """The one progress bar of a call: tqdm, or a FiftyOne progress callback
    (as ``fo.report_progress``), or nothing (``progress=False``)."""

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
        """``n`` more samples done (``boxes``: boxes so far, for the rate)."""
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
