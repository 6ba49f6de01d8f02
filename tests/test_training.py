"""Training on an export (fiftyone_samrs.training): the datasets read back what
a SAMRS-layout tree holds, the multi-subset loader splits batches as the SAMRS
release does, and a tiny net learns from it. No FiftyOne, no database."""

import os
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from export_tree import make_export_tree
from torch import nn
from torch.utils.data import DataLoader

from fiftyone_samrs.training import (
    SAMRS_SUBSET_SIZES,
    TORCHGEO_RECIPE,
    InstanceDataset,
    MultiSubsetLoader,
    SemanticDataset,
    collate_instances,
    instance_target,
    proportional_batch_sizes,
)

DOCS = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "exporting.md")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_export_tree(str(tmp_path_factory.mktemp("export")), seed=1)


def _box(mask):
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_semantic_dataset_reads_back_images_and_labels(tree):
    ds = SemanticDataset(tree["root"], split="train")
    assert ds.stems == tree["lists"]["train"] and len(ds) == 4
    assert ds.classes == tree["classes"]
    for k, stem in enumerate(ds.stems):
        image, label = ds[k]
        truth = tree["images"][stem]
        assert image.dtype == torch.float32 and label.dtype == torch.long
        assert torch.equal(image, torch.from_numpy(truth["image"]).permute(2, 0, 1) / 255.0)
        assert torch.equal(label, torch.from_numpy(truth["gray"]).long())
        assert set(label.unique().tolist()) <= {0, 1, 2, 255}


def test_instance_dataset_reads_back_masks_labels_boxes(tree):
    ds = InstanceDataset(tree["root"], split="train")
    assert len(ds) == tree["splits"]["train"]["images"] and ds.category_id_start == 1
    n = 0
    for image, target in ds:
        truth = tree["images"][next(s for s, it in tree["images"].items()
                                    if it["id"] == target["image_id"])]
        objs = truth["instances"]
        n += len(objs)
        assert image.shape == (3, 64, 64) and target["masks"].shape == (len(objs), 64, 64)
        for m, obj in zip(target["masks"], objs):
            assert np.array_equal(m.numpy().astype(bool), obj["mask"])
        assert target["labels"].tolist() == [o["label"] for o in objs]
        assert target["boxes"].tolist() == [_box(o["mask"]) for o in objs]
        assert torch.allclose(target["rboxes"], torch.tensor([o["rbox"] for o in objs]
                                                             ).reshape(-1, 8))
        assert target["has_rbox"].all()
    assert n == tree["splits"]["train"]["instances"]


def test_image_without_instances_gives_empty_targets(tree):
    ds = InstanceDataset(tree["root"], split="val")
    empty = [i for i, im in enumerate(ds.images) if im["file_name"].startswith("val_empty")]
    _, target = ds[empty[0]]
    assert target["masks"].shape == (0, 64, 64) and target["masks"].dtype == torch.uint8
    assert target["boxes"].shape == (0, 4) and target["rboxes"].shape == (0, 8)
    assert target["labels"].shape == (0,) and target["labels"].dtype == torch.long
    assert target["has_rbox"].shape == (0,)
    assert len(InstanceDataset(tree["root"], split="val", skip_empty=True)) == len(ds) - 1
    images, targets = next(iter(DataLoader(ds, batch_size=len(ds),
                                           collate_fn=collate_instances)))
    assert len(images) == len(targets) == len(ds)
    no_rbox = instance_target([{"bbox": [1, 2, 3, 4], "category_id": 2,
                                "segmentation": {"size": [8, 8], "counts": [10, 4, 50]}}],
                              7, 8, 8, category_id_start=1)
    assert not no_rbox["has_rbox"][0] and no_rbox["rboxes"].abs().sum() == 0
    assert no_rbox["boxes"].tolist() == [[1, 2, 4, 6]] and no_rbox["labels"].tolist() == [1]
    assert no_rbox["masks"].sum() == 4


def test_valid_is_val_and_none_is_all(tree):
    assert SemanticDataset(tree["root"], "valid").stems == tree["lists"]["val"]
    assert [im["id"] for im in InstanceDataset(tree["root"], "valid").images] == [
        im["id"] for im in InstanceDataset(tree["root"], "val").images]
    total = sum(s["images"] for s in tree["splits"].values())
    assert len(InstanceDataset(tree["root"], split=None)) == total


def test_missing_files_are_named(tmp_path):
    root = str(tmp_path)
    tree = make_export_tree(root, splits={"train": 2, "val": 1}, empty=0, size=(32, 32))
    with pytest.raises(FileNotFoundError, match="test.txt"):
        SemanticDataset(root, split="test")
    with pytest.raises(FileNotFoundError, match="annotations_test.json"):
        InstanceDataset(root, split="test")
    os.remove(os.path.join(root, "val.txt"))  # valid.txt is the same list
    assert SemanticDataset(root, split="val").stems == ["val_0000"]
    os.remove(os.path.join(root, "gray", "train_0000.png"))
    with pytest.raises(FileNotFoundError, match="train_0000.png"):
        SemanticDataset(root)[0]
    # one images/<stem>.<image ext> is the image (sidecars are none); with several,
    # the COCO JSON's file_name says which
    jpg = os.path.join(root, "images", tree["images"]["train_0001"]["file_name"])
    assert jpg.endswith(".jpg")
    shutil.copy(jpg, jpg[:-4] + ".png")
    open(jpg + ".aux.xml", "w").close()
    assert SemanticDataset(root).image_path(1) == jpg
    for name in ("annotations.json", "annotations_train.json"):
        os.remove(os.path.join(root, name))
    with pytest.raises(FileNotFoundError, match="several image files for stem 'train_0001'"):
        SemanticDataset(root)[1]
    os.remove(jpg[:-4] + ".png")
    assert SemanticDataset(root)[1][1].shape == (32, 32)
    os.remove(jpg)
    with pytest.raises(FileNotFoundError, match="no image files for stem 'train_0001'"):
        SemanticDataset(root)[1]


def test_proportional_batch_sizes_of_the_samrs_subsets():
    assert proportional_batch_sizes(SAMRS_SUBSET_SIZES, 16) == {"sota": 3, "sior": 2,
                                                                "fast": 11}
    # the release's int(): 2 / 2 / 10
    assert proportional_batch_sizes(SAMRS_SUBSET_SIZES, 16, rounding="floor") == {
        "sota": 2, "sior": 2, "fast": 10}
    assert proportional_batch_sizes([1000, 1], 4) == [3, 1]
    assert proportional_batch_sizes([1000, 1, 1], 3) == [1, 1, 1]
    rng = np.random.default_rng(0)
    for _ in range(50):
        sizes = rng.integers(1, 5000, size=int(rng.integers(1, 5))).tolist()
        total = int(rng.integers(len(sizes), 64))
        out = proportional_batch_sizes(sizes, total)
        assert sum(out) == total and min(out) >= 1
    with pytest.raises(ValueError):
        proportional_batch_sizes([5, 5, 5], 2)
    with pytest.raises(ValueError):
        proportional_batch_sizes([5, 0], 4)


@pytest.fixture(scope="module")
def subsets(tmp_path_factory):
    """Two real exports: a generated DOTA tree (SOTA classes) and a generated
    HRSC tree, each imported, segmented (boxfill) and exported by the package."""
    import uuid

    import fiftyone_samrs as fsr
    from fiftyone_samrs.testing import synthetic as syn

    tmp = tmp_path_factory.mktemp("subsets")
    made = {"big": (syn.make_dota_tree, fsr.load_dota, dict(n_images=12, n_objects=4,
                                                              size=(64, 64), seed=2),
                    dict(version="1.0"), "SOTA"),
            "small": (syn.make_hrsc_tree, fsr.load_hrsc, dict(n_images=6, n_objects=2,
                                                               size=(64, 64), seed=3),
                      dict(with_masks=False), "HRSC")}
    out = {}
    for name, (make, load, make_kw, load_kw, classes) in made.items():
        gt = make(str(tmp / name), **make_kw)
        ds = load(gt["root"], name="samrs-test-train-" + uuid.uuid4().hex[:8], progress=False,
                  **load_kw)
        try:
            fsr.segment(ds, backend="boxfill", progress=False)
            fsr.export_samrs(ds, str(tmp / (name + "-export")), classes=classes,
                             split_ratio=1.0, progress=False)
        finally:
            ds.delete()
        out[name] = SemanticDataset(str(tmp / (name + "-export")))
    return out


def test_multi_subset_loader_steps_all_subsets(subsets):
    assert (len(subsets["big"]), len(subsets["small"])) == (12, 4)  # HRSC: its trainval images
    loader = MultiSubsetLoader(subsets, total_batch_size=6, sizes={"big": 2, "small": 1})
    assert loader.batch_sizes == {"big": 4, "small": 2}
    assert len(loader) == 3
    steps = list(loader)
    assert len(steps) == 3 and all(set(s) == {"big", "small"} for s in steps)
    images, labels = steps[0]["big"]
    assert images.shape == (4, 3, 64, 64) and labels.shape == (4, 64, 64)
    assert steps[0]["small"][0].shape[0] == 2
    # the shorter subset starts over; "min" ends with it
    uneven = MultiSubsetLoader(subsets, 6, sizes={"big": 1, "small": 1})
    assert uneven.batch_sizes == {"big": 3, "small": 3}
    assert len(uneven) == 4 and len(list(uneven)) == 4
    assert len(MultiSubsetLoader(subsets, 6, sizes={"big": 1, "small": 1}, length="min")) == 1
    with pytest.raises(ValueError, match="small"):
        MultiSubsetLoader(subsets, 14, sizes={"big": 1, "small": 1})


class _TinyNet(nn.Module):
    """A shared 2-layer trunk and one 1x1 head per subset (as the release's
    per-dataset segmentation heads)."""

    def __init__(self, n_classes):
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())
        self.heads = nn.ModuleDict({n: nn.Conv2d(16, k, 1) for n, k in n_classes.items()})

    def forward(self, x, name):
        return self.heads[name](self.trunk(x))


def test_a_tiny_net_learns_through_the_multi_subset_loader(subsets):
    torch.manual_seed(0)
    loader = MultiSubsetLoader(subsets, total_batch_size=6,
                               generator=torch.Generator().manual_seed(0))
    net = _TinyNet({name: len(ds.classes) for name, ds in subsets.items()})
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    criterion = nn.CrossEntropyLoss(ignore_index=255)
    losses = []
    while len(losses) < 60:
        for step in loader:
            loss = sum(criterion(net(x, name), y) for name, (x, y) in step.items())
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    # from chance (ln 18 + ln 1 over the two heads ~ 2.9) to clearly below it
    first, last = np.mean(losses[:5]), np.mean(losses[55:60])
    assert last < 0.9 * first, (first, last)


def _run_recipe(root):
    namespace = {}
    exec(compile(TORCHGEO_RECIPE, "TORCHGEO_RECIPE", "exec"), namespace)
    cls = namespace["SAMRSSegmentation"]
    ds = cls(root, split="valid", transforms=lambda s: dict(s, seen=True))
    sample = ds[0]
    assert len(ds) == 2 and ds.classes[0] == "plane"
    assert sample["image"].shape == (3, 64, 64) and sample["mask"].dtype == torch.long
    assert sample["seen"]
    return cls


def test_torchgeo_recipe_runs_as_written(tree, monkeypatch):
    """With a stand-in for torchgeo's base class (torchgeo is optional)."""
    torchgeo = types.ModuleType("torchgeo")
    torchgeo.datasets = types.ModuleType("torchgeo.datasets")
    torchgeo.datasets.NonGeoDataset = torch.utils.data.Dataset
    monkeypatch.setitem(sys.modules, "torchgeo", torchgeo)
    monkeypatch.setitem(sys.modules, "torchgeo.datasets", torchgeo.datasets)
    _run_recipe(tree["root"])


def test_torchgeo_recipe_with_torchgeo(tree):
    datasets = pytest.importorskip("torchgeo.datasets", reason="torchgeo is not installed")
    assert issubclass(_run_recipe(tree["root"]), datasets.NonGeoDataset)


def test_docs_show_the_recipe_as_tested():
    text = open(DOCS, encoding="utf-8").read() if os.path.isfile(DOCS) else ""
    if "Training on an export" not in text:
        pytest.skip("docs/exporting.md has no 'Training on an export' section yet")
    assert TORCHGEO_RECIPE in text


def test_training_does_not_import_fiftyone():
    code = "import sys, fiftyone_samrs.training; print('fiftyone' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False"]
