"""DOTA parsing and scanning on hand-written fixture trees (and the real samples)."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fiftyone_samrs.core.classes import DOTA_V1_0
from fiftyone_samrs.core.records import FormatError, ImportReport
from fiftyone_samrs.formats import dota

# ../shared/samples of the checkout, or of any folder above it (worktrees)
SAMPLES = next((d / "shared" / "samples" for d in Path(__file__).resolve().parents
                if (d / "shared" / "samples").is_dir()),
               Path(__file__).resolve().parents[1].parent / "shared" / "samples")


def _write(path: Path, text: str, crlf: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.replace("\n", "\r\n") if crlf else text
    path.write_bytes(data.encode("utf-8"))
    return path


def _image(path: Path, size=(100, 80)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (40, 90, 40)).save(path)
    return path


QUIRKY = """imagesource:GoogleEarth
gsd:null
acquisition dates:2017-03-10 11:05
10 10 30 10 30 20 10 20 plane 0
10.5 40.0 50.5 40.0 50.5 60.25 10.5 60.25 small-vehicle 1
60 10 90 10 90 30 60 30 ship
5 5 5 5 5 5 5 5 storage-tank 2
70 50 70 50 95 70 95 70 bridge 0
"""


def test_parse_quirky_lines_exactly():
    report = ImportReport()
    header, objs = dota.parse_header_and_objects(
        QUIRKY.replace("\n", "\r\n").splitlines(keepends=True), "x/P0001.txt",
        classes=DOTA_V1_0, report=report)
    assert header == {"imagesource": "GoogleEarth", "gsd": None,
                      "acquisition dates": "2017-03-10 11:05"}
    assert [o.label for o in objs] == ["plane", "small-vehicle", "ship", "storage-tank", "bridge"]
    assert objs[0].hbox == (10.0, 10.0, 30.0, 20.0)
    assert objs[0].quad.tolist() == [[10, 10], [30, 10], [30, 20], [10, 20]]
    assert objs[1].hbox == (10.5, 40.0, 50.5, 60.25)
    assert [o.difficult for o in objs] == [0, 1, None, 2, 0]
    assert [o.source_id for o in objs] == ["P0001.txt:%d" % i for i in (4, 5, 6, 7, 8)]
    assert [o.degenerate for o in objs] == [False, False, False, True, True]
    assert all(o.hbox_is_rh is False and o.truncated is None for o in objs)
    assert report.warned["degenerate object"] == 2
    assert "P0001.txt:7" in report.messages[0]


def test_gsd_numeric_and_non_numeric():
    h, _ = dota.parse_header_and_objects(["gsd:0.146\n"], "a.txt")
    assert h["gsd"] == pytest.approx(0.146)
    r = ImportReport()
    h, _ = dota.parse_header_and_objects(["gsd:unknown\n"], "a.txt", report=r)
    assert h["gsd"] is None and r.warned["non-numeric gsd"] == 1
    h, _ = dota.parse_header_and_objects(["gsd:nan\n"], "a.txt", report=r)  # issue 22, item 14
    assert h["gsd"] is None and r.warned["non-numeric gsd"] == 2
    h, _ = dota.parse_header_and_objects(["gsd:null\n"], "a.txt", report=r)  # DOTA's own
    assert h["gsd"] is None and r.warned["non-numeric gsd"] == 2


@pytest.mark.parametrize(
    "line, message",
    [
        ("10 10 30 10 30 20 10 plane 0", r"got 9 tokens|bad coordinate"),
        ("10 10 30 10 30 20 10 20", r"got 8 tokens"),
        ("10 10 30 10 30 20 10 20 plane 0 extra", r"got 11 tokens"),
        ("10 10 30 x 30 20 10 20 plane 0", r"bad coordinate 'x'"),
        ("10 10 30 10 30 20 10 20 plane high", r"bad difficult flag 'high'"),
        ("10 10 30 10 30 20 10 20 plane 3", r"bad difficult flag 3"),
        ("10 10 30 10 30 20 10 20 spaceship 0", r"unknown class 'spaceship'"),
    ],
)
def test_bad_lines_name_file_and_line(line, message):
    lines = ["imagesource:GF\n", "10 10 30 10 30 20 10 20 plane 0\n", line + "\n"]
    with pytest.raises(FormatError, match=message) as e:
        dota.parse_header_and_objects(lines, "/d/labelTxt/P0009.txt", classes=DOTA_V1_0)
    assert e.value.line == 3
    assert str(e.value).startswith("/d/labelTxt/P0009.txt:3: ")


def test_header_after_objects_is_malformed():
    lines = ["10 10 30 10 30 20 10 20 plane 0\n", "gsd:0.5\n"]
    with pytest.raises(FormatError, match=r"a\.txt:2: .*got 1 tokens"):
        dota.parse_header_and_objects(lines, "a.txt")


def test_keep_unknown_class_is_counted():
    r = ImportReport()
    _, objs = dota.parse_header_and_objects(
        ["1 1 9 1 9 9 1 9 spaceship 0\n"], "a.txt", classes=DOTA_V1_0, keep_unknown=True, report=r)
    assert objs[0].label == "spaceship" and r.warned["unknown class"] == 1


def test_v1_5_class_is_unknown_in_v1_0_but_known_in_v1_5(tmp_path):
    _image(tmp_path / "images" / "P0001.png")
    _write(tmp_path / "labelTxt" / "P0001.txt", "1 1 9 1 9 9 1 9 container-crane 0\n")
    with pytest.raises(FormatError, match=r"P0001\.txt:1: unknown class 'container-crane'"):
        list(dota.scan(tmp_path, version="1.0"))
    recs = list(dota.scan(tmp_path, version="1.5"))
    assert recs[0].objects[0].label == "container-crane" and recs[0].source == "DOTA-v1.5"


def _quirky_tree(root: Path) -> Path:
    _image(root / "images" / "P0001.png", (100, 80))
    _write(root / "labelTxt" / "P0001.txt", QUIRKY, crlf=True)
    _image(root / "images" / "P0002.png", (50, 40))
    _write(root / "labelTxt" / "P0002.txt", "")  # empty label file
    _write(root / "labelTxt" / "P0003.txt", "1 1 9 1 9 9 1 9 plane 0\n")  # no image
    _image(root / "images" / "P0004.png")  # no label file
    (root / "images" / "P0005.png").write_bytes(b"this is not a png")  # unreadable
    _write(root / "labelTxt" / "P0005.txt", "1 1 9 1 9 9 1 9 plane 0\n")
    _image(root / "images" / "P0006.jpg", (40, 30))  # objects out of the image
    _write(root / "labelTxt" / "P0006.txt",
           "gsd:0.3\n-5 2 20 2 20 10 -5 10 plane 0\n10 10 50 10 50 35 10 35 ship 0\n"
           "60 50 70 50 70 60 60 60 ship 0\n")
    return root


def test_scan_counts_skips_and_warnings(tmp_path):
    root = _quirky_tree(tmp_path / "DOTA")
    report = ImportReport()
    recs = list(dota.scan(root, version="1.0", report=report))
    assert [Path(r.filepath).name for r in recs] == ["P0001.png", "P0002.png", "P0006.jpg"]
    assert report.images == 3 and report.objects == 5 + 0 + 3
    assert dict(report.skipped) == {"label without image": 1, "image without labels": 1,
                                    "unreadable image": 1}
    assert report.warned["degenerate object"] == 2
    assert report.warned["object outside image"] == 3
    msgs = "\n".join(report.messages)
    assert "P0003.txt" in msgs and "P0004.png" in msgs and "P0005.png" in msgs
    r1, r2, r6 = recs
    assert (r1.width, r1.height, r1.gsd, r1.imagesource) == (100, 80, None, "GoogleEarth")
    assert r1.source == "DOTA-v1.0" and r1.split is None
    assert r1.label_path == str(root / "labelTxt" / "P0001.txt")
    assert r1.filepath == str(root / "images" / "P0001.png")
    assert r2.objects == [] and (r2.width, r2.height) == (50, 40)
    # boxes reaching outside the 40x30 image: H-Box clipped, quad kept, truncated
    a, b, c = r6.objects
    assert a.hbox == (0.0, 2.0, 20.0, 10.0) and a.quad[0].tolist() == [-5, 2] and a.truncated
    assert b.hbox == (10.0, 10.0, 40.0, 30.0) and b.truncated and not b.degenerate
    assert c.hbox == (40.0, 30.0, 40.0, 30.0) and c.degenerate  # wholly outside
    assert r6.gsd == pytest.approx(0.3) and r6.imagesource is None
    assert "P0006.txt:2" in msgs


def test_scan_keeps_unlabeled_images_when_asked(tmp_path):
    root = _quirky_tree(tmp_path / "DOTA")
    report = ImportReport()
    recs = list(dota.scan(root, version="1.0", unlabeled="keep", report=report))
    p4 = [r for r in recs if r.filepath.endswith("P0004.png")]
    assert len(p4) == 1 and p4[0].objects == [] and p4[0].label_path is None
    assert "image without labels" not in report.skipped and report.images == 4


def test_scan_unknown_class_error_names_file_and_line(tmp_path):
    _image(tmp_path / "images" / "P0001.png")
    _write(tmp_path / "labelTxt" / "P0001.txt", "gsd:1\n1 1 9 1 9 9 1 9 plane 0\n1 1 9 1 9 9 1 9 ufo 0\n")
    with pytest.raises(FormatError) as e:
        list(dota.scan(tmp_path))
    assert str(e.value).startswith(str(tmp_path / "labelTxt" / "P0001.txt") + ":3: unknown class 'ufo'")
    report = ImportReport()
    recs = list(dota.scan(tmp_path, keep_unknown=True, report=report))
    assert [o.label for o in recs[0].objects] == ["plane", "ufo"]
    assert report.warned["unknown class"] == 1


def test_split_folders_and_version_folders(tmp_path):
    for split, stem in (("train", "P0001"), ("val", "P0002")):
        _image(tmp_path / split / "images" / (stem + ".png"))
        _write(tmp_path / split / "labelTxt-v1.5" / (stem + ".txt"),
               "1.0 1.0 9.0 1.0 9.0 9.0 1.0 9.0 plane 0\n")
    _image(tmp_path / "test" / "images" / "P0003.png")  # test: images only
    report = ImportReport()
    recs = list(dota.scan(tmp_path, report=report))
    assert [(Path(r.filepath).stem, r.split, r.source) for r in recs] == [
        ("P0001", "train", "DOTA-v1.5"), ("P0002", "val", "DOTA-v1.5")]
    assert report.skipped["image without labels"] == 1
    only_val = list(dota.scan(tmp_path, split="val"))
    assert [r.split for r in only_val] == ["val"]


def test_detect_version():
    assert dota.detect_version(["plane", "ship"]) == "1.0"
    assert dota.detect_version(["plane"], float_coords=True) == "1.5"
    assert dota.detect_version(["container-crane"]) == "1.5"
    assert dota.detect_version(["plane", "helipad"]) == "2.0"


def test_detect_version_when_scanning(tmp_path):
    _image(tmp_path / "images" / "P0001.png")
    _write(tmp_path / "labelTxt" / "P0001.txt", "1 1 9 1 9 9 1 9 airport 0\n")
    assert next(dota.scan(tmp_path)).source == "DOTA-v2.0"


def test_not_a_dota_folder(tmp_path):
    with pytest.raises(FormatError, match="not a DOTA folder"):
        list(dota.scan(tmp_path))
    with pytest.raises(FormatError, match="not found"):
        list(dota.scan(tmp_path / "missing"))


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="real samples not present at ../shared/samples")
def test_real_samples():
    h, objs = dota.parse_label_file(SAMPLES / "dota" / "labelTxt" / "P0770.txt", classes=DOTA_V1_0)
    assert h == {"imagesource": "GoogleEarth", "gsd": pytest.approx(0.266578848023)}
    assert len(objs) == 22
    assert objs[0].label == "ground-track-field" and objs[0].hbox == (716, 696, 1469, 1298)
    assert sum(o.label == "tennis-court" for o in objs) == 10
    h, objs = dota.parse_label_file(SAMPLES / "dota" / "labelTxt" / "P1234.txt", classes=DOTA_V1_0)
    assert h == {"imagesource": "GF", "gsd": 1.0} and len(objs) == 144
    assert sum(o.difficult == 1 for o in objs) == 44
    report = ImportReport()
    recs = list(dota.scan(SAMPLES / "dota", report=report))
    assert len(recs) == 1 and report.skipped["label without image"] == 2
    r = recs[0]
    assert (os.path.basename(r.filepath), r.width, r.height) == ("P1888.png", 712, 557)
    assert len(r.objects) == 64 and r.source == "DOTA-v1.0"
    assert r.objects[0].label == "small-vehicle" and r.objects[0].hbox == (674, 375, 684, 395)
    assert np.isclose(r.gsd, 0.266170468393)
