#!/usr/bin/env bash
# Retakes the App screenshots of the README and docs/plugin.md.
#
# Runs the real-browser test (tests/test_browser.py: the FiftyOne App with the
# @samrs/samrs plugin in headless Chromium), which saves its screenshots in
# test-artifacts/screenshots/, then copies them into docs/img/. Needs Debian's
# chromium (apt-get install chromium chromium-driver); Playwright never
# downloads a browser.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"

if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    echo "[screenshots] chromium is not installed: apt-get install chromium chromium-driver" >&2
    exit 1
fi

rm -rf test-artifacts/screenshots
"$PY" -m pytest tests/test_browser.py -m browser -q -rs -p no:cacheprovider

shopt -s nullglob
shots=(test-artifacts/screenshots/[0-9]*.png)
if [ ${#shots[@]} -eq 0 ]; then
    echo "[screenshots] the browser test saved no screenshots (was it skipped?)" >&2
    exit 1
fi
mkdir -p docs/img
rm -f docs/img/[0-9][0-9]-*.png   # the previous set (names may have changed)
cp "${shots[@]}" docs/img/
echo "[screenshots] copied ${#shots[@]} screenshots to docs/img/"
