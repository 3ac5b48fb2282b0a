#!/usr/bin/env bash
# The Debian packages the image is built from, at the versions hack/image/debian.lock
# pins (`package version` lines): the ones whose files the runtime image holds, and the
# build stage's python3.11-venv with the pip and setuptools wheels it seeds venvs with.
#
#   debian-pins.sh install LOCK   # build stage: install the pinned versions (apt) unless
#                                 # they are what is installed already
#   debian-pins.sh update LOCK [PACKAGE...]
#                                 # re-pin each package of LOCK (and each PACKAGE named) at
#                                 # the mirror's candidate version; `make image-lock` runs it
#                                 # in the build base
#
# A pinned version that the mirror no longer carries (Debian keeps only the newest
# security update) fails the install, naming the package: re-pin with `make image-lock`,
# as `make lock` re-pins the Python requirements.
set -euo pipefail
mode="${1:?usage: debian-pins.sh install|update LOCK [PACKAGE...]}"
lock="${2:?usage: debian-pins.sh install|update LOCK [PACKAGE...]}"
shift 2
export DEBIAN_FRONTEND=noninteractive
apt_get=(apt-get -q -y -o Dpkg::Use-Pty=0 --no-install-recommends)

pins() { sed -e 's/#.*//' "$lock" | awk 'NF == 2 { print $1 "=" $2 }'; }
installed() { dpkg-query -W -f='${db:Status-Status} ${Version}' "$1" 2>/dev/null || true; }

case "$mode" in
install)
	missing=()
	for pin in $(pins); do
		[[ "$(installed "${pin%%=*}")" == "installed ${pin#*=}" ]] || missing+=("$pin")
	done
	if ((${#missing[@]})); then
		echo "debian-pins: installing ${missing[*]}" >&2
		apt-get -q update >&2
		if ! "${apt_get[@]}" --allow-downgrades install "${missing[@]}" >&2; then
			echo "debian-pins: a pinned version is not on the mirror; re-pin with 'make image-lock'" >&2
			exit 1
		fi
		apt-get clean
		rm -rf /var/lib/apt/lists/*
	fi
	for pin in $(pins); do
		got="$(installed "${pin%%=*}")"
		[[ "$got" == "installed ${pin#*=}" ]] || {
			echo "debian-pins: ${pin%%=*}: want ${pin#*=}, have ${got:-nothing}" >&2
			exit 1
		}
	done
	;;
update)
	apt-get -q update >&2
	names=("$@")
	mapfile -t -O "${#names[@]}" names < <(pins | cut -d= -f1)
	new="$(mktemp)"
	# Keep the comments and the order; new packages go to the end.
	while IFS= read -r line; do
		read -r name _ <<<"${line%%#*}"
		if [[ -n "${name:-}" ]]; then
			version="$(apt-cache policy "$name" | awk '$1 == "Candidate:" { print $2 }')"
			[[ -n "$version" && "$version" != "(none)" ]] || { echo "debian-pins: no candidate for $name" >&2; exit 1; }
			printf '%s %s\n' "$name" "$version"
		else
			printf '%s\n' "$line"
		fi
	done <"$lock" >"$new"
	for name in "$@"; do
		grep -q "^$name " "$new" && continue
		printf '%s %s\n' "$name" "$(apt-cache policy "$name" | awk '$1 == "Candidate:" { print $2 }')" >>"$new"
	done
	cat "$new" >"$lock"
	rm -f "$new"
	echo "debian-pins: $(pins | wc -l) packages pinned in $lock" >&2
	;;
*)
	echo "usage: debian-pins.sh install|update LOCK [PACKAGE...]" >&2
	exit 2
	;;
esac
