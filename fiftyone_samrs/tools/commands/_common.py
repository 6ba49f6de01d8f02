"""Pieces shared by the ``samrs`` verbs: the dataset argument, ``--view-tag``,
class lists and error messages."""

from __future__ import annotations

import sys
from typing import List, Optional


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
