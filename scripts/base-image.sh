#!/usr/bin/env bash
# scripts/base-image.sh [TAG]
#
# Makes the base image of generated projects, TAG (default
# prefecthq/prefect:1.4.1-python3.10), in the local engine (DOCKER_HOST, or
# the socket of scripts/dockerd.sh) without pulling anything: Docker Hub is
# unreachable here.
#
#   1. image present and made from this recipe (label org.flowc.base-recipe),
#      or present and not made by us: nothing to do;
#   2. else, a cached rootfs tarball for this recipe under
#      $FLOWC_DOCKER_DIR/base/ (survives a lost data root): `docker import` it
#      (seconds);
#   3. else build it (about 80 s): inside `unshare --mount` (no mount outlives
#      the build), debootstrap bookworm minbase with python3, python3-venv,
#      python3-pip and ca-certificates; in the chroot, run with a clean
#      environment (env -i: nothing of the host's PIP_* settings), install
#      gcc/libc6-dev/python3-dev, make a venv at /usr/local (so `python`,
#      `pip` and `prefect` are on the default PATH), pip install Prefect 1.4.1
#      (pendulum 2 compiles from source on 3.11), purge the compilers and
#      clean apt's caches; tar the tree into the cache and import it.
#
# The image holds Python 3.11 under the 3.10 tag (bookworm has no 3.10); a
# flow stored as a script does not care. The host's CA bundle is copied in
# (PIP_CERT, REQUESTS_CA_BUNDLE, SSL_CERT_FILE point at it) so that pip inside
# `docker build` reaches PyPI through this network's TLS proxy.
#
# The Python packages are pinned by scripts/base-image-constraints.txt (pip
# constraints; regenerate with FLOWC_BASE_UNPINNED=1, which writes the new
# freeze next to the cached tarball).
set -euo pipefail
# shellcheck source=scripts/_common.sh
. "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

TAG="${1:-prefecthq/prefect:1.4.1-python3.10}"
SUITE=bookworm
MIRROR="${FLOWC_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
INCLUDE=python3,python3-venv,python3-pip,ca-certificates
BUILD_DEPS="gcc libc6-dev python3-dev"
PIP_REQS='prefect==1.4.1 marshmallow<4 pendulum<3'
CONSTRAINTS="$HERE/base-image-constraints.txt"
CA_HOST=/etc/ssl/certs/ca-certificates.crt
CA_IMAGE=/etc/ssl/flowc-ca-bundle.crt
CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
IMAGE_ENV=(
    "PATH=$CHROOT_PATH"
    "LANG=C.UTF-8"
    "PIP_CERT=$CA_IMAGE"
    "REQUESTS_CA_BUNDLE=$CA_IMAGE"
    "SSL_CERT_FILE=$CA_IMAGE"
    "PIP_DISABLE_PIP_VERSION_CHECK=1"
    "PIP_NO_CACHE_DIR=1"
)

# The recipe key: everything that changes the image's content.
RECIPE_VERSION=1
constraints_text=""
if [ "${FLOWC_BASE_UNPINNED:-0}" != 1 ] && [ -f "$CONSTRAINTS" ]; then
    constraints_text="$(cat "$CONSTRAINTS")"
fi
KEY="$(
    {
        echo "v$RECIPE_VERSION $SUITE $MIRROR $INCLUDE | $BUILD_DEPS | $PIP_REQS"
        printf '%s\n' "${IMAGE_ENV[@]}"
        echo "$constraints_text"
        sha256sum "$CA_HOST" 2>/dev/null || true
    } | sha256sum | cut -c1-16
)"
BASE_DIR="$SCRATCH/base"
TARBALL="$BASE_DIR/rootfs-$KEY.tar"

if [ -z "${DOCKER_HOST:-}" ]; then
    export DOCKER_HOST="unix://$SCRATCH/docker.sock"
fi
docker info >/dev/null 2>&1 || die "no docker engine at $DOCKER_HOST (run: eval \"\$(bash scripts/dockerd.sh start)\")"

image_recipe() {
    docker image inspect --format '{{ index .Config.Labels "org.flowc.base-recipe" }}' "$TAG" 2>/dev/null
}

# image_ok [quiet]: the image exists and is this recipe's (or not ours at all).
image_ok() {
    local have
    have="$(image_recipe)" || return 1
    if [ "$have" = "$KEY" ]; then
        return 0
    elif [ -z "$have" ] || [ "$have" = "<no value>" ]; then
        log "$TAG exists and was not made by this script; using it as it is"
        return 0
    fi
    [ -n "${1:-}" ] || log "$TAG was made from another recipe ($have, now $KEY); remaking it"
    return 1
}

import_tarball() {
    local t0 changes=() e
    t0="$(now)"
    for e in "${IMAGE_ENV[@]}"; do changes+=(-c "ENV $e"); done
    changes+=(-c "LABEL org.flowc.base-recipe=$KEY" -c 'CMD ["/bin/bash"]')
    docker import "${changes[@]}" -m "flowc base image, recipe $KEY" "$TARBALL" "$TAG" >/dev/null
    log "imported $TAG from $TARBALL in $(elapsed "$t0")s ($(docker image inspect --format '{{.Size}}' "$TAG" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
}

# The part that runs inside the new mount namespace, with a clean environment.
# $1 rootfs, $2 mirror, $3 host CA bundle, $4 constraints file or "".
read -r -d '' NS_SCRIPT <<'NS' || true
set -euo pipefail
root="$1" mirror="$2" ca="$3" constraints="$4"
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$root" "$mirror" >"$root.debootstrap.log" 2>&1 || {
    tail -n 30 "$root.debootstrap.log" >&2
    [ -f "$root/debootstrap/debootstrap.log" ] && tail -n 30 "$root/debootstrap/debootstrap.log" >&2
    exit 1
}
echo "[base-image.sh] debootstrap done in ${SECONDS}s" >&2
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$ca" "$root$CA_IMAGE"
# The mirror may serve a snapshot whose Release file has expired.
printf 'Acquire::Check-Valid-Until "false";\n' >"$root/etc/apt/apt.conf.d/99flowc-snapshot"
if [ -n "$constraints" ]; then cp "$constraints" "$root/tmp/constraints.txt"; else : >"$root/tmp/constraints.txt"; fi
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /dev "$root/dev"
chroot "$root" /usr/bin/env -i \
    PATH="$CHROOT_PATH" HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
    PIP_CERT="$CA_IMAGE" REQUESTS_CA_BUNDLE="$CA_IMAGE" SSL_CERT_FILE="$CA_IMAGE" \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_DEFAULT_TIMEOUT=120 \
    BUILD_DEPS="$BUILD_DEPS" PIP_REQS="$PIP_REQS" \
    /bin/bash -euo pipefail -c '
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends $BUILD_DEPS >/dev/null
        python3 -m venv /usr/local
        # shellcheck disable=SC2086
        /usr/local/bin/pip install -q -c /tmp/constraints.txt $PIP_REQS
        /usr/local/bin/pip freeze --all >/freeze.txt
        apt-get purge -y -qq --auto-remove $BUILD_DEPS >/dev/null
        apt-get clean
        rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old \
            /var/log/apt /var/log/dpkg.log /root/.cache /tmp/* /debootstrap
        python -c "import prefect, sys; print(\"[base-image.sh] chroot: prefect\", prefect.__version__, \"on Python\", sys.version.split()[0], file=sys.stderr)"
        prefect version >/dev/null
    '
# Docker provides these at run time; keep nothing of this host in the image.
: >"$root/etc/resolv.conf"
echo localhost >"$root/etc/hostname"
NS

build() {
    need_root
    local t0 work root
    t0="$(now)"
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    command -v unshare >/dev/null 2>&1 || die "unshare (util-linux) is missing"
    [ -f "$CA_HOST" ] || die "no CA bundle at $CA_HOST"
    work="$BASE_DIR/build.$$"
    root="$work/rootfs"
    rm -rf "$work"
    mkdir -p "$work"
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    local constraints=""
    [ -n "$constraints_text" ] && constraints="$CONSTRAINTS"
    log "building $TAG (recipe $KEY) in $work"
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive \
        INCLUDE="$INCLUDE" SUITE="$SUITE" CA_IMAGE="$CA_IMAGE" CHROOT_PATH="$CHROOT_PATH" \
        BUILD_DEPS="$BUILD_DEPS" PIP_REQS="$PIP_REQS" \
        unshare --mount --propagation private -- \
        bash -c "$NS_SCRIPT" ns "$root" "$MIRROR" "$CA_HOST" "$constraints"
    log "rootfs ready in $(elapsed "$t0")s ($(du -sm "$root" | cut -f1) MB)"
    mv "$root/freeze.txt" "$BASE_DIR/freeze-$KEY.txt"
    local t1
    t1="$(now)"
    tar -C "$root" --numeric-owner --xattrs \
        --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
        -cf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
    log "cached $TARBALL in $(elapsed "$t1")s; pip freeze in $BASE_DIR/freeze-$KEY.txt"
    rm -rf "$work"
    trap - EXIT
    # Keep only this recipe's tarball.
    find "$BASE_DIR" -maxdepth 1 -name 'rootfs-*.tar' ! -name "rootfs-$KEY.tar" -delete
    find "$BASE_DIR" -maxdepth 1 -name 'freeze-*.txt' ! -name "freeze-$KEY.txt" -delete
}

main() {
    local t0
    t0="$(now)"
    if image_ok; then
        log "$TAG present (recipe $KEY)"
        return 0
    fi
    mkdir -p "$BASE_DIR"
    # One builder at a time; a second caller waits and then finds the image.
    exec 9>"$BASE_DIR/.lock"
    flock 9
    if image_ok quiet; then
        log "$TAG present (recipe $KEY)"
        return 0
    fi
    local old_id
    old_id="$(docker image inspect --format '{{.Id}}' "$TAG" 2>/dev/null || true)"
    [ -s "$TARBALL" ] || build
    import_tarball
    # The image of the previous recipe is now untagged: drop it (unless in use).
    if [ -n "$old_id" ] && [ "$old_id" != "$(docker image inspect --format '{{.Id}}' "$TAG")" ]; then
        docker image rm "$old_id" >/dev/null 2>&1 || true
    fi
    log "$TAG ready in $(elapsed "$t0")s"
}

main
