"""Reads a YOLO segmentation dataset with ultralytics' own code (a test helper).

Run by ``tests/test_yolo_labels.py`` in a child process, so that ultralytics
is imported with its settings, config and caches in the test's temporary
folder and never in the test process::

    python tests/yolo_reader_child.py request.json
    python tests/yolo_reader_child.py --snippet snippet.py

(``tests/ultralytics_env.run_child`` sets up the environment.)

The request names ``data_yaml``, ``imgsz``, ``out`` (a folder) and
``merge_cases`` (lists of ``(k, 2)`` outlines). The child refuses every
network connection (and records the attempts), loads the ``data.yaml`` with
``check_det_dataset`` and each split with ``build_yolo_dataset`` (what the
trainer and the validator call, here in validation mode: no augmentation),
and writes ``result.json`` (the parsed data, the labels as ultralytics read
them) and ``masks.npz`` (the instance masks of ``dataset[i]``, what the loss
sees) in ``out``.
"""

import json
import socket
import sys

ATTEMPTS = []


def _refuse(*args, **kwargs):
    ATTEMPTS.append(repr(args[1:3]))
    raise OSError("network access is disabled in this test")


socket.socket.connect = _refuse
socket.getaddrinfo = _refuse
socket.create_connection = _refuse


def main(request_path):
    import numpy as np
    from ultralytics.cfg import get_cfg
    from ultralytics.data.build import build_yolo_dataset
    from ultralytics.data.converter import merge_multi_segment
    from ultralytics.data.utils import check_det_dataset

    with open(request_path) as f:
        request = json.load(f)
    data = check_det_dataset(request["data_yaml"])
    cfg = get_cfg(
        overrides=dict(task="segment", imgsz=request["imgsz"], mask_ratio=1, overlap_mask=False)
    )
    result = {
        "data": {k: (v if k == "names" else str(v)) for k, v in data.items()},
        "splits": {},
    }
    masks = {}
    for split in ("train", "val", "test"):
        if not data.get(split):
            continue
        dataset = build_yolo_dataset(cfg, data[split], 1, data, mode="val")
        images = []
        for i, label in enumerate(dataset.labels):
            item = dataset[i]
            masks["%s_%d" % (split, i)] = item["masks"].numpy().astype(np.uint8)
            images.append(
                {
                    "im_file": label["im_file"],
                    "shape": list(label["shape"]),
                    "cls": label["cls"].ravel().astype(int).tolist(),
                    "bboxes": label["bboxes"].tolist(),
                    "segments": [s.tolist() for s in label["segments"]],
                    "item_cls": item["cls"].ravel().int().tolist(),
                    "ratio_pad": item["ratio_pad"],
                }
            )
        result["splits"][split] = images
    result["merged"] = [
        np.concatenate(merge_multi_segment([np.asarray(p) for p in parts])).tolist()
        for parts in request["merge_cases"]
    ]
    result["attempts"] = ATTEMPTS
    out = request["out"]
    np.savez_compressed(out + "/masks.npz", **masks)
    with open(out + "/result.json", "w") as f:
        json.dump(result, f)
    print(json.dumps({"out": out}))


def run_snippet(path):
    """Runs a docs snippet that builds ``yolo_data`` and ``yolo_train``;
    prints what ultralytics read, as JSON."""
    ns = {}
    with open(path) as f:
        exec(compile(f.read(), path, "exec"), ns)
    labels = ns["yolo_train"].labels
    print(json.dumps({"images": len(labels), "instances": sum(len(lb["cls"]) for lb in labels),
                      "segments": sum(len(lb["segments"]) for lb in labels),
                      "names": {str(k): v for k, v in ns["yolo_data"]["names"].items()},
                      "attempts": ATTEMPTS}))


if __name__ == "__main__":
    if sys.argv[1] == "--snippet":
        run_snippet(sys.argv[2])
    else:
        main(sys.argv[1])
