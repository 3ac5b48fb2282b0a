"""Print the mutation score of `make mutation`, per module and in all, from mutmut's
results in mutants/ (exit code 0 of the tests on a mutant = it survived)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

# mutmut's exit codes per mutant: 1 (or 3) = killed by a test; 0 = survived;
# 33, 34 = skipped or not checked; 36 = timed out, counted as killed.
KILLED = {1, 3, 36, -24}
SURVIVED = {0}
TARGET = 98.0


def main() -> int:
    """Score per module; exit 1 below the target."""
    killed: Counter[str] = Counter()
    survived: Counter[str] = Counter()
    for meta in sorted(Path("mutants/src").rglob("*.py.meta")):
        module = meta.name.removesuffix(".py.meta")
        codes = json.loads(meta.read_text())["exit_code_by_key"].values()
        killed[module] += sum(1 for code in codes if code in KILLED)
        survived[module] += sum(1 for code in codes if code in SURVIVED)
    if not killed and not survived:
        print("no mutation results under mutants/: run `make mutation`", file=sys.stderr)
        return 1
    print("| module | mutants | killed | survived | score |")
    print("|---|---|---|---|---|")
    for module in sorted(killed.keys() | survived.keys()):
        total = killed[module] + survived[module]
        print(
            f"| {module} | {total} | {killed[module]} | {survived[module]} | "
            f"{100 * killed[module] / total:.1f} % |"
        )
    total_killed, total = sum(killed.values()), sum(killed.values()) + sum(survived.values())
    score = 100 * total_killed / total
    verdict = "met" if score >= TARGET else "not met"
    print(f"| all | {total} | {total_killed} | {total - total_killed} | {score:.1f} % |")
    print(f"target >= {TARGET:.0f} % killed: {verdict}")
    return 0 if score >= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
