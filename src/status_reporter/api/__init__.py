"""The API edge: the interface to the Kubernetes API server and everything behind it.

The :class:`~status_reporter.api.protocol.Api` interface, its HTTP implementation
(transport, credentials, kubeconfig), and the policies of calling it: retries, the
start-up permission check, writing the condition. Imports :mod:`status_reporter.core`
and :mod:`status_reporter.base` only.
"""
