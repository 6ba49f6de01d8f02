"""Shared by the concurrency and Ray tests: a small dataset whose samples
each have a unique first box, the worker processes' environment, and the
comparison of a field with a one-process run."""

import os
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
W, H = 80, 60
N = 24
TTL = 3.0  # lease / claim expiry of the worker processes (s)


def database_uri():
    """The MongoDB this test process uses, for the worker processes."""
    if os.environ.get("FIFTYONE_DATABASE_URI"):
        return os.environ["FIFTYONE_DATABASE_URI"]
    import fiftyone.core.odm as foo

    host, port = foo.get_db_client().address
    return "mongodb://%s:%d" % (host, port)


def worker_env(**extra):
    env = dict(os.environ, FIFTYONE_DATABASE_URI=database_uri(),
               FIFTYONE_DATABASE_NAME=os.environ["FIFTYONE_DATABASE_NAME"],
               FIFTYONE_DATABASE_VALIDATION="false", FIFTYONE_DO_NOT_TRACK="true",
               SAMRS_LEASE_TTL=str(TTL),
               PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in os.environ.get(
                   "PYTHONPATH", "").split(os.pathsep) if p]))
    env.update(extra)
    return env


def first_box(k):
    """Sample k's first box (unique per sample: the workers log it)."""
    return (2 + k, 3, 30 + k, 40)


def make_dataset(tmp_path, n=N):
    import fiftyone as fo

    from fiftyone_samrs.core import geometry

    ds = fo.Dataset("samrs-test-conc-" + uuid.uuid4().hex[:8])
    samples = []
    for k in range(n):
        rng = np.random.default_rng(k)
        path = tmp_path / "images" / ("I%03d.png" % k)
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), rng.integers(0, 255, size=(H, W, 3), dtype=np.uint8))
        boxes = [first_box(k)] + ([(40, 20, 70, 55)] if k % 3 else [])
        dets = [fo.Detection(label="plane" if i == 0 else "ship",
                             bounding_box=geometry.box_to_relative(b, W, H), obj_index=i)
                for i, b in enumerate(boxes)]
        samples.append(fo.Sample(filepath=str(path), hbb=fo.Detections(detections=dets),
                                 metadata=fo.ImageMetadata(width=W, height=H, num_channels=3)))
    ds.add_samples(samples)
    ds.info = {"samrs": {"subset": "SOTA"}}
    ds.save()
    return ds


def kwargs_for(tmp_path, **kw):
    return dict(dict(seg_dir=str(tmp_path / "seg"), batch_size=2), **kw)


def assert_fields_equal(ds, a, b):
    """Fields ``a`` and ``b`` (and their ``_seg`` PNGs) hold the same masks."""
    from fiftyone_samrs.core.painting import read_label_png

    ds.reload()
    for s in ds.select_fields([a, a + "_seg", b, b + "_seg"]):
        da_, db_ = s[a].detections, s[b].detections
        assert [d.label for d in da_] == [d.label for d in db_]
        for da, db in zip(da_, db_):
            assert da.bounding_box == pytest.approx(db.bounding_box)
            np.testing.assert_array_equal(da.mask, db.mask)
            assert (da.confidence, da.source_id, da.obj_index) == \
                (db.confidence, db.source_id, db.obj_index)
        np.testing.assert_array_equal(read_label_png(s[a + "_seg"].mask_path),
                                      read_label_png(s[b + "_seg"].mask_path))


def assert_same_as_clean_run(ds, tmp_path, backend="boxfill", field="sam"):
    """The field equals a one-process run of the same backend into another field."""
    from fiftyone_samrs.segmenting.pipeline import segment

    ds.reload()
    segment(ds, backend=backend, label_field="clean", seg_field="clean_seg",
            seg_dir=str(tmp_path / "clean"), batch_size=3, progress=False)
    assert_fields_equal(ds, field, "clean")


def all_boxes():
    return sorted(tuple(float(v) for v in first_box(k)) for k in range(N))


class StandaloneMongod:
    """A ``mongod`` of its own on a free loopback port (FiftyOne's binary,
    not its embedded service), for the shared-database tests."""

    def __init__(self, folder):
        import socket
        import subprocess

        from fiftyone_samrs.tools.db import mongod_path

        binary = mongod_path()
        if not binary or not os.path.isfile(binary):
            pytest.skip("FiftyOne's mongod binary is not installed")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        data = Path(folder) / "db"
        data.mkdir(parents=True, exist_ok=True)
        self.log = Path(folder) / "mongod.log"
        self.proc = subprocess.Popen(
            [binary, "--dbpath", str(data), "--port", str(self.port), "--bind_ip", "127.0.0.1",
             "--nounixsocket", "--logpath", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.uri = "mongodb://127.0.0.1:%d" % self.port
        self._wait()

    def _wait(self, timeout=60):
        import time

        import pymongo

        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, "mongod exited: %s" % self.log.read_text()[-2000:]
            try:
                pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=500).admin.command("ping")
                return
            except Exception:
                assert time.monotonic() < deadline, "mongod did not start"

    def client(self):
        import pymongo

        return pymongo.MongoClient(self.uri)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except Exception:
            self.proc.kill()
