#!/usr/bin/env bash
# Runs pytest from the project venv. Exit code 5 ("no tests collected") means a test
# target selected nothing, which is always a broken target: report it loudly and fail.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
  echo "ERROR: pytest collected no tests for: $*" >&2
  echo "       A test target that selects nothing proves nothing; check the paths and markers." >&2
  exit 1
fi
exit $rc
