"""DOTA v1.0 / v1.5 / v2.0: ``images/`` + ``labelTxt/`` trees.

A label file is any number of ``key:value`` header lines (``imagesource``,
``gsd``, ``acquisition dates``...) followed by object lines
``x1 y1 x2 y2 x3 y3 x4 y4 class [difficult]``. A line is a header line only
when it is ``key:value`` with a non-numeric key *and* does not have the shape
of an object line (see :func:`is_header_line`), so a damaged object line is an
error, never swallowed as a header. See ``docs/formats.md``.

No FiftyOne import here.
"""

from __future__ import annotations

import math
import os
import re
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from fiftyone_samrs.core.classes import DOTA_CLASSES, normalize_dota
from fiftyone_samrs.core.records import (
    FormatError,
    ImageRecord,
    ImportReport,
    ObjectRecord,
)
from fiftyone_samrs.formats._common import (
    MAX_ABS_COORD,
    Pair,
    check_scan_args,
    clip_objects,
    paired_records,
    read_text_lines,
    scan_root,
)
from fiftyone_samrs.formats.images import index_files, index_images

#: split folder names looked for under a DOTA root, in scan order
SPLITS = ("train", "val", "test")

_LABEL_DIR_RE = re.compile(r"^labelTxt-v(\d+\.\d+)$", re.IGNORECASE)


def _parse_gsd(value: str, path: str, lineno: int, report: Optional[ImportReport]):
    v = value.strip()
    if not v or v.lower() in ("null", "none"):  # DOTA's own "no gsd"
        return None
    try:
        g = float(v)
    except (ValueError, OverflowError):
        g = None
    if g is None or not math.isfinite(g) or g <= 0:
        if report is not None:
            report.warn("non-numeric gsd", "%s:%d: gsd %r read as None" % (path, lineno, v))
        return None
    return g


def is_header_line(line: str) -> bool:
    """Whether a stripped, non-empty line is a ``key:value`` header line.

    It is one when it holds a ``:``, the key (the text before the first
    ``:``) is not empty and not a number, and the line does not have the
    shape of an object line: 9 or 10 tokens of which at least 4 of the first
    8 are numbers. ``imagesource:GoogleEarth``, ``gsd:0.146`` and
    ``acquisition dates:2017-03-10`` are headers; ``12:5 30 10 30 20 10 20
    10 plane 0`` (a damaged object line) is not.
    """
    key, colon, _ = line.partition(":")
    if not colon or not key.strip() or _is_float(key.strip()):
        return False
    tokens = line.split()
    if len(tokens) in (9, 10) and sum(_is_float(t) for t in tokens[:8]) >= 4:
        return False
    return True


def parse_header_and_objects(
    lines: Iterable[str],
    path: str,
    keep_unknown: bool = False,
    classes: Optional[Sequence[str]] = None,
    report: Optional[ImportReport] = None,
) -> Tuple[dict, List[ObjectRecord]]:
    """Parses the lines of one DOTA label file.

    Args:
        lines: the file's lines (with or without line endings; CRLF is fine)
        path: the file's path, for messages and ``source_id``
        keep_unknown: keep objects whose class is not in ``classes`` (counted
            as ``"unknown class"`` warnings) instead of raising
        classes: the allowed class names, or None to allow any
        report: where warnings (degenerate objects, unknown classes kept,
            non-numeric gsd) are counted

    Returns:
        ``(header, objects)``: header keys are lowercased (``gsd`` is a float
        or None, the others strings); objects are in file order

    Raises:
        FormatError: on a malformed line or an unknown class, naming file and line
    """
    path = os.fspath(path)
    name = os.path.basename(path)
    known = set(classes) if classes is not None else None
    header: Dict[str, object] = {}
    objects: List[ObjectRecord] = []
    in_header = True
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip().lstrip("\ufeff")
        if not line:
            continue
        tokens = line.split()
        if in_header and is_header_line(line):
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in header and report is not None:
                report.warn("duplicate header", "%s:%d: header %r repeated; the last value is "
                            "used" % (path, lineno, key))
            if key == "gsd":
                header[key] = _parse_gsd(value, path, lineno, report)
            else:
                header[key] = value.strip()
            continue
        in_header = False
        n = len(tokens)
        if n not in (9, 10):
            raise FormatError(
                path,
                "expected 8 coordinates, a class and an optional difficult flag "
                "(9 or 10 tokens), got %d tokens: %r" % (n, line[:80]),
                line=lineno,
            )
        try:
            c = [float(t) for t in tokens[:8]]
        except ValueError:
            bad = next(t for t in tokens[:8] if not _is_float(t))
            raise FormatError(path, "bad coordinate %r" % bad, line=lineno) from None
        if not all(math.isfinite(v) for v in c):
            raise FormatError(path, "non-finite coordinate in %r" % line[:80], line=lineno)
        if max(abs(v) for v in c) > MAX_ABS_COORD:
            raise FormatError(path, "coordinate out of range (|value| > %g) in %r"
                              % (MAX_ABS_COORD, line[:80]), line=lineno)
        label = normalize_dota(tokens[8])
        if known is not None and label not in known:
            if not keep_unknown:
                raise FormatError(
                    path,
                    "unknown class %r (not in this DOTA version's %d classes; "
                    "pass keep_unknown=True to keep it)" % (tokens[8], len(known)),
                    line=lineno,
                )
            if report is not None:
                report.warn("unknown class", "%s:%d: kept unknown class %r" % (path, lineno, label))
        difficult = None
        if n == 10:
            try:
                difficult = int(tokens[9])
            except ValueError:
                raise FormatError(
                    path, "bad difficult flag %r (expected 0, 1 or 2)" % tokens[9], line=lineno
                ) from None
            if difficult not in (0, 1, 2):
                raise FormatError(
                    path, "bad difficult flag %d (expected 0, 1 or 2)" % difficult, line=lineno
                )
        xs, ys = c[0::2], c[1::2]
        area2 = abs(
            (xs[0] * ys[1] - xs[1] * ys[0]) + (xs[1] * ys[2] - xs[2] * ys[1])
            + (xs[2] * ys[3] - xs[3] * ys[2]) + (xs[3] * ys[0] - xs[0] * ys[3])
        )
        degenerate = area2 <= 1e-9
        if degenerate and report is not None:
            report.warn(
                "degenerate object",
                "%s:%d: zero-area quadrilateral (%s) kept, flagged degenerate" % (path, lineno, label),
            )
        objects.append(
            ObjectRecord(
                label=label,
                hbox=(min(xs), min(ys), max(xs), max(ys)),
                quad=np.array(c, dtype=np.float64).reshape(4, 2),
                difficult=difficult,
                truncated=None,
                source_id="%s:%d" % (name, lineno),
                degenerate=degenerate,
                hbox_is_rh=False,
            )
        )
    return header, objects


def _is_float(t: str) -> bool:
    try:
        float(t)
        return True
    except ValueError:
        return False


def _read_lines(path: str) -> List[str]:
    return read_text_lines(path, "label file")


def parse_label_file(
    path,
    keep_unknown: bool = False,
    classes: Optional[Sequence[str]] = None,
    report: Optional[ImportReport] = None,
) -> Tuple[dict, List[ObjectRecord]]:
    """Reads and parses one DOTA label file (see :func:`parse_header_and_objects`).

    Raises:
        FormatError: if the file is missing, not text, or malformed
    """
    path = os.fspath(path)
    return parse_header_and_objects(
        _read_lines(path), path, keep_unknown=keep_unknown, classes=classes, report=report
    )


def detect_version(objects_or_labels, float_coords: bool = False) -> str:
    """Best-effort DOTA version from the classes seen (and float coordinates).

    ``airport`` or ``helipad`` -> ``"2.0"``; else ``container-crane`` or float
    coordinates (v1.5 and v2.0 write ``8184.0``) -> ``"1.5"``; else ``"1.0"``.
    A v2.0 tree whose files hold none of the v2.0-only classes is reported as
    v1.5: pass the version explicitly when you know it.

    Args:
        objects_or_labels: :class:`ObjectRecord` s or class names
        float_coords: whether coordinates were written as floats
    """
    return guess_version(objects_or_labels, float_coords)[0]


def guess_version(objects_or_labels, float_coords: bool = False) -> Tuple[str, str]:
    """:func:`detect_version` and the evidence it used, e.g.
    ``("1.5", "float coordinates")``."""
    names = set()
    for item in objects_or_labels:
        names.add(item.label if isinstance(item, ObjectRecord) else normalize_dota(str(item)))
    v2 = sorted(names & {"airport", "helipad"})
    if v2:
        return "2.0", "class %s (v2.0 only)" % " and ".join(v2)
    if "container-crane" in names:
        return "1.5", "class container-crane (v1.5 and v2.0)"
    if float_coords:
        return "1.5", ("float coordinates (as v1.5 and v2.0 write them; v1.0 labels written "
                       "with floats look the same)")
    return "1.0", "integer coordinates and only v1.0 classes"


def _sniff(path: str) -> Tuple[set, bool]:
    """Class names and whether coordinates are floats, from a raw label file."""
    names, floats = set(), False
    for line in _read_lines(path):
        tokens = line.split()
        if len(tokens) in (9, 10) and _is_float(tokens[0]):
            names.add(tokens[8])
            if not floats and any("." in t for t in tokens[:8]):
                floats = True
    return names, floats


def _has_tree(d: str) -> bool:
    return os.path.isdir(os.path.join(d, "images")) or any(
        e.lower().startswith("labeltxt") for e in _listdir(d)
    )


def _listdir(d: str) -> List[str]:
    try:
        return sorted(os.listdir(d))
    except OSError:
        return []


def _split_roots(dataset_dir: str, split: Optional[str]) -> List[Tuple[str, Optional[str]]]:
    dataset_dir = scan_root(dataset_dir, "DOTA")
    if split is not None:
        sub = os.path.join(dataset_dir, split)
        roots = [(sub, split)] if os.path.isdir(sub) else [(dataset_dir, split)]
    elif _has_tree(dataset_dir):
        roots = [(dataset_dir, None)]
    else:
        roots = [(os.path.join(dataset_dir, s), s) for s in SPLITS
                 if _has_tree(os.path.join(dataset_dir, s))]
    if not roots or not any(_has_tree(r) for r, _ in roots):
        raise FormatError(
            dataset_dir,
            "not a DOTA folder: expected images/ and labelTxt/ "
            "(or train/, val/, test/ folders holding them)",
        )
    return roots


def _label_dir(root: str, version: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """The label folder of a split root and the version its name gives."""
    entries = [e for e in _listdir(root) if os.path.isdir(os.path.join(root, e))]
    versioned = {}
    for e in entries:
        m = _LABEL_DIR_RE.match(e)
        if m:
            versioned[m.group(1)] = e
    plain = next((e for e in entries if e.lower() == "labeltxt"), None)
    if version is not None and version in versioned:
        chosen, found_version = versioned[version], version
    elif plain is not None:
        chosen, found_version = plain, None
    elif versioned:
        found_version = max(versioned, key=lambda v: tuple(int(x) for x in v.split(".")))
        chosen = versioned[found_version]
    else:
        return None, None
    d = os.path.join(root, chosen)
    if not index_files(d, ".txt"):
        # DOTA v1.5/v2.0 archives nest e.g. labelTxt-v1.5/DOTA-v1.5_train/*.txt
        subs = [e for e in _listdir(d) if os.path.isdir(os.path.join(d, e))
                and not e.lower().endswith("hbb")]
        if len(subs) == 1:
            d = os.path.join(d, subs[0])
        elif len(subs) > 1:
            raise FormatError(
                d, "several label folders inside (%s); pass the one to use" % ", ".join(subs)
            )
    return d, found_version


def scan(
    dataset_dir,
    version: Optional[str] = None,
    split: Optional[str] = None,
    keep_unknown: bool = False,
    unlabeled: str = "skip",
    report: Optional[ImportReport] = None,
) -> Iterator[ImageRecord]:
    """Yields one :class:`ImageRecord` per labelled image of a DOTA tree.

    Args:
        dataset_dir: a folder with ``images/`` and ``labelTxt/`` (or
            ``labelTxt-v1.5``, ``labelTxt-v2.0``...), or with ``train/``,
            ``val/``, ``test/`` folders holding them
        version: ``"1.0"``, ``"1.5"`` or ``"2.0"``; None takes it from a
            ``labelTxt-v<version>`` folder name, else :func:`detect_version`
            over all label files
        split: scan only ``dataset_dir/<split>`` (or tag ``dataset_dir`` with
            it when there is no such folder); None scans every split folder
        keep_unknown: keep objects of classes outside the version's list
        unlabeled: ``"skip"`` (counted) or ``"keep"`` images without a label file
        report: filled with counts, skips and warnings (one is made if None)

    Yields:
        records sorted by split folder then file stem

    Raises:
        FormatError: on a missing folder, a malformed line or an unknown class
    """
    report = check_scan_args(report, unlabeled)
    if version is not None:
        version = str(version)
        if version not in DOTA_CLASSES:
            raise ValueError("Unknown DOTA version %r; use one of %s" % (version, list(DOTA_CLASSES)))
    plan = []
    named_versions = set()
    for root, sp in _split_roots(dataset_dir, split):
        label_dir, v = _label_dir(root, version)
        if v is not None:
            named_versions.add(v)
        labels = index_files(label_dir, ".txt") if label_dir else {}
        plan.append((root, sp, label_dir, labels))
    if version is not None:
        report.info.update(version=version, version_source="given")
    elif len(named_versions) == 1:
        version = named_versions.pop()
        report.info.update(version=version, version_source="label folder name")
    else:
        names, floats = set(), False
        for _, _, _, labels in plan:
            for p in labels.values():
                n, f = _sniff(p)
                names |= n
                floats = floats or f
        version, evidence = guess_version(names, float_coords=floats)
        report.info.update(version=version, version_source="guessed from " + evidence)
        report.warn("DOTA version guessed",
                    "%s: no version given and no labelTxt-v<version> folder; guessed v%s from "
                    "%s. Pass version='1.0' / '1.5' / '2.0' (CLI: -k version=1.0) if that is "
                    "wrong" % (dataset_dir, version, evidence))
    classes = DOTA_CLASSES[version]
    source = "DOTA-v" + version

    def parse(stem: str, lab: str):
        return parse_label_file(lab, keep_unknown=keep_unknown, classes=classes, report=report)

    for root, sp, label_dir, labels in plan:
        images_dir = os.path.join(root, "images")
        images = index_images(images_dir, report=report)

        def build(p: Pair, sp=sp) -> ImageRecord:
            clip_objects(p.objects, p.width, p.height, p.label or p.image, report)
            gsd = p.header.get("gsd")
            return ImageRecord(
                filepath=p.image,
                width=p.width,
                height=p.height,
                objects=p.objects,
                source=source,
                split=sp,
                gsd=gsd if isinstance(gsd, float) else None,
                imagesource=p.header.get("imagesource") or None,
                label_path=p.label,
            )

        yield from paired_records(
            sorted(set(images) | set(labels)), images, labels, report, unlabeled, parse, build,
            image_hint=".* in %s" % images_dir,
            label_hint=("label file", ".txt%s" % (" in %s" % label_dir if label_dir else "")),
            size_first=True,
        )
