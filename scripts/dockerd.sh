#!/usr/bin/env bash
# scripts/dockerd.sh start|stop|env|status
#
# A private Docker engine for CI and integration tests, on machines without
# systemd. Everything lives under FLOWC_DOCKER_DIR (default
# /var/tmp/flowc-docker), which persists across runs so the image cache (the
# data root) survives:
#   data/          --data-root (images, build cache)
#   exec/          --exec-root (runtime state, containerd sockets)
#   docker.sock    the API socket (the only thing the engine listens on)
#   dockerd.pid    --pidfile
#   dockerd.log
#
#   start  installs docker.io with apt if dockerd is missing, turns on IPv4
#          forwarding (before dockerd does it itself and leaves the iptables
#          FORWARD policy at DROP), starts dockerd in the background, waits
#          for `docker info` and prints `export DOCKER_HOST=unix://...`.
#          Idempotent: if our dockerd is already up it just prints that line.
#   stop   kills running containers, stops dockerd by PID (waiting on
#          /proc/PID/stat, not `kill -0`), then removes the DOCKER* iptables
#          chains and rules, the docker0 bridge and any mount left under the
#          scratch directory, and restores ip_forward if start changed it.
#   env    prints the export line only.
#   status exit 0 if our dockerd answers.
set -euo pipefail
# shellcheck source=scripts/_common.sh
. "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

SOCK="$SCRATCH/docker.sock"
PIDFILE="$SCRATCH/dockerd.pid"
LOGFILE="$SCRATCH/dockerd.log"
DOCKER_HOST_URL="unix://$SOCK"

print_env() { printf 'export DOCKER_HOST=%s\n' "$DOCKER_HOST_URL"; }

# The docker CLI: any version talks to Debian's 20.10 engine (API 1.41).
docker_cli() { DOCKER_HOST="$DOCKER_HOST_URL" docker "$@"; }

engine_up() {
    pid_is "$(read_pid "$PIDFILE")" dockerd && [ -S "$SOCK" ] && docker_cli info >/dev/null 2>&1
}

start() {
    if engine_up; then
        log "dockerd already running (pid $(read_pid "$PIDFILE"))"
        print_env
        return 0
    fi
    need_root
    local t0
    t0="$(now)"
    command -v dockerd >/dev/null 2>&1 || apt_install docker.io
    command -v docker >/dev/null 2>&1 || apt_install docker.io
    # unix socket paths are limited to 107 bytes; containerd's live under exec/.
    [ "${#SCRATCH}" -le 60 ] || die "FLOWC_DOCKER_DIR is too long for unix sockets: $SCRATCH"
    mkdir -p "$SCRATCH/data" "$SCRATCH/exec"

    # A dead dockerd from an earlier run: clean what it left first.
    local old
    old="$(read_pid "$PIDFILE")"
    if [ -n "$old" ] && ! pid_is "$old" dockerd; then
        rm -f "$PIDFILE"
    elif [ -n "$old" ]; then
        die "dockerd (pid $old) is running but does not answer on $SOCK; run '$0 stop' first"
    fi
    # A containerd that outlived a killed dockerd would hold the sockets under
    # exec/. And a dead one's PID file must go: dockerd checks it with kill -0,
    # which a killed but not yet reaped process passes, and then waits for it.
    stop_pid "$(read_pid "$SCRATCH/exec/containerd/containerd.pid")" containerd 10
    rm -f "$SCRATCH/exec/containerd/containerd.pid"
    cleanup_host
    rm -f "$SOCK"

    if [ "$(cat /proc/sys/net/ipv4/ip_forward)" != 1 ]; then
        echo 0 >"$SCRATCH/ip_forward.orig"
        sysctl -q -w net.ipv4.ip_forward=1
    fi

    log "starting dockerd (data root $SCRATCH/data)"
    : >"$LOGFILE"
    # --ip: ports that containers publish bind to loopback unless told otherwise.
    spawn "$SCRATCH/dockerd.spawn.pid" "$LOGFILE" \
        dockerd \
        --data-root "$SCRATCH/data" \
        --exec-root "$SCRATCH/exec" \
        --pidfile "$PIDFILE" \
        -H "$DOCKER_HOST_URL" \
        --ip 127.0.0.1
    local pid
    pid="$(read_pid "$SCRATCH/dockerd.spawn.pid")"
    rm -f "$SCRATCH/dockerd.spawn.pid"
    local i
    for ((i = 0; i < 600; i++)); do
        if ! proc_alive "$pid"; then
            tail -n 30 "$LOGFILE" >&2 || true
            die "dockerd exited during start-up (log: $LOGFILE)"
        fi
        if [ -S "$SOCK" ] && docker_cli info >/dev/null 2>&1; then
            [ -s "$PIDFILE" ] || echo "$pid" >"$PIDFILE"
            log "dockerd up (pid $pid) in $(elapsed "$t0")s; $(docker_cli version --format 'engine {{.Server.Version}}, storage driver' 2>/dev/null) $(docker_cli info --format '{{.Driver}}' 2>/dev/null)"
            print_env
            return 0
        fi
        sleep 0.1
    done
    tail -n 30 "$LOGFILE" >&2 || true
    die "dockerd did not answer within 60 s (log: $LOGFILE)"
}

# Remove what dockerd leaves on the host: iptables rules and DOCKER* chains,
# the docker0 bridge, mounts under the scratch directory.
cleanup_host() {
    local t line chain
    if command -v iptables >/dev/null 2>&1; then
        for t in filter nat; do
            iptables -t "$t" -S >/dev/null 2>&1 || continue
            # Rules in built-in chains that jump to or mention docker's chains/bridge.
            while IFS= read -r line; do
                case "$line" in
                    "-A DOCKER"*) ;; # inside docker's own chains: flushed below
                    -A*DOCKER* | -A*docker0*)
                        # shellcheck disable=SC2086
                        iptables -t "$t" -D ${line#-A } 2>/dev/null || true
                        ;;
                esac
            done < <(iptables -t "$t" -S)
            for chain in $(iptables -t "$t" -S | awk '$1 == "-N" && $2 ~ /^DOCKER/ { print $2 }'); do
                iptables -t "$t" -F "$chain" 2>/dev/null || true
            done
            for chain in $(iptables -t "$t" -S | awk '$1 == "-N" && $2 ~ /^DOCKER/ { print $2 }'); do
                iptables -t "$t" -X "$chain" 2>/dev/null || true
            done
        done
    fi
    if ip link show docker0 >/dev/null 2>&1; then
        ip link delete docker0 2>/dev/null || true
    fi
    # Mounts left by a dockerd that died hard (overlay, shm, netns), deepest first.
    local m
    while IFS= read -r m; do
        umount -l "$m" 2>/dev/null || true
    done < <(awk -v p="$SCRATCH/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r)
}

stop() {
    local pid i
    pid="$(read_pid "$PIDFILE")"
    if pid_is "$pid" dockerd; then
        if [ -S "$SOCK" ]; then
            local ids
            ids="$(docker_cli ps -q 2>/dev/null || true)"
            if [ -n "$ids" ]; then
                log "killing running containers: $(echo "$ids" | tr '\n' ' ')"
                # shellcheck disable=SC2086
                docker_cli kill $ids >/dev/null 2>&1 || true
            fi
        fi
        stop_pid "$pid" dockerd 30
        # dockerd stops its own containerd; wait for it too, by its PID file.
        local cpid
        cpid="$(read_pid "$SCRATCH/exec/containerd/containerd.pid")"
        if [ -n "$cpid" ]; then
            for ((i = 0; i < 100; i++)); do
                pid_is "$cpid" containerd || break
                sleep 0.1
            done
            stop_pid "$cpid" containerd 10
        fi
    else
        log "dockerd not running"
    fi
    rm -f "$PIDFILE" "$SOCK"
    [ "$(id -u)" = 0 ] && cleanup_host
    if [ -f "$SCRATCH/ip_forward.orig" ]; then
        sysctl -q -w "net.ipv4.ip_forward=$(cat "$SCRATCH/ip_forward.orig")" || true
        rm -f "$SCRATCH/ip_forward.orig"
    fi
    log "dockerd stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) print_env ;;
    status) engine_up ;;
    *)
        echo "usage: $0 start|stop|env|status" >&2
        exit 2
        ;;
esac
