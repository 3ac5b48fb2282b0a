#!/usr/bin/env bash
# Build the status-reporter image with the container engine that works here
# (hack/image/engine.sh: podman, or a docker with a running daemon).
#
#   hack/image/build.sh          # stdout: the image name, e.g. localhost/status-reporter:0.1.0
#
# Base image, in order: $BASE_IMAGE if set; the public python:3.11-slim base when it
# is present or can be pulled; otherwise (no registry reachable) the local Debian
# base from hack/image/build-base-image.sh (debootstrap, imported into the engine).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
log() { printf 'image: %s\n' "$*" >&2; }

public_base="docker.io/library/python:3.11-slim-bookworm"
version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' src/status_reporter/__init__.py)"
revision="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
[[ -z "$(git status --porcelain -- src pyproject.toml requirements Dockerfile 2>/dev/null)" ]] || revision="${revision}-dirty"
image="${IMAGE:-localhost/status-reporter:${version}}"

read -r -a engine < <(hack/image/engine.sh) || exit 1
build_flags=(--network host)
if [[ "${engine[0]}" == */podman.sh ]]; then
	# RUN steps use the host network: no bridge, no private-range addresses.
	build_flags+=(--layers=false)
	# A TLS-intercepting proxy's CA lives in the host bundle: lend it to RUN steps
	# (a build volume, never part of a layer).
	[[ -f /etc/ssl/certs/ca-certificates.crt ]] &&
		build_flags+=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
fi

base="${BASE_IMAGE:-}"
build_base="${BUILD_IMAGE:-}"
if [[ -z "$base" ]]; then
	if "${engine[@]}" image inspect "$public_base" >/dev/null 2>&1 ||
		timeout 120 "${engine[@]}" pull -q "$public_base" >/dev/null 2>&1; then
		base="$public_base"
	else
		log "cannot pull $public_base; using the local Debian base"
		mapfile -t local_bases < <(PODMAN="${engine[*]}" hack/image/build-base-image.sh)
		((${#local_bases[@]} == 2)) || exit 1
		base="${local_bases[0]}"
		build_base="${local_bases[1]}"
	fi
fi
build_base="${build_base:-$base}"

log "building $image (base $base, build base $build_base, revision $revision)"
"${engine[@]}" build "${build_flags[@]}" \
	--build-arg "BASE_IMAGE=$base" \
	--build-arg "BUILD_IMAGE=$build_base" \
	--build-arg "VERSION=$version" \
	--build-arg "REVISION=$revision" \
	-t "$image" -f Dockerfile . >&2
# The previous build of the same tag is left untagged: remove such leftovers, ours only.
"${engine[@]}" image prune -f --filter "label=org.opencontainers.image.title=status-reporter" >/dev/null 2>&1 || true
echo "$image"
