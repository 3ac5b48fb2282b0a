#!/usr/bin/env bash
# Build the status-reporter image with the container engine that works here
# (hack/image/engine.sh: podman, or a docker with a running daemon).
#
#   hack/image/build.sh          # stdout: the image name, e.g. localhost/status-reporter:0.2.0
#
# IMAGE names it (by default localhost/status-reporter:<version>, the version from the
# git tag: hack/release/version.sh; <version>-arm64 for a platform other than the
# host's); PLATFORM is the one platform it is built for (by default the host's:
# hack/image/platforms.sh). Another platform's image is built from that architecture's
# Debian packages, its build stage and check run under emulation (hack/image/emulate.sh).
# The runtime image is assembled FROM scratch (Dockerfile): BASE_IMAGE=<a distroless
# Python base> puts the virtualenv on that base instead. The build stage's Debian, in
# order: $BUILD_IMAGE if set; the public debian:bookworm-slim when it is present or can
# be pulled; otherwise (no registry reachable) the local build base of
# hack/image/build-base-image.sh (debootstrap, imported into the engine). For a platform
# other than the host's: $BUILD_IMAGE, else that architecture's local build base.
#
# Also writes the image's SBOM next to it: build/sbom.cdx.json (build/sbom-arm64.cdx.json
# for another platform; SBOM names it), its path on stderr.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
log() { printf 'image: %s\n' "$*" >&2; }

public_build="docker.io/library/debian:bookworm-slim"
version="$(hack/release/version.sh)"
# The whole commit name: an abbreviation's length depends on the clone.
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
[[ -z "$(git status --porcelain -- src pyproject.toml requirements Dockerfile hack/image LICENSE README.md .containerignore 2>/dev/null)" ]] ||
	revision="${revision}-dirty"
# Timestamps in the image (files, the SBOM, org.opencontainers.image.created): the commit's.
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
created="$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)"
platform="$(hack/image/platforms.sh "${PLATFORM:-}")"
[[ "$platform" != *$'\n'* ]] || { log "PLATFORM=$PLATFORM: one platform per build"; exit 1; }
arch="${platform#linux/}"
if [[ "$platform" == "$(hack/image/platforms.sh --host)" ]]; then
	image="${IMAGE:-localhost/status-reporter:${version}}"
	sbom="${SBOM:-build/sbom.cdx.json}"
else
	image="${IMAGE:-localhost/status-reporter:${version}-${arch}}"
	sbom="${SBOM:-build/sbom-${arch}.cdx.json}"
	# Its programs (the build stage's, the check's) run under emulation, for this build.
	[[ -n "${STATUS_REPORTER_EMULATED:-}" ]] || exec hack/image/emulate.sh "$platform" "$PWD/hack/image/build.sh" "$@"
	foreign=1
fi

read -r -a engine < <(hack/image/engine.sh) || exit 1
build_flags=(--network host --platform "$platform")
if [[ "${engine[0]}" == */podman.sh ]]; then
	# No intermediate images; every file time and the image's own clamped to the commit's;
	# no label naming the builder's version (the image is the same whoever built it).
	build_flags+=(--layers=false --timestamp "$epoch" --identity-label=false)
	# A TLS-intercepting proxy's CA lives in the host bundle: lend it to RUN steps
	# (a build volume, never part of a layer).
	[[ -f /etc/ssl/certs/ca-certificates.crt ]] &&
		build_flags+=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
fi

base="${BASE_IMAGE:-scratch}"
# FROM scratch, the image is one layer: all of it is ours.
[[ "${engine[0]}" == */podman.sh && "$base" == scratch ]] && build_flags+=(--squash-all)
build_base="${BUILD_IMAGE:-}"
if [[ -z "$build_base" && -n "${foreign:-}" ]]; then
	mapfile -t local_bases < <(PODMAN="${engine[*]}" ARCH="$arch" hack/image/build-base-image.sh)
	((${#local_bases[@]} == 1)) || exit 1
	build_base="${local_bases[0]}"
elif [[ -z "$build_base" ]]; then
	if "${engine[@]}" image inspect "$public_build" >/dev/null 2>&1 ||
		timeout 120 "${engine[@]}" pull -q "$public_build" >/dev/null 2>&1; then
		build_base="$public_build"
	else
		log "cannot pull $public_build; using the local Debian build base"
		mapfile -t local_bases < <(PODMAN="${engine[*]}" hack/image/build-base-image.sh)
		((${#local_bases[@]} == 2)) || exit 1
		build_base="${local_bases[1]}"
	fi
fi

log "building $image for $platform (base $base, build base $build_base, revision $revision)"
"${engine[@]}" build "${build_flags[@]}" \
	--build-arg "BASE_IMAGE=$base" \
	--build-arg "BUILD_IMAGE=$build_base" \
	--build-arg "VERSION=$version" \
	--build-arg "REVISION=$revision" \
	--build-arg "SOURCE_DATE_EPOCH=$epoch" \
	--build-arg "CREATED=$created" \
	-t "$image" -f Dockerfile . >&2
# The previous build of the same tag is left untagged: remove such leftovers, ours only.
"${engine[@]}" image prune -f --filter "label=org.opencontainers.image.title=status-reporter" >/dev/null 2>&1 || true

# The SBOM, next to the image: copied out of a created (never started) container.
mkdir -p "$(dirname "$sbom")"
container="$("${engine[@]}" create --platform "$platform" "$image")"
"${engine[@]}" cp "$container:/usr/share/doc/status-reporter/sbom.cdx.json" "$sbom" >&2
"${engine[@]}" rm "$container" >/dev/null
log "SBOM: $sbom"
echo "$image"
