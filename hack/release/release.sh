#!/usr/bin/env bash
# Publish the image of the checked-out commit (README, "Releasing").
#
#   hack/release/release.sh push      # make image-push: build, check, push
#   hack/release/release.sh release   # make release: build, check, push, sign, attest,
#                                     # verify what was pushed
#
# stdout: the pushed image by digest, REGISTRY/NAME@sha256:... (progress on stderr).
#
# From the environment (the Makefile's variables):
#   IMAGE_REGISTRY  where to push, e.g. quay.io/my-team (required)
#   IMAGE_NAME      the repository's last part (status-reporter)
#   IMAGE_TAG       the tag (the version: hack/release/version.sh)
#   PLATFORM        the platforms to build (the host's: hack/image/platforms.sh)
#   COSIGN_KEY      the signing key: a cosign key file or a KMS URI (release only);
#                   COSIGN_PASSWORD unlocks a key file
#   REGISTRY_CA     the registry's CA (PEM), trusted by these commands only
#   IMAGE           the local image's name (localhost/status-reporter:<version>)
#   SBOM            where the build writes the SBOM that is attested (build/sbom.cdx.json)
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
[[ -z "$(git status --porcelain)" ]] || die "the working tree has changes; release a commit:
$(git status --short | head -20)"
commit="$(git rev-parse HEAD)"
sbom="${SBOM:-build/sbom.cdx.json}"
if [[ "$mode" == release ]]; then
	[[ -n "${COSIGN_KEY:-}" ]] || die "COSIGN_KEY is not set"
	[[ "$COSIGN_KEY" == *://* || -f "$COSIGN_KEY" ]] ||
		die "COSIGN_KEY=$COSIGN_KEY: no such file (make release-key makes a key pair)"
	# The key's public half, now: a key that cannot be unlocked (COSIGN_PASSWORD) or
	# reached (KMS) stops the release before anything is pushed unsigned.
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
	hack/release/cosign.sh public-key --key "$COSIGN_KEY" --outfile "$tmp/key.pub" >&2 ||
		die "cannot use COSIGN_KEY=$COSIGN_KEY (is COSIGN_PASSWORD set?)"
fi
mapfile -t platforms < <(hack/image/platforms.sh "${PLATFORM:-}")
((${#platforms[@]} > 0)) || exit 1
# Several platforms are one index of per-platform manifests; only one is built today.
((${#platforms[@]} == 1)) || die "PLATFORM=$PLATFORM: one platform per release"
platform="${platforms[0]}"
read -r -a engine < <(hack/image/engine.sh) || exit 1

log "building $version ($commit) for $platform"
image="$(PLATFORM="$platform" SBOM="$sbom" hack/image/build.sh)"

# The checks before anything leaves the machine: the image says what it is, and runs.
log "checking $image"
inspect() { "${engine[@]}" image inspect --format "$1" "$image"; }
label() { inspect "{{index .Config.Labels \"$1\"}}"; }
[[ "$(label version)" == "$version" && "$(label org.opencontainers.image.version)" == "$version" ]] ||
	die "$image: version label '$(label version)', want $version"
[[ "$(label org.opencontainers.image.revision)" == "$commit" ]] ||
	die "$image: revision label '$(label org.opencontainers.image.revision)', want $commit"
[[ "$(inspect '{{.Os}}/{{.Architecture}}')" == "$platform" ]] ||
	die "$image: built for $(inspect '{{.Os}}/{{.Architecture}}'), want $platform"
package="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' src/status_reporter/__init__.py)"
said="$("${engine[@]}" run --rm --read-only --network=none --cap-drop=ALL "$image" --version)"
[[ "$said" == "status-reporter $package" ]] || die "$image --version: '$said', want 'status-reporter $package'"

log "pushing $dest"
pushed="$(hack/release/push.sh "$image" "$dest")"
if [[ "$mode" == release ]]; then
	log "signing $pushed and attesting its SBOM ($sbom)"
	hack/release/cosign.sh sign --yes --key "$COSIGN_KEY" --tlog-upload=false "$pushed" >&2
	hack/release/cosign.sh attest --yes --key "$COSIGN_KEY" --tlog-upload=false \
		--type cyclonedx --predicate "$sbom" "$pushed" >&2
	log "verifying the signature and the attestation of $pushed"
	hack/release/verify.sh "$pushed" "$tmp/key.pub" "$sbom" >&2
fi
log "pushed $dest: $pushed"
echo "$pushed"
