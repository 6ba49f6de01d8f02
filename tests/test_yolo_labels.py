"""YOLO segmentation labels (:mod:`fiftyone_samrs.exporting.yolo_labels`).

The outline is exact (its area and the pixel centres inside it are the mask's),
its rasterisation with ``cv2.fillPoly`` (what ultralytics' ``polygon2mask``
does) stays close to the mask, multi-part masks become one polygon the way
ultralytics joins them, and a small YOLO-seg folder written with these pieces
is read back by ultralytics' own dataset code with the same images, classes,
instances and masks.

ultralytics runs in a child process (``tests/yolo_reader_child.py``) with its
settings, config, caches and HOME in the test's temporary folder, offline
(``YOLO_OFFLINE=1``, placeholder fonts so that nothing is fetched, every
connection refused and recorded): importing it here would write its settings
under ``~/.config`` and look up DNS names at import time.
"""

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from matplotlib.path import Path as MplPath
from ultralytics_env import run_child

from fiftyone_samrs.exporting.yolo_labels import (
    _corner_outlines,
    data_yaml,
    mask_polygon,
    merge_parts,
    yaml_scalar,
    yolo_line,
)

IMGSZ = 128  # the random blobs' image size
EXPORT_SIZE = 256  # every exported image has its long side at 256: ultralytics pads, never resizes


def _blob(rng, h, w, parts=(1, 4), axes=(8, 40)):
    """A random union of filled ellipses in an ``h x w`` image."""
    mask = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(*parts))):
        cx, cy = rng.integers([w // 4, h // 4], [3 * w // 4 + 1, 3 * h // 4 + 1])
        size = tuple(int(a) for a in rng.integers(*axes, size=2))
        cv2.ellipse(mask, (int(cx), int(cy)), size, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return mask.astype(bool)


def _filled(mask):
    """The mask with its holes filled (what an outer outline encloses)."""
    contours = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[0]
    out = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(out, contours, -1, 1, -1)
    return out.astype(bool)


def _polygon_of(mask):
    """``mask_polygon`` of a full-image mask, given as its bounding-box crop."""
    ys, xs = np.nonzero(mask)
    y0, x0 = ys.min(), xs.min()
    return mask_polygon(mask[y0 : ys.max() + 1, x0 : xs.max() + 1], int(x0), int(y0))


def _parse(line):
    values = line.split()
    return int(values[0]), np.array(values[1:], dtype=float).reshape(-1, 2)


def _fill_poly(normalised, height, width):
    """Rasterises a normalised polygon like ultralytics' ``polygon2mask``."""
    out = np.zeros((height, width), np.uint8)
    points = (normalised * [width, height]).astype(np.int32)  # int32 truncation, as ultralytics
    cv2.fillPoly(out, [points], 1)
    return out.astype(bool)


def _centres_inside(polygon, height, width):
    ys, xs = np.mgrid[0:height, 0:width]
    centres = np.c_[xs.ravel() + 0.5, ys.ravel() + 0.5]
    return MplPath(polygon).contains_points(centres).reshape(height, width)


def _iou(a, b):
    return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()


def _area(polygon):
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


# -- the outline --------------------------------------------------------------


def test_rectangle_polygon_is_its_corners():
    crop = np.ones((5, 6), bool)  # rows 52..56, cols 103..108 once placed
    polygon = mask_polygon(crop, 103, 52)
    assert sorted(map(tuple, polygon)) == [(103, 52), (103, 57), (109, 52), (109, 57)]
    assert mask_polygon(np.ones((1, 1), bool), 7, 3).tolist() == [[7, 3], [7, 4], [8, 4], [8, 3]]
    assert mask_polygon(np.zeros((4, 4), bool), 0, 0) is None
    assert mask_polygon(np.zeros((0, 0), bool), 0, 0) is None


def test_outline_is_exact_for_random_single_part_masks():
    """Area = pixel count and pixel centres inside = the mask (holes filled)."""
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(600):
        h, w = (int(v) for v in rng.integers(1, 48, size=2))
        mask = _blob(rng, h, w, axes=(0, 12))
        parts = _corner_outlines(mask)
        if len(parts) != 1:
            continue
        polygon = mask_polygon(mask, 0, 0)
        filled = _filled(mask)
        assert _area(polygon) == filled.sum()
        assert np.array_equal(_centres_inside(polygon, h, w), filled)
        # vertices on pixel corners, only where the outline turns; the box is the mask's
        assert np.array_equal(polygon, np.round(polygon))
        ahead, behind = np.roll(polygon, -1, 0) - polygon, polygon - np.roll(polygon, 1, 0)
        assert (ahead[:, 0] * behind[:, 1] != ahead[:, 1] * behind[:, 0]).all()
        ys, xs = np.nonzero(mask)
        assert polygon.min(0).tolist() == [xs.min(), ys.min()]
        assert polygon.max(0).tolist() == [xs.max() + 1, ys.max() + 1]
        checked += 1
    assert checked > 300


def test_fill_poly_of_yolo_line_matches_random_blobs():
    """What ultralytics rasterises from the line is close to the mask.

    ``cv2.fillPoly`` treats coordinates as pixel centres and fills the
    boundary, so the corner-based outline comes back one pixel wider and
    taller (and truncating ``x * width`` to int32 may move a left or top
    edge one more pixel out): the IoU grows with the object's size. Measured
    here (seed 1, 300 unions of 1-3 ellipses of 12-40 px half-axes in
    128 x 128): minimum 0.9125, mean 0.955; with 4-8 px half-axes the
    minimum is 0.63 (the exact test above is the one that holds for all).
    """
    rng = np.random.default_rng(1)
    ious = []
    for _ in range(300):
        mask = _blob(rng, IMGSZ, IMGSZ, axes=(12, 40))
        _, points = _parse(yolo_line(0, _polygon_of(mask), IMGSZ, IMGSZ))
        ious.append(_iou(_fill_poly(points, IMGSZ, IMGSZ), _filled(mask)))
    assert min(ious) >= 0.9, min(ious)


def test_multi_part_mask_is_one_polygon_through_every_part():
    mask = np.zeros((120, 160), bool)
    mask[5:40, 5:45] = True  # three parts
    mask[50:90, 60:130] = True
    mask[95:118, 4:30] = True
    polygon = _polygon_of(mask)
    corners = {tuple(p) for p in polygon}
    for x0, y0, x1, y1 in ((5, 5, 45, 40), (60, 50, 130, 90), (4, 95, 30, 118)):
        assert {(x0, y0), (x1, y0), (x0, y1), (x1, y1)} <= corners
    # the seams between the parts have no area: the polygon's centres are the mask
    assert np.array_equal(_centres_inside(polygon, 120, 160), mask)
    _, points = _parse(yolo_line(2, polygon, 160, 120))
    assert _iou(_fill_poly(points, 120, 160), mask) >= 0.9


def test_merge_parts_links_closest_points():
    square = np.array([[0, 0], [0, 2], [2, 2], [2, 0]])
    # the first closest pair, (2, 2)-(10, 2): each end part walked whole and closed
    assert merge_parts([square, square + [10, 0]]).tolist() == [
        [2, 2], [2, 0], [0, 0], [0, 2], [2, 2],
        [10, 2], [12, 2], [12, 0], [10, 0], [10, 2],
    ]  # fmt: skip
    # a middle part: to its next link on the way out, the rest on the way back
    assert merge_parts([square, square + [10, 0], square + [20, 0]]).tolist() == [
        [2, 2], [2, 0], [0, 0], [0, 2], [2, 2],
        [10, 2], [12, 2],
        [20, 2], [22, 2], [22, 0], [20, 0], [20, 2],
        [12, 2], [12, 0], [10, 0], [10, 2],
    ]  # fmt: skip


# -- the text ---------------------------------------------------------------


def test_yolo_line_normalises_and_clips():
    line = yolo_line(3, np.array([[0, 0], [200, -5], [100, 50]]), 200, 100)
    assert line == "3 0.000000 0.000000 1.000000 0.000000 0.500000 0.500000"
    assert yolo_line(np.int64(1), [[1, 1], [2, 1], [2, 2]], 4, 4).startswith("1 0.250000 ")
    assert "-" not in yolo_line(0, [[-0.0, 0], [1, -1e-9], [1, 1]], 10, 10)
    with pytest.raises(ValueError):
        yolo_line(0, np.array([[0, 0], [1, 1]]), 10, 10)  # a 4-number line is a box
    with pytest.raises(ValueError):
        yolo_line(-1, np.zeros((3, 2)), 10, 10)


def test_data_yaml_reads_back_with_pyyaml():
    names = ["plane", "storage tank", "no", "On", "1e3", "ship: large", "a #b", "x\u2028y",
             "飞机", "\U0001f642", ' "quoted" ', "back\\slash", "null", "-dash", "tab\tchar", ""]  # fmt: skip
    text = data_yaml("/data/my export", names, ["val", "train", "test"])
    parsed = yaml.safe_load(text)
    assert parsed == {
        "path": "/data/my export",
        "train": "images/train",
        "val": "images/val",
        "test": "images/test",
        "names": dict(enumerate(names)),
    }
    assert yaml_scalar("storage tank") == "storage tank" and yaml_scalar("no") == '"no"'
    assert "path" not in yaml.safe_load(data_yaml(None, ["a"], ["train", "val"]))
    with pytest.raises(ValueError):
        data_yaml("/x", ["a"], ["train"])  # ultralytics requires val
    with pytest.raises(ValueError):
        data_yaml("/x", ["a"], ["train", "val", "valid"])
    with pytest.raises(ValueError):
        data_yaml("/x", [], ["train", "val"])


# -- ultralytics reads it -----------------------------------------------------

NAMES = ["plane", "storage tank", "no"]  # "no" must be quoted (a YAML 1.1 boolean)


def _scene(rng, h, w, classes):
    """An image and its instance masks, one per entry of ``classes``.

    Class 0 is an ellipse, 1 a concave "C", 2 two disks (a two-part mask).
    """
    image = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    masks = []
    for i, c in enumerate(classes):
        mask = np.zeros((h, w), np.uint8)
        cx, cy = (w * (i + 1)) // (len(classes) + 1), h // 2
        if c == 0:
            cv2.ellipse(mask, (cx, cy), (w // 7, h // 3), 30.0, 0, 360, 1, -1)
        elif c == 1:
            mask[cy - h // 3 : cy + h // 3, cx - w // 8 : cx + w // 8] = 1
            mask[cy - h // 8 : cy + h // 8, cx : cx + w // 8] = 0
        else:
            cv2.circle(mask, (cx - w // 12, cy - h // 5), min(h, w) // 6, 1, -1)
            cv2.circle(mask, (cx + w // 12, cy + h // 4), min(h, w) // 7, 1, -1)
        masks.append(mask.astype(bool))
    return image, masks


def _write_yolo_folder(root, rng):
    """A tiny YOLO-seg export: two splits, PNG and JPEG, one background image."""
    plan = {
        "train": [
            ("t0.png", 192, 256, [0, 1, 2]),
            ("t1.jpg", 256, 160, [1, 0]),
            ("t2.png", 256, 256, []),  # a background image: an empty label file
        ],
        "val": [("v0.png", 256, 200, [2]), ("v1.png", 144, 256, [0, 2])],
    }
    expected = {}
    for split, images in plan.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for name, h, w, classes in images:
            image, masks = _scene(rng, h, w, classes)
            cv2.imwrite(str(root / "images" / split / name), image)
            lines = [yolo_line(c, _polygon_of(m), w, h) for c, m in zip(classes, masks)]
            label = root / "labels" / split / (Path(name).stem + ".txt")
            label.write_text("".join(line + "\n" for line in lines))
            expected[str(root / "images" / split / name)] = (classes, masks, [h, w])
    (root / "data.yaml").write_text(data_yaml(str(root), NAMES, plan))
    return expected


def _run_ultralytics(tmp, request):
    """Runs ``yolo_reader_child.py`` offline with everything in ``tmp``."""
    request_path = tmp / "request.json"
    request_path.write_text(json.dumps(request))
    run_child(tmp, str(request_path))
    result = json.loads((Path(request["out"]) / "result.json").read_text())
    with np.load(Path(request["out"]) / "masks.npz") as masks:
        return result, dict(masks)


@pytest.fixture(scope="module")
def ultralytics_read(tmp_path_factory):
    """The tiny export, what ultralytics read from it, and the merge cases."""
    if importlib.util.find_spec("ultralytics") is None:
        pytest.skip("ultralytics is not installed (pip install ultralytics==8.4.190)")
    tmp = tmp_path_factory.mktemp("yolo")
    rng = np.random.default_rng(2)
    expected = _write_yolo_folder(tmp / "export", rng)
    cases = []  # outlines of multi-part masks, to join with ultralytics' own function
    while len(cases) < 100:
        h, w = (int(v) for v in rng.integers(6, 60, size=2))
        speckle = rng.random((h, w)) < rng.uniform(0.02, 0.2)
        parts = _corner_outlines(speckle)
        if len(parts) > 1:
            cases.append([p.tolist() for p in parts])
    (tmp / "out").mkdir()
    request = {
        "data_yaml": str(tmp / "export" / "data.yaml"),
        "imgsz": EXPORT_SIZE,
        "out": str(tmp / "out"),
        "merge_cases": cases,
    }
    result, masks = _run_ultralytics(tmp, request)
    return tmp, expected, result, masks, cases


def test_ultralytics_reads_data_yaml_offline(ultralytics_read):
    tmp, _, result, _, _ = ultralytics_read
    assert result["attempts"] == []  # no connection was even tried
    data = result["data"]
    assert data["names"] == {str(i): n for i, n in enumerate(NAMES)}  # JSON keys
    assert int(data["nc"]) == 3
    root = (tmp / "export").resolve()
    assert data["train"] == str(root / "images" / "train")
    assert data["val"] == str(root / "images" / "val")
    assert "test" not in data
    # ultralytics wrote its settings and label caches in the temporary folder only
    assert (tmp / "home" / "yolo" / "Ultralytics" / "settings.json").is_file()
    assert sorted(p.name for p in (tmp / "export" / "labels").glob("*.cache")) == [
        "train.cache",
        "val.cache",
    ]


def test_ultralytics_reads_images_instances_and_classes(ultralytics_read):
    _, expected, result, _, _ = ultralytics_read
    read = {im["im_file"]: im for split in result["splits"].values() for im in split}
    assert len(result["splits"]["train"]) == 3 and len(result["splits"]["val"]) == 2
    assert sorted(read) == sorted(expected)  # the background image is kept
    for im_file, (classes, masks, shape) in expected.items():
        im = read[im_file]
        assert im["shape"] == shape
        assert im["cls"] == classes and im["item_cls"] == classes  # line order kept
        assert len(im["segments"]) == len(masks)
    # the scenes hold multi-part masks (joined into one line each)
    assert sum(len(_corner_outlines(m)) > 1 for _, ms, _ in expected.values() for m in ms) == 3


def test_ultralytics_segments_match_the_masks(ultralytics_read):
    """The polygons ultralytics parsed, and the masks ``dataset[i]`` returns.

    Pixel centres inside the parsed polygon are the mask exactly; the masks
    ultralytics rasterises (``polygon2mask``) have IoU >= 0.934 (mean 0.959)
    with ours here (8 instances, checked at native size and in ``dataset[i]``).
    """
    _, expected, result, item_masks, _ = ultralytics_read
    ious = []
    for split, images in result["splits"].items():
        for i, im in enumerate(images):
            classes, masks, _ = expected[im["im_file"]]
            h, w = im["shape"]
            (rh, rw), (left, top) = im["ratio_pad"]
            assert (rh, rw) == (1.0, 1.0)  # long side = imgsz: padded, not resized
            got = item_masks["%s_%d" % (split, i)]
            assert got.shape == (len(masks), EXPORT_SIZE, EXPORT_SIZE)
            for k, mask in enumerate(masks):
                segment = np.array(im["segments"][k])
                exact = _centres_inside(segment * [w, h], h, w)
                assert np.array_equal(exact, _filled(mask))
                ious.append(_iou(_fill_poly(segment, h, w), mask))
                placed = np.zeros((EXPORT_SIZE, EXPORT_SIZE), bool)
                placed[top : top + h, left : left + w] = mask
                ious.append(_iou(got[k] > 0, placed))
                # the box ultralytics derives from the polygon is the mask's (COCO) box
                ys, xs = np.nonzero(mask)
                cx, cy, bw, bh = np.array(im["bboxes"][k]) * [w, h, w, h]
                box = [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]
                np.testing.assert_allclose(
                    box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], atol=1e-3
                )
    assert ious and min(ious) >= 0.9, min(ious)


def test_merge_parts_is_ultralytics_merge_multi_segment(ultralytics_read):
    *_, result, _, cases = ultralytics_read
    for theirs, parts in zip(result["merged"], cases):
        assert np.array_equal(np.array(theirs), merge_parts([np.array(p) for p in parts]))
