"""``samrs doctor``: checks the installation, each finding with a fix."""

from __future__ import annotations

import argparse
import platform
import sys
import uuid
from typing import Callable, List, Tuple

Check = Tuple[str, bool, str, str]  # name, ok, what was found, fix


def _check_python() -> Check:
    ok = sys.version_info >= (3, 9)
    return ("python", ok, "%s (%s)" % (platform.python_version(), sys.executable),
            "use Python 3.9 or newer")


def _check_torch() -> List[Check]:
    try:
        import torch
    except Exception as e:
        return [("torch", False, "not importable: %s" % e,
                 "pip install 'torch>=2.1' torchvision (the build for your CUDA)")]
    checks = [("torch", True, torch.__version__, "")]
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        checks.append(("cuda", True, "%d device(s): %s" % (torch.cuda.device_count(), names), ""))
    else:
        built = torch.version.cuda
        checks.append((
            "cuda", True,
            "no CUDA device visible (torch built for CUDA %s); SAM will run on the CPU" % built
            if built else "CPU-only torch build; SAM will run on the CPU",
            "for GPU runs install a CUDA build of torch and check `nvidia-smi`",
        ))
    return checks


def _check_fiftyone() -> List[Check]:
    from fiftyone_samrs.tools import db
    try:
        import fiftyone as fo
    except Exception as e:
        return [("fiftyone", False, "not importable: %s" % e, "pip install fiftyone-samrs")]
    checks = [("fiftyone", True, fo.__version__, "")]
    if db.uses_external_database():
        checks.append(("mongod", True, "FIFTYONE_DATABASE_URI is set: external MongoDB", ""))
    else:
        checks.append((
            "mongod", db.has_mongod(), str(db.mongod_path()),
            "python -m fiftyone_samrs.tools.db ensure-mongod   (installs %s --no-deps)"
            % db.FALLBACK_DB_WHEEL,
        ))
    return checks


def _check_database() -> Check:
    try:
        import fiftyone as fo

        name = "samrs-doctor-" + uuid.uuid4().hex[:8]
        dataset = fo.Dataset(name)
        try:
            dataset.add_sample(fo.Sample(filepath="/doctor/probe.png", samrs_probe=1))
            ok = dataset.count() == 1 and dataset.first()["samrs_probe"] == 1
        finally:
            dataset.delete()
        return _database_row(ok)
    except Exception as e:
        return ("database", False, "round trip failed: %s" % e,
                "run `python -m fiftyone_samrs.tools.db ensure-mongod`, or set "
                "FIFTYONE_DATABASE_URI=mongodb://HOST:27017 for a shared MongoDB")


def _database_row(ok: bool) -> Check:
    """Where the database is (address, data folder): an embedded ``mongod``
    that another process started may serve another folder than
    ``FIFTYONE_DATABASE_DIR`` says (FiftyOne attaches to it)."""
    import os

    import fiftyone as fo

    from fiftyone_samrs.fiftyone_io import database_server

    server = database_server()
    kind = "FIFTYONE_DATABASE_URI" if fo.config.database_uri else "embedded mongod"
    found = "round trip on %s at %s, data in %s (database %r)" % (
        kind, server["address"], server["dbpath"] or "?", fo.config.database_name)
    want = None if fo.config.database_uri else fo.config.database_dir
    if want and server["dbpath"] and (os.path.realpath(server["dbpath"])
                                      != os.path.realpath(os.path.expanduser(want))):
        return ("database", False, found + "; FIFTYONE_DATABASE_DIR is %s" % want,
                "another embedded database is running (at %s, serving %s) and FiftyOne "
                "attached to it: stop that process (or its mongod) for %s to be used"
                % (server["address"], server["dbpath"], want))
    return ("database", ok, found, "")


def _check_plugin() -> Check:
    try:
        from fiftyone_samrs.tools.plugin_install import plugin_status
    except ImportError:
        return ("plugin", False, "plugin helpers not installed", "reinstall fiftyone-samrs")
    ok, found, fix = plugin_status()
    return ("plugin", ok, found, fix)


CHECKS: List[Callable] = [_check_python, _check_torch, _check_fiftyone, _check_database,
                          _check_plugin]


def run_checks() -> List[Check]:
    """Runs every check and returns ``(name, ok, found, fix)`` rows."""
    rows: List[Check] = []
    for check in CHECKS:
        out = check()
        rows.extend(out if isinstance(out, list) else [out])
    return rows


def execute(args: argparse.Namespace) -> int:
    rows = run_checks()
    width = max(len(r[0]) for r in rows)
    for name, ok, found, fix in rows:
        print("%s %-*s  %s" % ("ok  " if ok else "FAIL", width, name, found))
        if not ok and fix:
            print("     %s  fix: %s" % (" " * width, fix))
    bad = [r for r in rows if not r[1]]
    print("all checks passed" if not bad else "%d check(s) failed" % len(bad))
    return 1 if bad else 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "doctor", help="check python, torch/CUDA, fiftyone, its database and the plugin"
    )
    parser.set_defaults(func=execute)
