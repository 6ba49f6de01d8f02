"""A new user's first run (issue 12), through the CLI (``fiftyone_samrs.tools.cli.main``)
and the SDK: what the README promises, honest defaults and clear messages.

The App's side of the same run (operators that execute as their form opens,
the QA panel following its evaluation, TIFF previews in the grid, the
``samrs-qa`` workspace, a scheduled run on a worker) is in
``test_operators.py``, ``test_delegated.py`` and ``test_browser.py``.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import uuid

import fiftyone as fo
import numpy as np
import pytest

from fiftyone_samrs.core.records import FormatError
from fiftyone_samrs.core.text import num, plural
from fiftyone_samrs.tools.cli import build_parser, main


@pytest.fixture
def names():
    made = []

    def make(prefix="first"):
        name = "samrs-test-%s-%s" % (prefix, uuid.uuid4().hex[:8])
        made.append(name)
        return name

    yield make
    for name in made:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)


# --------------------------------------------------------------------------
# zero imported images is an error


def test_an_import_of_nothing_fails_and_leaves_no_dataset(tmp_path, names, capsys):
    hrsc = tmp_path / "HRSC"
    (hrsc / "FullDataSet" / "Annotations").mkdir(parents=True)
    dior = tmp_path / "DIOR"
    (dior / "JPEGImage").mkdir(parents=True)  # DIOR's folder is JPEGImages-trainval/...
    (dior / "Annotations").mkdir()
    for fmt, root in (("hrsc", hrsc), ("dior", dior)):
        name = names()
        assert main(["import", fmt, str(root), "--name", name]) == 1
        out = capsys.readouterr()
        assert "no %s" % ("HRSC2016" if fmt == "hrsc" else "DIOR") in out.err
        assert "image imported: expected" in out.err and "--allow-empty" in out.err
        assert "importing:" not in out.err  # no progress bar before the error
        assert not fo.dataset_exists(name)
    assert "JPEGImage/" in out.err  # what the folder holds, next to what was expected
    # asked for: an empty dataset
    name = names()
    assert main(["import", "dior", str(dior), "--name", name, "--allow-empty", "-q"]) == 0
    assert fo.dataset_exists(name) and len(fo.load_dataset(name)) == 0
    # the SDK
    import fiftyone_samrs as fsr

    name = names()
    with pytest.raises(FormatError, match="no HRSC2016 image imported"):
        fsr.load_hrsc(str(hrsc), name=name, progress=False)
    assert not fo.dataset_exists(name)
    assert len(fsr.load_hrsc(str(hrsc), name=name, progress=False, allow_empty=True)) == 0


# --------------------------------------------------------------------------
# help texts


def _parsers(parser, path="samrs"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, path + " " + name)


def test_every_verb_has_a_description_and_shows_its_defaults():
    checked = 0
    for path, parser in _parsers(build_parser()):
        text = parser.format_help()
        if path != "samrs":
            assert parser.description, "%s --help has no description" % path
            assert parser.description.split(".")[0][:30] in " ".join(text.split()), path
        for action in parser._actions:
            if not action.option_strings or action.dest == "help":
                continue
            assert action.help, "%s %s has no help" % (path, action.option_strings[0])
            if action.default not in (None, False, [], argparse.SUPPRESS):
                shown = "default" in action.help or str(action.default) in " ".join(
                    text.split())
                assert shown, "%s %s does not show its default %r" % (
                    path, action.option_strings[0], action.default)
                checked += 1
    assert checked > 40
    for verb in ("plots", "doctor", "demo", "app"):
        help_text = build_parser()._subparsers._group_actions[0].choices[verb].format_help()
        assert len(help_text.splitlines()) > 4 and "usage: samrs %s" % verb in help_text


# --------------------------------------------------------------------------
# short, clear messages


def test_a_file_that_is_no_checkpoint_gives_a_short_clear_error(tmp_path, names, capsys):
    import fiftyone_samrs as fsr
    from fiftyone_samrs.testing.synthetic import make_dota_tree

    make_dota_tree(str(tmp_path / "dota"), n_images=1, n_objects=2, size=(128, 96))
    name = names()
    fsr.load_dota(str(tmp_path / "dota"), name=name, progress=False, version="1.0")
    bad = tmp_path / "notes.pth"
    bad.write_text("this is not a checkpoint\n")
    assert main(["segment", name, "--checkpoint", str(bad)]) == 1
    out = capsys.readouterr()
    err = out.err.strip()
    assert err.startswith("error: %s: not a SAM checkpoint: not a PyTorch weights file" % bad)
    assert "Re-running" not in err and "arbitrary code" not in err  # torch's advice is gone
    assert len(err) < 400 and "\n" not in err
    assert "segment:" not in out.err + out.out  # no progress bar before the error
    # a PyTorch file holding pickled objects: refused, in one line too
    import collections

    import torch

    pickled = tmp_path / "pickled.pth"
    torch.save({"model": collections.Counter(a=1), "note": argparse.Namespace(x=1)}, pickled)
    assert main(["segment", name, "--checkpoint", str(pickled)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: %s: not a SAM checkpoint: it holds pickled Python objects"
                          % pickled), err
    assert "weights_only=False" not in err and len(err) < 400 and "\n" not in err


def test_counts_are_pluralised_and_no_negative_zero_is_printed(tmp_path):
    from fiftyone_samrs.core.records import ImportReport, ObjectRecord
    from fiftyone_samrs.formats._common import clip_objects

    assert plural(1, "image") == "1 image" and plural(2, "image") == "2 images"
    assert plural(0, "box") == "0 boxes" and plural(3, "empty mask") == "3 empty masks"
    assert plural(1, "class") == "1 class" and plural(2, "class") == "2 classes"
    assert ImportReport(images=1, objects=1).summary() == "1 image, 1 object"
    assert num(-0.04) == "0.0" and num(-0.06) == "-0.1" and num(0.0) == "0.0"
    report = ImportReport()
    objects = [ObjectRecord(label="ship", hbox=(-0.04, 5.0, 10.0, 12.0))]
    clip_objects(objects, 100, 100, "a.txt", report)
    message = [m for m in report.messages if "outside" in m][0]
    assert "box (0.0, 5.0, 10.0, 12.0)" in message and "-0.0" not in message


def test_cli_summaries_of_one_thing_say_one(tmp_path, names, capsys):
    from fiftyone_samrs.testing.synthetic import make_dota_tree

    make_dota_tree(str(tmp_path / "dota"), n_images=1, n_objects=1, size=(128, 96))
    name = names()
    assert main(["import", "dota", str(tmp_path / "dota"), "--name", name, "-q",
                 "-k", "version=1.0"]) == 0
    assert "1 image, 1 object" in capsys.readouterr().out
    assert main(["segment", name, "--backend", "boxfill", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1 sample segmented" in out and "1 box, 0 empty masks" in out


def test_iou_vs_size_tick_labels_never_overlap():
    from types import SimpleNamespace

    from fiftyone_samrs.evaluating.plots import area_label, area_ticks, iou_vs_size

    assert area_label(700) == "700" and area_label(1500) == "1.5k"
    assert area_label(2e6) == "2M"
    for lo, hi in ((700, 1500), (2100, 9000), (55, 9800), (1.2e5, 9e5), (20, 3e6), (1, 1e12),
                   (999, 1001)):
        ticks = area_ticks(lo, hi)
        assert 1 <= len(ticks) <= 7 and all(lo <= t <= hi for t in ticks), (lo, hi, ticks)
    rng = np.random.default_rng(0)
    for lo, hi in ((700, 1500), (2100, 9000), (20, 3e6), (3e4, 6e4)):
        results = SimpleNamespace(
            ious=rng.random(40), gt_areas=rng.uniform(lo, hi, 40), labels=np.zeros(40, int),
            classes=["ship"], key="eval")
        fig = iou_vs_size(results)
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
        boxes = [t.get_window_extent(renderer) for t in fig.axes[0].get_xticklabels()
                 if t.get_visible() and t.get_text()]
        assert len(boxes) >= 2, (lo, hi)
        boxes.sort(key=lambda b: b.x0)
        for a, b in zip(boxes, boxes[1:]):
            assert a.x1 < b.x0, "x tick labels overlap for areas %g..%g" % (lo, hi)
        minor = [t for t in fig.axes[0].get_xticklabels(minor=True) if t.get_text()]
        assert not minor


# --------------------------------------------------------------------------
# empty QA views say why (CLI)


def test_an_empty_qa_view_says_why(tmp_path, names, capsys):
    import fiftyone_samrs as fsr
    from fiftyone_samrs.testing.synthetic import make_hrsc_tree

    make_hrsc_tree(str(tmp_path / "hrsc"), n_images=2, n_objects=2, size=(200, 150), seed=1)
    name = names()
    fsr.load_hrsc(str(tmp_path / "hrsc"), name=name, progress=False)
    assert main(["segment", name, "--backend", "boxfill", "--no-progress"]) == 0
    assert main(["evaluate", name, "--gt-field", "gt_masks", "--low-iou", "0.0",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    line = [l for l in out.splitlines() if l.startswith("saved view low_iou ")][0]
    assert re.search(r"0 samples: no sample has eval_iou_i below 0 \(lowest: 0\.\d{4}, over 2 "
                     r"evaluated samples\)", line), line
    assert "saved view low_iou_eval" in out  # the evaluation's own view


# --------------------------------------------------------------------------
# COCO image ids: stable whatever view is exported


def test_coco_image_ids_line_up_between_exports_of_different_views(tmp_path, names):
    """Ground truth exported from one view and predictions from another (in
    another order): ``COCO.loadRes`` scores each image against its own ground
    truth, so predictions equal to the ground truth score AP 1."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    import fiftyone_samrs as fsr
    from fiftyone_samrs.exporting.coco_export import IMAGE_ID_FIELD
    from fiftyone_samrs.testing.synthetic import make_hrsc_tree

    make_hrsc_tree(str(tmp_path / "hrsc"), n_images=4, n_objects=2, size=(200, 150), seed=2)
    ds = fsr.load_hrsc(str(tmp_path / "hrsc"), name=names(), progress=False)
    paths = ds.values("filepath")
    gt_view = ds.select_by("filepath", paths[1:])             # images 1, 2, 3
    pred_view = ds.select_by("filepath", paths[:3][::-1], ordered=True)  # images 2, 1, 0
    gt_json, pred_json = str(tmp_path / "gt.json"), str(tmp_path / "pred.json")
    fsr.export_coco(gt_view, gt_json, label_field="gt_masks", classes=["ship"], export_media=False, progress=False)
    fsr.export_coco(pred_view, pred_json, label_field="gt_masks", classes=["ship"],
                    export_media=False, progress=False)
    ds.reload()
    ids = dict(zip(*ds.values(["filepath", IMAGE_ID_FIELD])))
    assert sorted(ids.values()) == [1, 2, 3, 4]  # given once, in dataset order
    gt, pred = json.load(open(gt_json)), json.load(open(pred_json))
    for export in (gt, pred):
        for image in export["images"]:
            assert image["id"] == ids[image["file_name"]]

    coco_gt = COCO(gt_json)
    results = [dict(a, score=1.0) for a in pred["annotations"]
               if a["image_id"] in coco_gt.getImgIds()]
    coco_dt = coco_gt.loadRes(results)
    for ann in coco_dt.loadAnns(coco_dt.getAnnIds()):
        assert coco_gt.imgs[ann["image_id"]]["file_name"] == coco_dt.imgs[ann["image_id"]][
            "file_name"]
    evaluator = COCOeval(coco_gt, coco_dt, "segm")
    evaluator.params.imgIds = sorted({a["image_id"] for a in results})
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(1.0)  # AP: each image met its own ground truth

    # a new sample gets the next id; the others keep theirs
    sample = fo.Sample(filepath=str(tmp_path / "new.png"),
                       metadata=fo.ImageMetadata(width=200, height=150))
    ds.add_sample(sample)
    fsr.export_coco(ds.select(sample.id), str(tmp_path / "new.json"), label_field="gt_masks",
                    classes=["ship"], export_media=False, progress=False)
    assert json.load(open(tmp_path / "new.json"))["images"][0]["id"] == 5
    ds.reload()
    assert dict(zip(*ds.values(["filepath", IMAGE_ID_FIELD])))[sample.filepath] == 5
    # stable_ids=False: the file's own 1..N, as before
    fsr.export_coco(gt_view, str(tmp_path / "seq.json"), label_field="gt_masks",
                    classes=["ship"], export_media=False, progress=False, stable_ids=False)
    assert [i["id"] for i in json.load(open(tmp_path / "seq.json"))["images"]] == [1, 2, 3]


# --------------------------------------------------------------------------
# DOTA version: a guess says so


def _floats(label_dir):
    """Rewrites DOTA v1.0 label files with float coordinates (``123`` -> ``123.0``)."""
    for name in os.listdir(label_dir):
        path = os.path.join(label_dir, name)
        lines = open(path, newline="").read().split("\r\n")
        out = []
        for line in lines:
            tokens = line.split(" ")
            if len(tokens) == 10:
                tokens[:8] = ["%s.0" % t for t in tokens[:8]]
            out.append(" ".join(tokens))
        open(path, "w", newline="").write("\r\n".join(out))


def test_a_guessed_dota_version_is_reported_and_isaid_warns(tmp_path, names, capsys):
    import fiftyone_samrs as fsr
    from fiftyone_samrs.testing.synthetic import make_dota_tree

    root = str(tmp_path / "dota")
    make_dota_tree(root, n_images=2, n_objects=3, size=(256, 192), version="1.0",
                   with_isaid=True)
    _floats(os.path.join(root, "labelTxt"))
    name = names()
    assert main(["import", "dota", root, "--name", name, "-q"]) == 0
    out = capsys.readouterr().out
    assert "1 DOTA version guessed" in out and "guessed v1.5 from float coordinates" in out
    ds = fo.load_dataset(name)
    info = ds.info["samrs"]
    assert info["version"] == "1.5"
    assert info["version_source"].startswith("guessed from float coordinates")
    assert info["import_report"]["warnings"]["DOTA version guessed"] == 1
    with pytest.warns(UserWarning, match="iSAID annotates DOTA v1.0 images, but these "
                                         "samples are DOTA-v1.5 \\(version guessed"):
        report = fsr.load_isaid_masks(ds, root, progress=False)
    assert report.warned["not DOTA v1.0"] == 1
    # given: no guess, no warning
    given = fsr.load_dota(root, name=names(), version="1.0", progress=False)
    assert given.info["samrs"]["version_source"] == "given"
    assert "DOTA version guessed" not in given.info["samrs"]["import_report"]["warnings"]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fsr.load_isaid_masks(given, root, progress=False).images == 2


# --------------------------------------------------------------------------
# TIFF previews


def test_tiff_images_get_browser_previews_and_keep_their_filepath(tmp_path, names, capsys):
    import cv2

    import fiftyone_samrs as fsr
    from fiftyone_samrs.formats.images import to_display_uint8, write_preview
    from fiftyone_samrs.testing.synthetic import make_fair1m_tree

    gt = make_fair1m_tree(str(tmp_path / "fair1m"), n_images=3, n_objects=2, size=(160, 160),
                          gt_masks=False)
    name = names()
    assert main(["import", "fair1m", gt["root"], "--name", name, "-q"]) == 0
    assert "browser previews: 3 JPEGs in" in capsys.readouterr().out
    ds = fo.load_dataset(name)
    assert all(p.endswith(".tif") and os.path.isfile(p) for p in ds.values("filepath"))
    previews = ds.values("preview_path")
    assert len(set(previews)) == 3  # train/0.tif and validation/0.tif do not collide
    for tif, jpg in zip(ds.values("filepath"), previews):
        a, b = cv2.imread(tif), cv2.imread(jpg)
        assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).mean() < 6
    app = ds.app_config
    assert app.grid_media_field == app.modal_media_field == "preview_path"
    assert app.media_fields == ["filepath", "preview_path"]

    # off on request; tiles are PNG and need none
    plain = fsr.load_fair1m(gt["root"], name=names(), previews=False, progress=False)
    assert not plain.has_sample_field("preview_path")
    assert plain.app_config.grid_media_field == "filepath"
    tiled = fsr.load_fair1m(gt["root"], name=names(), tile=True, tile_size=128, gap=32,
                            progress=False)
    assert not tiled.has_sample_field("preview_path")

    # 16-bit imagery is stretched for display, not divided into darkness
    deep = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 1500 + 100)
    shown = to_display_uint8(deep)
    assert shown.dtype == np.uint8 and shown.min() == 0 and shown.max() == 255
    cv2.imwrite(str(tmp_path / "deep.tif"), deep)
    write_preview(str(tmp_path / "deep.tif"), str(tmp_path / "deep.jpg"))
    assert cv2.imread(str(tmp_path / "deep.jpg"), cv2.IMREAD_UNCHANGED).max() > 200


# --------------------------------------------------------------------------
# FiftyOne's "oldest supported MongoDB" notice


def test_the_database_notice_is_quieted_only_for_the_embedded_6_0(monkeypatch, tmp_path):
    from fiftyone_samrs.tools import db

    monkeypatch.delenv("FIFTYONE_DATABASE_VALIDATION", raising=False)
    monkeypatch.delenv("FIFTYONE_DATABASE_URI", raising=False)
    monkeypatch.setenv("FIFTYONE_CONFIG_PATH", str(tmp_path / "config.json"))
    monkeypatch.setattr(db, "embedded_mongod_version", lambda: "6.0.5")
    monkeypatch.setattr(fo.config, "database_validation", True)
    monkeypatch.setattr(fo.config, "database_uri", None)
    assert db.quiet_embedded_database_notice() is True
    assert os.environ["FIFTYONE_DATABASE_VALIDATION"] == "false"
    assert fo.config.database_validation is False  # fiftyone was already imported
    # the user's own setting wins
    monkeypatch.setenv("FIFTYONE_DATABASE_VALIDATION", "true")
    fo.config.database_validation = True
    assert db.quiet_embedded_database_notice() is False and fo.config.database_validation
    monkeypatch.delenv("FIFTYONE_DATABASE_VALIDATION")
    (tmp_path / "config.json").write_text('{"database_validation": true}')
    assert db.quiet_embedded_database_notice() is False
    (tmp_path / "config.json").write_text('{"database_uri": "mongodb://db:27017"}')
    assert db.quiet_embedded_database_notice() is False
    (tmp_path / "config.json").write_text("{}")
    # a shared database, or another embedded version: left alone
    monkeypatch.setenv("FIFTYONE_DATABASE_URI", "mongodb://db:27017")
    assert db.quiet_embedded_database_notice() is False
    monkeypatch.delenv("FIFTYONE_DATABASE_URI")
    monkeypatch.setattr(db, "embedded_mongod_version", lambda: "7.0.2")
    assert db.quiet_embedded_database_notice() is False
    assert "FIFTYONE_DATABASE_VALIDATION" not in os.environ


def test_an_sdk_session_prints_no_database_notice(tmp_path):
    from fiftyone_samrs.tools import db

    version = db.embedded_mongod_version()
    if os.environ.get("FIFTYONE_DATABASE_URI") or not version or not version.startswith("6."):
        pytest.skip("needs FiftyOne's embedded MongoDB 6.0 (found %s)" % version)
    env = {k: v for k, v in os.environ.items() if k != "FIFTYONE_DATABASE_VALIDATION"}
    env["FIFTYONE_CONFIG_PATH"] = str(tmp_path / "config.json")  # no user config
    # the SDK's explicit call (import fiftyone_samrs alone changes nothing: issue 24)
    code = ("import fiftyone_samrs; fiftyone_samrs.quiet_database_notice(); "
            "import fiftyone as fo; fo.list_datasets(); print('ran')")
    quiet = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=300)
    assert "ran" in quiet.stdout, quiet.stderr
    assert "oldest supported" not in quiet.stdout + quiet.stderr
    env["FIFTYONE_DATABASE_VALIDATION"] = "true"  # the user's own choice is kept
    loud = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300)
    assert "oldest supported" in loud.stdout + loud.stderr


# --------------------------------------------------------------------------
# after the demo: the plugin discoverable, doctor passing, the App command


def test_the_demo_leaves_the_app_ready(tmp_path, monkeypatch, capsys):
    from fiftyone_samrs.tools.app import QA_PANEL, QA_WORKSPACE
    from fiftyone_samrs.tools.commands.doctor import run_checks
    from fiftyone_samrs.tools.demo import run_demo
    from fiftyone_samrs.tools.plugin_install import _clear_plugin_cache, plugin_status

    plugins_dir = tmp_path / "plugins"
    monkeypatch.setattr(fo.config, "plugins_dir", str(plugins_dir))
    monkeypatch.setenv("FIFTYONE_PLUGINS_DIR", str(plugins_dir))
    _clear_plugin_cache()
    assert not plugin_status()[0]  # a fresh machine: no plugin yet
    name = "samrs-test-demo-" + uuid.uuid4().hex[:6]
    try:
        out_dir = tmp_path / "demo-output"
        result = run_demo(out_dir=str(out_dir), n_images=2, n_objects=4, name=name)
        printed = capsys.readouterr().out
        assert result["plugin"] is True and plugin_status()[0]
        assert os.path.islink(plugins_dir / "@samrs" / "samrs")
        failed = [row for row in run_checks() if not row[1]]
        assert not failed, failed  # `samrs doctor` passes
        assert "samrs app %s" % name in printed
        # the export is ready for training: card, splits, rotated boxes, a batch read back
        for f in ("README.md", "stats.json", "train.txt", "valid.txt", "rbbtxts"):
            assert os.path.exists(os.path.join(result["samrs_dir"], f)), f
        assert "fiftyone_samrs.training.SemanticDataset" in printed
        assert os.path.isfile(os.path.join(result["yolo_dir"], "data.yaml"))
        assert "/datasets/%s?workspace=%s" % (name, QA_WORKSPACE) in printed
        ds = fo.load_dataset(name)
        assert ds.has_workspace(QA_WORKSPACE)
        panels = json.dumps(ds.load_workspace(QA_WORKSPACE).to_dict())
        assert '"Samples"' in panels and '"%s"' % QA_PANEL in panels
        # a second demo finds the plugin and says so
        run_demo(out_dir=str(out_dir), n_images=1, n_objects=2, name=name)
        assert "App plugin: @samrs/samrs" in capsys.readouterr().out
    finally:
        _clear_plugin_cache()
        if fo.dataset_exists(name):
            fo.delete_dataset(name)


def test_samrs_app_refuses_an_unknown_dataset(capsys):
    assert main(["app", "samrs-test-no-such-dataset"]) == 1
    assert "no FiftyOne dataset named" in capsys.readouterr().err


# --------------------------------------------------------------------------
# the README is true


def test_the_readme_and_docs_name_what_exists():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    verbs = set(build_parser()._subparsers._group_actions[0].choices)
    for doc in [repo / "README.md"] + sorted((repo / "docs").glob("*.md")):
        text = doc.read_text()
        for image in re.findall(r"\]\(((?:docs/)?img/[^)]+\.png)\)", text):
            path = (doc.parent / image) if not image.startswith("docs/") else repo / image
            assert path.is_file(), "%s shows %s, which does not exist" % (doc.name, image)
        for verb in re.findall(r"(?:^|[`(])(?:\.venv/bin/)?samrs ([a-z][a-z-]+)", text, re.M):
            assert verb in verbs, "%s runs `samrs %s`, which is no verb" % (doc.name, verb)
    readme = (repo / "README.md").read_text()
    n_browser = len(re.findall(r"^def test_", (repo / "tests" / "test_browser.py").read_text(),
                               re.M))
    assert "tests/test_browser.py`, %d tests" % n_browser in readme
    assert "shared/samples" in readme and "samrs app samrs-demo" in readme
