"""Run a program with in-cluster service-account credentials and report what it cost.

    python -S -I bench/launch.py REPORT CREDENTIALS LOG -- PROGRAM [ARGUMENT...]
    python -S -I bench/launch.py --release READY,GO REPORT CREDENTIALS LOG -- PROGRAM ...
    python -S -I bench/launch.py --check     # can this machine do it?

The reference binary authenticates only in-cluster: it reads its token and CA from
``/var/run/secrets/kubernetes.io/serviceaccount``. To give it those files without
touching the host, this launcher enters a private mount namespace, mounts a tmpfs over
``/run`` (``/var/run`` points there) and copies ``token``, ``ca.crt`` and ``namespace``
from CREDENTIALS into it. It then takes the wall clock, forks and execs PROGRAM with
its output in LOG, and writes REPORT: that time, the wall clock just before
``execve``, the exit code, and the program's peak RSS and CPU from ``wait4()``.

With ``--release READY,GO`` (two inherited file descriptors) it prepares everything,
writes one byte to READY and waits until GO reaches end of file (the harness closes
its end) before it forks: many launchers started beforehand start their programs
together. Until then it runs at a higher priority (nice -10, root), so that on a busy
machine the last launcher is not kept waiting by the first programs; the program
itself runs at the launcher's original priority.

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
RELEASE_NICE = -10
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
    release = None
    if argv[1] == "--release":
        ready, go = (int(fd) for fd in argv[2].split(","))
        release = (ready, go)
        argv = [argv[0], *argv[3:]]
    report, credentials, log = argv[1:4]
    program = argv[argv.index("--") + 1 :]
    priority = os.getpriority(os.PRIO_PROCESS, 0)
    _private_run(libc)
    os.makedirs(SERVICE_ACCOUNT)
    for name in ("token", "ca.crt", "namespace"):
        with open(os.path.join(credentials, name), "rb") as source:
            data = source.read()
        with open(os.path.join(SERVICE_ACCOUNT, name), "wb") as target:
            target.write(data)
    output = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    if release is not None:
        os.setpriority(os.PRIO_PROCESS, 0, RELEASE_NICE)
        os.write(release[0], b".")
        os.close(release[0])
        while os.read(release[1], 64):
            pass
        os.close(release[1])
    # The child sends its clock just before execve through a pipe closed on exec.
    clock, clock_out = os.pipe()
    spawned = time.time()
    pid = os.fork()
    if pid == 0:
        try:
            # The program must not outlive a launcher that the harness kills.
            libc.prctl(PR_SET_PDEATHSIG, 9)
            os.setpriority(os.PRIO_PROCESS, 0, priority)
            os.dup2(output, 1)
            os.dup2(output, 2)
            os.write(clock_out, repr(time.time()).encode())
            os.execv(program[0], program)  # noqa: S606 - a fixed program, no shell
        finally:
            os._exit(127)
    os.close(clock_out)
    executed = b""
    while chunk := os.read(clock, 64):
        executed += chunk
    os.close(clock)
    os.setpriority(os.PRIO_PROCESS, 0, priority)
    _, status, usage = os.wait4(pid, 0)
    result = {
        "spawned": spawned,
        "executed": float(executed) if executed else spawned,
        "exit_code": os.waitstatus_to_exitcode(status),
        "max_rss_kib": usage.ru_maxrss,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }
    with open(report, "w") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
