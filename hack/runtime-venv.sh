#!/usr/bin/env bash
# Builds a virtualenv holding status-reporter exactly as the container image installs
# it (see Dockerfile): the hash-pinned runtime requirements, the wheel built from
# src/ without dependencies, then pip and setuptools removed. The interpreter is the
# image's: RUNTIME_PYTHON, by default Debian's /usr/bin/python3.11, the program the
# runtime image copies. Here it runs with its full standard library (the image holds the
# part the reporter loads, docs/design.md "The runtime image"), and the host's Debian
# revision may differ from the one hack/image/debian.<arch>.lock pins: a warning says so.
#
# Usage: hack/runtime-venv.sh DIR    (rebuilds DIR from scratch; prints DIR/bin/status-reporter)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
target="${1:?usage: hack/runtime-venv.sh DIR}"
python="${RUNTIME_PYTHON:-/usr/bin/python3.11}"
builder="$root/.venv/bin/pip"  # has the pinned build backend (make install)

"$root/hack/debian-venv.sh" "$python"

if [[ "$python" == /usr/bin/python3.11 ]] && command -v dpkg-query >/dev/null; then
    pinned="$(awk '$1 == "python3.11-minimal" { print $2 }' "$root/hack/image/debian.$(dpkg --print-architecture).lock")"
    here="$(dpkg-query -W -f='${Version}' python3.11-minimal 2>/dev/null || true)"
    [[ "$here" == "$pinned" ]] ||
        echo "note: python3.11-minimal here is ${here:-absent}; the image pins $pinned" >&2
fi

wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
rm -rf "$target"
"$python" -m venv "$target"
pip=("$target/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --require-hashes -r "$root/requirements/runtime.txt"
"$builder" wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation \
    --wheel-dir "$wheels" "$root" >&2
"${pip[@]}" --no-deps "$wheels"/*.whl
"$target/bin/python" -m pip uninstall --quiet --yes pip setuptools >&2
echo "$target/bin/status-reporter"
