"""The format registry is what the SDK, the CLI and the App read.

Each source format's defaults (tiling, class subset, splits, its own options)
live in one entry; these tests check that the App's Import form, the CLI and
the FiftyOne importer classes show exactly those.
"""

import inspect

import pytest
from plugin_fixtures import plugin  # noqa: F401 - fixture

from fiftyone_samrs.formats.registry import FORMATS, get_format


def test_every_entry_has_a_scanner_and_its_options():
    for name, spec in FORMATS.items():
        params = inspect.signature(spec.scan).parameters
        for key in ("split", "unlabeled", "report"):
            assert key in params, (name, key)
        for o in spec.options:
            assert o.name in params, (name, o.name)
            assert o.default in o.choices
    with pytest.raises(ValueError, match="unknown format 'png'; use one of dota, dior"):
        get_format("png")
    with pytest.raises(ValueError, match="has no option 'with_masks'"):
        get_format("dota").check_options({"with_masks": False})
    with pytest.raises(ValueError, match="has no split 'validation'"):
        get_format("fair1m").check_split("validation")
    assert get_format("dota").check_options({"version": 1.5}) == {"version": "1.5",
                                                                  "keep_unknown": False}


def test_importer_classes_and_types_follow_the_registry():
    import fiftyone_samrs as fsr
    from fiftyone_samrs.importing.importers import IMPORTERS

    for name, spec in FORMATS.items():
        cls = getattr(fsr.types, spec.class_prefix + "Dataset")().get_dataset_importer_cls()
        assert cls is IMPORTERS[name] and cls.fmt == name
        args = inspect.getfullargspec(cls).args  # what FiftyOne passes on
        for key in ["split", "tile", "tile_size", "gap", "keep_thresh"] + [
                o.name for o in spec.options]:
            assert key in args, (name, key)


def test_cli_help_shows_the_registry_defaults(capsys):
    from fiftyone_samrs.tools.cli import main

    with pytest.raises(SystemExit):
        main(["import", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name, spec in FORMATS.items():
        assert "%s %s" % (name, spec.tiling.size) in out
        assert "%s %s" % (name, spec.tiling.keep_thresh) in out
    assert "fair1m: train, val, test" in out  # FAIR1M has splits like the others


def test_app_import_form_defaults_are_the_registry_defaults(plugin):
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionContext

    op = foo.get_operator("@samrs/samrs/import_dataset")
    for name, spec in FORMATS.items():
        props = op.resolve_input(ExecutionContext(request_params={
            "params": {"format": name}})).type.properties
        assert props["tile"].default is False  # as the SDK and the CLI
        assert props["split"].type.values == [""] + list(spec.splits)
        for o in spec.options:
            assert "%s_%s" % (name, o.name) in props
        tiled = op.resolve_input(ExecutionContext(request_params={
            "params": {"format": name, "tile": True}})).type.properties
        assert tiled["tile_size"].default == spec.tiling.size
        assert tiled["gap"].default == spec.tiling.gap
        assert tiled["keep_thresh"].default == spec.tiling.keep_thresh
