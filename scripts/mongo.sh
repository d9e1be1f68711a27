#!/usr/bin/env bash
# scripts/mongo.sh start|stop|status
#
# A MongoDB wire-protocol server for tests of the LUME results database:
# nx-27017 (PyPI, SQLite-backed; a test extra of this project) on
# 127.0.0.1:${FLOWC_MONGO_PORT:-27017}. Under $FLOWC_DOCKER_DIR/mongo/:
# data/ (one SQLite file per logical database, wiped at each start so every
# run begins empty), mongo.pid, mongo.log.
#
#   start  pip-installs nx-27017 if `$PYTHON -c "import nx_27017"` fails,
#          starts it in the background, waits until pymongo's `ping` answers,
#          and prints `export FLOWC_TEST_MONGODB_URL=mongodb://127.0.0.1:PORT/`.
#          Idempotent.
#   stop   stops it by PID.
# PYTHON (default: python3) is the interpreter that has nx-27017 and pymongo.
set -euo pipefail
# shellcheck source=scripts/_common.sh
. "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

PYTHON="${PYTHON:-python3}"
PORT="${FLOWC_MONGO_PORT:-27017}"
URL="mongodb://127.0.0.1:$PORT/"
DIR="$SCRATCH/mongo"
PIDFILE="$DIR/mongo.pid"
LOGFILE="$DIR/mongo.log"
NX_VERSION=0.8.1

print_env() { printf 'export FLOWC_TEST_MONGODB_URL=%s\n' "$URL"; }

ping() {
    "$PYTHON" - "$URL" <<'PY'
import sys
import pymongo

client = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=500, connectTimeoutMS=500)
try:
    client.admin.command("ping")
finally:
    client.close()
PY
}

running() { pid_is "$(read_pid "$PIDFILE")" nx_27017; }

start() {
    if running && ping >/dev/null 2>&1; then
        log "nx-27017 already running on 127.0.0.1:$PORT (pid $(read_pid "$PIDFILE"))"
        print_env
        return 0
    fi
    running && die "nx-27017 (pid $(read_pid "$PIDFILE")) runs but does not answer on $URL; run '$0 stop' first"
    local t0
    t0="$(now)"
    if ! "$PYTHON" -c 'import nx_27017, pymongo' 2>/dev/null; then
        log "pip install nx-27017==$NX_VERSION"
        "$PYTHON" -m pip install -q "nx-27017==$NX_VERSION" >&2
    fi
    if "$PYTHON" -c 'import socket, sys; s = socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))) != 0)' "$PORT"; then
        die "something else already listens on 127.0.0.1:$PORT (set FLOWC_MONGO_PORT)"
    fi
    rm -rf "$DIR/data"
    mkdir -p "$DIR/data"
    : >"$LOGFILE"
    # Run in the foreground of its own session (not its -d double fork), so
    # the PID we record is the server's. Its own --pid-file must be another
    # file: it refuses to start while that one names a live process.
    spawn "$PIDFILE" "$LOGFILE" \
        "$PYTHON" -c 'import sys; from nx_27017.nx_27017 import main; sys.argv[0] = "nx_27017"; main()' \
        --host 127.0.0.1 --port "$PORT" --data-dir "$DIR/data" \
        --log-file "$LOGFILE" --pid-file "$DIR/nx_27017.pid"
    local pid i
    pid="$(read_pid "$PIDFILE")"
    for ((i = 0; i < 150; i++)); do
        if ! proc_alive "$pid"; then
            tail -n 20 "$LOGFILE" >&2 || true
            die "nx-27017 exited during start-up (log: $LOGFILE)"
        fi
        if ping >/dev/null 2>&1; then
            log "nx-27017 up on 127.0.0.1:$PORT (pid $pid) in $(elapsed "$t0")s"
            print_env
            return 0
        fi
        sleep 0.2
    done
    tail -n 20 "$LOGFILE" >&2 || true
    die "nx-27017 did not answer on $URL within 30 s"
}

stop() {
    local pid
    pid="$(read_pid "$PIDFILE")"
    if pid_is "$pid" nx_27017; then
        stop_pid "$pid" nx_27017 10
        log "nx-27017 stopped"
    else
        log "nx-27017 not running"
    fi
    rm -f "$PIDFILE" "$DIR/nx_27017.pid"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) running && ping >/dev/null 2>&1 ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
