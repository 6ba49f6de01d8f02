"""Dataset statistics (the paper's Figs. 5 and 6) on hand-made masks."""

import json

import cv2
import fiftyone as fo
import numpy as np
import pytest

from fiftyone_samrs.core.masks import relative_box
from fiftyone_samrs.evaluating.stats import dataset_stats
from fiftyone_samrs.tools.cli import main


def _det(label, x, y, w, h, W=60, H=40, **kw):
    return fo.Detection(label=label, bounding_box=relative_box((x, y, x + w, y + h), W, H),
                        mask=np.ones((h, w), bool), **kw)


@pytest.fixture
def ds(fo_dataset, tmp_path):
    path = str(tmp_path / "a.png")
    cv2.imwrite(path, np.zeros((40, 60, 3), np.uint8))
    a = fo.Sample(filepath=path)
    # ships 10x10 and 5x4 (area attribute given, as segment writes it), a plane
    # without the attribute (its mask is decoded), an empty mask and a stranger
    a["sam"] = fo.Detections(detections=[
        _det("ship", 0, 0, 10, 10, area=100), _det("ship", 20, 20, 5, 4, area=20),
        _det("plane", 30, 0, 8, 8), _det("plane", 0, 30, 3, 3, empty=True),
        _det("ufo", 40, 20, 2, 2)])
    b = fo.Sample(filepath=path)
    b["sam"] = fo.Detections(detections=[_det("plane", 0, 0, 20, 20)])
    fo_dataset.add_samples([a, b])
    return fo_dataset


def test_pixels_instances_and_sizes_as_the_release_counts_them(ds):
    st = dataset_stats(ds, classes=["plane", "ship", "car"], progress=False)
    assert st.images == 2 and st.empty == 1 and st.other == {"ufo": 1}
    assert st.instances.tolist() == [2, 2, 0]
    assert st.pixels.tolist() == [64 + 400, 120, 0]
    assert sorted(st.sizes.tolist()) == [4, 20, 64, 100, 400]
    bins = {(r["from"], r["to"]): r["instances"] for r in st.size_table()}
    assert bins[(16, 64)] == 1 and bins[(64, 256)] == 2 and bins[(0, 16)] == 1


def test_stats_verb_prints_and_writes(ds, tmp_path, capsys):
    assert main(["stats", ds.name, "--classes", "plane,ship", "--out", str(tmp_path / "st"),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| ship | 2 | 120 |" in out and "ufo (not in the class list)" in out
    data = json.load(open(tmp_path / "st" / "stats.json"))
    assert data["instances"] == 5 and data["classes"][0] == {"name": "plane", "pixels": 464,
                                                              "instances": 2}
    for name in ("class_pixels.png", "class_instances.png", "mask_sizes.png"):
        img = cv2.imread(str(tmp_path / "st" / name))
        assert img is not None and img.std() > 5
    assert main(["stats", ds.name, "--label-field", "nope"]) == 1
