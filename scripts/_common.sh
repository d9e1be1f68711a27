# shellcheck shell=bash
# Shared helpers for scripts/*.sh (sourced, not run).
#
# Everything the scripts start lives under one persistent scratch directory,
# FLOWC_DOCKER_DIR (default /var/tmp/flowc-docker), so that the docker data
# root (the image cache) and the base image's rootfs tarball survive across
# runs on the same machine. Log lines go to stderr; stdout carries only what
# callers `eval` (export lines).

FLOWC_DOCKER_DIR="${FLOWC_DOCKER_DIR:-/var/tmp/flowc-docker}"
SCRATCH="$FLOWC_DOCKER_DIR"

log() { printf '[%s] %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# now: seconds since the epoch with millisecond precision (for timings).
now() { date +%s.%3N; }
# elapsed START: seconds since START, one decimal.
elapsed() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1f", e - s }'; }

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons)"
}

# apt_install PKG...: installs the packages that are not installed yet.
# `apt-get update` runs at most once per boot (stamp file keyed by boot id),
# and again if an install fails on stale lists.
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    need_root
    export DEBIAN_FRONTEND=noninteractive
    mkdir -p "$SCRATCH"
    local stamp="$SCRATCH/.apt-updated" boot updated=0
    boot="$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$boot" ]; then
        log "apt-get update"
        apt-get update -qq >&2
        echo "$boot" >"$stamp"
        updated=1
    fi
    log "apt-get install ${missing[*]} (log: $SCRATCH/apt.log)"
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$SCRATCH/apt.log" 2>&1; then
        if [ "$updated" = 0 ]; then
            apt-get update -qq >&2
            echo "$boot" >"$stamp"
        fi
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$SCRATCH/apt.log" 2>&1 || {
            tail -n 30 "$SCRATCH/apt.log" >&2
            die "apt-get install ${missing[*]} failed"
        }
    fi
}

# proc_alive PID: true while PID exists and is neither a zombie nor dead.
# (`kill -0` is not enough here: a killed process can stay unreaped for
# seconds, see shared/DOCKER-NOTES.md.)
proc_alive() {
    local pid="$1" stat state
    [ -n "$pid" ] || return 1
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
    state="${stat##*) }"
    state="${state%% *}"
    case "$state" in Z | X | x | "") return 1 ;; esac
    return 0
}

# pid_is PID NAME: PID is alive and its command line mentions NAME (guards
# against a stale PID file whose PID was reused by something else).
pid_is() {
    local pid="$1" name="$2"
    proc_alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$name"
}

# read_pid FILE: the PID stored in FILE, or nothing.
read_pid() {
    local pid
    pid="$(cat "$1" 2>/dev/null | tr -dc '0-9')" || true
    printf '%s' "$pid"
}

# stop_pid PID NAME [TIMEOUT]: SIGTERM, wait up to TIMEOUT s (default 20),
# then SIGKILL and wait again. Only ever signals that one PID.
stop_pid() {
    local pid="$1" name="$2" timeout="${3:-20}" i
    pid_is "$pid" "$name" || return 0
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < timeout * 10; i++)); do
        proc_alive "$pid" || return 0
        sleep 0.1
    done
    log "$name (pid $pid) ignored SIGTERM for ${timeout}s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        proc_alive "$pid" || return 0
        sleep 0.1
    done
    die "$name (pid $pid) did not die"
}

# spawn PIDFILE LOGFILE CMD...: runs CMD in the background in its own
# session (so it outlives the calling shell and its process group), stdin
# from /dev/null, output to LOGFILE, and writes its PID to PIDFILE.
spawn() {
    local pidfile="$1" logfile="$2"
    shift 2
    rm -f "$pidfile"
    # The inner shell records its own PID and then execs CMD, so the PID in
    # the file is CMD's. setsid does not fork here (a background job of a
    # non-interactive shell is not a process-group leader).
    # shellcheck disable=SC2016 # $$ and $@ are the inner shell's
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" \
        </dev/null >>"$logfile" 2>&1 &
    local i
    for ((i = 0; i < 50; i++)); do
        [ -s "$pidfile" ] && return 0
        sleep 0.05
    done
    die "could not start $1"
}
