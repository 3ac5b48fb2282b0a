"""Work a normal start-up does not do (docs/design.md "Start-up CPU, instruction by
instruction"): each would cost CPU in every Pod, so each is pinned here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Records which module asks re for each pattern, then runs what every start-up runs:
# every import, the configuration (with integer settings), a valid result read, and a
# JSON log line.
_SCRIPT = """
import io, re, sys
callers = set()
original = re._compile
def recording(pattern, flags):
    frame = sys._getframe(1)
    while frame.f_globals.get("__name__", "").startswith("re"):
        frame = frame.f_back
    callers.add(frame.f_globals.get("__name__", ""))
    return original(pattern, flags)
re._compile = recording
import status_reporter.shell.app
from status_reporter.base import logs
from status_reporter.core.config import load
from status_reporter.core.contract import ResultValid, read_result
config = load({
    "JOB_NAME": "j", "JOB_NAMESPACE": "n", "POD_NAME": "p", "RESULTS_PATH": sys.argv[1],
    "POLL_INTERVAL_SECONDS": "+2", "MAX_WAIT_TIME_SECONDS": "900", "LOG_FORMAT": "json",
})
assert isinstance(read_result(sys.argv[1]), ResultValid)
out = io.BytesIO()
logs.configure(config.log_level, config.log_format, out)
logs.get_logger(job="j").info("exiting", exit_code=0, cpu_seconds=0.05)
assert out.getvalue().startswith(b"{")
print(" ".join(sorted(c for c in callers if c.startswith("status_reporter"))))
"""


def test_a_start_up_compiles_none_of_its_own_regular_expressions(tmp_path: Path) -> None:
    # Compiling a pattern costs 0.3-1.5 M instructions; the configuration, a valid
    # result and ASCII log lines need none (api/transport.py's request-head checks
    # run on every request, so compiling them at import costs nothing extra).
    result = tmp_path / "result.json"
    result.write_text(json.dumps({"status": "success", "reason": "Done", "message": "ok"}))
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(result)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() in ([], ["status_reporter.api.transport"])


def test_the_peak_rss_at_exit_is_vmhwm_read_without_a_codec() -> None:
    # Reading /proc/self/status as ASCII text imported a codec at exit (0.9 M
    # instructions, more than the read itself).
    script = (
        "import sys\n"
        "from status_reporter.shell import app\n"
        "before = 'encodings.ascii' in sys.modules\n"
        "mib = app._peak_rss_mib()\n"
        "hwm = [l for l in open('/proc/self/status', 'rb') if l.startswith(b'VmHWM:')][0]\n"
        "print(before, 'encodings.ascii' in sys.modules, mib, int(hwm.split()[1]) / 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    before, after, mib, hwm = done.stdout.split()
    assert (before, after) == ("False", "False")
    assert 10 < float(mib) <= float(hwm) + 0.05
