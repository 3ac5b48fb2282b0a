#!/usr/bin/env bash
# Installs what the fault suite needs from Debian packages, each only when missing:
# iptables (it drops the packets of established loopback connections: a half-open
# network) and tinyproxy-bin (a real CONNECT proxy with basic auth, started by the
# tests on 127.0.0.1; the package holds the executable only, no service).
set -euo pipefail
packages=()
command -v iptables >/dev/null 2>&1 || packages+=(iptables)
command -v tinyproxy >/dev/null 2>&1 || packages+=(tinyproxy-bin)
if [[ ${#packages[@]} -eq 0 ]]; then
	exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
	command -v sudo >/dev/null 2>&1 || { echo "${packages[*]} missing and there is no sudo" >&2; exit 1; }
	sudo="sudo"
fi
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
