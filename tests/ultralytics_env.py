"""Runs ultralytics offline in a child process (never in the test process:
importing it patches PIL and OpenCV for the whole process, and it looks up
hosts and fetches fonts unless told not to)."""

import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = Path(__file__).with_name("yolo_reader_child.py")


def offline_env(home: Path) -> dict:
    """Environment with ultralytics' settings, caches and fonts under ``home``."""
    config = home / "yolo"
    (config / "Ultralytics").mkdir(parents=True, exist_ok=True)
    for font in ("Arial.ttf", "Arial.Unicode.ttf"):  # check_font() finds these, fetches nothing
        (config / "Ultralytics" / font).write_bytes(b"")
    return dict(
        os.environ,
        HOME=str(home),
        TMPDIR=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        MPLCONFIGDIR=str(home / "mpl"),
        TORCH_HOME=str(home / "torch"),
        YOLO_CONFIG_DIR=str(config),
        YOLO_OFFLINE="1",
        YOLO_AUTOINSTALL="false",
        YOLO_VERBOSE="false",
    )


def run_child(tmp: Path, *args: str) -> dict:
    """``yolo_reader_child.py ARGS`` offline in ``tmp``; its JSON result."""
    home = tmp / "home"
    env = offline_env(home)
    proc = subprocess.run([sys.executable, str(CHILD), *args], cwd=str(home), env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
