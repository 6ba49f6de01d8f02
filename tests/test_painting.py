"""Semantic label painting and the label PNG round trip."""

import cv2
import numpy as np
import pytest

from fiftyone_samrs.core.painting import paint_semantic, read_label_png, write_label_png
from fiftyone_samrs.core.records import FormatError, InstanceMask


def _rect(x0, y0, x1, y1, pad=0):
    """An InstanceMask crop of the rectangle, inside a ``pad``-px False border."""
    m = np.zeros((y1 - y0 + 2 * pad, x1 - x0 + 2 * pad), dtype=bool)
    m[pad : pad + y1 - y0, pad : pad + x1 - x0] = True
    return InstanceMask(m, x0 - pad, y0 - pad)


def test_empty_label_is_all_255():
    label = paint_semantic(5, 7, [])
    assert label.shape == (5, 7) and label.dtype == np.uint8
    assert (label == 255).all()


def test_annotation_order_later_wins():
    big = _rect(0, 0, 10, 10)
    small = _rect(2, 2, 4, 4)
    # small first, big later: big covers it
    label = paint_semantic(12, 12, [(small, 3), (big, 1)])
    assert (label[:10, :10] == 1).all()
    assert (label[10:, :] == 255).all() and (label[:, 10:] == 255).all()
    # big first, small later: small on top
    label = paint_semantic(12, 12, [(big, 1), (small, 3)])
    assert (label[2:4, 2:4] == 3).all()
    assert (label == 1).sum() == 100 - 4


def test_small_last_keeps_small_objects_visible():
    big = _rect(0, 0, 10, 10)
    small = _rect(2, 2, 4, 4)
    label = paint_semantic(12, 12, [(small, 3), (big, 1)], order="small_last")
    assert (label[2:4, 2:4] == 3).all()
    assert (label == 1).sum() == 96


def test_small_last_ties_keep_annotation_order():
    a = _rect(0, 0, 4, 4)
    b = _rect(2, 2, 6, 6)  # same area, overlaps a
    label = paint_semantic(8, 8, [(a, 0), (b, 5)], order="small_last")
    assert label[3, 3] == 5
    label = paint_semantic(8, 8, [(b, 5), (a, 0)], order="small_last")
    assert label[3, 3] == 0


def test_crop_padding_is_not_painted_and_outside_is_clipped():
    # a crop with a False border over an earlier object: the border keeps the earlier class
    base = _rect(0, 0, 8, 8)
    padded = _rect(3, 3, 5, 5, pad=2)
    label = paint_semantic(8, 8, [(base, 2), (padded, 7)])
    assert (label[3:5, 3:5] == 7).all()
    assert (label == 2).sum() == 64 - 4
    # a crop reaching beyond every border of the image
    out = InstanceMask(np.ones((10, 10), dtype=bool), -3, -4)
    label = paint_semantic(4, 5, [(out, 9)])
    assert (label[:, :5] == 9).all() and label.shape == (4, 5)
    # entirely outside and empty crops paint nothing
    far = InstanceMask(np.ones((3, 3), dtype=bool), 50, 50)
    empty = InstanceMask(np.zeros((0, 0), dtype=bool), 0, 0)
    assert (paint_semantic(4, 5, [(far, 1), (empty, 1)]) == 255).all()


def test_unknown_class_is_not_painted():
    a = _rect(0, 0, 4, 4)
    b = _rect(1, 1, 3, 3)
    label = paint_semantic(5, 5, [(a, 4), (b, None), (b, 255)])
    assert (label[:4, :4] == 4).all()


@pytest.mark.parametrize("bad", [-2, 256])
def test_bad_class_index(bad):
    with pytest.raises(ValueError, match="8-bit"):
        paint_semantic(4, 4, [(_rect(0, 0, 1, 1), bad)])


def test_a_rejected_instance_is_ignore_in_its_turn():
    from fiftyone_samrs.core.painting import REJECTED

    a, b, c = _rect(0, 0, 3, 3), _rect(1, 1, 4, 4), _rect(2, 2, 4, 4)
    label = paint_semantic(4, 4, [(a, 1), (b, REJECTED), (c, 2)])
    assert label[0, 0] == 1 and label[1, 1] == 255 and label[2, 2] == 2 and label[3, 3] == 2
    assert label[1, 3] == 255 and label[0, 3] == 255  # painted 255 / never painted


def test_bad_order():
    with pytest.raises(ValueError, match="small_last"):
        paint_semantic(4, 4, [], order="largest")


def test_png_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    label = rng.integers(0, 256, size=(13, 17), dtype=np.uint8)
    path = tmp_path / "deep" / "dir" / "P0001.png"
    write_label_png(path, label)
    assert path.is_file()
    back = read_label_png(path)
    assert back.dtype == np.uint8 and back.shape == (13, 17)
    np.testing.assert_array_equal(back, label)
    # also readable as a plain 8-bit grey PNG by other tools
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.ndim == 2 and raw.dtype == np.uint8


def test_write_rejects_non_uint8(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_label_png(tmp_path / "x.png", np.zeros((3, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="2-D"):
        write_label_png(tmp_path / "x.png", np.zeros((3, 3, 3), dtype=np.uint8))


def test_write_error_names_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    with pytest.raises(OSError, match="file"):
        write_label_png(blocker / "x.png", np.zeros((3, 3), dtype=np.uint8))


def test_read_errors_name_path(tmp_path):
    missing = tmp_path / "missing.png"
    with pytest.raises(FormatError, match="missing.png: label PNG not found"):
        read_label_png(missing)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    with pytest.raises(FormatError, match="junk.png: not a readable image"):
        read_label_png(junk)
    rgb = tmp_path / "rgb.png"
    cv2.imwrite(str(rgb), np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(FormatError, match="rgb.png: .*1 channel"):
        read_label_png(rgb)
    deep = tmp_path / "deep.png"
    cv2.imwrite(str(deep), np.zeros((4, 4), dtype=np.uint16))
    with pytest.raises(FormatError, match="deep.png: .*8-bit"):
        read_label_png(deep)
