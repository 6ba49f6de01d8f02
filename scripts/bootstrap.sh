#!/usr/bin/env bash
# Build or refresh the project's virtual environment (.venv by default).
#
# - installs the package in editable mode with its test extras, using the
#   versions in constraints.txt (torch 2.14.1 comes from local disk here);
# - makes sure FiftyOne's embedded MongoDB has a `mongod` (see README,
#   "The embedded database");
# - links the App plugin into FiftyOne's plugins dir (`samrs plugin install`),
#   so that the App has the SAMRS operators and `samrs doctor` passes;
# - does nothing when pyproject.toml and constraints.txt have not changed
#   since the last successful run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${SAMRS_VENV:-.venv}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "[bootstrap] creating $VENV"
    "$PY" -m venv "$VENV"
fi

stamp="$VENV/.samrs-stamp"
want="$(cat pyproject.toml constraints.txt scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

echo "[bootstrap] installing fiftyone-samrs and its dependencies into $VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# the optional backends too, so that their exactness tests run (sam2 without its CUDA extension)
SAM2_BUILD_CUDA=0 "$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".[test,sam2,sam_hq]"
# ultralytics, for the tests that load a YOLO-seg export with its own dataset class: without
# its opencv-python (two OpenCV wheels would fight over cv2; the headless one stays)
"$VENV/bin/python" -m pip install --quiet -c constraints.txt --no-deps ultralytics
"$VENV/bin/python" -m pip install --quiet -c constraints.txt ultralytics-thop \
    ultralytics-platform polars nvidia-ml-py psutil requests pyyaml
"$VENV/bin/python" -m fiftyone_samrs.tools.db ensure-mongod
"$VENV/bin/samrs" plugin install \
    || echo "[bootstrap] warning: the App plugin is not installed (see the error above); \
\`samrs demo\` tries again, \`samrs plugin status\` says what is wrong" >&2
echo "$want" > "$stamp"
echo "[bootstrap] ready"
