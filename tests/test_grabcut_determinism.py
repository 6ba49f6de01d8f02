"""GrabCut is a function of each object alone: seeded from its own crop and box, so
order, resumes and shards do not change a mask; an empty GrabCut mask falls back to the
rotated box (or the box), flagged."""

import uuid

import cv2
import numpy as np
import pytest

from fiftyone_samrs.core.masks import polygon_pixels
from fiftyone_samrs.segmenting.baselines import GrabCutBackend, grabcut_seed
from fiftyone_samrs.segmenting.prompts import build_prompts
from fiftyone_samrs.testing.scenes import make_scene, scene_key


@pytest.fixture(scope="module")
def scene():
    return make_scene(scene_key("test", 13, 0), (640, 480), 12, "land")


def _masks(results):
    return [(r.mask.x0, r.mask.y0, r.mask.mask.copy()) for r in results]


def test_grabcut_masks_do_not_depend_on_what_ran_before(scene):
    ps = build_prompts(scene.hboxes, scene.quads, "hbox", scene.size)
    backend = GrabCutBackend()
    first = _masks(backend.predict(scene.image, ps))
    cv2.setRNGSeed(12345)  # another global state, as another process would have
    np.random.default_rng(0)
    again = _masks(backend.predict(scene.image, ps))
    # reversed order: every object sees a different global generator state
    order = np.arange(len(ps))[::-1]
    rev = _masks(backend.predict(scene.image, ps.subset(order)))[::-1]
    for a, b, c in zip(first, again, rev):
        assert a[:2] == b[:2] == c[:2]
        np.testing.assert_array_equal(a[2], b[2])
        np.testing.assert_array_equal(a[2], c[2])
    assert sum(m.any() for _, _, m in first) == len(first)


def test_unseeded_grabcut_would_differ(scene, monkeypatch):
    """The reason for the seed: the same calls without it give other masks."""
    ps = build_prompts(scene.hboxes, scene.quads, "hbox", scene.size)
    monkeypatch.setattr(cv2, "setRNGSeed", lambda seed: None)
    backend = GrabCutBackend()
    a = _masks(backend.predict(scene.image, ps))
    b = _masks(backend.predict(scene.image, ps))
    assert any(not np.array_equal(x[2], y[2]) for x, y in zip(a, b))


def test_seed_depends_on_crop_and_box():
    crop = np.zeros((20, 30, 3), np.uint8)
    s = grabcut_seed(crop, (2, 2, 10, 10), 3)
    assert s == grabcut_seed(crop.copy(), (2, 2, 10, 10), 3)
    assert s != grabcut_seed(crop, (2, 2, 11, 10), 3)
    assert s != grabcut_seed(crop, (2, 2, 10, 10), 4)
    other = crop.copy()
    other[5, 5, 0] = 1
    assert s != grabcut_seed(other, (2, 2, 10, 10), 3)
    assert 0 <= s < 2**31


def test_empty_grabcut_mask_falls_back_to_the_rotated_box_flagged(scene, monkeypatch):
    ps = build_prompts(scene.hboxes, scene.quads, "hbox", scene.size)
    backend = GrabCutBackend()
    monkeypatch.setattr(GrabCutBackend, "_grabcut",
                        lambda self, crop, rect: np.zeros(crop.shape[:2], bool))
    res = backend.predict(scene.image, ps)
    assert backend.empty_fallbacks == backend.fallbacks == len(ps)
    for i, r in enumerate(res):
        assert r.fallback == "rbox" and not r.empty
        x0, y0, x1, y1 = r.mask.box
        np.testing.assert_array_equal(
            r.mask.mask, polygon_pixels(scene.quads[i], (x0, y0, x1, y1)))
    # without rotated boxes: the prompt box
    ps = build_prompts(scene.hboxes, None, "hbox", scene.size)
    r = backend.predict(scene.image, ps)[0]
    assert r.fallback == "box"
    bx0, by0, bx1, by1 = scene.hboxes[0]
    assert r.mask.area == pytest.approx((bx1 - bx0) * (by1 - by0), rel=0.05)
    # a real GrabCut mask is not flagged
    monkeypatch.undo()
    assert all(r.fallback is None for r in GrabCutBackend().predict(
        scene.image, build_prompts(scene.hboxes, scene.quads, "hbox", scene.size)))


class _Dying(GrabCutBackend):
    """GrabCut that dies on its second batch, like a killed worker."""

    def __init__(self):
        super().__init__()
        self.batches = 0

    def predict_batch(self, images, prompts):
        self.batches += 1
        if self.batches > 1:
            raise RuntimeError("worker killed")
        return super().predict_batch(images, prompts)


@pytest.fixture
def dota_ds(tmp_path):
    from fiftyone_samrs.importing.importers import load_dota
    from fiftyone_samrs.testing.synthetic import make_dota_tree

    make_dota_tree(tmp_path / "dota", n_images=5, n_objects=6, size=(320, 240), seed=13)
    ds = load_dota(str(tmp_path / "dota"), name="samrs-test-" + uuid.uuid4().hex[:8],
                   version="1.0", progress=False)
    yield ds
    ds.delete()


def test_killed_and_resumed_grabcut_run_equals_uninterrupted(dota_ds, tmp_path):
    from fiftyone_samrs.segmenting.pipeline import segment

    kw = dict(progress=False, batch_size=2, num_workers=1)
    with pytest.raises(RuntimeError, match="worker killed"):
        segment(dota_ds, engine=_Dying(), label_field="gc", seg_dir=str(tmp_path / "gc"),
                seg_field="gc_seg", **kw)
    assert 0 < len(dota_ds.exists("gc")) < len(dota_ds)
    cv2.setRNGSeed(99)  # a fresh process would start from another state
    res = segment(dota_ds, engine=GrabCutBackend(), label_field="gc", seg_field="gc_seg",
                  seg_dir=str(tmp_path / "gc"), **kw)
    assert res.samples_skipped == 2 and res.samples_processed == 3
    clean = segment(dota_ds, engine=GrabCutBackend(), label_field="clean", seg_field=None, **kw)
    assert clean.samples_processed == 5
    n = 0
    for s in dota_ds:
        a, b = s.gc.detections, s.clean.detections
        assert len(a) == len(b) == 6
        for da, db in zip(a, b):
            assert da.bounding_box == pytest.approx(db.bounding_box)
            np.testing.assert_array_equal(da.mask, db.mask)
            assert getattr(da, "fallback", None) == getattr(db, "fallback", None)
            n += 1
    assert n == 30
    # and a shard of the view gives the same masks again
    shard = segment(dota_ds, engine=GrabCutBackend(), label_field="shard", seg_field=None,
                    shard=(1, 2), **kw)
    for s in dota_ds.exists("shard"):
        for da, db in zip(s.shard.detections, s.clean.detections):
            np.testing.assert_array_equal(da.mask, db.mask)
    assert shard.samples_processed > 0
