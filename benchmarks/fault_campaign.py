"""Fault campaign (issue 22): SIGKILL ``import``, ``segment`` and ``export``
at random moments, fill the disk under ``segment`` and ``export``, and check
that the final outputs, once the stage is run again, equal those of an
uninterrupted run byte for byte.

    .venv/bin/python benchmarks/fault_campaign.py --kills 4
    .venv/bin/python benchmarks/fault_campaign.py --kills 10 --images 24 --out benchmarks/results

Each stage runs in its own process, as a user's would: the import of a
generated DOTA tree (tiled), ``segment`` (boxfill, the semantic PNGs), and
``export_samrs``. A trial runs the stages before the one under test, starts
it, kills it with SIGKILL after a random share of its uninterrupted time,
runs it again (the import with ``resume=True``, the export with
``overwrite=True``, ``segment`` as it is: it resumes) and then the stages
after it. The outputs compared: the dataset (every sample's boxes, rotated
boxes, instance masks and semantic PNG, by file name), the tiles, and every
file of the export (timestamps blanked; the manifest left out). The disk
trials (where a tmpfs can be mounted: root) put the PNG folder, then the
export, on a nearly full 2 MB file system: the stage must fail (not exit 0),
and after space is freed the rerun must give the same outputs.

Not part of the test suite (minutes). Prints a table and writes it as
``fault_campaign.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

NAME = "samrs-fault-campaign"

#: each stage as a program: argv = [work dir, resume flag]
STAGES = {
    "import": """
import sys
from fiftyone_samrs.importing.importers import load_dota
w = sys.argv[1]
load_dota(w + "/D", name=%(name)r, version="1.0", tile=True, tile_size=256, gap=56,
          tile_dir=w + "/tiles", persistent=True, progress=False,
          **({"resume": True} if sys.argv[2] == "1" else {}))
""",
    "segment": """
import sys
import fiftyone as fo
from fiftyone_samrs.segmenting.pipeline import segment
segment(fo.load_dataset(%(name)r), backend="boxfill", seg_dir=sys.argv[1] + "/seg",
        batch_size=2, progress=False)
""",
    "export": """
import sys
import fiftyone as fo
from fiftyone_samrs import export_samrs
export_samrs(fo.load_dataset(%(name)r), sys.argv[1] + "/export", classes="SOTA",
             overwrite=sys.argv[2] == "1", progress=False)
""",
}
ORDER = ("import", "segment", "export")


def run_stage(stage: str, work: str, again: bool = False, kill_after=None):
    """Runs a stage's process; with ``kill_after`` seconds, SIGKILLs it then.

    Returns:
        ``(returncode, seconds, killed)``
    """
    code = STAGES[stage] % {"name": NAME}
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-c", code, work, "1" if again else "0"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed = False
    if kill_after is not None:
        try:
            proc.wait(kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            killed = True
    _, err = proc.communicate()
    if proc.returncode not in (0, -9) and os.environ.get("SAMRS_CAMPAIGN_VERBOSE"):
        sys.stderr.write("%s%s: %s\n" % (stage, " (again)" if again else "",
                                          err.decode().strip().splitlines()[-1:]))
    return proc.returncode, time.time() - t0, killed


def _hash(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


_STAMP = re.compile(rb"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?")


def digest(work: str) -> dict:
    """The outputs that must not depend on faults (see the module doc)."""
    import fiftyone as fo

    out = {}
    if fo.dataset_exists(NAME):
        ds = fo.load_dataset(NAME)
        fields = ["filepath", "hbb.detections", "obb.polylines"]
        has_sam = ds.has_sample_field("sam")
        for sample in ds.select_fields([f.split(".")[0] for f in fields[1:]]
                                       + (["sam", "sam_seg"] if has_sam else [])):
            key = os.path.basename(sample.filepath)
            boxes = [(d.label, [round(v, 6) for v in d.bounding_box])
                     for d in sample.hbb.detections]
            quads = [(p.label, p.points) for p in sample.obb.polylines] if sample.obb else []
            masks = []
            if has_sam and sample.sam is not None:
                masks = [(d.label, [round(v, 6) for v in d.bounding_box], _hash(
                    d.mask.tobytes()) if d.mask is not None else None) for d in
                         sample.sam.detections]
            png = None
            if has_sam and sample.sam_seg is not None:
                png = _hash(open(sample.sam_seg.mask_path, "rb").read())
            out["sample " + key] = _hash(json.dumps([boxes, quads, masks, png]).encode())
        out["samples"] = len(ds)
    for sub in ("tiles", "export"):
        folder = os.path.join(work, sub)
        for dirpath, _dirs, files in os.walk(folder):
            for f in files:
                if f.startswith("samrs_export_manifest"):
                    continue
                data = _STAMP.sub(b"T", open(os.path.join(dirpath, f), "rb").read())
                out["%s %s" % (sub, os.path.relpath(os.path.join(dirpath, f), folder))] = \
                    _hash(data)
    return out


def reset(work: str) -> None:
    import fiftyone as fo

    if fo.dataset_exists(NAME):
        fo.delete_dataset(NAME)
    for sub in ("tiles", "seg", "export"):
        path = os.path.join(work, sub)
        if os.path.ismount(path):
            subprocess.run(["umount", "-l", path], capture_output=True)
        shutil.rmtree(path, ignore_errors=True)


def kill_trial(stage: str, work: str, seconds: float, rng: random.Random) -> dict:
    reset(work)
    for s in ORDER[: ORDER.index(stage)]:
        run_stage(s, work)
    after = rng.uniform(0.1, 0.95) * seconds
    rc, _, killed = run_stage(stage, work, kill_after=after)
    rerun_rc, _, _ = run_stage(stage, work, again=True)
    for s in ORDER[ORDER.index(stage) + 1:]:
        run_stage(s, work)
    return {"killed": killed, "kill_after": after, "rerun_rc": rerun_rc}


def _mount_small(path: str) -> bool:
    os.makedirs(path, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", path],
                          capture_output=True).returncode == 0


def disk_trial(stage: str, work: str) -> dict:
    """``stage`` (segment or export) on a nearly full disk, then again with room."""
    reset(work)
    for s in ORDER[: ORDER.index(stage)]:
        run_stage(s, work)
    target = os.path.join(work, "seg" if stage == "segment" else "export")
    if not _mount_small(target):
        return {"skipped": "cannot mount a tmpfs (needs root)"}
    filler = os.path.join(target, ".filler")
    st = os.statvfs(target)
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - 8 * 1024))
    rc, _, _ = run_stage(stage, work, again=stage == "export")
    zero = [f for f in os.listdir(target) if f != ".filler"
            and os.path.isfile(os.path.join(target, f))
            and os.path.getsize(os.path.join(target, f)) == 0]
    os.remove(filler)
    subprocess.run(["mount", "-o", "remount,size=64m", target], capture_output=True)
    rerun_rc, _, _ = run_stage(stage, work, again=True)
    for s in ORDER[ORDER.index(stage) + 1:]:
        run_stage(s, work)
    return {"full_disk_rc": rc, "zero_byte_files": len(zero), "rerun_rc": rerun_rc}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=4, help="kill trials per stage")
    p.add_argument("--images", type=int, default=12, help="source images (800x600)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-disk", action="store_true", help="skip the full-disk trials")
    p.add_argument("--out", default=os.path.join(HERE, "out"), help="where the table goes")
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    # its own database (the stage processes inherit the name), dropped at the end
    os.environ["FIFTYONE_DATABASE_NAME"] = "samrs-fault-campaign-%d" % os.getpid()
    try:
        return _campaign(args)
    finally:
        import fiftyone.core.odm as foo

        foo.get_db_client().drop_database(os.environ["FIFTYONE_DATABASE_NAME"])


def _campaign(args) -> int:
    from fiftyone_samrs.testing import synthetic

    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="samrs-faults-")
    synthetic.make_dota_tree(os.path.join(work, "D"), n_images=args.images, n_objects=10,
                             seed=args.seed)
    reset(work)
    seconds = {s: run_stage(s, work)[1] for s in ORDER}
    reference = digest(work)
    rows = []
    for stage in ORDER:
        trials = []
        for _ in range(args.kills):
            trial = kill_trial(stage, work, seconds[stage], rng)
            trial["identical"] = digest(work) == reference
            trials.append(trial)
        rows.append(("kill " + stage, trials))
    if not args.no_disk:
        for stage in ("segment", "export"):
            trial = disk_trial(stage, work)
            if "skipped" not in trial:
                trial["identical"] = digest(work) == reference
            rows.append(("full disk " + stage, [trial]))
    reset(work)
    shutil.rmtree(work, ignore_errors=True)
    table = _table(rows, args, reference, seconds)
    print(table)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "fault_campaign.md"), "w") as f:
        f.write(table + "\n")
    return 0 if all(t.get("identical", True) for _, ts in rows for t in ts) else 1


def _table(rows, args, reference, seconds) -> str:
    lines = ["# Fault campaign", "",
             "%d source images (tiled), %d outputs compared; uninterrupted: %s." % (
                 args.images, len(reference),
                 ", ".join("%s %.1f s" % kv for kv in seconds.items())), "",
             "| trial | runs | killed / failed as expected | identical after the rerun | "
             "rerun rc 0 | notes |", "| --- | ---: | ---: | ---: | ---: | --- |"]
    for name, trials in rows:
        if trials and "skipped" in trials[0]:
            lines.append("| %s | 0 | - | - | - | %s |" % (name, trials[0]["skipped"]))
            continue
        if name.startswith("kill"):
            hit = sum(t["killed"] for t in trials)
            note = "kill after %s s" % ", ".join("%.1f" % t["kill_after"] for t in trials)
        else:
            hit = sum(t["full_disk_rc"] != 0 for t in trials)
            note = "full-disk rc %s, %d zero-byte files" % (
                trials[0]["full_disk_rc"], trials[0]["zero_byte_files"])
        lines.append("| %s | %d | %d | %d | %d | %s |" % (
            name, len(trials), hit, sum(t["identical"] for t in trials),
            sum(t["rerun_rc"] == 0 for t in trials), note))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
