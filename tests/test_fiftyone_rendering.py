"""FiftyOne's own renderer draws every mask we write exactly where our PNG has it.

``Detection.to_segmentation`` (and everything built on eta's
``render_instance_mask``: the App, FiftyOne's COCO exporter...) truncates the
relative box to pixels; 0.1.0's plain ratios came back one pixel short for
about a third of the masks (a stretched or shifted mask). Here every
instance of every sample is rendered by FiftyOne and painted in order, and
the result must equal our semantic PNG pixel for pixel, on many image sizes
and box positions; the iSAID ground-truth masks the importer writes are
checked the same way.
"""

import uuid

import cv2
import fiftyone as fo
import numpy as np

from fiftyone_samrs.core import geometry
from fiftyone_samrs.core.classes import SOTA
from fiftyone_samrs.core.masks import render_box

SIZES = [(600, 800), (1100, 1300), (799, 801), (1000, 37), (333, 777)]


def _dataset(tmp_path):
    rng = np.random.default_rng(8)
    samples = []
    for k, (w, h) in enumerate(SIZES):
        path = str(tmp_path / ("img%d.png" % k))
        cv2.imwrite(path, rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        dets = []
        for i in range(25):
            x0, y0 = rng.uniform(0, w - 2), rng.uniform(0, h - 2)
            x1, y1 = min(x0 + rng.uniform(1, 0.3 * w), w), min(y0 + rng.uniform(1, 0.3 * h), h)
            dets.append(fo.Detection(label=SOTA[(i + k) % len(SOTA)], obj_index=i,
                                     bounding_box=geometry.box_to_relative((x0, y0, x1, y1), w, h)))
        samples.append(fo.Sample(filepath=path, hbb=fo.Detections(detections=dets)))
    ds = fo.Dataset("samrs-test-render-" + uuid.uuid4().hex[:6])
    ds.add_samples(samples)
    ds.info = {"samrs": {"subset": "SOTA"}}
    ds.save()
    return ds


def _rendered(dets, width, height):
    """Our PNG as FiftyOne would paint it: each Detection rendered by FiftyOne."""
    out = np.full((height, width), 255, np.uint8)
    for d in dets:
        if d.empty:
            continue
        full = d.to_segmentation(frame_size=(width, height), target=1).mask.astype(bool)
        out[full] = SOTA.index(d.label)
    return out


def test_fiftyone_renders_every_predicted_mask_in_place(tmp_path):
    from fiftyone_samrs.segmenting.pipeline import segment

    ds = _dataset(tmp_path)
    try:
        segment(ds, backend="boxfill", seg_dir=str(tmp_path / "seg"), progress=False)
        n = 0
        for s in ds:
            w, h = s.metadata.width, s.metadata.height
            png = cv2.imread(s.sam_seg.mask_path, cv2.IMREAD_UNCHANGED)
            assert np.array_equal(_rendered(s.sam.detections, w, h), png), s.filepath
            for d in s.sam.detections:
                if not d.empty:
                    x0, y0, x1, y1 = render_box(d.bounding_box, w, h)
                    assert d.mask.shape == (y1 - y0, x1 - x0)  # never resized by FiftyOne
                    n += 1
        assert n >= 100
    finally:
        ds.delete()


def test_plain_ratios_would_be_drawn_off_by_a_pixel():
    """What the test above guards against: the 0.1.0 encoding (x0 / W, (x1 - x0) / W)."""
    rng = np.random.default_rng(9)
    off = total = 0
    for w, h in SIZES:
        for _ in range(100):
            x0, x1 = sorted(int(v) for v in rng.integers(0, w + 1, 2))
            y0, y1 = sorted(int(v) for v in rng.integers(0, h + 1, 2))
            off += render_box(geometry.box_to_relative((x0, y0, x1, y1), w, h), w, h) != (
                x0, y0, x1, y1)
            total += 1
    assert off > total // 10


def test_fiftyone_renders_the_imported_gt_masks_in_place(tmp_path):
    from fiftyone_samrs.importing.importers import load_dota
    from fiftyone_samrs.importing.isaid_gt import load_isaid_masks
    from fiftyone_samrs.testing import synthetic

    gt = synthetic.make_dota_tree(tmp_path / "D", n_images=2, n_objects=15, size=(779, 613),
                                  with_isaid=True, seed=2)
    ds = load_dota(gt["root"], name="samrs-test-render-" + uuid.uuid4().hex[:6],
                   version="1.0", persistent=False, progress=False)
    try:
        load_isaid_masks(ds, gt["root"], progress=False)
        for img in gt["images"]:
            s = ds[img["filepath"]]
            for d in s.gt_masks.detections:
                full = d.to_segmentation(frame_size=(779, 613), target=1).mask.astype(bool)
                hits = [o for o in img["objects"] if o["isaid"]
                        and np.array_equal(o["mask"].to_full(613, 779), full)]
                assert hits, "FiftyOne draws the GT mask exactly as the iSAID instance"
    finally:
        ds.delete()
