"""The export meets the training code: every snippet of docs/exporting.md's
"Each framework's own loader" runs here on a generated export where the
framework pip-installs (torchvision, pycocotools, FiftyOne, ultralytics);
for the others the files a snippet names are checked against what that
framework's loader reads (the facts are written next to each check, from the
frameworks' own loader code)."""

import json
import os
import re
import uuid

import cv2
import fiftyone as fo
import numpy as np
import pytest

import fiftyone_samrs as fsr
from fiftyone_samrs.core.classes import SOTA
from fiftyone_samrs.testing import synthetic as syn

DOCS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "docs", "exporting.md")
SECTION = "### Each framework's own loader"


def _snippets():
    text = open(DOCS).read()
    section = text[text.index(SECTION):]
    nxt = re.search(r"\n##? ", section[len(SECTION):])
    section = section[:len(SECTION) + nxt.start()] if nxt else section
    return re.findall(r"```python\n(.*?)```", section, re.S)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A DOTA tree with train and val folders, segmented (boxfill) and
    exported three ways: SAMRS layout, COCO, YOLO."""
    tmp = tmp_path_factory.mktemp("consumers")
    gt = syn.make_dota_tree(str(tmp / "dota"), n_images=6, n_objects=5, size=(160, 128),
                            split=["train", "val"], seed=11)
    ds = fsr.load_dota(gt["root"], name="samrs-test-cons-" + uuid.uuid4().hex[:8],
                       version="1.0", progress=False)
    try:
        fsr.segment(ds, backend="boxfill", progress=False)
        # an image without objects: a label PNG, an empty rbbtxt, in no split list
        blank = str(tmp / "blank.png")
        cv2.imwrite(blank, np.zeros((64, 64, 3), np.uint8))
        ds.add_sample(fo.Sample(filepath=blank, split="train",
                                metadata=fo.ImageMetadata(width=64, height=64)))
        paths = {"/data/SOTA": str(tmp / "SOTA"), "/data/coco": str(tmp / "coco"),
                 "/data/yolo": str(tmp / "yolo")}
        fsr.export_samrs(ds, paths["/data/SOTA"], classes="SOTA", progress=False)
        fsr.export_coco(ds, os.path.join(paths["/data/coco"], "annotations.json"),
                        classes="SOTA", progress=False)
        fsr.export_yolo(ds, paths["/data/yolo"], classes="SOTA", progress=False)
        yield paths
    finally:
        ds.delete()


@pytest.fixture(scope="module")
def namespace(exports):
    """Every snippet run in order (one namespace), with the paths replaced;
    a snippet whose framework is not installed is recorded as skipped. The
    ultralytics one runs offline in a child process (importing ultralytics
    patches PIL and OpenCV process-wide): its result is ``__yolo__``."""
    ns, skipped = {"__yolo__": None}, []
    for code in _snippets():
        for doc_path, real in exports.items():
            code = code.replace(doc_path, real)
        if "ultralytics" in code:
            ns["__yolo__"] = _run_yolo_snippet(code, exports["/data/yolo"])
            continue
        try:
            exec(compile(code, DOCS, "exec"), ns)
        except ModuleNotFoundError as e:
            skipped.append(e.name)
    ns["__skipped__"] = skipped
    yield ns
    if isinstance(ns.get("fo_val"), fo.Dataset):
        ns["fo_val"].delete()


def _run_yolo_snippet(code, yolo_dir):
    import importlib.util
    from pathlib import Path

    from ultralytics_env import run_child

    if importlib.util.find_spec("ultralytics") is None:
        return None
    tmp = Path(yolo_dir).parent / "ultralytics-run"
    tmp.mkdir(exist_ok=True)
    (tmp / "snippet.py").write_text(code)
    return run_child(tmp, "--snippet", str(tmp / "snippet.py"))


def _stems(path):
    return open(path).read().split()


def test_docs_have_a_snippet_per_consumer():
    text = "\n".join(_snippets())
    for name in ("samrs_release_sota", "mtp_sota_train", "mmseg_train", "mmdet_train",
                 "mmrotate_train", "register_coco_instances", "CocoDetection", "COCO(",
                 "fo.Dataset.from_dir", "YOLODataset"):
        assert name in text, name


def test_samrs_release_trainer_finds_every_listed_image_and_label(namespace):
    # SegmentationDataset reads root/train.txt AND root/valid.txt (stems), then
    # image_path + stem + ext_img and label_path + stem + ext_lbl with PIL;
    # the label must be one channel, classes 0..N-1, ignore 255
    args = namespace["samrs_release_sota"]
    for name in ("train.txt", "valid.txt"):
        stems = _stems(os.path.join(args["root"], name))
        assert stems, name
        for stem in stems:
            assert os.path.isfile(args["image_path"] + stem + args["ext_img"])
            label = cv2.imread(args["label_path"] + stem + args["ext_lbl"], cv2.IMREAD_UNCHANGED)
            assert label.ndim == 2 and label.dtype == np.uint8
            assert set(np.unique(label)) <= set(range(len(SOTA))) | {255}
            assert (label != 255).any()  # listed images are labelled


def test_mtp_reads_its_json_names_semantic_labels_and_rbbtxts(namespace):
    # MultiTaskCocoDataset: COCO via mmdet (cat ids by name, ANN_ID_UNIQUE),
    # image data_prefix.img/file_name, seg data_prefix.seg/<stem>.png,
    # rotated boxes rdet_ann_dir/<stem>.txt (must exist), tokens[8] a class
    # name, int(tokens[9])
    args = namespace["mtp_sota_train"]
    for split in ("train", "valid"):
        path = os.path.join(args["data_root"], args["ann_file"].replace("train", split))
        data = json.load(open(path))
        assert [c["name"] for c in data["categories"]] == SOTA
        ids = [a["id"] for a in data["annotations"]]
        assert len(ids) == len(set(ids))
        for im in data["images"]:
            stem = os.path.splitext(im["file_name"])[0]
            assert os.path.isfile(os.path.join(args["data_root"], args["data_prefix"]["img"],
                                               im["file_name"]))
            assert os.path.isfile(os.path.join(args["data_root"], args["data_prefix"]["seg"],
                                               stem + args["seg_map_suffix"]))
            lines = open(os.path.join(args["rdet_ann_dir"], stem + args["rdet_post_fix"])
                         ).read().splitlines()
            n = sum(a["image_id"] == im["id"] for a in data["annotations"])
            assert len(lines) == n
            for line in lines:
                tok = line.split()
                assert len(tok) == 10 and tok[8] in SOTA and int(tok[9]) in (0, 1, 2)
                [float(v) for v in tok[:8]]


def test_mmseg_split_and_folder_modes_find_a_label_for_every_image(namespace):
    # BaseSegDataset: ann_file lines are stems -> img_path/<stem><img_suffix>,
    # seg_map_path/<stem><seg_map_suffix>; folder mode (ann_file="") pairs every
    # image ending in img_suffix with its map; a missing map fails at load
    cfg = namespace["mmseg_train"]
    root = cfg["data_root"]
    img_dir = os.path.join(root, cfg["data_prefix"]["img_path"])
    seg_dir = os.path.join(root, cfg["data_prefix"]["seg_map_path"])
    for stem in _stems(os.path.join(root, cfg["ann_file"])):
        assert os.path.isfile(os.path.join(img_dir, stem + cfg["img_suffix"]))
        assert os.path.isfile(os.path.join(seg_dir, stem + cfg["seg_map_suffix"]))
    images = [f for f in os.listdir(img_dir) if f.endswith(cfg["img_suffix"])]
    assert len(images) == 7  # the blank image too
    for f in images:
        assert os.path.isfile(os.path.join(seg_dir, f.replace(cfg["img_suffix"],
                                                              cfg["seg_map_suffix"])))
    assert cfg["metainfo"]["classes"] == tuple(SOTA)


def test_mmdet_and_detectron2_read_the_split_json(namespace):
    # mmdet CocoDataset: cat_ids by metainfo class names, label = position in
    # metainfo classes, annotation ids unique; detectron2 load_coco_json:
    # image_root/file_name, RLE dict segmentations need MASK_FORMAT=bitmask
    from pycocotools import mask as mask_utils

    cfg = namespace["mmdet_train"]
    data = json.load(open(os.path.join(cfg["data_root"], cfg["ann_file"])))
    names = [c["name"] for c in data["categories"]]
    assert names == list(cfg["metainfo"]["classes"])
    assert len({a["id"] for a in data["annotations"]}) == len(data["annotations"])
    for ann in data["annotations"]:
        assert isinstance(ann["segmentation"], dict) and ann["area"] > 0 and ann["iscrowd"] == 0
        assert mask_utils.decode(ann["segmentation"]).sum() == ann["area"]
    for im in data["images"]:
        assert os.path.isfile(os.path.join(cfg["data_root"], cfg["data_prefix"]["img"],
                                           im["file_name"]))


def test_mmrotate_reads_a_txt_per_image_without_headers(namespace):
    # DOTADataset 1.x: globs ann_file/*.txt, image data_prefix.img_path/<stem>.<img_suffix>,
    # no header skipping (a "gsd:" line raises), tokens[8] in metainfo classes
    cfg = namespace["mmrotate_train"]
    ann_dir = os.path.join(cfg["data_root"], cfg["ann_file"])
    txts = sorted(os.listdir(ann_dir))
    assert len(txts) == 7
    for name in txts:
        stem = os.path.splitext(name)[0]
        assert os.path.isfile(os.path.join(cfg["data_root"], cfg["data_prefix"]["img_path"],
                                           "%s.%s" % (stem, cfg["img_suffix"])))
        for line in open(os.path.join(ann_dir, name)).read().splitlines():
            tok = line.split()
            assert len(tok) == 10 and tok[8] in cfg["metainfo"]["classes"]


def test_torchvision_pycocotools_and_fiftyone_load_the_export(namespace, exports):
    image, target = namespace["image"], namespace["target"]
    assert image.size[0] > 0 and int(target["labels"].min()) >= 1
    assert target["masks"].shape[0] == target["boxes"].shape[0] == target["labels"].shape[0]
    coco_val = namespace["coco_val"]
    assert len(coco_val.getImgIds()) == len(namespace["fo_val"]) == 3
    assert namespace["fo_val"].count("ground_truth.detections") == len(coco_val.getAnnIds())


def test_ultralytics_yolo_dataset_reads_the_yolo_export(namespace):
    read = namespace["__yolo__"]
    if read is None:
        pytest.skip("ultralytics is not installed")
    assert read["images"] == 4  # 3 train images + the blank one (a background image)
    assert read["instances"] == read["segments"] == 15
    assert read["names"]["4"] == "plane" and not read["attempts"]  # offline
