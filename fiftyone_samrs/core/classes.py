"""Class lists of the SAMRS subsets and source datasets, and name normalisation.

The index of a class in a subset list is its pixel value in the SAMRS semantic
PNG (255 = not covered). The orders are the SAMRS release's; see
``shared/docs/FORMATS.md``.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence

#: SOTA: DOTA v2.0 classes in SAMRS order (18)
SOTA: List[str] = [
    "large-vehicle", "swimming-pool", "helicopter", "bridge", "plane", "ship",
    "soccer-ball-field", "basketball-court", "ground-track-field",
    "small-vehicle", "baseball-diamond", "tennis-court", "roundabout",
    "storage-tank", "harbor", "container-crane", "airport", "helipad",
]

#: SIOR: DIOR classes in SAMRS order (20)
SIOR: List[str] = [
    "airplane", "airport", "baseballfield", "basketballcourt", "bridge",
    "chimney", "expressway-service-area", "expressway-toll-station", "dam",
    "golffield", "groundtrackfield", "harbor", "overpass", "ship", "stadium",
    "storagetank", "tenniscourt", "trainstation", "vehicle", "windmill",
]

#: FAST: FAIR1M 2.0 classes in SAMRS order (37)
FAST: List[str] = [
    "A220", "A321", "A330", "A350", "ARJ21", "Baseball-Field",
    "Basketball-Court", "Boeing737", "Boeing747", "Boeing777", "Boeing787",
    "Bridge", "Bus", "C919", "Cargo-Truck", "Dry-Cargo-Ship", "Dump-Truck",
    "Engineering-Ship", "Excavator", "Fishing-Boat", "Football-Field",
    "Intersection", "Liquid-Cargo-Ship", "Motorboat", "other-airplane",
    "other-ship", "other-vehicle", "Passenger-Ship", "Roundabout", "Small-Car",
    "Tennis-Court", "Tractor", "Trailer", "Truck-Tractor", "Tugboat", "Van",
    "Warship",
]

#: HRSC2016 at its first level: every object is a ship
HRSC: List[str] = ["ship"]

#: DOTA classes per version (lowercase, hyphenated)
DOTA_V1_0: List[str] = [
    "plane", "ship", "storage-tank", "baseball-diamond", "tennis-court",
    "basketball-court", "ground-track-field", "harbor", "bridge",
    "large-vehicle", "small-vehicle", "helicopter", "roundabout",
    "soccer-ball-field", "swimming-pool",
]
DOTA_V1_5: List[str] = DOTA_V1_0 + ["container-crane"]
DOTA_V2_0: List[str] = DOTA_V1_5 + ["airport", "helipad"]
DOTA_CLASSES: Dict[str, List[str]] = {
    "1.0": DOTA_V1_0,
    "1.5": DOTA_V1_5,
    "2.0": DOTA_V2_0,
}

#: the named subsets an exporter or painter can be asked for
SUBSETS: Dict[str, List[str]] = {
    "SOTA": SOTA,
    "SIOR": SIOR,
    "FAST": FAST,
    "HRSC": HRSC,
}

IGNORE_INDEX = 255


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.strip().lower())


_SIOR_KEYS = {_key(c): c for c in SIOR}
_FAST_KEYS = {_key(c): c for c in FAST}


def normalize_dota(name: str) -> str:
    """DOTA names are already lowercase and hyphenated; strip and lowercase."""
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def normalize_dior(name: str) -> Optional[str]:
    """Maps a DIOR name (any case, e.g. ``Expressway-Service-area``) to SIOR.

    Returns None when the name is not a DIOR class.
    """
    return _SIOR_KEYS.get(_key(name))


def normalize_fair1m(name: str) -> Optional[str]:
    """Maps a FAIR1M name (``Small Car``, ``small-car``, ``Boeing737``) to FAST.

    Returns None when the name is not a FAIR1M class.
    """
    return _FAST_KEYS.get(_key(name))


def resolve_classes(classes) -> List[str]:
    """Resolves a subset name (``"SOTA"``) or an explicit list to a class list.

    Raises:
        ValueError: if ``classes`` names no known subset or has duplicates
    """
    if isinstance(classes, str):
        try:
            return list(SUBSETS[classes.upper()])
        except KeyError:
            raise ValueError(
                "Unknown class subset %r; use one of %s or a list of names"
                % (classes, ", ".join(SUBSETS))
            ) from None
    classes = list(classes)
    if len(set(classes)) != len(classes):
        raise ValueError("Class list has duplicates: %r" % classes)
    if len(classes) > IGNORE_INDEX:
        raise ValueError("At most 255 classes fit an 8-bit label PNG")
    return classes


def class_index(classes: Sequence[str]) -> Dict[str, int]:
    """Returns ``{name: pixel value}`` for a class list."""
    return {c: i for i, c in enumerate(classes)}


def subset_name(classes: Sequence[str]) -> Optional[str]:
    """The SAMRS subset whose class list (in order) ``classes`` is, or None."""
    return next((name for name, names in SUBSETS.items() if list(names) == list(classes)),
                None)

