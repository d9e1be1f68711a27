#!/usr/bin/env bash
# scripts/registry.sh start|stop|status
#
# A private Docker registry (Debian's `docker-registry`, distribution 2.8) on
# 127.0.0.1:${FLOWC_REGISTRY_PORT:-5000}, for integration tests that push and
# pull images. Registries on 127.0.0.0/8 count as insecure by default, so the
# engine pushes to it over plain HTTP without extra daemon settings.
# Under $FLOWC_DOCKER_DIR/registry/: config.yml, data/ (storage, kept across
# runs), registry.pid, registry.log.
#
#   start  apt-installs docker-registry if missing, writes the config, starts
#          it in the background and waits until GET /v2/ answers. Idempotent.
#          Prints `export FLOWC_TEST_REGISTRY=127.0.0.1:PORT`.
#   stop   stops it by PID.
set -euo pipefail
# shellcheck source=scripts/_common.sh
. "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

PORT="${FLOWC_REGISTRY_PORT:-5000}"
ADDR="127.0.0.1:$PORT"
DIR="$SCRATCH/registry"
PIDFILE="$DIR/registry.pid"
LOGFILE="$DIR/registry.log"
CONFIG="$DIR/config.yml"
BIN=/usr/bin/docker-registry

print_env() { printf 'export FLOWC_TEST_REGISTRY=%s\n' "$ADDR"; }

answers() { curl -fsS -o /dev/null --max-time 2 "http://$ADDR/v2/"; }

running() { pid_is "$(read_pid "$PIDFILE")" docker-registry; }

start() {
    if running && answers; then
        log "registry already running on $ADDR (pid $(read_pid "$PIDFILE"))"
        print_env
        return 0
    fi
    running && die "registry (pid $(read_pid "$PIDFILE")) runs but does not answer on $ADDR; run '$0 stop' first"
    local t0
    t0="$(now)"
    [ -x "$BIN" ] || apt_install docker-registry
    command -v curl >/dev/null 2>&1 || apt_install curl
    if curl -s -o /dev/null --max-time 2 "http://$ADDR/"; then
        die "something else already listens on $ADDR"
    fi
    mkdir -p "$DIR/data"
    cat >"$CONFIG" <<YAML
# Written by scripts/registry.sh
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $DIR/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $ADDR
  headers:
    X-Content-Type-Options: [nosniff]
YAML
    : >"$LOGFILE"
    spawn "$PIDFILE" "$LOGFILE" "$BIN" serve "$CONFIG"
    local pid i
    pid="$(read_pid "$PIDFILE")"
    for ((i = 0; i < 300; i++)); do
        if ! proc_alive "$pid"; then
            tail -n 20 "$LOGFILE" >&2 || true
            die "docker-registry exited during start-up (log: $LOGFILE)"
        fi
        if answers 2>/dev/null; then
            log "registry up on $ADDR (pid $pid) in $(elapsed "$t0")s"
            print_env
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$LOGFILE" >&2 || true
    die "registry did not answer on http://$ADDR/v2/ within 30 s"
}

stop() {
    local pid
    pid="$(read_pid "$PIDFILE")"
    if pid_is "$pid" docker-registry; then
        stop_pid "$pid" docker-registry 10
        log "registry stopped"
    else
        log "registry not running"
    fi
    rm -f "$PIDFILE"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) running && answers ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
