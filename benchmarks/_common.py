"""Set-up shared by the benchmarks.

Importing this module (before FiftyOne) gives the benchmark its own FiftyOne
database (``samrs-bench-<random>``) unless ``FIFTYONE_DATABASE_NAME`` is set,
and puts the repository first on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import sys
import uuid

#: whether the database is this run's own (dropped at the end)
OWN_DB = "FIFTYONE_DATABASE_NAME" not in os.environ
os.environ.setdefault("FIFTYONE_DATABASE_NAME", "samrs-bench-%s" % uuid.uuid4().hex[:8])
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def checkout(ref: str, dest: str, paths=("fiftyone_samrs",)) -> str:
    """``paths`` of the repository at git ``ref``, unpacked under ``dest``
    (the package of an earlier version, to time it beside this tree)."""
    import subprocess

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.makedirs(dest, exist_ok=True)
    archive = subprocess.run(["git", "-C", repo, "archive", ref, *paths],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    return dest


def rate(n: float, seconds: float) -> float:
    """``n`` per second (inf for a zero duration)."""
    return n / seconds if seconds > 0 else float("inf")


def drop_own_database() -> None:
    """Drops the run's own database (nothing when ``FIFTYONE_DATABASE_NAME`` was given)."""
    if OWN_DB:
        import fiftyone.core.odm as foo

        foo.get_db_client().drop_database(os.environ["FIFTYONE_DATABASE_NAME"])


def write_results(results: dict, path: str) -> None:
    """Writes ``results`` as JSON to ``path`` and says so."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    print("written %s" % path)
