"""Training-ready exports (issue 21): splits that follow the data and never
leak, per-split COCO JSONs that pycocotools and torchvision load, a label PNG
and a DOTA rotated-box file per image, and a card naming the model."""

import json
import os
import uuid

import fiftyone as fo
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

import fiftyone_samrs as fsr
from fiftyone_samrs.core.rboxes import rotated_iou
from fiftyone_samrs.testing import synthetic as syn


@pytest.fixture
def names():
    made = []

    def make():
        made.append("samrs-test-exp-" + uuid.uuid4().hex[:8])
        return made[-1]

    yield make
    for name in made:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)


def _lines(path):
    return open(path).read().split()


def _check_layout(out, ds, tiles=False):
    """What every SAMRS export must hold: each image in exactly one split, no
    source image across splits, a label PNG and an rbbtxt per image with one
    line per instance, per-split JSONs that pycocotools loads."""
    coco_all = COCO(os.path.join(out, "annotations.json"))
    stems = {os.path.splitext(im["file_name"])[0]: im for im in coco_all.imgs.values()}
    assert sorted(os.listdir(os.path.join(out, "gray"))) == sorted(s + ".png" for s in stems)
    split_of = {}
    for split in ("train", "val", "test"):
        path = os.path.join(out, "annotations_%s.json" % split)
        if not os.path.isfile(path):
            continue
        coco = COCO(path)
        for im in coco.imgs.values():
            stem = os.path.splitext(im["file_name"])[0]
            assert stem not in split_of, "%s in two splits" % stem
            split_of[stem] = split
            assert len(coco.getAnnIds(imgIds=im["id"])) == len(
                coco_all.getAnnIds(imgIds=im["id"]))
        labelled = {os.path.splitext(coco.imgs[i]["file_name"])[0]
                    for i in coco.getImgIds() if coco.getAnnIds(imgIds=i)}
        listed = _lines(os.path.join(out, "%s.txt" % split))
        assert sorted(listed) == sorted(labelled)
        if split == "val":
            assert _lines(os.path.join(out, "valid.txt")) == listed
    assert set(split_of) == set(stems)  # every image in exactly one split
    for stem, im in stems.items():
        anns = coco_all.loadAnns(coco_all.getAnnIds(imgIds=im["id"]))
        rb = open(os.path.join(out, "rbbtxts", stem + ".txt")).read().splitlines()
        assert len(rb) == len(anns)
        for line, ann in zip(rb, anns):
            tok = line.split()
            assert len(tok) == 10 and tok[8] == coco_all.cats[ann["category_id"]]["name"]
            assert np.allclose([float(v) for v in tok[:8]], ann["rbox"], atol=0.06)
    if tiles:
        source = dict(zip(ds.values("filepath"), ds.values("tile_source")))
        by_source = {}
        for fp in ds.values("filepath"):
            stem = os.path.splitext(os.path.basename(fp))[0]
            by_source.setdefault(source[fp], set()).add(split_of[stem])
        assert all(len(s) == 1 for s in by_source.values()), by_source
    return split_of


def test_tiled_dota_split_ratio_keeps_source_images_whole(tmp_path, names):
    gt = syn.make_dota_tree(str(tmp_path / "dota"), n_images=6, n_objects=10, size=(500, 400),
                            seed=3)
    ds = fsr.load_dota(gt["root"], name=names(), version="1.0", tile=True, tile_size=256,
                       gap=56, tile_dir=str(tmp_path / "tiles"), progress=False)
    assert ds.count_values("split") == {None: len(ds)}
    fsr.segment(ds, backend="boxfill", progress=False)
    out = str(tmp_path / "SOTA")
    result = fsr.export_samrs(ds, out, classes="SOTA", split_ratio=0.5, seed=0,
                              progress=False)
    split_of = _check_layout(out, ds, tiles=True)
    assert set(split_of.values()) == {"train", "val"}
    assert "by split_ratio" in result.split_rule
    assert result.rbox_from_source == result.instances and result.rbox_derived == 0
    # the source's own quads, in tile coordinates, are the rotated boxes
    for s in ds.select_fields("obb").limit(3):
        stem = os.path.splitext(os.path.basename(s.filepath))[0]
        rb = open(os.path.join(out, "rbbtxts", stem + ".txt")).read().splitlines()
        w, h = s.metadata.width, s.metadata.height
        quads = [np.asarray(p.points[0][:4]) * (w, h) for p in s.obb.polylines]
        for line in rb:
            q = np.asarray([float(v) for v in line.split()[:8]]).reshape(4, 2)
            assert max(rotated_iou(q, g) for g in quads) > 0.99


def test_tiled_dota_split_folders_give_each_tile_its_source_split(tmp_path, names):
    gt = syn.make_dota_tree(str(tmp_path / "dota"), n_images=4, n_objects=8, size=(400, 300),
                            split=["train", "val"], seed=7)
    ds = fsr.load_dota(gt["root"], name=names(), version="1.0", tile=True, tile_size=256,
                       gap=56, tile_dir=str(tmp_path / "tiles"), progress=False)
    fsr.segment(ds, backend="boxfill", progress=False)
    out = str(tmp_path / "SOTA")
    # the ratio applies only to samples without a split: here none
    result = fsr.export_samrs(ds, out, classes="SOTA", split_ratio=0.0, progress=False)
    split_of = _check_layout(out, ds, tiles=True)
    for fp, split in zip(ds.values("filepath"), ds.values("split")):
        assert split_of[os.path.splitext(os.path.basename(fp))[0]] == split
    assert set(split_of.values()) == {"train", "val"}
    assert result.split_rule.startswith("%d images from the samples' split field" % len(ds))


def test_dior_splits_follow_the_data_and_test_stays_test(tmp_path, names):
    gt = syn.make_dior_tree(str(tmp_path / "dior"), n_images=6, n_objects=4, seed=1)
    ds = fsr.load_dior(gt["root"], name=names(), progress=False)
    fsr.segment(ds, backend="boxfill", progress=False)
    out = str(tmp_path / "SIOR")
    # split_ratio applies only to samples without a split: none here
    result = fsr.export_samrs(ds, out, classes="SIOR", split_ratio=1.0, progress=False)
    split_of = _check_layout(out, ds)
    truth = {os.path.splitext(os.path.basename(fp))[0]: normalize
             for fp, normalize in zip(ds.values("filepath"), ds.values("split"))}
    assert split_of == truth and set(split_of.values()) == {"train", "val", "test"}
    assert set(_lines(os.path.join(out, "test.txt"))) == {
        s for s, v in truth.items() if v == "test"}
    assert result.splits["test"]["images"] == 2
    assert os.path.isfile(os.path.join(out, "sior_train_ins_segmentation.json"))


def test_fair1m_tiles_keep_their_splits_and_source_rotated_boxes(tmp_path, names):
    gt = syn.make_fair1m_tree(str(tmp_path / "fair1m"), n_images=3, n_objects=4,
                              size=(300, 300), seed=2)
    ds = fsr.load_fair1m(gt["root"], name=names(), tile=True, tile_size=128, gap=32,
                         tile_dir=str(tmp_path / "tiles"), progress=False)
    fsr.segment(ds, backend="boxfill", progress=False)
    out = str(tmp_path / "FAST")
    result = fsr.export_samrs(ds, out, classes="FAST", progress=False)
    split_of = _check_layout(out, ds, tiles=True)
    assert set(split_of.values()) == {"train", "val"}  # FAIR1M's train and validation
    assert result.images == len(ds)
    assert result.rbox_from_source == result.instances > 0
    assert os.path.isfile(os.path.join(out, "fast_valid_ins_segmentation.json"))


def test_derived_rboxes_when_the_source_has_none(tmp_path, names):
    gt = syn.make_dior_tree(str(tmp_path / "dior"), n_images=3, n_objects=4, seed=4,
                            obb=False)
    ds = fsr.load_dior(gt["root"], name=names(), progress=False)
    fsr.segment(ds, backend="boxfill", progress=False)
    out = str(tmp_path / "SIOR")
    result = fsr.export_samrs(ds, out, classes="SIOR", progress=False)
    assert result.rbox_derived == result.instances > 0 and result.rbox_from_source == 0
    data = json.load(open(os.path.join(out, "annotations.json")))
    for ann in data["annotations"]:
        assert ann["rbox_source"] == "mask"
        mask = mask_utils.decode(ann["segmentation"]).astype(bool)
        ys, xs = np.nonzero(mask)  # boxfill: the mask is its box, so is the derived rbox
        box = np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.min()],
                        [xs.max() + 1, ys.max() + 1], [xs.min(), ys.max() + 1]], float)
        assert rotated_iou(np.asarray(ann["rbox"]).reshape(4, 2), box) > 0.99
    card = open(os.path.join(out, "README.md")).read()
    assert "**derived** from the masks" in card and "%d **derived**" % result.instances in card


def test_card_names_the_model_and_its_checkpoint_hash(tmp_path, names):
    from fiftyone_samrs.exporting.card import sha256_of
    from fiftyone_samrs.segmenting.sam.samrs_tiny import checkpoint_path

    gt = syn.make_dota_tree(str(tmp_path / "dota"), n_images=2, n_objects=3, size=(128, 96),
                            seed=5)
    ds = fsr.load_dota(gt["root"], name=names(), version="1.0", progress=False)
    fsr.segment(ds, model="samrs-tiny", progress=False)
    out = str(tmp_path / "SOTA")
    fsr.export_samrs(ds, out, classes="SOTA", progress=False)
    card = open(os.path.join(out, "README.md")).read()
    assert sha256_of(checkpoint_path()) in card
    assert "samrs-tiny" in card and "WARNING" in card
    assert "| plane | 4 | 4 |" in card  # SOTA: plane is pixel value 4, COCO id 4 (0-based)
    stats = json.load(open(os.path.join(out, "stats.json")))
    assert stats["instances"] == sum(c["instances"] for c in stats["classes"])
    assert sum(b["instances"] for b in stats["mask_size"]["bins"]) == stats["instances"]


def test_coco_format_defaults_load_in_torchvision(tmp_path, names):
    torchvision = pytest.importorskip("torchvision")
    from torchvision.datasets import CocoDetection, wrap_dataset_for_transforms_v2

    gt = syn.make_dior_tree(str(tmp_path / "dior"), n_images=3, n_objects=3, seed=6)
    ds = fsr.load_dior(gt["root"], name=names(), progress=False)
    fsr.segment(ds, backend="boxfill", progress=False)
    labels = str(tmp_path / "coco" / "annotations.json")
    fsr.export_coco(ds, labels, classes="SIOR", progress=False)
    data = json.load(open(labels))
    assert data["categories"][0]["id"] == 1  # 0 is the background of torchvision's models
    assert all(not os.path.isabs(im["file_name"]) for im in data["images"])
    for split in ("train", "val", "test"):
        path = str(tmp_path / "coco" / ("annotations_%s.json" % split))
        base = CocoDetection(str(tmp_path / "coco" / "images"), path)
        wrapped = wrap_dataset_for_transforms_v2(base, target_keys=("boxes", "labels", "masks"))
        for i in range(len(wrapped)):
            image, target = wrapped[i]
            if "labels" in target:
                assert int(target["labels"].min()) >= 1
                assert target["masks"].shape[0] == target["boxes"].shape[0]
    assert torchvision.__version__
