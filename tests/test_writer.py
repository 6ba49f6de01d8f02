"""The writer thread: batches that queue up while it writes go into one bulk
write (the database's round trips shrink exactly when it lags), and each
batch is still reported on its own."""

from collections import Counter

import numpy as np


def test_waiting_batches_share_one_bulk_write(monkeypatch, fo_dataset, tmp_path):
    import fiftyone as fo

    from fiftyone_samrs.core.records import InstanceMask
    from fiftyone_samrs.fiftyone_io import object_inputs
    from fiftyone_samrs.segmenting import writer as w
    from fiftyone_samrs.segmenting.backends import MaskResult
    from fiftyone_samrs.segmenting.loop import _Job
    from fiftyone_samrs.segmenting.prompts import build_prompts

    fo_dataset.add_samples([fo.Sample(filepath=str(tmp_path / ("%d.png" % i)))
                            for i in range(6)])
    writes, reported = [], []
    monkeypatch.setattr(w, "bulk_set", lambda ds, updates: writes.append(sorted(updates)))
    jobs = []
    for sid in fo_dataset.values("id"):
        det = fo.Detection(label="plane", bounding_box=[0.1, 0.1, 0.5, 0.5])
        objs = object_inputs([det], None, 20, 10)
        job = _Job(sid, "x.png", 20, 10, objs, png_path=str(tmp_path / (sid + ".png")))
        job.prompts = build_prompts(objs.hboxes, None, "hbox", (10, 20))
        job.results = [MaskResult(InstanceMask(np.ones((5, 10), bool), 2, 1), 0.9, 0.9, False)]
        jobs.append(job)
    options = w.LabelOptions(False, 2.0, {"plane": 0}, "annotation")
    writer = w.Writer(fo_dataset, "sam", "sam_seg", options, reported.append)
    for k in range(0, 6, 2):
        writer.queue.put(jobs[k : k + 2])
    writer.queue.put(None)
    writer.start()  # all three batches are waiting: one write
    writer.join(10)
    assert writer.error is None
    assert len(writes) == 1 and len(writes[0]) == 6
    assert [len(b) for b in reported] == [2, 2, 2] and writer.written == 6
    assert writer.stats == Counter(boxes=6)
