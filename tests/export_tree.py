"""Not SDK: a small SAMRS-layout export written straight to disk, with the
masks, labels and images it holds, for the tests of training code
(:mod:`fiftyone_samrs.training`).

The tree follows the export contract (``export_samrs``): ``images/``,
``gray/`` (class index, 255 where no object; every image has one),
``color/``, ``rbbtxts/`` (DOTA lines), ``classes.txt``, ``palette.json``,
``annotations.json`` + ``annotations_<split>.json`` (RLE masks with ``counts``
a str, ``bbox`` from the mask, ``rbox``, ``info.category_id_start``), the split
lists of the labelled images (``valid.txt`` == ``val.txt``), ``splits.json``,
``stats.json`` and ``README.md``. Objects are rotated rectangles and ellipses,
one per cell of a 2 x 2 grid (they never overlap), filled with their class's
colour plus noise, on a dim noisy background: a segmentation net can learn
the classes from the colours. Pure numpy / OpenCV / pycocotools; no FiftyOne.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_utils

IGNORE = 255

#: class colours (RGB); class i uses ``COLORS[i % len(COLORS)]``
COLORS = [(230, 40, 40), (40, 200, 60), (60, 80, 240), (240, 220, 40), (200, 60, 220)]


def _draw_object(rng: np.random.Generator, cell: tuple, size: tuple) -> Dict[str, Any]:
    """A rotated rectangle or an ellipse inside a grid cell: its mask and rbox."""
    (x0, y0, cw, ch), (h, w) = cell, size
    center = (x0 + cw / 2 + rng.uniform(-2, 2), y0 + ch / 2 + rng.uniform(-2, 2))
    axes = (rng.uniform(0.25, 0.4) * cw, rng.uniform(0.25, 0.4) * ch)
    angle = float(rng.uniform(0, 180))
    mask = np.zeros((h, w), np.uint8)
    if rng.random() < 0.5:
        quad = cv2.boxPoints((center, (2 * axes[0], 2 * axes[1]), angle))
        cv2.fillPoly(mask, [np.round(quad).astype(np.int32)], 1)
        source = "source"
    else:
        cv2.ellipse(mask, (int(round(center[0])), int(round(center[1]))),
                    (int(axes[0]), int(axes[1])), angle, 0, 360, 1, -1)
        points = cv2.findNonZero(mask)
        quad = cv2.boxPoints(cv2.minAreaRect(points))
        source = "mask"
    return {"mask": mask.astype(bool), "rbox": [round(float(v), 2) for v in quad.ravel()],
            "rbox_source": source}


def _make_image(rng, stem, split, size, n_objects, n_classes):
    h, w = size
    image = rng.integers(20, 70, size=(h, w, 3), dtype=np.uint8)
    gray = np.full((h, w), IGNORE, np.uint8)
    cells = [(x, y, w // 2, h // 2) for y in (0, h // 2) for x in (0, w // 2)]
    instances = []
    for k in rng.permutation(len(cells))[:n_objects]:
        obj = _draw_object(rng, cells[k], size)
        obj["label"] = int(rng.integers(n_classes))
        color = np.array(COLORS[obj["label"] % len(COLORS)], np.int16)
        noise = rng.integers(-25, 26, size=(int(obj["mask"].sum()), 3))
        image[obj["mask"]] = np.clip(color + noise, 0, 255).astype(np.uint8)
        gray[obj["mask"]] = obj["label"]
        instances.append(obj)
    return {"stem": stem, "split": split, "image": image, "gray": gray, "instances": instances}


def _write_image(root: str, item: dict, ext: str) -> None:
    item["file_name"] = "%s.%s" % (item["stem"], ext)
    path = os.path.join(root, "images", item["file_name"])
    cv2.imwrite(path, np.ascontiguousarray(item["image"][:, :, ::-1]))
    if ext != "png":  # what a reader gets back from the lossy file
        item["image"] = cv2.imread(path, cv2.IMREAD_COLOR)[:, :, ::-1].copy()


def _write_labels(root: str, item: dict, classes: Sequence[str]) -> None:
    stem, gray = item["stem"], item["gray"]
    cv2.imwrite(os.path.join(root, "gray", stem + ".png"), gray)
    palette = np.zeros((256, 3), np.uint8)
    palette[: len(classes)] = [COLORS[i % len(COLORS)] for i in range(len(classes))]
    cv2.imwrite(os.path.join(root, "color", stem + ".png"), palette[gray][:, :, ::-1])
    with open(os.path.join(root, "rbbtxts", stem + ".txt"), "w") as f:
        for obj in item["instances"]:
            coords = " ".join("%g" % v for v in obj["rbox"])
            f.write("%s %s 0\n" % (coords, classes[obj["label"]].replace(" ", "-")))


def _annotation(obj: dict, ann_id: int, image_id: int, start: int) -> dict:
    rle = mask_utils.encode(np.asfortranarray(obj["mask"].astype(np.uint8)))
    return {
        "id": ann_id, "image_id": image_id, "category_id": obj["label"] + start,
        "segmentation": {"size": [int(v) for v in rle["size"]],
                         "counts": rle["counts"].decode("ascii")},
        "area": int(mask_utils.area(rle)), "bbox": [float(v) for v in mask_utils.toBbox(rle)],
        "iscrowd": 0, "rbox": obj["rbox"], "rbox_source": obj["rbox_source"],
    }


def _coco(items: List[dict], classes: Sequence[str], start: int) -> dict:
    images, annotations = [], []
    for item in items:
        h, w = item["gray"].shape
        images.append({"id": item["id"], "file_name": item["file_name"],
                       "width": w, "height": h})
        annotations += [_annotation(obj, obj["id"], item["id"], start)
                        for obj in item["instances"]]
    return {
        "info": {"description": "make_export_tree", "category_id_start": start},
        "licenses": [],
        "categories": [{"id": i + start, "name": c, "supercategory": ""}
                       for i, c in enumerate(classes)],
        "images": images, "annotations": annotations,
    }


def _write_json(path: str, data: Any) -> None:
    with open(path, "w") as f:
        json.dump(data, f)


def _write_lists(root: str, items: List[dict], classes: Sequence[str], start: int) -> dict:
    splits = {}
    for split in ("train", "val", "test"):
        members = [it for it in items if it["split"] == split]
        if not members:
            continue
        labelled = [it["stem"] for it in members if it["instances"]]
        names = {"val": ["val.txt", "valid.txt"]}.get(split, [split + ".txt"])
        for name in names:
            with open(os.path.join(root, name), "w") as f:
                f.write("".join(s + "\n" for s in labelled))
        _write_json(os.path.join(root, "annotations_%s.json" % split),
                    _coco(members, classes, start))
        splits[split] = {"images": len(members), "labeled_images": len(labelled),
                         "instances": sum(len(it["instances"]) for it in members)}
    _write_json(os.path.join(root, "annotations.json"), _coco(items, classes, start))
    _write_json(os.path.join(root, "splits.json"), splits)
    return splits


def _write_meta(root: str, classes: Sequence[str], items: List[dict], splits: dict) -> None:
    with open(os.path.join(root, "classes.txt"), "w") as f:
        f.write("".join(c + "\n" for c in classes))
    palette = [{"index": i, "name": c, "color": list(COLORS[i % len(COLORS)])}
               for i, c in enumerate(classes)] + [{"index": IGNORE, "name": None,
                                                   "color": [0, 0, 0]}]
    _write_json(os.path.join(root, "palette.json"),
                {"classes": list(classes), "ignore_index": IGNORE, "palette": palette})
    counts = [sum(o["label"] == i for it in items for o in it["instances"])
              for i in range(len(classes))]
    _write_json(os.path.join(root, "stats.json"),
                {"classes": [{"name": c, "instances": n} for c, n in zip(classes, counts)]})
    with open(os.path.join(root, "README.md"), "w") as f:
        f.write("# make_export_tree\n\nA generated SAMRS-layout export for tests: %s.\n"
                % json.dumps(splits))


def make_export_tree(
    root: str,
    splits: Mapping[str, int] = None,
    empty: int = 1,
    size: tuple = (64, 64),
    classes: Sequence[str] = ("plane", "ship", "small vehicle"),
    category_id_start: int = 1,
    exts: Sequence[str] = ("png", "jpg"),
    seed: int = 0,
) -> Dict[str, Any]:
    """Writes a small SAMRS export under ``root`` and returns what it holds.

    Args:
        root: the export folder (created)
        splits: split -> number of labelled images (1 to 4 objects each);
            default ``{"train": 4, "val": 2}``
        empty: images without objects added to every split (in the COCO
            JSONs and ``gray/``, not in the split lists)
        size: ``(height, width)`` of every image
        classes: the class list (a space becomes ``-`` in ``rbbtxts``)
        category_id_start: the COCO id of class index 0
        exts: image extensions, used in turn (``jpg`` is lossy: the returned
            image is what is read back)
        seed: the random seed

    Returns:
        ``{"root", "classes", "category_id_start", "splits": {split: {"images",
        "labeled_images", "instances"}}, "lists": {split: [labelled stems]},
        "images": {stem: {"stem", "split", "id", "file_name", "image"
        (RGB uint8), "gray" (uint8), "instances": [{"mask" (bool), "label"
        (0-based), "rbox" (8 floats), "rbox_source", "id"}]}}}``
    """
    splits = dict(splits or {"train": 4, "val": 2})
    rng = np.random.default_rng(seed)
    for sub in ("images", "gray", "color", "rbbtxts"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    items = []
    for split, n in splits.items():
        for k in range(n + empty):
            stem = "%s_%04d" % (split, k) if k < n else "%s_empty_%d" % (split, k - n)
            n_objects = int(rng.integers(1, 5)) if k < n else 0
            items.append(_make_image(rng, stem, split, size, n_objects, len(classes)))
    ann_ids = iter(range(1, 1 + sum(len(it["instances"]) for it in items)))
    for i, item in enumerate(items):
        item["id"] = i + 1
        for obj in item["instances"]:
            obj["id"] = next(ann_ids)
        _write_image(root, item, exts[i % len(exts)])
        _write_labels(root, item, classes)
    written = _write_lists(root, items, classes, category_id_start)
    _write_meta(root, classes, items, written)
    return {
        "root": root, "classes": list(classes), "category_id_start": category_id_start,
        "splits": written,
        "lists": {s: [it["stem"] for it in items if it["split"] == s and it["instances"]]
                  for s in written},
        "images": {it["stem"]: it for it in items},
    }
