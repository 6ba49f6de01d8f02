"""Prompt construction: names, combinations, regions, and the SAMRS mask prompt."""

import cv2
import numpy as np
import pytest

from fiftyone_samrs.core.geometry import rbox_to_quad
from fiftyone_samrs.segmenting.prompts import (
    PROMPTS,
    TABLE1,
    box_mask_prompt,
    build_prompts,
    needs_quads,
    parse_prompt,
    preprocess_shape,
    region_for_box,
)


def samrs_mask_prompt(shape, image_size):
    """The SAMRS release's mask prompt, literally: full canvas, two cv2 resizes."""
    h, w = image_size
    canvas = np.zeros((h, w, 3), dtype=np.uint8)
    s = np.asarray(shape, dtype=np.float64)
    if s.shape == (4,):
        drawn = cv2.rectangle(canvas, (int(s[0]), int(s[1])), (int(s[2]), int(s[3])),
                              (255, 255, 255), -1)
    else:
        drawn = cv2.fillPoly(canvas, [s.astype(np.int32)], color=(255, 255, 255))
    m = -1000 * np.ones((h, w))
    m[np.all(drawn == 255, axis=2)] = 1000
    th, tw = preprocess_shape(h, w)
    m = cv2.resize(m, (tw, th), interpolation=cv2.INTER_LINEAR)
    m = cv2.copyMakeBorder(m, 0, 1024 - th, 0, 1024 - tw, cv2.BORDER_CONSTANT, value=-1000)
    m = cv2.resize(m, (256, 256), interpolation=cv2.INTER_LINEAR)
    return m.astype(np.float32)[None]


def test_parse_prompt_names_and_auto():
    assert parse_prompt("auto", has_hbox=True) == ["hbox"]
    assert parse_prompt("auto", has_hbox=False) == ["rhbox"]
    assert parse_prompt("hbox+cp") == ["hbox", "cp"]
    assert parse_prompt(" RHBox + rbox_m ") == ["rhbox", "rbox_m"]
    for p in PROMPTS:
        assert parse_prompt(p) == [p]
    for config in TABLE1:
        assert parse_prompt(config)
    assert TABLE1[:3] == ["cp", "hbox", "hbox+cp"]
    assert {"hbox", "rhbox", "hbox_m", "rbox_m", "rhbox_m", "cp"} <= {
        p for c in TABLE1 for p in c.split("+")
    }
    assert needs_quads("rbox_m") and needs_quads("auto", has_hbox=False)
    assert not needs_quads("hbox+cp+hbox_m")


@pytest.mark.parametrize(
    "bad, why",
    [
        ("box", "unknown prompt"),
        ("hbox+rhbox", "more than one box"),
        ("hbox_m+rbox_m", "more than one mask"),
        ("cp+cp", "repeats"),
        ("auto+cp", "cannot be combined"),
        ("", "non-empty"),
    ],
)
def test_parse_prompt_errors(bad, why):
    with pytest.raises(ValueError, match=why):
        parse_prompt(bad)


def _objects():
    hboxes = np.array([[10.0, 20.0, 110.0, 70.0], [200.0, 150.0, 260.0, 290.0], [0.0, 0.0, 3.0, 2.0]])
    quads = np.stack(
        [
            rbox_to_quad(60, 45, 90, 30, 0.3),
            np.full((4, 2), np.nan),  # no rotated box for this object
            rbox_to_quad(1.5, 1.0, 3, 2, 0.0),
        ]
    )
    return hboxes, quads


def test_build_prompts_hbox_regions_and_margin():
    hboxes, quads = _objects()
    ps = build_prompts(hboxes, quads, "hbox", (300, 400), margin=0.1, min_margin=8)
    assert len(ps) == 3 and ps.names == ["hbox"] * 3
    np.testing.assert_allclose(ps.boxes, hboxes)
    assert ps.points is None and ps.mask_inputs is None
    # 100 x 50 box: grows by max(10, 8) in x and max(5, 8) = 8 in y
    np.testing.assert_allclose(ps.regions[0], [0.0, 12.0, 120.0, 78.0])
    # 60 x 140 box: 8 in x, 14 in y, clipped at the bottom (300)
    np.testing.assert_allclose(ps.regions[1], [192.0, 136.0, 268.0, 300.0])
    np.testing.assert_allclose(ps.regions[2], [0.0, 0.0, 11.0, 10.0])
    np.testing.assert_allclose(ps.base_boxes, hboxes)
    full = build_prompts(hboxes, None, "hbox", (300, 400), margin=None)
    np.testing.assert_allclose(full.regions, [[0, 0, 400, 300]] * 3)


def test_build_prompts_rotated_with_fallback_and_cp():
    hboxes, quads = _objects()
    ps = build_prompts(hboxes, quads, "rhbox+cp", (300, 400))
    assert ps.names == ["rhbox+cp", "hbox+cp", "rhbox+cp"]
    q0 = quads[0]
    np.testing.assert_allclose(ps.boxes[0], [q0[:, 0].min(), q0[:, 1].min(), q0[:, 0].max(), q0[:, 1].max()])
    np.testing.assert_allclose(ps.boxes[1], hboxes[1])  # fallback to the H-Box
    # CP: rotated box centre where there is one, else the H-Box centre
    np.testing.assert_allclose(ps.points[:, 0], [[60, 45], [230, 220], [1.5, 1.0]])
    assert ps.point_labels.tolist() == [[1], [1], [1]]
    assert ps.mask_inputs is None


def test_build_prompts_masks_and_combinations():
    hboxes, quads = _objects()
    ps = build_prompts(hboxes, quads, "rhbox+cp+rbox_m", (300, 400))
    assert ps.mask_inputs.shape == (3, 1, 256, 256) and ps.mask_inputs.dtype == np.float32
    assert ps.boxes.shape == (3, 4) and ps.points.shape == (3, 1, 2)
    assert ps.names[1] == "hbox+cp+hbox_m"
    np.testing.assert_allclose(ps.mask_inputs[0], box_mask_prompt(quads[0], (300, 400)))
    np.testing.assert_allclose(ps.mask_inputs[1], box_mask_prompt(hboxes[1], (300, 400)))
    only_mask = build_prompts(hboxes, quads, "hbox_m", (300, 400))
    assert only_mask.boxes is None and only_mask.points is None
    np.testing.assert_allclose(only_mask.base_boxes, hboxes)
    sub = ps.subset(np.array([2, 0]))
    assert sub.names == [ps.names[2], ps.names[0]] and sub.mask_inputs.shape[0] == 2
    np.testing.assert_allclose(sub.quads[1], quads[0])


def test_build_prompts_errors_and_empty():
    hboxes, quads = _objects()
    with pytest.raises(ValueError, match="needs rotated boxes"):
        build_prompts(hboxes, None, "rbox_m", (300, 400))
    with pytest.raises(ValueError, match="2 quads for 3 boxes"):
        build_prompts(hboxes, quads[:2], "hbox", (300, 400))
    empty = build_prompts(np.zeros((0, 4)), None, "hbox+cp", (300, 400))
    assert len(empty) == 0 and empty.boxes.shape == (0, 4) and empty.points.shape == (0, 1, 2)


@pytest.mark.parametrize("size", [(300, 500), (1500, 900), (1024, 1024)])
def test_box_mask_prompt_matches_samrs_release(size):
    rng = np.random.default_rng(7)
    h, w = size
    for _ in range(6):
        x0, y0 = rng.uniform(-20, w), rng.uniform(-20, h)
        bw, bh = rng.uniform(1, 300, 2)
        box = [x0, y0, x0 + bw, y0 + bh]
        quad = rbox_to_quad(x0 + bw / 2, y0 + bh / 2, bw, bh, rng.uniform(0, np.pi))
        for shape in (box, quad):
            ours = box_mask_prompt(shape, size)
            ref = samrs_mask_prompt(shape, size)
            assert ours.shape == (1, 256, 256) and ours.dtype == np.float32
            np.testing.assert_allclose(ours, ref, atol=1e-2)


def test_box_mask_prompt_values():
    m = box_mask_prompt([100, 100, 500, 300], (600, 800))[0]
    s = 256 / 800  # longest side 800 -> 1024 -> 256
    assert m[int(200 * s), int(300 * s)] == pytest.approx(1000)
    assert m[5, 5] == pytest.approx(-1000)
    assert (m[int(600 * s) + 2 :, :] == -1000).all()  # the padding
    outside = box_mask_prompt([900, 900, 950, 950], (600, 800))
    assert (outside == -1000).all()


def test_region_for_box_degenerate_and_outside():
    np.testing.assert_allclose(region_for_box([50, 50, 50, 50], (100, 100)), [42, 42, 58, 58])
    np.testing.assert_allclose(region_for_box([120, 10, 130, 20], (100, 100)), [100, 2, 100, 28])
    with pytest.raises(ValueError, match="not finite"):
        region_for_box([np.nan, 0, 1, 1], (10, 10))


@pytest.mark.parametrize("prompt", ["hbox_m", "rbox_m", "rhbox_m", "hbox+rbox_m"])
def test_prompts_without_mask_inputs_have_the_same_regions(prompt):
    """The baselines do not read mask prompts: building them (a 256 x 256
    raster per object) was half a rotated-box boxfill run (issue 23)."""
    import numpy as np

    from fiftyone_samrs.segmenting.baselines import BoxFillBackend
    from fiftyone_samrs.segmenting.prompts import build_prompts

    rng = np.random.default_rng(0)
    quads = rng.uniform(10, 200, (12, 4, 2))
    quads = np.stack([np.array([[q[:, 0].min(), q[:, 1].min()], [q[:, 0].max(), q[:, 1].min()],
                                [q[:, 0].max(), q[:, 1].max()], [q[:, 0].min(), q[:, 1].max()]])
                      for q in quads])
    hboxes = np.concatenate([quads.min(1), quads.max(1)], axis=1)
    full = build_prompts(hboxes, quads, prompt, (240, 260))
    light = build_prompts(hboxes, quads, prompt, (240, 260), mask_inputs=False)
    assert full.mask_inputs is not None and light.mask_inputs is None
    for name in ("regions", "base_boxes", "boxes", "quads"):
        a, b = getattr(full, name), getattr(light, name)
        assert (a is None and b is None) or np.array_equal(a, b), name
    assert full.names == light.names
    assert BoxFillBackend.mask_prompts is False
    image = np.zeros((240, 260, 3), np.uint8)
    for x, y in zip(BoxFillBackend().predict(image, full), BoxFillBackend().predict(image, light)):
        assert np.array_equal(x.mask.mask, y.mask.mask) and (x.mask.x0, x.mask.y0) == (
            y.mask.x0, y.mask.y0)
