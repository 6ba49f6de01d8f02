"""What the SAMRS and COCO exporters share.

- :class:`Instance`: one predicted object ready to write (class name, mask
  crop in image pixels, score, prompt box and rotated box), built by
  :func:`instances_of` from FiftyOne ``Detection`` objects (the
  ``dataset.export`` path) or from the database documents (the fast path of
  the SDK calls), through :func:`place_mask` (FiftyOne's own placement).
- :class:`ExportResult`: counts, skips and warnings of an export.
- the export manifest (what an export wrote: the only files overwrite removes),
  unique file stems, split files, class-list
  resolution and a small bounded pool of background file writers.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from fiftyone_samrs.core import classes as classes_mod
from fiftyone_samrs.core.paths import atomic_copy, atomic_write_text, own_location
from fiftyone_samrs.core.records import FormatError
from fiftyone_samrs.core.text import plural
from fiftyone_samrs.fiftyone_io import (
    default_classes,
    image_metadata,
    iter_raw_docs,
    label_attr,
    label_mask,
)

#: how the exporters treat a label that is not in the class list
UNKNOWN_CHOICES = ("error", "ignore")

#: export_media values, as in FiftyOne
MEDIA_CHOICES = (True, False, "copy", "move", "symlink")

#: at most this many messages are kept in an :class:`ExportResult`
MAX_MESSAGES = 1000

Box = Tuple[float, float, float, float]


@dataclass
class Instance:
    """One object to export, in image pixels.

    Attributes:
        label: class name
        crop: ``(h, w)`` bool mask, inside the image
        x0, y0: position of ``crop[0, 0]`` in the image
        score: SAM's predicted IoU (the Detection's confidence), or None
        prompt_box: the prompt box ``(x0, y0, x1, y1)`` in pixels (the whole
            object's, for one cut by a tile edge), or None
        prompt_quad: the object's rotated box ``(4, 2)`` in pixels, or None
        prompt: the prompt the mask was made with (``"hbox"``, ``"rhbox"``...)
        rbox: the rotated box ``(4, 2)`` of the exported object in image
            pixels: the source's (tile coordinates, clipped as tiling clips),
            or derived from the mask by :func:`derive_rboxes`; None until then
        rbox_source: ``"source"`` or ``"mask"`` (derived)
        difficult: the source's ``difficult`` flag (0 when it has none)
        review: the label's review decision (``accepted``, ``replaced``,
            ``rejected``, ``auto-replaced``) or None; a rejected instance is
            left out of the instances, 255 in the label PNG
    """

    label: str
    crop: np.ndarray
    x0: int
    y0: int
    score: Optional[float] = None
    prompt_box: Optional[Box] = None
    prompt_quad: Optional[np.ndarray] = None
    prompt: Optional[str] = None
    rbox: Optional[np.ndarray] = None
    rbox_source: Optional[str] = None
    difficult: int = 0
    review: Optional[str] = None

    @property
    def rejected(self) -> bool:
        return self.review == "rejected"

    @property
    def empty(self) -> bool:
        return self.crop.size == 0 or not self.crop.any()


def derive_rboxes(instances: Sequence[Instance]) -> None:
    """Gives every instance without the source's rotated box one derived
    from its mask (:func:`~fiftyone_samrs.core.rboxes.rboxes_from_masks`,
    all of an image's instances at once; ``rbox_source="mask"``); an empty
    mask gets none."""
    from fiftyone_samrs.core.rboxes import rboxes_from_masks

    todo = [inst for inst in instances if inst.rbox is None and inst.crop.size]
    for inst, rbox in zip(todo, rboxes_from_masks([(i.crop, i.x0, i.y0) for i in todo])):
        inst.rbox = rbox
        inst.rbox_source = None if rbox is None else "mask"


@dataclass
class ExportResult:
    """What an export wrote.

    Attributes:
        format: ``"samrs"`` or ``"coco"``
        export_dir: the folder written (SAMRS layout) or the images folder
        labels_path: the COCO JSON file
        classes: the class list (index = pixel value = category id - start)
        images: images exported (listed in the JSON, media written)
        labeled_images: images given a label PNG (SAMRS; those with objects)
        instances: annotations written
        skipped: objects not written, by reason (``"unknown class"``,
            ``"empty mask"``)
        warned: objects written with a warning, by kind (``"mask resized
            to its box"``, ``"mask clipped to the image"``)
        messages: the first :data:`MAX_MESSAGES` skip/warning messages, each
            naming the sample's filepath
        splits: ``{split: {"images", "labeled_images", "instances"}}``
        split_rule: how the splits were chosen (from the samples' ``split``,
            by ``split_ratio``, defaulted to train)
        rbox_from_source, rbox_derived: rotated boxes of the written
            instances taken from the source, and derived from the masks
        seconds: wall time
    """

    format: str
    export_dir: Optional[str] = None
    labels_path: Optional[str] = None
    classes: List[str] = field(default_factory=list)
    images: int = 0
    labeled_images: int = 0
    instances: int = 0
    skipped: Counter = field(default_factory=Counter)
    warned: Counter = field(default_factory=Counter)
    messages: List[str] = field(default_factory=list)
    splits: Dict[str, Dict[str, int]] = field(default_factory=dict)
    split_rule: str = ""
    rbox_from_source: int = 0
    rbox_derived: int = 0
    seconds: float = 0.0

    def skip(self, kind: str, message: str) -> None:
        self.skipped[kind] += 1
        if len(self.messages) < MAX_MESSAGES:
            self.messages.append("skipped (%s): %s" % (kind, message))

    def warn(self, kind: str, message: str) -> None:
        self.warned[kind] += 1
        if len(self.messages) < MAX_MESSAGES:
            self.messages.append("warning (%s): %s" % (kind, message))

    @property
    def instances_per_second(self) -> float:
        return self.instances / self.seconds if self.seconds > 0 else float("nan")

    def summary(self, max_messages: int = 10) -> str:
        lines = ["%s export: %s (%d with a label), %s, %s, %.1f s"
                 % (self.format, plural(self.images, "image"), self.labeled_images,
                    plural(self.instances, "instance"), plural(len(self.classes), "class"),
                    self.seconds)]
        if self.format == "coco":
            lines[0] = ("coco export: %s, %s, %s, %.1f s"
                        % (plural(self.images, "image"), plural(self.instances, "instance"),
                           plural(len(self.classes), "class"), self.seconds))
        if self.export_dir:
            lines.append("  folder: %s" % self.export_dir)
        if self.labels_path:
            lines.append("  annotations: %s" % self.labels_path)
        if self.splits:
            lines.append("  splits: %s" % ", ".join(
                "%s %d images (%d labelled), %d instances"
                % (k, v["images"], v["labeled_images"], v["instances"])
                for k, v in self.splits.items()))
            lines.append("    (%s)" % self.split_rule)
        for title, counter in (("skipped", self.skipped), ("warnings", self.warned)):
            if counter:
                lines.append("  %s: %s" % (title, ", ".join(
                    "%d %s" % (n, k) for k, n in sorted(counter.items()))))
        for msg in self.messages[:max_messages]:
            lines.append("    " + msg)
        total = sum(self.skipped.values()) + sum(self.warned.values())
        if total > max_messages:
            lines.append("    ... and %d more" % (total - min(max_messages, len(self.messages))))
        return "\n".join(lines)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "format": self.format, "export_dir": self.export_dir,
            "labels_path": self.labels_path, "classes": list(self.classes),
            "images": self.images, "labeled_images": self.labeled_images,
            "instances": self.instances, "skipped": dict(self.skipped),
            "warned": dict(self.warned), "splits": dict(self.splits),
            "split_rule": self.split_rule, "rbox_from_source": self.rbox_from_source,
            "rbox_derived": self.rbox_derived,
            "seconds": round(self.seconds, 3),
        }


# --------------------------------------------------------------------------
# masks


def place_mask(
    mask: Optional[np.ndarray],
    bounding_box: Sequence[float],
    width: int,
    height: int,
    where: str,
    result: Optional[ExportResult] = None,
) -> Tuple[np.ndarray, int, int]:
    """Places a FiftyOne instance mask in image pixels, where FiftyOne draws it
    (:func:`fiftyone_samrs.core.masks.place_mask`), counting in ``result`` a
    mask that had to be resized to its box (a crop of another size, or a box
    reaching beyond the image, which FiftyOne clamps to it).

    Returns:
        ``(crop, x0, y0)`` with ``crop`` a bool array inside the image

    Raises:
        FormatError: naming ``where``, for a mask that is not 2-D
    """
    from fiftyone_samrs.core.masks import place_mask as _place

    try:
        inst, resized = _place(mask, bounding_box, width, height)
    except ValueError as e:
        raise FormatError(where, str(e)) from None
    if result is not None and resized:
        m = np.asarray(mask)
        result.warn("mask resized to its box",
                    "%s: mask %dx%d drawn over its %dx%d px box (as FiftyOne draws it)"
                    % (where, m.shape[1] if m.ndim > 1 else 0, m.shape[0],
                       inst.mask.shape[1], inst.mask.shape[0]))
    return inst.mask, inst.x0, inst.y0


def _where(filepath: str, field_name: str, index: int, label: Any) -> str:
    return "%s: %s object %d (%r)" % (filepath, field_name, index, label)


def instances_of(
    labels: Optional[Sequence],
    width: int,
    height: int,
    filepath: str,
    field_name: str = "sam",
    prompts: Optional[Sequence] = None,
    quads: Optional[Sequence] = None,
    result: Optional[ExportResult] = None,
) -> List[Instance]:
    """The instances of a sample's Detections, from FiftyOne labels (the
    ``dataset.export`` route) or raw documents wrapped as
    :class:`~fiftyone_samrs.fiftyone_io.RawLabel` (the SDK calls' fast route):
    one code path, so both give the same pixels.

    Args:
        labels: the instance Detections (or None)
        width, height: the image size
        filepath: the sample's filepath, for messages
        field_name: the field's name, for messages
        prompts: the prompt boxes (``hbb``): a Detection's ``source_id`` names
            its prompt, whose ``prompt_box`` (whole object, for cut ones) or
            box is the instance's ``prompt_box``; or None
        quads: the rotated boxes (``obb``), linked by ``obj_index``, for the
            instance's ``prompt_quad``; or None
        result: where to count warnings

    Raises:
        FormatError: naming the sample, for an object without a mask or
            whose mask file is missing
    """
    if not labels:
        return []
    boxes = {p.id: _prompt_box(p, width, height) for p in prompts or []}
    difficult = {p.id: label_attr(p, "difficult") for p in prompts or []}
    quad_of, rbox_of = {}, {}
    for q in quads or []:
        points = _quad_points(q, width, height)
        quad = _prompt_quad(q, points)
        if quad is not None:
            key = label_attr(q, "obj_index")
            quad_of.setdefault(key, quad)
            rbox_of.setdefault(key, (points, label_attr(q, "difficult")))
    out = []
    for i, det in enumerate(labels):
        where = _where(filepath, field_name, i, det.label)
        mask = label_mask(det, where)
        if mask is None:
            raise FormatError(where, "has no instance mask: export a field with masks "
                                     "(e.g. label_field='sam'), not a box field")
        crop, x0, y0 = place_mask(mask, det.bounding_box or (0, 0, 0, 0), width, height,
                                  where, result)
        conf = det.confidence
        source, key = label_attr(det, "source_id"), label_attr(det, "obj_index")
        rbox, quad_difficult = rbox_of.get(key, (None, None))
        hard = difficult.get(source)
        out.append(Instance(
            label=det.label, crop=crop, x0=x0, y0=y0,
            score=None if conf is None else float(conf),
            prompt_box=boxes.get(source),
            prompt_quad=quad_of.get(key),
            prompt=label_attr(det, "prompt"),
            rbox=rbox, rbox_source=None if rbox is None else "source",
            difficult=int(hard if hard is not None else quad_difficult or 0),
            review=label_attr(det, "review"),
        ))
    return out


def _prompt_box(label, width, height) -> Optional[Box]:
    whole = label_attr(label, "prompt_box")
    if whole is not None and len(whole) == 4:
        return tuple(float(v) for v in whole)
    rel = label.bounding_box
    if rel is None:
        return None
    x, y, w, h = (float(v) for v in rel)
    x0, y0 = x * width, y * height
    # rounded to 1e-6 px: drops the float noise of the relative round trip
    return (round(x0, 6), round(y0, 6), round(x0 + w * width, 6), round(y0 + h * height, 6))


def _quad_points(label, width, height) -> Optional[np.ndarray]:
    """The label's own quad (in a tile: as tiling clipped it), in pixels."""
    pts = label.points[0] if label.points else []
    if len(pts) < 4:
        return None
    return np.round(np.asarray(pts[:4], dtype=np.float64) * (width, height), 6)


def _prompt_quad(label, points: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """The whole object's quad (``prompt_quad``, for one cut by a tile edge),
    else the label's own ``points`` (:func:`_quad_points`)."""
    whole = label_attr(label, "prompt_quad")
    if whole is not None and len(whole) == 4:
        return np.asarray(whole, dtype=np.float64).reshape(4, 2)
    return points


def class_indices(
    instances: Sequence[Instance],
    index: Dict[str, int],
    unknown: str,
    filepath: str,
    result: ExportResult,
    classes: Sequence[str],
) -> List[Optional[int]]:
    """The class index of each instance; None (counted) for an unknown class
    with ``unknown="ignore"``; :data:`~fiftyone_samrs.core.painting.REJECTED`
    (counted) for one rejected in review (255 in the label PNG, no instance).

    Raises:
        FormatError: naming the sample, for an unknown class with
            ``unknown="error"``
    """
    from fiftyone_samrs.core.painting import REJECTED

    out: List[Optional[int]] = []
    for i, inst in enumerate(instances):
        if inst.rejected:
            result.skip("rejected in review", "%s: object %d (%r)" % (filepath, i, inst.label))
            out.append(REJECTED)
            continue
        idx = index.get(inst.label)
        if idx is None:
            if unknown == "error":
                raise FormatError(
                    filepath,
                    "object %d has class %r, which is not in the class list (%s); choose "
                    "another class list, or pass unknown='ignore' to leave such objects out "
                    "(255 in the label PNG)" % (i, inst.label, _short(classes)))
            result.skip("unknown class", "%s: object %d has class %r" % (filepath, i, inst.label))
        out.append(idx)
    return out


def check_known_classes(sample_collection, label_field: str, index: Dict[str, int],
                        classes: Sequence[str]) -> None:
    """Fails before anything is written (and before a progress bar starts)
    when objects of ``label_field`` have classes outside the class list: the
    check :func:`class_indices` makes per sample with ``unknown="error"``,
    for the whole collection at once.

    Raises:
        FormatError: naming the first sample with such an object, every
            unknown class and its count
    """
    from fiftyone import ViewField as F

    path = "%s.detections.label" % label_field
    counts = sample_collection.count_values(path)
    unknown = {k: n for k, n in counts.items() if k not in index}
    if not unknown:
        return
    first = sample_collection.filter_labels(
        label_field, F("label").is_in(sorted(k for k in unknown if k is not None)) |
        (F("label") == None)).limit(1).values("filepath")  # noqa: E711
    where = first[0] if first else (getattr(sample_collection, "name", None) or "collection")
    n = sum(unknown.values())
    raise FormatError(
        where, "%d object%s of %r %s not in the class list (%s): %s; choose another "
        "class list, or pass unknown='ignore' to leave such objects out (255 in the label PNG)"
        % (n, "" if n == 1 else "s", label_field,
           "has a class" if n == 1 else "have classes", _short(classes),
           ", ".join("%r (%d)" % (k, n) for k, n in sorted(
               unknown.items(), key=lambda kv: str(kv[0])))))


def _short(classes: Sequence[str], n: int = 8) -> str:
    names = ", ".join(classes[:n])
    return names + (", ... %d classes" % len(classes) if len(classes) > n else "")


# --------------------------------------------------------------------------
# folders, names, splits


class StemMaker:
    """Unique file stems for the exported images: the image's own stem, or
    ``<stem>-2``, ``<stem>-3``... when another image of the export has it.
    The same filepath always gets the same stem."""

    def __init__(self):
        self._by_path: Dict[str, str] = {}
        self._used: set = set()

    def __call__(self, filepath: str) -> Tuple[str, bool]:
        """Returns ``(stem, seen)`` where ``seen`` says the path came before."""
        if filepath in self._by_path:
            return self._by_path[filepath], True
        stem = os.path.splitext(os.path.basename(filepath))[0]
        name, n = stem, 1
        while name in self._used:
            n += 1
            name = "%s-%d" % (stem, n)
        self._used.add(name)
        self._by_path[filepath] = name
        return name, False


def normalize_export_media(export_media) -> Any:
    """``"copy"`` -> True; checks the value."""
    if export_media in ("copy", None):
        return True
    if export_media in ("false", "False", "none"):
        return False
    if export_media in ("true", "True"):
        return True
    if export_media not in MEDIA_CHOICES:
        raise ValueError("export_media must be one of True, False, 'copy', 'move', 'symlink'; "
                         "got %r" % (export_media,))
    return export_media


def write_text(path: str, text: str) -> None:
    """Writes a small text file (split lists, rotated boxes, label lines),
    whole or not at all (:func:`~fiftyone_samrs.core.paths.atomic_write_text`)."""
    atomic_write_text(path, text)


def transfer_media(src: str, dst: str, mode, where: str) -> None:
    """Copies, moves or links an image; error names the sample."""
    if not os.path.isfile(src):
        raise FormatError(where, "image file not found")
    if mode is True:
        atomic_copy(src, dst)
    elif mode == "move":
        shutil.move(src, dst)
    elif mode == "symlink":
        os.symlink(os.path.abspath(src), dst)


# --------------------------------------------------------------------------
# classes


def resolve_export_classes(
    sample_collection, classes, label_field: str, seg_field: Optional[str] = None
) -> List[str]:
    """The class list of an export.

    Order of preference: ``classes`` (a subset name like ``"SOTA"``, a list
    of names or a comma-separated string), the ``mask_targets`` of ``seg_field`` (the list the
    segmentation painted with), ``dataset.info["samrs"]["subset"]``, the
    dataset's ``classes`` of ``label_field`` or of ``hbb``, and finally the
    sorted labels found in ``label_field``.
    """
    if classes is not None:
        if isinstance(classes, str) and "," in classes:
            classes = [s.strip() for s in classes.split(",") if s.strip()]
        return classes_mod.resolve_classes(classes)
    if sample_collection is None:
        raise ValueError("Give the class list: classes='SOTA' or a list of class names")
    if seg_field:
        targets = targets_to_classes(sample_collection.mask_targets.get(seg_field))
        if targets:
            return targets
    return default_classes(sample_collection, [label_field, "hbb"])


def targets_to_classes(targets: Optional[Dict[Any, str]]) -> Optional[List[str]]:
    """``{0: "a", 1: "b"}`` -> ``["a", "b"]`` when the keys are 0..n-1."""
    if not targets:
        return None
    keys = sorted(int(k) for k in targets)
    if keys != list(range(len(keys))):
        return None
    return [targets[k] if k in targets else targets[str(k)] for k in keys]


def resolve_paint_order(sample_collection, paint_order: Optional[str], label_field: str) -> str:
    """``paint_order`` or, when None, the order the segmentation run of
    ``label_field`` painted with, or ``"annotation"``."""
    if paint_order is not None:
        return paint_order
    try:
        from fiftyone_samrs.segmenting.runs import get_segment_run

        run = get_segment_run(sample_collection, label_field) if sample_collection else None
    except Exception:
        run = None
    return (run or {}).get("paint_order") or "annotation"


# --------------------------------------------------------------------------
# what an export wrote: the manifest, and overwrite that removes only that


#: file name of the SAMRS layout's manifest (in the export folder); a COCO
#: export's is ``<labels file>`` + :data:`MANIFEST_SUFFIX`
MANIFEST_NAME = "samrs_export_manifest.jsonl"
MANIFEST_SUFFIX = ".samrs_export_manifest.jsonl"
#: the folder (in each root of an export) holding an earlier export's files
#: while ``overwrite`` writes the new one
HOLD_NAME = ".samrs_overwritten"


class ExportManifest:
    """The list of files and folders an export writes, kept next to them.

    Every export writes one: a JSON-lines file whose first line says what
    wrote it, then one line per file (``{"f": path}``) or folder created
    (``{"d": path}``), appended *before* each is written (so a killed export
    still lists everything it may have left), and a last ``{"complete":
    true}`` line. Paths are relative to the manifest's folder.

    ``overwrite=True`` removes exactly the files an earlier manifest lists
    (and the folders it created, once empty), never anything else: a file
    the user put there stays, and a new file that would replace one the
    manifest does not list is refused (:meth:`claim`).

    Args:
        path: the manifest file
        roots: the folders the export writes into; a listed path outside them
            is never removed (a hand-edited manifest cannot delete elsewhere)
        what: the export's format, recorded in the header
    """

    def __init__(self, path: str, roots: Sequence[str], what: str):
        self.path = os.path.abspath(path)
        self.base = os.path.dirname(self.path)
        self.roots = [os.path.abspath(r) for r in roots]
        self.what = what
        self._f = None
        self._claimed: set = set()
        self._moved: set = set()
        self._created: List[str] = []
        self._held: List[Tuple[str, str]] = []
        self._held_manifest: Optional[Tuple[str, str]] = None
        self._held_dirs: List[str] = []
        self.removed: List[str] = []

    # -- reading an earlier one ------------------------------------------

    def previous(self) -> Tuple[List[str], List[str]]:
        """``(files, folders)`` an earlier export listed here (absolute paths,
        inside :attr:`roots`); empty when there is no manifest."""
        import json

        from fiftyone_samrs.core.paths import is_inside

        files: List[str] = []
        dirs: List[str] = []
        if not os.path.isfile(self.path):
            return files, dirs
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line cut by a kill
                if not isinstance(entry, dict):
                    continue
                for key, out in (("f", files), ("d", dirs)):
                    rel = entry.get(key)
                    if isinstance(rel, str) and rel and not os.path.isabs(rel):
                        # a link (export_media="symlink") is judged where it lies
                        p = own_location(os.path.join(self.base, rel))
                        if (any(is_inside(r, p, follow=False) for r in self.roots)
                                and p != self.path):
                            out.append(p)
        return files, dirs

    def remove_previous(self) -> List[str]:
        """Removes what the earlier manifest lists (files, then its folders
        when empty, deepest first), then the manifest; returns the paths removed."""
        self.hold_previous()
        return self.drop_held()

    def hold_previous(self) -> None:
        """Moves what the earlier manifest lists, and the manifest, into a
        holding folder (:data:`HOLD_NAME` in each root: renames on the same
        file system; a link moves as a link). The new export then writes;
        :meth:`drop_held` removes the held files when it succeeded,
        :meth:`restore_held` puts them back when it failed, so a refused or
        failed ``overwrite`` leaves the earlier export as it was. A holding
        folder left by a killed export is removed first."""
        files, self._held_dirs = self.previous()
        self._clear_holding()
        self._held = [h for h in map(self._hold, files) if h]
        self._held_manifest = self._hold(own_location(self.path))

    def _hold(self, path: str) -> Optional[Tuple[str, str]]:
        """Moves one file (or link) of a root into its holding folder;
        returns ``(path, held)``, or None when there is nothing to move."""
        root = next((r for r in map(os.path.realpath, self.roots)
                     if path.startswith(r.rstrip(os.sep) + os.sep)), None)
        if root is None or not (os.path.islink(path) or os.path.isfile(path)):
            return None
        held = os.path.join(root, HOLD_NAME, os.path.relpath(path, root))
        os.makedirs(os.path.dirname(held), exist_ok=True)
        os.replace(path, held)
        return path, held

    def _clear_holding(self) -> None:
        for root in self.roots:
            shutil.rmtree(os.path.join(root, HOLD_NAME), ignore_errors=True)

    @property
    def holds_previous(self) -> bool:
        """Whether an earlier export's files are held (see :meth:`hold_previous`)."""
        return bool(self._held) or self._held_manifest is not None

    def drop_held(self) -> List[str]:
        """Removes the held files of the earlier export, and its folders that
        are empty now (deepest first); returns the paths removed."""
        removed = [p for p, _ in self._held]
        self._clear_holding()
        for d in sorted(set(self._held_dirs), key=len, reverse=True):
            try:
                os.rmdir(d)  # only when empty: a user's file in it keeps it
                removed.append(d)
            except OSError:
                pass
        self._held, self._held_dirs, self._held_manifest = [], [], None
        self.removed = removed
        return removed

    def restore_held(self) -> None:
        """Undoes this export (removes the files it wrote, not the user's
        images it moved in) and puts the earlier export back."""
        for path in self._claimed - self._moved:
            if os.path.islink(path) or os.path.isfile(path):
                os.remove(path)
        for d in sorted(self._created, key=len, reverse=True):
            try:
                os.rmdir(d)
            except OSError:
                pass
        if os.path.isfile(self.path):
            os.remove(self.path)
        for p, held in self._held + ([self._held_manifest] if self._held_manifest else []):
            os.makedirs(os.path.dirname(p), exist_ok=True)
            os.replace(held, p)
        self._clear_holding()
        self._held, self._held_manifest = [], None

    # -- writing this one -------------------------------------------------

    def open(self) -> None:
        import json
        from datetime import datetime

        from fiftyone_samrs import __version__

        os.makedirs(self.base, exist_ok=True)
        self._f = open(self.path, "w", encoding="utf-8")
        self._f.write(json.dumps({"samrs_export": 1, "format": self.what,
                                  "version": __version__,
                                  "created": datetime.now().replace(microsecond=0).isoformat()})
                      + "\n")
        self._f.flush()

    def _add(self, key: str, path: str) -> None:
        import json

        if self._f is None:
            self.open()
        self._f.write(json.dumps({key: os.path.relpath(path, self.base)}) + "\n")
        self._f.flush()

    def claim(self, path: str, moved: bool = False) -> str:
        """Lists ``path`` as written by this export (before it is written);
        ``moved``: the file is the user's own image moved in
        (``export_media="move"``), listed but never removed by an overwrite.

        Raises:
            FileExistsError: when ``path`` exists and is not this export's
                (the user's file, or an export without a manifest)
        """
        path = os.path.abspath(path)
        if path in self._claimed:
            return path
        if os.path.lexists(path):
            raise FileExistsError(
                "%s exists and was not written by a samrs export of this folder (it is not in "
                "%s); the export does not replace files it did not write: move it away, or "
                "export to another folder" % (path, os.path.basename(self.path)))
        self._claimed.add(path)
        if moved:
            self._moved.add(path)
        self._add("m" if moved else "f", path)
        return path

    def makedirs(self, folder: str) -> None:
        """Creates ``folder`` (and parents), listing those this export creates."""
        folder = os.path.abspath(folder)
        missing = []
        p = folder
        while not os.path.isdir(p):
            missing.append(p)
            parent = os.path.dirname(p)
            if parent == p:
                break
            p = parent
        for d in reversed(missing):
            self._add("d", d)
            self._created.append(d)
        os.makedirs(folder, exist_ok=True)

    def close(self, complete: bool) -> None:
        import json

        if self._f is None:
            return
        if complete:
            self._f.write(json.dumps({"complete": True, "files": len(self._claimed)}) + "\n")
        self._f.close()
        self._f = None


def describe_overwrite(manifest_path: str, roots: Sequence[str]) -> str:
    """What ``overwrite=True`` would remove in an export folder (for forms and
    messages): the count of files an earlier samrs export listed, or that
    nothing will be removed."""
    files, _ = ExportManifest(manifest_path, roots, "").previous()
    present = [p for p in files if os.path.lexists(p)]
    if not present:
        return "nothing is removed (no earlier samrs export here); other files are kept"
    return ("removes the %d files an earlier samrs export wrote (listed in %s); other files "
            "are kept" % (len(present), os.path.basename(manifest_path)))


def prepare_export_target(manifest: ExportManifest, contents: Sequence[str], overwrite: bool,
                          what: str) -> None:
    """Refuses to write over existing files unless ``overwrite``; with
    ``overwrite`` removes what an earlier export listed in its manifest, and
    only that. Then starts this export's manifest.

    Args:
        manifest: this export's manifest (at the path the earlier one used)
        contents: the existing files and folders the export may write over
            (a folder counts when it is non-empty)
        overwrite: whether an earlier export's files may be replaced
        what: names the target in the error message

    Raises:
        FileExistsError: when something exists there and ``overwrite`` is False
    """
    existing = [p for p in contents if os.path.isfile(p) or os.path.islink(p)
                or (os.path.isdir(p) and os.listdir(p))]
    if existing and not overwrite:
        raise FileExistsError(
            "%s already holds files (%s); pass overwrite=True (CLI: --overwrite) to replace "
            "what an earlier samrs export wrote there (files it did not write are kept), or "
            "choose an empty folder" % (what, ", ".join(existing[:3])))
    if overwrite:
        manifest.hold_previous()
    manifest.open()


#: the lock file of an export folder while an export writes it
LOCK_NAME = ".samrs_export.lock"


class ExportBusy(FileExistsError):
    """Another export is writing the folder (its lock file names it)."""


class ExportLock:
    """An exclusive lock file in an export folder (:data:`LOCK_NAME`) naming
    its holder (pid, host, start): a second export of the folder is refused
    at once, while two at once broke each other's files in 0.2.0. A lock left
    by a process of this host that is gone is taken over.

    Args:
        folder: the export folder (created)
    """

    def __init__(self, folder: str):
        self.path = os.path.join(os.path.abspath(folder), LOCK_NAME)
        self.held = False

    def acquire(self) -> "ExportLock":
        import json
        import socket
        from datetime import datetime

        from fiftyone_samrs.core.processes import process_gone

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.now().replace(microsecond=0).isoformat()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if process_gone(holder.get("host"), holder.get("pid")):
                    os.remove(self.path)
                    continue
                raise ExportBusy(
                    "%s is being written by another export (pid %s on %s, since %s); wait "
                    "for it to end, or remove %s if that process is gone"
                    % (os.path.dirname(self.path), holder.get("pid", "?"),
                       holder.get("host", "?"), holder.get("started", "?"), self.path)) from None
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(me) + "\n")
            self.held = True
            return self
        raise ExportBusy("%s: could not take the export lock" % self.path)

    def _holder(self) -> Dict[str, Any]:
        import json

        try:
            with open(self.path) as f:
                holder = json.loads(f.read() or "{}")
            return holder if isinstance(holder, dict) else {}
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        if self.held:
            self.held = False
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass


# --------------------------------------------------------------------------
# background writers


class BackgroundWriter:
    """A small bounded pool for file writes (PNG encoding and media copies
    release the GIL). At most ``2 * workers`` tasks are pending; the first
    error is raised in the caller's thread."""

    def __init__(self, workers: int = 2):
        self.workers = max(int(workers), 0)
        self._pool = ThreadPoolExecutor(self.workers) if self.workers else None
        self._pending: Deque[Future] = deque()

    def submit(self, fn: Callable, *args) -> None:
        if self._pool is None:
            fn(*args)
            return
        self._pending.append(self._pool.submit(fn, *args))
        while len(self._pending) > 2 * self.workers:
            self._pending.popleft().result()
        while self._pending and self._pending[0].done():
            self._pending.popleft().result()

    def drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def close(self, wait_errors: bool = True) -> None:
        try:
            if wait_errors:
                self.drain()
        finally:
            if self._pool is not None:
                for f in self._pending:
                    f.cancel()
                self._pending.clear()
                self._pool.shutdown(wait=True)


class Timer:
    def __init__(self):
        self.start = time.time()

    @property
    def seconds(self) -> float:
        return time.time() - self.start


# --------------------------------------------------------------------------
# streaming over the database


@dataclass
class SampleDoc:
    """The parts of one sample an export needs, from the raw database document."""

    id: str
    filepath: str
    width: int
    height: int
    labels: Optional[List[dict]]
    prompts: Optional[List[dict]]
    semantic: Optional[dict]
    quads: Optional[List[dict]] = None


def existing_field(sample_collection, name: Optional[str]) -> Optional[str]:
    """``name`` when the collection has that sample field, else None."""
    if name and sample_collection.has_field(name):
        return name
    return None


def iter_sample_docs(
    sample_collection,
    label_field: str,
    prompt_field: Optional[str] = None,
    seg_field: Optional[str] = None,
    progress=True,
    quads_field: Optional[str] = None,
) -> Iterable[SampleDoc]:
    """Streams the samples of a collection as :class:`SampleDoc`\\ s.

    Reads the raw documents through one database cursor (only the needed
    fields are projected), so memory does not grow with the collection and no
    FiftyOne ``Sample`` objects are built. View stages (``filter_labels``,
    ``match``...) apply. Image sizes come from ``metadata``, or from the image
    header when ``metadata`` is missing (not saved).

    Args:
        sample_collection: a dataset or view of images
        label_field: the Detections field with instance masks
        prompt_field: the Detections field of the prompt boxes, or None
        seg_field: the Segmentation field, or None
        progress: True/False/None or a callback, as FiftyOne's ProgressBar
        quads_field: the Polylines field of the rotated boxes, or None
    """
    import fiftyone.core.utils as fou

    if sample_collection.media_type != "image":
        raise ValueError("Only image collections can be exported, found media type %r"
                         % sample_collection.media_type)
    if not sample_collection.has_field(label_field):
        raise ValueError("%s has no field %r; segment it first (samrs segment) or pass "
                         "label_field" % (sample_collection.name, label_field))
    fields = [f for f in (label_field, prompt_field, seg_field, quads_field) if f]
    total = sample_collection.count()
    cursor = iter_raw_docs(sample_collection, fields)
    with fou.ProgressBar(total=total, progress=progress) as pb:
        for doc in pb(cursor):
            filepath = doc["filepath"]
            md = doc.get("metadata") or {}
            width, height = md.get("width"), md.get("height")
            if not width or not height:
                if not os.path.isfile(filepath):
                    raise FormatError(filepath, "image file not found (and no metadata)")
                m = image_metadata(filepath)
                width, height = m.width, m.height
            labels = doc.get(label_field) or {}
            prompts = (doc.get(prompt_field) or {}) if prompt_field else {}
            quads = (doc.get(quads_field) or {}) if quads_field else {}
            yield SampleDoc(
                id=str(doc["_id"]), filepath=filepath, width=int(width), height=int(height),
                labels=labels.get("detections") if labels else None,
                prompts=prompts.get("detections") if prompts else None,
                semantic=doc.get(seg_field) if seg_field else None,
                quads=quads.get("polylines") if quads else None,
            )
