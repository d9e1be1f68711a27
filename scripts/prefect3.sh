#!/usr/bin/env bash
# scripts/prefect3.sh venv [3|2.14|all] | start 3|2.14 | stop 3|2.14 | status 3|2.14
#
# The Prefect 3 side of flowc (the prefect3 target), on this machine:
#   venv   builds the virtualenvs, cached across runs: $FLOWC_PREFECT3_VENV (default
#          /var/tmp/flowc-prefect3: current Prefect 3.x) and $FLOWC_PREFECT2_VENV (default
#          /var/tmp/flowc-prefect2: Prefect 2.14.2, SLAC's version, with the pins it needs here:
#          griffe<1, typer<0.10, cachetools, uvicorn<0.25); in each, flowc's runtime from this
#          checkout (pip install --no-deps -e .). Rebuilt only when the wanted version is missing.
#   start  a server on 127.0.0.1 (a free port; SQLite under $FLOWC_DOCKER_DIR/prefect-<v>/home,
#          analytics and UI off), a `process` work pool `flowc` and a worker polling every second
#          (PREFECT_WORKER_QUERY_SECONDS=1); prints `export PREFECT_API_URL=...`. The server and
#          the worker are started from Python in sessions of their own, so the worker honours
#          SIGTERM (started with `&` from a script, it would inherit an ignored SIGINT, which its
#          SIGTERM handler relies on).
#   stop   stops the worker, then the server, by their PIDs.
set -euo pipefail
# shellcheck source=scripts/_common.sh
. "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV3="${FLOWC_PREFECT3_VENV:-/var/tmp/flowc-prefect3}"
VENV2="${FLOWC_PREFECT2_VENV:-/var/tmp/flowc-prefect2}"
PREFECT3_REQUIREMENT="prefect>=3,<4"
PREFECT2_REQUIREMENTS=("prefect==2.14.2" "griffe<1" "typer<0.10" "cachetools" "uvicorn<0.25")

venv_dir() { case "$1" in 3) echo "$VENV3" ;; 2 | 2.14) echo "$VENV2" ;; *) die "unknown Prefect version $1 (3 or 2.14)" ;; esac; }
wanted_prefix() { case "$1" in 3) echo "3." ;; *) echo "2.14.2" ;; esac; }

build_venv() {
    local version="$1" dir prefix have t0
    dir="$(venv_dir "$version")"
    prefix="$(wanted_prefix "$version")"
    t0="$(now)"
    have="$("$dir/bin/python" -c 'import prefect; print(prefect.__version__)' 2>/dev/null || true)"
    if [[ "$have" != "$prefix"* ]]; then
        log "building $dir (Prefect $version; log: $dir.log)"
        rm -rf "$dir"
        "$PYTHON" -m venv "$dir"
        if [ "$version" = 3 ]; then
            "$dir/bin/pip" install -q "$PREFECT3_REQUIREMENT" >"$dir.log" 2>&1 || { tail -n 30 "$dir.log" >&2; die "pip install failed"; }
        else
            "$dir/bin/pip" install -q "${PREFECT2_REQUIREMENTS[@]}" >"$dir.log" 2>&1 || { tail -n 30 "$dir.log" >&2; die "pip install failed"; }
        fi
        have="$("$dir/bin/python" -c 'import prefect; print(prefect.__version__)')"
    fi
    # flowc's runtime (what generated flows and the example children import), from this checkout.
    "$dir/bin/pip" install -q --no-deps -e "$ROOT" >>"$dir.log" 2>&1 || { tail -n 30 "$dir.log" >&2; die "installing flowc into $dir failed"; }
    log "$dir: Prefect $have, flowc from $ROOT ($(elapsed "$t0")s)"
}

state_dir() { echo "$SCRATCH/prefect-$1"; }

# launch PIDFILE LOGFILE ENVFILE CMD...: CMD in a session of its own, from Python.
launch() {
    "$PYTHON" - "$@" <<'PY'
import os, subprocess, sys
pidfile, logfile, envfile, *command = sys.argv[1:]
env = dict(os.environ)
with open(envfile) as handle:
    env.update(line.rstrip("\n").split("=", 1) for line in handle if "=" in line)
with open(logfile, "ab") as log:
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
with open(pidfile, "w") as handle:
    handle.write(str(process.pid))
PY
}

start() {
    local version="$1" dir state port url t0 i
    dir="$(venv_dir "$version")"
    state="$(state_dir "$version")"
    [ -x "$dir/bin/prefect" ] || die "no $dir/bin/prefect; run: scripts/prefect3.sh venv $version"
    if pid_is "$(read_pid "$state/server.pid")" "prefect"; then
        log "Prefect $version server already running"
        cat "$state/api_url"
        return 0
    fi
    t0="$(now)"
    rm -rf "$state"
    mkdir -p "$state/home"
    port="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    url="http://127.0.0.1:$port/api"
    cat >"$state/env" <<EOF
PREFECT_HOME=$state/home
PREFECT_API_URL=$url
PREFECT_API_DATABASE_CONNECTION_URL=sqlite+aiosqlite:///$state/home/prefect.db
PREFECT_SERVER_ANALYTICS_ENABLED=false
PREFECT_UI_ENABLED=false
PREFECT_WORKER_QUERY_SECONDS=1
PREFECT_LOGGING_LEVEL=WARNING
FLOWC_RESULTS_DB=sqlite:///$state/results.db
EOF
    launch "$state/server.pid" "$state/server.log" "$state/env" "$dir/bin/prefect" server start --host 127.0.0.1 --port "$port"
    for ((i = 0; i < 600; i++)); do
        "$PYTHON" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1] + '/health', timeout=2)" "$url" 2>/dev/null && break
        proc_alive "$(read_pid "$state/server.pid")" || { tail -n 30 "$state/server.log" >&2; die "the Prefect $version server exited"; }
        sleep 0.5
    done
    (set -a; . "$state/env"; "$dir/bin/prefect" work-pool create flowc --type process >>"$state/server.log" 2>&1) || die "cannot create the work pool"
    launch "$state/worker.pid" "$state/worker.log" "$state/env" "$dir/bin/prefect" worker start --pool flowc
    echo "export PREFECT_API_URL=$url" >"$state/api_url"
    log "Prefect $version: server, pool flowc and worker up at $url ($(elapsed "$t0")s)"
    cat "$state/api_url"
}

stop() {
    local state
    state="$(state_dir "$1")"
    stop_pid "$(read_pid "$state/worker.pid")" "prefect" 30
    stop_pid "$(read_pid "$state/server.pid")" "prefect" 30
    rm -f "$state/worker.pid" "$state/server.pid"
}

status() {
    local state
    state="$(state_dir "$1")"
    pid_is "$(read_pid "$state/server.pid")" "prefect" && pid_is "$(read_pid "$state/worker.pid")" "prefect"
}

case "${1:-}" in
    venv)
        case "${2:-all}" in
            all)
                # Both at once: pip mostly waits for the network.
                build_venv 3 &
                first=$!
                build_venv 2.14 &
                second=$!
                wait "$first" || die "the Prefect 3 virtualenv failed"
                wait "$second" || die "the Prefect 2.14 virtualenv failed"
                ;;
            *) build_venv "$2" ;;
        esac
        printf 'export FLOWC_PREFECT3_VENV=%s FLOWC_PREFECT2_VENV=%s\n' "$VENV3" "$VENV2"
        ;;
    start) start "${2:?start 3|2.14}" ;;
    stop) stop "${2:?stop 3|2.14}" ;;
    status) status "${2:?status 3|2.14}" ;;
    *) die "usage: $0 venv [3|2.14|all] | start 3|2.14 | stop 3|2.14 | status 3|2.14" ;;
esac
