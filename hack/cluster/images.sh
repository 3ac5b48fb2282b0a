#!/usr/bin/env bash
# Build the two tiny images the cluster needs, into the container engine's store
# (hack/image/engine.sh), unless present.
#
#   hack/cluster/images.sh            # stdout: the pause image, then the adapter image
#   hack/cluster/images.sh adapter    # stdout: the adapter image only (tests/e2e uses it)
#
# pause:   the static program of ./pause (Go, no dependencies) as the only file;
#          containerd runs it as every Pod's sandbox.
# adapter: Debian's busybox-static with its applets, for the test adapters.
# Tags carry a digest of their inputs, so a change rebuilds them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=hack/cluster/lib.sh
. "$here/lib.sh"
read -r -a engine < <("$here/../image/engine.sh") || die "no working container engine"

pause_tag="$(cat "$here/pause/go.mod" "$here/pause/main.go" | sha256sum | cut -c1-12)"
pause_image="localhost/status-reporter-cluster-pause:$pause_tag"
busybox=/bin/busybox
[[ -x $busybox ]] || die "$busybox missing: run hack/image/install-tools.sh (or hack/cluster/install.sh)"
adapter_tag="$(sha256sum "$busybox" | cut -c1-12)"
adapter_image="localhost/status-reporter-cluster-adapter:$adapter_tag"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

exists() { "${engine[@]}" image inspect "$1" >/dev/null 2>&1; }

only="${1:-}"
if [[ "$only" != adapter ]] && ! exists "$pause_image"; then
	log "building $pause_image"
	mkdir "$work/pause"
	(cd "$here/pause" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$work/pause/pause" .)
	tar -C "$work/pause" --owner=0 --group=0 -cf "$work/pause.tar" pause
	"${engine[@]}" import --change 'ENTRYPOINT ["/pause"]' "$work/pause.tar" "$pause_image" >/dev/null
fi

if ! exists "$adapter_image"; then
	log "building $adapter_image"
	root="$work/adapter"
	mkdir -p "$root/bin" "$root/tmp" "$root/etc"
	cp "$busybox" "$root/bin/busybox"
	for applet in $("$busybox" --list); do
		[[ -e "$root/bin/$applet" ]] || ln -s busybox "$root/bin/$applet"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532:nonroot:/tmp:/bin/sh\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
	chmod 1777 "$root/tmp"
	tar -C "$root" --owner=0 --group=0 -cf "$work/adapter.tar" .
	"${engine[@]}" import --change 'CMD ["/bin/sh"]' "$work/adapter.tar" "$adapter_image" >/dev/null
fi
if [[ "$only" == adapter ]]; then
	printf '%s\n' "$adapter_image"
else
	printf '%s\n' "$pause_image" "$adapter_image"
fi
