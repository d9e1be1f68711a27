#!/usr/bin/env bash
# scripts/child-env.sh [build|clean]
#
# A second environment for child flows, apart from flowc's own: another Python
# (3.10 from pyenv when present, else the python3 on PATH), a virtualenv
# WITHOUT the system site-packages, holding only prefect 1.4.1 (with the two
# pins it needs) and flowc's runtime. tests/test_run_interpreter.py points
# `[tool.flowc] python` at it and checks that every child runs there.
#
#   build  (default) creates the environment unless a complete one is cached,
#          (re)installs flowc from this checkout when its runtime changed, and
#          prints `export FLOWC_CHILD_PYTHON=...`. Idempotent; concurrent calls
#          wait for each other (flock).
#   clean  removes the cached environments.
#
# Cache: $FLOWC_CHILD_ENV_DIR (default /var/tmp/flowc-child-env)/<python version>;
# a cold build takes ~1 min (PyPI), a warm call well under a second.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
# shellcheck source=scripts/_common.sh
. "$HERE/_common.sh"

CACHE="${FLOWC_CHILD_ENV_DIR:-/var/tmp/flowc-child-env}"
PYTHON="${PYTHON:-python3}"  # runs flowc itself
REQUIREMENTS=("prefect==1.4.1" "marshmallow<4" "pendulum<3")

find_python() {
    local root candidate
    if [ -n "${FLOWC_CHILD_BASE_PYTHON:-}" ]; then
        printf '%s\n' "$FLOWC_CHILD_BASE_PYTHON"
        return 0
    fi
    for root in "$(pyenv root 2>/dev/null || true)" "$HOME/.pyenv" /root/.pyenv; do
        [ -n "$root" ] || continue
        for candidate in "$root/versions/3.10.13/bin/python" "$root"/versions/3.10.*/bin/python; do
            [ -x "$candidate" ] && { printf '%s\n' "$candidate"; return 0; }
        done
    done
    command -v python3 || die "no python3"
}

build() {
    local base version dir
    base="$(find_python)"
    version="$("$base" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
    dir="$CACHE/py$version"
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    flock 9
    if [ ! -f "$dir/complete" ]; then
        log "building $dir from $base"
        rm -rf "$dir"
        "$base" -m venv "$dir/venv"
        "$dir/venv/bin/python" -m pip install -q --disable-pip-version-check "${REQUIREMENTS[@]}" >&2 \
            || { rm -rf "$dir"; die "pip install ${REQUIREMENTS[*]} failed"; }
        touch "$dir/complete"
    fi
    # The documented way: flowc's runtime alone (prefect + the standard library), skipped when
    # the installed one is the same.
    (cd "$ROOT" && "$PYTHON" -m compiler runtime install --python "$dir/venv/bin/python" >&2) \
        || die "flowc runtime install --python $dir/venv/bin/python failed"
    printf 'export FLOWC_CHILD_PYTHON=%q\n' "$dir/venv/bin/python"
}

case "${1:-build}" in
    build) build ;;
    clean) rm -rf "$CACHE" ;;
    *) die "usage: $0 [build|clean]" ;;
esac
