"""The evaluation verbs: samrs evaluate / quality / plots (prompt-study: test_study.py)."""

import cv2
import fiftyone as fo
import numpy as np
import pytest

from fiftyone_samrs.core.masks import relative_box
from fiftyone_samrs.tools.cli import main


def _rel(x0, y0, w, h, W, H):
    return relative_box((x0, y0, x0 + w, y0 + h), W, H)


@pytest.fixture
def evaluated_ds(fo_dataset, tmp_path):
    """Two images; ship IoUs 1.0 and 0.5, plane IoU 0.25 (hand-made masks).

    a.png (60x40): gt ship 10x10 at (0,0) / pred same -> 1.0;
                   gt ship 10x10 at (20,20) / pred 10 wide x 5 high at (20,20) -> 0.5
    b.png (60x40): gt plane 20x10 at (30,10) / pred 5 wide x 10 high at (30,10) -> 0.25
    mIoU_I = (1 + 0.5 + 0.25) / 3 = 58.33 %, mIoU_P = (100 + 50 + 50) / (100 + 100 + 200) = 50 %
    """
    W, H = 60, 40
    samples = []
    for name, gts, preds in (
        ("a", [("ship", 0, 0, 10, 10), ("ship", 20, 20, 10, 10)],
              [("ship", 0, 0, 10, 10), ("ship", 20, 20, 10, 5)]),
        ("b", [("plane", 30, 10, 20, 10)], [("plane", 30, 10, 5, 10)]),
    ):
        path = str(tmp_path / ("%s.png" % name))
        cv2.imwrite(path, np.full((H, W, 3), 128, np.uint8))
        s = fo.Sample(filepath=path)
        s["hbb"] = fo.Detections(detections=[
            fo.Detection(label=l, bounding_box=_rel(x, y, w, h, W, H), obj_index=i)
            for i, (l, x, y, w, h) in enumerate(gts)])
        s["gt_masks"] = fo.Detections(detections=[
            fo.Detection(label=l, bounding_box=_rel(x, y, w, h, W, H), mask=np.ones((h, w), bool),
                         obj_index=i) for i, (l, x, y, w, h) in enumerate(gts)])
        s["sam"] = fo.Detections(detections=[
            fo.Detection(label=l, bounding_box=_rel(x, y, w, h, W, H), mask=np.ones((h, w), bool),
                         obj_index=i, confidence=0.9, stability=0.95)
            for i, (l, x, y, w, h) in enumerate(preds)])
        samples.append(s)
    fo_dataset.add_samples(samples)
    return fo_dataset


def _png_ok(path):
    img = cv2.imread(str(path))
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 100
    assert img.std() > 5  # not a blank canvas


def test_evaluate_prints_table_saves_views_and_plots(evaluated_ds, tmp_path, capsys):
    name = evaluated_ds.name
    rc = main(["evaluate", name, "--low-iou", "0.6", "--plots", str(tmp_path / "plots"),
               "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "mIoU_I 58.33, mIoU_P 50.00" in out
    lines = {l.split()[0]: l.split() for l in out.splitlines() if l.split()}
    assert lines["ship"][1:4] == ["2", "75.00", "75.00"]   # (1 + .5) / 2 ; 150 / 200
    assert lines["plane"][1:4] == ["1", "25.00", "25.00"]
    assert lines["ALL"][1:4] == ["3", "58.33", "50.00"]
    # sample a: (1 + .5) / 2 = .75 ; b: .25 -> only b is below 0.6
    assert "saved view low_iou" in out
    ds = fo.load_dataset(name)
    assert ds.load_saved_view("low_iou").values("filepath") == [str(tmp_path / "b.png")]
    assert ds.count_sample_tags() == {"low_iou": 1}
    for f in ("iou_histogram.png", "per_class_miou.png", "iou_vs_size.png"):
        assert ("wrote %s" % (tmp_path / "plots" / f)) in out
        _png_ok(tmp_path / "plots" / f)


def test_quality_then_plots_verb(evaluated_ds, tmp_path, capsys):
    name = evaluated_ds.name
    # the half mask (ratio 0.5, box IoU 0.5) and the quarter mask (0.25, 0.25) vs min_box_iou 0.6
    rc = main(["quality", name, "-t", "min_box_iou=0.6", "min_in_rbox=none", "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "3 instances, 2 suspicious instances in 2 samples" in out
    assert "low_box_iou 2" in out and "min_box_iou=0.6" in out
    assert "saved view suspicious_masks" in out
    assert evaluated_ds.count_sample_tags() == {"suspicious": 2}

    rc = main(["plots", name, "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert rc == 1 and "no evaluation 'eval'" in err
    assert main(["evaluate", name, "--no-views", "--no-progress"]) == 0
    capsys.readouterr()
    rc = main(["plots", name, "--out", str(tmp_path / "p")])
    out = capsys.readouterr().out
    assert rc == 0 and out.count("wrote ") == 3
    _png_ok(tmp_path / "p" / "iou_histogram.png")


def test_bad_input_is_a_clear_error(evaluated_ds, capsys):
    assert main(["evaluate", "samrs-no-such-dataset"]) == 1
    assert "no FiftyOne dataset named 'samrs-no-such-dataset'" in capsys.readouterr().err
    assert main(["evaluate", evaluated_ds.name, "--gt-field", "nope"]) == 1
    assert "'nope' does not exist" in capsys.readouterr().err
    assert main(["evaluate", evaluated_ds.name, "--protocol"]) == 1
    assert "protocol=True needs the 'split' sample field" in capsys.readouterr().err
    assert main(["quality", evaluated_ds.name, "-t", "max_area=2"]) == 1
    assert "unknown quality thresholds: max_area" in capsys.readouterr().err


@pytest.mark.parametrize("argv, expected", [
    (["--low-iou", "nan"], "within [0, 1]"), (["--low-iou", "7"], "within [0, 1]"),
    (["--worst", "-5"], ">= 1")])
def test_evaluate_refuses_out_of_range_thresholds(argv, expected, capsys):
    """0.2.0 accepted --low-iou nan / 7 and --worst -5 (issue 22, item 14)."""
    from fiftyone_samrs.tools.cli import main

    with pytest.raises(SystemExit) as e:
        main(["evaluate", "any-dataset", "--gt-field", "gt_masks"] + argv)
    assert e.value.code == 2 and expected in capsys.readouterr().err


def test_export_refuses_an_empty_export_dir(capsys):
    from fiftyone_samrs.tools.cli import main

    with pytest.raises(SystemExit) as e:
        main(["export", "any-dataset", "--export-dir", ""])
    assert e.value.code == 2 and "current folder" in capsys.readouterr().err


def test_evaluate_plots_into_a_file_is_one_line(evaluated_ds, tmp_path, capsys):
    """Issue 22, item 12: ``--plots`` naming a file was a raw traceback."""
    afile = tmp_path / "plots.txt"
    afile.write_text("mine")
    rc = main(["evaluate", evaluated_ds.name, "--plots", str(afile), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert str(afile) in err and "Traceback" not in err
    assert afile.read_text() == "mine"
