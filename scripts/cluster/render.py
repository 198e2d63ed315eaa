#!/usr/bin/env python3
"""Writes the local cluster's configuration files (scripts/cluster.sh up).

usage: render.py STATE_DIR

STATE_DIR holds pki/ (scripts/cluster.sh made it with openssl); this writes, beside it,
containerd's, the CNI's, kubelet's, kube-proxy's and CoreDNS's configuration, a kubeconfig per
client and the add-ons applied once the API answers (addons.yaml). Every address is a constant of
this module: what the cluster may reach is decided here, and tests/test_render.py holds it to
that (no default route in a pod, no masquerade, no DNS forwarding, nothing bound to 0.0.0.0).
"""

import base64
import json
import os
import sys
from pathlib import Path

NODE_NAME = "fleet-node"
# The CNI bridge: the host's address on it is the node's address, the pods' gateway to the
# Service range and where the cluster DNS and the metrics server listen. Pods get no default
# route: an address outside the pod and Service ranges is unreachable from a pod.
BRIDGE = "fleet0"
POD_CIDR = "10.244.0.0/24"
NODE_IP = "10.244.0.1"
# The Service range is routed to a bridge with no ports (the kernel has no dummy interfaces
# here): an address kube-proxy has not programmed yet goes nowhere instead of the default route.
SERVICE_SINK = "fleet-svc0"
SERVICE_CIDR = "10.96.0.0/16"
API_SERVICE_IP = "10.96.0.1"
API_PORT = 6443
API_URL = f"https://127.0.0.1:{API_PORT}"
ETCD_CLIENT_PORT = 12379
ETCD_PEER_PORT = 12380
METRICS_SERVER_PORT = 4443
CLUSTER_DOMAIN = "cluster.local"
CNI_BIN_DIR = "/usr/lib/cni"
# The sandbox image every pod starts with, built locally (scripts/cluster.sh images).
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"

# Client identities: the kubeconfig's name, the certificate's file stem in pki/.
CLIENTS = {
    "admin": "admin",
    "controller-manager": "controller-manager",
    "scheduler": "scheduler",
    "kubelet": "kubelet-client",
    "kube-proxy": "kube-proxy",
    "coredns": "coredns",
    "metrics-server": "metrics-server-client",
}


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def kubeconfig(pki: Path, stem: str) -> str:
    # JSON is YAML: one writer, no YAML library needed.
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "fleet",
                    "cluster": {
                        "server": API_URL,
                        "certificate-authority-data": b64(pki / "ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": stem,
                    "user": {
                        "client-certificate-data": b64(pki / f"{stem}.crt"),
                        "client-key-data": b64(pki / f"{stem}.key"),
                    },
                }
            ],
            "contexts": [{"name": "fleet", "context": {"cluster": "fleet", "user": stem}}],
            "current-context": "fleet",
        },
        indent=2,
    )


def containerd_config(state: Path) -> str:
    return f"""\
# containerd for the local cluster: its own root, state and socket, the CRI with runc on cgroupfs
# (cgroups v1, no systemd). Written by scripts/cluster/render.py.
version = 2
root = "{state}/containerd/root"
state = "{state}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{state}/run/containerd.sock"

[ttrpc]
  address = "{state}/run/containerd-ttrpc.sock"

[debug]
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # root here lacks CAP_SYS_RESOURCE: without this every sandbox fails to start.
  restrict_oom_score_adj = true
  # Network namespaces below the state directory, so that down finds every one.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  max_container_log_line_size = 16384

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{state}/cni/net.d"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    # No registry is reachable from here: every image is imported (scripts/cluster.sh images).
    config_path = ""
"""


def cni_config(state: Path) -> str:
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "fleet",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    # A route to the Service range alone, below: no default route, so nothing
                    # in a pod reaches past this machine.
                    "isDefaultGateway": False,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": f"{state}/cni/ipam",
                        "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                        "routes": [{"dst": SERVICE_CIDR}],
                    },
                },
                {"type": "loopback"},
            ],
        },
        indent=2,
    )


def kubelet_config(state: Path) -> str:
    pki = state / "pki"
    return json.dumps(
        {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": NODE_IP,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(pki / "kubelet-serving.crt"),
            "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
            "containerRuntimeEndpoint": f"unix://{state}/run/containerd.sock",
            "cgroupDriver": "cgroupfs",
            # This machine has cgroups v1 (hybrid); kubelet 1.35 and later refuse it by default.
            "failCgroupV1": False,
            "failSwapOn": False,
            "clusterDNS": [NODE_IP],
            "clusterDomain": CLUSTER_DOMAIN,
            # An empty file: a pod with dnsPolicy Default gets no name server of the host's.
            "resolvConf": str(state / "resolv.conf"),
            "podLogsDir": str(state / "pod-logs"),
            "staticPodPath": "",
            "serializeImagePulls": False,
            "maxPods": 60,
            # The images are imported once and never pulled again: keep them however full the
            # disk gets (a pruned image could not come back).
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "300Mi", "nodefs.available": "5%",
                             "imagefs.available": "5%"},
            "shutdownGracePeriod": "0s",
        },
        indent=2,
    )


def kube_proxy_config(state: Path) -> str:
    return json.dumps(
        {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(state / "kubeconfig" / "kube-proxy")},
            "hostnameOverride": NODE_NAME,
            "mode": "iptables",
            "clusterCIDR": POD_CIDR,
            "bindAddress": "127.0.0.1",
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            # NodePorts on the node's address and on loopback only, never on the machine's
            # outside interface.
            "nodePortAddresses": [f"{NODE_IP}/32", "127.0.0.1/32"],
            "iptables": {"localhostNodePorts": True, "masqueradeAll": False},
            # Leave the kernel's connection-tracking settings as they are.
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                          "tcpCloseWaitTimeout": "0s"},
        },
        indent=2,
    )


def corefile(state: Path) -> str:
    return f"""\
# The cluster DNS: the cluster's own names, nothing else. There is no forward plugin: a name
# outside cluster.local is answered NXDOMAIN here, never asked of the host's resolvers.
{CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {NODE_IP}
    errors
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {state}/kubeconfig/coredns
        pods insecure
        ttl 5
    }}
    cache 5
}}
.:53 {{
    bind {NODE_IP}
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"""


def binding(name: str, role: str, user: str, namespace: str | None = None) -> dict:
    """A ClusterRoleBinding of ClusterRole `role` to `user`; with `namespace`, a RoleBinding of
    that namespace's Role."""
    metadata = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role" if namespace else "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }


def addons(state: Path) -> str:
    """What the cluster needs from the API once it answers: the rights of the clients that are
    not built-in (CoreDNS, the metrics server, the API server's client at the kubelet) and the
    metrics API, served by the metrics server on the node's address."""
    ca = b64(state / "pki" / "ca.crt")
    docs = [
        # The API server reads logs, runs exec and proxies to the kubelet as this user.
        binding("fleet:apiserver-kubelet-client", "system:kubelet-api-admin",
                "kube-apiserver-kubelet-client"),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "fleet:coredns"},
            "rules": [
                {"apiGroups": [""], "resources": ["services", "namespaces", "pods"],
                 "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                 "verbs": ["list", "watch"]},
            ],
        },
        binding("fleet:coredns", "fleet:coredns", "fleet:coredns"),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "fleet:metrics-server"},
            "rules": [
                {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["pods", "nodes"],
                 "verbs": ["get", "list", "watch"]},
            ],
        },
        binding("fleet:metrics-server", "fleet:metrics-server", "fleet:metrics-server"),
        # The metrics server checks who calls it through the API server's delegated
        # authentication and authorization.
        binding("fleet:metrics-server:auth-delegator", "system:auth-delegator",
                "fleet:metrics-server"),
        binding("fleet:metrics-server:auth-reader", "extension-apiserver-authentication-reader",
                "fleet:metrics-server", namespace="kube-system"),
        # Who may read the metrics API: whoever may read pods (kubectl top, the autoscaler).
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": "fleet:aggregated-metrics-reader",
                "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true",
                           "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                           "rbac.authorization.k8s.io/aggregate-to-admin": "true"},
            },
            "rules": [{"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"],
                       "verbs": ["get", "list", "watch"]}],
        },
        # The metrics server runs on the node, outside any pod: a Service without a selector
        # and its address by hand. The API server dials it directly (--enable-aggregator-routing).
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "metrics-server", "namespace": "kube-system"},
            "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                "targetPort": METRICS_SERVER_PORT}]},
        },
        # Endpoints, which the API server's service resolver reads; the control plane mirrors
        # them into an EndpointSlice for the readers of those.
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "metrics-server", "namespace": "kube-system"},
            "subsets": [{"addresses": [{"ip": NODE_IP}],
                         "ports": [{"name": "https", "port": METRICS_SERVER_PORT,
                                    "protocol": "TCP"}]}],
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
                "caBundle": ca,
                "service": {"name": "metrics-server", "namespace": "kube-system", "port": 443},
            },
        },
    ]
    return "\n---\n".join(json.dumps(d, indent=2) for d in docs) + "\n"


def render(state: Path) -> None:
    pki = state / "pki"
    files = {
        "containerd.toml": containerd_config(state),
        "cni/net.d/10-fleet.conflist": cni_config(state),
        "kubelet.yaml": kubelet_config(state),
        "kube-proxy.yaml": kube_proxy_config(state),
        "Corefile": corefile(state),
        "resolv.conf": "",
        "addons.yaml": addons(state),
    }
    for name, stem in CLIENTS.items():
        files[f"kubeconfig/{name}"] = kubeconfig(pki, stem)
    for name, text in files.items():
        path = state / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        # Kubeconfigs carry private keys.
        if name.startswith("kubeconfig/"):
            os.chmod(path, 0o600)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[1] == "--shell":
        # The addresses, for scripts/cluster.sh to source.
        for name in ("NODE_NAME", "BRIDGE", "POD_CIDR", "NODE_IP", "SERVICE_SINK",
                     "SERVICE_CIDR", "API_SERVICE_IP", "API_PORT", "API_URL",
                     "ETCD_CLIENT_PORT", "ETCD_PEER_PORT", "METRICS_SERVER_PORT",
                     "CLUSTER_DOMAIN", "CNI_BIN_DIR", "PAUSE_IMAGE"):
            print(f"{name}={globals()[name]}")
        return 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    render(Path(argv[1]).resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
