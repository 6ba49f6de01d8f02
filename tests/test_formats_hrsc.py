"""HRSC2016 parsing, angle convention and GT masks on hand-written fixture trees."""

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fiftyone_samrs.core.geometry import quad_to_hbox, rbox_to_quad
from fiftyone_samrs.core.records import FormatError, ImportReport
from fiftyone_samrs.formats import hrsc

# ../shared/samples of the checkout, or of any folder above it (worktrees)
SAMPLES = next((d / "shared" / "samples" for d in Path(__file__).resolve().parents
                if (d / "shared" / "samples").is_dir()),
               Path(__file__).resolve().parents[1].parent / "shared" / "samples")


def _ship(obj_id, box, rbox, seg_color="", header=None):
    cx, cy, w, h, a = rbox
    hx, hy = header if header else ("\n", "\n")
    return """
    <HRSC_Object>
      <Object_ID>%s</Object_ID>
      <Class_ID>100000007</Class_ID>
      <truncated>0</truncated>
      <difficult>1</difficult>
      <box_xmin>%s</box_xmin><box_ymin>%s</box_ymin><box_xmax>%s</box_xmax><box_ymax>%s</box_ymax>
      <mbox_cx>%s</mbox_cx><mbox_cy>%s</mbox_cy><mbox_w>%s</mbox_w><mbox_h>%s</mbox_h>
      <mbox_ang>%s</mbox_ang>
      <segmented>1</segmented>
      <seg_color>%s
      </seg_color>
      <header_x>%s</header_x><header_y>%s</header_y>
    </HRSC_Object>""" % (obj_id, *box, cx, cy, w, h, a, seg_color, hx, hy)


def _xml(ships, size=(300, 200)):
    return ("<HRSC_Image><Img_ID>1</Img_ID><Img_FileFmt>bmp</Img_FileFmt>"
            "<Img_SizeWidth>%d</Img_SizeWidth><Img_SizeHeight>%d</Img_SizeHeight>"
            "<segmented>1</segmented><Img_Des>\n  </Img_Des><HRSC_Objects>%s</HRSC_Objects>"
            "</HRSC_Image>" % (size[0], size[1], "".join(ships)))


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _bmp(path: Path, size=(300, 200)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (20, 40, 80)).save(path)


A = 0.5  # radians
RB = (100.0, 80.0, 80.0, 20.0, A)
BOW = (100 + 40 * math.cos(A), 80 + 40 * math.sin(A))  # end of the w axis, stored angle
BOW_NEG = (100 + 40 * math.cos(-A), 80 + 40 * math.sin(-A))  # fits the negated angle


def test_angle_convention_checked_by_the_bow(tmp_path):
    hb = tuple(round(v) for v in quad_to_hbox(rbox_to_quad(*RB)))
    p = _write(tmp_path / "1.xml", _xml([
        _ship("100000001", hb, RB, header=BOW),
        _ship("100000002", hb, RB, header=BOW_NEG),
        _ship("100000003", hb, RB),  # no bow point: stored angle
    ]))
    header, objs = hrsc.parse_xml(p)
    assert (header["width"], header["height"], header["segmented"]) == (300, 200, True)
    keep, neg, plain = objs
    assert np.allclose(keep.quad, rbox_to_quad(*RB))
    assert np.allclose(neg.quad, rbox_to_quad(*RB[:4], -A)) and neg.attributes["angle_negated"]
    assert np.allclose(plain.quad, rbox_to_quad(*RB)) and plain.attributes["header"] is None
    assert "angle_negated" not in keep.attributes
    assert keep.hbox == hb and not keep.hbox_is_rh
    assert keep.attributes["box_agreement"] > 0.95
    assert (keep.label, keep.source_id, keep.attributes["class_id"]) == ("ship", "100000001", "100000007")
    assert (keep.difficult, keep.truncated) == (1, False)
    assert keep.attributes["seg_color"] is None  # empty tag with newlines


def test_empty_box_falls_back_to_rh_box(tmp_path):
    p = _write(tmp_path / "2.xml", _xml([_ship("7", ("\n", "\n", "\n", "\n"), RB)]))
    (o,) = hrsc.parse_xml(p)[1]
    assert o.hbox_is_rh and o.hbox == pytest.approx(quad_to_hbox(rbox_to_quad(*RB)))


def test_parse_errors(tmp_path):
    p = _write(tmp_path / "3.xml", "<HRSC_Image><HRSC_Objects><HRSC_Object>")
    with pytest.raises(FormatError, match=r"3\.xml:1: broken XML"):
        hrsc.parse_xml(p)
    p = _write(tmp_path / "4.xml", _xml([_ship("9", (1, 2, "wide", 4), RB)]))
    with pytest.raises(FormatError, match=r"4\.xml: object 1 \(Object_ID 9\): <box_xmax> is not a number"):
        hrsc.parse_xml(p)


@pytest.mark.parametrize("value, expected", [
    ("255,0,10", (255, 0, 10)), (" 1, 2, 3 ", (1, 2, 3)), ("", None), (None, None),
    ("0,0,0", None), ("300,1,1", None), ("1,2", None), ("red", None)])
def test_parse_seg_color(value, expected):
    assert hrsc.parse_seg_color(value) == expected


def _masked_tree(root: Path, mask_dir="Segmentations") -> Path:
    full = root / "FullDataSet"
    # image 1: two ships, both painted
    seg = np.zeros((200, 300, 3), dtype=np.uint8)
    seg[10:20, 30:60] = (200, 10, 10)
    seg[50:70, 100:120] = (10, 200, 10)
    seg[100:101, 5:6] = (9, 9, 9)  # noise of another colour
    _bmp(full / "AllImages" / "100000001.bmp")
    _write(full / "Annotations" / "100000001.xml", _xml([
        _ship("1", (30, 10, 60, 20), (45, 15, 30, 10, 0), "200,10,10"),
        _ship("2", (100, 50, 120, 70), (110, 60, 20, 20, 0), "10,200,10")]))
    (full / mask_dir).mkdir(parents=True)
    Image.fromarray(seg).save(full / mask_dir / "100000001.png")
    # image 2: one ship without seg_color, one whose colour is not in the PNG
    seg2 = np.zeros((200, 300, 3), dtype=np.uint8)
    seg2[0:5, 0:5] = (1, 2, 3)
    _bmp(full / "AllImages" / "100000002.bmp")
    _write(full / "Annotations" / "100000002.xml", _xml([
        _ship("3", (0, 0, 5, 5), (2.5, 2.5, 5, 5, 0), ""),
        _ship("4", (10, 10, 20, 20), (15, 15, 10, 10, 0), "4,5,6")]))
    Image.fromarray(seg2).save(full / mask_dir / "100000002.png")
    # image 3: no ships; image 4: annotation only; image 5: image only
    _bmp(full / "AllImages" / "100000003.bmp")
    _write(full / "Annotations" / "100000003.xml", _xml([]))
    _write(full / "Annotations" / "100000004.xml", _xml([]))
    _bmp(full / "AllImages" / "100000005.bmp")
    _write(root / "ImageSets" / "trainval.txt", "100000001\n100000003\n")
    _write(root / "ImageSets" / "test.txt", "100000002\n100000004\n100000005\n")
    return root


@pytest.mark.parametrize("mask_dir", ["Segmentations", "LandMask"])
def test_scan_masks_by_seg_color(tmp_path, mask_dir):
    root = _masked_tree(tmp_path / "HRSC2016", mask_dir)
    report = ImportReport()
    recs = list(hrsc.scan(root, report=report))
    assert [(Path(r.filepath).stem, r.split, r.attributes["all_masked"]) for r in recs] == [
        ("100000001", "trainval", True), ("100000002", "test", False), ("100000003", "trainval", False)]
    assert report.images == 3 and report.objects == 4
    assert dict(report.skipped) == {"label without image": 1, "image without labels": 1}
    assert dict(report.warned) == {"empty mask": 1}
    a, b = recs[0].objects
    assert a.mask.box == (30, 10, 60, 20) and a.mask.mask.all() and a.mask.area == 300
    assert b.mask.box == (100, 50, 120, 70) and b.mask.area == 400
    assert [o.mask for o in recs[1].objects] == [None, None]
    assert recs[0].source == "HRSC2016" and recs[0].width == 300


def test_scan_split_and_fulldataset_root(tmp_path):
    root = _masked_tree(tmp_path / "HRSC2016")
    recs = list(hrsc.scan(root / "FullDataSet", split="test", with_masks=False))
    assert [(Path(r.filepath).stem, r.split) for r in recs] == [("100000002", "test")]
    assert all(o.mask is None for o in recs[0].objects)
    assert recs[0].attributes["all_masked"] is False  # a ship has no seg_color
    with pytest.raises(FormatError, match="no split file val.txt"):
        list(hrsc.scan(root, split="val"))


def test_missing_mask_file_is_warned(tmp_path):
    root = _masked_tree(tmp_path / "HRSC2016")
    (root / "FullDataSet" / "Segmentations" / "100000001.png").unlink()
    report = ImportReport()
    recs = list(hrsc.scan(root, report=report))
    assert report.warned["mask file missing"] == 1
    assert recs[0].attributes["all_masked"] is False


def test_read_gt_masks_errors(tmp_path):
    with pytest.raises(FormatError, match="mask file not found"):
        hrsc.read_gt_masks(tmp_path / "nope.png", [])
    (tmp_path / "bad.png").write_bytes(b"xx")
    with pytest.raises(FormatError, match="unreadable mask PNG"):
        hrsc.read_gt_masks(tmp_path / "bad.png", [])


def test_not_an_hrsc_folder(tmp_path):
    with pytest.raises(FormatError, match="not an HRSC2016 folder"):
        list(hrsc.scan(tmp_path))


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="real samples not present at ../shared/samples")
def test_real_sample_follows_the_stored_angle():
    header, (o,) = hrsc.parse_xml(SAMPLES / "hrsc" / "FullDataSet" / "Annotations" / "100000006.xml")
    assert (header["width"], header["height"], header["segmented"]) == (1172, 816, False)
    assert o.hbox == (119, 75, 587, 789) and o.source_id == "100000006"
    assert o.attributes["class_id"] == "100000013" and o.attributes["seg_color"] is None
    assert "angle_negated" not in o.attributes
    assert np.allclose(o.quad, rbox_to_quad(341.2143, 443.3325, 778.4297, 178.2595, -1.122944))
    # the bow (143, 776) is 34 px from an end of the long axis with the stored
    # angle, and 367 px with the negated one
    assert hrsc._bow_distance(341.2143, 443.3325, 778.4297, -1.122944, 143, 776) < 40
    assert hrsc._bow_distance(341.2143, 443.3325, 778.4297, 1.122944, 143, 776) > 300
    assert o.attributes["box_agreement"] == pytest.approx(0.862, abs=1e-3)
