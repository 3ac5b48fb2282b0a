#!/usr/bin/env bash
# Run a command with the platforms of a list runnable here: for each one that is not the
# host's, Debian's qemu-user-static registered as a binfmt_misc handler for the time of
# the command, then removed, whatever the command's end (its exit status, a failure, a
# signal).
#
#   hack/image/emulate.sh linux/amd64,linux/arm64 COMMAND [ARG...]
#
# Exit status: the command's (128+N when a signal N stopped it or this script). For the
# host's platform alone, the command runs as it is.
#
# The handler is Debian's (/usr/lib/binfmt.d/qemu-<arch>.conf, flags F: the kernel opens
# the interpreter at registration, so it runs inside containers too), under a name of
# this project's, status-reporter-qemu-<arch> (STATUS_REPORTER_BINFMT prefixes it
# otherwise). A handler of that name already there is an enclosing run's: used, left in
# place; so is a command run inside another run of this script (STATUS_REPORTER_EMULATED
# set). binfmt_misc is mounted when it is not, and unmounted again at the end.
# Needs root (binfmt_misc) and qemu-user-static (hack/image/install-tools.sh installs it
# when PLATFORM names a platform other than the host's).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
die() { printf 'emulate: %s\n' "$*" >&2; exit 1; }
(($# >= 2)) || die "usage: $0 PLATFORMS COMMAND [ARG...]"
list="$1"
shift
binfmt=/proc/sys/fs/binfmt_misc
prefix="${STATUS_REPORTER_BINFMT:-status-reporter-qemu}"

mapfile -t platforms < <("$here/platforms.sh" "$list")
((${#platforms[@]} > 0)) || exit 1
host="$("$here/platforms.sh" --host)"
needed=()
for platform in "${platforms[@]}"; do
	[[ "$platform" == "$host" ]] && continue
	case "$platform" in
	linux/arm64) needed+=(aarch64) ;;
	linux/amd64) needed+=(x86_64) ;;
	esac
done
((${#needed[@]})) || exec "$@"
# Inside a run of this script already (the handlers in place): the command as it is.
[[ -z "${STATUS_REPORTER_EMULATED:-}" ]] || exec "$@"

[[ "$(id -u)" -eq 0 ]] || die "emulating ${needed[*]} needs root (binfmt_misc)"
mounted=""
registered=()
cleanup() {
	local name removed=("${registered[@]}")
	# Whatever stopped the run, stderr may be a closed pipe: a message must not end the
	# cleanup (SIGPIPE ignored), and the host is restored before anything is said.
	trap '' PIPE
	for name in "${registered[@]}"; do
		[[ -e "$binfmt/$name" ]] && echo -1 >"$binfmt/$name"
	done
	registered=()
	if [[ -n "$mounted" ]]; then
		umount "$binfmt" || printf 'emulate: could not unmount %s\n' "$binfmt" >&2 || true
		mounted=""
	fi
	for name in "${removed[@]}"; do
		printf 'emulate: removed the binfmt_misc handler %s\n' "$name" >&2 || true
	done
}
trap cleanup EXIT

if [[ ! -e "$binfmt/register" ]]; then
	mount -t binfmt_misc binfmt_misc "$binfmt" || die "cannot mount binfmt_misc on $binfmt"
	mounted=1
fi
for arch in "${needed[@]}"; do
	name="$prefix-$arch"
	[[ -e "$binfmt/$name" ]] && continue # an enclosing run's
	conf="/usr/lib/binfmt.d/qemu-$arch.conf"
	[[ -f "$conf" ]] || die "$conf: no such file; install qemu-user-static (hack/image/install-tools.sh with PLATFORM=${platforms[*]})"
	# :name:type:offset:magic:mask:interpreter:flags, Debian's but for the name.
	line="$(grep -m1 '^:' "$conf")"
	line=":$name:${line#:*:}"
	printf '%s' "$line" >"$binfmt/register" || die "cannot register $name"
	registered+=("$name")
	printf 'emulate: registered the binfmt_misc handler %s (%s)\n' "$name" "$(awk -F: '{ print $7 }' <<<"$line")" >&2
done

# The scripts that emulate.sh would wrap see that they run inside it.
export STATUS_REPORTER_EMULATED="${needed[*]}"
# The command in the background, so that a signal to this script is handled at once:
# the command is stopped, then the handlers removed. Its standard input is this one's.
exec 3<&0
"$@" <&3 3<&- &
child=$!
exec 3<&-
stop() {
	kill -TERM "$child" 2>/dev/null || true
	wait "$child" 2>/dev/null || true
	cleanup
	exit "$1"
}
trap 'stop 130' INT
trap 'stop 143' TERM
trap 'stop 129' HUP
trap 'stop 141' PIPE
status=0
wait "$child" || status=$?
exit "$status"
