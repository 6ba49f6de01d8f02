"""fp32 vs bf16 mask agreement (issue 16's rule for bf16 on CPUs).

The helper takes any SAM; the trained stand-in (``model="samrs-tiny"``,
issue 13) decides ``CPU_BF16_AUTO``: when it is installed, the switch must
agree with the measured rule (mean per-instance IoU >= 0.98).
"""

import numpy as np
import pytest

from fiftyone_samrs.segmenting.sam import models
from fiftyone_samrs.segmenting.sam.attention import fused_attention_enabled
from fiftyone_samrs.segmenting.sam.tiny import build_tiny_sam
from fiftyone_samrs.testing.precision import (
    BF16_MIN_MEAN_IOU,
    Agreement,
    Scene,
    generated_scenes,
    mask_agreement,
    mask_agreements,
    mask_iou,
)


@pytest.fixture(scope="module")
def scenes():
    return generated_scenes(n_images=1, n_objects=12, size=(512, 512), seed=7)


def test_mask_iou():
    a = np.zeros((4, 5), bool)
    b = np.zeros((4, 5), bool)
    assert mask_iou(a, b) == 1.0  # both empty: they agree
    a[0, :4] = True
    b[0, 2:] = True
    assert mask_iou(a, b) == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="shapes"):
        mask_iou(a, b[:, :3])


def test_agreement_figures():
    ag = Agreement("fp32", "bf16", "hbox", np.array([1.0, 0.96, 0.99, 0.5]), images=1)
    assert ag.instances == 4 and ag.mean_iou == pytest.approx(0.8625) and ag.min_iou == 0.5
    assert ag.share_below(0.9) == 0.25
    assert not ag.passes() and ag.passes(0.8)
    assert not Agreement("a", "b", "hbox", np.zeros(0), 0).passes()


def test_generated_scenes_have_boxes_inside_the_image(scenes):
    assert len(scenes) == 1
    for s in scenes:
        assert isinstance(s, Scene) and s.image.shape == (512, 512, 3) and s.image.dtype == np.uint8
        assert s.hboxes.shape == (12, 4) and s.quads.shape == (12, 4, 2)
        assert (s.hboxes[:, 2] > s.hboxes[:, 0]).all() and (s.hboxes[:, 3] > s.hboxes[:, 1]).all()
        assert s.hboxes.min() >= -1 and s.hboxes.max() <= 513


def test_same_setting_agrees_exactly_and_the_model_is_left_as_found(scenes):
    sam = build_tiny_sam(0)
    assert not fused_attention_enabled(sam)
    ag = mask_agreement(sam, scenes, candidate="fp32", reference="fp32", device="cpu",
                        attention="reference")
    assert ag.instances == 12 and ag.images == 1
    assert ag.mean_iou == 1.0 and ag.empty_flips == 0
    assert not fused_attention_enabled(sam)  # restored


def test_bf16_agreement_of_the_random_tiny_model(scenes):
    """Provisional (random weights): a figure, and a floor well below the rule."""
    sam = build_tiny_sam(0)
    ags = mask_agreements(sam, scenes, ("hbox", "rbox_m"), candidate="bf16", device="cpu")
    assert list(ags) == ["hbox", "rbox_m"]
    for prompt, ag in ags.items():
        assert ag.candidate == "bf16, fused attention"
        assert ag.reference == "fp32, reference attention"
        assert ag.prompt == prompt and ag.instances == 12
        assert 0.9 <= ag.mean_iou <= 1.0
    assert not fused_attention_enabled(sam)


def _samrs_tiny():
    try:
        return models.load_sam(model="samrs-tiny", device="cpu", download=False)
    except (ValueError, models.ModelNotFoundError) as e:
        pytest.skip("samrs-tiny (issue 13) is not installed here: %s" % str(e).splitlines()[0])


def test_cpu_bf16_switch_matches_the_trained_models_agreement():
    """The rule itself, on the trained stand-in: CPU_BF16_AUTO must be on exactly
    when its fp32 and bf16 masks agree to a mean per-instance IoU >= 0.98."""
    sam = _samrs_tiny()
    scenes = generated_scenes(n_images=3, n_objects=30, size=(1024, 1024))
    ags = list(mask_agreements(sam, scenes, ("hbox", "rbox_m"), candidate="bf16",
                               device="cpu").values())
    ok = all(a.passes(BF16_MIN_MEAN_IOU) for a in ags)
    assert models.CPU_BF16_AUTO == ok, (
        "mean IoU %s: set CPU_BF16_AUTO = %s in fiftyone_samrs/segmenting/sam/models.py"
        % (", ".join("%s %.4f" % (a.prompt, a.mean_iou) for a in ags), ok))
