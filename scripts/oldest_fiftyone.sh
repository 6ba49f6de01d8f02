#!/usr/bin/env bash
# Builds .venv-oldest: the project's environment with the OLDEST FiftyOne the
# package supports (the lower bound in pyproject.toml), for `make test-oldest`.
#
# It is a venv that sees the packages of .venv (torch and the rest are not
# installed twice) but has its own FiftyOne at the lower bound, then this
# package installed into it with pip: pip must keep that FiftyOne (the check
# at the end), as it does in a user's environment.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE="${SAMRS_VENV:-.venv}"
OLD="${SAMRS_OLDEST_VENV:-.venv-oldest}"
oldest="$(sed -n 's/.*"fiftyone>=\([0-9.]*\),.*/\1/p' pyproject.toml | head -1)"
[ -n "$oldest" ] || { echo "[oldest] no fiftyone>=X lower bound in pyproject.toml" >&2; exit 1; }

stamp="$OLD/.samrs-stamp"
want="$oldest $(cat pyproject.toml scripts/oldest_fiftyone.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
echo "[oldest] building $OLD with fiftyone==$oldest beside $BASE"
rm -rf "$OLD"
"$BASE/bin/python" -m venv --without-pip "$OLD"
site_of() { "$1" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])"; }
base_site="$(cd "$(site_of "$BASE/bin/python")" && pwd -P)"
echo "import site; site.addsitedir('$base_site')" > "$(site_of "$OLD/bin/python")/zz_samrs_base.pth"
pip_install() {
    "$OLD/bin/python" -m pip install --disable-pip-version-check "$@" >>"$OLD/pip.log" 2>&1 \
        || { tail -20 "$OLD/pip.log" >&2; exit 1; }
}
pip_install "fiftyone==$oldest"
pip_install --no-build-isolation -e .
got="$("$OLD/bin/python" -c "import fiftyone; print(fiftyone.__version__)")"
if [ "$got" != "$oldest" ]; then
    echo "[oldest] installing fiftyone-samrs changed FiftyOne $oldest to $got" >&2
    exit 1
fi
echo "$want" > "$stamp"
echo "[oldest] ready: fiftyone $got"
