#!/usr/bin/env bash
# Installs iptables from Debian packages: the fault suite drops the packets of
# established loopback connections with it (a half-open network).
set -euo pipefail
if command -v iptables >/dev/null 2>&1; then
	exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
	command -v sudo >/dev/null 2>&1 || { echo "iptables is missing and there is no sudo" >&2; exit 1; }
	sudo="sudo"
fi
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null
