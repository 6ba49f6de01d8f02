"""Fixtures shared by the plugin tests: the plugin made discoverable by
FiftyOne, the tiny random SAM checkpoint, and datasets of generated DOTA trees.

Import them into a test module (``from plugin_fixtures import checkpoint,
plugin``); pytest then uses them as that module's own fixtures.
"""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def link_plugin(plugins_dir: Path) -> Path:
    """A FiftyOne plugins dir holding a link to the repository (what ``samrs
    plugin install`` does); returns ``plugins_dir``."""
    os.symlink(REPO, plugins_dir / "samrs", target_is_directory=True)
    return plugins_dir


def plugin_module(name: str):
    """The module ``name`` of the plugin FiftyOne has loaded now (it imports
    it under a synthetic package name that differs between its versions):
    found beside the module of the live ``run_sam`` operator."""
    import sys

    import fiftyone.operators as foo

    operator = foo.get_operator("@samrs/samrs/run_sam")  # loads the plugin
    package = type(operator).__module__.rsplit(".", 1)[0]
    return sys.modules[package + "." + name]


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """FiftyOne sees the plugin through a plugins dir holding a link to the repo."""
    import fiftyone as fo

    from fiftyone_samrs.tools.plugin_install import _clear_plugin_cache

    plugins_dir = link_plugin(tmp_path_factory.mktemp("plugins"))
    previous = fo.config.plugins_dir
    fo.config.plugins_dir = str(plugins_dir)
    _clear_plugin_cache()
    yield plugins_dir
    fo.config.plugins_dir = previous
    _clear_plugin_cache()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The tiny random SAM, saved as a checkpoint file."""
    from fiftyone_samrs.segmenting.sam.tiny import save_tiny_checkpoint

    return save_tiny_checkpoint(str(tmp_path_factory.mktemp("ckpt") / "tiny_sam.pth"))


def generated_dota_dataset(tmp_path: Path, prefix: str, **tree):
    """Yields a dataset loaded from a DOTA tree generated under ``tmp_path``
    (``make_dota_tree(**tree)``), named ``samrs-test-<prefix>-<random>``, and
    deletes it afterwards: the body of a fixture (``yield from ...``)."""
    import uuid

    import fiftyone as fo

    import fiftyone_samrs as fsr
    from fiftyone_samrs.testing.synthetic import make_dota_tree

    make_dota_tree(str(tmp_path / "dota"), **tree)
    name = "samrs-test-%s-%s" % (prefix, uuid.uuid4().hex[:6])
    ds = fsr.load_dota(str(tmp_path / "dota"), name=name, progress=False)
    yield ds
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
