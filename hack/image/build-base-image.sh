#!/usr/bin/env bash
# Build the local Debian base images for status-reporter with debootstrap and
# `podman import` them. No container registry is needed: packages come from
# the same Debian mirror that apt on this host uses.
#
#   hack/image/build-base-image.sh            # build if missing
#   FORCE=1 hack/image/build-base-image.sh    # rebuild even if present
#
# Produces two tags from ONE debootstrap run:
#   localhost/status-reporter-base:bookworm-build
#       python3 (3.11) + python3-venv (ensurepip wheels) + ca-certificates + apt.
#       Use it as the builder stage: `python3 -m venv /opt/venv && pip install`.
#   localhost/status-reporter-base:bookworm
#       slim runtime: python3 + ca-certificates + tzdata (no venv/pip wheels,
#       no apt, no docs/man/locales/caches; see SLIM_RUNTIME below). Same
#       /usr/bin/python3 as the build tag, so a venv copied from the builder
#       works unchanged.
# Both have a `nonroot` user/group 65532 with home /home/nonroot.
#
# ARCH=arm64 on an amd64 host (or the reverse) builds the other architecture's build
# base only, from that architecture's Debian packages, as
#   localhost/status-reporter-base:bookworm-arm64-build
# debootstrap's second stage, the upgrade and the slimming run under emulation
# (hack/image/emulate.sh: Debian's qemu-user-static, registered for this run only).
#
# stdout: the image names (one per line), nothing else. Progress: stderr.
#
# Environment:
#   FORCE=1            rebuild even if both tags exist
#   ARCH               Debian architecture, amd64 or arm64 (default: the host's)
#   IMAGE_REPO         default localhost/status-reporter-base
#   SUITE              default bookworm
#   MIRROR             Debian mirror URL; default: the one apt uses here
#   SECURITY_MIRROR    default: the debian-security URL apt uses here, if any
#   UPGRADE=0          skip applying bookworm-updates/-security on top
#   SLIM_RUNTIME=0     keep apt, util-linux, PAM, ... in the runtime tag
#   DEBOOTSTRAP_CACHE  .deb cache dir (default /var/cache/status-reporter/debootstrap)
#   WORK_DIR           scratch dir parent (default /var/tmp)
#   PODMAN             engine command (default: what hack/image/engine.sh finds;
#                      podman or docker, both import a root file system the same way)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[build-base-image %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

IMAGE_REPO="${IMAGE_REPO:-localhost/status-reporter-base}"
SUITE="${SUITE:-bookworm}"
HOST_ARCH="$(dpkg --print-architecture)"
ARCH="${ARCH:-$HOST_ARCH}"
case "$ARCH" in amd64 | arm64) ;; *) die "ARCH=$ARCH: want amd64 or arm64" ;; esac
if [ "$ARCH" = "$HOST_ARCH" ]; then
    RUNTIME_TAG="${IMAGE_REPO}:${SUITE}"
    BUILD_TAG="${IMAGE_REPO}:${SUITE}-build"
    tags=("$RUNTIME_TAG" "$BUILD_TAG")
else
    # Another architecture's: the build stage's base only (its runtime flavour serves
    # comparisons and the smoke test, which run on the host's).
    RUNTIME_TAG=""
    BUILD_TAG="${IMAGE_REPO}:${SUITE}-${ARCH}-build"
    tags=("$BUILD_TAG")
fi
UPGRADE="${UPGRADE:-1}"
SLIM_RUNTIME="${SLIM_RUNTIME:-1}"
DEBOOTSTRAP_CACHE="${DEBOOTSTRAP_CACHE:-/var/cache/status-reporter/debootstrap}"
WORK_DIR="${WORK_DIR:-/var/tmp}"
if [ -n "${PODMAN:-}" ]; then
    read -r -a PODMAN_CMD <<<"$PODMAN"
else
    read -r -a PODMAN_CMD < <("$here/engine.sh") || die "no working container engine"
fi
pm() { "${PODMAN_CMD[@]}" "$@"; }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap + rootful podman)"
for t in debootstrap tar chroot; do
    command -v "$t" >/dev/null 2>&1 || die "missing '$t' - run hack/image/install-tools.sh"
done

# ---------------------------------------------------------------- idempotence
present() {
    local tag
    for tag in "${tags[@]}"; do pm image inspect "$tag" >/dev/null 2>&1 || return 1; done
}
if [ "${FORCE:-0}" != "1" ] && present; then
    log "images already present (FORCE=1 to rebuild)"
    printf '%s\n' "${tags[@]}"
    exit 0
fi
# Another architecture's programs run under emulation, for this script's time.
if [ "$ARCH" != "$HOST_ARCH" ] && [ -z "${STATUS_REPORTER_EMULATED:-}" ]; then
    exec "$here/emulate.sh" "linux/$ARCH" "$0" "$@"
fi

# ---------------------------------------------------------------- mirrors
# Find the URI apt uses for "$SUITE" (deb822 *.sources first, then
# one-line sources.list files). Prints the first match.
apt_uri_for_suite() {
    local suite="$1" f
    shopt -s nullglob
    for f in /etc/apt/sources.list.d/*.sources; do
        awk -v want="$suite" '
            function flush() {
                if (!done && types ~ /(^|[ \t])deb([ \t]|$)/ && enabled != "no" && uris != "") {
                    n = split(suites, s, /[ \t]+/)
                    for (i = 1; i <= n; i++) if (s[i] == want) { split(uris, u, /[ \t]+/); print u[1]; done = 1; exit }
                }
                types = uris = suites = ""; enabled = "yes"
            }
            BEGIN { enabled = "yes" }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            { line = $0; key = tolower(line); sub(/:.*/, "", key); val = line; sub(/^[^:]*:[ \t]*/, "", val)
              if (key == "types") types = val; else if (key == "uris") uris = val
              else if (key == "suites") suites = val; else if (key == "enabled") enabled = tolower(val) }
            END { flush() }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        # deb [opts] URI SUITE COMPONENTS...
        sed -E -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" \
            | awk -v want="$suite" '$1 == "deb" && $3 == want { print $2; exit }'
    done
    shopt -u nullglob
}

if [ -z "${MIRROR:-}" ]; then
    MIRROR="$(apt_uri_for_suite "$SUITE" | head -n1)"
    [ -n "$MIRROR" ] || die "no apt source for suite '$SUITE' found in /etc/apt; set MIRROR=<debian mirror URL>"
fi
if [ -z "${SECURITY_MIRROR+x}" ]; then
    SECURITY_MIRROR="$(apt_uri_for_suite "$SUITE-security" | head -n1)"
fi
MIRROR="${MIRROR%/}"
SECURITY_MIRROR="${SECURITY_MIRROR%/}"

# Honour an apt proxy, if configured (debootstrap uses wget, which reads
# http_proxy / https_proxy).
if [ -z "${http_proxy:-}" ]; then
    eval "$(apt-config shell APT_HTTP_PROXY Acquire::http::Proxy)"
    if [ -n "${APT_HTTP_PROXY:-}" ] && [ "$APT_HTTP_PROXY" != "DIRECT" ]; then
        export http_proxy="$APT_HTTP_PROXY"
    fi
fi
if [ -z "${https_proxy:-}" ]; then
    eval "$(apt-config shell APT_HTTPS_PROXY Acquire::https::Proxy)"
    if [ -n "${APT_HTTPS_PROXY:-}" ] && [ "$APT_HTTPS_PROXY" != "DIRECT" ]; then
        export https_proxy="$APT_HTTPS_PROXY"
    fi
fi
log "mirror: $MIRROR  security: ${SECURITY_MIRROR:-none}  proxy: ${http_proxy:-none}"

# ---------------------------------------------------------------- scratch
mkdir -p "$WORK_DIR" "$DEBOOTSTRAP_CACHE"
work="$(mktemp -d "$WORK_DIR/status-reporter-base.XXXXXX")"
rootfs="$work/rootfs"
mounts=()
cleanup() {
    local i
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
        umount -l "${mounts[$i]}" 2>/dev/null || true
    done
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

in_root() { chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "${@:2}"; }

# ---------------------------------------------------------------- debootstrap
t0=$(date +%s)
log "debootstrap $SUITE (minbase, $ARCH) -> $rootfs"
debootstrap \
    --arch="$ARCH" \
    --variant=minbase \
    --include=python3,python3-venv,ca-certificates \
    --cache-dir="$DEBOOTSTRAP_CACHE" \
    "$SUITE" "$rootfs" "$MIRROR" >&2
t1=$(date +%s)
log "debootstrap took $((t1 - t0))s"

# ---------------------------------------------------------------- configure
# apt sources inside the image: same mirror(s) as the host.
rm -f "$rootfs/etc/apt/sources.list"
{
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$MIRROR" "$SUITE" "$SUITE"
    if [ -n "$SECURITY_MIRROR" ]; then
        printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$SECURITY_MIRROR" "$SUITE"
    fi
} >"$rootfs/etc/apt/sources.list.d/debian.sources"

# Keep future `apt-get install` in derived images small and non-interactive.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/01-status-reporter-nodoc" <<'EOF'
# Drop docs, man pages and translations on install (status-reporter base).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
cat >"$rootfs/etc/apt/apt.conf.d/01-status-reporter" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
# Carry over the host's apt proxy / validity settings, if any, so `apt-get`
# inside the chroot (and in builds from the -build tag) behaves like the host.
host_apt_conf="$rootfs/etc/apt/apt.conf.d/02-status-reporter-host"
for key in Acquire::http::Proxy Acquire::https::Proxy Acquire::Check-Valid-Until Acquire::Check-Date; do
    val="$(apt-config dump "$key" 2>/dev/null | awk -v k="$key" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }')"
    [ -n "$val" ] && printf '%s %s\n' "$key" "$val" >>"$host_apt_conf"
done
# Non-root user used by the final image (uid/gid 65532, like distroless).
if ! grep -q '^nonroot:' "$rootfs/etc/passwd"; then
    echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin' >>"$rootfs/etc/passwd"
    echo 'nonroot:x:65532:' >>"$rootfs/etc/group"
    echo 'nonroot:*:19000:0:99999:7:::' >>"$rootfs/etc/shadow"
    install -d -m 0755 -o 65532 -g 65532 "$rootfs/home/nonroot"
fi
: >"$rootfs/etc/hostname"
: >"$rootfs/etc/resolv.conf"   # podman bind-mounts its own at run time

# Apply bookworm-updates / security fixes on top of the debootstrap'ed set.
if [ "$UPGRADE" = "1" ]; then
    log "applying $SUITE-updates/-security"
    cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
    mount -t proc proc "$rootfs/proc" && mounts+=("$rootfs/proc")
    in_root "$rootfs" apt-get update -q >&2
    in_root "$rootfs" apt-get -y -q -o Dpkg::Use-Pty=0 \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold dist-upgrade >&2
    umount "$rootfs/proc" && unset 'mounts[-1]'
    : >"$rootfs/etc/resolv.conf"
fi
t2=$(date +%s)

# ---------------------------------------------------------------- slimming
slim() {
    local r="$1"
    in_root "$r" apt-get clean >&2 || true
    rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r"/var/cache/debconf/*-old \
        "$r"/var/cache/ldconfig/* "$r"/var/lib/dpkg/*-old "$r"/var/log/* \
        "$r"/tmp/* "$r"/var/tmp/* "$r"/root/.cache
    if [ -x "$r/usr/bin/apt-get" ]; then
        mkdir -p "$r/var/lib/apt/lists/partial" "$r/var/cache/apt/archives/partial"
    fi
    # docs (keep copyright files for licence compliance), man, info, locales
    find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
    find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
    rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/groff/* \
        "$r"/usr/share/lintian/* "$r"/usr/share/linda/* "$r"/usr/share/bug/*
    find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias \
        -exec rm -rf {} + 2>/dev/null || true
    # timestamps of generated files only matter for reproducibility; leave them.
}

log "slimming build rootfs"
slim "$rootfs"

if [ -z "$RUNTIME_TAG" ]; then
    import_arch=(--arch "$ARCH")
    [[ "${PODMAN_CMD[0]}" == */podman.sh || "${PODMAN_CMD[0]}" == podman ]] || import_arch=(--platform "linux/$ARCH")
    tar --numeric-owner --xattrs --acls -C "$rootfs" -cf - . \
        | pm import "${import_arch[@]}" \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' --change 'WORKDIR /' --change 'CMD ["/usr/bin/python3"]' \
            --change "LABEL io.status-reporter.flavour=build" \
            --change "LABEL org.opencontainers.image.base.name=debian:$SUITE" \
            --message "status-reporter base (build, $ARCH): debootstrap $SUITE minbase" \
            - "$BUILD_TAG" >/dev/null
    [ "$(pm image inspect --format '{{.Architecture}}' "$BUILD_TAG")" = "$ARCH" ] \
        || die "$BUILD_TAG: imported as $(pm image inspect --format '{{.Architecture}}' "$BUILD_TAG"), want $ARCH"
    log "timings: debootstrap $((t1 - t0))s, upgrade $((t2 - t1))s, total $(($(date +%s) - t0))s"
    printf '%s\n' "$BUILD_TAG"
    exit 0
fi

# Runtime rootfs: a copy with the venv tooling removed and (unless
# SLIM_RUNTIME=0) everything a Python program does not need at run time:
# apt and its crypto stack, PAM/login/passwd, util-linux, e2fsprogs, init
# helpers. Kept: python3 + stdlib deps, ca-certificates (+ openssl, debconf,
# perl-base which it needs), tzdata, bash/dash, coreutils, grep/sed/findutils,
# tar/gzip (`kubectl cp` needs tar), dpkg + its status database (so image
# scanners still see the package list).
rt="$work/rootfs-runtime"
log "deriving runtime rootfs"
cp -a "$rootfs" "$rt"
mount -t proc proc "$rt/proc" && mounts+=("$rt/proc")
in_root "$rt" dpkg --purge python3-venv python3.11-venv python3-pip-whl python3-setuptools-whl >&2
rm -rf "$rt/usr/lib/python3.11/ensurepip"
if [ "$SLIM_RUNTIME" = "1" ]; then
    apt_q=(apt-get -y -q -o Dpkg::Use-Pty=0 --allow-remove-essential --autoremove purge)
    # Everything auto-installed except what we keep, so --autoremove also
    # drops libraries only the removed packages used.
    # shellcheck disable=SC2016  # expanded by the chroot's sh, not here
    in_root "$rt" sh -c 'apt-mark auto $(dpkg-query -W -f="\${Package}\n")' >/dev/null
    in_root "$rt" apt-mark manual python3 ca-certificates tzdata bash dash coreutils \
        tar gzip grep sed findutils diffutils debianutils base-files base-passwd \
        libc-bin dpkg debconf perl-base mawk ncurses-base >/dev/null
    # Pass 1: while apt, adduser and init-system-helpers (update-rc.d, used
    # by util-linux-extra's postrm) still exist.
    in_root "$rt" "${apt_q[@]}" e2fsprogs util-linux util-linux-extra \
        sysvinit-utils mount hostname bsdutils ncurses-bin >&2
    # Pass 2: apt removes itself, what it depends on (adduser -> passwd ->
    # PAM) and the libraries nothing uses any more.
    in_root "$rt" "${apt_q[@]}" apt libapt-pkg6.0 gpgv debian-archive-keyring adduser \
        login passwd libpam-modules libpam-modules-bin libpam-runtime \
        init-system-helpers >&2
    rm -rf "$rt"/etc/apt "$rt"/var/lib/apt "$rt"/var/cache/apt "$rt"/var/log/apt \
        "$rt"/etc/dpkg/dpkg.cfg.d/01-status-reporter-nodoc
    in_root "$rt" dpkg --audit >&2 || die "dpkg --audit failed in runtime rootfs"
fi
in_root "$rt" python3 -c 'import ssl, sqlite3, zoneinfo, ctypes, lzma, bz2, zlib, hashlib, json, urllib.request, uuid; zoneinfo.ZoneInfo("UTC"); ssl.create_default_context()' \
    || die "runtime rootfs: python stdlib smoke test failed"
umount "$rt/proc" && unset 'mounts[-1]'
slim "$rt"

# ---------------------------------------------------------------- import
py_ver="$(in_root "$rt" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
deb_ver="$(cat "$rt/etc/debian_version")"
created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
common_changes=(
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    --change 'ENV LANG=C.UTF-8'
    --change 'ENV PYTHONUNBUFFERED=1'
    --change 'WORKDIR /'
    --change 'CMD ["/usr/bin/python3"]'
    --change "LABEL org.opencontainers.image.base.name=debian:$SUITE"
    --change "LABEL org.opencontainers.image.created=$created"
    --change "LABEL io.status-reporter.debian-version=$deb_ver"
    --change "LABEL io.status-reporter.python-version=$py_ver"
    --change "LABEL io.status-reporter.mirror=$MIRROR"
)

import_rootfs() {
    local dir="$1" tag="$2" flavour="$3" old_id new_id
    old_id="$(pm image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
    log "importing $dir as $tag"
    tar --numeric-owner --xattrs --acls -C "$dir" -cf - . \
        | pm import "${common_changes[@]}" \
            --change "LABEL io.status-reporter.flavour=$flavour" \
            --message "status-reporter base ($flavour): debootstrap $SUITE minbase, python $py_ver" \
            - "$tag" >/dev/null
    new_id="$(pm image inspect --format '{{.Id}}' "$tag")"
    # On FORCE=1 rebuilds, drop the image this tag used to name if nothing
    # else uses it (rmi refuses when containers or other tags still do).
    if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ] \
        && [ -z "$(pm image inspect --format '{{join .RepoTags " "}}' "$old_id" 2>/dev/null)" ]; then
        pm rmi "$old_id" >/dev/null 2>&1 || log "kept old image $old_id (still in use)"
    fi
}
import_rootfs "$rootfs" "$BUILD_TAG" build
import_rootfs "$rt" "$RUNTIME_TAG" runtime
t3=$(date +%s)

log "python $py_ver, debian $deb_ver"
log "timings: debootstrap $((t1 - t0))s, upgrade $((t2 - t1))s, slim+import $((t3 - t2))s, total $((t3 - t0))s"
pm image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' --filter "reference=$IMAGE_REPO" >&2 || true
printf '%s\n' "$RUNTIME_TAG" "$BUILD_TAG"
