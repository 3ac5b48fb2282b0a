"""A storm of file operations on other names in a results directory: what an adapter
that appends to a progress log with ``echo >> f`` (open, append, close) does, and
worse, in several processes at once.

Each process creates a file of its own, appends to it twice and deletes it, in a loop:
four operations (create, append, append, delete) on names the reporter does not read.
On a tmpfs (an ``emptyDir`` with ``medium: Memory``) one Python process does about
150,000 a second on the benchmark machine; an ext4 journal caps it near 25,000.

    python -m harness.storm DIRECTORY SECONDS [PROCESSES]   # prints the rate achieved
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from multiprocessing.context import ForkProcess
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multiprocessing.sharedctypes import Synchronized

# Operations per round of the loop below.
_OPERATIONS = 4
_FLAGS = os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
# Names each process goes through in turn: a queue of events never merges two in a row.
_NAMES = 64


def _churn(directory: str, index: int, stop: float, done: Synchronized[int]) -> None:
    """Create, append to twice and delete files in ``directory`` until ``stop``
    (monotonic); add the operations done to ``done``."""
    names = [os.path.join(directory, f"storm-{index}-{n}.log") for n in range(_NAMES)]
    rounds = 0
    while time.monotonic() < stop:
        for name in names:
            for _ in range(2):  # the first open creates the file
                fd = os.open(name, _FLAGS, 0o644)
                os.write(fd, b"progress\n")
                os.close(fd)
            os.unlink(name)
        rounds += len(names)
    with done.get_lock():
        done.value += rounds * _OPERATIONS


class Storm:
    """``processes`` processes churning ``directory`` for ``seconds`` seconds, from
    entering the context; :attr:`rate` is what they achieved, once it is left."""

    def __init__(self, directory: Path, seconds: float, processes: int = 2) -> None:
        self.directory = directory
        self.seconds = seconds
        self._count = processes
        self._done = multiprocessing.Value("q", 0)
        self._workers: list[ForkProcess] = []
        self._started = 0.0
        self.elapsed = float("nan")

    def __enter__(self) -> Storm:
        self._started = time.monotonic()
        stop = self._started + self.seconds
        context = multiprocessing.get_context("fork")
        self._workers = [
            context.Process(target=_churn, args=(str(self.directory), n, stop, self._done))
            for n in range(self._count)
        ]
        for worker in self._workers:
            worker.start()
        return self

    def wait(self) -> None:
        """Wait for the storm to end."""
        for worker in self._workers:
            worker.join()
        self.elapsed = time.monotonic() - self._started

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is not None:
            for worker in self._workers:
                worker.kill()
        self.wait()

    @property
    def operations(self) -> int:
        """Create, append and delete operations done so far by the finished processes."""
        return int(self._done.value)

    @property
    def rate(self) -> float:
        """Operations per second over the storm."""
        return self.operations / self.elapsed


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, from ``/proc/PID/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat(5); the split starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str]) -> int:
    """Run a storm from the command line and print the rate it achieved."""
    directory, seconds = Path(argv[0]), float(argv[1])
    processes = int(argv[2]) if len(argv) > 2 else 2
    with Storm(directory, seconds, processes) as storm:
        pass
    print(f"{storm.operations} operations in {storm.elapsed:.1f} s: {storm.rate:,.0f}/s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
