"""The entry point of the ``status-reporter`` command.

Only the standard library's ``signal`` is needed before the stop handler is in
place: a SIGTERM that arrives while the rest of the program is still being
imported is recorded and handled like any other stop, never a death by signal.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from types import FrameType

# Stop signals received before the event loop runs, in order.
early_signals: list[int] = []
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Exit code of a second stop signal before anything could be written.
_ABORTED = 3


def _record(signum: int, _frame: FrameType | None) -> None:
    if early_signals:
        # A second stop: exit at once, as promised.
        os._exit(_ABORTED)
    early_signals.append(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``status-reporter`` console script."""
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _record)
    from status_reporter import app  # noqa: PLC0415 - imported after the handler on purpose

    return app.main(argv, early_signals)
