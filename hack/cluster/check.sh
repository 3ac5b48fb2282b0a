#!/usr/bin/env bash
# Prove that the single-node cluster left the machine as it was.
#
#   hack/cluster/check.sh baseline   # record the machine (up.sh does this first)
#   hack/cluster/check.sh            # compare: prints one line per check, exit 1 on any leftover
#
# Checked: no process that names the cluster's directory (daemons, shims), no
# container process in a kubepods cgroup, no kubepods cgroup in any hierarchy, no
# mount under the cluster's directory or the kubelet/containerd default paths, the
# same iptables/ip6tables rules and nftables tables, the kernel settings the
# kubelet changes back at their old values, none of those default paths created,
# and no cluster directory, which holds etcd's data: no Node object can survive.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=hack/cluster/lib.sh
. "$here/lib.sh"

snapshot() {
	local s p
	for s in "${SYSCTLS[@]}"; do printf 'sysctl %s=%s\n' "$s" "$(sysctl -n "$s")"; done
	for p in "${OUTSIDE_PATHS[@]}"; do
		if [[ -e $p ]]; then printf 'path %s exists\n' "$p"; else printf 'path %s absent\n' "$p"; fi
	done
	iptables_state | sed 's/^/iptables /'
	nft_tables | sed 's/^/nft /'
}

if [[ "${1:-}" == baseline ]]; then
	# The machine as this run found it: what an older baseline lacks but this holds was
	# added before this run (by anything), and is reported, not blamed on this run.
	snapshot >"$START.tmp"
	mv "$START.tmp" "$START"
	if [[ -e $BASELINE ]]; then
		# A run that was killed never removed it: it still describes the machine
		# before that run, which is what a teardown must restore.
		log "keeping the baseline of an unfinished run: $BASELINE"
	else
		cp "$START" "$BASELINE"
	fi
	exit 0
fi
[[ $# -eq 0 ]] || die "usage: $0 [baseline]"

failed=0
report() { # <name> <leftovers...>
	local name="$1"
	shift
	if (($#)) && [[ -n "$*" ]]; then
		printf 'LEFT  %-12s %s\n' "$name" "$*"
		failed=1
	else
		printf 'clean %-12s\n' "$name"
	fi
}

mapfile -t pids < <(node_pids)
report processes "${pids[@]}"
procs=()
while read -r dir; do
	[[ -f "$dir/cgroup.procs" ]] && mapfile -t -O "${#procs[@]}" procs <"$dir/cgroup.procs"
done < <(node_cgroups)
# A process is listed once per cgroup hierarchy: count it once.
mapfile -t procs < <(printf '%s\n' "${procs[@]}" | sort -un | sed '/^$/d')
report containers "${procs[@]}"
mapfile -t cgroups < <(node_cgroups)
report cgroups "${cgroups[@]}"
mapfile -t mounts < <(node_mounts)
report mounts "${mounts[@]}"
report directory "$([[ -e $CLUSTER_DIR ]] && echo "$CLUSTER_DIR (etcd data: Node objects)")"
# Lines of the snapshot <kind> that differ from the baseline ("<" gone, ">" new),
# less the new ones that this run's start already had (noted instead).
changed() {
	local kind="$1" started
	started="$(grep "^$kind " "$START" 2>/dev/null || true)"
	diff <(grep "^$kind " "$BASELINE") <(grep "^$kind " <<<"$now") | grep '^[<>]' |
		while IFS= read -r change; do
			if [[ $change == ">"* ]] && grep -qxF -- "${change:2}" <<<"$started"; then
				printf 'note  %-12s there before this run: %s\n' "$kind" "${change:2}" >&2
			else
				printf '%s\n' "$change"
			fi
		done
}

if [[ -f $BASELINE ]]; then
	now="$(snapshot)"
	report sysctl "$(changed sysctl | tr '\n' ' ')"
	report paths "$(changed path | grep '^>' | tr '\n' ' ')"
	report iptables "$(changed iptables | tr '\n' ' ')"
	report nftables "$(changed nft | tr '\n' ' ')"
else
	# up.sh writes the baseline before it changes anything, and only a clean
	# teardown removes it: without one, no node has run since the last clean check.
	printf 'skip  %-12s %s\n' baseline "no $BASELINE: sysctls, paths and firewall rules not compared"
fi
exit "$failed"
