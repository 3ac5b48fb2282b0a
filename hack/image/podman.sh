#!/usr/bin/env bash
# podman with the global flags this kind of machine needs (root, cgroup v1,
# no systemd as PID 1, no journald). Works with or without the containers.conf
# drop-in that hack/image/install-tools.sh writes.
#
#   hack/image/podman.sh build ...      == podman --runtime runc --cgroup-manager=cgroupfs --events-backend=file build ...
#
# Extra global flags can be added with PODMAN_GLOBAL_FLAGS, e.g.
#   PODMAN_GLOBAL_FLAGS="--storage-driver=vfs" hack/image/podman.sh info
set -euo pipefail
# shellcheck disable=SC2086
exec podman --runtime runc --cgroup-manager=cgroupfs --events-backend=file \
    ${PODMAN_GLOBAL_FLAGS:-} "$@"
