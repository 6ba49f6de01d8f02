"""The prompt study end to end on a generated HRSC tree with the tiny random SAM.

The tiny SAM's numbers are meaningless; what is checked is the machinery:
every row exists and measures every ground-truth instance, each image is
encoded once and decoded once per SAM configuration, the baselines run, the
rotated-box fill (a real geometric answer) matches the generated ships well,
and the files parse.
"""

import csv
import uuid

import cv2
import fiftyone as fo
import pytest

from fiftyone_samrs.evaluating.study import EXTRA_CONFIGS, PAPER_TABLE1, parse_config, prompt_study
from fiftyone_samrs.segmenting.prompts import TABLE1
from fiftyone_samrs.tools.cli import main


def test_parse_config():
    c = parse_config("hbox+clip_rbox")
    assert (c.backend, c.prompt, c.clip_rbox) == ("sam", "hbox", True)
    c = parse_config("rhbox+cp+rbox_m")
    assert (c.backend, c.prompt, c.clip_rbox) == ("sam", "rhbox+cp+rbox_m", False)
    assert (parse_config("grabcut").backend, parse_config("grabcut").prompt) == ("grabcut", "hbox")
    c = parse_config("boxfill:rbox_m")
    assert (c.backend, c.prompt) == ("boxfill", "rbox_m")
    with pytest.raises(ValueError, match="unknown prompt"):
        parse_config("hbox+bogus")
    with pytest.raises(ValueError, match="unknown backend"):
        parse_config("magic:hbox")


@pytest.fixture(scope="module")
def hrsc_ds(tmp_path_factory):
    from fiftyone_samrs.importing.importers import load_hrsc
    from fiftyone_samrs.testing.synthetic import make_hrsc_tree

    root = tmp_path_factory.mktemp("hrsc")
    # 3 images x 2 ships, 256 x 192; image 3 is the test split; ship 4 (image 2) unmasked
    gt = make_hrsc_tree(root, n_images=3, n_objects=2, size=(256, 192), seed=3,
                        unmasked_every=4)
    ds = load_hrsc(str(root), name="samrs-test-study-" + uuid.uuid4().hex[:6],
                   persistent=False, progress=False)
    yield ds, gt
    ds.delete()


class CountingEngine:
    """Wraps a SamEngine and counts encoder / decoder calls."""

    def __init__(self, engine):
        self.engine, self.encoded, self.decoded = engine, 0, 0
        self.name = engine.name

    def encode(self, images):
        self.encoded += len(images)
        return self.engine.encode(images)

    def decode(self, emb, prompts):
        self.decoded += 1
        return self.engine.decode(emb, prompts)

    def predict_batch(self, images, prompts):  # must not be used when encode/decode exist
        raise AssertionError("the study must encode once and decode per configuration")


def test_study_end_to_end_tiny_sam(hrsc_ds, tmp_path):
    import torch

    from fiftyone_samrs.segmenting.sam.engine import SamEngine
    from fiftyone_samrs.segmenting.sam.tiny import build_tiny_sam

    torch.set_num_threads(1)
    ds, gt = hrsc_ds
    n_masked = sum(o["masked"] for im in gt["images"] for o in im["objects"])
    assert n_masked == 5
    engine = CountingEngine(SamEngine(build_tiny_sam(seed=0)))
    out = tmp_path / "study"
    res = prompt_study(ds, engine=engine, out_dir=str(out), progress=False)

    configs = list(TABLE1) + list(EXTRA_CONFIGS)
    assert [r.config for r in res.rows] == configs
    assert res.images == 3 and res.instances == n_masked and res.missed == 0
    n_sam = sum(parse_config(c).backend == "sam" for c in configs)
    assert engine.encoded == 3  # once per image
    assert engine.decoded == 3 * n_sam  # every SAM configuration on the same embedding
    for r in res.rows:
        assert r.n == n_masked, r.config
        assert 0.0 <= r.miou_i <= 1.0 and 0.0 <= r.miou_p <= 1.0, r.config
    assert res.is_hrsc
    assert (res.row("hbox").paper_miou_i, res.row("hbox").paper_miou_p) == PAPER_TABLE1["hbox"]
    assert res.row("hbox+cp").paper_miou_i is None
    assert res.row("boxfill").paper_miou_i is None and res.row("grabcut").backend == "grabcut"
    # filling the rotated box is a geometric answer: the generated hulls fill most of it
    assert res.row("boxfill:rbox_m").miou_i > 0.6
    assert res.row("boxfill:rbox_m").miou_i > res.row("boxfill").miou_i

    # the files parse
    assert sorted(p.name for p in out.iterdir()) == ["study.csv", "study.md", "study.png"]
    with open(out / "study.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["config"] for r in rows] == configs
    by = {r["config"]: r for r in rows}
    assert float(by["hbox"]["paper_miou_i"]) == 89.97
    assert float(by["boxfill:rbox_m"]["miou_i"]) == pytest.approx(
        100 * res.row("boxfill:rbox_m").miou_i, abs=1e-3)
    assert all(int(r["n"]) == n_masked for r in rows)
    md = (out / "study.md").read_text()
    table = [l for l in md.splitlines() if l.startswith("| ")]
    assert len(table) == 1 + len(configs)
    assert "| hbox | sam | 5 |" in md and "| 89.97 | 79.40 |" in md
    img = cv2.imread(str(out / "study.png"))
    assert img is not None and img.shape[0] > 200 and img.std() > 5


def test_study_protocol_missing_prompt_pipeline_agreement_and_cli(hrsc_ds, tmp_path, capsys):
    ds, gt = hrsc_ds
    test_img = [im for im in gt["images"] if im["split"] == "test"]
    assert len(test_img) == 1 and test_img[0]["all_masked"]
    res = prompt_study(ds, configs=["boxfill:rbox_m"], protocol=True, progress=False)
    assert res.images == 1 and res.instances == 2 and res.protocol

    # a ground-truth mask whose prompt box is gone counts as missed, IoU 0
    clone = ds.clone()
    try:
        s = clone.match(fo.ViewField("split") == "test").first()
        s.hbb.detections = s.hbb.detections[1:]
        s.save()
        full = prompt_study(clone, configs=["boxfill:rbox_m"], protocol=True, progress=False)
        assert full.missed == 1 and full.row("boxfill:rbox_m").n == 2
        # ship 1 keeps its IoU, ship 0 now counts 0: the mean halves at most
        assert full.row("boxfill:rbox_m").miou_i < res.row("boxfill:rbox_m").miou_i
    finally:
        clone.delete()

    # the study measures what the pipeline + evaluate measure, with the same settings
    import torch

    from fiftyone_samrs.evaluating.evaluation import evaluate
    from fiftyone_samrs.segmenting.pipeline import segment
    from fiftyone_samrs.segmenting.sam.engine import SamEngine
    from fiftyone_samrs.segmenting.sam.tiny import build_tiny_sam

    torch.set_num_threads(1)
    engine = SamEngine(build_tiny_sam(seed=1))
    st = prompt_study(ds, engine=engine, configs=["hbox+clip_rbox", "boxfill:rbox_m"],
                      margin=0.1, progress=False)
    segment(ds, engine=engine, prompt="hbox", clip_to_rbox=True, label_field="sam_t",
            seg_field=None, margin=0.1, overwrite=True, progress=False)
    segment(ds, backend="boxfill", prompt="rbox_m", label_field="fill_t", seg_field=None,
            overwrite=True, progress=False)
    ev = evaluate(ds, pred_field="sam_t", eval_key="ev_sam", progress=False)
    ev2 = evaluate(ds, pred_field="fill_t", eval_key="ev_fill", progress=False)
    assert ev.n_instances == st.instances == 5
    assert st.row("hbox+clip_rbox").miou_i == pytest.approx(ev.miou_i, abs=1e-9)
    assert st.row("hbox+clip_rbox").miou_p == pytest.approx(ev.miou_p, abs=1e-9)
    assert st.row("boxfill:rbox_m").miou_i == pytest.approx(ev2.miou_i, abs=1e-9)
    assert st.row("boxfill:rbox_m").miou_p == pytest.approx(ev2.miou_p, abs=1e-9)

    # the CLI verb with the tiny model, a few configurations
    out = tmp_path / "cli"
    rc = main(["prompt-study", ds.name, "--model", "tiny", "--device", "cpu",
               "--configs", "hbox,rbox_m,boxfill", "--out", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "| hbox | sam | 5 |" in text and "| boxfill | boxfill | 5 |" in text
    assert "wrote %s" % (out / "study.csv") in text
    with open(out / "study.csv") as f:
        assert [r["config"] for r in csv.DictReader(f)] == ["hbox", "rbox_m", "boxfill"]
    assert main(["prompt-study", ds.name, "--configs", "hbox+nope", "--backend", "boxfill",
                 "--out", str(out)]) == 1
    assert "unknown prompt 'nope'" in capsys.readouterr().err
