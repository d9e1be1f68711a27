#!/usr/bin/env bash
# scripts/lume-env.sh [build|clean]
#
# The Python 3.9 environment LUME-services' own flows run in, for the LUME
# integration tier (tests/test_lume_services.py): LUME-services at the commit
# flowc follows (the tarball in ../shared/reference/), its requirements.txt
# plus three adjustments that edit nothing of LUME's (marshmallow<4: Prefect
# 1.4.1's flow.serialize() fails with 4.x; pendulum<3; lume-model==1.7.1,
# imported by lume_services/tasks/configure.py but missing from
# requirements.txt), `pip install -e` of the tree and of its test flows
# (lume_services/tests/flows), and flowc's runtime, installed the documented
# way: `flowc runtime install --python ENV/bin/python`.
#
#   build  (default) builds the environment unless a complete one is cached,
#          (re)installs flowc's runtime from this checkout (skipped when the
#          installed one is the same), and prints
#          `export FLOWC_LUME_PYTHON=...` and `export FLOWC_LUME_SRC=...`.
#          Idempotent; concurrent calls wait for each other (flock).
#   clean  removes the cached environments.
#
# Cache: $FLOWC_LUME_DIR (default /var/tmp/flowc-lume)/<key>/{src,venv}, the
# key a digest of the tarball, the interpreter's version and this script's
# requirement adjustments; a cold build takes ~40-60 s on 2 cores, a warm
# call ~2 s.
#
# Python 3.9: $FLOWC_LUME_PYTHON39 if set, else $(pyenv root)/versions/3.9.18
# (pyenv and 3.9.18 come with this project's machines), else any
# $(pyenv root)/versions/3.9.*, else python3.9 on PATH. Elsewhere: install it
# (`pyenv install 3.9.18`, or your distribution's python3.9 with venv) and
# point FLOWC_LUME_PYTHON39 at it.
# The tarball: $FLOWC_LUME_TARBALL, else shared/reference/ beside (or one
# above) the checkout. PYTHON (default python3) runs flowc itself.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
# shellcheck source=scripts/_common.sh
. "$HERE/_common.sh"

PYTHON="${PYTHON:-python3}"
CACHE="${FLOWC_LUME_DIR:-/var/tmp/flowc-lume}"
TARBALL_NAME=lume-services-8adfccc.tar.gz
# The adjustments to LUME's requirements.txt (see the header); part of the cache key.
ADJUSTMENTS=("marshmallow<4" "pendulum<3" "lume-model==1.7.1")

find_python39() {
    local candidate root
    if [ -n "${FLOWC_LUME_PYTHON39:-}" ]; then
        printf '%s\n' "$FLOWC_LUME_PYTHON39"
        return 0
    fi
    if command -v pyenv >/dev/null 2>&1 && root="$(pyenv root 2>/dev/null)"; then
        for candidate in "$root/versions/3.9.18/bin/python" "$root"/versions/3.9.*/bin/python; do
            [ -x "$candidate" ] && { printf '%s\n' "$candidate"; return 0; }
        done
    fi
    for candidate in "$HOME/.pyenv/versions/3.9.18/bin/python" /root/.pyenv/versions/3.9.18/bin/python; do
        [ -x "$candidate" ] && { printf '%s\n' "$candidate"; return 0; }
    done
    if command -v python3.9 >/dev/null 2>&1; then
        command -v python3.9
        return 0
    fi
    die "no Python 3.9: install one (pyenv install 3.9.18, or python3.9 with venv) and set FLOWC_LUME_PYTHON39"
}

find_tarball() {
    local candidate
    if [ -n "${FLOWC_LUME_TARBALL:-}" ]; then
        [ -f "$FLOWC_LUME_TARBALL" ] || die "FLOWC_LUME_TARBALL=$FLOWC_LUME_TARBALL: no such file"
        printf '%s\n' "$FLOWC_LUME_TARBALL"
        return 0
    fi
    for candidate in "$ROOT/../shared/reference/$TARBALL_NAME" "$ROOT/../../shared/reference/$TARBALL_NAME"; do
        [ -f "$candidate" ] && { printf '%s\n' "$(cd "$(dirname "$candidate")" && pwd)/$TARBALL_NAME"; return 0; }
    done
    die "$TARBALL_NAME not found in shared/reference/ beside the checkout; set FLOWC_LUME_TARBALL"
}

# build_env DIR PY39 TARBALL: a complete environment in DIR, or nothing (a failed build is removed).
build_env() {
    local dir="$1" py39="$2" tarball="$3" t0
    t0="$(now)"
    rm -rf "$dir/src" "$dir/venv" "$dir/.complete"
    mkdir -p "$dir/src"
    log "building the LUME-services environment in $dir (log: $dir/build.log)"
    : >"$dir/build.log"
    if ! (
        set -e
        tar -xzf "$tarball" -C "$dir/src"
        "$py39" -m venv "$dir/venv"
        pip=("$dir/venv/bin/python" -m pip --disable-pip-version-check)
        "${pip[@]}" install -q -r "$dir/src/requirements.txt" "${ADJUSTMENTS[@]}"
        "${pip[@]}" install -q -e "$dir/src"
        "${pip[@]}" install -q -e "$dir/src/lume_services/tests/flows"
        "${pip[@]}" check
        "$dir/venv/bin/python" -c 'import lume_services.tasks, lume_services_test_flows.flow1, prefect; assert prefect.__version__ == "1.4.1", prefect.__version__'
    ) >>"$dir/build.log" 2>&1; then
        tail -n 30 "$dir/build.log" >&2 || true
        rm -rf "$dir/src" "$dir/venv"
        die "building the LUME-services environment failed (log: $dir/build.log)"
    fi
    touch "$dir/.complete"
    log "LUME-services environment built in $(elapsed "$t0")s"
}

build() {
    local py39 tarball version key dir
    py39="$(find_python39)"
    version="$("$py39" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')" ||
        die "$py39 does not run"
    case "$version" in 3.9.*) ;; *) die "$py39 is Python $version, not 3.9" ;; esac
    tarball="$(find_tarball)"
    key="$({
        sha256sum "$tarball" | cut -d' ' -f1
        printf '%s\n' "$version" "$py39" "${ADJUSTMENTS[@]}"
    } | sha256sum | cut -c1-12)"
    dir="$CACHE/$key"
    mkdir -p "$dir"
    exec 9>"$dir/.lock"
    flock 9
    if [ -f "$dir/.complete" ] && [ -x "$dir/venv/bin/python" ]; then
        log "LUME-services environment cached in $dir"
    else
        build_env "$dir" "$py39" "$tarball"
    fi
    # flowc's runtime, from this checkout; a no-op when the installed one is identical.
    (cd "$ROOT" && "$PYTHON" -m compiler runtime install --python "$dir/venv/bin/python") >&2 ||
        die "flowc runtime install --python $dir/venv/bin/python failed"
    flock -u 9
    printf 'export FLOWC_LUME_PYTHON=%s\n' "$dir/venv/bin/python"
    printf 'export FLOWC_LUME_SRC=%s\n' "$dir/src"
}

case "${1:-build}" in
    build) build ;;
    clean)
        log "removing $CACHE"
        rm -rf "$CACHE"
        ;;
    *)
        echo "usage: $0 [build|clean]" >&2
        exit 2
        ;;
esac
