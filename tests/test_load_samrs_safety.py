"""load_samrs on hostile or broken exports (issue 11).

0.1.0 followed absolute or ``../`` file names out of the export, raised raw
``KeyError``/``TypeError`` on malformed JSON and left a partial dataset each
time, and decoded garbage RLE into a mask nobody flagged. Now: a FormatError
naming ``annotations.json`` and the entry, and no dataset.
"""

import copy
import json
import uuid

import cv2
import fiftyone as fo
import numpy as np
import pytest

from fiftyone_samrs.core.records import FormatError
from fiftyone_samrs.exporting.coco_rle import encode_crop, rle_to_json
from fiftyone_samrs.exporting.samrs_import import SAMRSDatasetImporter, load_samrs


def _export(tmp_path):
    """A small SAMRS-layout folder: 2 images, 3 annotations."""
    out = tmp_path / "export"
    (out / "images").mkdir(parents=True)
    (out / "gray").mkdir()
    images, anns = [], []
    for i in (1, 2):
        cv2.imwrite(str(out / "images" / ("P%d.png" % i)), np.zeros((20, 30, 3), np.uint8))
        images.append({"id": i, "file_name": "P%d.png" % i, "width": 30, "height": 20})
    for k, (iid, box) in enumerate([(1, (2, 3, 5, 4)), (1, (10, 10, 6, 6)), (2, (0, 0, 4, 4))]):
        x, y, w, h = box
        crop = np.ones((h, w), bool)
        rle = rle_to_json(encode_crop(crop, x, y, 20, 30))
        anns.append({"id": k + 1, "image_id": iid, "category_id": k % 2, "segmentation": rle,
                     "area": w * h, "bbox": [x, y, w, h], "iscrowd": 0, "score": 0.9,
                     "prompt_bbox": [x, y, w, h]})
    data = {"info": {"category_id_start": 0}, "licenses": [],
            "categories": [{"id": 0, "name": "plane"}, {"id": 1, "name": "ship"}],
            "images": images, "annotations": anns}
    (out / "classes.txt").write_text("plane\nship\n")
    (out / "annotations.json").write_text(json.dumps(data))
    return out, data


def _write(out, data):
    (out / "annotations.json").write_text(json.dumps(data) if not isinstance(data, str)
                                          else data)


@pytest.fixture
def export(tmp_path):
    return _export(tmp_path)


def _refused(out, match, **kw):
    name = "samrs-test-ls-%s" % uuid.uuid4().hex[:8]
    with pytest.raises(FormatError, match=match) as e:
        load_samrs(str(out), name=name, progress=False, **kw)
    assert not fo.dataset_exists(name)  # no partial dataset
    assert "annotations.json" in str(e.value)
    return str(e.value)


def test_a_good_export_loads(export):
    out, data = export
    ds = load_samrs(str(out), persistent=False, progress=False)
    try:
        assert len(ds) == 2 and ds.count("sam.detections") == 3
        assert ds.info["samrs"]["import_complete"] is True
    finally:
        ds.delete()


@pytest.mark.parametrize("file_name,match", [
    ("../../etc/passwd", "outside the export"),
    ("sub/../../x.png", "outside the export"),
    ("/etc/passwd", "absolute path"),
    ("", "non-empty string"),
    (7, "non-empty string"),
])
def test_file_names_must_stay_inside_the_folder(export, file_name, match):
    out, data = export
    data["images"][1]["file_name"] = file_name
    _write(out, data)
    msg = _refused(out, match)
    assert "images[1]" in msg


def test_absolute_names_only_when_allowed(export, tmp_path):
    out, data = export
    data["images"][0]["file_name"] = str(out / "images" / "P1.png")
    _write(out, data)
    _refused(out, "allow_outside=True")
    ds = load_samrs(str(out), persistent=False, progress=False, allow_outside=True)
    ds.delete()
    data["images"][0]["file_name"] = "../x/P1.png"  # never, even then
    _write(out, data)
    _refused(out, "outside", allow_outside=True)


def _mutations(data):
    def m(path, value):
        d = copy.deepcopy(data)
        node = d
        for key in path[:-1]:
            node = node[key]
        if value is KeyError:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return d

    return [
        ("[1, 2]", "top level must be an object"),
        ('{"images": ', "invalid JSON"),
        (m(["images"], {"a": 1}), "'images' must be a list"),
        (m(["images", 0], "P1.png"), r"images\[0\]: must be an object"),
        (m(["images", 0, "width"], KeyError), r"images\[0\]: needs an integer 'id'"),
        (m(["images", 0, "height"], "20"), r"images\[0\]"),
        (m(["images", 1, "id"], 1), r"images\[1\]: image id 1 is repeated"),
        (m(["annotations", 0, "image_id"], KeyError), r"annotations\[0\] \(id 1\): image_id"),
        (m(["annotations", 2, "image_id"], 99), r"annotations\[2\] \(id 3\): image_id 99"),
        (m(["annotations", 1, "category_id"], 7), r"annotations\[1\] \(id 2\): unknown category"),
        (m(["annotations", 1, "bbox"], ["a", 1, 2, 3]), "bbox must be 4 finite numbers"),
        (m(["annotations", 1, "prompt_bbox"], [1, 2, 3]), "prompt_bbox must be 4"),
        (m(["annotations", 0, "score"], "high"), "score must be a finite number"),
        (m(["annotations", 0, "segmentation"], KeyError), "has no segmentation"),
        (m(["annotations", 0, "segmentation"], [[1, 2, 3]]), "polygons"),
        (m(["categories", 0], {"id": "0", "name": "plane"}), r"categories\[0\]"),
        (m(["annotations"], [1]), r"annotations\[0\]: must be an object"),
        (m(["info"], {"category_id_start": "one"}), "category_id_start"),
    ]


def test_malformed_json_names_the_file_and_entry(export):
    out, data = export
    for bad, match in _mutations(data):
        _write(out, bad)
        _refused(out, match)


@pytest.mark.parametrize("counts,match", [
    ("zzzz", "not in the RLE alphabet"),        # pycocotools: 7631 pixels of a 600 px image
    ("", "cover 0 pixels"),                     # pycocotools: some mask
    ("P13700000`1", "pixels"),                  # a real RLE of another image size
    ([5, 3], "cover 8 pixels"),                 # uncompressed, cut short
    ([600, -1], "negative"),
])
def test_garbage_rle_is_flagged_not_decoded(export, counts, match):
    out, data = export
    data["annotations"][1]["segmentation"]["counts"] = counts
    _write(out, data)
    msg = _refused(out, match)
    assert "annotations[1] (id 2): bad RLE" in msg


def test_an_empty_rle_is_flagged_empty(export):
    out, data = export
    data["annotations"][1]["segmentation"] = {"size": [20, 30], "counts": [600]}
    _write(out, data)
    ds = load_samrs(str(out), persistent=False, progress=False)
    try:
        dets = ds.match({"filepath": str(out / "images" / "P1.png")}).first().sam.detections
        assert dets[1]["empty"] is True and not dets[1].mask.any()
    finally:
        ds.delete()


def test_random_damage_gives_format_errors_only(export):
    """Bytes flipped, cut or deleted anywhere in the JSON: a FormatError or a
    good import, never another exception (setup only: no database)."""
    out, data = export
    raw = json.dumps(data).encode()
    rng = np.random.default_rng(11)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(300):
        b = bytearray(raw)
        kind = rng.integers(0, 3)
        i = int(rng.integers(0, len(b)))
        if kind == 0:
            b[i] = int(rng.integers(0, 256))
        elif kind == 1:
            b = b[:i]
        else:
            del b[i : i + int(rng.integers(1, 8))]
        (out / "annotations.json").write_bytes(bytes(b))
        importer = SAMRSDatasetImporter(str(out))
        try:
            importer.setup()
            for _ in importer:
                pass
            outcomes["ok"] += 1
        except FormatError:
            outcomes["error"] += 1
    assert outcomes["error"] > 200
