#!/usr/bin/env bash
# The platforms an image is built for: PLATFORM (or the first argument), a
# comma-separated list of os/arch, by default the host's.
#
#   hack/image/platforms.sh                          # linux/amd64 on an x86-64 host
#   hack/image/platforms.sh linux/amd64,linux/arm64  # one per line, after checking each
#
# stdout: one platform per line. Exit 1 naming a platform this machine cannot build:
# the image is assembled from the build machine's own Debian packages and checked by
# running it, so only the host's architecture is built here.
set -euo pipefail
die() { printf 'platforms: %s\n' "$*" >&2; exit 1; }

case "$(uname -m)" in
x86_64) host=linux/amd64 ;;
aarch64 | arm64) host=linux/arm64 ;;
*) die "unsupported host architecture $(uname -m)" ;;
esac
list="${1:-${PLATFORM:-$host}}"
IFS=, read -r -a platforms <<<"$list"
((${#platforms[@]} > 0)) || die "PLATFORM is empty"
for platform in "${platforms[@]}"; do
	[[ "$platform" =~ ^linux/(amd64|arm64)$ ]] || die "$platform: want linux/amd64 or linux/arm64"
	[[ "$platform" == "$host" ]] || die "$platform: this machine builds and checks only its own platform, $host"
done
printf '%s\n' "${platforms[@]}" | awk '!seen[$0]++'
