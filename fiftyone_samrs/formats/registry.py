"""One entry per source format: what the SDK, the CLI and the App know of it.

Each :class:`FormatSpec` names the format's scanner (its ``scan`` function),
its own scan options, its split names, its tiling defaults and the SAMRS
class subset its labels default to. :func:`fiftyone_samrs.importing.importers.load_format`
(and so every ``load_*``), the FiftyOne importer classes, ``samrs import`` /
``samrs tile`` and the App's Import form all read these entries, so adding a
format means a parser module and an entry here.

No FiftyOne import here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

from fiftyone_samrs.core.records import ImageRecord


@dataclass(frozen=True)
class Option:
    """A format-specific scan option (a keyword of the format's ``scan``).

    Attributes:
        name: the keyword
        label: its name in the App's form
        default: its default
        help: one line for the CLI and the App
        choices: the values allowed
    """

    name: str
    label: str
    default: Any
    help: str
    choices: Tuple[Any, ...]


@dataclass(frozen=True)
class Tiling:
    """Tiling defaults: window size, overlap and keep threshold (see
    :func:`fiftyone_samrs.importing.tiling.tile_images`)."""

    size: int
    gap: int
    keep_thresh: float


@dataclass(frozen=True)
class FormatSpec:
    """What is known of one source format.

    Attributes:
        name: the key (``"dota"``), as in ``samrs import dota``
        title: the human name
        class_prefix: names its FiftyOne classes (``DOTA`` ->
            ``fsr.types.DOTADataset``, ``DOTADatasetImporter``)
        module: the parser module under :mod:`fiftyone_samrs.formats`
        subset: the SAMRS class subset its labels default to
        splits: the names ``split=`` accepts
        tiling: the tiling defaults
        options: its own scan options
        layout: one line on the expected folder layout
        quad_sources: the record ``source`` names (prefixes) of this format
            whose images have rotated boxes: their samples get an ``obb``
            field, empty when the image has no object
    """

    name: str
    title: str
    class_prefix: str
    module: str
    subset: str
    splits: Tuple[str, ...]
    tiling: Tiling
    layout: str
    options: Tuple[Option, ...] = field(default_factory=tuple)
    quad_sources: Tuple[str, ...] = ()

    @property
    def scan(self) -> Callable[..., Iterator[ImageRecord]]:
        """The format's ``scan(dataset_dir, *, split, unlabeled, report, **options)``."""
        return importlib.import_module("fiftyone_samrs.formats." + self.module).scan

    def option_defaults(self) -> Dict[str, Any]:
        return {o.name: o.default for o in self.options}

    def check_options(self, options: Dict[str, Any]) -> Dict[str, Any]:
        """The format's scan options with defaults filled in.

        Raises:
            ValueError: for an option the format does not have, or a value not
                among its choices
        """
        known = {o.name: o for o in self.options}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError("%s has no option %s (its options: %s)"
                             % (self.title, ", ".join(repr(u) for u in unknown),
                                ", ".join(known) or "none"))
        out = self.option_defaults()
        for key, value in options.items():
            choices = known[key].choices
            if value not in choices and str(value) in choices:
                value = str(value)  # -k version=1.0 reads as the float 1.0
            if value not in choices:
                raise ValueError("%s option %s=%r: use one of %s"
                                 % (self.title, key, value, ", ".join(map(repr, choices))))
            out[key] = value
        return out

    def check_split(self, split: Optional[str]) -> Optional[str]:
        """``split`` checked against :attr:`splits` (None passes).

        Raises:
            ValueError: for a split the format does not have
        """
        if split is not None and split not in self.splits:
            raise ValueError("%s has no split %r; use one of %s"
                             % (self.title, split, ", ".join(self.splits)))
        return split


#: SAMRS's split settings (BboxToolkit's, DOTA's usual ones): SAMRS cut DOTA and
#: FAIR1M alike into 1024 px tiles (the release's ``dotav2_1024`` and
#: ``fair1m_1024`` folders)
DOTA_TILING = Tiling(size=1024, gap=200, keep_thresh=0.7)

FORMATS: Dict[str, FormatSpec] = {
    spec.name: spec
    for spec in (
        FormatSpec(
            name="dota", title="DOTA (v1.0 / v1.5 / v2.0)", class_prefix="DOTA", module="dota", subset="SOTA",
            splits=("train", "val", "test"), tiling=DOTA_TILING,
            layout="images/ + labelTxt/ (or train/, val/, test/ holding them)",
            options=(
                Option("version", "DOTA version", None, "1.0, 1.5 or 2.0 (None: from the label folder name, "
                       "else guessed from the classes and coordinates)",
                       choices=(None, "1.0", "1.5", "2.0")),
                Option("keep_unknown", "Keep unknown classes", False, "keep objects of classes outside the version's "
                       "list (counted) instead of failing", choices=(False, True)),
            ), quad_sources=("DOTA",)),
        FormatSpec(
            name="dior", title="DIOR / DIOR-R", class_prefix="DIOR", module="dior", subset="SIOR",
            splits=("train", "val", "test", "trainval"), tiling=DOTA_TILING,
            layout="JPEGImages-*/ + Annotations/ (+ ImageSets/Main/)", quad_sources=("DIOR-R",)),
        FormatSpec(
            name="fair1m", title="FAIR1M (1.0 / 2.0)", class_prefix="FAIR1M", module="fair1m", subset="FAST",
            splits=("train", "val", "test"), tiling=DOTA_TILING,
            layout="train/part*/, validation/ (or images/ + labelXml/)", quad_sources=("FAIR1M",)),
        FormatSpec(
            name="hrsc", title="HRSC2016", class_prefix="HRSC", module="hrsc", subset="HRSC",
            splits=("trainval", "train", "val", "test"), tiling=DOTA_TILING,
            layout="FullDataSet/ (AllImages/, Annotations/, Segmentations/) + ImageSets/",
            options=(
                Option("with_masks", "Import GT masks", True, "read the ships' GT masks from the colour PNGs",
                       choices=(True, False)),
            ), quad_sources=("HRSC",)),
    )
}


def quad_sources() -> Tuple[str, ...]:
    """The record source names (prefixes) whose images have rotated boxes."""
    return tuple(p for spec in FORMATS.values() for p in spec.quad_sources)


def get_format(name: str) -> FormatSpec:
    """The entry of a format.

    Raises:
        ValueError: naming the known formats
    """
    key = str(name).strip().lower()
    if key not in FORMATS:
        raise ValueError("unknown format %r; use one of %s" % (name, ", ".join(FORMATS)))
    return FORMATS[key]
