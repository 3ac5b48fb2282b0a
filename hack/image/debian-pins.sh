#!/usr/bin/env bash
# The Debian packages the image is built from, at the versions its architecture's lock,
# hack/image/debian.<arch>.lock, pins (`package version` lines): the ones whose files the
# runtime image holds, and the build stage's python3.11-venv with the pip and setuptools
# wheels it seeds venvs with.
#
#   debian-pins.sh install LOCK   # build stage: install the pinned versions (apt) unless
#                                 # they are what is installed already
#   debian-pins.sh update DIR [PACKAGE...]
#                                 # re-pin every DIR/debian.<arch>.lock (amd64, arm64) at
#                                 # the mirror's candidate versions for that architecture;
#                                 # `make image-lock` runs it in the build base
#
# The locks list the same packages, amd64's the model (its comments and order; PACKAGE
# adds one to every lock), each at its own architecture's version. Those can differ only
# by a binary rebuild (a +bN suffix): every package must come from the same source
# version on each architecture, or the update fails naming the package (the mirror has
# not built that version for every architecture yet: re-pin later).
#
# A pinned version that the mirror no longer carries (Debian keeps only the newest
# security update) fails the install, naming the package: re-pin with `make image-lock`,
# as `make lock` re-pins the Python requirements.
set -euo pipefail
mode="${1:?usage: debian-pins.sh install LOCK | update DIR [PACKAGE...]}"
lock="${2:?usage: debian-pins.sh install LOCK | update DIR [PACKAGE...]}"
shift 2
export DEBIAN_FRONTEND=noninteractive
apt_get=(apt-get -q -y -o Dpkg::Use-Pty=0 --no-install-recommends)
ARCHES=(amd64 arm64)

pins() { sed -e 's/#.*//' "$1" | awk 'NF == 2 { print $1 "=" $2 }'; }
installed() { dpkg-query -W -f='${db:Status-Status} ${Version}' "$1" 2>/dev/null || true; }

case "$mode" in
install)
	missing=()
	for pin in $(pins "$lock"); do
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
	for pin in $(pins "$lock"); do
		got="$(installed "${pin%%=*}")"
		[[ "$got" == "installed ${pin#*=}" ]] || {
			echo "debian-pins: ${pin%%=*}: want ${pin#*=}, have ${got:-nothing}" >&2
			exit 1
		}
	done
	;;
update)
	dir="$lock"
	model="$dir/debian.amd64.lock"
	[[ -f "$model" ]] || { echo "debian-pins: $model: no such file" >&2; exit 1; }
	work="$(mktemp -d)"
	trap 'rm -rf "$work"' EXIT
	: >"$work/status"
	# One apt state per architecture, that architecture as the native one (so that its
	# Architecture: all packages resolve too); the system's own state is not touched.
	apt_for() {
		local arch="$1"
		mkdir -p "$work/$arch/lists/partial" "$work/$arch/cache/archives/partial"
		printf '%s\n' -o "APT::Architecture=$arch" -o "APT::Architectures=$arch" \
			-o "Dir::State::Lists=$work/$arch/lists" -o "Dir::Cache=$work/$arch/cache" \
			-o "Dir::State::Status=$work/status" -o "APT::Sandbox::User=root"
	}
	# The packages named on the command line join amd64's list, at its end.
	cp "$model" "$work/model"
	for name in "$@"; do
		grep -q "^$name " "$model" || printf '%s new\n' "$name" >>"$work/model"
	done
	for arch in "${ARCHES[@]}"; do
		mapfile -t options < <(apt_for "$arch")
		apt-get -q "${options[@]}" update >&2
		: >"$work/$arch.sources"
		while IFS= read -r line; do
			read -r name _ <<<"${line%%#*}"
			if [[ -z "${name:-}" ]]; then
				printf '%s\n' "$line"
				continue
			fi
			version="$(apt-cache "${options[@]}" policy "$name" | awk '$1 == "Candidate:" { print $2 }')"
			[[ -n "$version" && "$version" != "(none)" ]] || { echo "debian-pins: no $arch candidate for $name" >&2; exit 1; }
			printf '%s %s\n' "$name" "$version"
			# The source version: in parentheses after Source when it differs (a rebuild).
			apt-cache "${options[@]}" show "$name=$version" | awk -v name="$name" -v version="$version" '
				$1 == "Source:" && $3 ~ /^\(/ { source = substr($3, 2, length($3) - 2) }
				/^$/ { exit }
				END { print name, (source != "" ? source : version) }' >>"$work/$arch.sources"
		done <"$work/model" >"$work/$arch.lock"
	done
	differing="$(sort "$work/amd64.sources" | join - <(sort "$work/arm64.sources") | awk '$2 != $3 { print "  " $1 ": " $2 " (amd64), " $3 " (arm64)" }')"
	if [[ -n "$differing" ]]; then
		printf 'debian-pins: the architectures have different source versions (the mirror has not built them all yet; re-pin later):\n%s\n' "$differing" >&2
		exit 1
	fi
	for arch in "${ARCHES[@]}"; do
		cat "$work/$arch.lock" >"$dir/debian.$arch.lock"
		echo "debian-pins: $(pins "$dir/debian.$arch.lock" | wc -l) packages pinned in $dir/debian.$arch.lock" >&2
	done
	;;
*)
	echo "usage: debian-pins.sh install LOCK | update DIR [PACKAGE...]" >&2
	exit 2
	;;
esac
