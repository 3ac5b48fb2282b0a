"""make bench-scale: N reporters on one kube-apiserver, side by side with the reference;
writes the fleet section of BENCHMARKS.md (section 9) and its plot.

    python -m bench.scale                          # N = 10, 100, 300 (about 70 minutes)
    python -m bench.scale --sizes 10,100,300,500   # other sizes
    python -m bench.scale --repeats 1              # each cell once (about 30 minutes)
    python -m bench.scale --smoke --out DIR        # N = 5, short phases
    python -m bench.scale --render FILE            # the section again from saved runs
    python -m bench.scale --resume                 # measure only what is not saved yet

With ``REFERENCE_BINARY`` (or ``--reference-binary``) the reference Go binary is run too.
Each run is saved as JSON as it ends (``bench-results/fleet.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from harness.controlplane import ROOT, binaries
from harness.reporter import SCRIPT

from bench.fleet import (
    DEFAULT,
    REFERENCE,
    SMOKE,
    THROTTLED,
    FleetRun,
    FleetSettings,
    Phase,
    measure_all,
)
from bench.fleet_report import plot, section, splice
from bench.measure import in_cluster_unavailable, reference_unavailable


def _log(message: str) -> None:
    print(f"[bench-scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _plain(value: object) -> object:
    """``value`` as JSON-ready data (``dataclasses.asdict`` rebuilds a Counter from
    its items, which turns it into counts of pairs)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def save(runs: list[FleetRun], minutes: float, path: Path) -> None:
    """Write the runs, and how long they took, as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"minutes": minutes, "runs": _plain(runs)}
    path.write_text(json.dumps(document, indent=1))


def load(path: Path) -> tuple[list[FleetRun], float]:
    """Read runs written by :func:`save`, and the minutes they took."""
    document = json.loads(path.read_text())
    runs = []
    for data in document["runs"]:
        phases = [
            Phase(
                **{
                    **phase,
                    "verbs": Counter(phase["verbs"]),
                    "codes": Counter({int(k): v for k, v in phase["codes"].items()}),
                }
            )
            for phase in data["phases"]
        ]
        codes = Counter({int(k): v for k, v in data["exit_codes"].items()})
        runs.append(FleetRun(**{**data, "phases": phases, "exit_codes": codes}))
    return runs, float(document["minutes"])


def reference_note(runs: list[FleetRun]) -> str:
    """What the report says about the reference binary in this run."""
    if any(run.implementation == REFERENCE.name for run in runs):
        return (
            "The reference binary, built from openshift-hyperfleet/status-reporter's public "
            "source as for `make bench`, under its own Role (no Pod watch; `update` on "
            "`jobs/status`)."
        )
    return "The reference binary was not run (`REFERENCE_BINARY` not given)."


def write(
    runs: list[FleetRun], settings: FleetSettings, out: Path, minutes: float, smoke: bool
) -> Path:
    """Splice the fleet section into ``out``/BENCHMARKS.md (with its plot unless
    ``smoke``)."""
    if not smoke:
        plot(runs, out / "docs" / "bench")
    text = section(
        runs, settings, minutes=minutes, reference_note=reference_note(runs), plotted=not smoke
    )
    path = out / "BENCHMARKS.md"
    path.write_text(splice(path.read_text() if path.exists() else "# Benchmarks\n", text))
    return path


def settings_from(args: argparse.Namespace) -> FleetSettings:
    """The settings the command line asks for."""
    settings = SMOKE if args.smoke else FleetSettings()
    changes: dict[str, Any] = {
        "reporter": args.reporter.absolute(),
        "reference_binary": args.reference_binary,
    }
    if args.sizes:
        changes["sizes"] = tuple(int(n) for n in args.sizes.split(","))
    if args.throttled_sizes:
        changes["throttled_sizes"] = tuple(int(n) for n in args.throttled_sizes.split(","))
    if args.flows:
        changes["flows"] = tuple(args.flows.split(","))
    if args.repeats:
        changes["repeats"] = args.repeats
    if args.no_profile:
        changes["profile"] = False
    return dataclasses.replace(settings, **changes)


def main(argv: list[str] | None = None) -> int:
    """Measure (or re-render) and write the report."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="N = 5, short phases")
    parser.add_argument("--sizes", default="", help="comma-separated N (default 10,100,300)")
    parser.add_argument(
        "--throttled-sizes", default="", help="comma-separated N throttled (default 10,100)"
    )
    parser.add_argument(
        "--flows", default="", help=f"comma-separated, of {DEFAULT},{THROTTLED} (default both)"
    )
    parser.add_argument(
        "--repeats", type=int, default=0, help="runs per cell with N ≤ 100 (default 3)"
    )
    parser.add_argument(
        "--no-profile", action="store_true", help="do not take kube-apiserver's CPU profile"
    )
    parser.add_argument("--out", type=Path, default=ROOT, help="where BENCHMARKS.md is")
    parser.add_argument("--reporter", type=Path, default=SCRIPT, help="the console script")
    parser.add_argument(
        "--reference-binary",
        default=os.environ.get("REFERENCE_BINARY", ""),
        help="the reference binary, run side by side (default: $REFERENCE_BINARY)",
    )
    parser.add_argument("--render", type=Path, help="re-render from a saved fleet.json")
    parser.add_argument(
        "--resume", action="store_true", help="keep the runs saved by an interrupted run"
    )
    args = parser.parse_args(argv)
    unknown = set(filter(None, args.flows.split(","))) - {DEFAULT, THROTTLED}
    if unknown:
        parser.error(f"unknown flows: {', '.join(sorted(unknown))}")
    settings = settings_from(args)
    saved = args.out / "bench-results" / "fleet.json"
    if args.render:
        runs, minutes = load(args.render)
        settings = dataclasses.replace(
            settings,
            sizes=tuple(sorted({r.n for r in runs if r.flow == DEFAULT})),
            throttled_sizes=tuple(sorted({r.n for r in runs if r.flow == THROTTLED})),
            flows=tuple(dict.fromkeys(r.flow for r in runs)),
        )
        path = write(runs, settings, args.out, minutes, args.smoke)
        _log(f"wrote {path}")
        return 0
    problem = in_cluster_unavailable()
    if problem:
        _log(f"cannot give the reporters in-cluster credentials: {problem}")
        return 2
    if settings.reference_binary and (problem := reference_unavailable(settings.reference_binary)):
        _log(f"the reference binary cannot be run: {problem}")
        return 2
    # Each run is saved as it ends: --resume measures only what is not saved yet.
    previous, minutes = load(saved) if args.resume and saved.exists() else ([], 0.0)
    runs = list(previous)
    started = time.monotonic()

    def done(run: FleetRun) -> None:
        runs.append(run)
        save(runs, minutes + (time.monotonic() - started) / 60, saved)

    skip = {(r.implementation, r.flow, r.n, r.repeat) for r in previous}
    with tempfile.TemporaryDirectory(prefix="status-reporter-fleet-") as tmp:
        _, failures = measure_all(binaries(), Path(tmp), settings, _log, done=done, skip=skip)
    minutes += (time.monotonic() - started) / 60
    save(runs, minutes, saved)
    path = write(runs, settings, args.out, minutes, args.smoke)
    _log(f"wrote {path} and {saved} ({minutes:.1f} minutes)")
    for failure in failures:
        _log(f"not measured: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
