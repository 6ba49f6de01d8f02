"""No deleted user files (issue 11).

0.1.0: ``export_samrs(..., overwrite=True)`` (and the App's Export
"Overwrite") deleted whole ``images/``, ``gray/``, ... folders including files
the export never wrote; ``samrs demo --out-dir DIR`` deleted DIR; a dataset
named ``../../x`` wrote tiles and PNGs outside FiftyOne's dataset folder.
"""

import json
import os
import subprocess
import sys

import pytest
from test_exporters import make_segmented


@pytest.fixture
def segmented(fo_dataset, tmp_path):
    truth = make_segmented(fo_dataset, str(tmp_path / "src"))
    return fo_dataset, truth, tmp_path


def _ours(out):
    from fiftyone_samrs.exporting.common import MANIFEST_NAME, ExportManifest

    files, _ = ExportManifest(os.path.join(out, MANIFEST_NAME), [out], "").previous()
    return {os.path.relpath(p, out) for p in files}


def test_overwrite_removes_only_what_an_earlier_export_wrote(segmented):
    from fiftyone_samrs import export_samrs

    ds, truth, tmp = segmented
    out = str(tmp / "SOTA")
    export_samrs(ds, out, classes="SOTA", pickles=True, split_ratio=0.5, progress=False)
    first = _ours(out)
    assert "annotations.json" in first and any(p.startswith("gray/") for p in first)
    # the user's files, inside the layout's folders too
    for rel in ("notes.txt", "images/mine.jpg", "gray/mine.png", "extra/keep.txt"):
        os.makedirs(os.path.dirname(os.path.join(out, rel)), exist_ok=True)
        with open(os.path.join(out, rel), "w") as f:
            f.write("mine")
    labelled = [p for p, objs in truth.items() if objs]
    view = ds.select(ds.match({"filepath": labelled[0]}).values("id"))
    export_samrs(view, out, classes="SOTA", overwrite=True, progress=False)
    for rel in ("notes.txt", "images/mine.jpg", "gray/mine.png", "extra/keep.txt"):
        assert open(os.path.join(out, rel)).read() == "mine"
    stem = os.path.splitext(os.path.basename(labelled[0]))[0]
    assert sorted(os.listdir(os.path.join(out, "gray"))) == sorted([stem + ".png", "mine.png"])
    assert not os.path.exists(os.path.join(out, "pickles"))  # ours, now empty: removed
    assert not os.path.exists(os.path.join(out, "test.txt"))  # none of its images is test
    assert open(os.path.join(out, "train.txt")).read().split() == [stem]  # rewritten
    assert _ours(out) < first | {"images/%s" % os.path.basename(labelled[0])}


def test_a_file_the_export_did_not_write_is_never_replaced(segmented):
    from fiftyone_samrs import export_samrs

    ds, truth, tmp = segmented
    out = tmp / "busy"
    (out / "images").mkdir(parents=True)
    first = sorted(truth)[0]
    foreign = out / "images" / os.path.basename(first)
    foreign.write_bytes(b"the user's own image")
    with pytest.raises(FileExistsError, match="not written by a samrs export"):
        export_samrs(ds, str(out), classes="SOTA", overwrite=True, progress=False)
    assert foreign.read_bytes() == b"the user's own image"
    # what the failed export did write is listed, so the next overwrite removes it
    os.remove(foreign)
    export_samrs(ds, str(out), classes="SOTA", overwrite=True, progress=False)
    assert len(os.listdir(out / "images")) == len(truth)


def test_a_killed_export_is_cleaned_by_the_next_overwrite(segmented):
    ds, truth, tmp = segmented
    out = str(tmp / "killed")
    code = ("import os, sys, fiftyone as fo\n"
            "from fiftyone_samrs.exporting import samrs_export as se\n"
            "real = se._write_png\n"
            "n = [0]\n"
            "def dying(path, label):\n"
            "    real(path, label); n[0] += 1\n"
            "    if n[0] == 2: os.kill(os.getpid(), 9)\n"
            "se._write_png = dying\n"
            "se.export_samrs(fo.load_dataset(%r), %r, classes='SOTA', num_workers=0,"
            " progress=False)\n" % (ds.name, out))
    ds.persistent = True
    try:
        proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ),
                              capture_output=True, timeout=300)
    finally:
        ds.persistent = False
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert len(os.listdir(os.path.join(out, "gray"))) == 2
    listed = _ours(out)
    assert {"gray/" + g for g in os.listdir(os.path.join(out, "gray"))} <= listed
    from fiftyone_samrs import export_samrs

    with open(os.path.join(out, "mine.txt"), "w") as f:
        f.write("mine")
    export_samrs(ds, out, classes="SOTA", overwrite=True, progress=False)
    assert open(os.path.join(out, "mine.txt")).read() == "mine"
    assert json.loads(open(os.path.join(out, "samrs_export_manifest.jsonl")).readlines()[-1])[
        "complete"] is True


def test_a_manifest_cannot_remove_files_outside_the_export(tmp_path):
    from fiftyone_samrs.exporting.common import ExportManifest

    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    (out / "m.jsonl").write_text('{"samrs_export": 1}\n{"f": "../victim.txt"}\n{"f": "%s"}\n'
                                 % victim)
    m = ExportManifest(str(out / "m.jsonl"), [str(out)], "samrs")
    assert m.previous() == ([], [])
    m.remove_previous()
    assert victim.read_text() == "keep"


def test_coco_overwrite_keeps_the_users_images(segmented):
    from fiftyone_samrs import export_coco

    ds, truth, tmp = segmented
    labels = str(tmp / "coco" / "annotations.json")
    export_coco(ds, labels, classes="SOTA", export_media=True, progress=False)
    (tmp / "coco" / "images" / "mine.png").write_bytes(b"x")
    export_coco(ds, labels, classes="SOTA", export_media=True, overwrite=True, progress=False)
    assert (tmp / "coco" / "images" / "mine.png").read_bytes() == b"x"
    assert len(os.listdir(tmp / "coco" / "images")) == len(truth) + 1


# --------------------------------------------------------------------------
# demo --out-dir


def test_demo_refuses_a_folder_it_did_not_create(tmp_path):
    from fiftyone_samrs.tools.demo import MARKER, prepare_out_dir

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match="not made by samrs demo"):
        prepare_out_dir(str(mine))
    assert (mine / "thesis.tex").read_text() == "years of work"
    # its own folder: only what it writes is replaced
    out = prepare_out_dir(str(tmp_path / "demo"))
    assert os.path.isfile(os.path.join(out, MARKER))
    os.makedirs(os.path.join(out, "export", "SOTA"))
    with open(os.path.join(out, "notes.txt"), "w") as f:
        f.write("mine")
    prepare_out_dir(out)
    assert not os.path.exists(os.path.join(out, "export"))
    assert open(os.path.join(out, "notes.txt")).read() == "mine"
    prepare_out_dir(str(tmp_path / "empty"))  # a new or empty folder is fine
    # a demo folder from before the marker: only the demo's own entries
    old = tmp_path / "old"
    (old / "source" / "DOTA-v1.0" / "labelTxt").mkdir(parents=True)
    (old / "export").mkdir()
    prepare_out_dir(str(old))
    assert sorted(os.listdir(old)) == [MARKER]
    (mine / "source" / "DOTA-v1.0" / "labelTxt").mkdir(parents=True)
    with pytest.raises(FileExistsError):  # thesis.tex: not only the demo's entries
        prepare_out_dir(str(mine))


def test_cli_demo_says_why(tmp_path, capsys):
    from fiftyone_samrs.tools.cli import main

    (tmp_path / "x.txt").write_text("x")
    assert main(["demo", "--out-dir", str(tmp_path)]) != 0
    assert "not made by samrs demo" in capsys.readouterr().err
    assert (tmp_path / "x.txt").exists()


# --------------------------------------------------------------------------
# dataset names that are not folder names


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", "a\\b"])
def test_unsafe_dataset_names_never_become_folders(name):
    from fiftyone_samrs.core.paths import folder_under, safe_folder_name

    with pytest.raises(ValueError, match="cannot be used as a folder name"):
        safe_folder_name(name)
    with pytest.raises(ValueError):
        folder_under("/base", name, "tiles")
    assert folder_under("/base", "dota-val v2", "tiles") == "/base/dota-val v2/tiles"


def test_tiled_import_and_segment_refuse_an_unsafe_name(tmp_path):
    import fiftyone as fo

    from fiftyone_samrs.importing.importers import load_dota
    from fiftyone_samrs.testing import synthetic

    gt = synthetic.make_dota_tree(tmp_path / "D", n_images=1, n_objects=3, size=(300, 200))
    name = "../../samrs-escape-%s" % os.getpid()
    with pytest.raises(ValueError, match="folder name"):
        load_dota(gt["root"], name=name, version="1.0", tile=True, tile_size=256, gap=56,
                  progress=False)
    assert not fo.dataset_exists(name)
    outside = os.path.join(fo.config.default_dataset_dir, name)
    assert not os.path.exists(os.path.normpath(outside))
    ds = load_dota(gt["root"], name=name, version="1.0", progress=False, persistent=False)
    try:
        from fiftyone_samrs.segmenting.pipeline import segment

        with pytest.raises(ValueError, match="folder name"):
            segment(ds, backend="boxfill", progress=False)
        res = segment(ds, backend="boxfill", seg_dir=str(tmp_path / "seg"), progress=False)
        assert res.samples_processed == 1  # an explicit folder is fine
    finally:
        ds.delete()


# --------------------------------------------------------------------------
# App forms: paths under SAMRS_APP_ROOT


def _plugin_module(name):
    """A module of the plugin package (``plugins/samrs``), imported by path."""
    import importlib
    import importlib.util

    if "samrs_plugin" not in sys.modules:
        folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "plugins", "samrs")
        spec = importlib.util.spec_from_file_location(
            "samrs_plugin", os.path.join(folder, "__init__.py"),
            submodule_search_locations=[folder])
        module = importlib.util.module_from_spec(spec)
        sys.modules["samrs_plugin"] = module
        spec.loader.exec_module(module)
    return importlib.import_module("samrs_plugin." + name)


def test_app_output_paths_stay_under_the_root(tmp_path, monkeypatch):
    common = _plugin_module("common")

    class Ctx:
        def __init__(self, **params):
            self.params = params

    monkeypatch.setenv(common.APP_ROOT_ENV, str(tmp_path / "root"))
    root = os.path.realpath(str(tmp_path / "root"))
    assert common.output_path(Ctx(d="exports/a"), "d") == os.path.join(root, "exports", "a")
    assert common.output_path(Ctx(d={"absolute_path": os.path.join(root, "b")}), "d") == \
        os.path.join(root, "b")
    for bad in ("/etc", "../elsewhere", os.path.join(root, "..", "x")):
        with pytest.raises(ValueError, match="SAMRS_APP_ROOT"):
            common.output_path(Ctx(d=bad), "d")
    os.makedirs(os.path.join(root, "link-target-outside"), exist_ok=True)
    os.symlink(str(tmp_path), os.path.join(root, "sneaky"))
    with pytest.raises(ValueError):
        common.output_path(Ctx(d="sneaky/x"), "d")


def test_export_form_says_what_overwrite_removes(segmented):
    from fiftyone_samrs import export_samrs

    overwrite_effect = _plugin_module("exporting").overwrite_effect

    ds, truth, tmp = segmented
    out = str(tmp / "e")
    assert "only files an earlier samrs export wrote" in overwrite_effect(out, "samrs")
    os.makedirs(out)
    assert "nothing is removed" in overwrite_effect(out, "samrs")
    export_samrs(ds, out, classes="SOTA", progress=False)
    text = overwrite_effect(out, "samrs")
    n = len([p for p in _ours(out) if os.path.exists(os.path.join(out, p))])
    assert ("removes the %d files" % n) in text and "other files are kept" in text


def test_isaid_scan_does_not_follow_directory_links(tmp_path):
    """0.2.0: ``load_isaid_masks`` walked ``glob("**")``, which follows
    directory links: ``loop -> .`` and ``up -> ..`` made it run (and grow)
    without end. Now each file is listed once and the walk ends."""
    root = tmp_path / "iSAID" / "val"
    root.mkdir(parents=True)
    for name in ("P0001_instance_id_RGB.png", "P0001_instance_color_RGB.png"):
        (root / name).write_bytes(b"x")
    os.symlink(".", root / "loop")
    os.symlink("..", root / "up")
    code = ("import json, sys; from fiftyone_samrs.importing.isaid_gt import _isaid_index; "
            "print(json.dumps(_isaid_index(sys.argv[1])))")
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True,
                         text=True, timeout=120, check=True)
    index = json.loads(out.stdout)
    assert list(index) == ["P0001"]
    assert index["P0001"][0] == str(root / "P0001_instance_id_RGB.png")


# --------------------------------------------------------------------------
# overwrite after links, refusals that keep the earlier export, one export
# of a folder at a time (issue 22, items 4 and 5)


def _tree(root):
    """Every file and link below ``root``: relative path -> bytes or link target."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            p = os.path.join(folder, name)
            out[os.path.relpath(p, root)] = (("link", os.readlink(p)) if os.path.islink(p)
                                             else open(p, "rb").read())
    return out


def test_overwrite_after_a_symlink_export_replaces_the_links(segmented):
    """0.2.0 judged a listed link by where it leads (the source, outside the
    folder), removed annotations.json, gray/ and color/, then failed on the
    first image link, leaving a folder no overwrite accepted."""
    from fiftyone_samrs import export_samrs

    ds, truth, tmp = segmented
    out = str(tmp / "links")
    sources = {fp: open(fp, "rb").read() for fp in truth}
    export_samrs(ds, out, subset="SOTA", export_media="symlink", progress=False)
    for media in ("symlink", True):
        export_samrs(ds, out, subset="SOTA", export_media=media, overwrite=True,
                     progress=False)
        for fp in truth:
            image = os.path.join(out, "images", os.path.basename(fp))
            assert os.path.islink(image) == (media == "symlink")
            assert open(image, "rb").read() == sources[fp]
    assert {fp: open(fp, "rb").read() for fp in truth} == sources  # sources untouched
    assert not os.path.exists(os.path.join(out, ".samrs_overwritten"))


def test_a_refused_overwrite_leaves_the_earlier_export_as_it_was(segmented):
    from fiftyone_samrs import export_samrs

    ds, truth, tmp = segmented
    out = str(tmp / "keep")
    export_samrs(ds, out, subset="SOTA", export_media=False, progress=False)
    mine = os.path.join(out, "images", os.path.basename(sorted(truth)[2]))
    os.makedirs(os.path.dirname(mine))
    with open(mine, "wb") as f:  # the user's file where the new export would copy an image
        f.write(b"mine")
    before = _tree(out)
    with pytest.raises(FileExistsError, match="was not written by a samrs export"):
        export_samrs(ds, out, subset="SOTA", export_media=True, overwrite=True,
                     progress=False)
    assert _tree(out) == before  # annotations.json, gray/, ... and the manifest are back
    export_samrs(ds, out, subset="SOTA", export_media=False, overwrite=True, progress=False)
    assert open(mine, "rb").read() == b"mine"


def test_one_export_writes_a_folder_at_a_time(segmented):
    import socket
    import threading

    from fiftyone_samrs import export_samrs
    from fiftyone_samrs.exporting.common import LOCK_NAME, ExportBusy, ExportLock

    ds, truth, tmp = segmented
    out = str(tmp / "busy")
    export_samrs(ds, out, subset="SOTA", progress=False)
    before = _tree(out)
    lock = ExportLock(out).acquire()  # an export running in this process
    try:
        with pytest.raises(ExportBusy, match="pid %d on %s" % (os.getpid(),
                                                              socket.gethostname())):
            export_samrs(ds, out, subset="SOTA", overwrite=True, progress=False)
        assert {k: v for k, v in _tree(out).items() if k != LOCK_NAME} == before
    finally:
        lock.release()

    # a lock whose process has ended (killed) is taken over
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with open(os.path.join(out, LOCK_NAME), "w") as f:
        json.dump({"pid": gone.pid, "host": socket.gethostname()}, f)
    export_samrs(ds, out, subset="SOTA", overwrite=True, progress=False)
    assert not os.path.exists(os.path.join(out, LOCK_NAME))

    # two at once (a double click on Execute): one runs, the other is refused
    # at once or runs after it; the folder is never stuck
    errors = []

    def run():
        try:
            export_samrs(ds, out, subset="SOTA", overwrite=True, progress=False)
        except ExportBusy as e:
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) <= 1
    export_samrs(ds, out, subset="SOTA", overwrite=True, progress=False)
    assert _tree(out).keys() == before.keys()
