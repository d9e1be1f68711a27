#!/usr/bin/env bash
# scripts/base-image.sh [TAG]
#
# Makes a base image of generated projects, TAG, in the local engine
# (DOCKER_HOST, or the socket of scripts/dockerd.sh) without pulling anything:
# Docker Hub is unreachable here. Two recipes, chosen by the tag:
#   prefecthq/prefect:1.4.1-python3.10 (the default): prefect1 projects;
#   prefecthq/prefect:3.X.Y-python3.11: prefect3 projects (the tag the
#       generated Dockerfile's FROM names), Prefect 3.X.Y from binary wheels.
#
#   1. image present and made from this recipe (label org.flowc.base-recipe),
#      or present and not made by us: nothing to do;
#   2. else, a cached rootfs tarball for this recipe under
#      $FLOWC_DOCKER_DIR/base/ (survives a lost data root): `docker import` it
#      (seconds);
#   3. else build it: inside `unshare --mount` (no mount outlives the build),
#      debootstrap bookworm minbase with python3, python3-venv, python3-pip and
#      ca-certificates (the tree is cached as minbase-<key>.tar, shared by both
#      recipes: the second one skips debootstrap); in the chroot, run with a clean environment (env -i:
#      nothing of the host's PIP_* settings), make a venv at /usr/local (so
#      `python`, `pip` and `prefect` are on the default PATH) and pip install
#      the recipe's packages; tar the tree into the cache and import it.
#      Prefect 1 (about 80 s): install gcc/libc6-dev/python3-dev first
#      (pendulum 2 compiles from source on 3.11), purge them after.
#      Prefect 3: every package is a binary wheel, downloaded on the host
#      (`pip download --no-deps`, through the host's pip cache) into a
#      wheelhouse kept under $FLOWC_DOCKER_DIR/base/, and installed in the
#      chroot with --no-index: no compiler, no apt-get inside, no network.
#      The host's Python must be CPython 3.11 on x86_64 Linux, as the image's.
#
# The image holds Debian's Python 3.11 (under the 3.10 tag for Prefect 1:
# bookworm has no 3.10; a flow stored as a script does not care). The host's
# CA bundle is copied in (PIP_CERT, REQUESTS_CA_BUNDLE, SSL_CERT_FILE point at
# it) so that pip inside `docker build` reaches PyPI through this network's
# TLS proxy.
#
# The Python packages are pinned by scripts/base-image-constraints.txt
# (Prefect 1) and scripts/base-image-prefect3-constraints.txt (Prefect 3), pip
# constraints; regenerate with FLOWC_BASE_UNPINNED=1 (Prefect 1 only: the
# Prefect 3 file is the freeze of a Prefect 3 venv, and the wheelhouse needs
# it), which writes the new freeze next to the cached tarball.
set -euo pipefail
# shellcheck source=scripts/_common.sh
. "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

TAG="${1:-prefecthq/prefect:1.4.1-python3.10}"
SUITE=bookworm
MIRROR="${FLOWC_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
INCLUDE=python3,python3-venv,python3-pip,ca-certificates
WHEELHOUSE=""
case "$TAG" in
    prefecthq/prefect:1.*)
        BUILD_DEPS="gcc libc6-dev python3-dev"
        PIP_REQS='prefect==1.4.1 marshmallow<4 pendulum<3'
        CONSTRAINTS="$HERE/base-image-constraints.txt"
        ;;
    prefecthq/prefect:3.*-python3.11)
        PREFECT3_VERSION="${TAG#prefecthq/prefect:}"
        PREFECT3_VERSION="${PREFECT3_VERSION%-python3.11}"
        BUILD_DEPS=""
        PIP_REQS="prefect==$PREFECT3_VERSION"
        CONSTRAINTS="$HERE/base-image-prefect3-constraints.txt"
        grep -qx "prefect==$PREFECT3_VERSION" "$CONSTRAINTS" ||
            die "$CONSTRAINTS pins another Prefect than $TAG names ($(grep '^prefect==' "$CONSTRAINTS"))"
        ;;
    *) die "no recipe for $TAG (prefecthq/prefect:1.4.1-python3.10 or prefecthq/prefect:3.X.Y-python3.11)" ;;
esac
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
# Each recipe family keeps its own files there (Prefect 1's names predate the prefix).
FAMILY=""
[ -n "$BUILD_DEPS" ] || FAMILY="prefect3-"
TARBALL="$BASE_DIR/rootfs-$FAMILY$KEY.tar"
[ -n "$BUILD_DEPS" ] || WHEELHOUSE="$BASE_DIR/wheels-$FAMILY$KEY"
MINBASE="$BASE_DIR/minbase-$(echo "$SUITE $MIRROR $INCLUDE" | sha256sum | cut -c1-16).tar"

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
# $1 rootfs, $2 mirror, $3 host CA bundle, $4 constraints file or "", $5 wheelhouse or "".
read -r -d '' NS_SCRIPT <<'NS' || true
set -euo pipefail
root="$1" mirror="$2" ca="$3" constraints="$4" wheelhouse="$5" minbase="$6"
if [ -s "$minbase" ]; then
    mkdir -p "$root"
    tar -C "$root" --numeric-owner --xattrs -xf "$minbase"
    echo "[base-image.sh] debootstrap's tree from $minbase in ${SECONDS}s" >&2
else
    debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$root" "$mirror" >"$root.debootstrap.log" 2>&1 || {
        tail -n 30 "$root.debootstrap.log" >&2
        [ -f "$root/debootstrap/debootstrap.log" ] && tail -n 30 "$root/debootstrap/debootstrap.log" >&2
        exit 1
    }
    # Both recipes start from this tree: the next build skips debootstrap.
    tar -C "$root" --numeric-owner --xattrs -cf "$minbase.tmp" . && mv "$minbase.tmp" "$minbase"
    echo "[base-image.sh] debootstrap done in ${SECONDS}s" >&2
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp "$ca" "$root$CA_IMAGE"
# The mirror may serve a snapshot whose Release file has expired.
printf 'Acquire::Check-Valid-Until "false";\n' >"$root/etc/apt/apt.conf.d/99flowc-snapshot"
if [ -n "$constraints" ]; then cp "$constraints" "$root/tmp/constraints.txt"; else : >"$root/tmp/constraints.txt"; fi
mkdir -p "$root/tmp/wheels"
[ -z "$wheelhouse" ] || cp "$wheelhouse"/*.whl "$root/tmp/wheels/"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /dev "$root/dev"
chroot "$root" /usr/bin/env -i \
    PATH="$CHROOT_PATH" HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
    PIP_CERT="$CA_IMAGE" REQUESTS_CA_BUNDLE="$CA_IMAGE" SSL_CERT_FILE="$CA_IMAGE" \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_DEFAULT_TIMEOUT=120 \
    BUILD_DEPS="$BUILD_DEPS" PIP_REQS="$PIP_REQS" OFFLINE="${wheelhouse:+1}" \
    /bin/bash -euo pipefail -c '
        if [ -n "$BUILD_DEPS" ]; then
            apt-get update -qq
            apt-get install -y -qq --no-install-recommends $BUILD_DEPS >/dev/null
        fi
        python3 -m venv /usr/local
        offline=()
        [ -z "$OFFLINE" ] || offline=(--no-index --find-links /tmp/wheels)
        # shellcheck disable=SC2086
        /usr/local/bin/pip install -q "${offline[@]}" -c /tmp/constraints.txt $PIP_REQS
        /usr/local/bin/pip freeze --all >/freeze.txt
        [ -z "$BUILD_DEPS" ] || apt-get purge -y -qq --auto-remove $BUILD_DEPS >/dev/null
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

# fill_wheelhouse: every pinned package as a binary wheel for this host's Python (3.11,
# as the image's), fetched with the host's pip and its cache; kept for the next build.
fill_wheelhouse() {
    local t0 python="${FLOWC_WHEEL_PYTHON:-python3}"
    [ -s "$WHEELHOUSE/.complete" ] && return 0
    t0="$(now)"
    "$python" -c 'import sys, platform; sys.exit(sys.version_info[:2] != (3, 11) or platform.machine() != "x86_64")' ||
        die "$python is not CPython 3.11 on x86_64, as the image is (set FLOWC_WHEEL_PYTHON)"
    rm -rf "$WHEELHOUSE.tmp"
    mkdir -p "$WHEELHOUSE.tmp"
    grep -v '^#' "$CONSTRAINTS" >"$WHEELHOUSE.tmp/requirements.txt"
    "$python" -m pip download -q --no-deps --only-binary :all: -r "$WHEELHOUSE.tmp/requirements.txt" \
        -d "$WHEELHOUSE.tmp" >"$BASE_DIR/wheelhouse.log" 2>&1 || { tail -n 30 "$BASE_DIR/wheelhouse.log" >&2; die "pip download failed"; }
    date +%s >"$WHEELHOUSE.tmp/.complete"
    rm -rf "$WHEELHOUSE"
    mv "$WHEELHOUSE.tmp" "$WHEELHOUSE"
    log "wheelhouse $WHEELHOUSE: $(find "$WHEELHOUSE" -name '*.whl' | wc -l) wheels in $(elapsed "$t0")s"
}

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
    [ -z "$WHEELHOUSE" ] || fill_wheelhouse
    log "building $TAG (recipe $KEY) in $work"
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive \
        INCLUDE="$INCLUDE" SUITE="$SUITE" CA_IMAGE="$CA_IMAGE" CHROOT_PATH="$CHROOT_PATH" \
        BUILD_DEPS="$BUILD_DEPS" PIP_REQS="$PIP_REQS" \
        unshare --mount --propagation private -- \
        bash -c "$NS_SCRIPT" ns "$root" "$MIRROR" "$CA_HOST" "$constraints" "$WHEELHOUSE" "$MINBASE"
    log "rootfs ready in $(elapsed "$t0")s ($(du -sm "$root" | cut -f1) MB)"
    mv "$root/freeze.txt" "$BASE_DIR/freeze-$FAMILY$KEY.txt"
    local t1
    t1="$(now)"
    tar -C "$root" --numeric-owner --xattrs \
        --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
        -cf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
    log "cached $TARBALL in $(elapsed "$t1")s; pip freeze in $BASE_DIR/freeze-$FAMILY$KEY.txt"
    rm -rf "$work"
    trap - EXIT
    # Keep only this recipe's files among its family's.
    local other=()
    [ -n "$FAMILY" ] || other=(! -name '*-prefect3-*')
    find "$BASE_DIR" -maxdepth 1 -name "rootfs-$FAMILY*.tar" ! -name "rootfs-$FAMILY$KEY.tar" "${other[@]}" -delete
    find "$BASE_DIR" -maxdepth 1 -name "freeze-$FAMILY*.txt" ! -name "freeze-$FAMILY$KEY.txt" "${other[@]}" -delete
    [ -z "$WHEELHOUSE" ] || find "$BASE_DIR" -maxdepth 1 -name "wheels-$FAMILY*" ! -name "wheels-$FAMILY$KEY" -exec rm -rf {} +
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
