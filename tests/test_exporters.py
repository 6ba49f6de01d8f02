"""Exporters: SAMRS layout, COCO instance JSON (RLE), the round trip, bad input."""

import json
import os
import pickle

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from fiftyone_samrs.core import classes as C
from fiftyone_samrs.core.geometry import box_to_relative
from fiftyone_samrs.core.masks import relative_box
from fiftyone_samrs.core.records import FormatError
from fiftyone_samrs.exporting import coco_rle
from fiftyone_samrs.exporting.common import (
    ExportResult,
    StemMaker,
    place_mask,
)
from fiftyone_samrs.exporting.palette import PALETTE, colorize
from fiftyone_samrs.exporting.splits import normalize_split, train_groups

SOTA = C.SOTA


def _full(crop, x0, y0, h, w):
    full = np.zeros((h, w), dtype=np.uint8, order="F")
    ch, cw = crop.shape
    full[y0:y0 + ch, x0:x0 + cw] = crop
    return full


# ---------------------------------------------------------------------------
# pure: RLE, palette, placement, splits, stems


def test_crop_rle_is_byte_identical_to_pycocotools_encode():
    rng = np.random.default_rng(1)
    H, W = 37, 53
    cases = []
    for _ in range(300):
        h, w = rng.integers(1, 20, 2)
        x0, y0 = rng.integers(0, W - w + 1), rng.integers(0, H - h + 1)
        cases.append((rng.random((h, w)) > 0.5, int(x0), int(y0)))
    cases += [
        (np.ones((H, 4), bool), 5, 0),          # full-height: runs join across columns
        (np.ones((H, W), bool), 0, 0),          # whole image
        (np.ones((3, 3), bool), W - 3, H - 3),  # ends at the last pixel
        (np.ones((3, 3), bool), 0, 0),          # starts at pixel 0
        (np.zeros((4, 4), bool), 2, 2),         # empty
        (np.zeros((0, 0), bool), 0, 0),         # no crop
        (np.eye(5, dtype=bool), 10, H - 5),     # touches the bottom only
    ]
    for crop, x0, y0 in cases:
        ours = coco_rle.encode_crop(crop, x0, y0, H, W)
        ref = mask_utils.encode(_full(crop, x0, y0, H, W))
        assert ours["counts"] == ref["counts"] and ours["size"] == ref["size"], (x0, y0)


def test_crop_rle_clips_a_crop_reaching_outside_the_image():
    H, W = 20, 30
    crop = np.ones((10, 10), bool)
    ours = coco_rle.encode_crop(crop, W - 4, -3, H, W)
    full = np.zeros((H, W), np.uint8, order="F")
    full[0:7, W - 4:W] = 1
    assert ours["counts"] == mask_utils.encode(full)["counts"]
    assert mask_utils.decode(ours).sum() == 28


def test_area_and_bbox_come_from_the_mask_also_past_255_objects():
    rng = np.random.default_rng(2)
    H, W = 40, 40
    crops = []
    for _ in range(300):  # pycocotools.area overflows on >255 objects unless chunked
        h, w = rng.integers(1, 10, 2)
        crops.append((rng.random((h, w)) > 0.3, int(rng.integers(0, W - w)),
                      int(rng.integers(0, H - h))))
    rles = coco_rle.encode_crops(crops, H, W)
    areas = coco_rle.rle_area(rles)
    boxes = coco_rle.rle_bbox(rles)
    for (crop, x0, y0), area, box in zip(crops, areas, boxes):
        assert area == int(crop.sum())
        if area:
            ys, xs = np.nonzero(crop)
            assert box == [x0 + xs.min(), y0 + ys.min(), xs.max() - xs.min() + 1,
                           ys.max() - ys.min() + 1]
    crop, x0, y0 = crops[0]
    back, bx, by = coco_rle.rle_to_crop(rles[0])
    assert np.array_equal(_full(back, bx, by, H, W), _full(crop, x0, y0, H, W))


def test_rle_to_crop_decodes_what_pycocotools_decodes():
    """The crop decoder (no full-size mask) against ``pycocotools.mask.decode``
    cropped to ``toBbox``: compressed (bytes and str) and uncompressed
    counts; noisy, boxed, full and empty masks; a 1024-pixel-tall image."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(23)
    for t in range(400):
        h, w = (1024, 9) if t == 0 else rng.integers(1, 40, 2)
        m = np.zeros((h, w), bool)
        if t % 4 == 0:
            m = rng.random((h, w)) > rng.random()
        elif t % 4 == 1:
            y, x = rng.integers(0, h), rng.integers(0, w)
            m[y : y + rng.integers(1, 15), x : x + rng.integers(1, 15)] = True
        elif t % 4 == 2:
            m[:] = True
        rle = mask_utils.encode(np.asfortranarray(m))
        runs = [int(v) for v in coco_rle.rle_counts(rle["counts"])]
        assert sum(runs) == h * w
        for counts in (rle["counts"], rle["counts"].decode(), runs):
            crop, x0, y0 = coco_rle.rle_to_crop({"size": [int(h), int(w)], "counts": counts})
            if not m.any():
                assert crop.shape == (0, 0)
                continue
            x, y, bw, bh = (int(v) for v in mask_utils.toBbox(rle))
            assert (x0, y0, crop.shape) == (x, y, (bh, bw))
            assert np.array_equal(crop, mask_utils.decode(rle).astype(bool)[y : y + bh,
                                                                              x : x + bw])


def test_palette_is_the_releases_fixed_distinct_and_255_is_white():
    from fiftyone_samrs.exporting.palette import RELEASE_COLORS

    assert PALETTE.shape == (256, 3)
    assert tuple(PALETTE[255]) == (255, 255, 255)
    colours = {tuple(c) for c in PALETTE[:255]}
    assert len(colours) == 255 and (255, 255, 255) not in colours
    # the SAMRS release's MAPPING: index 0 -> (0, 127, 255), 6 -> (0, 0, 63), 36 -> (0, 191, 64)
    assert [tuple(PALETTE[i]) for i in (0, 6, 12, 36)] == [
        (0, 127, 255), (0, 0, 63), (0, 100, 155), (0, 191, 64)]
    assert [tuple(c) for c in PALETTE[:37]] == list(RELEASE_COLORS)
    label = np.array([[0, 255], [17, 3]], np.uint8)
    rgb = colorize(label)
    assert rgb.shape == (2, 2, 3) and tuple(rgb[0, 1]) == (255, 255, 255)
    assert tuple(rgb[1, 0]) == tuple(PALETTE[17])


def test_place_mask_rounds_stretches_and_clips_with_counts():
    result = ExportResult(format="coco")
    crop = np.ones((4, 6), bool)
    out, x0, y0 = place_mask(crop, box_to_relative((10, 5, 16, 9), 50, 40), 50, 40, "f", result)
    assert (x0, y0) == (10, 5) and out.shape == (4, 6) and not result.warned
    # a 2x3 mask on a 4x6 box is stretched (FiftyOne draws it so) and counted
    small = np.array([[1, 0, 1], [0, 1, 0]], bool)
    out, _, _ = place_mask(small, box_to_relative((10, 5, 16, 9), 50, 40), 50, 40, "f", result)
    assert out.shape == (4, 6) and out[0, 0] and not out[0, 2]
    assert result.warned["mask resized to its box"] == 1
    # a box reaching past the image is clamped to it (as FiftyOne draws it), counted, named
    out, x0, y0 = place_mask(np.ones((4, 4), bool), [46 / 50, 38 / 40, 4 / 50, 4 / 40], 50, 40,
                             "img.png: sam object 0", result)
    assert (x0, y0, out.shape) == (46, 38, (2, 4))
    assert result.warned["mask resized to its box"] == 2
    assert any("img.png" in m for m in result.messages)
    with pytest.raises(FormatError, match="2-D"):
        place_mask(np.ones((2, 2, 3)), [0, 0, 0.1, 0.1], 20, 20, "x.png")


def test_split_groups_are_deterministic_and_exact():
    names = ["s%03d" % i for i in range(101)]
    a = train_groups(names, 0.8, seed=3)
    assert a == train_groups(list(reversed(names)), 0.8, seed=3)
    assert len(a) == 81 and set(a) <= set(names)
    assert train_groups(names, 0.8, seed=4) != a
    assert [normalize_split(s) for s in ("trainval", "validation", "valid", "test", None)] == \
        ["train", "val", "val", "test", None]
    with pytest.raises(ValueError, match="'holdout'"):
        normalize_split("holdout")


def test_stems_are_unique_and_stable():
    make = StemMaker()
    assert make("/a/P1.png") == ("P1", False)
    assert make("/b/P1.jpg") == ("P1-2", False)
    assert make("/c/P1-2.png") == ("P1-2-2", False)
    assert make("/a/P1.png") == ("P1", True)


# ---------------------------------------------------------------------------
# a hand-built segmented dataset


def _shape(rng, h, w):
    """An irregular blob filling its (h, w) box tightly."""
    yy, xx = np.mgrid[0:h, 0:w]
    m = ((yy - (h - 1) / 2) / (h / 2)) ** 2 + ((xx - (w - 1) / 2) / (w / 2)) ** 2 <= 1.0
    m &= rng.random((h, w)) > 0.15
    m[h // 2, :] = True
    m[:, w // 2] = True
    return m


LABELS = ["plane", "ship", "small-vehicle", "harbor"]


def make_segmented(dataset, root, n=5, sizes=((64, 48), (50, 70)), seed=0):
    """Images on disk + ``hbb`` prompts + ``sam`` masks. Returns the truth:
    ``{filepath: [(label, full mask, prompt xyxy, score)]}`` in annotation order.
    Sample n-2 has an empty Detections, sample n-1 has sam=None."""
    import fiftyone as fo

    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "src"), exist_ok=True)
    truth, samples = {}, []
    for i in range(n):
        W, H = sizes[i % len(sizes)]
        path = os.path.join(root, "src", "P%04d.png" % i)
        cv2.imwrite(path, rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
        hbb, sam, objs = [], [], []
        k = 0 if i >= n - 2 else 4 + i % 3
        for j in range(k):
            if j == 0 and i == 0:
                w, h, x, y = 5, H, 3, 0          # full-height object
            elif j == 1 and i == 0:
                w, h, x, y = 8, 6, W - 8, H - 6  # bottom-right corner
            else:
                w, h = (int(v) for v in rng.integers(4, 16, 2))
                x, y = int(rng.integers(0, W - w)), int(rng.integers(0, H - h))
            crop = _shape(rng, h, w)
            prompt = (max(x - 2, 0), max(y - 2, 0), min(x + w + 2, W), min(y + h + 2, H))
            label = LABELS[(i + j) % len(LABELS)]
            hd = fo.Detection(label=label, bounding_box=box_to_relative(prompt, W, H),
                              obj_index=j)
            score = round(0.5 + 0.05 * j, 3)
            sam.append(fo.Detection(label=label, bounding_box=relative_box((x, y, x + w, y + h), W, H),
                                    mask=crop, confidence=score, source_id=hd.id, obj_index=j,
                                    prompt="hbox", empty=False))
            hbb.append(hd)
            objs.append((label, _full(crop, x, y, H, W).astype(bool), prompt, score))
        truth[path] = objs
        samples.append(fo.Sample(
            filepath=path, metadata=fo.ImageMetadata(width=W, height=H),
            hbb=fo.Detections(detections=hbb),
            sam=None if i == n - 1 else fo.Detections(detections=sam)))
    dataset.add_samples(samples, progress=False)
    dataset.info["samrs"] = {"format": "dota", "subset": "SOTA"}
    dataset.save()
    return truth


def _expected_gray(objs, h, w, classes=SOTA, order="annotation"):
    label = np.full((h, w), 255, np.uint8)
    items = [(m, classes.index(lab)) for lab, m, _, _ in objs if lab in classes]
    if order == "small_last":
        items = sorted(items, key=lambda t: -t[0].sum())
    for m, idx in items:
        label[m] = idx
    return label


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


@pytest.fixture
def segmented(fo_dataset, tmp_path):
    truth = make_segmented(fo_dataset, str(tmp_path))
    return fo_dataset, truth, tmp_path


# ---------------------------------------------------------------------------
# SAMRS layout


def test_export_samrs_writes_the_layout(segmented):
    from fiftyone_samrs import export_samrs
    ds, truth, tmp = segmented
    out = str(tmp / "SOTA")
    result = export_samrs(ds, out, subset="SOTA", split_ratio=0.5, seed=1, pickles=True,
                          progress=False)
    n_obj = sum(len(v) for v in truth.values())
    assert result.images == 5 and result.labeled_images == 3 and result.instances == n_obj
    assert sorted(os.listdir(out)) == sorted(
        ["images", "gray", "color", "rbbtxts", "pickles", "annotations.json",
         "annotations_train.json", "annotations_val.json", "classes.txt", "palette.json",
         "train.txt", "valid.txt", "val.txt", "README.md", "stats.json", "splits.json",
         "sota_rbb_train_ins_segmentation.json", "sota_rbb_valid_ins_segmentation.json",
         "samrs_export_manifest.jsonl"])
    assert open(os.path.join(out, "sota_rbb_valid_ins_segmentation.json")).read() == open(
        os.path.join(out, "annotations_val.json")).read()
    assert open(os.path.join(out, "classes.txt")).read().splitlines() == SOTA
    palette = json.load(open(os.path.join(out, "palette.json")))
    assert palette["palette"][4] == {"index": 4, "name": "plane",
                                     "color": [int(v) for v in PALETTE[4]]}
    assert sorted(os.listdir(os.path.join(out, "images"))) == sorted(
        os.path.basename(p) for p in truth)
    labelled = [p for p, objs in truth.items() if objs]
    # every image has a label PNG (all 255 without objects) and a rotated-box file
    assert sorted(os.listdir(os.path.join(out, "gray"))) == sorted(
        _stem(p) + ".png" for p in truth)
    assert sorted(os.listdir(os.path.join(out, "rbbtxts"))) == sorted(
        _stem(p) + ".txt" for p in truth)
    for path in set(truth) - set(labelled):
        gray = cv2.imread(os.path.join(out, "gray", _stem(path) + ".png"), cv2.IMREAD_UNCHANGED)
        assert (gray == 255).all()
        assert open(os.path.join(out, "rbbtxts", _stem(path) + ".txt")).read() == ""
    for path in labelled:
        lines = open(os.path.join(out, "rbbtxts", _stem(path) + ".txt")).read().splitlines()
        assert [ln.split()[8] for ln in lines] == [lab for lab, *_ in truth[path]]
        img = cv2.imread(path)
        gray = cv2.imread(os.path.join(out, "gray", _stem(path) + ".png"), cv2.IMREAD_UNCHANGED)
        assert gray.dtype == np.uint8 and gray.ndim == 2
        assert np.array_equal(gray, _expected_gray(truth[path], *img.shape[:2]))
        color = cv2.imread(os.path.join(out, "color", _stem(path) + ".png"))[:, :, ::-1]
        assert np.array_equal(color, PALETTE[gray])
        # pickle: the SAMRS release format
        items = pickle.load(open(os.path.join(out, "pickles", _stem(path) + ".pkl"), "rb"))
        assert len(items) == len(truth[path])
        for item, (label, full, prompt, _) in zip(items, truth[path]):
            assert set(item) == {"mask", "bbox", "category", "label", "size"}
            assert isinstance(item["mask"]["counts"], str)
            assert np.array_equal(mask_utils.decode(item["mask"]).astype(bool), full)
            assert item["bbox"].tolist() == [float(v) for v in prompt]
            assert item["category"] == label and item["label"] == SOTA.index(label)
            assert item["size"] == int(full.sum())
    train = open(os.path.join(out, "train.txt")).read().split()
    val = open(os.path.join(out, "val.txt")).read().split()
    assert open(os.path.join(out, "valid.txt")).read().split() == val
    assert sorted(train + val) == sorted(_stem(p) for p in labelled)
    assert {k: v["labeled_images"] for k, v in result.splits.items()} == {
        "train": len(train), "val": len(val)}
    assert sum(v["images"] for v in result.splits.values()) == 5
    assert json.load(open(os.path.join(out, "splits.json")))["splits"] == result.splits
    # the same seed gives the same split
    again = export_samrs(ds, str(tmp / "again"), subset="SOTA", split_ratio=0.5, seed=1,
                         export_media=False, progress=False)
    assert open(os.path.join(str(tmp / "again"), "train.txt")).read().split() == train
    assert again.images == 5


def test_coco_json_loads_in_pycocotools_and_matches_the_masks(segmented):
    from pycocotools.coco import COCO

    from fiftyone_samrs import export_samrs
    ds, truth, tmp = segmented
    out = str(tmp / "SOTA")
    export_samrs(ds, out, classes="SOTA", progress=False)
    path = os.path.join(out, "annotations.json")
    coco = COCO(path)
    data = json.load(open(path))
    assert [c["id"] for c in data["categories"]] == list(range(len(SOTA)))
    assert [c["name"] for c in data["categories"]] == SOTA
    assert len({a["id"] for a in data["annotations"]}) == len(data["annotations"])
    assert len({im["id"] for im in data["images"]}) == len(data["images"]) == 5
    by_name = {im["file_name"]: im for im in data["images"]}
    for fp, objs in truth.items():
        im = by_name[os.path.basename(fp)]
        assert os.path.isfile(os.path.join(out, "images", im["file_name"]))
        h, w = cv2.imread(fp).shape[:2]
        assert (im["width"], im["height"]) == (w, h)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[im["id"]]))
        assert len(anns) == len(objs)
        for ann, (label, full, prompt, score) in zip(anns, objs):
            assert isinstance(ann["segmentation"]["counts"], str)
            assert np.array_equal(coco.annToMask(ann).astype(bool), full)
            ys, xs = np.nonzero(full)
            # bbox and area from the mask, not from the (larger) prompt box
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                   ys.max() - ys.min() + 1]
            assert ann["area"] == int(full.sum())
            assert ann["prompt_bbox"] == [prompt[0], prompt[1], prompt[2] - prompt[0],
                                          prompt[3] - prompt[1]]
            assert ann["score"] == score and ann["iscrowd"] == 0
            assert ann["category_id"] == SOTA.index(label)


def test_coco_json_loads_in_fiftyone_coco_importer(segmented):
    import fiftyone as fo

    from fiftyone_samrs import export_coco
    ds, truth, tmp = segmented
    labels = str(tmp / "coco" / "sam.json")
    result = export_coco(ds, labels, classes="SOTA", export_media=True, category_id_start=1,
                         progress=False)
    assert result.images == 5 and result.instances == sum(len(v) for v in truth.values())
    data = json.load(open(labels))
    assert data["categories"][0] == {"id": 1, "name": SOTA[0], "supercategory": ""}
    back = fo.Dataset.from_dir(dataset_type=fo.types.COCODetectionDataset,
                               data_path=str(tmp / "coco" / "images"), labels_path=labels,
                               label_types="segmentations", label_field="gt", progress=False)
    try:
        assert len(back) == 5
        for sample in back:
            objs = truth[os.path.join(str(tmp), "src", os.path.basename(sample.filepath))]
            dets = sample.gt.detections if sample.gt is not None else []
            assert len(dets) == len(objs)
            h, w = sample.metadata.height, sample.metadata.width
            for det, (label, full, _, score) in zip(dets, objs):
                assert det.label == label
                # FiftyOne's COCO importer cuts the mask at the rounded COCO box and
                # stores the plain ratios box / size (which its own renderer may draw a
                # pixel short): the importer's crop is the exact mask at the COCO box
                bx, by = int(round(det.bounding_box[0] * w)), int(round(det.bounding_box[1] * h))
                assert np.array_equal(_full(det.mask, bx, by, h, w).astype(bool), full)
                assert det.confidence == score
    finally:
        back.delete()


def test_round_trip_export_then_load_gives_the_same_masks_classes_boxes(segmented):
    import fiftyone as fo

    from fiftyone_samrs import export_samrs, load_samrs
    from fiftyone_samrs.types import SAMRSDataset

    ds, truth, tmp = segmented
    out = str(tmp / "SOTA")
    export_samrs(ds, out, classes="SOTA", progress=False)
    back = load_samrs(out, name="samrs-rt-" + os.urandom(4).hex(), persistent=False,
                      progress=False)
    back2 = fo.Dataset.from_dir(out, dataset_type=SAMRSDataset, progress=False)
    try:
        assert back.classes["sam"] == SOTA
        assert back.mask_targets["sam_seg"] == {i: c for i, c in enumerate(SOTA)}
        assert back.info["samrs"]["subset"] == "SOTA"
        src = {s.filepath: s for s in ds}
        for copy in (back, back2):
            assert len(copy) == len(ds)
            for s in copy:
                orig = src[os.path.join(str(tmp), "src", os.path.basename(s.filepath))]
                a = orig.sam.detections if orig.sam is not None else []
                b = s.sam.detections
                assert [d.label for d in a] == [d.label for d in b]
                for da, db in zip(a, b):
                    assert np.allclose(da.bounding_box, db.bounding_box, rtol=0, atol=1e-12)
                    assert np.array_equal(da.mask, db.mask)
                    assert db.confidence == da.confidence
                if a:
                    gray = cv2.imread(s.sam_seg.mask_path, cv2.IMREAD_UNCHANGED)
                    assert np.array_equal(gray, _expected_gray(
                        truth[orig.filepath], orig.metadata.height, orig.metadata.width))
                else:  # an image without objects has an all-ignore label PNG
                    assert (cv2.imread(s.sam_seg.mask_path, cv2.IMREAD_UNCHANGED) == 255).all()
    finally:
        back.delete()
        back2.delete()


def test_fiftyone_export_route_matches_the_sdk(segmented):
    from fiftyone_samrs import export_samrs
    from fiftyone_samrs.types import COCOInstanceDataset, SAMRSDataset

    ds, truth, tmp = segmented
    sdk, fo_route = str(tmp / "sdk"), str(tmp / "fo")
    export_samrs(ds, sdk, "SOTA", progress=False)
    ds.export(fo_route, dataset_type=SAMRSDataset, label_field={"sam": "instances",
                                                                "hbb": "prompts"},
              classes="SOTA")
    assert sorted(os.listdir(os.path.join(fo_route, "gray"))) == sorted(
        os.listdir(os.path.join(sdk, "gray")))
    for name in os.listdir(os.path.join(sdk, "gray")):
        assert np.array_equal(cv2.imread(os.path.join(sdk, "gray", name), cv2.IMREAD_UNCHANGED),
                              cv2.imread(os.path.join(fo_route, "gray", name),
                                         cv2.IMREAD_UNCHANGED))
    a = json.load(open(os.path.join(sdk, "annotations.json")))
    b = json.load(open(os.path.join(fo_route, "annotations.json")))
    assert a["annotations"] == b["annotations"] and a["images"] == b["images"]
    # COCO type, plain label field (no prompt boxes then)
    ds.export(str(tmp / "coco"), dataset_type=COCOInstanceDataset, label_field="sam",
              classes="SOTA")
    c = json.load(open(str(tmp / "coco" / "annotations.json")))
    assert [x["segmentation"] for x in c["annotations"]] == [
        x["segmentation"] for x in a["annotations"]]
    assert all("prompt_bbox" not in x for x in c["annotations"])


def test_export_media_false_and_symlink(segmented):
    from fiftyone_samrs import export_samrs, load_samrs
    ds, truth, tmp = segmented
    out = str(tmp / "nomedia")
    export_samrs(ds, out, subset="SOTA", export_media=False, progress=False)
    data = json.load(open(os.path.join(out, "annotations.json")))
    assert sorted(im["file_name"] for im in data["images"]) == sorted(truth)
    assert not os.path.exists(os.path.join(out, "images"))
    with pytest.raises(FormatError, match="absolute path"):
        load_samrs(out, persistent=False, progress=False)  # names outside the folder
    back = load_samrs(out, persistent=False, progress=False, allow_outside=True)
    try:
        assert sorted(back.values("filepath")) == sorted(truth)
        assert back.count("sam.detections") == sum(len(v) for v in truth.values())
    finally:
        back.delete()
    out = str(tmp / "links")
    export_samrs(ds, out, subset="SOTA", export_media="symlink", progress=False)
    for fp in truth:
        link = os.path.join(out, "images", os.path.basename(fp))
        assert os.path.islink(link) and os.path.realpath(link) == os.path.realpath(fp)


def test_colliding_stems_get_distinct_label_files(fo_dataset, tmp_path):
    import fiftyone as fo

    from fiftyone_samrs import export_samrs, load_samrs
    samples = []
    for sub in ("a", "b"):
        os.makedirs(tmp_path / sub)
        path = str(tmp_path / sub / "P0001.png")
        cv2.imwrite(path, np.zeros((20, 30, 3), np.uint8))
        crop = np.ones((4, 5 if sub == "a" else 7), bool)
        samples.append(fo.Sample(filepath=path, metadata=fo.ImageMetadata(width=30, height=20),
                                 sam=fo.Detections(detections=[fo.Detection(
                                     label="ship", mask=crop,
                                     bounding_box=relative_box((2, 3, 2 + crop.shape[1], 7),
                                                                  30, 20))])))
    fo_dataset.add_samples(samples, progress=False)
    for media in (True, False):
        out = str(tmp_path / ("out%s" % media))
        export_samrs(fo_dataset, out, subset="SOTA", export_media=media, progress=False)
        assert sorted(os.listdir(os.path.join(out, "gray"))) == ["P0001-2.png", "P0001.png"]
        back = load_samrs(out, persistent=False, progress=False, allow_outside=not media)
        try:
            for s in back:
                width = s.sam.detections[0].mask.shape[1]
                gray = cv2.imread(s.sam_seg.mask_path, cv2.IMREAD_UNCHANGED)
                assert (gray == SOTA.index("ship")).sum() == 4 * width
        finally:
            back.delete()


def test_filtered_view_exports_only_kept_masks(segmented):
    from fiftyone import ViewField as F

    from fiftyone_samrs import export_samrs
    ds, truth, tmp = segmented
    view = ds.filter_labels("sam", F("confidence") < 0.6, only_matches=False)
    out = str(tmp / "filtered")
    result = export_samrs(view, out, subset="SOTA", progress=False)
    kept = {p: [o for o in objs if o[3] < 0.6] for p, objs in truth.items()}
    assert result.instances == sum(len(v) for v in kept.values())
    for p, objs in kept.items():
        if objs:
            gray = cv2.imread(os.path.join(out, "gray", _stem(p) + ".png"), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(gray, _expected_gray(objs, *gray.shape))


def test_custom_class_list_small_last_and_category_start(segmented):
    from fiftyone_samrs import export_samrs
    ds, truth, tmp = segmented
    classes = ["harbor", "small-vehicle", "ship", "plane"]
    out = str(tmp / "custom")
    export_samrs(ds, out, subset=classes, paint_order="small_last", category_id_start=1,
                 progress=False)
    data = json.load(open(os.path.join(out, "annotations.json")))
    assert [(c["id"], c["name"]) for c in data["categories"]] == list(enumerate(classes, 1))
    for p, objs in truth.items():
        if objs:
            gray = cv2.imread(os.path.join(out, "gray", _stem(p) + ".png"), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(gray, _expected_gray(objs, *gray.shape, classes=classes,
                                                       order="small_last"))


# ---------------------------------------------------------------------------
# bad input


def test_unknown_class_errors_naming_the_sample_or_is_ignored_and_counted(segmented):
    from fiftyone_samrs import export_coco, export_samrs
    ds, truth, tmp = segmented
    classes = ["plane", "ship"]
    with pytest.raises(FormatError, match=r"P0000\.png.*'small-vehicle'|P0000\.png.*'harbor'"):
        export_samrs(ds, str(tmp / "err"), subset=classes, progress=False)
    result = export_samrs(ds, str(tmp / "ign"), subset=classes, unknown="ignore",
                          progress=False)
    n_unknown = sum(1 for objs in truth.values() for o in objs if o[0] not in classes)
    assert n_unknown > 0 and result.skipped["unknown class"] == n_unknown
    assert result.instances == sum(len(v) for v in truth.values()) - n_unknown
    assert "unknown class" in result.summary()
    for p, objs in truth.items():
        if objs:
            gray = cv2.imread(str(tmp / "ign" / "gray" / (_stem(p) + ".png")),
                              cv2.IMREAD_UNCHANGED)
            assert np.array_equal(gray, _expected_gray(objs, *gray.shape, classes=classes))
    data = json.load(open(str(tmp / "ign" / "annotations.json")))
    assert {a["category_id"] for a in data["annotations"]} <= {0, 1}
    with pytest.raises(FormatError, match="not in the class list"):
        export_coco(ds, str(tmp / "c.json"), classes=classes, progress=False)


def test_missing_instance_mask_file_and_box_field_errors(fo_dataset, tmp_path):
    import fiftyone as fo

    from fiftyone_samrs import export_coco
    path = str(tmp_path / "img.png")
    cv2.imwrite(path, np.zeros((10, 10, 3), np.uint8))
    fo_dataset.add_sample(fo.Sample(
        filepath=path,
        sam=fo.Detections(detections=[fo.Detection(label="ship", bounding_box=[0, 0, .5, .5],
                                                   mask_path=str(tmp_path / "gone.png"))]),
        hbb=fo.Detections(detections=[fo.Detection(label="ship", bounding_box=[0, 0, .5, .5])])))
    with pytest.raises(FormatError, match=r"img\.png.*gone\.png does not exist"):
        export_coco(fo_dataset, str(tmp_path / "a.json"), classes="SOTA", progress=False)
    with pytest.raises(FormatError, match=r"img\.png.*has no instance mask"):
        export_coco(fo_dataset, str(tmp_path / "b.json"), label_field="hbb", classes="SOTA",
                    progress=False)
    assert not os.path.exists(str(tmp_path / "a.json"))
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".part")]


def test_seg_png_missing_or_wrong_size_errors_naming_the_sample(segmented):
    import fiftyone as fo

    from fiftyone_samrs import export_samrs
    ds, truth, tmp = segmented
    ds.mask_targets["sam_seg"] = {i: c for i, c in enumerate(SOTA)}
    ds.save()
    segs = {}
    for s in ds.select_fields(["sam", "metadata"]):
        if s.sam is not None and s.sam.detections:
            png = str(tmp / "seg" / (_stem(s.filepath) + ".png"))
            os.makedirs(os.path.dirname(png), exist_ok=True)
            cv2.imwrite(png, _expected_gray(truth[s.filepath], s.metadata.height,
                                            s.metadata.width))
            segs[s.id] = fo.Segmentation(mask_path=png)
    ds.set_values("sam_seg", segs, key_field="id")
    out = export_samrs(ds, str(tmp / "ok"), gray_from="seg", progress=False)
    assert out.labeled_images == len(segs)
    first = ds.first()
    victim = first.sam_seg.mask_path
    cv2.imwrite(victim, np.zeros((5, 5), np.uint8))
    with pytest.raises(FormatError, match=r"P0000\.png.*5x5 but the image is 64x48"):
        export_samrs(ds, str(tmp / "bad1"), gray_from="seg", progress=False)
    os.remove(victim)
    with pytest.raises(FormatError, match=r"P0000\.png.*semantic mask file .* does not exist"):
        export_samrs(ds, str(tmp / "bad2"), gray_from="seg", progress=False)


def test_non_empty_export_dir_is_refused_unless_overwrite(segmented):
    from fiftyone_samrs import export_coco, export_samrs
    ds, truth, tmp = segmented
    out = tmp / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite"):
        export_samrs(ds, str(out), subset="SOTA", progress=False)
    (out / "gray").mkdir()
    (out / "gray" / "stale.png").write_bytes(b"x")
    result = export_samrs(ds, str(out), subset="SOTA", overwrite=True, progress=False)
    assert result.images == 5
    assert (out / "notes.txt").read_text() == "mine"  # not ours: left alone
    assert (out / "gray" / "stale.png").read_bytes() == b"x"  # not ours either
    with pytest.raises(FileExistsError):
        export_coco(ds, str(out / "annotations.json"), classes="SOTA", progress=False)
    from fiftyone_samrs.types import SAMRSDataset

    with pytest.raises(FileExistsError):
        ds.export(str(out), dataset_type=SAMRSDataset, label_field="sam", classes="SOTA")
    ds.export(str(out), dataset_type=SAMRSDataset, label_field="sam", classes="SOTA",
              overwrite=True)
    assert len(os.listdir(out / "images")) == 5


def test_empty_masks_are_skipped_and_counted_or_kept(fo_dataset, tmp_path):
    import fiftyone as fo

    from fiftyone_samrs import export_coco
    path = str(tmp_path / "img.png")
    cv2.imwrite(path, np.zeros((10, 10, 3), np.uint8))
    fo_dataset.add_sample(fo.Sample(filepath=path, sam=fo.Detections(detections=[
        fo.Detection(label="ship", bounding_box=[0, 0, .3, .3], mask=np.zeros((3, 3), bool),
                     empty=True),
        fo.Detection(label="ship", bounding_box=[.5, .5, .2, .2], mask=np.ones((2, 2), bool)),
    ])))
    r = export_coco(fo_dataset, str(tmp_path / "a.json"), classes="SOTA", progress=False)
    assert r.instances == 1 and r.skipped["empty mask"] == 1
    r = export_coco(fo_dataset, str(tmp_path / "b.json"), classes="SOTA", keep_empty=True,
                    export_media=False, progress=False)
    anns = json.load(open(str(tmp_path / "b.json")))["annotations"]
    assert r.instances == 2 and anns[0]["area"] == 0


# ---------------------------------------------------------------------------
# streaming


def test_export_streams_sample_by_sample(segmented, monkeypatch):
    """The exporter writes each sample as it is read: reads and writes
    interleave, nothing is collected first."""
    from fiftyone_samrs import export_coco
    from fiftyone_samrs.exporting import coco_export
    ds, truth, tmp = segmented
    events = []
    real_iter = coco_export.iter_sample_docs

    def spy_iter(*args, **kwargs):
        for doc in real_iter(*args, **kwargs):
            events.append(("read", doc.filepath))
            yield doc

    real_add = coco_export.COCOJSONWriter.add_image

    def spy_add(self, file_name, *args, **kwargs):
        events.append(("write", args[-2]))
        return real_add(self, file_name, *args, **kwargs)

    monkeypatch.setattr(coco_export, "iter_sample_docs", spy_iter)
    monkeypatch.setattr(coco_export.COCOJSONWriter, "add_image", spy_add)
    export_coco(ds, str(tmp / "s.json"), classes="SOTA", progress=False)
    assert len(events) == 10
    assert [e[0] for e in events] == ["read", "write"] * 5
    assert all(events[i][1] == events[i + 1][1] for i in range(0, 10, 2))


def test_coco_writer_keeps_nothing_per_annotation_in_memory(tmp_path):
    from fiftyone_samrs.exporting.coco_export import COCOJSONWriter
    from fiftyone_samrs.exporting.common import Instance

    writer = COCOJSONWriter(str(tmp_path / "x.json"), ["ship"], flush_every=1)
    writer.open()
    result = ExportResult(format="coco")
    sizes = []
    for i in range(20):
        inst = Instance("ship", np.ones((3, 3), bool), i, 0, score=0.5)
        writer.add_image("i%d.png" % i, 40, 10, [inst, inst], [0, 0], "i.png", result)
        sizes.append(os.path.getsize(str(tmp_path / "x.json.annotations.part")))
    assert all(b > a for a, b in zip(sizes, sizes[1:]))  # on disk as it goes
    assert not any(isinstance(v, list) and len(v) >= 20 for v in vars(writer).values())
    writer.close()
    data = json.load(open(str(tmp_path / "x.json")))
    assert len(data["images"]) == 20 and len(data["annotations"]) == 40
    assert not os.path.exists(str(tmp_path / "x.json.annotations.part"))


# ---------------------------------------------------------------------------
# with the segmentation pipeline (helper D's segment) on a blob-drawing engine


class BlobBackend:
    """Backend protocol of the SAM engine: an irregular blob inside each box."""

    name = "blob"

    def predict_batch(self, images, prompts):
        from types import SimpleNamespace

        from fiftyone_samrs.core import geometry
        from fiftyone_samrs.core.records import InstanceMask

        out = []
        for image, ps in zip(images, prompts):
            h, w = image.shape[:2]
            res = []
            for i in range(len(ps)):
                rx0, ry0, rx1, ry1 = geometry.box_to_int_region(ps.regions[i], w, h)
                bx0, by0, bx1, by1 = geometry.box_to_int_region(ps.boxes[i], w, h)
                crop = np.zeros((ry1 - ry0, rx1 - rx0), dtype=bool)
                rng = np.random.default_rng(bx0 * 1000 + by0)
                crop[by0 - ry0:by1 - ry0, bx0 - rx0:bx1 - rx0] = _shape(rng, by1 - by0,
                                                                      bx1 - bx0)
                res.append(SimpleNamespace(mask=InstanceMask(crop, rx0, ry0), score=0.9,
                                           stability=0.8, empty=not crop.any()))
            out.append(res)
        return out


def test_gray_from_instances_and_from_seg_equal_the_pipeline_png(fo_dataset, tmp_path):
    from fiftyone_samrs import export_samrs
    from fiftyone_samrs.core.painting import read_label_png
    from fiftyone_samrs.segmenting.pipeline import segment

    make_segmented(fo_dataset, str(tmp_path), n=6)
    fo_dataset.delete_sample_field("sam")
    segment(fo_dataset, engine=BlobBackend(), prompt="hbox", obb_field=None, classes="SOTA",
            seg_dir=str(tmp_path / "seg"), paint_order="small_last", progress=False)
    paths = {s.filepath: s.sam_seg.mask_path for s in fo_dataset
             if s.sam is not None and s.sam.detections}
    assert len(paths) == 4
    reversed_sota = list(reversed(SOTA))
    for classes in ("SOTA", reversed_sota):
        a = export_samrs(fo_dataset, str(tmp_path / "a"), subset=classes, overwrite=True,
                         progress=False)
        b = export_samrs(fo_dataset, str(tmp_path / "b"), subset=classes, gray_from="seg",
                         overwrite=True, progress=False)
        assert a.labeled_images == b.labeled_images == 4
        for fp, png in paths.items():
            name = _stem(fp) + ".png"
            ga = read_label_png(str(tmp_path / "a" / "gray" / name))
            gb = read_label_png(str(tmp_path / "b" / "gray" / name))
            assert np.array_equal(ga, gb)
            d = read_label_png(png)
            if classes == "SOTA":
                # small_last came from the segmentation run's record
                assert np.array_equal(ga, d)
            else:
                lut = np.full(256, 255, np.uint8)
                lut[:len(SOTA)] = [reversed_sota.index(c) for c in SOTA]
                assert np.array_equal(ga, lut[d])
    # prompt_bbox links each mask to its hbb prompt through the pipeline's source_id
    data = json.load(open(str(tmp_path / "a" / "annotations.json")))
    names = {im["id"]: im["file_name"] for im in data["images"]}
    got = {}
    for ann in data["annotations"]:
        got.setdefault(names[ann["image_id"]], []).append(ann["prompt_bbox"])
    for s in fo_dataset:
        if s.sam is not None and s.sam.detections:
            W, H = s.metadata.width, s.metadata.height
            want = [[round(d.bounding_box[0] * W, 6), round(d.bounding_box[1] * H, 6),
                     round(d.bounding_box[2] * W, 6), round(d.bounding_box[3] * H, 6)]
                    for d in s.hbb.detections]
            assert np.allclose(got[os.path.basename(s.filepath)], want, atol=1e-5)
    # the data has overlaps where the order matters: the test above can fail
    export_samrs(fo_dataset, str(tmp_path / "c"), subset="SOTA", paint_order="annotation",
                 progress=False)
    assert any(not np.array_equal(read_label_png(str(tmp_path / "c" / "gray" / (_stem(fp) +
                                                                               ".png"))),
                                  read_label_png(png)) for fp, png in paths.items())


def test_progress_callback_and_missing_instance_field_choice(segmented):
    from fiftyone_samrs import export_coco
    from fiftyone_samrs.types import COCOInstanceDataset

    ds, truth, tmp = segmented
    calls = []
    export_coco(ds, str(tmp / "p.json"), classes="SOTA", progress=lambda pb: calls.append(pb))
    assert calls
    # FiftyOne's default field choice cannot tell the mask field: clear error, no silent export
    with pytest.raises(ValueError, match="label_field='sam'"):
        ds.export(str(tmp / "nolabel"), dataset_type=COCOInstanceDataset, classes="SOTA")


def test_fast_mask_decoding_equals_fiftyone():
    import fiftyone.core.utils as fou

    from fiftyone_samrs.fiftyone_io import deserialize_mask

    rng = np.random.default_rng(5)
    arrays = [rng.random((7, 9)) > 0.5, rng.random((7, 9)) > 0.5,  # same header: cached
              rng.integers(0, 3, (4, 5)).astype(np.uint8), np.zeros((0, 0), bool),
              np.asfortranarray(rng.random((6, 3)) > 0.5), np.ones((1, 300), bool)]
    for a in arrays:
        raw = fou.serialize_numpy_array(a)
        b = deserialize_mask(raw)
        ref = fou.deserialize_numpy_array(raw)
        assert b.dtype == ref.dtype and b.shape == ref.shape and np.array_equal(b, ref)


def test_export_samrs_takes_classes_like_every_call_and_subset_as_its_old_name(segmented):
    from fiftyone_samrs import export_samrs

    ds, truth, tmp = segmented
    a = export_samrs(ds, str(tmp / "a"), classes=list(reversed(SOTA)), progress=False)
    b = export_samrs(ds, str(tmp / "b"), subset=list(reversed(SOTA)), progress=False)
    assert a.classes == b.classes == list(reversed(SOTA))
    assert open(str(tmp / "a" / "classes.txt")).read() == open(str(tmp / "b" / "classes.txt")).read()
    with pytest.raises(ValueError, match="give the class list once"):
        export_samrs(ds, str(tmp / "c"), classes="SOTA", subset="SIOR", progress=False)
    with pytest.raises(TypeError):
        export_samrs(ds, str(tmp / "d"), "SOTA", "sam")  # plumbing is keyword-only
