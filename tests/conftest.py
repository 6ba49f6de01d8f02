"""Test setup: an isolated FiftyOne database, dropped at the end of the run.

The database name is set before anything imports fiftyone. With
``FIFTYONE_DATABASE_URI`` set, the tests use that MongoDB with their own
database name; otherwise FiftyOne's embedded mongod.
"""

import os
import uuid

os.environ["FIFTYONE_DATABASE_NAME"] = "samrs-test-%s" % uuid.uuid4().hex[:8]
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
# the App forms write only under SAMRS_APP_ROOT; the tests' folders are in the temp dir
os.environ.setdefault("SAMRS_APP_ROOT", __import__("tempfile").gettempdir())

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _drop_test_database():
    yield
    import sys

    if "fiftyone" not in sys.modules:
        return
    import fiftyone.core.odm as foo

    foo.get_db_client().drop_database(os.environ["FIFTYONE_DATABASE_NAME"])


@pytest.fixture
def fo_dataset():
    """A fresh, uniquely named FiftyOne dataset, deleted afterwards."""
    import fiftyone as fo

    dataset = fo.Dataset("samrs-test-" + uuid.uuid4().hex[:8])
    yield dataset
    if not dataset.deleted:
        dataset.delete()
