"""Valid-file generators, mutations and outcome checks for fuzzing the parsers.

Shared by ``tests/test_fuzz_formats.py`` (hypothesis, bounded) and
``scripts/fuzz_formats.py`` (the offline campaign). Everything is driven by a
``random.Random``, so a case is reproducible from its seed; hypothesis hands
in its own (shrinkable) ``Random``.

A case's outcome is one of:

- ``"parsed"``: records came back, every coordinate finite, no warning;
- ``"counted"``: records came back and the report counted a skip or warning;
- ``"error"``: a :class:`FormatError` naming one of the case's files;
- ``"unclear error"``: a :class:`FormatError` naming no file of the case;
- ``"bad data"``: records with NaN/inf values, or fewer objects than the
  file has object elements with nothing counted (a silent drop);
- ``"crash"``: any other exception.

Only the first four are acceptable (``ACCEPTED`` without ``"unclear error"``).
"""

from __future__ import annotations

import inspect
import math
import os
import random
import re
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

ACCEPTED = ("parsed", "counted", "error")

# --------------------------------------------------------------------------
# valid files
# --------------------------------------------------------------------------

DOTA_NAMES = ("plane", "ship", "storage-tank", "baseball-diamond", "tennis-court",
              "basketball-court", "ground-track-field", "harbor", "bridge", "large-vehicle",
              "small-vehicle", "helicopter", "roundabout", "soccer-ball-field", "swimming-pool")
DIOR_NAMES = ("airplane", "Expressway-Service-area", "Expressway-toll-station", "vehicle",
              "ship", "golffield", "storagetank", "windmill")
FAIR1M_NAMES = ("Small Car", "Boeing737", "Dry Cargo Ship", "other-airplane", "Van",
                "Tennis Court", "Intersection")


def _quad(rng: random.Random, w: int, h: int) -> List[float]:
    cx, cy = rng.uniform(10, w - 10), rng.uniform(10, h - 10)
    a, b, t = rng.uniform(3, 40), rng.uniform(3, 40), rng.uniform(-math.pi, math.pi)
    c, s = math.cos(t), math.sin(t)
    pts = []
    for dx, dy in ((-a, -b), (a, -b), (a, b), (-a, b)):
        pts += [cx + dx * c - dy * s, cy + dx * s + dy * c]
    return pts


def dota_text(rng: random.Random) -> str:
    lines = []
    if rng.random() < 0.8:
        lines.append("imagesource:%s" % rng.choice(["GoogleEarth", "GF", "JL1"]))
        lines.append("gsd:%s" % rng.choice(["0.146343590398", "null", "1", "0.266578848023"]))
    if rng.random() < 0.2:
        lines.append("acquisition dates:2017-03-10 11:05")
    floats = rng.random() < 0.5
    for _ in range(rng.randint(1, 6)):
        q = _quad(rng, 1000, 800)
        coords = " ".join(("%.1f" % v) if floats else str(int(round(v))) for v in q)
        tail = "" if rng.random() < 0.15 else " %d" % rng.choice([0, 0, 1, 2])
        lines.append("%s %s%s" % (coords, rng.choice(DOTA_NAMES), tail))
    eol = "\r\n" if rng.random() < 0.5 else "\n"
    return eol.join(lines) + eol


def dior_xml(rng: random.Random, oriented: bool) -> str:
    objs = []
    for _ in range(rng.randint(1, 4)):
        name = rng.choice(DIOR_NAMES)
        if oriented:
            q = [int(round(v)) for v in _quad(rng, 800, 800)]
            tags = ("x_left_top", "y_left_top", "x_right_top", "y_right_top",
                    "x_right_bottom", "y_right_bottom", "x_left_bottom", "y_left_bottom")
            body = "".join("<%s>%d</%s>" % (t, v, t) for t, v in zip(tags, q))
            objs.append("<object><type>robndbox</type><name>%s</name><pose>Unspecified</pose>"
                        "<truncated>0</truncated><difficult>%d</difficult><robndbox>%s"
                        "</robndbox><angle>%d</angle></object>"
                        % (name, rng.randint(0, 1), body, rng.choice([0, 10, 45])))
        else:
            x0, y0 = rng.randint(0, 700), rng.randint(0, 700)
            x1, y1 = x0 + rng.randint(1, 99), y0 + rng.randint(1, 99)
            objs.append("<object><name>%s</name><pose>Unspecified</pose><truncated>0</truncated>"
                        "<difficult>0</difficult><bndbox><xmin>%d</xmin><ymin>%d</ymin>"
                        "<xmax>%d</xmax><ymax>%d</ymax></bndbox></object>" % (name, x0, y0, x1, y1))
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<annotation>\n<filename>00001.jpg</filename>\n'
            "<source><database>Unknown</database></source>\n<size><width>800</width>"
            "<height>800</height><depth>3</depth></size>\n<segmented>0</segmented>\n%s\n"
            "</annotation>\n" % "\n".join(objs))


def fair1m_xml(rng: random.Random) -> str:
    objs = []
    for _ in range(rng.randint(1, 4)):
        q = _quad(rng, 1000, 1000)
        pts = ["%.6f,%.6f" % (q[i], q[i + 1]) for i in range(0, 8, 2)]
        pts.append(pts[0])
        prob = "<probability>%.3f</probability>" % rng.random() if rng.random() < 0.2 else ""
        objs.append("<object>\n<coordinate>pixel</coordinate>\n<type>rectangle</type>\n"
                    "<description>None</description>\n<possibleresult>\n<name>%s</name>%s\n"
                    "</possibleresult>\n<points>\n%s\n</points>\n</object>"
                    % (rng.choice(FAIR1M_NAMES), prob,
                       "\n".join("<point>%s</point>" % p for p in pts)))
    return ('<?xml version="1.0" encoding="utf-8"?>\n<annotation>\n<source>\n<filename>0.tif'
            "</filename>\n<origin>GF2/GF3</origin>\n</source>\n<research>\n<version>2.0"
            "</version>\n<provider>FAIR1M</provider>\n</research>\n<size>\n<width>1000</width>\n"
            "<height>1000</height>\n<depth>3</depth>\n</size>\n<objects>\n%s\n</objects>\n"
            "</annotation>" % "\n".join(objs))


def hrsc_xml(rng: random.Random) -> str:
    objs = []
    for k in range(rng.randint(1, 3)):
        cx, cy = rng.uniform(200, 900), rng.uniform(200, 600)
        w, h, a = rng.uniform(60, 300), rng.uniform(15, 60), rng.uniform(-1.5, 1.5)
        c, s = math.cos(a), math.sin(a)
        xs = [cx + dx * c - dy * s for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2),
                                                 (w / 2, h / 2), (-w / 2, h / 2))]
        ys = [cy + dx * s + dy * c for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2),
                                                 (w / 2, h / 2), (-w / 2, h / 2))]
        bow = (cx + w / 2 * c, cy + w / 2 * s)
        color = "%d,%d,%d" % (rng.randint(1, 255), rng.randint(0, 255), rng.randint(0, 255)) \
            if rng.random() < 0.5 else "\n      "
        objs.append(
            "<HRSC_Object>\n<Object_ID>1000000%02d</Object_ID>\n<Class_ID>100000013</Class_ID>\n"
            "<truncated>0</truncated>\n<difficult>0</difficult>\n<box_xmin>%d</box_xmin>\n"
            "<box_ymin>%d</box_ymin>\n<box_xmax>%d</box_xmax>\n<box_ymax>%d</box_ymax>\n"
            "<mbox_cx>%.4f</mbox_cx>\n<mbox_cy>%.4f</mbox_cy>\n<mbox_w>%.4f</mbox_w>\n"
            "<mbox_h>%.4f</mbox_h>\n<mbox_ang>%.6f</mbox_ang>\n<segmented>1</segmented>\n"
            "<seg_color>%s</seg_color>\n<header_x>%d</header_x>\n<header_y>%d</header_y>\n"
            "</HRSC_Object>"
            % (k, min(xs), min(ys), max(xs), max(ys), cx, cy, w, h, a, color, bow[0], bow[1]))
    return ("<HRSC_Image>\n<Img_ID>100000001</Img_ID>\n<Img_FileFmt>bmp</Img_FileFmt>\n"
            "<Img_SizeWidth>1172</Img_SizeWidth>\n<Img_SizeHeight>816</Img_SizeHeight>\n"
            "<Img_SizeDepth>3</Img_SizeDepth>\n<segmented>1</segmented>\n<Img_Des>\n</Img_Des>\n"
            "<HRSC_Objects>\n%s\n</HRSC_Objects>\n</HRSC_Image>\n" % "\n".join(objs))


def imagesets_text(rng: random.Random, stems) -> str:
    eol = rng.choice(["\n", "\r\n"])
    return eol.join(stems) + eol


def isaid_arrays(rng: random.Random, w: int = 64, h: int = 48):
    """``(instance_id RGB, class colour RGB)`` arrays with a few rectangles."""
    from fiftyone_samrs.formats.isaid import ISAID_COLORS

    inst = np.zeros((h, w, 3), np.uint8)
    col = np.zeros((h, w, 3), np.uint8)
    palette = list(ISAID_COLORS)
    for k in range(rng.randint(1, 5)):
        x0, y0 = rng.randint(0, w - 8), rng.randint(0, h - 8)
        x1, y1 = x0 + rng.randint(4, 8), y0 + rng.randint(4, 8)
        inst[y0:y1, x0:x1] = (k + 1, rng.randint(0, 3), 0)
        col[y0:y1, x0:x1] = palette[rng.randrange(len(palette))]
    return inst, col


# --------------------------------------------------------------------------
# mutations (bytes in, bytes out)
# --------------------------------------------------------------------------

HOSTILE_NUMBERS = ("nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e999", "-0", "-0.0",
                   "1e308", "-1e308", "99999999999999999999", "1e16", "0x1F", "1_000", "",
                   "  ", "12,5", "12:30", "a:1", "+7", "\u0661\u0662", "9" * 400)

_NUM = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_TAG = re.compile(rb"</?([A-Za-z_][\w.-]*)[^<>]*>")
_TOKEN = re.compile(rb"\S+|<[^<>]*>")


def _spans(pattern, data: bytes):
    return [m.span() for m in pattern.finditer(data)]


def m_number(data: bytes, rng: random.Random) -> bytes:
    spans = _spans(_NUM, data)
    if not spans:
        return data
    a, b = rng.choice(spans)
    return data[:a] + rng.choice(HOSTILE_NUMBERS).encode("utf-8") + data[b:]


def m_all_numbers(data: bytes, rng: random.Random) -> bytes:
    """One hostile value in every numeric field (the 'inf everywhere' case)."""
    value = rng.choice(("nan", "inf", "1e999", "-0")).encode()
    return _NUM.sub(lambda m: value, data) if rng.random() < 0.3 else m_number(data, rng)


def m_delete_token(data: bytes, rng: random.Random) -> bytes:
    spans = _spans(_TOKEN, data)
    if not spans:
        return data
    a, b = rng.choice(spans)
    return data[:a] + data[b:]


def m_duplicate_token(data: bytes, rng: random.Random) -> bytes:
    spans = _spans(_TOKEN, data)
    if not spans:
        return data
    a, b = rng.choice(spans)
    return data[:b] + b" " + data[a:b] + data[b:]


def m_duplicate_line(data: bytes, rng: random.Random) -> bytes:
    lines = data.splitlines(keepends=True)
    if not lines:
        return data
    i = rng.randrange(len(lines))
    return b"".join(lines[: i + 1] + [lines[i]] + lines[i + 1:])


def m_delete_line(data: bytes, rng: random.Random) -> bytes:
    lines = data.splitlines(keepends=True)
    if not lines:
        return data
    i = rng.randrange(len(lines))
    return b"".join(lines[:i] + lines[i + 1:])


def m_truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)] if data else data


def m_encoding(data: bytes, rng: random.Random) -> bytes:
    choice = rng.randrange(6)
    if choice == 0:  # a stray non-UTF-8 byte
        i = rng.randrange(len(data) + 1)
        return data[:i] + rng.choice([b"\xff", b"\xe9", b"\xc3", b"\x80\x81"]) + data[i:]
    if choice == 1:
        return data.decode("utf-8", "replace").encode("utf-16")
    if choice == 2:
        return data.decode("utf-8", "replace").replace("e", "\u00e9").encode("latin-1", "replace")
    if choice == 3:  # declared encoding
        enc = rng.choice([b"foo-bar", b"utf-16", b"latin-1", b"ascii", b"x" * 40])
        if data.startswith(b"<?xml"):
            return re.sub(rb'encoding=["\'][^"\']*["\']', b'encoding="' + enc + b'"', data, 1)
        return b'<?xml version="1.0" encoding="' + enc + b'"?>\n' + data
    if choice == 4:
        return b"\xef\xbb\xbf" + data
    return data.replace(b"\n", b"\x00\n", 1)


def m_rename_tag(data: bytes, rng: random.Random) -> bytes:
    names = sorted({m.group(1) for m in _TAG.finditer(data)})
    if not names:
        return data
    old = rng.choice(names)
    new = rng.choice([old + b"x", b"object", b"objects", b"points", b"bndbox", b"robndbox",
                      b"HRSC_Object", b"HRSC_Objects", b"name", old.upper()])
    pat = re.compile(rb"(</?)" + re.escape(old) + rb"(?=[\s/>])")
    if rng.random() < 0.5:
        return pat.sub(lambda m: m.group(1) + new, data)
    spans = [m.span() for m in pat.finditer(data)]  # one occurrence only: often broken XML
    if not spans:
        return data
    a, b = rng.choice(spans)
    return data[:a] + pat.sub(lambda m: m.group(1) + new, data[a:b]) + data[b:]


def m_unwrap(data: bytes, rng: random.Random) -> bytes:
    """Removes a container's start and end tags, keeping its children."""
    names = sorted({m.group(1) for m in _TAG.finditer(data)})
    if not names:
        return data
    name = rng.choice([n for n in names if n in (b"objects", b"HRSC_Objects", b"points",
                                                 b"possibleresult", b"bndbox")] or names)
    return re.sub(rb"</?" + re.escape(name) + rb"\s*>", b"", data)


def m_duplicate_element(data: bytes, rng: random.Random) -> bytes:
    names = sorted({m.group(1) for m in _TAG.finditer(data)})
    if not names:
        return data
    name = re.escape(rng.choice(names))
    spans = [m.span() for m in re.finditer(rb"<" + name + rb"[\s>].*?</" + name + rb">", data,
                                           re.S)]
    if not spans:
        return data
    a, b = rng.choice(spans)
    where = rng.choice([a, b, len(data) - len(b"</annotation>\n")])
    where = max(0, min(where, len(data)))
    return data[:where] + data[a:b] + data[where:]


def m_hostile_xml(data: bytes, rng: random.Random) -> bytes:
    dtd = rng.choice([
        b'<!DOCTYPE a [<!ENTITY x "xxxxxxxxxx"><!ENTITY y "&x;&x;&x;&x;&x;&x;&x;&x;">]>',
        b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
        b'<!DOCTYPE a SYSTEM "http://example.invalid/a.dtd">',
    ])
    body = re.sub(rb"^<\?xml[^>]*>\s*", b"", data)
    head = b'<?xml version="1.0" encoding="UTF-8"?>\n' + dtd + b"\n"
    if b"ENTITY x" in dtd:
        body = re.sub(rb"(<name>)", rb"\1&x;", body, 1)
    return head + body


TEXT_MUTATIONS: Tuple[Callable, ...] = (
    m_number, m_number, m_all_numbers, m_delete_token, m_duplicate_token, m_duplicate_line,
    m_delete_line, m_truncate, m_encoding)
XML_MUTATIONS: Tuple[Callable, ...] = TEXT_MUTATIONS + (
    m_rename_tag, m_rename_tag, m_unwrap, m_duplicate_element, m_hostile_xml)


def mutate(data: bytes, rng: random.Random, mutations=TEXT_MUTATIONS, max_n: int = 3) -> bytes:
    """Applies 1 to ``max_n`` random mutations."""
    for _ in range(rng.randint(1, max_n)):
        data = rng.choice(mutations)(data, rng)
    return data


# --------------------------------------------------------------------------
# PNG mutations for the iSAID pair
# --------------------------------------------------------------------------

def png_bytes(arr: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr[..., ::-1]))
    assert ok
    return buf.tobytes()


def mutate_png(data: bytes, rng: random.Random) -> bytes:
    import struct

    choice = rng.randrange(6)
    if choice == 0:
        return m_truncate(data, rng)
    if choice == 1 and len(data) > 40:  # flip a byte after the header
        i = rng.randrange(33, len(data))
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
    if choice == 2 and len(data) > 24:  # another size in IHDR (CRC left wrong or fixed)
        import zlib

        w, h = rng.choice([(65, 48), (64, 49), (1, 1), (0, 48), (2 ** 31 - 1, 2), (40000, 30000)])
        ihdr = b"IHDR" + struct.pack(">II", w, h) + data[24:29]
        crc = struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF) if rng.random() < 0.7 else data[29:33]
        return data[:12] + ihdr + crc + data[33:]
    if choice == 3:
        return data[:8] + data[8 + rng.randrange(len(data) - 8 or 1):]
    if choice == 4:
        return b"GIF89a" + data[6:]
    return data[:rng.randrange(len(data))] + data  # repeated prefix


# --------------------------------------------------------------------------
# outcomes
# --------------------------------------------------------------------------

def accepts(fn, name: str) -> bool:
    """Whether ``fn`` takes a keyword ``name`` (older parser versions may not)."""
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _finite(v) -> bool:
    if isinstance(v, (float, int)) and not isinstance(v, bool):
        return math.isfinite(v)
    if isinstance(v, np.ndarray):
        return v.dtype.kind not in "fc" or bool(np.isfinite(v).all())
    if isinstance(v, (tuple, list)):
        return all(_finite(x) for x in v)
    if isinstance(v, dict):
        return all(_finite(x) for x in v.values())
    return True


def objects_finite(objects) -> bool:
    for o in objects:
        if not _finite(tuple(o.hbox)) or (o.quad is not None and not _finite(o.quad)):
            return False
        if not _finite(o.attributes) or not _finite([o.difficult]):
            return False
    return True


def count_elements(data: bytes, tag: str) -> Optional[int]:
    """How many ``tag`` elements a (safely parsed) XML document holds, or None."""
    try:
        import io

        import defusedxml.ElementTree as DET

        root = DET.parse(io.BytesIO(data)).getroot()
    except Exception:
        return None
    return sum(1 for e in root.iter(tag) if e is not root)


def classify(run: Callable[[], Tuple[list, object]], files, expect: Optional[int] = None
             ) -> Tuple[str, str]:
    """Runs one case; returns ``(outcome, detail)`` (see the module docstring).

    Args:
        run: returns ``(objects, report)`` (report may be None)
        files: the paths a clear error may name
        expect: the number of object elements in the file, when known
    """
    from fiftyone_samrs.core.records import FormatError

    names = {os.path.abspath(os.fspath(f)) for f in files}
    try:
        objects, report = run()
    except FormatError as e:
        path = os.path.abspath(e.path)
        if path in names or any(path.startswith(n + os.sep) or n.startswith(path + os.sep)
                                for n in names):
            return "error", str(e)[:200]
        return "unclear error", str(e)[:200]
    except RecursionError as e:
        return "crash", "RecursionError: %s" % e
    except Exception as e:  # the point: anything else is a crash
        return "crash", "%s: %s" % (type(e).__name__, str(e)[:200])
    if not objects_finite(objects):
        return "bad data", "non-finite value stored"
    counted = report is not None and (sum(report.warned.values()) + sum(report.skipped.values()))
    if expect is not None and len(objects) < expect and not counted:
        return "bad data", "%d objects of %d kept, nothing counted" % (len(objects), expect)
    return ("counted" if counted else "parsed"), ""


# --------------------------------------------------------------------------
# one case per parser
# --------------------------------------------------------------------------

def _write(path: str, data: bytes) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def case_dota(rng: random.Random, tmp: str, mutated: bool = True) -> Tuple[str, str]:
    from fiftyone_samrs.core.classes import DOTA_V1_0
    from fiftyone_samrs.core.records import ImportReport
    from fiftyone_samrs.formats import dota

    data = dota_text(rng).encode("utf-8")
    if mutated:
        data = mutate(data, rng)
    path = _write(os.path.join(tmp, "labelTxt", "P0001.txt"), data)
    keep = rng.random() < 0.3
    expect = None  # lines shaped like object lines (9/10 tokens, >= 4 numbers)
    try:
        expect = sum(1 for line in data.decode("utf-8-sig").splitlines()
                     if len(line.split()) in (9, 10)
                     and sum(_is_number(t) for t in line.split()[:8]) >= 4)
    except UnicodeDecodeError:
        pass

    def run():
        report = ImportReport()
        _, objs = dota.parse_label_file(path, keep_unknown=keep, classes=DOTA_V1_0, report=report)
        return objs, report

    return classify(run, [path], expect=expect)


def _is_number(t: str) -> bool:
    try:
        float(t)
        return True
    except ValueError:
        return False


def case_xml(kind: str, rng: random.Random, tmp: str, mutated: bool = True) -> Tuple[str, str]:
    from fiftyone_samrs.core.records import ImportReport
    from fiftyone_samrs.formats import dior, fair1m, hrsc

    if kind in ("dior-hbb", "dior-obb"):
        data, parse, tag = dior_xml(rng, kind == "dior-obb"), dior.parse_xml, "object"
    elif kind == "fair1m":
        data, parse, tag = fair1m_xml(rng), fair1m.parse_xml, "object"
    else:
        data, parse, tag = hrsc_xml(rng), hrsc.parse_xml, "HRSC_Object"
    data = data.encode("utf-8")
    if mutated:
        data = mutate(data, rng, XML_MUTATIONS)
    path = _write(os.path.join(tmp, "ann", "1.xml"), data)
    with_report = accepts(parse, "report")

    def run():
        report = ImportReport() if with_report else None
        _, objs = parse(path, report=report) if with_report else parse(path)
        return objs, report

    return classify(run, [path], expect=count_elements(data, tag))


def _tiny_image(path: str, ext: str) -> str:
    import cv2

    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(path, np.full((16, 16, 3), 90, np.uint8))
    return path


def case_imagesets(rng: random.Random, tmp: str, mutated: bool = True) -> Tuple[str, str]:
    """A tiny DIOR or HRSC tree whose ``ImageSets`` files are mutated; full ``scan``."""
    from fiftyone_samrs.core.records import ImportReport
    from fiftyone_samrs.formats import dior, hrsc

    files = []
    if rng.random() < 0.5:
        root = os.path.join(tmp, "dior")
        _tiny_image(os.path.join(root, "JPEGImages-trainval", "00001.jpg"), ".jpg")
        xml = dior_xml(random.Random(1), False).replace(">800<", ">16<").encode()
        xml = re.sub(rb"<(x|y)(min|max)>\d+<", lambda m: b"<%s%s>%d<" % (
            m.group(1), m.group(2), 2 if m.group(2) == b"min" else 9), xml)
        _write(os.path.join(root, "Annotations", "Horizontal Bounding Boxes", "00001.xml"), xml)
        for s in ("train", "val", "test"):
            data = imagesets_text(rng, ["00001"] if s == "train" else ["00002"]).encode()
            files.append(_write(os.path.join(root, "ImageSets", "Main", s + ".txt"),
                                mutate(data, rng) if mutated else data))
        split = rng.choice([None, "train", "trainval"])

        def run():
            report = ImportReport()
            recs = list(dior.scan(root, split=split, report=report))
            return [o for r in recs for o in r.objects], report
    else:
        root = os.path.join(tmp, "hrsc")
        _tiny_image(os.path.join(root, "FullDataSet", "AllImages", "100000001.bmp"), ".bmp")
        xml = (b"<HRSC_Image><Img_ID>100000001</Img_ID><HRSC_Objects><HRSC_Object>"
               b"<Object_ID>1</Object_ID><box_xmin>2</box_xmin><box_ymin>3</box_ymin>"
               b"<box_xmax>12</box_xmax><box_ymax>9</box_ymax></HRSC_Object></HRSC_Objects>"
               b"</HRSC_Image>")
        _write(os.path.join(root, "FullDataSet", "Annotations", "100000001.xml"), xml)
        for s in ("trainval", "test"):
            data = imagesets_text(rng, ["100000001"] if s == "trainval" else ["100000002"]).encode()
            files.append(_write(os.path.join(root, "ImageSets", s + ".txt"),
                                mutate(data, rng) if mutated else data))
        split = rng.choice([None, "trainval", "test"])

        def run():
            report = ImportReport()
            recs = list(hrsc.scan(root, split=split, with_masks=False, report=report))
            return [o for r in recs for o in r.objects], report

    return classify(run, files + [root])


def case_isaid(rng: random.Random, tmp: str, mutated: bool = True) -> Tuple[str, str]:
    """An iSAID PNG pair, mutated as bytes or as pixels, then read and matched
    against hostile quads (far outside the 64x48 image)."""
    import cv2

    from fiftyone_samrs.core.records import ObjectRecord
    from fiftyone_samrs.formats import isaid

    w, h = 64, 48
    inst, col = isaid_arrays(rng, w, h)
    a, b = png_bytes(inst), png_bytes(col)
    if mutated:
        which = rng.randrange(5)
        if which == 0:
            a = mutate_png(a, rng)
        elif which == 1:
            b = mutate_png(b, rng)
        elif which == 2:  # JPEG round trip of the instance ids
            jpg = cv2.imdecode(cv2.imencode(".jpg", np.ascontiguousarray(inst[..., ::-1]),
                                            [cv2.IMWRITE_JPEG_QUALITY, rng.randint(30, 100)])[1], 1)
            a = png_bytes(jpg[..., ::-1])
        elif which == 3:  # another size
            a = png_bytes(np.zeros((h + rng.randint(1, 5), w, 3), np.uint8))
        else:  # random noise colours: many specks
            noise = inst.copy()
            n = rng.randint(1, 400)
            ys = [rng.randrange(h) for _ in range(n)]
            xs = [rng.randrange(w) for _ in range(n)]
            noise[ys, xs] = [(rng.randrange(256), rng.randrange(256), rng.randrange(1, 256))
                             for _ in range(n)]
            a = png_bytes(noise)
    pa = _write(os.path.join(tmp, "isaid", "P1_instance_id_RGB.png"), a)
    pb = _write(os.path.join(tmp, "isaid", "P1_instance_color_RGB.png"), b)
    far = rng.choice([1e3, 1.2e4, 1e5, 1e6])
    quads = [np.array([[-far, -far], [far, -far], [far, far], [-far, far]]),
             np.array([[far, far], [far + 50, far], [far + 50, far + 50], [far, far + 50]]),
             np.array([[5, 5], [20, 5], [20, 20], [5, 20]], float)]
    objects = [ObjectRecord(label="plane", hbox=(0, 0, 1, 1), quad=q) for q in quads]
    sized = accepts(isaid.read_instances, "size")
    clipped = accepts(isaid.match_to_objects, "width")

    truth = len(np.unique(rgb_keys(inst)))

    def run():
        found = (isaid.read_instances(pa, pb, size=(w, h)) if sized
                 else isaid.read_instances(pa, pb))
        # up to isaid.MAX_SPECKS specks are accepted by design (load_isaid_masks
        # then counts each as an "unmatched iSAID instance"); hundreds are not
        if len(found) > max(100, 20 * truth):
            raise _Implausible("%d instances read from a file painted with %d"
                               % (len(found), truth))
        if clipped:  # older versions rasterise unclipped: 74 GiB for the 1e5 quad
            isaid.match_to_objects(found, objects, width=w, height=h)
        return [], None

    out = classify(run, [pa, pb])
    if out[0] == "crash" and out[1].startswith("_Implausible"):
        return "bad data", out[1].split(": ", 1)[1]
    return out


class _Implausible(Exception):
    pass


def rgb_keys(img: np.ndarray) -> np.ndarray:
    """The non-black RGB colours of an image as ints."""
    k = (img[..., 0].astype(np.int64) << 16) | (img[..., 1].astype(np.int64) << 8) | img[..., 2]
    k = k.reshape(-1)
    return k[k != 0]


#: parser name -> case function ``(rng, tmp, mutated) -> (outcome, detail)``
CASES: Dict[str, Callable] = {
    "DOTA txt": case_dota,
    "DIOR XML (HBB)": lambda rng, tmp, mutated=True: case_xml("dior-hbb", rng, tmp, mutated),
    "DIOR-R XML (OBB)": lambda rng, tmp, mutated=True: case_xml("dior-obb", rng, tmp, mutated),
    "FAIR1M XML": lambda rng, tmp, mutated=True: case_xml("fair1m", rng, tmp, mutated),
    "HRSC XML": lambda rng, tmp, mutated=True: case_xml("hrsc", rng, tmp, mutated),
    "iSAID PNG pair": case_isaid,
    "ImageSets files": case_imagesets,
}
