#!/usr/bin/env bash
# Find a container engine that works on this machine: one whose `info` succeeds.
#
#   read -r -a engine < <(hack/image/engine.sh)    # e.g. (/abs/hack/image/podman.sh) or (docker)
#
# stdout: the engine's command, one line. Exit 1 (with the reason on stderr) when
# none works. A binary on PATH is not enough: a `docker` client without a daemon,
# or a podman that cannot start containers here, does not count.
#
# Order: $CONTAINER_ENGINE (podman or docker) when set; else podman (through
# podman.sh, with the flags this kind of machine needs); else docker.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"

works() { # <command>...
	timeout 60 "$@" info >/dev/null 2>&1
}

candidates=()
case "${CONTAINER_ENGINE:-}" in
"") candidates=(podman docker) ;;
podman | docker) candidates=("$CONTAINER_ENGINE") ;;
*)
	echo "engine: CONTAINER_ENGINE=$CONTAINER_ENGINE: want podman or docker" >&2
	exit 1
	;;
esac

tried=()
for name in "${candidates[@]}"; do
	if ! command -v "$name" >/dev/null 2>&1; then
		tried+=("$name: not installed")
		continue
	fi
	command=("$name")
	[[ $name == podman ]] && command=("$here/podman.sh")
	if works "${command[@]}"; then
		echo "${command[*]}"
		exit 0
	fi
	tried+=("$name: installed, but '$name info' fails (no daemon or no permission)")
done
reasons="$(printf '%s; ' "${tried[@]}")"
echo "engine: no working container engine (${reasons%; }); hack/image/install-tools.sh installs podman" >&2
exit 1
