"""Run a program with in-cluster service-account credentials and report what it cost.

    python -S -I bench/launch.py REPORT CREDENTIALS LOG -- PROGRAM [ARGUMENT...]
    python -S -I bench/launch.py --check     # can this machine do it?

The reference binary authenticates only in-cluster: it reads its token and CA from
``/var/run/secrets/kubernetes.io/serviceaccount``. To give it those files without
touching the host, this launcher enters a private mount namespace, mounts a tmpfs over
``/run`` (``/var/run`` points there) and copies ``token``, ``ca.crt`` and ``namespace``
from CREDENTIALS into it. It then takes the wall clock, forks and execs PROGRAM with
its output in LOG, and writes REPORT: that time, the exit code, and the program's peak
RSS and CPU from ``wait4()``.

It needs CAP_SYS_ADMIN (root). It imports only the standard library and runs with
``-S -I``, so that its own memory, which ``ru_maxrss`` carries across ``exec``, stays
far below the program's.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
SERVICE_ACCOUNT = "/run/secrets/kubernetes.io/serviceaccount"


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _private_run(libc: ctypes.CDLL) -> None:
    """Enter a mount namespace of our own with an empty tmpfs on /run."""
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # Mounts made from here on must not propagate back to the host's namespace.
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    _check(libc.mount(b"tmpfs", b"/run", b"tmpfs", 0, b"size=1m,mode=0755"), "tmpfs on /run")


def main(argv: list[str]) -> int:
    """Launch the program as described above; returns 0 once REPORT is written.
    ``--check`` only tries the mount namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    if argv[1:] == ["--check"]:
        _private_run(libc)
        return 0
    report, credentials, log = argv[1:4]
    program = argv[argv.index("--") + 1 :]
    _private_run(libc)
    os.makedirs(SERVICE_ACCOUNT)
    for name in ("token", "ca.crt", "namespace"):
        with open(os.path.join(credentials, name), "rb") as source:
            data = source.read()
        with open(os.path.join(SERVICE_ACCOUNT, name), "wb") as target:
            target.write(data)
    output = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    spawned = time.time()
    pid = os.fork()
    if pid == 0:
        try:
            # The program must not outlive a launcher that the harness kills.
            libc.prctl(PR_SET_PDEATHSIG, 9)
            os.dup2(output, 1)
            os.dup2(output, 2)
            os.execv(program[0], program)  # noqa: S606 - a fixed program, no shell
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    result = {
        "spawned": spawned,
        "exit_code": os.waitstatus_to_exitcode(status),
        "max_rss_kib": usage.ru_maxrss,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }
    with open(report, "w") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
