"""benchmarks/gpu_check.py runs here in its CPU quick mode, without FiftyOne, MongoDB or OpenCV."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.py")
#: what the GPU machine does not have (or the check must not need)
BLOCKED = ("fiftyone", "pymongo", "mongoengine", "motor", "cv2", "pycocotools", "shapely")


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_mode_on_the_cpu_without_fiftyone(tmp_path):
    out = tmp_path / "gpu_check.md"
    argv = ["--device", "cpu", "--quick", "--attention-blocks", "tiny", "--images", "2",
            "--boxes", "4", "--batch", "1", "--threads", "1", "--out", str(out)]
    code = ("import sys, runpy\n"
            "for m in %r: sys.modules[m] = None  # importing them now fails\n"
            "sys.argv = [%r] + %r\n"
            "runpy.run_path(%r, run_name='__main__')\n" % (BLOCKED, SCRIPT, argv, SCRIPT))
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=900, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text()
    assert text in proc.stdout  # the same table on stdout
    assert "| FiftyOne imported | False |" in text
    for kind in ("windowed", "global"):
        assert "| tiny %s (dim 32, 2 heads) |" % kind in text
    assert text.count("| yes |") >= 3  # both attention blocks allclose, decoder exact
    assert "| exact (IoU >= 0.999, scores to 1e-4) | yes |" in text
    for mode in ("fp32", "bf16", "bf16+fused"):
        assert "\n| %s |" % mode in text
    assert "Engine end to end, tiny: 2 images x 4 boxes" in text
    assert "Masks with and without overlap identical: yes." in text
    assert "FAILED" not in text and "NO |" not in text
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    assert data["Environment"]["columns"] == ["what", "value"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")
def test_cuda_requested_without_a_gpu_says_so(capsys):
    assert _load().main(["--device", "cuda"]) == 2
    assert "CUDA requested but not available" in capsys.readouterr().err


def test_the_documented_run_command_is_in_the_docstring_and_readme():
    doc = _load().__doc__
    cmd = ("python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade "
           "--target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit; "
           "PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --out $OUT/gpu_check.md")
    assert cmd in doc
    with open(os.path.join(ROOT, "benchmarks", "README.md")) as f:
        readme = f.read()
    assert cmd in readme and 'carry=[".whl"]' in readme and "timeout_s=420" in readme
    assert len(cmd) < 2000  # the device tool's limit on a command
