"""Test setup: an isolated FiftyOne database, dropped at the end of the run.

The database name is set before anything imports fiftyone. With
``FIFTYONE_DATABASE_URI`` set, the tests use that MongoDB with their own
database name; otherwise FiftyOne's embedded mongod.

What FiftyOne writes under its default dataset dir (Run SAM's PNGs, tiles,
previews) goes to a temporary folder, removed at the end too.

The database is dropped however the run ends: passed, failed, errored,
interrupted (Ctrl-C) or terminated (SIGTERM/SIGHUP, e.g. by ``timeout`` or a
CI runner cancelling the job, are turned into an interruption so that pytest
unwinds its fixtures); ``tests/test_foundation.py`` checks it.
"""

import os
import shutil
import signal
import tempfile
import uuid

os.environ["FIFTYONE_DATABASE_NAME"] = "samrs-test-%s" % uuid.uuid4().hex[:8]
_DATASET_DIR = None
if "FIFTYONE_DEFAULT_DATASET_DIR" not in os.environ:
    _DATASET_DIR = tempfile.mkdtemp(prefix="samrs-test-datasets-")
    os.environ["FIFTYONE_DEFAULT_DATASET_DIR"] = _DATASET_DIR
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
# the App forms write only under SAMRS_APP_ROOT; the tests' folders are in the temp dir
os.environ.setdefault("SAMRS_APP_ROOT", __import__("tempfile").gettempdir())

import pytest  # noqa: E402


def _interrupt(signum, frame):
    raise KeyboardInterrupt("terminated by signal %d" % signum)


def pytest_configure(config):
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _interrupt)
        except (ValueError, OSError):  # not the main thread / not on this platform
            pass


def drop_test_database() -> None:
    """Drops this run's database (only it: its name is this run's own)."""
    import sys

    if "fiftyone" not in sys.modules:
        return
    import fiftyone.core.odm as foo

    name = os.environ["FIFTYONE_DATABASE_NAME"]
    assert name.startswith("samrs-test-"), name
    for attempt in range(3):  # a shared mongod may be restarting under a loaded machine
        try:
            foo.get_db_client().drop_database(name)
            return
        except Exception:
            if attempt == 2:
                raise


@pytest.fixture(scope="session", autouse=True)
def _drop_test_database():
    try:
        yield
    finally:
        try:
            drop_test_database()
        finally:
            if _DATASET_DIR:
                shutil.rmtree(_DATASET_DIR, ignore_errors=True)


@pytest.fixture
def fo_dataset():
    """A fresh, uniquely named FiftyOne dataset, deleted afterwards."""
    import fiftyone as fo

    dataset = fo.Dataset("samrs-test-" + uuid.uuid4().hex[:8])
    yield dataset
    if not dataset.deleted:
        dataset.delete()
