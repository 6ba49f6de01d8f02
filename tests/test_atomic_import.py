"""A killed import (issue 11).

0.1.0: SIGKILL during ``samrs import`` left a persistent dataset with 1,000
of 2,500 samples and nothing marking it incomplete. Now a new dataset says
``info["samrs"]["import_complete"] = False`` from before its first sample
until its last, and the next import under that name says so and offers
``resume=True`` (the rest is imported) or ``overwrite=True``.
"""

import os
import subprocess
import sys
import uuid

import fiftyone as fo
import pytest

from fiftyone_samrs.importing.importers import load_dota
from fiftyone_samrs.testing import synthetic

_KILLED = """
import os, sys
from fiftyone_samrs.importing import importers
real = importers.insert_sample_docs
calls = [0]
def dying(dataset, docs, probe=None):
    real(dataset, docs, probe)
    calls[0] += 1
    if calls[0] == 2:
        os.kill(os.getpid(), 9)  # SIGKILL: no cleanup code runs
importers.insert_sample_docs = dying
importers.load_dota(sys.argv[1], name=sys.argv[2], version="1.0", batch_size=3,
                    progress=False, **eval(sys.argv[3]))
"""


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("atomic")
    return synthetic.make_dota_tree(root / "D", n_images=10, n_objects=4, size=(300, 200))


def _kill_during_import(root, name, **kwargs):
    proc = subprocess.run([sys.executable, "-c", _KILLED, root, name, repr(kwargs)],
                          env=dict(os.environ), capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-3000:]


def _summary(ds):
    return sorted(zip([os.path.basename(p) for p in ds.values("filepath")],
                      ds.values("hbb.detections.label"), ds.values("obb.polylines.points")))


def test_killed_import_is_marked_then_resumed_or_replaced(tree, tmp_path):
    name = "samrs-test-atomic-%s" % uuid.uuid4().hex[:8]
    kw = dict(tile=True, tile_size=256, gap=56, tile_dir=str(tmp_path / "tiles"))
    try:
        _kill_during_import(tree["root"], name, **kw)
        assert fo.dataset_exists(name)
        ds = fo.load_dataset(name)
        assert len(ds) == 6  # two batches of 3 made it
        assert ds.info["samrs"]["import_complete"] is False
        ds.clone(name + "-2", persistent=True)  # a second unfinished one, for overwrite
        with pytest.raises(ValueError) as e:
            load_dota(tree["root"], name=name, version="1.0", progress=False, **kw)
        msg = str(e.value)
        assert "did not finish" in msg and "resume=True" in msg and "overwrite=True" in msg
        assert "6 samples" in msg
        with pytest.raises(ValueError, match="other settings"):
            load_dota(tree["root"], name=name, version="1.0", progress=False, resume=True,
                      **dict(kw, gap=50))
        ds = load_dota(tree["root"], name=name, version="1.0", progress=False, resume=True,
                       **kw)
        ref = load_dota(tree["root"], name=name + "-ref", version="1.0", progress=False,
                        persistent=False, **dict(kw, tile_dir=str(tmp_path / "ref-tiles")))
        assert ds.info["samrs"]["import_complete"] is True
        assert _summary(ds) == _summary(ref) and len(ds) > 6
        rep = ds.info["samrs"]["import_report"]
        assert (rep["images"], rep["objects"]) == (len(ref), ref.count("hbb.detections"))
        # overwrite replaces an unfinished one
        ds2 = load_dota(tree["root"], name=name + "-2", version="1.0", progress=False,
                        overwrite=True, **kw)
        assert ds2.info["samrs"]["import_complete"] is True and len(ds2) == len(ref)
    finally:
        for n in (name, name + "-2", name + "-ref"):
            if fo.dataset_exists(n):
                fo.delete_dataset(n)


def test_resuming_a_finished_import_imports_nothing_more(tree, tmp_path):
    """A rerun of the resume command after the import finished (the fault
    campaign's kill that came too late) said the dataset exists."""
    name = "samrs-test-atomic-%s" % uuid.uuid4().hex[:8]
    try:
        ds = load_dota(tree["root"], name=name, version="1.0", progress=False)
        before = _summary(ds)
        again = load_dota(tree["root"], name=name, version="1.0", progress=False, resume=True,
                          tile=True, tile_size=256, gap=56, tile_dir=str(tmp_path / "t"))
        assert again.name == name and _summary(again) == before
        assert again.info["samrs"]["import_complete"] is True
        assert not (tmp_path / "t").exists()
    finally:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)
