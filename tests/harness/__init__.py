"""A real local Kubernetes control plane for integration tests, the demo and benchmarks.

``controlplane`` starts etcd and kube-apiserver (RBAC enforced); ``cluster``
plays the Job controller, the kubelet and the adapter; ``reporter`` runs the
installed ``status-reporter`` console script as its own process.
"""
