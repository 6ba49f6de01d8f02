"""``samrs segment``: the CLI verb over the SDK call."""

import os

import numpy as np
import pytest
from test_pipeline import OBJECTS, H, W, make_dataset

from fiftyone_samrs.core.painting import read_label_png
from fiftyone_samrs.tools.cli import build_parser, main
from fiftyone_samrs.tools.commands._common import parse_classes
from fiftyone_samrs.tools.commands.segmenting import parse_shard


def test_parse_helpers():
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(Exception, match="shard"):
            parse_shard(bad)
    assert parse_classes("SOTA") == "SOTA"
    assert parse_classes("ship, plane") == ["ship", "plane"]
    args = build_parser().parse_args(["segment", "ds", "--shard", "0/2", "--clip-to-rbox",
                                      "--view-tag", "a", "--view-tag", "b", "-k", "margin=0.2"])
    assert args.shard == (0, 2) and args.clip_to_rbox and args.view_tag == ["a", "b"]
    assert args.workers is None and args.decode_threads == 2 and args.ray_address is None
    args = build_parser().parse_args(["segment", "ds", "--workers", "4", "--ray-address",
                                      "auto", "--decode-threads", "3"])
    assert (args.workers, args.ray_address, args.decode_threads) == (4, "auto", 3)


def test_cli_ray_address_needs_workers(fo_dataset, tmp_path, capsys):
    ds = make_dataset(fo_dataset, tmp_path)
    assert main(["segment", ds.name, "--backend", "boxfill", "--ray-address", "auto"]) == 1
    assert "--ray-address needs --workers" in capsys.readouterr().err


def test_cli_segment_boxfill(fo_dataset, tmp_path, capsys):
    from fiftyone_samrs.core.classes import SOTA

    ds = make_dataset(fo_dataset, tmp_path)
    ds.take(2, seed=1).tag_samples("pick")
    picked = set(ds.match_tags("pick").values("id"))
    seg_dir = tmp_path / "cli_seg"
    rc = main(["segment", ds.name, "--backend", "boxfill", "--seg-dir", str(seg_dir),
               "--view-tag", "pick", "--no-progress", "--batch-size", "1",
               "-k", "num_workers=1"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "view: 2 samples tagged pick" in out
    assert "backend boxfill" in out and "2 samples segmented" in out
    assert set(ds.exists("sam").values("id")) == picked
    for s in ds.match_tags("pick"):
        n = len(s.hbb.detections)
        assert len(s.sam.detections) == n
        assert all(d.prompt == "hbox" for d in s.sam.detections)
        label = read_label_png(s.sam_seg.mask_path)
        assert label.shape == (H, W)
        assert str(seg_dir) in s.sam_seg.mask_path
        painted = {SOTA[v] for v in np.unique(label) if v != 255}
        assert painted <= {d.label for d in s.hbb.detections}
    # a second call resumes: nothing left in the view
    rc = main(["segment", ds.name, "--backend", "boxfill", "--seg-dir", str(seg_dir),
               "--view-tag", "pick", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "0 samples segmented, 2 already done" in out


def test_cli_shard_and_overwrite(fo_dataset, tmp_path, capsys):
    ds = make_dataset(fo_dataset, tmp_path)
    base = ["segment", ds.name, "--backend", "boxfill", "--seg-dir", str(tmp_path / "s"),
            "--no-progress", "--classes", "plane,ship,storage-tank,harbor"]
    assert main(base + ["--shard", "0/2"]) == 0
    assert main(base + ["--shard", "1/2"]) == 0
    out = capsys.readouterr().out
    assert "shard 0/2" in out and "shard 1/2" in out
    assert len(ds.exists("sam")) == len(OBJECTS)
    assert "small-vehicle: 1" in out and "lake: 1" in out
    assert main(base + ["--overwrite"]) == 0
    assert "%d samples segmented, 0 already done" % len(OBJECTS) in capsys.readouterr().out
    assert ds.mask_targets["sam_seg"] == {0: "plane", 1: "ship", 2: "storage-tank", 3: "harbor"}


def test_cli_errors(fo_dataset, tmp_path, capsys):
    assert main(["segment", "no-such-dataset-xyz", "--backend", "boxfill"]) == 1
    assert "no FiftyOne dataset named 'no-such-dataset-xyz'" in capsys.readouterr().err
    ds = make_dataset(fo_dataset, tmp_path, with_obb=False)
    assert main(["segment", ds.name, "--backend", "boxfill", "--prompt", "rhbox",
                 "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "needs rotated boxes" in err
    with pytest.raises(SystemExit):
        main(["segment", ds.name, "--shard", "2/2"])


def test_cli_tiny_sam_on_imported_dota(tmp_path, capsys):
    """A generated DOTA tree, imported, segmented by the real SAM engine (tiny random
    checkpoint) from the command line; one PNG per image in the default seg_dir layout."""
    import uuid

    import torch

    from fiftyone_samrs.core.classes import SOTA
    from fiftyone_samrs.importing.importers import load_dota
    from fiftyone_samrs.segmenting.sam.tiny import save_tiny_checkpoint
    from fiftyone_samrs.testing import synthetic

    torch.set_num_threads(1)
    synthetic.make_dota_tree(tmp_path / "dota", n_images=2, n_objects=4, size=(256, 192), seed=1)
    ds = load_dota(tmp_path / "dota", name="samrs-test-" + uuid.uuid4().hex[:8],
                   persistent=False, progress=False)
    try:
        ckpt = save_tiny_checkpoint(tmp_path / "tiny.pth")
        rc = main(["segment", ds.name, "--checkpoint", ckpt, "--device", "cpu",
                   "--seg-dir", str(tmp_path / "seg"), "--no-progress"])
        out = capsys.readouterr().out
        assert rc == 0, out
        assert "backend sam, prompt auto" in out and "8 boxes" in out
        assert sorted((tmp_path / "seg").iterdir()) == sorted(
            tmp_path / "seg" / (os.path.splitext(os.path.basename(p))[0] + ".png")
            for p in ds.values("filepath"))
        for s in ds:
            assert [d.source_id for d in s.sam.detections] == [d.id for d in s.hbb.detections]
            label = read_label_png(s.sam_seg.mask_path)
            assert label.shape == (192, 256)
            assert set(np.unique(label)) <= set(range(len(SOTA))) | {255}
        assert ds.mask_targets["sam_seg"][0] == SOTA[0]
    finally:
        ds.delete()
