"""Pieces shared by the ``samrs`` verbs: the dataset argument, ``--view-tag``,
class lists and error messages."""

from __future__ import annotations

import argparse
import math
import sys
from typing import List, Optional


def fraction(text: str) -> float:
    """An argparse type: a finite number within [0, 1] (an IoU threshold)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number within [0, 1], got %r" % text)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("expected a number within [0, 1], got %r" % text)
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a whole number >= 1, got %r" % text)
    if value < 1:
        raise argparse.ArgumentTypeError("expected a whole number >= 1, got %r" % text)
    return value


def folder(text: str) -> str:
    """An argparse type: a non-empty folder path (``""`` would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder, got an empty path (it would "
                                         "write into the current folder)")
    return text


def load_dataset(name: str):
    """The FiftyOne dataset ``name``, or None after printing an error."""
    import fiftyone as fo

    if not fo.dataset_exists(name):
        print("error: no FiftyOne dataset named %r (fiftyone datasets list)" % name,
              file=sys.stderr)
        return None
    return fo.load_dataset(name)


def tagged_view(dataset, tags: Optional[List[str]]):
    """The samples with any of ``tags`` (``--view-tag``), or the whole dataset."""
    return dataset.match_tags(tags) if tags else dataset


def add_view_tag_argument(parser) -> None:
    """``--view-tag TAG`` (repeatable), read with :func:`tagged_view`."""
    parser.add_argument("--view-tag", action="append", default=None, metavar="TAG",
                        help="only samples with this tag (repeatable: any of them)")


def parse_classes(text: Optional[str]):
    """A subset name (``SOTA``) or a comma-separated class list."""
    if text is None:
        return None
    if "," in text:
        return [c.strip() for c in text.split(",") if c.strip()]
    return text


def fail(error) -> int:
    """Prints ``error: <error>`` to stderr; returns the exit code 1."""
    print("error: %s" % error, file=sys.stderr)
    return 1
