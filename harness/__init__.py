"""The test harness: what the tests, the benchmark and the demos share.

A real local control plane (``controlplane``: etcd and kube-apiserver, RBAC enforced)
and a real single-node cluster (``node``: kubelet, containerd, the Job controller);
playing the Job controller, the kubelet and the adapter against the control plane
(``cluster``); the reporter as its own process (``reporter``) and as an image
(``containers``); faults between the two (``faultproxy``, ``httpproxy``); the
cluster's scenarios (``scenarios``); HyperFleet's validation adapter, which creates
its Jobs with its chart's identity and reads them with its own CEL (``consumer``,
``validation_adapter``, ``cel``, ``exit_codes``); figures one suite records for
another step, and the splicing of generated sections (``records``); what a suite
needs from the machine (``required``); and the demos (``demo``, ``cluster_demo``).
Nothing here imports the tests.
"""
