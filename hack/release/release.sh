#!/usr/bin/env bash
# Publish the image of the checked-out commit (README, "Releasing").
#
#   hack/release/release.sh push      # make image-push: build, check, push
#   hack/release/release.sh release   # make release: build, check, push, sign, attest,
#                                     # verify what was pushed
#
# stdout: the pushed image by digest, REGISTRY/NAME@sha256:... (progress on stderr); for
# several platforms, the digest of the index that names one image per platform.
#
# From the environment (the Makefile's variables):
#   IMAGE_REGISTRY  where to push, e.g. quay.io/my-team (required)
#   IMAGE_NAME      the repository's last part (status-reporter)
#   IMAGE_TAG       the tag (the version: hack/release/version.sh)
#   PLATFORM        the platforms to build (the host's: hack/image/platforms.sh), e.g.
#                   linux/amd64,linux/arm64: one image each, built, checked, pushed,
#                   signed and attested (its own SBOM), then one index naming them,
#                   signed too. Another platform than the host's is built and checked
#                   under emulation (hack/image/emulate.sh); several need podman.
#   COSIGN_KEY      the signing key: a cosign key file or a KMS URI (release only);
#                   COSIGN_PASSWORD unlocks a key file
#   REGISTRY_CA     the registry's CA (PEM), trusted by these commands only
#   IMAGE           the local image's name (localhost/status-reporter:<version>); another
#                   platform's is IMAGE-<arch>
#   SBOM            where the build writes the SBOM that is attested (build/sbom.cdx.json);
#                   another platform's is build/sbom-<arch>.cdx.json
#
# The working tree must be clean: a release is a commit, and the image's revision
# label says which.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
log() { printf 'release: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

mode="${1:-}"
[[ "$mode" == push || "$mode" == release ]] || die "usage: $0 push|release"
[[ -n "${IMAGE_REGISTRY:-}" ]] || die "IMAGE_REGISTRY is not set (e.g. IMAGE_REGISTRY=quay.io/my-team)"
version="$(hack/release/version.sh)"
tag="${IMAGE_TAG:-$version}"
dest="${IMAGE_REGISTRY%/}/${IMAGE_NAME:-status-reporter}:$tag"
mapfile -t platforms < <(hack/image/platforms.sh "${PLATFORM:-}")
((${#platforms[@]} > 0)) || exit 1
read -r -a engine < <(hack/image/engine.sh) || exit 1
((${#platforms[@]} == 1)) || [[ "${engine[0]}" == */podman.sh ]] ||
	die "PLATFORM=$PLATFORM: several platforms need podman (an index of their images)"
host="$(hack/image/platforms.sh --host)"
# Another platform's image is built and checked under emulation, for this release.
if [[ "${platforms[*]}" != "$host" && -z "${STATUS_REPORTER_EMULATED:-}" ]]; then
	exec hack/image/emulate.sh "$(IFS=,; echo "${platforms[*]}")" "$PWD/hack/release/release.sh" "$@"
fi
[[ -z "$(git status --porcelain)" ]] || die "the working tree has changes; release a commit:
$(git status --short | head -20)"
commit="$(git rev-parse HEAD)"
sbom="${SBOM:-build/sbom.cdx.json}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [[ "$mode" == release ]]; then
	[[ -n "${COSIGN_KEY:-}" ]] || die "COSIGN_KEY is not set"
	[[ "$COSIGN_KEY" == *://* || -f "$COSIGN_KEY" ]] ||
		die "COSIGN_KEY=$COSIGN_KEY: no such file (make release-key makes a key pair)"
	# The key's public half, now: a key that cannot be unlocked (COSIGN_PASSWORD) or
	# reached (KMS) stops the release before anything is pushed unsigned.
	hack/release/cosign.sh public-key --key "$COSIGN_KEY" --outfile "$tmp/key.pub" >&2 ||
		die "cannot use COSIGN_KEY=$COSIGN_KEY (is COSIGN_PASSWORD set?)"
fi
package="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' src/status_reporter/__init__.py)"

# Build and check every platform's image before anything leaves the machine: each says
# what it is, and runs (its build already ran the probe in it, hack/image/probe.py).
images=() sboms=()
for platform in "${platforms[@]}"; do
	arch="${platform#linux/}"
	if [[ "$platform" == "$host" ]]; then
		image_p="${IMAGE:-}" sbom_p="$sbom"
	else
		image_p="${IMAGE:+$IMAGE-$arch}" sbom_p="build/sbom-$arch.cdx.json"
	fi
	log "building $version ($commit) for $platform"
	image="$(PLATFORM="$platform" IMAGE="$image_p" SBOM="$sbom_p" hack/image/build.sh)"
	log "checking $image"
	inspect() { "${engine[@]}" image inspect --format "$1" "$image"; }
	label() { inspect "{{index .Config.Labels \"$1\"}}"; }
	[[ "$(label version)" == "$version" && "$(label org.opencontainers.image.version)" == "$version" ]] ||
		die "$image: version label '$(label version)', want $version"
	[[ "$(label org.opencontainers.image.revision)" == "$commit" ]] ||
		die "$image: revision label '$(label org.opencontainers.image.revision)', want $commit"
	[[ "$(inspect '{{.Os}}/{{.Architecture}}')" == "$platform" ]] ||
		die "$image: built for $(inspect '{{.Os}}/{{.Architecture}}'), want $platform"
	said="$("${engine[@]}" run --rm --read-only --network=none --cap-drop=ALL "$image" --version)"
	[[ "$said" == "status-reporter $package" ]] || die "$image --version: '$said', want 'status-reporter $package'"
	images+=("$image") sboms+=("$sbom_p")
done

# sign_and_attest REF SBOM: the signature and the SBOM's attestation, then both verified
# against the key's public half.
sign_and_attest() {
	log "signing $1 and attesting its SBOM ($2)"
	hack/release/cosign.sh sign --yes --key "$COSIGN_KEY" --tlog-upload=false "$1" >&2
	hack/release/cosign.sh attest --yes --key "$COSIGN_KEY" --tlog-upload=false \
		--type cyclonedx --predicate "$2" "$1" >&2
	log "verifying the signature and the attestation of $1"
	hack/release/verify.sh "$1" "$tmp/key.pub" "$2" >&2
}

if ((${#platforms[@]} == 1)); then
	log "pushing $dest"
	pushed="$(hack/release/push.sh "${images[0]}" "$dest")"
	[[ "$mode" == push ]] || sign_and_attest "$pushed" "${sboms[0]}"
else
	log "pushing $dest: an index of ${platforms[*]}"
	pushed_list="$(hack/release/push.sh --index "$dest" "${images[@]}")"
	mapfile -t manifests <<<"$pushed_list"
	((${#manifests[@]} == ${#platforms[@]} + 1)) || die "push.sh --index printed ${#manifests[@]} references"
	pushed="${manifests[0]}"
	if [[ "$mode" == release ]]; then
		for i in "${!platforms[@]}"; do
			sign_and_attest "${manifests[$((i + 1))]}" "${sboms[$i]}"
		done
		log "signing the index $pushed"
		hack/release/cosign.sh sign --yes --key "$COSIGN_KEY" --tlog-upload=false "$pushed" >&2
		hack/release/verify.sh --index "$pushed" "$tmp/key.pub" >&2
	fi
	for i in "${!platforms[@]}"; do
		log "${platforms[$i]}: ${manifests[$((i + 1))]}"
	done
fi
log "pushed $dest: $pushed"
echo "$pushed"
