"""What every layer above uses: the clock, the logs, and running tasks together.

Imports only :mod:`status_reporter.core`.
"""
