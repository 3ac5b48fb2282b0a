"""The monitors: the result file (inotify and polling) and the Pod (a watch and polling).

They only report what changed; deciding is the shell's. Imports the layers below
(:mod:`~status_reporter.core`, :mod:`~status_reporter.base`, :mod:`~status_reporter.api`).
"""
