"""Segmenting when things go wrong (issue 22, items 7 and 9).

0.2.0: an inverted DIOR box (``xmax < xmin``) was stored with a negative
width unwarned and SAM invented a mask for it; losing the database during
``segment`` froze the bar for about 2 minutes, then printed a 70-line
``ServerSelectionTimeoutError``.
"""

import os
import re
import time
import uuid

import numpy as np
import pytest


class _Recorder:
    """A box-fill engine that records the prompts it was given (and can be slow)."""

    name = "recorder"
    default_margin = 0.1

    def __init__(self, delay=0.0):
        from fiftyone_samrs.segmenting.baselines import BoxFillBackend

        self.inner = BoxFillBackend()
        self.delay = delay
        self.boxes = []

    def predict_batch(self, images, prompts):
        time.sleep(self.delay)
        for p in prompts:
            self.boxes.extend(map(tuple, np.asarray(p.base_boxes)))
        return self.inner.predict_batch(images, prompts)


def _invert_first_box(xml_path):
    text = open(xml_path).read()
    xmin = re.search(r"<xmin>(\d+)</xmin>", text).group(1)
    xmax = re.search(r"<xmax>(\d+)</xmax>", text).group(1)
    text = text.replace("<xmin>%s</xmin>" % xmin, "<xmin>@</xmin>", 1)
    text = text.replace("<xmax>%s</xmax>" % xmax, "<xmax>%s</xmax>" % xmin, 1)
    open(xml_path, "w").write(text.replace("<xmin>@</xmin>", "<xmin>%s</xmin>" % xmax, 1))


def test_an_inverted_dior_box_is_warned_and_never_sent_to_the_model(tmp_path):
    from fiftyone_samrs.importing.importers import load_dior
    from fiftyone_samrs.segmenting.pipeline import segment
    from fiftyone_samrs.testing import synthetic

    gt = synthetic.make_dior_tree(tmp_path / "DIOR", n_images=3, n_objects=4, obb=False)
    xml = os.path.join(gt["root"], "Annotations", "Horizontal Bounding Boxes", "00001.xml")
    _invert_first_box(xml)
    ds = load_dior(gt["root"], name="samrs-inverted-" + uuid.uuid4().hex[:6],
                   persistent=False, progress=False)
    try:
        report = ds.info["samrs"]["import_report"]
        assert report["warnings"].get("degenerate object") == 1
        line = next(m for m in report["messages"] if "degenerate object" in m)
        assert xml in line and "object 1" in line and "inverted box" in line
        sample = ds.match({"filepath": {"$regex": "00001"}}).first()
        assert sample.hbb.detections[0].degenerate is True

        engine = _Recorder()
        res = segment(ds, engine=engine, seg_dir=str(tmp_path / "seg"), progress=False)
        total = sum(len(s.hbb.detections) for s in ds)
        assert res.boxes == total and len(engine.boxes) == total - 1
        assert all(b[2] > b[0] and b[3] > b[1] for b in engine.boxes)
        sample.reload()
        bad = sample.sam.detections[0]
        assert bad.empty is True and bad.fallback == "degenerate" and bad.area == 0
        assert all(d.empty is not True for d in sample.sam.detections[1:])
    finally:
        ds.delete()


def test_losing_the_database_stops_the_run_at_once_in_one_line(fo_dataset, tmp_path,
                                                                monkeypatch, capsys):
    from pymongo.errors import ServerSelectionTimeoutError

    from fiftyone_samrs.importing.importers import load_dota
    from fiftyone_samrs.segmenting import leases
    from fiftyone_samrs.segmenting.leases import DatabaseLost
    from fiftyone_samrs.segmenting.pipeline import segment
    from fiftyone_samrs.testing import synthetic

    gt = synthetic.make_dota_tree(tmp_path / "D", n_images=12, n_objects=3, size=(200, 160))
    ds = load_dota(gt["root"], name=fo_dataset.name + "-db", version="1.0", progress=False,
                   persistent=False)
    monkeypatch.setenv("SAMRS_LEASE_TTL", "0.4")  # a heartbeat every 0.1 s
    real = leases.FieldLease.heartbeat
    beats = []

    def heartbeat(self):  # the database goes away after the first beats
        beats.append(1)
        if len(beats) > 2:
            raise ServerSelectionTimeoutError("localhost:27017: [Errno 111] Connection "
                                              "refused, Timeout: 30s, Topology Description: x")
        return real(self)

    monkeypatch.setattr(leases.FieldLease, "heartbeat", heartbeat)
    try:
        t0 = time.time()
        with pytest.raises(DatabaseLost) as err:
            segment(ds, engine=_Recorder(delay=0.3), seg_dir=str(tmp_path / "seg"),
                    batch_size=1, progress=False)
        assert time.time() - t0 < 20  # not the minutes of server selection timeouts
        msg = str(err.value)
        assert "\n" not in msg and "lost the connection to the database at" in msg
        assert "what was written is kept" in msg and "Topology" not in msg
        assert isinstance(err.value, OSError)  # every verb prints OSErrors in one line

        from fiftyone_samrs.tools.cli import one_line_error

        assert one_line_error(ServerSelectionTimeoutError("x, Timeout: 30s")).startswith(
            "lost the connection to the database at ")
    finally:
        monkeypatch.undo()
        ds.delete()


_KILLED_RUN = r'''
import sys, time
import fiftyone as fo
from fiftyone_samrs.segmenting.baselines import BoxFillBackend
from fiftyone_samrs.segmenting.pipeline import segment

class Slow(BoxFillBackend):
    def predict_batch(self, images, prompts):
        time.sleep(0.4)
        return super().predict_batch(images, prompts)

    def settings(self):
        return {"dtype": "fp32", "why": "test"}

segment(fo.load_dataset(sys.argv[1]), engine=Slow(), seg_dir=sys.argv[2], batch_size=1,
        progress=False)
'''


def test_a_resume_after_a_kill_starts_at_once_and_records_the_whole_field(fo_dataset,
                                                                          tmp_path):
    """Item 11: a resume right after a kill waited silently up to the 60 s
    lease TTL for the claims of the killed process; item 10: the completed
    record then held only the resume's counts (and no encoder settings when
    the killed run had written everything)."""
    import signal
    import subprocess
    import sys

    from concurrency_helpers import worker_env

    from fiftyone_samrs.importing.importers import load_dota
    from fiftyone_samrs.segmenting.baselines import BoxFillBackend
    from fiftyone_samrs.segmenting.pipeline import segment
    from fiftyone_samrs.segmenting.runs import get_segment_run
    from fiftyone_samrs.testing import synthetic

    gt = synthetic.make_dota_tree(tmp_path / "D", n_images=10, n_objects=3, size=(200, 160))
    ds = load_dota(gt["root"], name=fo_dataset.name + "-kill", version="1.0", progress=False,
                   persistent=True)
    seg = str(tmp_path / "seg")
    try:
        proc = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, ds.name, seg],
                                env=worker_env(), stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while not (ds.has_sample_field("sam") and ds.count("sam") >= 4):  # mid-run
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline
            time.sleep(0.1)
            ds.reload()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        t0 = time.time()
        res = segment(ds, engine=BoxFillBackend(), seg_dir=seg, batch_size=1, progress=False)
        assert time.time() - t0 < 20  # not the lease TTL (60 s) of the dead process
        assert res.samples_processed + res.samples_skipped == 10
        rec = get_segment_run(ds, "sam")
        total = sum(len(s.hbb.detections) for s in ds)
        assert rec["status"] == "complete"
        assert rec["samples_segmented"] == 10 and rec["boxes"] == total
        assert rec["boxes"] > res.boxes  # the killed call's boxes are counted too
        assert rec["encoder_settings"] == {"dtype": "fp32", "why": "test"}
    finally:
        ds.delete()
