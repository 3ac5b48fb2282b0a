"""What the test suite may not leave on the machine (``make test`` runs this around it).

``python -m harness.host snapshot FILE`` records the host before the suites run;
``python -m harness.host compare FILE`` records it again after them and fails if the
run left anything new: a network interface (the engine's default bridge, a veth), a
network namespace, an iptables or nftables rule, a binfmt_misc handler or a container.
What the first snapshot already held is listed as an earlier run's or the machine's, not
blamed on this run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

# A category of host state, as a sorted list of items; None when it cannot be read here
# (no such tool, not root).
Snapshot = dict[str, list[str] | None]

SYS_NET = Path("/sys/class/net")
NETNS = Path("/run/netns")
BINFMT = Path("/proc/sys/fs/binfmt_misc")
# Counters change while nothing else does.
_IPTABLES_COUNTERS = re.compile(r"\s*\[\d+:\d+\]$")
_NFT_COUNTERS = re.compile(r"\bcounter packets \d+ bytes \d+")
_NFT_HANDLE = re.compile(r"\s*# handle \d+$")


def _lines(command: Sequence[str]) -> list[str] | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return None
    return done.stdout.splitlines() if done.returncode == 0 else None


def interfaces(sys_net: Path = SYS_NET) -> list[str]:
    """Network interfaces, a bridge marked as one."""
    return sorted(
        f"{link.name} (bridge)" if (link / "bridge").is_dir() else link.name
        for link in sys_net.iterdir()
    )


def namespaces(netns: Path = NETNS) -> list[str]:
    """Named network namespaces (what ``ip netns`` and the engines' CNI create)."""
    return sorted(p.name for p in netns.iterdir()) if netns.is_dir() else []


def binfmt_handlers(binfmt: Path = BINFMT) -> list[str] | None:
    """binfmt_misc handlers (None when binfmt_misc is not mounted)."""
    if not (binfmt / "register").exists():
        return None
    return sorted(p.name for p in binfmt.iterdir() if p.name not in ("register", "status"))


def iptables_rules(save: Sequence[str]) -> list[str]:
    """The rules and chains of ``iptables-save`` output, without comments or counters."""
    return sorted(
        _IPTABLES_COUNTERS.sub("", line) for line in save if line and not line.startswith("#")
    )


def nft_rules(ruleset: Sequence[str]) -> list[str]:
    """The lines of ``nft list ruleset``, without counters or handles, each with its table."""
    found, table = [], ""
    for raw in ruleset:
        line = _NFT_HANDLE.sub("", _NFT_COUNTERS.sub("counter", raw)).strip()
        if line.startswith("table "):
            table = line.removesuffix(" {")
            found.append(table)
        elif line and line != "}":
            found.append(f"{table}: {line}")
    return sorted(set(found))


def _through(
    parse: Callable[[Sequence[str]], list[str]], command: Sequence[str]
) -> list[str] | None:
    lines = _lines(command)
    return None if lines is None else parse(lines)


def snapshot() -> Snapshot:
    """The host as the suites may change it."""
    return {
        "interfaces": interfaces(),
        "network namespaces": namespaces(),
        "iptables": _through(iptables_rules, ["iptables-save"]),
        "ip6tables": _through(iptables_rules, ["ip6tables-save"]),
        "nftables": _through(nft_rules, ["nft", "list", "ruleset"]),
        "binfmt_misc": binfmt_handlers(),
        "containers": _through(sorted, ["podman", "ps", "--all", "--format", "{{.Names}}"]),
    }


# What an engine or a node leaves, among what was there before: worth a note.
_TRACE = re.compile(r"CNI|KUBE|podman|netavark|\(bridge\)")
_NOTED_WHOLE = ("network namespaces", "binfmt_misc", "containers")


def _made_by_a_run(category: str, item: str) -> bool:
    return category in _NOTED_WHOLE or bool(_TRACE.search(item))


def compare(before: Mapping[str, list[str] | None], after: Snapshot) -> tuple[list[str], list[str]]:
    """What this run left (each fails it), and notes: earlier leftovers, what was not read."""
    left, notes = [], []
    for category, now in after.items():
        was = before.get(category)
        if now is None:
            notes.append(f"{category}: not compared (cannot be read here)")
            continue
        if was is None:
            # Unreadable before (on a fresh machine the suites install iptables and the
            # engine, and mount binfmt_misc): what only a run can have made is still its.
            notes.append(f"{category}: no baseline (could not be read before this run)")
            left += [f"{category}: {item}" for item in now if _made_by_a_run(category, item)]
            continue
        left += [f"{category}: {item}" for item in sorted(set(now) - set(was))]
        earlier = [i for i in now if i in was and _made_by_a_run(category, i)]
        if earlier:
            notes.append(f"{category}: there before this run: {'; '.join(sorted(earlier))}")
    return left, notes


def main(argv: Sequence[str] | None = None) -> int:
    """``snapshot FILE`` or ``compare FILE``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in ("snapshot", "compare"):
        print("usage: python -m harness.host snapshot|compare FILE", file=sys.stderr)
        return 2
    path = Path(args[1])
    if args[0] == "snapshot":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(snapshot(), indent=1))
        return 0
    left, notes = compare(json.loads(path.read_text()), snapshot())
    for note in notes:
        print(f"host: {note}")
    for item in left:
        print(f"host: LEFT BY THIS RUN: {item}", file=sys.stderr)
    print(f"host: {len(left)} thing(s) left by this run")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
