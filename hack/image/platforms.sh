#!/usr/bin/env bash
# The platforms an image is built for: PLATFORM (or the first argument), a
# comma-separated list of os/arch, by default the host's.
#
#   hack/image/platforms.sh                          # linux/amd64 on an x86-64 host
#   hack/image/platforms.sh linux/amd64,linux/arm64  # one per line, after checking each
#   hack/image/platforms.sh --host                   # the host's platform
#
# stdout: one platform per line, the host's first when it is listed. Exit 1 naming a
# platform that is not linux/amd64 or linux/arm64. A platform other than the host's is
# built and checked under emulation (hack/image/emulate.sh, Debian's qemu-user-static).
set -euo pipefail
die() { printf 'platforms: %s\n' "$*" >&2; exit 1; }

case "$(uname -m)" in
x86_64) host=linux/amd64 ;;
aarch64 | arm64) host=linux/arm64 ;;
*) die "unsupported host architecture $(uname -m)" ;;
esac
if [[ "${1:-}" == --host ]]; then
	echo "$host"
	exit 0
fi
list="${1:-${PLATFORM:-$host}}"
IFS=, read -r -a platforms <<<"$list"
((${#platforms[@]} > 0)) || die "PLATFORM is empty"
for platform in "${platforms[@]}"; do
	[[ "$platform" =~ ^linux/(amd64|arm64)$ ]] || die "$platform: want linux/amd64 or linux/arm64"
done
# The host's first: its image is built and checked natively, before any emulated one.
printf '%s\n' "${platforms[@]}" | awk -v host="$host" '!seen[$0]++ { if ($0 == host) print; else rest[++n] = $0 }
	END { for (i = 1; i <= n; i++) print rest[i] }'
