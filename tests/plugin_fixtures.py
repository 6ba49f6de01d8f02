"""Fixtures shared by the plugin tests: the plugin made discoverable by
FiftyOne, and the tiny random SAM checkpoint.

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
