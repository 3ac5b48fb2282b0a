#!/usr/bin/env bash
# Gives Debian's /usr/bin/python3.X its venv module, which Debian ships apart
# (python3.X-venv), installing the interpreter too if it is missing. Root and apt-get.
#
# Usage: hack/debian-venv.sh /usr/bin/python3.11
set -euo pipefail

python="${1:?usage: hack/debian-venv.sh /usr/bin/python3.X}"
"$python" -c 'import ensurepip, venv' 2>/dev/null && exit 0
if [[ "$python" != /usr/bin/python3.* ]] || ! command -v apt-get >/dev/null; then
    echo "error: $python cannot create a virtualenv (no venv module)" >&2
    exit 1
fi
version="${python#/usr/bin/python}"
echo "installing Debian's python$version and python$version-venv" >&2
apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python$version" "python$version-venv" >&2
