"""Nothing lost on a full disk or a kill (issue 22, item 2).

0.2.0: ``cv2.imwrite`` reported success when the disk filled, so ``segment``
wrote empty semantic PNGs, exited 0, recorded the run complete, and a resume
skipped those samples as done; a killed export left cut PNGs under their
final names. Every file the package writes now goes through
``core.paths.atomic_write_bytes`` (encoded in memory, a temporary name, every
write length-checked, then a rename), and the resume plan treats an empty or
cut PNG as not done.
"""

import errno
import os
import subprocess
import uuid

import numpy as np
import pytest


def _png(path, seed=0, size=64):
    from fiftyone_samrs.core.paths import write_image

    rng = np.random.default_rng(seed)
    write_image(path, (rng.random((size, size)) * 255).astype(np.uint8))
    return path


def test_a_short_write_fails_naming_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    from fiftyone_samrs.core import paths

    target = tmp_path / "label.png"
    target.write_bytes(b"old")
    real_write = os.write

    def full_disk(fd, data):  # writes a few bytes, then the disk is full
        if len(data) > 4:
            return real_write(fd, bytes(data[:4]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(paths.os, "write", full_disk)
    with pytest.raises(OSError) as err:
        paths.atomic_write_bytes(str(target), b"x" * 100)
    assert str(target) in str(err.value) and "disk full" in str(err.value)
    assert err.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["label.png"]  # no temporary file left

    monkeypatch.setattr(paths.os, "write", lambda fd, data: 0)  # a write that writes nothing
    with pytest.raises(OSError, match="disk full"):
        paths.atomic_write_bytes(str(target), b"y")
    assert target.read_bytes() == b"old"


def test_png_complete_tells_whole_pngs_from_empty_and_cut_ones(tmp_path):
    from fiftyone_samrs.core.paths import png_complete

    whole = _png(str(tmp_path / "whole.png"))
    data = open(whole, "rb").read()
    assert png_complete(whole)
    for name, content in (("empty.png", b""), ("cut.png", data[: len(data) // 2]),
                          ("head.png", data[:8]), ("junk.png", b"x" * len(data))):
        (tmp_path / name).write_bytes(content)
        assert not png_complete(str(tmp_path / name)), name
    assert not png_complete(str(tmp_path / "missing.png"))


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs (skipped where this process may not mount one)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): %s"
                    % (done.stderr.strip() or done.returncode))
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(folder, leave):
    """Fills ``folder``'s file system but ``leave`` bytes."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(os.path.join(folder, "filler"), "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return os.path.join(folder, "filler")


def test_segment_on_a_full_disk_stops_and_a_resume_loses_nothing(small_disk, tmp_path):
    import fiftyone as fo

    from fiftyone_samrs.core.paths import png_complete
    from fiftyone_samrs.importing.importers import load_dota
    from fiftyone_samrs.segmenting.pipeline import segment
    from fiftyone_samrs.segmenting.runs import get_segment_run
    from fiftyone_samrs.testing import synthetic

    gt = synthetic.make_dota_tree(tmp_path / "D", n_images=16, n_objects=12, size=(400, 300))
    ds = load_dota(gt["root"], name="samrs-fulldisk-" + uuid.uuid4().hex[:6], version="1.0",
                   progress=False, persistent=False)
    seg_dir = small_disk / "seg"
    seg_dir.mkdir()
    filler = _fill(str(small_disk), leave=6 * 1024)  # room for a few PNGs only
    try:
        with pytest.raises(OSError) as err:
            segment(ds, backend="boxfill", seg_dir=str(seg_dir), batch_size=2, progress=False)
        assert str(seg_dir) in str(err.value) and "disk full" in str(err.value)
        assert get_segment_run(ds, "sam")["status"] != "complete"
        names = os.listdir(seg_dir)
        assert not [n for n in names if ".partial" in n]  # no temporary file left
        assert all(png_complete(os.path.join(seg_dir, n)) for n in names)  # no empty PNG
        done_before = len(names)
        assert done_before < 16

        os.remove(filler)
        res = segment(ds, backend="boxfill", seg_dir=str(seg_dir), batch_size=2, progress=False)
        assert res.samples_processed + res.samples_skipped == 16
        assert res.samples_processed == 16 - res.samples_skipped >= 16 - done_before
        assert get_segment_run(ds, "sam")["status"] == "complete"
        paths = ds.values("sam_seg.mask_path")
        assert len(set(paths)) == 16 and all(png_complete(p) for p in paths)
    finally:
        fo.delete_dataset(ds.name) if fo.dataset_exists(ds.name) else None


def test_a_resume_redoes_a_sample_whose_png_was_cut(fo_dataset, tmp_path):
    from fiftyone_samrs.core.painting import read_label_png
    from fiftyone_samrs.importing.importers import load_dota
    from fiftyone_samrs.segmenting.pipeline import segment
    from fiftyone_samrs.testing import synthetic

    gt = synthetic.make_dota_tree(tmp_path / "D", n_images=3, n_objects=5, size=(300, 200))
    ds = load_dota(gt["root"], name=fo_dataset.name + "-cut", version="1.0", progress=False,
                   persistent=False)
    try:
        segment(ds, backend="boxfill", seg_dir=str(tmp_path / "seg"), progress=False)
        paths = ds.values("sam_seg.mask_path")
        whole = read_label_png(paths[1])
        data = open(paths[1], "rb").read()
        with open(paths[1], "wb") as f:  # what a kill or a full disk left in 0.2.0
            f.write(data[: len(data) // 2])
        open(paths[2], "wb").close()
        res = segment(ds, backend="boxfill", seg_dir=str(tmp_path / "seg"), progress=False)
        assert (res.samples_processed, res.samples_skipped) == (2, 1)
        assert np.array_equal(read_label_png(paths[1]), whole)
        read_label_png(paths[2])
    finally:
        ds.delete()


def test_export_on_a_full_disk_names_the_file_and_leaves_no_cut_file(small_disk, fo_dataset,
                                                                      tmp_path):
    """The copy of an image failed on the full disk, then closing the COCO
    part files failed again and hid it behind a bare ``OSError`` without a path."""
    from test_exporters import make_segmented

    from fiftyone_samrs import export_samrs

    make_segmented(fo_dataset, str(tmp_path / "src"))
    out = small_disk / "out"
    filler = _fill(str(small_disk), leave=8 * 1024)
    with pytest.raises(OSError) as err:
        export_samrs(fo_dataset, str(out), classes="SOTA", progress=False)
    assert str(out) in str(err.value) and "disk full" in str(err.value)
    files = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs]
    assert not [f for f in files if os.path.getsize(f) == 0 or ".partial" in f]
    os.remove(filler)
    export_samrs(fo_dataset, str(out), classes="SOTA", progress=False, overwrite=True)
    export_samrs(fo_dataset, str(tmp_path / "fresh"), classes="SOTA", progress=False)
    for name in ("images", "gray"):
        assert sorted(os.listdir(out / name)) == sorted(os.listdir(tmp_path / "fresh" / name))
        for f in os.listdir(out / name):
            assert (out / name / f).read_bytes() == (tmp_path / "fresh" / name / f).read_bytes()
