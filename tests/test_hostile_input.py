"""Hostile and malformed input (issue 11): each case measured on 0.1.0, as a
regression test. Every one gives a FormatError naming the file (and line or
object) or a counted, reported warning; NaN/inf are never stored; wrong-size
masks are refused; hostile geometry is clipped before rasterising; image
sizes are read without PIL's 179-megapixel refusal."""

import struct
import time
import uuid
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fiftyone_samrs.core.classes import DOTA_V1_0
from fiftyone_samrs.core.masks import rasterize
from fiftyone_samrs.core.records import FormatError, ImportReport, ObjectRecord
from fiftyone_samrs.formats import dior, dota, fair1m, hrsc, isaid
from fiftyone_samrs.formats.images import MAX_PIXELS_ENV, check_decodable, image_size

SAMPLES = next((d / "shared" / "samples" for d in Path(__file__).resolve().parents
                if (d / "shared" / "samples").is_dir()), None)


def _write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


# ---------------------------------------------------------------- XML files

def _dior(objects: str, size="<size><width>800</width><height>800</height></size>") -> str:
    return "<annotation><filename>00001.jpg</filename>%s%s</annotation>" % (size, objects)


def _dior_obj(name="airplane", box=(10, 20, 30, 40), extra="", difficult="0", truncated="0"):
    return ("<object><name>%s</name><truncated>%s</truncated><difficult>%s</difficult>"
            "<bndbox><xmin>%s</xmin><ymin>%s</ymin><xmax>%s</xmax><ymax>%s</ymax></bndbox>%s"
            "</object>" % (name, truncated, difficult, *box, extra))


def _hrsc_obj(oid="1", box=("10", "20", "110", "60"), rb=("60", "40", "100", "40", "0"),
              seg="", truncated="0", difficult="0"):
    return ("<HRSC_Object><Object_ID>%s</Object_ID><truncated>%s</truncated>"
            "<difficult>%s</difficult><box_xmin>%s</box_xmin><box_ymin>%s</box_ymin>"
            "<box_xmax>%s</box_xmax><box_ymax>%s</box_ymax><mbox_cx>%s</mbox_cx>"
            "<mbox_cy>%s</mbox_cy><mbox_w>%s</mbox_w><mbox_h>%s</mbox_h><mbox_ang>%s</mbox_ang>"
            "<seg_color>%s</seg_color></HRSC_Object>"
            % (oid, truncated, difficult, *box, *rb, seg))


def _hrsc(objects: str, width="200", wrap=True) -> str:
    body = "<HRSC_Objects>%s</HRSC_Objects>" % objects if wrap else objects
    return ("<HRSC_Image><Img_ID>100000001</Img_ID><Img_SizeWidth>%s</Img_SizeWidth>"
            "<Img_SizeHeight>100</Img_SizeHeight>%s</HRSC_Image>" % (width, body))


def _fair1m_obj(name="Small Car", pts=((10, 10), (30, 10), (30, 20), (10, 20))):
    points = "".join("<point>%s,%s</point>" % p for p in list(pts) + [pts[0]])
    return ("<object><possibleresult><name>%s</name></possibleresult><points>%s</points>"
            "</object>" % (name, points))


def _fair1m(objects: str, wrap=True, width="1000") -> str:
    body = "<objects>%s</objects>" % objects if wrap else objects
    return ("<annotation><source><filename>0.tif</filename></source><size><width>%s</width>"
            "<height>1000</height></size>%s</annotation>" % (width, body))


@pytest.mark.parametrize("value", ["inf", "1e999", "-inf", "nan", "NaN"])
@pytest.mark.parametrize("field", ["difficult", "truncated"])
def test_dior_non_finite_flag_is_a_format_error(tmp_path, field, value):
    # 0.1.0: OverflowError (inf) / ValueError naming no file (nan)
    kw = {field: value}
    p = _write(tmp_path / "00001.xml", _dior(_dior_obj(**kw)))
    with pytest.raises(FormatError, match=r"00001\.xml: object 1: <%s> is not a finite" % field):
        dior.parse_xml(p)


@pytest.mark.parametrize("value", ["inf", "1e999", "nan", "99999999999"])
def test_integer_fields_out_of_range(tmp_path, value):
    p = _write(tmp_path / "00001.xml", _dior(_dior_obj(), size="<size><width>%s</width>"
                                            "<height>8</height></size>" % value))
    with pytest.raises(FormatError, match=r"00001\.xml: <size>: <width> is"):
        dior.parse_xml(p)
    p = _write(tmp_path / "h.xml", _hrsc(_hrsc_obj(), width=value))
    with pytest.raises(FormatError, match=r"h\.xml: image: <Img_SizeWidth> is"):
        hrsc.parse_xml(p)
    p = _write(tmp_path / "h2.xml", _hrsc(_hrsc_obj(difficult=value)))
    with pytest.raises(FormatError, match=r"h2\.xml: object 1 \(Object_ID 1\): <difficult> is"):
        hrsc.parse_xml(p)
    p = _write(tmp_path / "0.xml", _fair1m(_fair1m_obj(), width=value))
    with pytest.raises(FormatError, match=r"0\.xml: <size>: <width> is"):
        fair1m.parse_xml(p)


@pytest.mark.parametrize("box, tag", [(("nan", 20, 30, 40), "xmin"), ((10, "inf", 30, 40), "ymin"),
                                      ((10, 20, "1e999", 40), "xmax"),
                                      ((10, 20, 30, "-Infinity"), "ymax")])
def test_dior_non_finite_coordinates_never_stored(tmp_path, box, tag):
    p = _write(tmp_path / "00001.xml", _dior(_dior_obj(box=box)))
    with pytest.raises(FormatError, match=r"00001\.xml: object 1 <bndbox>: <%s> is not a finite"
                       % tag):
        dior.parse_xml(p)


def test_dior_obb_non_finite_corner_and_angle(tmp_path):
    corners = "".join("<%s>%s</%s>" % (t, v, t) for t, v in zip(
        ("x_left_top", "y_left_top", "x_right_top", "y_right_top", "x_right_bottom",
         "y_right_bottom", "x_left_bottom", "y_left_bottom"), (1, 2, 9, 2, 9, "nan", 1, 8)))
    p = _write(tmp_path / "o.xml", _dior("<object><name>ship</name><robndbox>%s</robndbox>"
                                         "</object>" % corners))
    with pytest.raises(FormatError, match=r"o\.xml: object 1 <robndbox>: <y_right_bottom>"):
        dior.parse_xml(p)
    p = _write(tmp_path / "a.xml", _dior(_dior_obj(extra="<angle>inf</angle>")))
    with pytest.raises(FormatError, match=r"a\.xml: object 1: <angle> is not a finite"):
        dior.parse_xml(p)


def test_coordinates_beyond_the_range_limit(tmp_path):
    p = _write(tmp_path / "00001.xml", _dior(_dior_obj(box=(10, 20, "1e300", 40))))
    with pytest.raises(FormatError, match="out of range"):
        dior.parse_xml(p)
    lines = ["1 1 9 1 9 9 1 1e300 plane 0"]
    with pytest.raises(FormatError, match=r"P1\.txt:1: coordinate out of range"):
        dota.parse_header_and_objects(lines, "P1.txt")


@pytest.mark.parametrize("box, rb, tag", [
    (("nan", "20", "110", "60"), ("60", "40", "100", "40", "0"), "box_xmin"),
    (("10", "20", "110", "60"), ("inf", "40", "100", "40", "0"), "mbox_cx"),
    (("10", "20", "110", "60"), ("60", "40", "100", "40", "inf"), "mbox_ang"),  # math domain error
    (("10", "20", "110", "60"), ("60", "40", "100", "40", "1e999"), "mbox_ang"),
])
def test_hrsc_non_finite_values(tmp_path, box, rb, tag):
    p = _write(tmp_path / "h.xml", _hrsc(_hrsc_obj(box=box, rb=rb)))
    with pytest.raises(FormatError, match=r"h\.xml: object 1 \(Object_ID 1\): <%s> is not a "
                       "finite" % tag):
        hrsc.parse_xml(p)


@pytest.mark.parametrize("seg", ["inf,0,0", "1e999,1,1", "nan,2,3", "300,1,1", "red", "1,2"])
def test_hrsc_bad_seg_color_names_file_and_object(tmp_path, seg):
    # 0.1.0: "inf,0,0" raised OverflowError; the others silently meant "no mask"
    p = _write(tmp_path / "h.xml", _hrsc(_hrsc_obj(seg=seg)))
    with pytest.raises(FormatError, match=r"h\.xml: object 1 \(Object_ID 1\): bad <seg_color>"):
        hrsc.parse_xml(p)


def test_hrsc_black_or_empty_seg_color_means_no_mask(tmp_path):
    p = _write(tmp_path / "h.xml", _hrsc(_hrsc_obj(seg="0,0,0") + _hrsc_obj("2", seg="\n  ")))
    _, objs = hrsc.parse_xml(p)
    assert [o.attributes["seg_color"] for o in objs] == [None, None]


@pytest.mark.parametrize("decl", ['encoding="foo-bar"', 'encoding="UTFinf"', 'encoding="x"'])
def test_unknown_xml_encoding(tmp_path, decl):
    # 0.1.0: LookupError
    for parse, text in ((dior.parse_xml, _dior(_dior_obj())), (hrsc.parse_xml, _hrsc(_hrsc_obj())),
                        (fair1m.parse_xml, _fair1m(_fair1m_obj()))):
        p = _write(tmp_path / "e.xml", '<?xml version="1.0" %s?>%s' % (decl, text))
        with pytest.raises(FormatError, match=r"e\.xml:1: XML declares an unknown encoding"):
            parse(p)


@pytest.mark.parametrize("dtd", [
    '<!DOCTYPE a [<!ENTITY x "xxxxxxxxxx"><!ENTITY y "&x;&x;&x;&x;&x;&x;&x;&x;&x;&x;">'
    '<!ENTITY z "&y;&y;&y;&y;&y;&y;&y;&y;&y;&y;">]>',               # billion laughs
    '<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>',      # XXE
    '<!DOCTYPE a [<!ENTITY x "%s">]>' % ("x" * 10000),             # quadratic blow-up
])
def test_xml_bombs_and_xxe_are_refused_by_the_hardened_parser(tmp_path, dtd):
    text = _dior(_dior_obj(name="&x;")).replace("<annotation>", "<annotation>", 1)
    p = _write(tmp_path / "b.xml", '<?xml version="1.0"?>' + dtd + text)
    with pytest.raises(FormatError, match=r"b\.xml: XML with entity declarations .* refused"):
        dior.parse_xml(p)


def test_hardened_parser_is_defusedxml():
    import inspect

    from fiftyone_samrs.formats import _common

    assert "defusedxml" in inspect.getsource(_common.read_xml)


def test_doctype_without_entities_is_fine(tmp_path):
    p = _write(tmp_path / "d.xml", '<?xml version="1.0"?><!DOCTYPE annotation>'
               + _dior(_dior_obj()))
    assert len(dior.parse_xml(p)[1]) == 1


# ------------------------------------------------- objects out of container

def test_fair1m_file_without_objects_wrapper_keeps_every_object(tmp_path):
    # 0.1.0: 12 objects -> 8 (the 4 outside <objects> dropped uncounted)
    objs = [_fair1m_obj(pts=((10 + i, 10), (30 + i, 10), (30 + i, 20), (10 + i, 20)))
            for i in range(12)]
    p = _write(tmp_path / "0.xml", _fair1m("".join(objs[:8]), wrap=True).replace(
        "</annotation>", "".join(objs[8:]) + "</annotation>"))
    report = ImportReport()
    header, got = fair1m.parse_xml(p, report=report)
    assert len(got) == 12
    assert report.warned == {"object outside container": 4}
    assert all("0.xml: <annotation>/<object>" in m and "not in <objects>" in m
               for m in header["warnings"])
    assert [o.hbox[0] for o in got] == [10.0 + i for i in range(12)]  # document order
    report = ImportReport()
    _, got = fair1m.parse_xml(_write(tmp_path / "1.xml", _fair1m("".join(objs), wrap=False)),
                              report=report)
    assert len(got) == 12 and report.warned == {"object outside container": 12}


def test_hrsc_objects_outside_hrsc_objects(tmp_path):
    p = _write(tmp_path / "h.xml", _hrsc(_hrsc_obj("1") + _hrsc_obj("2"), wrap=False))
    report = ImportReport()
    _, got = hrsc.parse_xml(p, report=report)
    assert [o.source_id for o in got] == ["1", "2"]
    assert report.warned == {"object outside container": 2}


def test_dior_nested_object_read_and_counted(tmp_path):
    p = _write(tmp_path / "00001.xml", _dior(_dior_obj() + "<extra>%s</extra>" % _dior_obj("ship")))
    report = ImportReport()
    _, got = dior.parse_xml(p, report=report)
    assert [o.label for o in got] == ["airplane", "ship"]
    assert report.warned == {"object outside container": 1}
    assert "<annotation>/<extra>/<object>" in report.messages[0]


def test_renamed_object_element_is_a_counted_stray(tmp_path):
    text = _dior(_dior_obj() + _dior_obj("ship").replace("object>", "objectx>"))
    report = ImportReport()
    _, got = dior.parse_xml(_write(tmp_path / "00001.xml", text), report=report)
    assert len(got) == 1 and report.warned == {"stray element": 1}
    assert "00001.xml: <annotation>/<objectx>/<bndbox> is not inside an object" in report.messages[0]
    text = _fair1m(_fair1m_obj() + _fair1m_obj().replace("<object>", "<obj>").replace(
        "</object>", "</obj>"))
    report = ImportReport()
    _, got = fair1m.parse_xml(_write(tmp_path / "0.xml", text), report=report)
    assert len(got) == 1 and report.warned == {"stray element": 2}  # points + possibleresult


def test_duplicate_child_is_counted(tmp_path):
    text = _dior(_dior_obj(extra="<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax>"
                                 "<ymax>2</ymax></bndbox>"))
    report = ImportReport()
    _, got = dior.parse_xml(_write(tmp_path / "00001.xml", text), report=report)
    assert got[0].hbox == (10.0, 20.0, 30.0, 40.0)
    assert report.warned == {"duplicate element": 1} and "2 <bndbox>" in report.messages[0]


def test_structure_warnings_reach_the_scan_report(tmp_path):
    root = tmp_path / "F"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (100, 100)).save(root / "images" / "0.tif")
    _write(root / "labelXml" / "0.xml", _fair1m(_fair1m_obj(), wrap=False))
    report = ImportReport()
    recs = list(fair1m.scan(root, report=report))
    assert len(recs[0].objects) == 1 and report.warned["object outside container"] == 1


# -------------------------------------------------------------- DOTA lines

def test_dota_object_line_with_colon_is_not_a_header(tmp_path):
    # 0.1.0: the first line was read as a header: 23 of 24 objects, no error
    lines = ["%d 10 %d 10 %d 20 %d 20 plane 0" % (i, i + 5, i + 5, i) for i in range(10, 34)]
    lines[0] = "10:5 10 15 10 15 20 10 20 plane 0"
    p = _write(tmp_path / "P0001.txt", "imagesource:GoogleEarth\ngsd:0.5\n" + "\n".join(lines))
    with pytest.raises(FormatError, match=r"P0001\.txt:3: bad coordinate '10:5'"):
        dota.parse_label_file(p, classes=DOTA_V1_0)


@pytest.mark.parametrize("line, is_header", [
    ("imagesource:GoogleEarth", True), ("gsd:0.146343590398", True), ("gsd:null", True),
    ("acquisition dates:2017-03-10 11:05", True), ("ImageSource: GF 2", True),
    ("10:5 10 15 10 15 20 10 20 plane 0", False), ("10 10 15 10 15 20 10 20 a:b", False),
    ("x:1 10 15 10 15 20 10 20 plane", False), ("12:30", False), (":abc", False),
    ("1 2 3 4 5 6 7 8 plane 0", False)])
def test_is_header_line(line, is_header):
    assert dota.is_header_line(line) is is_header


@pytest.mark.skipif(SAMPLES is None, reason="real samples not present")
def test_dota_real_samples_headers_and_every_object_line(tmp_path):
    for p in sorted((SAMPLES / "dota" / "labelTxt").glob("*.txt")):
        lines = [raw for raw in p.read_text().splitlines() if raw.strip()]
        header, objs = dota.parse_label_file(p, classes=DOTA_V1_0)
        assert set(header) == {"imagesource", "gsd"}
        assert len(objs) == len(lines) - 2


def test_repeated_header_is_counted():
    report = ImportReport()
    header, _ = dota.parse_header_and_objects(["gsd:1", "gsd:2", "1 1 9 1 9 9 1 9 plane"],
                                              "P.txt", report=report)
    assert header["gsd"] == 2.0 and report.warned == {"duplicate header": 1}


def test_dota_hostile_numbers(tmp_path):
    for bad in ("nan", "inf", "1e999"):
        with pytest.raises(FormatError, match=r"P\.txt:1: non-finite"):
            dota.parse_header_and_objects(["1 1 9 1 9 %s 1 9 plane 0" % bad], "P.txt")
        with pytest.raises(FormatError, match=r"P\.txt:1: bad difficult flag"):
            dota.parse_header_and_objects(["1 1 9 1 9 9 1 9 plane %s" % bad], "P.txt")
    report = ImportReport()
    header, _ = dota.parse_header_and_objects(["gsd:inf"], "P.txt", report=report)
    assert header["gsd"] is None and report.warned == {"non-numeric gsd": 1}


# ----------------------------------------------------------- ImageSets files

def _tiny(path: Path, ext_size=(16, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((ext_size[1], ext_size[0], 3), 90, np.uint8))
    return path


@pytest.mark.parametrize("bad", [b"\xff\xfe0\x000\x00", b"00001\n\xe9t\xe9\n", b"0001\n00\x80\n"])
def test_non_utf8_imagesets_name_the_file_and_line(tmp_path, bad):
    # 0.1.0: UnicodeDecodeError naming no file
    root = tmp_path / "dior"
    _tiny(root / "JPEGImages-trainval" / "00001.jpg")
    _write(root / "Annotations" / "Horizontal Bounding Boxes" / "00001.xml",
           _dior(_dior_obj(box=(1, 1, 5, 5))))
    split = _write(root / "ImageSets" / "Main" / "train.txt", bad)
    line = bad[: bad.index(next(b for b in bad if b >= 0x80).to_bytes(1, "big"))].count(b"\n") + 1
    with pytest.raises(FormatError, match=r"train\.txt:%d: not a UTF-8 split file" % line) as e:
        list(dior.scan(root))
    assert e.value.path == str(split)
    root = tmp_path / "hrsc"
    _tiny(root / "FullDataSet" / "AllImages" / "1.bmp")
    _write(root / "FullDataSet" / "Annotations" / "1.xml", _hrsc(_hrsc_obj()))
    _write(root / "ImageSets" / "test.txt", bad)
    with pytest.raises(FormatError, match=r"test\.txt:%d: not a UTF-8 split file" % line):
        list(hrsc.scan(root))


def test_non_utf8_dota_label_names_the_line(tmp_path):
    p = _write(tmp_path / "P1.txt", b"gsd:1\n1 1 9 1 9 9 1 9 plane 0\n1 1 9 1 9 9 1 9 pl\xe9ne 0\n")
    with pytest.raises(FormatError, match=r"P1\.txt:3: not a UTF-8 label file"):
        dota.parse_label_file(p)


# ----------------------------------------------------------- mask sizes

def _hrsc_tree(root: Path, mask_size, image_size=(200, 100)):
    full = root / "FullDataSet"
    _tiny(full / "AllImages" / "100000001.bmp", image_size)
    _write(full / "Annotations" / "100000001.xml", _hrsc(_hrsc_obj(seg="255,0,0")))
    mask = np.zeros((mask_size[1], mask_size[0], 3), np.uint8)
    mask[20:60, 10:110] = (0, 0, 255)  # BGR for cv2: RGB (255, 0, 0)
    (full / "Segmentations").mkdir(parents=True)
    cv2.imwrite(str(full / "Segmentations" / "100000001.png"), mask)
    return full / "Segmentations" / "100000001.png"


def test_hrsc_mask_of_the_wrong_size_is_refused(tmp_path):
    # 0.1.0: a 300x150 mask on a 200x100 image was accepted (masks outside the image)
    mask = _hrsc_tree(tmp_path / "a", (300, 150))
    with pytest.raises(FormatError, match=r"100000001\.png: mask is 300x150 but its image is "
                       r"200x100") as e:
        list(hrsc.scan(tmp_path / "a"))
    assert e.value.path == str(mask)
    _hrsc_tree(tmp_path / "b", (200, 100))
    recs = list(hrsc.scan(tmp_path / "b"))
    assert recs[0].objects[0].mask.area == 40 * 100


def _isaid_pair(tmp_path: Path, inst: np.ndarray, col: np.ndarray, stem="P1"):
    a = tmp_path / ("%s_instance_id_RGB.png" % stem)
    b = tmp_path / ("%s_instance_color_RGB.png" % stem)
    Image.fromarray(inst).save(a)
    Image.fromarray(col).save(b)
    return a, b


def test_isaid_pngs_of_the_wrong_size_are_refused(tmp_path):
    inst = np.zeros((50, 60, 3), np.uint8)
    inst[5:15, 10:30] = (0, 0, 7)
    a, b = _isaid_pair(tmp_path, inst, inst)
    assert len(isaid.read_instances(a, b, size=(60, 50))) == 1
    with pytest.raises(FormatError, match=r"P1_instance_id_RGB\.png: iSAID mask is 60x50 but its "
                       r"image is 64x50"):
        isaid.read_instances(a, b, size=(64, 50))


def test_isaid_jpeg_damaged_instance_png_is_refused(tmp_path):
    # 0.1.0: a JPEG round trip of the instance PNG gave 18,333 "instances"
    from fiftyone_samrs.testing import synthetic

    gt = synthetic.make_dota_tree(str(tmp_path / "D"), n_images=1, n_objects=30,
                                  size=(800, 600), with_isaid=True)
    id_png = next(Path(gt["root"]).rglob("*_instance_id_RGB.png"))
    color_png = Path(str(id_png).replace("_instance_id_RGB", "_instance_color_RGB"))
    assert len(isaid.read_instances(id_png, color_png, size=(800, 600))) == 30
    img = cv2.imread(str(id_png))
    damaged = cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1], 1)
    cv2.imwrite(str(id_png), damaged)
    with pytest.raises(FormatError, match=r"instance_id_RGB\.png: \d+ of its \d+ instance colours "
                       r"cover fewer than 10 pixels: the PNG looks lossy"):
        isaid.read_instances(id_png, color_png, size=(800, 600))
    got = isaid.read_instances(id_png, color_png, max_specks=None)  # the rule can be turned off
    assert len(got) > 100


def test_damaged_mask_png_is_refused_before_opencv_guesses(tmp_path):
    inst = np.zeros((50, 60, 3), np.uint8)
    inst[5:15, 10:30] = (0, 0, 7)
    a, b = _isaid_pair(tmp_path, inst, inst)
    data = bytearray(a.read_bytes())
    i = data.index(b"IDAT") + 10
    data[i] ^= 0x10
    a.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=r"unreadable iSAID mask PNG \(undecodable image"):
        isaid.read_instances(a, b)


# ---------------------------------------------------- hostile geometry

def test_rasterize_clips_before_testing_pixels():
    far = np.array([[-1e5, -1e5], [1e5, -1e5], [1e5, 1e5], [-1e5, 1e5]])
    t = time.perf_counter()
    m = rasterize([far], 100, 80)
    assert time.perf_counter() - t < 2.0
    assert m.box == (0, 0, 100, 80) and m.area == 8000
    outside = np.array([[5e4, 5e4], [5e4 + 9, 5e4], [5e4 + 9, 5e4 + 9], [5e4, 5e4 + 9]])
    assert rasterize([outside], 100, 80).area == 0
    with pytest.raises(ValueError, match="over the pixel limit"):
        rasterize([far])  # uncut: refused, not a 74 GiB allocation
    with pytest.raises(ValueError, match="non-finite"):
        rasterize([np.array([[0, 0], [np.nan, 0], [1, 1]])], 10, 10)


def test_rasterize_blocks_give_the_same_pixels(monkeypatch):
    from fiftyone_samrs.core import masks

    poly = np.array([[3.2, 1.7], [90.5, 12.1], [70.3, 77.7], [8.9, 60.2]])
    whole = rasterize([poly], 100, 100)
    monkeypatch.setattr(masks, "RASTER_BLOCK", 150)  # ~1 row per block
    blocks = rasterize([poly], 100, 100)
    assert whole.box == blocks.box and np.array_equal(whole.mask, blocks.mask)
    box = rasterize([np.array([[10, 20], [30, 20], [30, 25], [10, 25]])])
    assert box.box == (10, 20, 30, 25) and box.area == 100


def test_match_skips_objects_far_from_every_instance():
    inst = np.zeros((80, 100), bool)
    inst[10:30, 10:40] = True
    from fiftyone_samrs.core.records import InstanceMask

    instances = [(InstanceMask.from_full(inst), "plane")]
    far = 1e5
    objs = [ObjectRecord("plane", (0, 0, 1, 1), quad=np.array(
                [[far, far], [far + 10, far], [far + 10, far + 10], [far, far + 10]])),
            ObjectRecord("plane", (0, 0, 1, 1), quad=np.array(
                [[-far, -far], [far, -far], [far, far], [-far, far]])),
            ObjectRecord("plane", (10, 10, 40, 30), quad=np.array(
                [[10, 10], [40, 10], [40, 30], [10, 30]], float))]
    t = time.perf_counter()
    got = isaid.match_to_objects(instances, objs, width=100, height=80)
    assert time.perf_counter() - t < 2.0
    assert got[0] is None and got[1] is None and got[2] is instances[0][0]
    got = isaid.match_to_objects(instances, objs)  # uncut: the huge region is not matched
    assert got[1] is None and got[2] is instances[0][0]


@pytest.fixture
def dataset_names():
    import fiftyone as fo

    made = []

    def make():
        made.append("samrs-test-hostile-%s" % uuid.uuid4().hex[:8])
        return made[-1]

    yield make
    for name in made:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)


def test_load_isaid_masks_hostile_quad_and_wrong_size(tmp_path, dataset_names):
    # 0.1.0: a 12,000 px quad took 41 s and 2.9 GB, a 100,000 px one asked 74.5 GiB
    from fiftyone_samrs.importing.importers import load_dota
    from fiftyone_samrs.importing.isaid_gt import load_isaid_masks
    from fiftyone_samrs.testing import synthetic

    gt = synthetic.make_dota_tree(str(tmp_path / "D"), n_images=1, n_objects=5,
                                  size=(320, 240), with_isaid=True)
    label = Path(gt["images"][0]["label_path"])
    with open(label, "a") as f:
        f.write("-100000 -100000 100000 -100000 100000 100000 -100000 100000 plane 0\r\n")
        f.write("12000 12000 24000 12000 24000 24000 12000 24000 plane 0\r\n")
    ds = load_dota(gt["root"], name=dataset_names(), version="1.0", progress=False)
    t = time.perf_counter()
    report = load_isaid_masks(ds, gt["root"], progress=False)
    assert time.perf_counter() - t < 30
    assert report.images == 1 and report.objects >= 1
    # an instance PNG of another size than the image
    id_png = next(Path(gt["root"]).rglob("*_instance_id_RGB.png"))
    img = cv2.imread(str(id_png))
    cv2.imwrite(str(id_png), cv2.copyMakeBorder(img, 0, 10, 0, 0, cv2.BORDER_CONSTANT))
    with pytest.raises(FormatError, match=r"instance_id_RGB\.png: iSAID mask is 320x250 but its "
                       r"image is 320x240"):
        load_isaid_masks(ds, gt["root"], progress=False)


# ----------------------------------------------------------- image sizes

def _png_chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(
        ">I", zlib.crc32(ctype + data) & 0xFFFFFFFF)


def _big_png(path: Path, w: int, h: int, body=True, interlace=0) -> Path:
    """A valid 1-bit grey PNG of any size, streamed (a 20000x20000 one is ~60 kB)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, interlace)
    comp = zlib.compressobj(9)
    parts = []
    if interlace:
        for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
                               (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)):
            pw, ph = -(-(w - x0) // dx), -(-(h - y0) // dy)
            if pw > 0 and ph > 0:
                parts.append(comp.compress((b"\x00" + b"\x55" * ((pw + 7) // 8)) * ph))
    else:
        row = b"\x00" + b"\x00" * ((w + 7) // 8)
        for _ in range(0, h, 1000):
            parts.append(comp.compress(row * min(1000, h)))
    idat = b"".join(parts) + comp.flush()
    if not body:
        idat = idat[: len(idat) // 2]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
                     + _png_chunk(b"IEND", b""))
    return path


def test_dota_v2_size_images_are_read_without_pil_limit(tmp_path):
    # 0.1.0: PIL's DecompressionBombError (over 179 Mpx)
    big = _big_png(tmp_path / "images" / "P9999.png", 20000, 20000)
    assert image_size(big) == (20000, 20000)
    check_decodable(big)
    _write(tmp_path / "labelTxt" / "P9999.txt", "gsd:0.1\n10 10 30 10 30 20 10 20 plane 0\n")
    report = ImportReport()
    recs = list(dota.scan(tmp_path, version="2.0", report=report))
    assert [(r.width, r.height) for r in recs] == [(20000, 20000)] and not report.skipped


def test_pixel_limit_can_be_raised_or_lowered(tmp_path, monkeypatch):
    big = _big_png(tmp_path / "a.png", 3000, 2000)
    with pytest.raises(FormatError, match=r"a\.png: image is 3000x2000 = 6000000 pixels, over the "
                       r"limit of 1000000 \(set SAMRS_MAX_IMAGE_PIXELS"):
        image_size(big, max_pixels=10 ** 6)
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000000")
    with pytest.raises(FormatError, match="over the limit"):
        image_size(big)
    assert image_size(big, max_pixels=6 * 10 ** 6) == (3000, 2000)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(ValueError, match="SAMRS_MAX_IMAGE_PIXELS"):
        image_size(big)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tif"])
def test_header_sizes_match_pil(tmp_path, ext):
    for w, h in ((37, 21), (800, 600)):
        p = tmp_path / ("a%d%s" % (w, ext))
        cv2.imwrite(str(p), np.random.default_rng(0).integers(0, 255, (h, w, 3), np.uint8))
        with Image.open(p) as img:
            assert image_size(p) == img.size == (w, h)
        check_decodable(p)


def test_other_header_variants(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 255, (30, 50, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "p.jpg", progressive=True)
    Image.fromarray(rgb).convert("L").save(tmp_path / "g.tif", compression="tiff_lzw")
    Image.fromarray(rgb).save(tmp_path / "b.tif", big_tiff=True)
    Image.fromarray(rgb).save(tmp_path / "x.webp")
    Image.fromarray(rgb).save(tmp_path / "misnamed.jpg", format="PNG")
    for name in ("p.jpg", "g.tif", "b.tif", "x.webp", "misnamed.jpg"):
        assert image_size(tmp_path / name) == (50, 30), name
        check_decodable(tmp_path / name)
    interlaced = _big_png(tmp_path / "i.png", 37, 23, interlace=1)
    with Image.open(interlaced) as img:
        img.load()
    assert image_size(interlaced) == (37, 23)
    check_decodable(interlaced)


def test_unreadable_headers(tmp_path):
    for name, data in (("t.png", b"\x89PNG\r\n\x1a\n\x00\x00"), ("t.jpg", b"\xff\xd8\xff"),
                       ("t.bmp", b"BM\x00"), ("t.tif", b"II*\x00\xff\xff\xff\x00"),
                       ("t.txt.png", b"not an image at all")):
        with pytest.raises(FormatError, match=r"%s: unreadable image" % name.replace(".", r"\.")):
            image_size(_write(tmp_path / name, data))
    with pytest.raises(FormatError, match="image file not found"):
        image_size(tmp_path / "missing.png")
    with pytest.raises(FormatError, match="empty size 0x5"):
        image_size(_big_png(tmp_path / "z.png", 0, 5))


def test_check_decodable_finds_undecodable_bodies(tmp_path):
    # a valid header with a broken body passed import in 0.1.0 and stopped every segment run
    cut = _big_png(tmp_path / "cut.png", 20000, 20000, body=False)
    assert image_size(cut) == (20000, 20000)
    with pytest.raises(FormatError, match=r"cut\.png: undecodable image \(PNG: image data stream "
                       r"is cut short"):
        check_decodable(cut)
    rgb = np.random.default_rng(2).integers(0, 255, (64, 96, 3), np.uint8)
    for ext in (".png", ".jpg", ".bmp"):
        p = tmp_path / ("t" + ext)
        cv2.imwrite(str(p), rgb)
        data = p.read_bytes()
        p.write_bytes(data[: int(len(data) * 0.6)])
        assert image_size(p) == (96, 64)
        with pytest.raises(FormatError, match=r"t\%s: undecodable image" % ext):
            check_decodable(p)
    p = tmp_path / "crc.png"
    cv2.imwrite(str(p), rgb)
    data = bytearray(p.read_bytes())
    data[data.index(b"IDAT") + 20] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=r"crc\.png: undecodable image \(PNG: CRC error in IDAT"):
        check_decodable(p)
    # a JPEG whose frame header says 20000x20000 but whose data is 96x64
    p = tmp_path / "lie.jpg"
    cv2.imwrite(str(p), rgb)
    data = bytearray(p.read_bytes())
    sof = next(i for i in range(2, len(data) - 9) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
    data[sof + 5: sof + 9] = struct.pack(">HH", 20000, 20000)
    p.write_bytes(bytes(data))
    assert image_size(p) == (20000, 20000)
    t = time.perf_counter()
    with pytest.raises(FormatError, match=r"lie\.jpg: undecodable image"):
        check_decodable(p)
    assert time.perf_counter() - t < 10
