"""Which split each exported image goes to, and the split files.

Splits follow the data: a sample's ``split`` field (set by the importers
from the source's own split folders or lists) decides, normalised to
``train`` / ``val`` / ``test`` (:func:`normalize_split`). ``split_ratio``
applies only to samples without a split: it assigns whole *groups* to
train or val, a group being every tile of one source image
(``tile_source``), or the image itself when it is not a tile, so no source
image has pixels in two splits. Without a ratio, samples without a split go
to ``train`` (and the summary says how many).

The split lists (``train.txt``, ``valid.txt`` = ``val.txt``, ``test.txt``)
name the *labelled* images of each split (those with at least one exported
instance): the SAMRS release's trainer reads them with its label PNGs, and an
image without objects would give a loss over ignore pixels only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

#: the splits of an export, in the order files and summaries list them
SPLITS = ("train", "val", "test")

#: the split-list files of each split (the release reads ``valid.txt``,
#: everyone else ``val.txt``; both are written, with the same lines)
SPLIT_LISTS = {"train": ("train.txt",), "val": ("valid.txt", "val.txt"),
               "test": ("test.txt",)}

#: source split names -> export split
_ALIASES = {
    "train": "train", "training": "train", "trainval": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}


def normalize_split(value: Optional[str]) -> Optional[str]:
    """``"validation"`` -> ``"val"``, ``"trainval"`` -> ``"train"`` ...;
    None for no split.

    Raises:
        ValueError: for a split name that is none of :data:`SPLITS` or their
            usual spellings
    """
    if value is None or value == "":
        return None
    key = str(value).strip().lower()
    if key not in _ALIASES:
        raise ValueError("sample split %r is not one of train, val, test (or trainval, valid, "
                         "validation, testing)" % value)
    return _ALIASES[key]


@dataclass
class SplitPlan:
    """The split of every sample of an export.

    Attributes:
        by_id: sample id -> split
        from_field: samples whose split came from their ``split`` field
        from_ratio: samples assigned by ``split_ratio``
        defaulted: samples without a split (and no ratio) put in ``train``
    """

    by_id: Dict[str, str] = field(default_factory=dict)
    by_path: Dict[str, str] = field(default_factory=dict)
    from_field: int = 0
    from_ratio: int = 0
    defaulted: int = 0

    def of(self, sample_id: Optional[str], filepath: str) -> str:
        """The split of a sample (by id; by filepath on FiftyOne's export route)."""
        if sample_id is not None and sample_id in self.by_id:
            return self.by_id[sample_id]
        return self.by_path.get(filepath, "train")

    def describe(self) -> str:
        parts = ["%d images from the samples' split field" % self.from_field]
        if self.from_ratio:
            parts.append("%d by split_ratio (whole source images)" % self.from_ratio)
        if self.defaulted:
            parts.append("%d without a split put in train (pass split_ratio to hold some "
                         "out for validation)" % self.defaulted)
        return "; ".join(parts)


def plan_splits(sample_collection, split_ratio: Optional[float] = None,
                seed: int = 0) -> SplitPlan:
    """The split of every sample of a collection (see the module doc).

    Args:
        sample_collection: the exported dataset or view
        split_ratio: fraction of the *groups* without a split that go to
            train (the rest to val), or None
        seed: the seed of that assignment

    Raises:
        ValueError: for a bad ``split_ratio`` or an unknown split name
    """
    if split_ratio is not None and not 0.0 <= float(split_ratio) <= 1.0:
        raise ValueError("split_ratio must be within [0, 1], got %r" % split_ratio)
    fields = ["id", "filepath"] + [f for f in ("split", "tile_source")
                                   if sample_collection.has_field(f)]
    values = dict(zip(fields, sample_collection.values(fields)))
    n = len(values["id"])
    splits = values.get("split") or [None] * n
    groups = values.get("tile_source") or [None] * n
    plan = SplitPlan()
    unsplit: List[Tuple[str, str]] = []
    for sid, path, split, group in zip(values["id"], values["filepath"], splits, groups):
        name = normalize_split(split)
        if name is not None:
            plan.by_id[sid] = name
            plan.from_field += 1
        else:
            unsplit.append((sid, group or path))
    _assign_unsplit(plan, unsplit, split_ratio, seed)
    plan.by_path = {p: plan.by_id[i] for i, p in zip(values["id"], values["filepath"])}
    return plan


def _assign_unsplit(plan: SplitPlan, unsplit: Sequence[Tuple[str, str]],
                    split_ratio: Optional[float], seed: int) -> None:
    if split_ratio is None:
        for sid, _ in unsplit:
            plan.by_id[sid] = "train"
        plan.defaulted = len(unsplit)
        return
    train = set(train_groups(sorted({g for _, g in unsplit}), float(split_ratio), seed))
    for sid, group in unsplit:
        plan.by_id[sid] = "train" if group in train else "val"
    plan.from_ratio = len(unsplit)


def train_groups(groups: Sequence[str], ratio: float, seed: int = 0) -> List[str]:
    """Deterministic choice of ``round(ratio * n)`` groups for train: sorts,
    shuffles with ``seed``, takes the first ones. The same groups and seed
    always give the same choice, whatever their order."""
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    return sorted(order[:int(round(ratio * len(order)))])


@dataclass
class SplitCounts:
    """Images, labelled images and instances of one split."""

    images: int = 0
    labeled_images: int = 0
    instances: int = 0
    stems: List[str] = field(default_factory=list)

    def add(self, stem: str, instances: int) -> None:
        self.images += 1
        self.instances += instances
        if instances:
            self.labeled_images += 1
            self.stems.append(stem)

    def to_dict(self) -> Dict[str, int]:
        return {"images": self.images, "labeled_images": self.labeled_images,
                "instances": self.instances}


__all__ = ["SPLITS", "SPLIT_LISTS", "SplitPlan", "SplitCounts", "normalize_split",
           "plan_splits", "train_groups"]
