"""The QA views at SAMRS size (issue 23, items 1 and 2).

0.2.0: ``low_iou`` and ``suspicious_masks`` were ``match`` + ``sort_by`` on
unindexed fields, so every count made MongoDB sort the matched whole
documents (masks included): 2.1 s at 30k images, ~7.5 s at SAMRS size, and
the panel counted them at every refresh; the panel sent one number per
instance to the browser (~30 MB at SAMRS size).
"""

import json

import numpy as np
import pytest


@pytest.fixture
def scored(fo_dataset):
    """2,000 samples with an evaluation's IoU, quality signals and a bulky field
    (what masks make of a document)."""
    import fiftyone as fo

    rng = np.random.default_rng(0)
    blob = "x" * 4000
    samples = [fo.Sample(filepath="/s/%05d.png" % i, eval_iou_i=float(rng.random()),
                         q_suspicious=int(rng.integers(0, 4)), q_min_confidence=float(rng.random()),
                         bulk=blob) for i in range(2000)]
    samples += [fo.Sample(filepath="/s/none%d.png" % i, bulk=blob) for i in range(20)]  # unset
    fo_dataset.add_samples(samples, progress=False)
    return fo_dataset


def _winning_plan(view, then=()) -> str:
    """The query plan MongoDB picks for a view's aggregation followed by the
    stages ``then`` (test-only use of FiftyOne's private pipeline)."""
    import fiftyone.core.odm as foo

    db = foo.get_db_conn()
    coll = view._dataset._sample_collection_name
    out = db.command("aggregate", coll, pipeline=view._pipeline() + list(then), explain=True)
    return json.dumps(out, default=str)


def test_the_qa_views_are_served_by_indexes(scored):
    from fiftyone_samrs.evaluating import qa
    from fiftyone_samrs.fiftyone_io import without_sorting

    saved = qa.save_qa_views(scored, "eval", low_iou=0.3)
    indexes = scored.list_indexes()
    assert "eval_iou_i" in indexes and "q_suspicious_-1_q_min_confidence_1" in indexes
    low = scored.load_saved_view(qa.LOW_IOU_VIEW)
    susp = scored.load_saved_view(qa.SUSPICIOUS_VIEW)
    ious = [v for v in scored.values("eval_iou_i") if v is not None]
    assert saved[qa.LOW_IOU_VIEW] == len(low) == sum(v < 0.3 for v in ious)
    assert saved[qa.SUSPICIOUS_VIEW] == len(susp) == sum(
        (v or 0) > 0 for v in scored.values("q_suspicious"))
    for view in (low, susp):
        plan = _winning_plan(view)
        assert "IXSCAN" in plan and '"SORT"' not in plan  # no blocking sort of documents
        # a count reads the index alone, not one whole document (a ViewField
        # match is an $expr that FETCHes each: 0.68 s against 0.01 s at 30k)
        count_plan = _winning_plan(view, [{"$count": "count"}])
        assert '"FETCH"' not in count_plan and "COLLSCAN" not in count_plan, count_plan
        unsorted = without_sorting(view)
        assert "sort" not in json.dumps(unsorted._serialize()).lower()
        assert unsorted.count() == view.count()
    ious = low.values("eval_iou_i")
    assert ious == sorted(ious)  # the saved view is still worst first
    worst = scored.load_saved_view(qa.WORST_VIEW)
    assert worst.values("eval_iou_i") == sorted(ious)[:50]  # unset ones left out

    from fiftyone_samrs.evaluating.qa import drop_qa_indexes

    drop_qa_indexes(scored, "eval")
    assert "eval_iou_i" not in scored.list_indexes()


def test_the_panel_payload_is_binned_on_the_server():
    from test_file_safety import _plugin_module

    panel = _plugin_module("qa_panel")
    ious = np.random.default_rng(0).random(1_670_000)  # SAMRS's instances
    hist = panel.histogram(ious, panel.HIST_BINS, (0.0, 1.0))
    assert hist["n"] == len(ious) and sum(hist["counts"]) == len(ious)
    assert hist["counts"] == np.histogram(ious, bins=panel.HIST_BINS, range=(0, 1))[0].tolist()
    assert len(json.dumps(hist)) < 2000  # was one number per instance (~30 MB)
