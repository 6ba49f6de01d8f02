"""``samrs export`` and ``samrs load-samrs``."""

import json
import os

import cv2
import numpy as np
import pytest
from test_exporters import _expected_gray, _stem, make_segmented

from fiftyone_samrs.core.classes import SOTA
from fiftyone_samrs.tools import cli


@pytest.fixture
def segmented(fo_dataset, tmp_path):
    truth = make_segmented(fo_dataset, str(tmp_path))
    return fo_dataset, truth, tmp_path


def test_export_samrs_verb_writes_the_layout_and_prints_paths(segmented, capsys):
    ds, truth, tmp = segmented
    out = str(tmp / "SOTA")
    code = cli.main(["export", ds.name, "--format", "samrs", "--export-dir", out,
                     "--subset", "SOTA", "--split-ratio", "0.5", "--pickles", "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0
    assert "samrs export: 5 images (3 with a label)" in text
    assert out in text and os.path.join(out, "annotations.json") in text
    assert "splits: train" in text
    for name in ("images", "gray", "color", "pickles", "annotations.json", "classes.txt",
                 "palette.json", "train.txt", "val.txt", "valid.txt", "rbbtxts", "README.md",
                 "stats.json", "splits.json", "annotations_train.json"):
        assert os.path.exists(os.path.join(out, name)), name
    for p, objs in truth.items():
        if objs:
            gray = cv2.imread(os.path.join(out, "gray", _stem(p) + ".png"), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(gray, _expected_gray(objs, *gray.shape))


def test_export_coco_verb_with_symlinks_and_one_based_ids(segmented, capsys):
    ds, truth, tmp = segmented
    out = str(tmp / "coco")
    code = cli.main(["export", ds.name, "--format", "coco", "--export-dir", out,
                     "--subset", "SOTA", "--export-media", "symlink", "--category-id-start",
                     "1", "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0 and "coco export: 5 images" in text
    data = json.load(open(os.path.join(out, "annotations.json")))
    assert data["categories"][0]["id"] == 1
    assert len(data["annotations"]) == sum(len(v) for v in truth.values())
    assert all(os.path.islink(os.path.join(out, "images", im["file_name"]))
               for im in data["images"])


def test_export_coco_and_yolo_verbs_with_their_defaults(segmented, capsys):
    ds, truth, tmp = segmented
    out = str(tmp / "coco")
    assert cli.main(["export", ds.name, "--format", "coco", "--export-dir", out]) == 0
    data = json.load(open(os.path.join(out, "annotations.json")))
    assert data["categories"][0]["id"] == 1  # COCO: ids from 1
    assert all(os.path.isfile(os.path.join(out, "images", im["file_name"]))
               for im in data["images"])  # copied, relative names
    assert os.path.isfile(os.path.join(out, "annotations_train.json"))
    out = str(tmp / "yolo")
    assert cli.main(["export", ds.name, "--format", "yolo", "--export-dir", out]) == 0
    assert "yolo export: 5 images" in capsys.readouterr().out
    labels = sorted(os.listdir(os.path.join(out, "labels", "train")))
    assert labels == sorted(_stem(p) + ".txt" for p in truth)
    for p, objs in truth.items():
        lines = open(os.path.join(out, "labels", "train", _stem(p) + ".txt")).read().splitlines()
        assert [int(ln.split()[0]) for ln in lines] == [SOTA.index(o[0]) for o in objs]


def test_export_verb_errors_are_clear(segmented, capsys):
    ds, truth, tmp = segmented
    out = tmp / "busy"
    out.mkdir()
    (out / "x.txt").write_text("x")
    code = cli.main(["export", ds.name, "--export-dir", str(out), "--subset", "SOTA",
                     "--no-progress"])
    assert code == 1 and "--overwrite" in capsys.readouterr().err
    code = cli.main(["export", ds.name, "--export-dir", str(tmp / "e"), "--classes",
                     "plane,ship", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "P0000.png" in err and "not in the class list" in err
    code = cli.main(["export", ds.name, "--export-dir", str(tmp / "i"), "--classes",
                     "plane,ship", "--unknown", "ignore", "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0 and "unknown class" in text
    assert cli.main(["export", "no-such-dataset-xyz", "--export-dir", str(tmp / "n")]) == 1
    assert "no FiftyOne dataset" in capsys.readouterr().err


def test_load_samrs_verb_brings_an_export_back(segmented, capsys):
    import fiftyone as fo

    ds, truth, tmp = segmented
    out = str(tmp / "SOTA")
    assert cli.main(["export", ds.name, "--export-dir", out, "--no-progress"]) == 0
    capsys.readouterr()
    name = "samrs-cli-load-" + os.urandom(4).hex()
    try:
        code = cli.main(["load-samrs", out, "--name", name, "--no-progress"])
        text = capsys.readouterr().out
        n_obj = sum(len(v) for v in truth.values())
        assert code == 0
        assert "loaded 5 images, %d instances, %d classes" % (n_obj, len(SOTA)) in text
        back = fo.load_dataset(name)
        assert back.count("sam.detections") == n_obj
        assert back.mask_targets["sam_seg"][0] == SOTA[0]
        assert cli.main(["load-samrs", out, "--name", name]) == 1
        assert "exists" in capsys.readouterr().err
    finally:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)
