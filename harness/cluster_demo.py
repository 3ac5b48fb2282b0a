"""make demo-cluster (``python -m harness.cluster_demo``): the reporter in real Jobs on a
real single-node Kubernetes.

Starts the node of hack/cluster (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, containerd, kubelet; all on loopback), applies deploy/base and runs
every scenario of tests/cluster as a classic and as a native sidecar, each a Job
derived from deploy/examples. Real containers, a real kubelet and the real Job
controller: nothing is played. Prints each Job's status.conditions as a consumer
reads them, then a summary table, then tears the node down and shows the check
that nothing is left. Exits 1 if any scenario ends wrong or anything is left.
"""

from __future__ import annotations

import sys
import time

from harness.containers import reporter_image
from harness.controlplane import ROOT
from harness.node import Node, unavailable_reason
from harness.scenarios import launch_all, table


def main() -> int:
    reason = unavailable_reason()
    if reason:
        print(f"cannot run the cluster demo: {reason}", file=sys.stderr)
        return 1
    image, why = reporter_image(ROOT)
    if image is None:
        print(f"cannot run the cluster demo: {why}", file=sys.stderr)
        return 1
    print(f"starting the node (image {image}) ...", flush=True)
    started = time.monotonic()
    node = Node.start([image])
    ok = False
    try:
        print(
            f"node {node.env['NODE_NAME']} Ready: Kubernetes {node.env['KUBERNETES_VERSION']}, "
            f"containerd {node.env['CONTAINERD_VERSION']}, "
            f"API https://127.0.0.1:{node.api_port} ({time.monotonic() - started:.0f} s)\n",
            flush=True,
        )
        kube = node.client()
        batch = launch_all(kube, node, image)
        print(
            f"{len(batch.outcomes)} Jobs created at once; waiting for them to end ...\n", flush=True
        )
        outcomes = batch.wait(kube)
        for outcome in outcomes:
            print(f"Job {outcome.job} ({outcome.mode} sidecar, scenario {outcome.scenario.name}):")
            for c in outcome.conditions:
                reason, message = c.get("reason", ""), c.get("message", "")
                print(f"  {c['type']:<19} {c['status']:<5} {reason}: {message}")
            print()
        print(table(outcomes))
        ok = not any(o.problems() for o in outcomes)
    finally:
        print("\ntearing down ...", flush=True)
        clean, check = Node.stop()
        print(check)
    if not clean:
        print("the teardown left something behind", file=sys.stderr)
    elif not ok:
        print("some scenarios ended with the wrong outcome (see the table)", file=sys.stderr)
    return 0 if ok and clean else 1


if __name__ == "__main__":
    sys.exit(main())
