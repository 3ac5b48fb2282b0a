"""The functional core: the rules, as pure functions and types.

The result contract, the configuration, the decision table, condition planning,
what a Pod and a Job say, the Event, and the API objects as types. Nothing here
talks to the API server, sleeps or logs; :func:`~status_reporter.core.contract.read_result`
alone reads a file. Imports nothing of the packages above it.
"""
