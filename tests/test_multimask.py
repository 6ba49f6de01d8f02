"""SAM's three candidate masks per prompt (``SamEngine.decode_multimask``,
the alternatives a reviewer picks from, issue 26) are ``SamPredictor``'s
``multimask_output=True`` masks and IoU predictions, on the same tiny SAM
in fp32, from one encoder pass."""

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from fiftyone_samrs.segmenting.prompts import build_prompts
from fiftyone_samrs.segmenting.sam.engine import SamEngine
from fiftyone_samrs.segmenting.sam.tiny import build_tiny_sam


@pytest.fixture(scope="module")
def sam():
    torch.manual_seed(0)
    return build_tiny_sam(seed=0)


def _scene(h=300, w=420):
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[60:160, 90:250] = (210, 190, 40)
    hboxes = np.array([[90, 60, 250, 160], [10, 200, 120, 290], [300, 20, 410, 100]], float)
    return img, hboxes


def test_decode_multimask_is_sam_predictors_multimask_output(sam):
    img, hboxes = _scene()
    engine = SamEngine(sam, device="cpu", dtype="fp32", decoder_chunk=2)
    calls = []
    encode = engine.encode
    engine.encode = lambda images: calls.append(len(images)) or encode(images)
    emb = engine.encode([img])[0]
    ps = build_prompts(hboxes, None, "hbox", img.shape[:2], margin=None)
    ours = engine.decode_multimask(emb, ps)
    single = engine.decode(emb, ps)
    assert calls == [1] and len(ours) == 3 and all(len(m) == 3 for m in ours)

    predictor = SamPredictor(sam)
    predictor.set_image(img)
    for k, box in enumerate(hboxes):
        masks, ious, _ = predictor.predict(box=box, multimask_output=True)
        for j in range(3):
            res = ours[k][j]
            full = np.zeros(img.shape[:2], bool)
            if res.mask.mask.size:
                crop = res.mask.clipped(*img.shape[:2])
                full[crop.y0 : crop.y0 + crop.mask.shape[0],
                     crop.x0 : crop.x0 + crop.mask.shape[1]] = crop.mask
            inter = (full & masks[j]).sum()
            union = (full | masks[j]).sum()
            assert union == 0 or inter / union >= 0.999, (k, j, inter, union)
            assert res.score == pytest.approx(float(ious[j]), abs=1e-4)
        assert len({round(r.score, 6) for r in ours[k]}) == 3  # three different masks
    # the single-mask output is SAM's fourth head, not one of the three
    ref = [predictor.predict(box=b, multimask_output=False)[1][0] for b in hboxes]
    assert [r.score for r in single] == pytest.approx([float(v) for v in ref], abs=1e-4)


def test_hq_sam_says_it_has_no_multimask(sam):
    from fiftyone_samrs.segmenting.sam_hq.engine import HqSamEngine

    with pytest.raises(NotImplementedError, match="backend='sam'"):
        HqSamEngine.decode_multimask(object.__new__(HqSamEngine), None, None)
