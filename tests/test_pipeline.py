"""The segment() pipeline over a FiftyOne view: labels, PNGs, runs, resume, shards."""

import os
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from fiftyone_samrs.core import geometry
from fiftyone_samrs.core.painting import read_label_png
from fiftyone_samrs.core.records import InstanceMask

# ---------------------------------------------------------------------------
# a deterministic fake backend implementing the engine's Backend protocol


@dataclass
class _Mask:
    mask: InstanceMask
    score: float
    stability: float
    empty: bool


class FakeBackend:
    """Fills each prompt's box (or region for point-only prompts) inside its region.

    Boxes narrower than 3 px give an empty mask; ``fail_after`` raises on the
    call after that many calls; every call is recorded.
    """

    name = "fake"

    def __init__(self, fail_after=None, grow=0):
        self.fail_after = fail_after
        self.grow = grow
        self.calls = []

    def predict_batch(self, images, prompts):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("engine died")
        self.calls.append([im.shape for im in images])
        out = []
        for image, ps in zip(images, prompts):
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
            h, w = image.shape[:2]
            res = []
            for i in range(len(ps)):
                rx0, ry0, rx1, ry1 = geometry.box_to_int_region(ps.regions[i], w, h)
                crop = np.zeros((ry1 - ry0, rx1 - rx0), dtype=bool)
                box = ps.boxes[i] if ps.boxes is not None else ps.regions[i]
                if box[2] - box[0] >= 3:
                    g = self.grow
                    bx0, by0, bx1, by1 = geometry.box_to_int_region(
                        (box[0] - g, box[1] - g, box[2] + g, box[3] + g), w, h)
                    crop[max(by0 - ry0, 0):by1 - ry0, max(bx0 - rx0, 0):bx1 - rx0] = True
                res.append(_Mask(InstanceMask(crop, rx0, ry0), 0.5 + 0.01 * i, 0.9,
                                 not crop.any()))
            out.append(res)
        return out


# ---------------------------------------------------------------------------
# a small generated dataset

W, H = 120, 90


def _write_image(path, seed):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, size=(H, W, 3), dtype=np.uint8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(str(path), img)
    return str(path)


def _det(label, box, index, rh=False):
    import fiftyone as fo

    return fo.Detection(label=label, bounding_box=geometry.box_to_relative(box, W, H),
                        obj_index=index, rh=rh, difficult=0, source_id="x.txt:%d" % index)


def _poly(label, quad, index):
    import fiftyone as fo

    return fo.Polyline(label=label, points=[geometry.points_to_relative(quad, W, H)],
                       closed=True, filled=True, obj_index=index)


# per image: (label, box) in annotation order; "lake" is not a SOTA class
OBJECTS = [
    [("plane", (10, 10, 50, 40)), ("ship", (30, 20, 70, 60)), ("small-vehicle", (80, 5, 81, 9))],
    [("storage-tank", (5, 50, 40, 85)), ("lake", (60, 30, 110, 80))],
    [],
    [("plane", (0, 0, 120, 90)), ("ship", (40, 40, 60, 60))],
    [("harbor", (20, 20, 100, 70))],
]


def make_dataset(dataset, tmp_path, objects=OBJECTS, with_obb=True, rh=False, metadata=True,
                 subset="SOTA"):
    import fiftyone as fo

    samples = []
    for k, objs in enumerate(objects):
        path = _write_image(tmp_path / "images" / ("P%04d.png" % k), k)
        dets = [_det(lab, box, i, rh=rh) for i, (lab, box) in enumerate(objs)]
        s = fo.Sample(filepath=path, hbb=fo.Detections(detections=dets))
        if metadata:
            s["metadata"] = fo.ImageMetadata(width=W, height=H, num_channels=3)
        if with_obb:
            s["obb"] = fo.Polylines(polylines=[
                _poly(lab, np.array([[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]],
                                    dtype=float), i)
                for i, (lab, b) in enumerate(objs)])
        samples.append(s)
    dataset.add_samples(samples)
    if subset:
        dataset.info = {"samrs": {"format": "dota", "subset": subset}}
        dataset.save()
    return dataset


def _run(dataset, tmp_path, **kw):
    from fiftyone_samrs.segmenting.pipeline import segment

    kw.setdefault("engine", FakeBackend())
    kw.setdefault("seg_dir", str(tmp_path / "seg"))
    kw.setdefault("progress", False)
    kw.setdefault("batch_size", 2)
    return segment(dataset, **kw)


def _full_masks(sample, field="sam"):
    return [geometry_full(d) for d in sample[field].detections]


def geometry_full(det):
    x0, y0, x1, y1 = [int(round(v)) for v in geometry.relative_to_box(det.bounding_box, W, H)]
    assert det.mask.shape == (y1 - y0, x1 - x0)
    return InstanceMask(det.mask.astype(bool), x0, y0).to_full(H, W)


# ---------------------------------------------------------------------------


def test_detections_follow_prompts(fo_dataset, tmp_path):
    from fiftyone_samrs.core.classes import SOTA

    ds = make_dataset(fo_dataset, tmp_path)
    res = _run(ds, tmp_path)
    assert res.backend == "fake"
    assert res.samples_processed == 5 and res.samples_skipped == 0
    assert res.boxes == sum(len(o) for o in OBJECTS)
    assert res.empty_masks == 1  # the 1-px-wide small-vehicle
    assert res.classes == SOTA
    for sample, objs in zip(ds.sort_by("filepath"), OBJECTS):
        dets = sample.sam.detections
        assert [d.label for d in dets] == [lab for lab, _ in objs]
        assert [d.source_id for d in dets] == [d.id for d in sample.hbb.detections]
        assert [d.obj_index for d in dets] == list(range(len(objs)))
        for i, (d, (lab, box)) in enumerate(zip(dets, objs)):
            assert d.prompt == "hbox"  # auto on horizontal boxes
            assert d.confidence == pytest.approx(0.5 + 0.01 * i)
            assert d.stability == pytest.approx(0.9)
            if box[2] - box[0] < 3:
                assert d.empty is True
                # the prompt box, an all-False mask
                assert geometry.relative_to_box(d.bounding_box, W, H) == pytest.approx(box)
                assert not d.mask.any()
            else:
                assert d.empty is False
                # box filled: tight box = the prompt box, mask all True
                assert geometry.relative_to_box(d.bounding_box, W, H) == pytest.approx(box)
                full = geometry_full(d)
                assert full.sum() == (box[2] - box[0]) * (box[3] - box[1])
                assert full[box[1]:box[3], box[0]:box[2]].all()


def test_semantic_png_values_and_order(fo_dataset, tmp_path):
    from fiftyone_samrs.core.classes import SOTA

    ds = make_dataset(fo_dataset, tmp_path)
    res = _run(ds, tmp_path)
    idx = {c: i for i, c in enumerate(SOTA)}
    first = ds.sort_by("filepath").first()
    assert first.sam_seg.mask_path == str(tmp_path / "seg" / "P0000.png")
    label = read_label_png(first.sam_seg.mask_path)
    assert label.shape == (H, W)
    expected = np.full((H, W), 255, np.uint8)
    expected[10:40, 10:50] = idx["plane"]
    expected[20:60, 30:70] = idx["ship"]  # later wins on the overlap
    np.testing.assert_array_equal(label, expected)
    # sample 3: a big plane then a small ship on it
    s3 = ds.sort_by("filepath").skip(3).first()
    label = read_label_png(s3.sam_seg.mask_path)
    assert (label[40:60, 40:60] == idx["ship"]).all()
    assert (label == idx["plane"]).sum() == W * H - 400
    # the unknown "lake" is not painted, and counted
    s1 = ds.sort_by("filepath").skip(1).first()
    label = read_label_png(s1.sam_seg.mask_path)
    assert (label[30:80, 60:110] == 255).all()
    assert (label[50:85, 5:40] == idx["storage-tank"]).all()
    assert res.unknown_labels == {"lake": 1}
    assert "lake: 1" in res.summary()
    # the sample without objects: an all-255 PNG and an empty Detections
    s2 = ds.sort_by("filepath").skip(2).first()
    assert s2.sam.detections == []
    assert (read_label_png(s2.sam_seg.mask_path) == 255).all()
    assert ds.mask_targets["sam_seg"] == {i: c for i, c in enumerate(SOTA)}


def test_small_last_and_explicit_classes(fo_dataset, tmp_path):
    ds = make_dataset(fo_dataset, tmp_path, objects=[OBJECTS[3], OBJECTS[0]], subset=None)
    res = _run(ds, tmp_path, paint_order="small_last", classes=["ship", "plane"])
    assert res.classes == ["ship", "plane"]
    assert res.unknown_labels == {"small-vehicle": 1}
    s = ds.sort_by("filepath").first()
    label = read_label_png(s.sam_seg.mask_path)
    assert (label[40:60, 40:60] == 0).all() and (label == 1).sum() == W * H - 400
    # default classes without a subset: the dataset's sorted labels
    res = _run(ds, tmp_path, label_field="sam2", seg_field="sam2_seg",
               seg_dir=str(tmp_path / "seg2"))
    assert res.classes == ["plane", "ship", "small-vehicle"]
    assert ds.mask_targets["sam2_seg"] == {0: "plane", 1: "ship", 2: "small-vehicle"}


def test_run_record_is_listed_and_reloads(fo_dataset, tmp_path):
    import fiftyone as fo

    from fiftyone_samrs.segmenting.runs import SegmentRunConfig, get_segment_run, list_segment_runs

    ds = make_dataset(fo_dataset, tmp_path)
    _run(ds, tmp_path, margin=0.2, paint_order="small_last")
    ds2 = fo.load_dataset(ds.name)
    ds2.reload()
    assert "sam" in ds2.list_runs()
    assert list_segment_runs(ds2) == ["sam"]
    info = ds2.get_run_info("sam")
    assert isinstance(info.config, SegmentRunConfig)
    assert info.config.method == "samrs.segment"
    rec = get_segment_run(ds2, "sam")
    assert rec["prompt"] == "auto" and rec["backend"] == "fake"
    assert rec["margin"] == 0.2 and rec["paint_order"] == "small_last"
    assert rec["seg_dir"] == str(tmp_path / "seg") and rec["status"] == "complete"
    assert rec["boxes"] == 8 and rec["samples_processed"] == 5
    assert get_segment_run(ds2, "nothing") is None


def test_resume_after_interruption_equals_clean_run(fo_dataset, tmp_path):
    from fiftyone_samrs.segmenting.pipeline import segment

    ds = make_dataset(fo_dataset, tmp_path)
    dying = FakeBackend(fail_after=1)
    with pytest.raises(RuntimeError, match="engine died"):
        _run(ds, tmp_path, engine=dying, batch_size=2)
    # the first batch was written before the error surfaced
    assert len(ds.exists("sam")) == 2
    pngs = sorted(os.listdir(tmp_path / "seg"))
    assert len(pngs) == 2
    rec = ds.get_run_info("sam").config
    assert rec.status == "running"

    engine = FakeBackend()
    res = _run(ds, tmp_path, engine=engine, batch_size=2)
    assert res.samples_skipped == 2 and res.samples_processed == 3
    # only the unfinished images with objects went through the model
    assert sum(len(c) for c in engine.calls) == 2  # samples 2 (no objects) .. 4
    clean = segment(ds, engine=FakeBackend(), label_field="clean", seg_field="clean_seg",
                    seg_dir=str(tmp_path / "clean"), progress=False, batch_size=2)
    assert clean.samples_processed == 5
    for s in ds:
        a, b = s.sam.detections, s.clean.detections
        assert [d.label for d in a] == [d.label for d in b]
        for da, db in zip(a, b):
            assert da.bounding_box == pytest.approx(db.bounding_box)
            np.testing.assert_array_equal(da.mask, db.mask)
            assert (da.confidence, da.empty, da.source_id) == (db.confidence, db.empty,
                                                              db.source_id)
        np.testing.assert_array_equal(read_label_png(s.sam_seg.mask_path),
                                      read_label_png(s.clean_seg.mask_path))
    # a finished run does nothing the next time
    again = _run(ds, tmp_path, engine=FakeBackend())
    assert again.samples_processed == 0 and again.samples_skipped == 5


def test_missing_png_makes_a_sample_unfinished(fo_dataset, tmp_path):
    ds = make_dataset(fo_dataset, tmp_path)
    _run(ds, tmp_path)
    os.remove(tmp_path / "seg" / "P0001.png")
    res = _run(ds, tmp_path)
    assert res.samples_processed == 1 and res.samples_skipped == 4
    assert (tmp_path / "seg" / "P0001.png").is_file()


def test_overwrite_redoes_everything(fo_dataset, tmp_path):
    ds = make_dataset(fo_dataset, tmp_path)
    _run(ds, tmp_path)
    engine = FakeBackend(grow=2)
    with pytest.raises(ValueError, match="other settings.*paint_order"):
        _run(ds, tmp_path, engine=engine, paint_order="small_last")
    res = _run(ds, tmp_path, engine=engine, overwrite=True)
    assert res.samples_processed == 5 and res.samples_skipped == 0
    assert sum(len(c) for c in engine.calls) == 4
    first = ds.sort_by("filepath").first()
    # grown masks are kept within the region (box + margin)
    assert geometry.relative_to_box(first.sam.detections[0].bounding_box, W, H) == \
        pytest.approx((8, 8, 52, 42))


def test_shards_partition_the_view(fo_dataset, tmp_path):
    from fiftyone_samrs.segmenting.runs import shard_of

    objs = [[("plane", (10, 10, 50, 40))]] * 9
    ds = make_dataset(fo_dataset, tmp_path, objects=objs)
    view = ds.skip(1)  # a view, not the whole dataset
    ids = set(view.values("id"))
    parts = []
    for i in range(3):
        res = _run(view, tmp_path, shard=(i, 3))
        assert res.samples_in_view == 8
        done = set(view.exists("sam").values("id"))
        new = done - set().union(*parts) if parts else done
        assert len(new) == res.samples_processed == res.samples_in_shard
        assert all(shard_of(s, 3) == i for s in new)
        parts.append(new)
    assert set().union(*parts) == ids
    for a in range(3):
        for b in range(a + 1, 3):
            assert not parts[a] & parts[b]
    assert not ds.first().has_field("sam") or ds.first().sam is None
    # a shard is the same whatever is already done
    res = _run(view, tmp_path, shard=(1, 3))
    assert res.samples_in_shard == len(parts[1]) and res.samples_processed == 0
    with pytest.raises(ValueError, match="shard"):
        _run(view, tmp_path, shard=(3, 3))


def test_rotated_prompts_need_obb(fo_dataset, tmp_path):
    ds = make_dataset(fo_dataset, tmp_path, with_obb=False)
    with pytest.raises(ValueError, match="needs rotated boxes"):
        _run(ds, tmp_path, prompt="rhbox")
    with pytest.raises(ValueError, match="needs rotated boxes"):
        _run(ds, tmp_path, prompt="hbox+rbox_m")
    with pytest.raises(ValueError, match="unknown prompt"):
        _run(ds, tmp_path, prompt="hbbox")
    with pytest.raises(ValueError, match="needs rotated boxes"):
        _run(ds, tmp_path, prompt="rhbox", obb_field=None)
    assert not ds.has_sample_field("sam")


def test_auto_uses_rhbox_for_rotated_sources(fo_dataset, tmp_path):
    ds = make_dataset(fo_dataset, tmp_path, objects=OBJECTS[:2], rh=True)
    _run(ds, tmp_path)
    for s in ds:
        assert {d.prompt for d in s.sam.detections} == {"rhbox"}
    ds.delete_sample_field("obb")
    with pytest.raises(ValueError, match="RH-Boxes"):
        _run(ds, tmp_path, overwrite=True)


def test_clip_to_rbox(fo_dataset, tmp_path):
    import fiftyone as fo

    # one object with a diamond-shaped rotated box
    path = _write_image(tmp_path / "images" / "D.png", 0)
    quad = np.array([[60, 10], [100, 45], [60, 80], [20, 45]], dtype=float)
    box = geometry.quad_to_hbox(quad)
    s = fo.Sample(filepath=path, metadata=fo.ImageMetadata(width=W, height=H),
                  hbb=fo.Detections(detections=[_det("plane", box, 0)]),
                  obb=fo.Polylines(polylines=[_poly("plane", quad, 0)]))
    fo_dataset.add_sample(s)
    _run(fo_dataset, tmp_path, clip_to_rbox=True, rbox_margin=0.0, label_field="clip",
         seg_field="clip_seg")
    with pytest.raises(ValueError, match="already holds the PNGs of field 'clip_seg'"):
        _run(fo_dataset, tmp_path, label_field="noclip", seg_field="noclip_seg")
    _run(fo_dataset, tmp_path, label_field="noclip", seg_field="noclip_seg",
         seg_dir=str(tmp_path / "noclip"))
    s = fo_dataset.first()
    clipped, full = geometry_full(s.clip.detections[0]), geometry_full(s.noclip.detections[0])
    assert full.sum() == 80 * 70
    # pixel centres inside the diamond |x-60|/40 + |y-45|/35 <= 1
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    inside = np.abs(xx - 60) / 40 + np.abs(yy - 45) / 35 <= 1
    assert abs(int(clipped.sum()) - int(inside.sum())) <= 0.03 * inside.sum()
    assert not (clipped & ~full).any()
    assert (clipped == inside).mean() > 0.99
    # the semantic label uses the clipped mask
    label = read_label_png(s.clip_seg.mask_path)
    np.testing.assert_array_equal(label != 255, clipped)


def test_stem_collisions_and_metadata(fo_dataset, tmp_path):
    import fiftyone as fo

    a = _write_image(tmp_path / "train" / "0.png", 1)
    b = _write_image(tmp_path / "val" / "0.png", 2)
    c = _write_image(tmp_path / "val" / "1.png", 3)
    box = (10, 10, 40, 40)
    fo_dataset.add_samples([
        fo.Sample(filepath=p, hbb=fo.Detections(detections=[_det("plane", box, 0)]))
        for p in (a, b, c)])  # no metadata: computed
    res = _run(fo_dataset, tmp_path, obb_field=None, classes="SOTA")
    assert res.samples_processed == 3
    names = {os.path.basename(s.sam_seg.mask_path) for s in fo_dataset}
    ids = {s.filepath: s.id for s in fo_dataset}
    assert names == {"0-%s.png" % ids[a], "0-%s.png" % ids[b], "1.png"}
    assert all(s.metadata.width == W for s in fo_dataset)


def test_metadata_mismatch_names_the_file(fo_dataset, tmp_path):
    import fiftyone as fo

    from fiftyone_samrs.core.records import FormatError

    p = _write_image(tmp_path / "images" / "bad.png", 1)
    fo_dataset.add_sample(fo.Sample(
        filepath=p, metadata=fo.ImageMetadata(width=W + 1, height=H),
        hbb=fo.Detections(detections=[_det("plane", (1, 1, 20, 20), 0)])))
    with pytest.raises(FormatError, match="bad.png: image is 120x90"):
        _run(fo_dataset, tmp_path, obb_field=None)


def test_no_seg_field(fo_dataset, tmp_path):
    ds = make_dataset(fo_dataset, tmp_path)
    res = _run(ds, tmp_path, seg_field=None, label_field="boxes")
    assert res.seg_dir is None and res.samples_processed == 5
    assert not (tmp_path / "seg").exists()
    assert "sam_seg" not in ds.mask_targets
    res = _run(ds, tmp_path, seg_field=None, label_field="boxes")
    assert res.samples_processed == 0


def test_summary_mentions_counts(fo_dataset, tmp_path):
    ds = make_dataset(fo_dataset, tmp_path)
    text = _run(ds, tmp_path, shard=(0, 1)).summary()
    assert "backend fake" in text and "5 samples segmented" in text
    assert "8 boxes, 1 empty mask" in text and "boxes/s" in text


def test_predicted_attributes_are_declared(fo_dataset, tmp_path):
    import fiftyone as fo

    # and the schema declares the attributes, so the App can filter on them
    ds = make_dataset(fo_dataset, tmp_path)
    _run(ds, tmp_path)
    schema = ds.get_field_schema(flat=True)
    for name, ftype in [("source_id", fo.StringField), ("obj_index", fo.IntField),
                        ("empty", fo.BooleanField), ("stability", fo.FloatField)]:
        assert isinstance(schema["sam.detections." + name], ftype)
    assert len(ds.filter_labels("sam", fo.ViewField("empty") == True)) == 1  # noqa: E712
    assert ds.count("sam.detections") == 8


def test_tiny_sam_through_the_pipeline(fo_dataset, tmp_path):
    """The real SAM engine (tiny random weights): the pipeline's Detections are the
    engine's own masks, cut to their tight boxes, and the run goes through a checkpoint."""
    import torch

    from fiftyone_samrs.formats.images import read_image
    from fiftyone_samrs.segmenting.prompts import build_prompts
    from fiftyone_samrs.segmenting.sam.engine import SamEngine
    from fiftyone_samrs.segmenting.sam.tiny import build_tiny_sam, save_tiny_checkpoint

    torch.set_num_threads(1)
    objs = [OBJECTS[0], OBJECTS[3]]
    ds = make_dataset(fo_dataset, tmp_path, objects=objs)
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.pth", seed=0)
    res = _run(ds, tmp_path, engine=None, backend="sam", checkpoint=ckpt, device="cpu",
               batch_size=2)
    assert res.backend == "sam" and res.boxes == 5
    engine = SamEngine(build_tiny_sam(0), device="cpu")
    n_nonempty = 0
    for s, o in zip(ds.sort_by("filepath"), objs):
        boxes = np.array([b for _, b in o], dtype=float)
        ref = engine.predict_batch([read_image(s.filepath)],
                                   [build_prompts(boxes, None, "hbox", (H, W), margin=None)])[0]
        label = read_label_png(s.sam_seg.mask_path)
        expected = np.full((H, W), 255, np.uint8)
        for d, r, (lab, _) in zip(s.sam.detections, ref, o):
            assert d.confidence == pytest.approx(r.score, abs=1e-5)
            assert d.empty == r.empty
            want = r.mask.to_full(H, W)
            if not r.empty:
                n_nonempty += 1
                np.testing.assert_array_equal(geometry_full(d), want)
                from fiftyone_samrs.core.classes import SOTA
                expected[want] = SOTA.index(lab)
        np.testing.assert_array_equal(label, expected)
    assert n_nonempty >= 3  # the tiny model's masks are not trivial
    assert ds.get_run_info("sam").config.checkpoint == ckpt
    # the encoder's dtype choice (issue 16) is shown and recorded with the run
    from fiftyone_samrs.segmenting.runs import get_segment_run
    from fiftyone_samrs.segmenting.sam.models import dtype_name, resolve_dtype_with_reason

    dtype, reason = resolve_dtype_with_reason("cpu")
    assert res.encoder == "encoder %s (%s), fused attention, not compiled" % (dtype_name(dtype), reason)
    assert res.encoder in res.summary().splitlines()
    rec = get_segment_run(ds, "sam")["encoder_settings"]
    assert rec == {"device": "cpu", "dtype": dtype_name(dtype), "dtype_reason": reason,
                   "attention": "fused", "compile": "off", "overlap": False}


def test_rotated_boxes_link_by_obj_index(fo_dataset, tmp_path):
    import fiftyone as fo

    path = _write_image(tmp_path / "images" / "R.png", 0)
    hb = [(10, 10, 50, 50), (60, 20, 110, 80), (5, 60, 30, 85)]
    quads = [np.array([[30, 12], [48, 30], [30, 48], [12, 30]], float),   # inside hb[0]
             np.array([[70, 30], [100, 30], [100, 70], [70, 70]], float)]  # inside hb[1]
    dets = [_det("plane", b, i) for i, b in enumerate(hb)]
    # polylines stored in reverse order; object 2 has none
    polys = [_poly("ship", quads[1], 1), _poly("plane", quads[0], 0)]
    fo_dataset.add_sample(fo.Sample(filepath=path, metadata=fo.ImageMetadata(width=W, height=H),
                                    hbb=fo.Detections(detections=dets),
                                    obb=fo.Polylines(polylines=polys)))
    _run(fo_dataset, tmp_path, prompt="rhbox")
    out = fo_dataset.first().sam.detections
    assert [d.prompt for d in out] == ["rhbox", "rhbox", "hbox"]
    got = [geometry.relative_to_box(d.bounding_box, W, H) for d in out]
    assert got[0] == pytest.approx((12, 12, 48, 48))
    assert got[1] == pytest.approx((70, 30, 100, 70))
    assert got[2] == pytest.approx(hb[2])


def test_imported_fair1m_with_grabcut(tmp_path):
    """A generated FAIR1M tree through the importer: RH-Boxes -> auto picks rhbox, colliding
    stems get the sample id in their PNG name, GrabCut (real backend) masks stay in their
    region and clip_to_rbox keeps them inside the rotated box."""
    import uuid

    from fiftyone_samrs.core.classes import FAST
    from fiftyone_samrs.core.masks import polygon_pixels
    from fiftyone_samrs.importing.importers import load_fair1m
    from fiftyone_samrs.segmenting.pipeline import segment
    from fiftyone_samrs.testing import synthetic

    gt = synthetic.make_fair1m_tree(tmp_path / "fair1m", n_images=2, n_objects=3,
                                    size=(160, 120), seed=3)
    ds = load_fair1m(tmp_path / "fair1m", name="samrs-test-" + uuid.uuid4().hex[:8],
                     persistent=False, progress=False)
    try:
        res = segment(ds, backend="grabcut", clip_to_rbox=True, seg_dir=str(tmp_path / "seg"),
                      progress=False)
        assert res.backend == "grabcut" and res.classes == FAST
        assert res.boxes == gt["n_objects"] == 6 and not res.unknown_labels
        names = sorted(os.path.basename(p) for p in ds.values("sam_seg.mask_path"))
        assert names == sorted("0-%s.png" % i for i in ds.values("id"))  # stems collide
        for s in ds:
            w, h = s.metadata.width, s.metadata.height
            label = read_label_png(s.sam_seg.mask_path)
            assert label.shape == (h, w)
            quads = {p.obj_index: geometry.relative_to_points(p.points[0], w, h)
                     for p in s.obb.polylines}
            for d in s.sam.detections:
                assert d.prompt == "rhbox" and d.confidence == 1.0
                if d.empty:
                    continue
                x0, y0, x1, y1 = [int(round(v)) for v in
                                  geometry.relative_to_box(d.bounding_box, w, h)]
                inside = polygon_pixels(quads[d.obj_index], (x0, y0, x1, y1), 2.0)
                assert not (d.mask & ~inside).any()
                painted = label[y0:y1, x0:x1][d.mask]
                assert set(np.unique(painted)) <= set(range(len(FAST)))
    finally:
        ds.delete()


def test_pure_helpers():
    from fiftyone_samrs.fiftyone_io import run_key
    from fiftyone_samrs.segmenting.runs import shard_of
    from fiftyone_samrs.segmenting.writer import label_png_names

    names = label_png_names(["a1", "b2", "c3"], ["/x/0.tif", "/y/0.tif", "/y/1.tif"])
    assert names == {"a1": "0-a1.png", "b2": "0-b2.png", "c3": "1.png"}
    assert shard_of("00000000000000000000000a", 4) == 2
    assert run_key("sam") == "sam" and run_key("sam-v2") == "sam_v2"


def test_semantic_field_follows_the_instance_field_and_is_not_taken(fo_dataset, tmp_path):
    """The default semantic field is ``<label_field>_seg``, so a second run into another
    instance field leaves the first run's ``sam_seg`` alone; naming another run's
    semantic field is refused, saying whose it is."""
    from fiftyone_samrs.segmenting.pipeline import segment

    ds = make_dataset(fo_dataset, tmp_path)
    first = segment(ds, backend="boxfill", progress=False)
    assert (first.label_field, first.seg_field) == ("sam", "sam_seg")
    paths = ds.values("sam_seg.mask_path")
    second = segment(ds, backend="boxfill", label_field="boxes", progress=False)
    assert second.seg_field == "boxes_seg"
    assert ds.values("sam_seg.mask_path") == paths
    assert all(os.path.isfile(p) for p in ds.values("boxes_seg.mask_path"))
    with pytest.raises(ValueError, match=r"'sam_seg' holds the semantic masks of the run "
                                         r"that wrote 'sam'.*default: 'again_seg'"):
        segment(ds, backend="boxfill", label_field="again", seg_field="sam_seg", progress=False)
    assert not ds.has_sample_field("again")
    # the same run resumes into its own semantic field as before
    assert segment(ds, backend="boxfill", progress=False).samples_skipped == len(ds)
