"""Every private FiftyOne fast path of ``fiftyone_io`` has a public fallback
(issue 25): each private name is taken away here (hidden from
``fiftyone_io`` only, so FiftyOne itself still works, as a future FiftyOne
that renamed it would) or made to answer wrongly; the package then warns
once, naming the fast path, and gives the same results as with it."""

import json
import sys
import warnings

import fiftyone as fo
import fiftyone.core.collections as foc
import fiftyone.core.view as fov
import numpy as np
import pytest
from test_fiftyone_io import _dataset

from fiftyone_samrs import fiftyone_io as fio


class _Hidden:
    """A class attribute that ``fiftyone_io`` cannot see (AttributeError)
    while every other module, FiftyOne included, still can."""

    def __init__(self, original, name):
        self.original, self.name = original, name

    def __get__(self, obj, owner=None):
        frame = sys._getframe(1)
        while frame.f_code.co_name in ("__getattribute__", "__getattr__"):
            frame = frame.f_back  # FiftyOne's Dataset has its own __getattribute__
        if frame.f_globals.get("__name__") == fio.__name__:
            raise AttributeError("%s (hidden by the test)" % self.name)
        return self.original.__get__(obj, owner) if hasattr(self.original, "__get__") \
            else self.original


def hide(monkeypatch, owner, name):
    monkeypatch.setattr(owner, name, _Hidden(owner.__dict__[name], name))


@pytest.fixture(autouse=True)
def _fresh_checks():
    fio.reset_fast_paths()
    yield
    fio.reset_fast_paths()


def _both(run, take_away, name, repeat=True):
    """``run()`` with the fast path, then with it taken away: the second
    warns once naming ``name`` (and a third time does not); returns the
    fast and the public results."""
    fio.reset_fast_paths()
    with warnings.catch_warnings():
        warnings.simplefilter("error", fio.FastPathWarning)
        fast = run()
    assert fio.FAST_PATHS[name].on is True
    fio.reset_fast_paths()
    take_away()
    with pytest.warns(fio.FastPathWarning) as caught:
        slow = run()
        again = run() if repeat else slow
    messages = [str(w.message) for w in caught if issubclass(w.category, fio.FastPathWarning)]
    assert len(messages) == 1 and "fast path %r off" % name in messages[0], messages
    assert "\n" not in messages[0]
    assert fio.FAST_PATHS[name].on is False and _plain(again) == _plain(slow)
    return fast, slow


def _plain(value):
    return json.loads(json.dumps(fio._plain(value), default=repr))


def test_raw_values(fo_dataset, tmp_path, monkeypatch):
    ds = _dataset(fo_dataset, tmp_path)
    view = ds.filter_labels("sam", fo.ViewField("label") == "ship")
    fields = ["id", "filepath", "sam.detections", "obb", "metadata.width"]
    values = foc.SampleCollection.values

    def no_raw(self, *args, **kwargs):
        if "_raw" in kwargs and sys._getframe(1).f_globals["__name__"] == fio.__name__:
            raise TypeError("values() got an unexpected keyword argument '_raw'")
        return values(self, *args, **kwargs)

    fast, slow = _both(lambda: fio.raw_values(view, fields),
                       lambda: monkeypatch.setattr(foc.SampleCollection, "values", no_raw),
                       "raw_values")
    assert _plain(fast) == _plain(slow)
    assert len(slow[2][0]) == 1 and isinstance(slow[2][0][0]["mask"], bytes)


def test_iter_raw_docs(fo_dataset, tmp_path, monkeypatch):
    ds = _dataset(fo_dataset, tmp_path)
    view = ds.sort_by("filepath", reverse=True).filter_labels(
        "sam", fo.ViewField("label") == "plane")
    fast, slow = _both(lambda: list(fio.iter_raw_docs(view, ["sam"])),
                       lambda: hide(monkeypatch, fov.DatasetView, "_aggregate"),
                       "iter_raw_docs")
    assert _plain(fast) == _plain(slow) and len(slow) == 4
    assert [d["filepath"] for d in slow] == view.values("filepath")


def test_iter_raw_docs_when_it_answers_wrongly(fo_dataset, tmp_path, monkeypatch):
    """A private name that still exists but means something else."""
    ds = _dataset(fo_dataset, tmp_path)
    aggregate = fov.DatasetView._aggregate

    def changed(self, *args, **kwargs):
        docs = list(aggregate(self, *args, **kwargs))
        if sys._getframe(1).f_globals["__name__"] == fio.__name__:
            for d in docs:
                d.pop("filepath", None)
        return iter(docs)

    fast, slow = _both(lambda: list(fio.iter_raw_docs(ds, ["sam"])),
                       lambda: monkeypatch.setattr(fov.DatasetView, "_aggregate", changed),
                       "iter_raw_docs")
    assert _plain(fast) == _plain(slow)


def _inserted(fo_dataset, tmp_path):
    """Sample documents inserted with a probe, as the importers do."""
    from datetime import datetime

    fo_dataset.media_type = "image"
    mask = np.eye(4, dtype=bool)
    docs = [fio.sample_doc(fo_dataset, str(tmp_path / ("%d.png" % i)), {"width": 8, "height": 6},
                           ["val"], {"split": "val", "hbb": fio.label_list_doc(fo.Detections, [
                               fio.detection_doc("ship", [0.1, 0.2, 0.3, 0.4], mask,
                                                 obj_index=i)])}, datetime.utcnow())
            for i in range(3)]
    probe = fo.Sample(filepath="/probe.png", split="x", hbb=fo.Detections(detections=[
        fo.Detection(label="p", bounding_box=[0, 0, 1, 1], obj_index=1)]))
    fio.insert_sample_docs(fo_dataset, docs, probe)
    fio.insert_sample_docs(fo_dataset, [], probe)
    out = [s.to_dict() for s in fo_dataset.sort_by("filepath")]
    schema = sorted(fo_dataset.get_field_schema(flat=True))
    return [{k: v for k, v in d.items() if k not in ("_id", "created_at", "last_modified_at",
                                                      "_rand", "_dataset_id")}
            for d in out], schema


@pytest.mark.parametrize("take_away", ["_expand_schema", "_generate_rand"])
def test_insert_sample_docs(tmp_path, monkeypatch, take_away):
    import types

    def away():
        if take_away == "_generate_rand":  # a module function FiftyOne moved
            monkeypatch.setattr(fio, "foos", types.SimpleNamespace())
        else:
            hide(monkeypatch, fo.Dataset, take_away)

    made = [fo.Dataset(), fo.Dataset()]
    fresh = list(made)
    try:
        fast, slow = _both(lambda: _inserted(fresh.pop(0), tmp_path), away,
                           "insert_sample_docs", repeat=False)
    finally:
        for ds in made:
            ds.delete()
    assert fast[1] == slow[1]  # the same schema
    no_ids = lambda docs: json.loads(json.dumps(docs, default=repr).replace(  # noqa: E731
        '"_id"', '"id"'))
    for a, b in zip(fast[0], slow[0]):
        a["hbb"]["detections"][0].pop("_id"), b["hbb"]["detections"][0].pop("_id")
        assert no_ids(a) == no_ids(b)


def _set_some(ds):
    ids = ds.values("id")
    det_ids = ds.values("sam.detections.id")
    fio.bulk_set(ds, {ids[0]: {"score": 1.5, "sam.detections.1.q": 0.25}})
    fio.write_values(ds, {ids[1]: {"score": 2.5}},
                     {ids[2]: {"sam.detections": {det_ids[2][2]: {"q": 0.75}}}})
    return [(s.score if s.has_field("score") else None,
             [d["q"] if d.has_field("q") else None for d in s.sam.detections]) for s in ds]


def test_bulk_set_and_write_values(tmp_path, monkeypatch):
    results = []
    for take_away in (None, lambda: hide(monkeypatch, fo.Dataset, "_bulk_write")):
        ds = fo.Dataset()
        try:
            _dataset(ds, tmp_path)
            fio.declare_fields(ds, {"score": fo.FloatField})
            fio.reset_fast_paths()
            if take_away:
                take_away()
                with pytest.warns(fio.FastPathWarning, match="'bulk_set' off"):
                    results.append(_set_some(ds))
            else:
                results.append(_set_some(ds))
        finally:
            ds.delete()
    assert results[0] == results[1]
    assert results[0][0] == (1.5, [None, 0.25, None]) and results[0][2][1] == [None, None, 0.75]


def test_label_positions_and_document_sizes(fo_dataset, tmp_path, monkeypatch):
    ds = _dataset(fo_dataset, tmp_path)
    ids = ds.values("id")
    run = lambda: (fio.label_positions(ds, ids, ["sam.detections", "obb.polylines"]),  # noqa
                   fio.document_sizes(ds, ids, ["sam"]))
    fio.reset_fast_paths()
    fast = run()
    fio.reset_fast_paths()
    hide(monkeypatch, fo.Dataset, "_sample_collection")
    with pytest.warns(fio.FastPathWarning) as caught:
        slow = run()
    names = sorted(str(w.message).split("'")[1] for w in caught)
    assert names == ["document_sizes", "label_positions"]
    assert fast == slow and fast[0][ids[0]]["sam.detections"] == {
        i: k for k, i in enumerate(ds.values("sam.detections.id")[0])}


def test_dataset_of(fo_dataset, tmp_path, monkeypatch):
    ds = _dataset(fo_dataset, tmp_path)
    view = ds.limit(2)
    fast, slow = _both(lambda: fio.dataset_of(view),
                       lambda: hide(monkeypatch, fov.DatasetView, "_root_dataset"), "dataset_of")
    assert fast is ds and slow.name == ds.name


def test_view_stages(fo_dataset, tmp_path, monkeypatch):
    ds = _dataset(fo_dataset, tmp_path)
    view = ds.match(fo.ViewField("split") == "train").sort_by("filepath", reverse=True) \
        .filter_labels("sam", fo.ViewField("label") == "ship")

    def rebuilt():
        again = fio.view_from_stages(ds, json.loads(json.dumps(fio.view_stages(view))))
        return (again.values("id"), again.values("sam.detections.id"),
                fio.without_sorting(view).count())

    fast, slow = _both(rebuilt, lambda: hide(monkeypatch, fov.DatasetView, "_serialize"),
                       "view_stages")
    assert fast == slow and slow[0] == view.values("id")


def test_made_for_this_import(fo_dataset, monkeypatch):
    def from_dir(cls, *args, **kwargs):  # a FiftyOne whose from_dir has no local `dataset`
        raise NotImplementedError

    fast, slow = _both(lambda: fio.made_for_this_import(fo_dataset),
                       lambda: monkeypatch.setattr(fo.Dataset, "from_dir",
                                                   classmethod(from_dir)),
                       "made_for_this_import")
    assert fast is False and slow is False


def test_clear_plugin_cache(monkeypatch):
    from fiftyone.operators import decorators

    fast, slow = _both(fio.clear_plugin_cache,
                       lambda: monkeypatch.setattr(decorators, "dir_cache", {}),
                       "clear_plugin_cache")
    assert fast is None and slow is None


def test_every_fast_path_is_tested_here():
    import inspect

    source = inspect.getsource(sys.modules[__name__])
    for name in fio.FAST_PATHS:
        assert ('"%s"' % name) in source or ("'%s' off" % name) in source, name
