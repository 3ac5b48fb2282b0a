#!/usr/bin/env bash
# Re-pin the Debian packages the image is built from (hack/image/debian.amd64.lock and
# debian.arm64.lock, one per architecture) at the versions the mirror offers now for
# each: hack/image/debian-pins.sh update, run in the host's build stage base image
# (BUILD_IMAGE, else the public debian:bookworm-slim, else the local build base), with
# this checkout mounted. Each architecture's package lists are read with apt there; no
# other architecture's program runs. Extra package names are added to both locks.
#
#   hack/image/lock.sh [PACKAGE...]      # `make image-lock`; then rebuild and commit
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
read -r -a engine < <(hack/image/engine.sh) || exit 1
base="${BUILD_IMAGE:-}"
if [[ -z "$base" ]]; then
	public="docker.io/library/debian:bookworm-slim"
	if "${engine[@]}" image inspect "$public" >/dev/null 2>&1 ||
		timeout 120 "${engine[@]}" pull -q "$public" >/dev/null 2>&1; then
		base="$public"
	else
		mapfile -t local_bases < <(PODMAN="${engine[*]}" hack/image/build-base-image.sh)
		base="${local_bases[1]}"
	fi
fi
"${engine[@]}" run --rm --network host -v "$PWD/hack/image:/lock" "$base" \
	/lock/debian-pins.sh update /lock "$@"
git --no-pager diff --stat -- hack/image/debian.amd64.lock hack/image/debian.arm64.lock
