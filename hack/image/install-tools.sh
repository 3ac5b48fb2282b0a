#!/usr/bin/env bash
# Install what local container builds need, from Debian packages only.
#
#   hack/image/install-tools.sh
#
# Idempotent: does nothing (not even `apt-get update`) when every package is
# already installed. Non-interactive; meant to run as root (CI runs as root),
# falls back to sudo otherwise. Progress goes to stderr.
#
# Always installs what the local base image needs (hack/image/build-base-image.sh):
#   debootstrap debian-archive-keyring wget ca-certificates
# and busybox-static, the test adapters' image (hack/cluster/images.sh adapter: the
# reporter image has no shell to play an adapter with), and apache2-utils, whose
# htpasswd writes the user file of the release tests' registry (harness/registry.py).
# When PLATFORM names a platform other than the host's, also qemu-user-static: the
# emulator that hack/image/emulate.sh registers to build and run that platform's image
# (it registers nothing itself here: neither binfmt-support nor systemd runs it).
# When no container engine works here (hack/image/engine.sh: a `docker` client
# without a daemon does not count), also installs podman and what it needs:
#   podman runc conmon              engine + OCI runtime (we use runc, not crun)
#   golang-github-containers-common /etc/containers/{registries.conf,policy.json,...}
#   containernetworking-plugins     CNI plugins (podman 4.3 on bookworm uses CNI)
#   iptables                        needed by the CNI bridge/portmap plugins
#   catatonit                       `--init` support
#   uidmap fuse-overlayfs slirp4netns  rootless support (harmless for root)
# and fails unless podman then works.
#
# Where podman is installed, also writes
# /etc/containers/containers.conf.d/50-status-reporter.conf with the settings this
# kind of machine needs (cgroupfs manager, file events logger, runc runtime, and
# default ulimits the container runtime is allowed to set here), so a bare
# `podman ...` works too. Set SKIP_CONTAINERS_CONF=1 to leave /etc/containers
# untouched; hack/image/podman.sh passes the same settings as command-line flags
# either way.
set -euo pipefail

log() { printf '[install-tools] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        log "must run as root (or have sudo)"
        exit 1
    fi
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"

BASE_PACKAGES=(
    debootstrap
    debian-archive-keyring
    wget
    ca-certificates
    busybox-static
    apache2-utils
)
PODMAN_PACKAGES=(
    podman
    runc
    conmon
    golang-github-containers-common
    containernetworking-plugins
    iptables
    catatonit
    uidmap
    fuse-overlayfs
    slirp4netns
)
PACKAGES=("${BASE_PACKAGES[@]}")
host_platform="$("$here/platforms.sh" --host)"
mapfile -t platforms < <("$here/platforms.sh" "${PLATFORM:-}")
for platform in "${platforms[@]}"; do
    if [ "$platform" != "$host_platform" ]; then
        PACKAGES+=(qemu-user-static)
        break
    fi
done
if engine="$("$here/engine.sh" 2>/dev/null)"; then
    log "container engine: $engine"
else
    log "no working container engine: installing podman"
    PACKAGES+=("${PODMAN_PACKAGES[@]}")
fi

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

missing=()
for p in "${PACKAGES[@]}"; do
    is_installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
    log "all packages already installed: ${PACKAGES[*]}"
else
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_opts=(-y -q -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    # Try without refreshing the lists first (fast when they are fresh);
    # on failure, update and retry.
    if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install "${apt_opts[@]}" \
            --no-install-recommends "${missing[@]}" >&2; then
        log "install failed with current package lists; running apt-get update"
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install "${apt_opts[@]}" \
            --no-install-recommends "${missing[@]}" >&2
    fi
fi

# Engine defaults for this host (cgroup v1 without systemd as PID 1, no
# journald): cgroupfs manager, file events logger, runc. Drop-in files are
# read by podman >= 4.x from /etc/containers/containers.conf.d/.
if [ "${SKIP_CONTAINERS_CONF:-0}" != "1" ] && command -v podman >/dev/null 2>&1; then
    conf_dir=/etc/containers/containers.conf.d
    conf_file="$conf_dir/50-status-reporter.conf"
    # Rootful podman 4.3 asks for RLIMIT_NOFILE=RLIMIT_NPROC=1048576 in every
    # container; without CAP_SYS_RESOURCE (true on these machines) runc then
    # fails with "error setting rlimit type 7 (or 6): operation not
    # permitted". Pin the defaults to what this process may actually grant:
    # nofile <= our hard limit, nproc <= min(our hard limit, 32768) (podman
    # lowers its own RLIMIT_NPROC to 32768 at start-up).
    nofile_hard="$(ulimit -Hn)"; nproc_hard="$(ulimit -Hu)"
    [ "$nofile_hard" = unlimited ] && nofile_hard=1048576
    [ "$nproc_hard" = unlimited ] && nproc_hard=32768
    [ "$nofile_hard" -gt 1048576 ] && nofile_hard=1048576
    [ "$nproc_hard" -gt 32768 ] && nproc_hard=32768
    want="# Written by status-reporter hack/image/install-tools.sh
[engine]
cgroup_manager = \"cgroupfs\"
events_logger = \"file\"
runtime = \"runc\"

[containers]
log_driver = \"k8s-file\"
default_ulimits = [\"nofile=${nofile_hard}:${nofile_hard}\", \"nproc=${nproc_hard}:${nproc_hard}\"]
"
    if [ ! -f "$conf_file" ] || [ "$(cat "$conf_file")" != "$(printf '%s' "$want")" ]; then
        log "writing $conf_file"
        $SUDO mkdir -p "$conf_dir"
        printf '%s' "$want" | $SUDO tee "$conf_file" >/dev/null
    fi
fi

engine="$("$here/engine.sh")" || { log "no container engine works, even after the install"; exit 1; }
log "engine: $engine, debootstrap $(dpkg-query -W -f='${Version}' debootstrap)"
