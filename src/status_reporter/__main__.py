"""``python -m status_reporter``: the same entry point as the console script."""

from status_reporter.shell.cli import main

main()
