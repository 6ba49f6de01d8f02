"""The end-to-end demo behind ``make demo`` / ``samrs demo``.

It needs no data and no downloads: it generates a small DOTA v1.0 tree whose
objects are drawn shapes with known masks (written as iSAID instance PNGs),
then runs the whole job on it:

1. import the DOTA tree into FiftyOne (``hbb`` + ``obb``) and attach the
   iSAID ground-truth masks (``gt_masks``);
2. segment every box with SAM: a real checkpoint when one is configured
   (``--checkpoint`` or ``SAMRS_CHECKPOINT``), otherwise ``samrs-tiny``, the
   small SAM shipped with the package (a stand-in trained on generated
   scenes, for demos and tests, not for real data), and says which ran;
   then the GrabCut and boxfill baselines;
3. evaluate the masks against the ground truth, next to the baselines, and
   save the QA views;
4. export the SAMRS layout, COCO instance JSON and YOLO-seg for training;

and leaves the App ready: the plugin linked into FiftyOne's plugins dir
when FiftyOne does not find it yet (``samrs plugin install``), and the
``samrs-qa`` workspace (the samples and the SAMRS QA panel) saved on the
dataset, which ``samrs app samrs-demo`` opens.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Optional

DEMO_NAME = "samrs-demo"

#: the file that marks a folder as the demo's own (written when it creates it)
MARKER = ".samrs-demo"

#: what the demo writes in its folder (all that a rerun removes)
DEMO_ENTRIES = ("source", "sam_seg", "export")


def _pre_marker_demo(out_dir: str) -> bool:
    """A folder an older demo made, before the marker: nothing in it but the
    demo's own entries, and its generated DOTA tree."""
    entries = set(os.listdir(out_dir))
    return (entries <= set(DEMO_ENTRIES)
            and os.path.isdir(os.path.join(out_dir, "source", "DOTA-v1.0", "labelTxt")))


def prepare_out_dir(out_dir: str) -> str:
    """Makes ``out_dir`` ready for a demo run and returns it (absolute).

    A missing or empty folder is created and marked (:data:`MARKER`). A
    folder the demo made before (it holds the marker; or, made before the
    marker existed, it holds nothing but the demo's own entries) loses only
    what the demo writes there (:data:`DEMO_ENTRIES`); anything else is kept.
    Any other non-empty folder is refused: the demo never deletes files it
    did not create.

    Raises:
        FileExistsError: for a non-empty folder without the marker (or a file)
    """
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FileExistsError("--out-dir %s is a file, not a folder" % out_dir)
    marker = os.path.join(out_dir, MARKER)
    if (os.path.isdir(out_dir) and os.listdir(out_dir) and not os.path.isfile(marker)
            and not _pre_marker_demo(out_dir)):
        raise FileExistsError(
            "--out-dir %s is not empty and was not made by samrs demo (no %s in it); the demo "
            "does not delete files it did not create: choose a new or empty folder"
            % (out_dir, MARKER))
    os.makedirs(out_dir, exist_ok=True)
    for entry in DEMO_ENTRIES:
        path = os.path.join(out_dir, entry)
        if os.path.islink(path) or os.path.isfile(path):
            os.remove(path)
        elif os.path.isdir(path):
            shutil.rmtree(path)
    with open(marker, "w") as f:
        f.write("made by samrs demo; a rerun replaces %s here\n" % ", ".join(DEMO_ENTRIES))
    return out_dir


def _step(title: str) -> float:
    print("\n== %s" % title, flush=True)
    return time.time()


def run_demo(
    out_dir: str = "demo-output",
    checkpoint: Optional[str] = None,
    model: Optional[str] = None,
    n_images: int = 6,
    n_objects: int = 15,
    seed: int = 0,
    name: str = DEMO_NAME,
) -> dict:
    """Runs the demo and returns a dict of what it produced.

    Args:
        out_dir: where the generated source tree and the exports go: a new
            or empty folder, or one an earlier demo made (see
            :func:`prepare_out_dir`)
        checkpoint: a SAM checkpoint; None -> ``$SAMRS_CHECKPOINT``, else the
            model ``samrs-tiny``
        model: SAM model type or zoo name (inferred from the checkpoint if
            None; without a checkpoint: ``"samrs-tiny"``, the shipped stand-in)
        n_images: generated images
        n_objects: objects per generated image
        seed: generator seed
        name: FiftyOne dataset name (overwritten on every run)
    """

    from fiftyone_samrs.core.text import plural
    from fiftyone_samrs.evaluating.evaluation import evaluate
    from fiftyone_samrs.evaluating.qa import save_qa_views
    from fiftyone_samrs.evaluating.quality import compute_quality
    from fiftyone_samrs.importing.importers import load_dota
    from fiftyone_samrs.importing.isaid_gt import load_isaid_masks
    from fiftyone_samrs.segmenting.pipeline import segment
    from fiftyone_samrs.testing import synthetic

    checkpoint = checkpoint or os.environ.get("SAMRS_CHECKPOINT") or None
    out_dir = prepare_out_dir(out_dir)
    src = os.path.join(out_dir, "source", "DOTA-v1.0")

    t = _step("1/4 generate and import a DOTA v1.0 tree with iSAID ground-truth masks")
    synthetic.make_dota_tree(
        src, n_images=n_images, n_objects=n_objects, size=(1024, 768), seed=seed, with_isaid=True
    )
    dataset = load_dota(src, name=name, version="1.0", overwrite=True, persistent=True)
    print(dataset.info["samrs"]["import_report"]["summary"])
    gt_report = load_isaid_masks(dataset, src, gt_field="gt_masks")
    print("iSAID ground truth: %s" % gt_report.summary().splitlines()[0])
    print("(%.1f s)" % (time.time() - t))

    from fiftyone_samrs.segmenting.sam import samrs_tiny

    if checkpoint:
        what = "SAM checkpoint %s" % checkpoint
        method = "sam (%s)" % os.path.basename(checkpoint)
    else:
        model = model or samrs_tiny.NAME
        what = "SAM model %s" % model
        method = "sam (%s)" % model
    t = _step("2/4 segment every box (%s), then the GrabCut and boxfill baselines" % what)
    if not checkpoint and samrs_tiny.is_samrs_tiny(model):
        print(
            "No SAM checkpoint configured (--checkpoint or SAMRS_CHECKPOINT), so the demo runs "
            "%s.\nNOTE: %s. Set a real checkpoint (e.g. sam_vit_h_4b8939.pth) for real masks."
            % (samrs_tiny.NAME, samrs_tiny.DISCLAIMER)
        )
    seg_dir = os.path.join(out_dir, "sam_seg")
    result = segment(
        dataset, backend="sam", model=model, checkpoint=checkpoint, prompt="auto",
        label_field="sam", seg_field="sam_seg", seg_dir=seg_dir, overwrite=True,
    )
    print(result.summary())
    for baseline in ("grabcut", "boxfill"):
        segment(dataset, backend=baseline, label_field=baseline, seg_field=None, overwrite=True,
                progress=False)
    print("semantic PNGs (SAMRS format): %s" % seg_dir)
    print("(%.1f s)" % (time.time() - t))

    t = _step("3/4 evaluate against the ground truth")
    res = evaluate(dataset, pred_field="sam", gt_field="gt_masks", eval_key="eval")
    rows = [(method, res)]
    for baseline in ("grabcut", "boxfill"):
        rows.append(("%s (baseline)" % baseline,
                     evaluate(dataset, pred_field=baseline, gt_field="gt_masks",
                              eval_key="eval_" + baseline, progress=False)))
    print("| method | instances | mIoU_I | mIoU_P |")
    print("| --- | --- | --- | --- |")
    for label, r in rows:
        print("| %s | %d | %.2f | %.2f |" % (label, r.num_instances, 100 * r.miou_i, 100 * r.miou_p))
    if not checkpoint and samrs_tiny.is_samrs_tiny(model):
        print("(seed %d; %s)" % (seed, samrs_tiny.DISCLAIMER))
    compute_quality(dataset, pred_field="sam", box_field="hbb", obb_field="obb")
    views = save_qa_views(dataset, eval_key="eval")
    print(
        "QA views saved on dataset %r: %s"
        % (name, ", ".join("%s (%s)" % (k, plural(n, "sample")) for k, n in views.items()))
    )
    print("(%.1f s)" % (time.time() - t))

    t = _step("4/4 export for training: the SAMRS layout, COCO instance JSON, YOLO-seg")
    samrs_dir, coco_path, yolo_dir = export_all(dataset, os.path.join(out_dir, "export"))
    print("(%.1f s)" % (time.time() - t))

    plugin = ensure_plugin()
    from fiftyone_samrs.tools.app import app_url, save_qa_workspace

    workspace = save_qa_workspace(dataset)
    print(
        "\nDone. Open the result in the FiftyOne App, with the SAMRS QA panel beside the "
        "samples:\n  samrs app %s\n(or `fiftyone app launch %s`, then %s)"
        % (name, name, app_url(name))
    )
    return {
        "dataset": name,
        "backend": "sam",
        "model": model if not checkpoint else checkpoint,
        "seg_dir": seg_dir,
        "samrs_dir": samrs_dir,
        "coco_path": coco_path,
        "yolo_dir": yolo_dir,
        "miou": {label: (r.miou_i, r.miou_p) for label, r in rows},
        "plugin": plugin,
        "workspace": workspace,
    }


def export_all(dataset, export_dir: str):
    """The demo's exports (the generated tree has no splits: 3 of 4 source
    images to train), what each wrote, and a first batch read back the way
    training code reads it (:mod:`fiftyone_samrs.training`)."""
    from fiftyone_samrs.exporting.coco_export import export_coco
    from fiftyone_samrs.exporting.samrs_export import export_samrs
    from fiftyone_samrs.exporting.yolo_export import export_yolo
    from fiftyone_samrs.training import SemanticDataset

    samrs_dir = os.path.join(export_dir, "SOTA")
    coco_path = os.path.join(export_dir, "coco", "annotations.json")
    yolo_dir = os.path.join(export_dir, "yolo")
    split = dict(classes="SOTA", label_field="sam", split_ratio=0.75, progress=False)
    result = export_samrs(dataset, samrs_dir, seg_field="sam_seg", **split)
    print(result.summary(max_messages=3))
    print("  files: %s" % ", ".join(sorted(os.listdir(samrs_dir))))
    export_coco(dataset, coco_path, **split)
    export_yolo(dataset, yolo_dir, **split)
    print("COCO (ids from 1, one JSON per split): %s" % os.path.dirname(coco_path))
    print("YOLO-seg (ultralytics data.yaml):      %s" % yolo_dir)
    train = SemanticDataset(samrs_dir, split="train")
    if not len(train):
        return samrs_dir, coco_path, yolo_dir
    image, label = train[0]
    print("fiftyone_samrs.training.SemanticDataset(%r): %d images; the first %s, label %s"
          % ("export/SOTA", len(train), tuple(image.shape), tuple(label.shape)))
    return samrs_dir, coco_path, yolo_dir


def ensure_plugin() -> bool:
    """Makes the App find the plugin: links it into FiftyOne's plugins dir
    (``samrs plugin install``) when it is not discoverable yet, and says so.

    Returns:
        whether the plugin is discoverable afterwards
    """
    from fiftyone_samrs.tools.plugin_install import (
        install_plugin,
        install_target,
        plugin_dir,
        plugin_status,
    )

    ok, found, fix = plugin_status()
    if ok:
        print("App plugin: %s" % found)
        try:
            mine, target = os.path.realpath(plugin_dir()), os.path.realpath(install_target())
        except (FileNotFoundError, OSError):
            return True
        if os.path.isdir(target) and mine != target:
            print("  note: that is another copy of the plugin (%s); this package's is %s. "
                  "`samrs plugin install --overwrite` links this one." % (target, mine))
        return True
    try:
        install_plugin(link=True)
    except (FileExistsError, FileNotFoundError, OSError) as e:
        print("App plugin NOT installed: %s\n  fix: %s" % (e, fix))
        return False
    ok, found, fix = plugin_status()
    print("App plugin: %s%s" % (found, "" if ok else "\n  fix: %s" % fix))
    return ok
