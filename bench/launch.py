"""Run a program with in-cluster service-account credentials and report what it cost.

    python -S -I bench/launch.py REPORT CREDENTIALS LOG -- PROGRAM [ARGUMENT...]
    python -S -I bench/launch.py --release READY,GO REPORT CREDENTIALS LOG -- PROGRAM ...
    python -S -I bench/launch.py --check     # can this machine do it?

The reference binary authenticates only in-cluster: it reads its token and CA from
``/var/run/secrets/kubernetes.io/serviceaccount``. To give it those files without
touching the host, this launcher enters a private mount namespace, mounts a tmpfs over
``/run`` (``/var/run`` points there) and copies ``token``, ``ca.crt`` and ``namespace``
from CREDENTIALS into it. It then takes the wall clock, forks and execs PROGRAM with
its output in LOG, and writes REPORT: that time, the wall clock at which the
``execve`` was seen complete (null if it failed), the exit code, and the program's
peak RSS and CPU from ``wait4()``.

With ``--release READY,GO`` (two inherited file descriptors) it prepares everything,
writes one byte to READY and waits until GO reaches end of file (the harness closes
its end) before it forks: many launchers started beforehand start their programs
together. From then on it runs real-time (``SCHED_FIFO`` priority 1, root), ahead of
every ordinary process, so that on a busy machine the last launcher is not kept
waiting by the first programs. Its child keeps that up to and through ``execve``: a
child that went back to the ordinary scheduling before the exec queued behind
hundreds of programs already running, and so did one at nice -10 now and then (one
exec of 300 came tens of seconds late). The program itself runs with the launcher's
original scheduling and nice value from its first instruction on: the child traces
itself (``PTRACE_TRACEME``), so the kernel stops it once ``execve`` has loaded the
program and before the program runs; the launcher then gives the program its own
original scheduling back and detaches, and the program runs untraced. The child's
short time from ``fork`` to ``execve`` at the real-time priority is the same for every
program.

It needs CAP_SYS_ADMIN (root). It imports only the standard library and runs with
``-S -I``, so that its own memory, which ``ru_maxrss`` carries across ``exec``, stays
far below the program's.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
import time

CLONE_NEWNS = 0x00020000
# The real-time priority (SCHED_FIFO) at which a released launcher runs until its
# program is loaded.
RELEASE_PRIORITY = 1
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PTRACE_TRACEME = 0
PTRACE_CONT = 7
PTRACE_DETACH = 17
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


def _executed(
    libc: ctypes.CDLL, pid: int, scheduling: tuple[int, os.sched_param]
) -> tuple[float | None, tuple[int, resource.struct_rusage] | None]:
    """Wait until the child ``pid``, which traces itself, has exec'd its program; give
    the program ``scheduling`` (policy and parameters) and let it run. The wall clock
    at which the exec was seen (None if the child ended instead: its exec failed), and
    then None, or the ended child's wait status and resource usage."""
    while True:
        _, status, usage = os.wait4(pid, 0)
        if not os.WIFSTOPPED(status):
            return None, (status, usage)
        stopped_by = os.WSTOPSIG(status)
        if stopped_by == signal.SIGTRAP:
            # The program is loaded and has run no instruction of its own yet.
            executed = time.time()
            os.sched_setscheduler(pid, *scheduling)
            _check(libc.ptrace(PTRACE_DETACH, pid, None, None), "ptrace(PTRACE_DETACH)")
            return executed, None
        # A signal that came before the exec: deliver it, as without the tracing.
        _check(libc.ptrace(PTRACE_CONT, pid, None, stopped_by), "ptrace(PTRACE_CONT)")


def main(argv: list[str]) -> int:
    """Launch the program as described above; returns 0 once REPORT is written.
    ``--check`` only tries the mount namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    # The request, pid, address and data are full-width (the data is a pointer).
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    libc.ptrace.restype = ctypes.c_long
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
    scheduling = (os.sched_getscheduler(0), os.sched_getparam(0))
    _private_run(libc)
    os.makedirs(SERVICE_ACCOUNT)
    for name in ("token", "ca.crt", "namespace"):
        with open(os.path.join(credentials, name), "rb") as source:
            data = source.read()
        with open(os.path.join(SERVICE_ACCOUNT, name), "wb") as target:
            target.write(data)
    output = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    if release is not None:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RELEASE_PRIORITY))
        os.write(release[0], b".")
        os.close(release[0])
        while os.read(release[1], 64):
            pass
        os.close(release[1])
    spawned = time.time()
    pid = os.fork()
    if pid == 0:
        try:
            # The program must not outlive a launcher that the harness kills.
            libc.prctl(PR_SET_PDEATHSIG, 9)
            # Stop at the first instruction of the program: the launcher gives it the
            # ordinary scheduling there (see the module's docstring).
            _check(libc.ptrace(PTRACE_TRACEME, 0, None, None), "ptrace(PTRACE_TRACEME)")
            os.dup2(output, 1)
            os.dup2(output, 2)
            os.execv(program[0], program)  # noqa: S606 - a fixed program, no shell
        finally:
            os._exit(127)
    executed, ended = _executed(libc, pid, scheduling)
    os.sched_setscheduler(0, *scheduling)
    _, status, usage = os.wait4(pid, 0) if ended is None else (pid, *ended)
    result = {
        "spawned": spawned,
        "executed": executed,
        "exit_code": os.waitstatus_to_exitcode(status),
        "max_rss_kib": usage.ru_maxrss,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }
    with open(report, "w") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
