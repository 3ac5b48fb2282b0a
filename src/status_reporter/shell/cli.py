"""The entry point of the ``status-reporter`` command.

Only the standard library's ``signal`` is needed before the stop handler is in
place: a SIGTERM that arrives while the rest of the program is still being
imported is recorded and handled like any other stop, never a death by signal.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import NoReturn

# Stop signals received before the event loop runs, in order.
early_signals: list[int] = []
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Exit code of a second stop signal before anything could be written.
_ABORTED = 3
# How long the last log lines may take to leave once the run is over: a stalled
# stdout must not keep a decided reporter from exiting.
_LOG_FLUSH_SECONDS = 2.0


def _record(signum: int, _frame: FrameType | None) -> None:
    if early_signals:
        # A second stop: exit at once, as promised.
        os._exit(_ABORTED)
    early_signals.append(signum)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the ``status-reporter`` console script; exits the process."""
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _record)
    # Importing creates tens of thousands of objects, all kept for the process's life:
    # collecting garbage among them is wasted start-up CPU. Afterwards they are moved
    # out of the collector's sight, so later collections only scan what runs create.
    gc.disable()
    from status_reporter.shell import app  # noqa: PLC0415 - imported after the handler on purpose

    gc.freeze()
    gc.enable()
    code = app.main(argv, early_signals)
    # A stop from now on exits at once with the decided code, never as a death by
    # signal (the sidecar's run has handled stops this way since its outcome was known).
    for signum in _STOP_SIGNALS:
        signal.signal(signum, lambda _signum, _frame: os._exit(code))
    from status_reporter.base import logs  # noqa: PLC0415 - imported by app already

    if logs.flush(_LOG_FLUSH_SECONDS):
        # (Otherwise the log writer is stuck in a write to stdout, holding its lock.)
        sys.stdout.flush()
    sys.stderr.flush()
    # Everything is written and closed by now. Tearing the interpreter down (every
    # module and object) would cost more CPU than a whole short run's work after
    # start-up; nothing of it is needed.
    os._exit(code)
