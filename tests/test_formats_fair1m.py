"""FAIR1M parsing and scanning on hand-written fixture trees."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fiftyone_samrs.core.records import FormatError, ImportReport
from fiftyone_samrs.formats import fair1m

# ../shared/samples of the checkout, or of any folder above it (worktrees)
SAMPLES = next((d / "shared" / "samples" for d in Path(__file__).resolve().parents
                if (d / "shared" / "samples").is_dir()),
               Path(__file__).resolve().parents[1].parent / "shared" / "samples")


def _obj(name, points, prob=None):
    pts = "".join("<point>%s,%s</point>" % p for p in points)
    pr = "<probability>%s</probability>" % prob if prob is not None else ""
    return ("<object><coordinate>pixel</coordinate><type>rectangle</type>"
            "<possibleresult><name>%s</name>%s</possibleresult><points>%s</points></object>"
            % (name, pr, pts))


def _xml(objects, version="2.0", size=(200, 100)):
    return ("<?xml version='1.0' encoding='utf-8'?><annotation><source><filename>0.tif</filename>"
            "<origin>GF2/GF3</origin></source><research><version>%s</version></research>"
            "<size><width>%d</width><height>%d</height><depth>3</depth></size>"
            "<objects>%s</objects></annotation>" % (version, size[0], size[1], objects))


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _tif(path: Path, size=(200, 100)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (30, 60, 90)).save(path)


SQUARE = [(10, 10), (40, 10), (40, 30), (10, 30)]


def test_parse_points_names_and_probability(tmp_path):
    p = _write(tmp_path / "7.xml", _xml(
        _obj("Small Car", SQUARE + [SQUARE[0]], prob="0.9")
        + _obj("boeing737", [(50.5, 20.25), (90, 20), (90, 40), (50, 40)])
        + _obj("other-airplane", [(1, 1), (5, 1), (5, 5), (1, 5), (2, 2)])))
    header, objs = fair1m.parse_xml(p)
    assert header == {"filename": "0.tif", "origin": "GF2/GF3", "version": "2.0",
                      "width": 200, "height": 100}
    assert [o.label for o in objs] == ["Small-Car", "Boeing737", "other-airplane"]
    assert objs[0].quad.tolist() == [list(p) for p in SQUARE]
    assert objs[0].hbox == (10, 10, 40, 30) and objs[0].hbox_is_rh
    assert objs[0].attributes == {"probability": 0.9, "raw_label": "Small Car"}
    assert objs[1].hbox == (50, 20, 90, 40) and objs[1].quad[0].tolist() == [50.5, 20.25]
    assert objs[2].quad.shape == (4, 2)  # 5 distinct points: the 5th is dropped
    assert [o.source_id for o in objs] == ["7.xml#1", "7.xml#2", "7.xml#3"]


@pytest.mark.parametrize("objects, message", [
    (_obj("Flying Saucer", SQUARE), r"9\.xml: object 1: unknown class 'Flying Saucer'"),
    (_obj("Van", SQUARE[:3]), r"9\.xml: object 1: expected 4 or 5 points, got 3"),
    (_obj("Van", [(1, 1), (2, "x"), (3, 3), (4, 4)]), r"9\.xml: object 1: bad point '2,x'"),
])
def test_parse_errors(tmp_path, objects, message):
    p = _write(tmp_path / "9.xml", _xml(objects))
    with pytest.raises(FormatError, match=message):
        fair1m.parse_xml(p)


def test_broken_xml_names_file(tmp_path):
    p = _write(tmp_path / "3.xml", "<annotation><objects><object></objects>")
    with pytest.raises(FormatError, match=r"3\.xml:1: broken XML"):
        fair1m.parse_xml(p)


def _tree(root: Path) -> Path:
    # train/part1 and validation share the stem "0"
    _tif(root / "train" / "part1" / "images" / "0.tif")
    _write(root / "train" / "part1" / "labelXml" / "0.xml", _xml(
        _obj("Small Car", [(-5, -3), (20, -3), (20, 10), (-5, 10), (-5, -3)])
        + _obj("Tugboat", [(150.5, 80), (230, 80), (230, 120), (150.5, 120)])))
    _tif(root / "train" / "part1" / "images" / "10.tif")
    _write(root / "train" / "part1" / "labelXml" / "10.xml", _xml(_obj("Bus", SQUARE), version="1.0"))
    _tif(root / "train" / "part1" / "images" / "2.tif")
    _write(root / "train" / "part1" / "labelXml" / "2.xml", _xml(""))
    _write(root / "train" / "part2" / "labelXml" / "3.xml", _xml(_obj("Bus", SQUARE)))  # no image
    _tif(root / "validation" / "images" / "0.tif")
    _write(root / "validation" / "labelXml" / "0.xml", _xml(_obj("Dry Cargo Ship", SQUARE)))
    _tif(root / "validation" / "images" / "1.tif")  # no label
    return root


def test_scan_clips_and_keeps_collisions_apart(tmp_path):
    root = _tree(tmp_path / "FAIR1M")
    report = ImportReport()
    recs = list(fair1m.scan(root, report=report))
    got = [(Path(r.filepath).relative_to(root).as_posix(), r.split, r.attributes["uid"], r.source)
           for r in recs]
    assert got == [
        ("train/part1/images/0.tif", "train", "train_0", "FAIR1M-2.0"),
        ("train/part1/images/2.tif", "train", "train_2", "FAIR1M-2.0"),
        ("train/part1/images/10.tif", "train", "train_10", "FAIR1M-1.0"),
        ("validation/images/0.tif", "val", "valid_0", "FAIR1M-2.0"),
    ]
    assert report.images == 4 and report.objects == 4
    assert dict(report.skipped) == {"label without image": 1, "image without labels": 1}
    assert report.warned["object outside image"] == 2
    car, tug = recs[0].objects
    assert car.quad.tolist() == [[0, 0], [20, 0], [20, 10], [0, 10]]
    assert car.hbox == (0, 0, 20, 10) and car.truncated and car.hbox_is_rh
    assert tug.quad.tolist() == [[150.5, 80], [200, 80], [200, 100], [150.5, 100]]
    assert tug.hbox == (150.5, 80, 200, 100) and tug.truncated
    assert recs[1].objects == []
    assert recs[3].objects[0].label == "Dry-Cargo-Ship" and recs[3].objects[0].truncated is None
    assert [r.filepath for r in fair1m.scan(root, split="val")] == [recs[3].filepath]


def test_flat_folder_and_unknown_class(tmp_path):
    _tif(tmp_path / "images" / "5.tif")
    _write(tmp_path / "labelXml" / "5.xml", _xml(_obj("Van", SQUARE), version=""))
    (rec,) = fair1m.scan(tmp_path)
    assert rec.split is None and rec.attributes["uid"] == "5" and rec.source == "FAIR1M"
    _write(tmp_path / "labelXml" / "5.xml", _xml(_obj("Lorry", SQUARE)))
    with pytest.raises(FormatError, match=r"5\.xml: object 1: unknown class 'Lorry'"):
        list(fair1m.scan(tmp_path))


def test_not_a_fair1m_folder(tmp_path):
    with pytest.raises(FormatError, match="not a FAIR1M folder"):
        list(fair1m.scan(tmp_path))


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="real samples not present at ../shared/samples")
def test_real_samples():
    h, objs = fair1m.parse_xml(SAMPLES / "fair1m" / "validation" / "labelXml" / "0.xml")
    assert h["version"] == "1.0" and (h["width"], h["height"]) == (1000, 1000)
    (o,) = objs
    assert o.label == "Dry-Cargo-Ship" and o.hbox == (472, 20, 841, 186)
    assert np.array_equal(o.quad, [[841, 127], [489, 20], [472, 78], [824, 186]])
    h, objs = fair1m.parse_xml(SAMPLES / "fair1m" / "validation" / "labelXml" / "1.xml")
    assert len(objs) == 20
    assert sorted({o.label for o in objs}) == ["Bus", "Excavator", "Small-Car", "Van", "other-vehicle"]
    assert objs[0].label == "other-vehicle" and objs[0].hbox == (671, 22, 690, 68)
    # images are not in the sample: every label is a counted skip
    report = ImportReport()
    assert list(fair1m.scan(SAMPLES / "fair1m", report=report)) == []
    assert report.skipped["label without image"] == 2
