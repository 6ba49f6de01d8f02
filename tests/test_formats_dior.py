"""DIOR / DIOR-R parsing and scanning on hand-written fixture trees."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fiftyone_samrs.core.records import FormatError, ImportReport
from fiftyone_samrs.formats import dior

# ../shared/samples of the checkout, or of any folder above it (worktrees)
SAMPLES = next((d / "shared" / "samples" for d in Path(__file__).resolve().parents
                if (d / "shared" / "samples").is_dir()),
               Path(__file__).resolve().parents[1].parent / "shared" / "samples")
HBB = "Annotations/Horizontal Bounding Boxes"
OBB = "Annotations/Oriented Bounding Boxes"


def _xml(objects: str, size=(800, 800)) -> str:
    return ("<annotation><filename>x.jpg</filename><size><width>%d</width><height>%d</height>"
            "<depth>3</depth></size>%s</annotation>" % (size[0], size[1], objects))


def _hobj(name, box, tag="bndbox", difficult=0, truncated=0):
    return ("<object><name>%s</name><pose>Unspecified</pose><truncated>%d</truncated>"
            "<difficult>%d</difficult><%s><xmin>%s</xmin><ymin>%s</ymin><xmax>%s</xmax>"
            "<ymax>%s</ymax></%s></object>" % (name, truncated, difficult, tag, *box, tag))


def _oobj(name, quad, angle=0):
    tags = ["x_left_top", "y_left_top", "x_right_top", "y_right_top", "x_right_bottom",
            "y_right_bottom", "x_left_bottom", "y_left_bottom"]
    inner = "".join("<%s>%s</%s>" % (t, v, t) for t, v in zip(tags, quad))
    return ("<object><type>robndbox</type><name>%s</name><truncated>0</truncated>"
            "<difficult>0</difficult><robndbox>%s</robndbox><angle>%s</angle></object>"
            % (name, inner, angle))


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _image(path: Path, size=(800, 800)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 90, 90)).save(path)


def test_parse_hbb_with_robndbox_fallback_and_mixed_case(tmp_path):
    p = _write(tmp_path / "00001.xml", _xml(
        _hobj("Expressway-Service-area", (10, 20, 110, 220))
        + _hobj("AirPlane", (300, 300, 340, 350), tag="robndbox", difficult=1, truncated=1)
        + _hobj("Expressway-toll-station", (5, 5, 50, 60))))
    header, objs = dior.parse_xml(p)
    assert header == {"filename": "x.jpg", "width": 800, "height": 800, "kind": "hbb"}
    assert [o.label for o in objs] == ["expressway-service-area", "airplane",
                                       "expressway-toll-station"]
    assert objs[0].hbox == (10, 20, 110, 220) and objs[0].quad is None
    assert objs[1].hbox == (300, 300, 340, 350) and objs[1].quad is None
    assert (objs[1].difficult, objs[1].truncated) == (1, True)
    assert (objs[0].difficult, objs[0].truncated) == (0, False)
    assert [o.source_id for o in objs] == ["00001.xml#1", "00001.xml#2", "00001.xml#3"]
    assert not any(o.hbox_is_rh for o in objs)


def test_parse_obb_gives_rh_box(tmp_path):
    quad = (100, 50, 200, 100, 170, 160, 70, 110)
    p = _write(tmp_path / "00002.xml", _xml(_oobj("ship", quad, angle=27)))
    header, objs = dior.parse_xml(p)
    assert header["kind"] == "obb"
    o = objs[0]
    assert o.quad.tolist() == [[100, 50], [200, 100], [170, 160], [70, 110]]
    assert o.hbox == (70, 50, 200, 160) and o.hbox_is_rh
    assert o.attributes["angle"] == 27


def test_parse_errors_name_file_and_object(tmp_path):
    p = _write(tmp_path / "bad.xml", _xml(_hobj("ship", (1, 1, 5, 5)) + _hobj("ufo", (1, 1, 5, 5))))
    with pytest.raises(FormatError, match=r"bad\.xml: object 2: unknown class 'ufo'"):
        dior.parse_xml(p)
    p = _write(tmp_path / "broken.xml", "<annotation><object><name>ship</name></annotation>")
    with pytest.raises(FormatError, match=r"broken\.xml:1: broken XML"):
        dior.parse_xml(p)
    p = _write(tmp_path / "nobox.xml", _xml("<object><name>ship</name></object>"))
    with pytest.raises(FormatError, match=r"nobox\.xml: object 1: no <bndbox> or <robndbox>"):
        dior.parse_xml(p)
    p = _write(tmp_path / "nan.xml", _xml(_hobj("ship", (1, "a", 5, 5))))
    with pytest.raises(FormatError, match=r"nan\.xml: object 1 <bndbox>: <ymin> is not a number"):
        dior.parse_xml(p)


def _tree(root: Path) -> Path:
    _image(root / "JPEGImages-trainval" / "00001.jpg")
    _image(root / "JPEGImages-trainval" / "00002.jpg")
    _image(root / "JPEGImages-test" / "00003.jpg", (640, 640))
    _image(root / "JPEGImages-test" / "00005.jpg")  # no annotation
    # 00001: HBB and OBB, merged
    _write(root / HBB / "00001.xml", _xml(_hobj("vehicle", (10, 10, 30, 22))
                                          + _hobj("Windmill", (100, 100, 120, 160))))
    _write(root / OBB / "00001.xml", _xml(_oobj("vehicle", (11, 10, 30, 12, 29, 22, 10, 20))
                                          + _oobj("windmill", (100, 100, 120, 100, 120, 160, 100, 160))))
    # 00002: OBB only
    _write(root / OBB / "00002.xml", _xml(_oobj("harbor", (0, 0, 50, 0, 50, 20, 0, 20))))
    # 00003: HBB only, a box reaching outside the 640x640 image
    _write(root / HBB / "00003.xml", _xml(_hobj("dam", (600, 600, 700, 650)), size=(800, 800)))
    # 00004: annotation without image
    _write(root / HBB / "00004.xml", _xml(_hobj("dam", (1, 1, 5, 5))))
    for name, ids in (("train", ["00001", "00004"]), ("val", ["00002"]), ("test", ["00003", "00005"])):
        _write(root / "ImageSets" / "Main" / (name + ".txt"), "\n".join(ids) + "\n")
    return root


def test_scan_merges_hbb_and_obb(tmp_path):
    root = _tree(tmp_path / "DIOR")
    report = ImportReport()
    recs = list(dior.scan(root, report=report))
    assert [(Path(r.filepath).stem, r.split, r.source) for r in recs] == [
        ("00001", "train", "DIOR-R"), ("00002", "val", "DIOR-R"), ("00003", "test", "DIOR")]
    assert report.images == 3 and report.objects == 4
    assert dict(report.skipped) == {"label without image": 1, "image without labels": 1}
    assert dict(report.warned) == {"object outside image": 1, "size mismatch": 1}
    a, b = recs[0].objects
    assert a.hbox == (10, 10, 30, 22) and not a.hbox_is_rh
    assert a.quad.tolist() == [[11, 10], [30, 12], [29, 22], [10, 20]]
    assert b.label == "windmill" and b.hbox == (100, 100, 120, 160)
    assert recs[0].label_path == str(root / HBB / "00001.xml")
    h = recs[1].objects[0]
    assert h.hbox == (0, 0, 50, 20) and h.hbox_is_rh
    d = recs[2].objects[0]
    assert d.hbox == (600, 600, 640, 640) and d.truncated and d.quad is None
    assert (recs[2].width, recs[2].height) == (640, 640)


def test_scan_split_filter_and_keep_unlabeled(tmp_path):
    root = _tree(tmp_path / "DIOR")
    assert [Path(r.filepath).stem for r in dior.scan(root, split="val")] == ["00002"]
    assert [Path(r.filepath).stem for r in dior.scan(root, split="trainval")] == ["00001", "00002"]
    recs = list(dior.scan(root, split="test", unlabeled="keep"))
    assert [(Path(r.filepath).stem, len(r.objects)) for r in recs] == [("00003", 1), ("00005", 0)]
    with pytest.raises(FormatError, match="no image is in split 'nope'"):
        list(dior.scan(root, split="nope"))


def test_scan_counts_differ_names_both_files(tmp_path):
    root = _tree(tmp_path / "DIOR")
    _write(root / OBB / "00001.xml", _xml(_oobj("vehicle", (11, 10, 30, 12, 29, 22, 10, 20))))
    with pytest.raises(FormatError) as e:
        list(dior.scan(root))
    msg = str(e.value)
    assert str(root / HBB / "00001.xml") in msg and str(root / OBB / "00001.xml") in msg
    assert "has 2 objects" in msg and "has 1" in msg


def test_scan_class_mismatch_is_warned(tmp_path):
    root = _tree(tmp_path / "DIOR")
    _write(root / OBB / "00001.xml", _xml(_oobj("ship", (11, 10, 30, 12, 29, 22, 10, 20))
                                          + _oobj("windmill", (100, 100, 120, 100, 120, 160, 100, 160))))
    report = ImportReport()
    recs = list(dior.scan(root, report=report))
    assert recs[0].objects[0].label == "vehicle" and report.warned["class mismatch"] == 1


def test_plain_annotations_folder_and_unreadable_image(tmp_path):
    root = tmp_path / "DIOR"
    _image(root / "JPEGImages" / "00001.jpg")
    (root / "JPEGImages" / "00002.jpg").write_bytes(b"garbage")
    _write(root / "Annotations" / "00001.xml", _xml(_oobj("bridge", (0, 0, 10, 0, 10, 5, 0, 5))))
    _write(root / "Annotations" / "00002.xml", _xml(_hobj("bridge", (0, 0, 10, 5))))
    report = ImportReport()
    recs = list(dior.scan(root, report=report))
    assert len(recs) == 1 and recs[0].source == "DIOR-R" and recs[0].split is None
    assert recs[0].objects[0].hbox_is_rh
    assert report.skipped["unreadable image"] == 1 and "00002.jpg" in report.messages[0]


def test_not_a_dior_folder(tmp_path):
    with pytest.raises(FormatError, match="no Annotations"):
        list(dior.scan(tmp_path))


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="real samples not present at ../shared/samples")
def test_real_sample():
    report = ImportReport()
    recs = list(dior.scan(SAMPLES / "dior", report=report))
    assert len(recs) == 1 and report.images == 1
    r = recs[0]
    assert (r.width, r.height, r.source, r.split) == (800, 800, "DIOR-R", "trainval")
    (o,) = r.objects
    assert o.label == "golffield" and o.hbox == (133, 237, 684, 672) and o.hbox_is_rh
    assert np.array_equal(o.quad, [[133, 237], [684, 237], [684, 672], [133, 672]])
