"""What one Job costs the reporter, from exec to exit: CPU and peak RSS per run.

    flock /work/locks/node.lock .venv/bin/python -m bench.profile_job [--runs N]
        [--callgrind DIR] PROGRAM [PROGRAM...]

Starts a kube-apiserver, then runs each PROGRAM (a ``status-reporter`` console script,
e.g. one built by ``hack/runtime-venv.sh``) ``N`` times, the programs interleaved so
that a change of the machine's load falls on all of them alike. Each run is the
benchmark's "result at once" (``bench/measure.py``): in-cluster credentials through
``bench/launch.py``, the result file written before the start, so the run reads it,
reviews its rules, reads the Pod and the Job, watches the Pod, patches the Job's status,
creates an Event and exits. The CPU (user + system) and peak RSS come from ``wait4()``
in the launcher. Prints the median and quartiles per program.

With ``--callgrind DIR`` each program runs once under ``valgrind --tool=callgrind``
instead, its profile written to DIR: instruction counts are exact to a few parts in a
thousand, whatever the load of a shared machine (docs/design.md "Start-up CPU,
instruction by instruction").
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from harness.cluster import AdapterJob, create_job, create_namespace
from harness.controlplane import ControlPlane, binaries
from lightkube import Client

from bench.measure import (
    SUCCESS,
    finish_in_cluster,
    in_cluster_credentials,
    launch_in_cluster,
    write_atomically,
)
from bench.measure import Run as Record


def _job(admin: Client, workdir: Path) -> AdapterJob:
    namespace = create_namespace(admin)
    job = create_job(admin, namespace, workdir / namespace / "results")
    job.running()
    write_atomically(job, json.dumps(SUCCESS))
    return job


def _one(
    plane: ControlPlane, admin: Client, workdir: Path, program: list[str], **env: str
) -> Record:
    job = _job(admin, workdir)
    credentials = in_cluster_credentials(plane, job, workdir)
    environment = {"MONITOR_MODE": "auto", **env}
    process, report, started = launch_in_cluster(
        plane, job, credentials, program[0], environment, arguments=program[1:]
    )
    record = Record("at-once", "auto", "project", job.namespace, started)
    finish_in_cluster(process, report, record, timeout=300)
    if record.exit_code != 0:
        log = (credentials / "reporter.log").read_text(errors="replace")
        raise RuntimeError(f"{program} exited {record.exit_code}:\n{log}")
    return record


def _quartiles(values: list[float]) -> str:
    low, mid, high = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return f"median {mid:.4f} (quartiles {low:.4f}-{high:.4f})"


def main() -> int:
    """Run the measurement described in the module's docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("programs", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--callgrind", type=Path, help="run each program once under callgrind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="profile-job-") as directory:
        workdir = Path(directory)
        plane = ControlPlane.start(binaries(), workdir / "plane")
        try:
            admin = plane.admin_client()
            _one(plane, admin, workdir, [str(args.programs[0])])  # warms the API server up
            if args.callgrind:
                args.callgrind.mkdir(parents=True, exist_ok=True)
                for index, program in enumerate(args.programs):
                    out = args.callgrind.resolve() / f"callgrind.{index}.out"
                    command = ["/usr/bin/valgrind", "--tool=callgrind", "--trace-children=yes"]
                    command += [f"--callgrind-out-file={out}", str(program)]
                    # A fixed hash seed: the same dict and set layouts, the same count.
                    _one(plane, admin, workdir, command, PYTHONHASHSEED="0")
                    print(f"{program}: {out}")
                return 0
            cpu: dict[Path, list[float]] = {program: [] for program in args.programs}
            rss: dict[Path, list[float]] = {program: [] for program in args.programs}
            for _ in range(args.runs):
                for program in args.programs:
                    record = _one(plane, admin, workdir, [str(program)])
                    cpu[program].append(record.cpu_total)
                    rss[program].append(record.rss_mib)
            for program in args.programs:
                print(program)
                print(f"  CPU s, whole process: {_quartiles(cpu[program])}")
                print(f"  peak RSS MiB (ru_maxrss): {_quartiles(rss[program])}")
        finally:
            plane.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
