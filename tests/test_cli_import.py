"""``samrs import`` and ``samrs tile`` through ``fiftyone_samrs.tools.cli.main``."""

import os
import uuid

import fiftyone as fo
import pytest

from fiftyone_samrs.core.text import plural
from fiftyone_samrs.tools.cli import main


@pytest.fixture
def names():
    made = []

    def make():
        name = "samrs-test-cli-%s" % uuid.uuid4().hex[:8]
        made.append(name)
        return name

    yield make
    for name in made:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)


def _write(path, text):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "w") as f:
        f.write(text)


def _png(path, width, height):
    import cv2
    import numpy as np

    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    cv2.imwrite(str(path), np.full((height, width, 3), 90, np.uint8))


@pytest.fixture
def dota_root(tmp_path):
    root = tmp_path / "DOTA"
    _png(root / "images" / "P0001.png", 200, 100)
    _png(root / "images" / "P0002.png", 60, 40)
    _png(root / "images" / "P0003.png", 30, 30)
    _write(root / "labelTxt" / "P0001.txt",
           "imagesource:GoogleEarth\ngsd:0.5\n"
           "10 10 50 10 50 30 10 30 plane 0\n"
           "60 20 90 20 90 60 60 60 small-vehicle 1\n"
           "7 7 7 7 7 7 7 7 ship 0\n")
    _write(root / "labelTxt" / "P0002.txt", "1 1 20 1 20 20 1 20 harbor\n")
    _write(root / "labelTxt" / "P0004.txt", "1 1 20 1 20 20 1 20 harbor\n")
    return str(root)


def test_import_dota_prints_summary(dota_root, names, capsys):
    name = names()
    assert main(["import", "dota", dota_root, "--name", name, "-q", "-k", "version=1.0"]) == 0
    out = capsys.readouterr().out
    assert "into dataset %r" % name in out
    assert "2 images, 4 objects" in out
    assert "skipped: 1 image without labels, 1 label without image" in out
    assert "warnings: 1 degenerate object" in out
    assert "P0003.png" in out  # the messages name the files
    ds = fo.load_dataset(name)
    assert len(ds) == 2 and ds.count("hbb.detections") == 4 and ds.persistent
    assert ds.info["samrs"]["source_dir"] == dota_root


def test_import_existing_name_needs_overwrite(dota_root, names, capsys):
    name = names()
    assert main(["import", "dota", dota_root, "--name", name, "-q"]) == 0
    capsys.readouterr()
    assert main(["import", "dota", dota_root, "--name", name, "-q"]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err
    assert main(["import", "dota", dota_root, "--name", name, "-q", "--overwrite"]) == 0
    assert len(fo.load_dataset(name)) == 2


def test_import_errors_name_the_file(tmp_path, dota_root, names, capsys):
    _write(os.path.join(dota_root, "labelTxt", "P0002.txt"), "1 1 20 1 20 20 harbor\n")
    name = names()
    assert main(["import", "dota", dota_root, "--name", name, "-q"]) == 1
    err = capsys.readouterr().err
    assert "P0002.txt:1" in err
    assert not fo.dataset_exists(name)
    assert main(["import", "dota", str(tmp_path / "missing"), "--name", names(), "-q"]) == 1
    assert "missing" in capsys.readouterr().err


def test_import_hrsc_split(tmp_path, names, capsys):
    from fiftyone_samrs.testing import synthetic
    gt = synthetic.make_hrsc_tree(str(tmp_path / "HRSC"), n_images=3, n_objects=2,
                                  size=(160, 120))
    name = names()
    assert main(["import", "hrsc", gt["root"], "--name", name, "--split", "test", "-q"]) == 0
    out = capsys.readouterr().out
    n_test = sum(1 for img in gt["images"] if img["split"] == "test")
    assert "%s, %s" % (plural(n_test, "image"), plural(2 * n_test, "object")) in out
    ds = fo.load_dataset(name)
    assert ds.distinct("split") == ["test"] and ds.count("gt_masks.detections") == 2 * n_test


def test_import_dota_tiled(tmp_path, names, capsys):
    from fiftyone_samrs.testing import synthetic
    gt = synthetic.make_dota_tree(str(tmp_path / "D"), n_images=1, n_objects=8,
                                  size=(400, 300), gt_masks=False)
    name = names()
    tile_dir = str(tmp_path / "tiles")
    assert main(["import", "dota", gt["root"], "--name", name, "-q", "--tile", "--tile-dir",
                 tile_dir, "--size", "256", "--gap", "56", "--keep-thresh", "0.5"]) == 0
    out = capsys.readouterr().out
    ds = fo.load_dataset(name)
    assert "%d images" % len(ds) in out
    assert "tiles of 1 source image with 8 objects" in out
    assert set(ds.distinct("tile_source")) == {gt["images"][0]["filepath"]}
    assert all(os.path.dirname(p) == tile_dir for p in ds.values("filepath"))


def test_tile_verb_writes_an_importable_tree(tmp_path, names, capsys):
    from fiftyone_samrs.importing import tiling
    from fiftyone_samrs.testing import synthetic
    gt = synthetic.make_dota_tree(str(tmp_path / "D"), n_images=2, n_objects=8,
                                  size=(400, 300), gt_masks=False)
    out_dir = str(tmp_path / "T")
    assert main(["tile", "dota", gt["root"], out_dir, "--size", "256", "--gap", "56"]) == 0
    out = capsys.readouterr().out
    images = sorted(os.listdir(os.path.join(out_dir, "images")))
    labels = sorted(os.listdir(os.path.join(out_dir, "labelTxt")))
    assert images and [os.path.splitext(f)[0] for f in images] == \
        [os.path.splitext(f)[0] for f in labels]
    assert "%d tiles" % len(images) in out and "size 256, gap 56" in out
    assert "2 images, 16 objects" in out  # the source summary
    wins = tiling.windows(400, 300, 256, 56)
    assert len(images) <= 2 * len(wins)
    with open(os.path.join(out_dir, "labelTxt", labels[0])) as f:
        text = f.read()
    assert "tile_source:" in text and "tile_offset:" in text
    # the tile tree imports as DOTA
    name = names()
    assert main(["import", "dota", out_dir, "--name", name, "-q"]) == 0
    n_tile_objects = int(out.split(" tiles, ")[1].split(" objects")[0])
    assert fo.load_dataset(name).count("hbb.detections") == n_tile_objects
    # resumable: a second run writes nothing new and gives the same tiles
    mtimes = {f: os.path.getmtime(os.path.join(out_dir, "images", f)) for f in images}
    assert main(["tile", "dota", gt["root"], out_dir, "--size", "256", "--gap", "56"]) == 0
    assert {f: os.path.getmtime(os.path.join(out_dir, "images", f)) for f in images} == mtimes


def test_help_lists_verbs(capsys):
    with pytest.raises(SystemExit):
        main(["import", "--help"])
    out = capsys.readouterr().out
    assert "dota" in out and "--overwrite" in out and "-k" in out
