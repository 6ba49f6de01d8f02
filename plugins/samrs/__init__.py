"""@samrs/samrs: FiftyOne App operators and a QA panel over :mod:`fiftyone_samrs`.

FiftyOne imports this file as the plugin's ``py_entry`` (see ``fiftyone.yml``
at the repository root) and calls :func:`register`. The operators hold no
logic of their own: each turns its form into one SDK call.

=================  =========================================================
operator           SDK call
=================  =========================================================
import_dataset     ``fsr.load_dota`` / ``load_dior`` / ``load_fair1m`` / ``load_hrsc``
run_sam            ``fsr.segment`` (Execute; Schedule where the App can schedule)
evaluate_masks     ``fsr.evaluate`` + ``qa.save_qa_views``; opens ``low_iou_<key>``
prompt_study       ``fsr.prompt_study``; shows the table
export_dataset     ``fsr.export_samrs`` / ``fsr.export_coco``
resegment_labels   ``fsr.resegment`` on the selected labels (or the view's)
review_labels      ``fsr.decide`` on the selected labels / alternatives
samrs_qa (panel)   one evaluation's per-class mIoU, IoU histogram, its QA views,
                   its review progress (``fsr.review_progress``)
=================  =========================================================
"""

import os
import sys

PLUGIN = "@samrs/samrs"


def manifest_version() -> str:
    """The plugin's version, from its ``fiftyone.yml``."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fiftyone.yml")
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("version:"):
                return line.split(":", 1)[1].strip().strip("'\"")
    return "?"


def package_problem(version: str):
    """Why the operators cannot run in this Python (None when they can):
    ``fiftyone_samrs`` must be importable, at the plugin's version, and the
    fix to run."""
    fix = ("run `fiftyone plugins requirements %s --install` (it installs "
           "fiftyone-samrs==%s into %s), then restart the App" % (PLUGIN, version, sys.executable))
    try:
        import fiftyone_samrs
    except ImportError as e:
        return "%s needs the fiftyone-samrs package, not importable here (%s): %s" % (
            PLUGIN, e, fix)
    if fiftyone_samrs.__version__ != version:
        return "%s %s needs fiftyone-samrs %s, this Python has %s (%s): %s" % (
            PLUGIN, version, version, fiftyone_samrs.__version__,
            os.path.dirname(fiftyone_samrs.__file__), fix)
    return None


def register(p):
    """Registers every operator and the panel on the plugin context ``p``,
    after checking the package (a clear error naming the fix otherwise;
    FiftyOne logs it and ``samrs doctor`` shows it), and quiets FiftyOne's
    notice on the embedded MongoDB 6.0, as the CLI."""
    problem = package_problem(manifest_version())
    if problem:
        raise ImportError(problem)
    import fiftyone_samrs

    fiftyone_samrs.quiet_database_notice()
    from .evaluating import EvaluateMasks, PromptStudy
    from .exporting import ExportDataset
    from .importing import ImportDataset
    from .qa_panel import QAPanel
    from .reviewing import ResegmentLabels, ReviewLabels
    from .segmenting import RunSam

    for cls in (ImportDataset, RunSam, EvaluateMasks, PromptStudy, ExportDataset,
                ResegmentLabels, ReviewLabels, QAPanel):
        p.register(cls)
