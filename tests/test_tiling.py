"""Tiling: windows, keep threshold, clipping, tile files, resumability."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from fiftyone_samrs.core import geometry as geo
from fiftyone_samrs.core.geometry import quad_area
from fiftyone_samrs.core.records import ImageRecord, ImportReport, InstanceMask, ObjectRecord
from fiftyone_samrs.formats import dota
from fiftyone_samrs.importing import tiling
from fiftyone_samrs.testing import synthetic


def test_windows_devkit_positions():
    assert tiling.windows(2000, 1500, 1024, 200) == [
        (0, 0), (0, 476), (824, 0), (824, 476), (976, 0), (976, 476)]
    assert tiling.windows(1024, 1024, 1024, 200) == [(0, 0)]
    assert tiling.windows(500, 300, 1024, 200) == [(0, 0)]
    assert tiling.windows(1025, 10, 1024, 200) == [(0, 0), (1, 0)]
    assert tiling.windows(3000, 600, 600, 150) == [(x, 0) for x in (0, 450, 900, 1350, 1800, 2250, 2400)]
    with pytest.raises(ValueError):
        tiling.windows(100, 100, 64, 64)


def _rect(label, x0, y0, x1, y1, **kw):
    q = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)
    return ObjectRecord(label=label, hbox=(x0, y0, x1, y1), quad=q, source_id=label, **kw)


def test_keep_threshold_is_inclusive():
    # tile [0, 1024) of a 2000-wide image; 70 of the 100 px wide object are inside
    keep = _rect("keep", 954, 10, 1054, 20)
    drop = _rect("drop", 955, 30, 1055, 40)  # 69 px inside
    got = tiling.tile_objects([keep, drop], 0, 0, 1024, 2000, 1000, keep_thresh=0.7)
    assert [o.label for o in got] == ["keep"]
    assert got[0].hbox == (954, 10, 1024, 20) and got[0].truncated is True
    assert got[0].quad.tolist() == [[954, 10], [1024, 10], [1024, 20], [954, 20]]
    assert keep.hbox == (954, 10, 1054, 20)  # inputs untouched
    assert [o.label for o in tiling.tile_objects([keep, drop], 0, 0, 1024, 2000, 1000, 0.69)] == [
        "keep", "drop"]


def test_objects_inside_are_translated_not_truncated():
    o = _rect("in", 900, 500, 950, 540, difficult=1)
    (t,) = tiling.tile_objects([o], 824, 476, 1024, 2000, 1500, 0.7)
    assert t.hbox == (76, 24, 126, 64) and t.quad[0].tolist() == [76, 24]
    assert t.truncated is None and t.difficult == 1 and t.source_id == "in"


def test_rotated_object_cut_by_the_tile_edge():
    # a diamond crossing the right border x = 100 of a tile cut by a 100 px wide image
    q = np.array([[80, 50], [120, 90], [80, 130], [40, 90]], dtype=float)
    o = ObjectRecord(label="plane", hbox=(40, 50, 120, 130), quad=q, difficult=0)
    # 2800 of its 3200 px^2 are inside: kept at 0.875, dropped at 0.9
    assert tiling.tile_objects([o], 0, 0, 200, 100, 300, keep_thresh=0.9) == []
    (t,) = tiling.tile_objects([o], 0, 0, 200, 100, 300, keep_thresh=0.875)
    assert t.truncated is True and t.difficult == 0
    assert t.hbox == (40, 50, 100, 130)  # bounds of the clipped polygon
    # the clipped pentagon (80,50) (100,70) (100,110) (80,130) (40,90) loses the
    # corner costing least area: (100,70) or (100,110), 400 px^2 each
    assert t.quad.shape == (4, 2) and quad_area(t.quad) == pytest.approx(2400)
    assert t.quad.tolist() in ([[80, 50], [100, 110], [80, 130], [40, 90]],
                               [[80, 50], [100, 70], [80, 130], [40, 90]])
    # same orientation as the source, starting at the corner nearest its first one
    def signed(p):
        return np.dot(p[:, 0], np.roll(p[:, 1], -1)) - np.dot(p[:, 1], np.roll(p[:, 0], -1))

    assert np.sign(signed(t.quad)) == np.sign(signed(q))
    d = np.hypot(*(t.quad - q[0]).T)
    assert d[0] == d.min()


def test_degenerate_objects_are_dropped_and_counted_as_the_peers_do(tmp_path):
    d = ObjectRecord(label="tank", hbox=(10, 10, 10, 10), quad=np.full((4, 2), 10.0), degenerate=True,
                     source_id="P0042.txt:3")
    assert tiling.tile_objects([d], 0, 0, 100, 300, 300, 0.7) == []
    rec, _ = _record(tmp_path, objects=[d, _rect("a", 5, 5, 20, 20)])
    report = ImportReport()
    tiles = tiling.tile_record(rec, 128, 28, 0.7, report=report, out_dir=tmp_path / "t")
    assert [o.label for t in tiles for o in t.objects] == ["a"]
    assert report.skipped["degenerate object"] == 1 and "P0042.txt:3" in report.messages[0]
    assert not report.warned  # not also "in no tile"


def test_hbox_without_quad_and_separate_hbox():
    o = ObjectRecord(label="ship", hbox=(90, 10, 110, 30))
    (t,) = tiling.tile_objects([o], 0, 0, 100, 300, 300, 0.5)
    assert t.hbox == (90, 10, 100, 30) and t.quad is None and t.truncated


def test_masks_are_cropped_into_tiles():
    full = np.zeros((300, 300), bool)
    full[10:30, 90:110] = True
    o = ObjectRecord(label="ship", hbox=(90, 10, 110, 30), mask=InstanceMask.from_full(full))
    (t,) = tiling.tile_objects([o], 0, 0, 100, 300, 300, 0.5)
    assert t.mask.box == (90, 10, 100, 30) and t.mask.area == 200
    (t,) = tiling.tile_objects([o], 95, 0, 100, 300, 300, 0.5)
    assert t.mask.box == (0, 10, 15, 30) and t.mask.area == 300


def _record(tmp_path: Path, width=250, height=180, objects=()):
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] = np.arange(width, dtype=np.uint8)[None, :]
    img[..., 1] = np.arange(height, dtype=np.uint8)[:, None]
    img[..., 2] = 7
    path = tmp_path / "src" / "P0042.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    return ImageRecord(filepath=str(path), width=width, height=height, objects=list(objects),
                       source="DOTA-v1.0", split="train", gsd=0.5, imagesource="GF",
                       label_path="/x/P0042.txt", attributes={"uid": "train_P0042"}), img


def test_tile_files_names_content_and_padding(tmp_path):
    objs = [_rect("a", 5, 5, 20, 20), _rect("b", 200, 150, 240, 170), _rect("c", 120, 20, 140, 40)]
    rec, img = _record(tmp_path, objects=objs)
    report = ImportReport()
    tiles = list(tiling.tile_images([rec], tmp_path / "tiles", size=128, gap=28,
                                    keep_thresh=0.7, report=report, workers=1))
    # windows: x in (0, 100, 122), y in (0, 52); (0, 52) is empty and skipped
    names = [Path(t.filepath).name for t in tiles]
    # named after the record's uid (FAIR1M's stems repeat across splits)
    assert names == ["train_P0042__128__0___0.png", "train_P0042__128__100___0.png",
                     "train_P0042__128__100___52.png", "train_P0042__128__122___0.png",
                     "train_P0042__128__122___52.png"]
    assert dict(report.skipped) == {"empty tile": 1} and not report.warned
    assert sorted(os.listdir(tmp_path / "tiles")) == sorted(names)
    # c (x 120..140) is 40% inside tile x=0 (dropped), whole in x=100, 90% in x=122
    assert [[o.label for o in t.objects] for t in tiles] == [["a"], ["c"], ["b"], ["c"], ["b"]]
    assert [[o.truncated for o in t.objects] for t in tiles] == [
        [None], [None], [True], [True], [None]]
    assert tiles[3].objects[0].hbox == (0, 20, 18, 40)
    # the cut object keeps its whole box and quad for the prompt; inside ones have none
    assert tiles[3].objects[0].attributes["prompt_box"] == [-2, 20, 18, 40]
    assert tiles[3].objects[0].attributes["prompt_quad"] == [[-2, 20], [18, 20], [18, 40], [-2, 40]]
    assert "prompt_box" not in tiles[1].objects[0].attributes
    t = tiles[-1]
    assert t.tile == {"source_image": rec.filepath, "x": 122, "y": 52}
    assert (t.width, t.height, t.source, t.split, t.gsd, t.imagesource) == (
        128, 128, "DOTA-v1.0", "train", 0.5, "GF")
    assert t.attributes["uid"] == "train_P0042__128__122___52"
    assert t.objects[0].hbox == (78, 98, 118, 118)
    pix = cv2.imread(t.filepath, cv2.IMREAD_UNCHANGED)
    assert pix.shape == (128, 128, 3)
    assert np.array_equal(pix, img[52:180, 122:250])
    pix2 = cv2.imread(tiles[1].filepath)  # x=100, y=0: fully inside the image
    assert np.array_equal(pix2, img[0:128, 100:228])


def test_padding_of_small_images_and_no_pad(tmp_path):
    rec, img = _record(tmp_path, 60, 40, [_rect("a", 5, 5, 20, 20)])
    (t,) = tiling.tile_images([rec], tmp_path / "t1", size=128, gap=28, workers=1)
    pix = cv2.imread(t.filepath)
    assert pix.shape == (128, 128, 3) and (t.width, t.height) == (128, 128)
    assert np.array_equal(pix[:40, :60], img)
    # padded with SAMRS's value, BGR (104, 116, 124), as BboxToolkit's split configs
    assert (pix[40:] == (104, 116, 124)).all() and (pix[:, 60:] == (104, 116, 124)).all()
    (t,) = tiling.tile_images([rec], tmp_path / "t0", size=128, gap=28, pad_value=(0,), workers=1)
    assert not cv2.imread(t.filepath)[40:].any()
    (t,) = tiling.tile_images([rec], tmp_path / "t2", size=128, gap=28, pad=False, workers=1)
    assert cv2.imread(t.filepath).shape == (40, 60, 3) and (t.width, t.height) == (60, 40)


def test_resumable(tmp_path):
    gt = synthetic.make_dota_tree(tmp_path / "D", n_images=2, n_objects=20, size=(400, 300))
    recs = list(dota.scan(gt["root"]))
    out = tmp_path / "tiles"
    first = list(tiling.tile_images(recs, out, size=256, gap=56, keep_thresh=0.7, workers=2))
    stamps = {p: os.stat(out / p).st_mtime_ns for p in os.listdir(out)}
    assert len(stamps) == len(first) > 2
    victim = Path(first[1].filepath)
    victim.unlink()
    again = list(tiling.tile_images(recs, out, size=256, gap=56, keep_thresh=0.7, workers=2))
    assert [t.filepath for t in again] == [t.filepath for t in first]
    assert [len(t.objects) for t in again] == [len(t.objects) for t in first]
    now = {p: os.stat(out / p).st_mtime_ns for p in os.listdir(out)}
    assert set(now) == set(stamps)
    changed = [p for p in now if now[p] != stamps[p]]
    assert changed == [victim.name]
    assert not [p for p in os.listdir(out) if ".partial" in p]


def test_every_object_is_accounted_for(tmp_path):
    gt = synthetic.make_dota_tree(tmp_path / "D", n_images=1, n_objects=40, size=(700, 500))
    (rec,) = list(dota.scan(gt["root"]))
    huge = _rect("ground-track-field", 0, 0, 700, 500)
    rec.objects.append(huge)
    report = ImportReport()
    tiles = tiling.tile_record(rec, 256, 56, 0.7, report=report, out_dir=tmp_path / "t")
    seen = {o.source_id for t in tiles for o in t.objects}
    assert report.warned["object in no tile"] == 1 and "ground-track-field" in report.messages[-1]
    assert seen == {o.source_id for o in rec.objects[:-1]}
    for t in tiles:
        for o in t.objects:
            x0, y0, x1, y1 = o.hbox
            assert 0 <= x0 <= x1 <= t.width and 0 <= y0 <= y1 <= t.height
            assert (o.quad >= -1e-9).all() and (o.quad[:, 0] <= t.width + 1e-9).all()


def test_unreadable_source_image_is_a_counted_skip(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    rec = ImageRecord(filepath=str(bad), width=300, height=300, objects=[_rect("a", 1, 1, 9, 9)])
    report = ImportReport()
    assert list(tiling.tile_images([rec], tmp_path / "t", size=128, gap=28, report=report)) == []
    assert report.skipped["unreadable image"] == 1 and "bad.png" in report.messages[0]
    rec.width = rec.height = None  # size unknown: the header read fails too
    report = ImportReport()
    assert list(tiling.tile_images([rec], tmp_path / "t", size=128, gap=28, report=report)) == []
    assert report.skipped["unreadable image"] == 1


def test_defaults_come_from_the_format_registry():
    from fiftyone_samrs.formats.registry import FORMATS, Tiling

    assert FORMATS["dota"].tiling == Tiling(1024, 200, 0.7)
    assert FORMATS["fair1m"].tiling == Tiling(1024, 200, 0.7)  # SAMRS's fair1m_1024
    assert {name: spec.subset for name, spec in FORMATS.items()} == {
        "dota": "SOTA", "dior": "SIOR", "fair1m": "FAST", "hrsc": "HRSC"}


def test_release_names_and_tiles_never_share_a_file(tmp_path):
    rec, _ = _record(tmp_path, objects=[_rect("a", 5, 5, 20, 20), _rect("b", 200, 150, 240, 170)])
    rec.attributes = {}
    tiles = list(tiling.tile_images([rec], tmp_path / "r", size=128, gap=28, names="release",
                                    workers=1))
    # BboxToolkit's <stem>_<window index>: windows (0,0) (0,52) (100,0) (100,52) (122,0) (122,52)
    assert [Path(t.filepath).name for t in tiles] == ["P0042_0000.png", "P0042_0003.png",
                                                      "P0042_0005.png"]
    other = tmp_path / "other" / "P0042.png"
    other.parent.mkdir()
    cv2.imwrite(str(other), np.zeros((180, 250, 3), np.uint8))
    twin = ImageRecord(filepath=str(other), width=250, height=180,
                       objects=[_rect("a", 5, 5, 20, 20)])
    with pytest.raises(ValueError, match="would share the file"):
        list(tiling.tile_images([rec, twin], tmp_path / "s", size=128, gap=28, workers=1))


# --------------------------------------------------------------------------
# the spatial index gives exactly the windows x objects planner's result


def _same_objects(a, b):
    assert len(a) == len(b)
    for o, r in zip(a, b):
        assert (o.label, o.difficult, o.truncated, o.source_id, o.degenerate, o.hbox_is_rh) == (
            r.label, r.difficult, r.truncated, r.source_id, r.degenerate, r.hbox_is_rh)
        assert tuple(o.hbox) == tuple(r.hbox)
        assert (o.quad is None) == (r.quad is None)
        if o.quad is not None:
            assert np.array_equal(o.quad, r.quad)
        assert o.attributes == r.attributes
        assert (o.mask is None) == (r.mask is None)
        if o.mask is not None:
            assert (o.mask.x0, o.mask.y0) == (r.mask.x0, r.mask.y0)
            assert np.array_equal(o.mask.mask, r.mask.mask)


def _same_tiling(rec, size, gap, keep, **kw):
    import tiling_reference

    r1, r2 = ImportReport(), ImportReport()
    got = tiling.tile_record(rec, size, gap, keep, report=r1, out_dir="/t", **kw)
    ref = tiling_reference.tile_record(rec, size, gap, keep, report=r2, out_dir="/t", **kw)
    assert [(t.filepath, t.width, t.height, t.tile, t.attributes) for t in got] == [
        (t.filepath, t.width, t.height, t.tile, t.attributes) for t in ref]
    for t, u in zip(got, ref):
        _same_objects(t.objects, u.objects)
    assert (r1.skipped, r1.warned, r1.messages) == (r2.skipped, r2.warned, r2.messages)
    return got


def _random_objects(rng, n, width, height):
    objs = []
    for i in range(n):
        kind = rng.integers(0, 6)
        cx, cy = rng.uniform(-50, width + 50), rng.uniform(-50, height + 50)
        w, h = rng.uniform(1, 300), rng.uniform(1, 120)
        if kind == 0:  # an H-Box only
            objs.append(ObjectRecord(label="a", hbox=(cx, cy, cx + w, cy + h), source_id=str(i)))
            continue
        q = geo.rbox_to_quad(cx, cy, w, h, rng.uniform(-np.pi, np.pi))
        if kind == 1:  # integer corners, axis-aligned or not
            q = np.round(q)
        if kind == 2:  # zero-area
            q = np.repeat(q[:1], 4, axis=0)
        if kind == 3:  # a bow tie (self-crossing)
            q = q[[0, 2, 1, 3]]
        hb = geo.quad_to_hbox(q)
        rh = kind != 4
        if kind == 4:  # a separate H-Box (DIOR-R style)
            hb = (hb[0] + 1, hb[1] - 2, hb[2] + 3, hb[3] - 1)
        attrs = {"k": int(kind)} if i % 3 else {}
        mask = None
        if i % 7 == 0:
            m = rng.random((int(h) + 2, int(w) + 2)) > 0.3
            mask = InstanceMask(m, int(cx), int(cy))
        objs.append(ObjectRecord(label="b%d" % kind, hbox=hb, quad=q, difficult=int(i % 3),
                                 source_id=str(i), degenerate=kind == 2, hbox_is_rh=rh,
                                 mask=mask, attributes=attrs))
    return objs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_index_equals_windows_x_objects_on_random_objects(seed):
    rng = np.random.default_rng(seed)
    width, height = int(rng.integers(300, 2600)), int(rng.integers(300, 2600))
    rec = ImageRecord(filepath="/src/P%d.png" % seed, width=width, height=height,
                      objects=_random_objects(rng, 400, width, height), source="DOTA-v1.0",
                      attributes={"uid": "u%d" % seed} if seed else {})
    tiles = _same_tiling(rec, 512, 100, 0.7)
    assert sum(o.truncated is True for t in tiles for o in t.objects) > 10
    _same_tiling(rec, 300, 0, 0.5, skip_empty=False, pad=False, names="release")
    _same_tiling(rec, 4000, 200, 0.7)  # one window


def test_index_equals_windows_x_objects_on_generated_trees(tmp_path):
    gt = synthetic.make_dota_tree(tmp_path / "D", n_images=2, n_objects=60, size=(1500, 900),
                                  with_isaid=False)
    for rec in dota.scan(gt["root"]):
        _same_tiling(rec, 512, 112, 0.7)
        _same_tiling(rec, 256, 56, 0.3)
    gt = synthetic.make_fair1m_tree(tmp_path / "F", n_images=2, n_objects=40)
    from fiftyone_samrs.formats import fair1m

    for rec in fair1m.scan(gt["root"]):
        _same_tiling(rec, 300, 50, 0.7)


def test_progress_bar_counts_tiles_not_images(tmp_path, monkeypatch):
    import tqdm

    seen = []
    real = tqdm.tqdm

    class Bar(real):
        def update(self, n=1):
            seen.append((n, self.total))
            return super().update(n)

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    objs = [_rect("a", 5, 5, 20, 20), _rect("b", 200, 150, 240, 170), _rect("c", 120, 20, 140, 40)]
    rec, _ = _record(tmp_path, objects=objs)
    tiles = list(tiling.tile_images([rec], tmp_path / "tiles", size=128, gap=28, workers=1))
    assert len(tiles) == 5
    assert [n for n, _ in seen] == [1] * 5 and seen[-1][1] == 5  # one update per tile
    seen.clear()
    list(tiling.tile_images([rec], tmp_path / "tiles", size=128, gap=28, workers=2))
    assert sum(n for n, _ in seen) == 5  # resumed: the existing tiles count as done


def test_large_images_are_decoded_one_at_a_time():
    import threading

    budget = tiling._PixelBudget(100)
    budget.acquire(500)  # over the budget alone: allowed when nothing else is decoded
    got = []
    t = threading.Thread(target=lambda: (budget.acquire(10), got.append(1)))
    t.start()
    t.join(0.2)
    assert not got  # waits for the large one
    budget.release(500)
    t.join(5)
    assert got == [1]
