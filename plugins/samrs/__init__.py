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
samrs_qa (panel)   one evaluation's per-class mIoU, IoU histogram, its QA views
=================  =========================================================
"""

from .evaluating import EvaluateMasks, PromptStudy
from .exporting import ExportDataset
from .importing import ImportDataset
from .qa_panel import QAPanel
from .segmenting import RunSam

OPERATORS = [ImportDataset, RunSam, EvaluateMasks, PromptStudy, ExportDataset, QAPanel]


def register(p):
    """Registers every operator and the panel on the plugin context ``p``
    (and quiets FiftyOne's notice on the embedded MongoDB 6.0, as the CLI)."""
    try:
        import fiftyone_samrs

        fiftyone_samrs.quiet_database_notice()
    except Exception:
        pass
    for cls in OPERATORS:
        p.register(cls)
