"""Benchmarks of status-reporter against a real local kube-apiserver (make bench)."""
