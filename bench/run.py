"""make bench: measure MONITOR_MODE=auto against the reference behaviour (poll) and
write BENCHMARKS.md with plots.

    python -m bench.run                     # the full run (about 10 minutes)
    python -m bench.run --smoke --out DIR   # N = 1, 3 runs, short windows
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tests.harness.controlplane import ROOT, ControlPlane, binaries

from bench.measure import MODES, SMOKE, Results, Settings, run_all
from bench.report import (
    footprint_table,
    latency_table,
    machine,
    percentile,
    plots,
    requests_table,
    scale_table,
)

HERE = Path(__file__).parent


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _p99_ms(results: Results, mode: str, kind: str) -> float:
    values = [s.latency for s in results.samples if s.mode == mode and s.kind == kind]
    return percentile(values, 99) * 1000


def _total(results: Results, mode: str, runtime: int) -> int:
    return sum(results.requests[(mode, runtime)].values())


def _headline(results: Results) -> str:
    longest = results.settings.api_runtimes[-1]
    return "\n".join(
        [
            f"- result file → condition p99: **{_p99_ms(results, 'auto', 'result'):.0f} ms** "
            f"(auto) vs {_p99_ms(results, 'poll', 'result'):.0f} ms (poll)",
            f"- crash → condition p99: **{_p99_ms(results, 'auto', 'crash'):.0f} ms** (auto) "
            f"vs {_p99_ms(results, 'poll', 'crash'):.0f} ms (poll)",
            f"- API requests per Job, adapter running {longest} s: "
            f"**{_total(results, 'auto', longest)}** (auto) vs "
            f"{_total(results, 'poll', longest)} (poll)",
        ]
    )


def _extrapolation(results: Results) -> str:
    longest = results.settings.api_runtimes[-1]
    per_job = {m: _total(results, m, longest) for m in MODES}
    biggest = max(p.n for p in results.scale)
    rate = {p.mode: p.requests_per_second / p.n for p in results.scale if p.n == biggest}
    rss = {m: max(s.rss_mib for s in results.samples if s.mode == m) for m in MODES}
    jobs, duration = 10_000, 300
    starts = jobs / duration
    rows = [
        f"Assume {jobs:,} adapter Jobs running at any moment, each for {duration} s, so "
        f"{starts:.0f} Jobs start and finish every second. From the measurements above "
        f"(requests per Job at {longest} s; idle rate per reporter at N = {biggest}):",
        "",
        "| | `auto` | `poll` (reference) |",
        "|---|---|---|",
        f"| idle requests/s per reporter | {rate['auto']:.4f} | {rate['poll']:.4f} |",
        f"| steady-state requests/s from {jobs:,} idle reporters | "
        f"{rate['auto'] * jobs:,.0f} | {rate['poll'] * jobs:,.0f} |",
        f"| requests per Job over its life | {per_job['auto']} | {per_job['poll']} |",
        f"| all reporter requests/s ({starts:.0f} Jobs/s × requests per Job) | "
        f"{starts * per_job['auto']:,.0f} | {starts * per_job['poll']:,.0f} |",
        f"| open watches held by the API server | {jobs:,} | 0 |",
        f"| reporter memory, peak RSS × {jobs:,} | {rss['auto'] * jobs / 1024:,.0f} GiB | "
        f"{rss['poll'] * jobs / 1024:,.0f} GiB |",
    ]
    return "\n".join(rows)


def write_report(
    results: Results, plane: ControlPlane, assets: Path, out: Path, smoke: bool
) -> Path:
    """Write BENCHMARKS.md and, unless ``smoke``, its plots (under docs/bench/) into ``out``."""
    if not smoke:
        plots(results, out / "docs" / "bench")
    smoke_note = (
        "\n> **Smoke run**: N = 1 and 3 runs per figure; the numbers only prove the code runs.\n"
        if smoke
        else ""
    )
    text = (
        (HERE / "template.md")
        .read_text()
        .format(
            smoke_note=smoke_note,
            headline=_headline(results),
            machine="\n".join(
                [*machine(plane, assets), f"- This run took {results.seconds / 60:.1f} minutes."]
            ),
            poll_lanes=results.settings.poll_lanes,
            runtimes=", ".join(f"{r} s" for r in results.settings.api_runtimes),
            window=f"{results.settings.window:.0f}",
            latency_result="\n".join(latency_table(results, "result")),
            latency_crash="\n".join(latency_table(results, "crash")),
            requests="\n".join(requests_table(results)),
            footprint="\n".join(footprint_table(results)),
            scale="\n".join(scale_table(results)),
            extrapolation=_extrapolation(results),
            analysis=(HERE / "analysis.md").read_text().strip(),
        )
    )
    path = out / "BENCHMARKS.md"
    path.write_text(text)
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the report."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="N = 1, 3 runs, short windows")
    parser.add_argument("--out", type=Path, default=ROOT, help="where the report goes")
    args = parser.parse_args(argv)
    settings: Settings = SMOKE if args.smoke else Settings()
    assets = binaries()
    with tempfile.TemporaryDirectory(prefix="status-reporter-bench-") as tmp:
        plane = ControlPlane.start(assets, Path(tmp) / "controlplane")
        try:
            _log(f"kube-apiserver {plane.version} at {plane.url}")
            results = run_all(plane, Path(tmp), settings, _log)
            path = write_report(results, plane, assets, args.out, args.smoke)
        finally:
            plane.stop()
    _log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
