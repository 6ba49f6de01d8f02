"""The package layout: public names, and datasets written by 0.1.0.

0.1.0 kept its modules flat (``fiftyone_samrs.pipeline``,
``fiftyone_samrs.evaluation``...). FiftyOne stores run classes by their full
path, so a dataset segmented or evaluated then holds those paths; it must
still load.
"""

import importlib
import subprocess
import sys

import fiftyone.core.odm as foo
from test_evaluation import build

import fiftyone_samrs as fsr

#: stored class paths of 0.1.0 runs -> where the classes live now
OLD_PATHS = {
    "fiftyone_samrs.pipeline.SegmentRunConfig": "fiftyone_samrs.segmenting.runs",
    "fiftyone_samrs.evaluation.SamrsEvaluationConfig": "fiftyone_samrs.evaluating.evaluation",
    "fiftyone_samrs.evaluation.SamrsEvaluationResults": "fiftyone_samrs.evaluating.evaluation",
}


def test_every_public_name_resolves():
    for name in fsr.__all__:
        assert getattr(fsr, name) is not None, name
    assert fsr.classes.SOTA[0] == "large-vehicle"
    assert fsr.types.DOTADataset is not None


def test_package_import_is_cheap():
    """``import fiftyone_samrs`` starts neither FiftyOne nor torch."""
    code = "import sys, fiftyone_samrs; print('fiftyone' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_package_import_changes_nothing_outside_the_package():
    """No environment variable, FiftyOne config or import hook (issue 24)."""
    code = ("import os, sys; env, hooks = dict(os.environ), list(sys.meta_path); "
            "import fiftyone_samrs; "
            "print(dict(os.environ) == env, list(sys.meta_path) == hooks)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]


def _rewrite_stored_classes(dataset, old_by_new):
    """Makes the dataset's run documents (configs, and results in GridFS) name
    their classes as 0.1.0 stored them."""
    import gridfs

    db = foo.get_db_conn()
    fs = gridfs.GridFS(db)
    n = 0
    for doc in db.runs.find({"_dataset_id": dataset._doc.id}):
        config = doc.get("config") or {}
        if config.get("cls") in old_by_new:
            db.runs.update_one({"_id": doc["_id"]},
                               {"$set": {"config.cls": old_by_new[config["cls"]]}})
            n += 1
        if doc.get("results") is not None:
            data = fs.get(doc["results"]).read().decode()
            for new, old in old_by_new.items():
                if '"%s"' % new in data:
                    data = data.replace('"%s"' % new, '"%s"' % old)
                    n += 1
            fs.delete(doc["results"])
            fs.put(data.encode(), _id=doc["results"], content_type="application/json")
    return n


def test_runs_of_0_1_0_still_load(fo_dataset, tmp_path):
    from fiftyone_samrs.evaluating.evaluation import SamrsEvaluationResults

    build(fo_dataset, tmp_path)
    fsr.evaluate(fo_dataset, pred_field="sam", gt_field="gt_masks", eval_key="eval",
                 progress=False)
    fo_dataset.add_sample_field("hbb", fo_dataset.get_field("gt_masks").__class__,
                                embedded_doc_type=fo_dataset.get_field("gt_masks").document_type)
    for s in fo_dataset:
        s["hbb"] = s["gt_masks"]
        s.save()
    fsr.segment(fo_dataset, backend="boxfill", label_field="boxes", seg_field=None,
                obb_field=None, progress=False)

    # what the documents hold now, and what 0.1.0 wrote instead
    new_to_old = {}
    for old, module in OLD_PATHS.items():
        new_to_old[module + "." + old.rsplit(".", 1)[1]] = old
    assert _rewrite_stored_classes(fo_dataset, new_to_old) == 3

    fo_dataset.reload()
    info = fo_dataset.get_run_info("boxes")
    assert type(info.config).__name__ == "SegmentRunConfig"
    assert info.config.backend == "boxfill"
    results = fo_dataset.load_evaluation_results("eval", cache=False)
    assert isinstance(results, SamrsEvaluationResults)
    assert abs(results.miou_i - 0.408333) < 1e-4
    # the aliases are the modules themselves, not copies
    for old, module in OLD_PATHS.items():
        assert importlib.import_module(old.rsplit(".", 1)[0]) is importlib.import_module(module)


def test_one_version_source():
    """pyproject reads the version from ``fiftyone_samrs.__version__``; the
    installed metadata and the plugin manifest say the same."""
    import importlib.metadata
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pyproject = open(os.path.join(root, "pyproject.toml")).read()
    assert 'dynamic = ["version"]' in pyproject and 'version = "' not in pyproject
    assert importlib.metadata.version("fiftyone-samrs") == fsr.__version__
    manifest = open(os.path.join(root, "fiftyone.yml")).read()
    assert "\nversion: %s\n" % fsr.__version__ in manifest


def test_exporting_and_the_card_do_not_import_torch():
    """The export's card asks whether a run used samrs-tiny; when that
    question imported torch, every export took 500 MB more (issue 23's
    rehearsal found it)."""

    code = ("import sys; import fiftyone_samrs.exporting.samrs_export, "
            "fiftyone_samrs.exporting.card, fiftyone_samrs.segmenting.sam.samrs_tiny; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr[-2000:]
