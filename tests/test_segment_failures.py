"""segment() and samples it cannot process (issue 11).

0.1.0: an image with a valid header but an undecodable body passed import,
then stopped every segment run at the same sample, with no way to skip it.
Now ``skip_failures=True`` counts and lists such samples (result, summary,
run record); the default stays a clear error naming the sample and the
file. Predicted masks too large for their sample's document go to mask
files.
"""

import os

import numpy as np
import pytest
from test_pipeline import FakeBackend, _run, make_dataset

from fiftyone_samrs.core import limits
from fiftyone_samrs.core.records import FormatError


def _break(path):
    """Keeps the PNG header, damages the body (what 0.1.0 could not get past)."""
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:40] + b"\x00" * (len(data) - 40))


def test_undecodable_image_stops_the_run_naming_sample_and_file(fo_dataset, tmp_path):
    ds = make_dataset(fo_dataset, tmp_path)
    bad = ds.skip(1).first()
    _break(bad.filepath)
    with pytest.raises(FormatError) as e:
        _run(ds, tmp_path)
    assert bad.filepath in str(e.value) and bad.id in str(e.value)


def test_skip_failures_counts_and_lists_them(fo_dataset, tmp_path):
    from fiftyone_samrs.segmenting.runs import get_segment_run

    ds = make_dataset(fo_dataset, tmp_path)
    bad = ds.skip(1).first()
    gone = ds.skip(3).first()
    _break(bad.filepath)
    os.remove(gone.filepath)
    res = _run(ds, tmp_path, skip_failures=True)
    assert res.samples_failed == 2 and res.samples_processed == 3
    assert {f["id"] for f in res.failures} == {bad.id, gone.id}
    assert "FAILED" in res.summary() and bad.filepath in res.summary()
    run = get_segment_run(ds, "sam")
    assert run["samples_failed"] == 2 and {f["filepath"] for f in run["failures"]} == {
        bad.filepath, gone.filepath}
    assert not ds[bad.filepath].has_field("sam") or ds[bad.filepath].sam is None
    # they stay unfinished: a rerun tries them (and only them) again
    again = _run(ds, tmp_path, skip_failures=True)
    assert again.samples_skipped == 3 and again.samples_failed == 2


def test_sample_without_size_is_a_listed_failure(fo_dataset, tmp_path):
    ds = make_dataset(fo_dataset, tmp_path, metadata=False)
    gone = ds.first()
    os.remove(gone.filepath)
    res = _run(ds, tmp_path, skip_failures=True)
    assert res.samples_failed == 1 and res.failures[0]["id"] == gone.id
    assert "no image size" in res.failures[0]["error"]


def test_predicted_masks_too_large_for_the_document_become_files(fo_dataset, tmp_path,
                                                               monkeypatch):
    monkeypatch.setattr(limits, "INLINE_MASK_BYTES", 40)
    ds = make_dataset(fo_dataset, tmp_path)
    res = _run(ds, tmp_path, engine=FakeBackend())
    assert res.mask_files > 0 and "mask files" in res.summary()
    s = ds.first()
    det = s.sam.detections[0]
    assert det.mask is None and os.path.isfile(det.mask_path)
    import fiftyone as fo

    assert det.mask_path.startswith(os.path.join(fo.config.default_dataset_dir, ds.name,
                                                 "masks", "sam", s.id))
    # the masks read back as the inline ones would (export, evaluation use mask_path)
    monkeypatch.setattr(limits, "INLINE_MASK_BYTES", 4 << 20)
    ref = _run(ds, tmp_path, label_field="inline", seg_field=None, engine=FakeBackend())
    assert ref.mask_files == 0
    s = ds.first()
    for a, b in zip(s.sam.detections, s.inline.detections):
        assert np.array_equal(a.get_mask() > 0, b.mask.astype(bool))


def test_a_sample_too_large_even_without_masks_says_to_tile(fo_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_SAMPLE_BYTES", 3000)
    ds = make_dataset(fo_dataset, tmp_path)
    with pytest.raises(FormatError, match="tile=True"):
        _run(ds, tmp_path)
    res = _run(ds, tmp_path, skip_failures=True)
    assert res.samples_failed >= 1 and "16 MB" in res.failures[0]["error"]
