"""Alternatives for chosen labels (issue 26, first part): ``resegment``
encodes each image once for all its chosen labels and every SAM alternative,
stores them beside the labels, and its ``hbox`` alternative is the mask
``segment`` gave on the same weights."""

import pytest
import torch
from test_pipeline import make_dataset

from fiftyone_samrs.evaluating.review import alternatives_field, resegment
from fiftyone_samrs.segmenting.sam.engine import SamEngine
from fiftyone_samrs.segmenting.sam.tiny import build_tiny_sam

#: 20 objects in one image
TWENTY = [[("plane" if k % 2 else "ship",
            (5 + (k % 5) * 22, 4 + (k // 5) * 21, 22 + (k % 5) * 22, 20 + (k // 5) * 21))
           for k in range(20)]]


class _Counting(SamEngine):
    """The SAM engine, counting the images it encodes."""

    encoded = 0

    def encode(self, images):
        self.encoded += len(images)
        return super().encode(images)


@pytest.fixture
def segmented(fo_dataset, tmp_path):
    from fiftyone_samrs.segmenting.pipeline import segment

    torch.manual_seed(0)
    engine = _Counting(build_tiny_sam(0), device="cpu", dtype="fp32")
    ds = make_dataset(fo_dataset, tmp_path, objects=TWENTY)
    segment(ds, engine=engine, seg_dir=str(tmp_path / "seg"), progress=False)
    engine.encoded = 0
    return ds, engine


def test_alternatives_of_twenty_labels_cost_one_encoder_pass(segmented):
    ds, engine = segmented
    names = ["multimask", "hbox", "rhbox", "hbox+cp", "hbox+clip_rbox", "grabcut", "box"]
    res = resegment(ds, alternatives=names, engine=engine, progress=False)
    assert engine.encoded == 1 and res.images == 1
    assert res.labels == 20 and res.alternatives == 20 * 9 and not res.skipped
    sample = ds.first()
    alts = sample[alternatives_field("sam")].detections
    by = {(a.of, a.alternative): a for a in alts}
    for det in sample.sam.detections:
        same = by[(det.id, "hbox")]  # what segment gave: its own mask again
        assert same.confidence == pytest.approx(det.confidence, abs=1e-5)
        assert same.iou_current == pytest.approx(1.0) or det.empty
        assert same.label == det.label
        for j in range(3):
            assert by[(det.id, "multimask_%d" % j)].confidence is not None
        assert by[(det.id, "grabcut")].confidence is None
        assert by[(det.id, "box")].iou_current <= 1.0
    box = by[(sample.sam.detections[0].id, "box")]
    assert box.mask.all()  # the filled box


def test_chosen_labels_only_and_the_others_kept(segmented):
    ds, engine = segmented
    dets = ds.first().sam.detections
    resegment(ds, alternatives=["hbox", "box"], engine=engine, progress=False)
    first = [d.id for d in dets[:2]]
    res = resegment(ds, label_ids=first, alternatives=["multimask"], engine=engine,
                    progress=False)
    assert res.labels == 2 and res.alternatives == 6
    alts = ds.first()[alternatives_field("sam")].detections
    names = {}
    for a in alts:
        names.setdefault(a.of, set()).add(a.alternative)
    assert all(names[i] == {"multimask_0", "multimask_1", "multimask_2"} for i in first)
    assert all(names[d.id] == {"hbox", "box"} for d in dets[2:])  # kept


def test_unknown_alternative_is_a_clear_error(segmented):
    ds, engine = segmented
    with pytest.raises(ValueError, match="unknown|Unknown"):
        resegment(ds, alternatives=["nonsense"], engine=engine, progress=False)
