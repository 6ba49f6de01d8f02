"""Clear errors instead of wrong values or raw tracebacks (issue 22, items 12, 14, 15)."""

import os
import shutil

import cv2
import numpy as np
import pytest
from test_exporters import make_segmented

from fiftyone_samrs.core.records import FormatError


@pytest.fixture
def exported(fo_dataset, tmp_path):
    from fiftyone_samrs import export_samrs

    make_segmented(fo_dataset, str(tmp_path / "src"))
    out = str(tmp_path / "SOTA")
    export_samrs(fo_dataset, out, classes="SOTA", progress=False)
    return out, tmp_path


def _gray(out):
    return sorted(os.listdir(os.path.join(out, "gray")))[0]


def test_load_samrs_refuses_links_out_of_the_export(exported):
    from fiftyone_samrs import load_samrs

    out, tmp = exported
    name = _gray(out)
    outside = tmp / "elsewhere.png"
    shutil.move(os.path.join(out, "gray", name), outside)
    os.symlink(outside, os.path.join(out, "gray", name))
    with pytest.raises(FormatError, match="leads out of the export folder") as err:
        load_samrs(out, persistent=False, progress=False)
    assert os.path.join(out, "gray", name) in str(err.value)
    back = load_samrs(out, persistent=False, progress=False, allow_outside=True)
    back.delete()
    image = sorted(os.listdir(os.path.join(out, "images")))[0]
    os.remove(os.path.join(out, "gray", name))
    shutil.copy(outside, os.path.join(out, "gray", name))
    shutil.move(os.path.join(out, "images", image), tmp / image)
    os.symlink(tmp / image, os.path.join(out, "images", image))
    with pytest.raises(FormatError, match="leads out of the export folder"):
        load_samrs(out, persistent=False, progress=False)


@pytest.mark.parametrize("damage", ["cut", "rgb", "size"])
def test_load_samrs_checks_the_gray_png_headers(exported, damage):
    from fiftyone_samrs import load_samrs

    out, _ = exported
    path = os.path.join(out, "gray", _gray(out))
    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if damage == "cut":
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
    elif damage == "rgb":
        cv2.imwrite(path, np.dstack([label] * 3))
    else:
        cv2.imwrite(path, label[:-1])
    with pytest.raises(FormatError, match={"cut": "not a whole PNG", "rgb": "not an 8-bit gray",
                                           "size": "the image is"}[damage]) as err:
        load_samrs(out, persistent=False, progress=False)
    assert path in str(err.value)


def test_exporting_a_rotated_box_field_names_its_type(fo_dataset, tmp_path):
    """``--label-field obb`` said "classes not in the class list: None"."""
    from fiftyone_samrs import export_samrs
    from fiftyone_samrs.importing.importers import load_dota
    from fiftyone_samrs.testing import synthetic

    gt = synthetic.make_dota_tree(tmp_path / "D", n_images=1, n_objects=2, size=(120, 90))
    ds = load_dota(gt["root"], name=fo_dataset.name + "-obb", version="1.0", progress=False,
                   persistent=False)
    try:
        with pytest.raises(ValueError, match="'obb' .*holds Polylines, expected Detections"):
            export_samrs(ds, str(tmp_path / "out"), label_field="obb", classes="SOTA",
                         progress=False)
        assert not os.path.exists(tmp_path / "out")  # refused before anything is written
    finally:
        ds.delete()


def test_doctor_says_where_the_database_is():
    import fiftyone as fo

    from fiftyone_samrs.tools.commands.doctor import run_checks

    row = next(r for r in run_checks() if r[0] == "database")
    assert row[1], row
    assert " at " in row[2] and ":" in row[2].split(" at ")[1]
    if not fo.config.database_uri:
        assert "data in /" in row[2]


def test_one_line_errors_name_the_path():
    import errno

    from fiftyone_samrs.tools.cli import one_line_error

    e = OSError(errno.ENOSPC, "No space left on device", "/data/tiles/P0001.png")
    assert one_line_error(e) == ("[Errno 28] No space left on device: "
                                 "'/data/tiles/P0001.png' (is the disk full?)")
    bare = OSError(errno.EISDIR, "Is a directory")
    assert one_line_error(bare) == "[Errno 21] Is a directory"
    assert one_line_error(NotADirectoryError(errno.ENOTDIR, "Not a directory",
                                             "/x/plots.txt")).count("/x/plots.txt") == 1
    assert one_line_error(ValueError("x")) is None  # not ours to shorten: a bug's traceback


def test_load_samrs_streams_grouped_annotations_and_reads_others_whole(exported):
    """Issue 23, item 3: ``load_samrs`` read the whole JSON (1.55 KB per
    instance); it now streams it, annotations beside their images when they
    come grouped (this package's exports), and reads a JSON whose
    annotations are shuffled whole, with the same result."""
    import json

    from fiftyone_samrs import load_samrs
    from fiftyone_samrs.exporting.samrs_import import SAMRSDatasetImporter

    out, _ = exported
    importer = SAMRSDatasetImporter(out)
    importer.setup()
    assert importer._grouped and not hasattr(importer, "_anns")

    def summary(ds):
        return sorted((os.path.basename(s.filepath), sorted(
            (d.label, [round(v, 6) for v in d.bounding_box], int(d.mask.sum()))
            for d in s.sam.detections)) for s in ds)

    first = load_samrs(out, persistent=False, progress=False)
    path = os.path.join(out, "annotations.json")
    data = json.load(open(path))
    data["annotations"] = data["annotations"][::-1]
    json.dump(data, open(path, "w"))
    importer = SAMRSDatasetImporter(out)
    importer.setup()
    assert not importer._grouped
    second = load_samrs(out, persistent=False, progress=False)
    try:
        assert summary(first) == summary(second) and len(first) > 0
        assert sum(len(s[1]) for s in summary(first)) > 0
    finally:
        first.delete()
        second.delete()
