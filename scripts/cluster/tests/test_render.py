"""scripts/cluster/render.py: the local cluster's configuration keeps every address on this
machine (python3 -m unittest discover scripts/cluster/tests)."""

import ipaddress
import json
import os
import stat
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import render  # noqa: E402


class Rendered(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.state = Path(cls.tmp.name)
        pki = cls.state / "pki"
        pki.mkdir()
        # Stand-ins: the renderer embeds these files, it does not read them as certificates.
        for name in ["ca"] + list(render.CLIENTS.values()):
            (pki / f"{name}.crt").write_text(f"{name} certificate")
            (pki / f"{name}.key").write_text(f"{name} key")
        render.render(cls.state)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def read_json(self, name):
        return json.loads((self.state / name).read_text())

    def test_pods_get_no_default_route_and_no_masquerade(self):
        bridge = self.read_json("cni/net.d/10-fleet.conflist")["plugins"][0]
        self.assertFalse(bridge["isDefaultGateway"])
        self.assertFalse(bridge["ipMasq"])
        routes = [ipaddress.ip_network(r["dst"]) for r in bridge["ipam"]["routes"]]
        self.assertEqual(routes, [ipaddress.ip_network(render.SERVICE_CIDR)])
        self.assertNotIn(ipaddress.ip_network("0.0.0.0/0"), routes)
        self.assertEqual(bridge["ipam"]["ranges"], [[{"subnet": render.POD_CIDR,
                                                      "gateway": render.NODE_IP}]])
        # host-local keeps its leases below the state directory, where down finds them.
        self.assertTrue(bridge["ipam"]["dataDir"].startswith(str(self.state)))

    def test_the_cluster_dns_answers_its_own_names_and_forwards_nothing(self):
        corefile = (self.state / "Corefile").read_text()
        code = [line.split("#")[0] for line in corefile.splitlines()]
        for plugin in ("forward", "proxy", "resolv.conf"):
            self.assertFalse(any(plugin in line for line in code), plugin)
        binds = [line.split()[1] for line in code if line.strip().startswith("bind ")]
        self.assertEqual(set(binds), {render.NODE_IP})
        self.assertIn("rcode NXDOMAIN", corefile)
        # Pods with dnsPolicy Default get no name server of the host's.
        kubelet = self.read_json("kubelet.yaml")
        self.assertEqual((self.state / "resolv.conf").read_text(), "")
        self.assertEqual(kubelet["resolvConf"], str(self.state / "resolv.conf"))
        self.assertEqual(kubelet["clusterDNS"], [render.NODE_IP])

    def test_nothing_listens_on_every_interface(self):
        kubelet = self.read_json("kubelet.yaml")
        self.assertEqual(kubelet["address"], render.NODE_IP)
        self.assertEqual(kubelet["readOnlyPort"], 0)
        self.assertFalse(kubelet["authentication"]["anonymous"]["enabled"])
        self.assertEqual(kubelet["authorization"]["mode"], "Webhook")
        proxy = self.read_json("kube-proxy.yaml")
        self.assertEqual(proxy["nodePortAddresses"], [f"{render.NODE_IP}/32", "127.0.0.1/32"])
        for key in ("healthzBindAddress", "metricsBindAddress"):
            self.assertTrue(proxy[key].startswith("127.0.0.1:"), key)
        self.assertFalse(proxy["iptables"]["masqueradeAll"])

    def test_cgroups_v1_without_systemd(self):
        kubelet = self.read_json("kubelet.yaml")
        self.assertEqual(kubelet["cgroupDriver"], "cgroupfs")
        self.assertIs(kubelet["failCgroupV1"], False)
        containerd = (self.state / "containerd.toml").read_text()
        self.assertIn("SystemdCgroup = false", containerd)
        self.assertIn("restrict_oom_score_adj = true", containerd)
        self.assertIn(f'sandbox_image = "{render.PAUSE_IMAGE}"', containerd)
        self.assertIn(f'address = "{self.state}/run/containerd.sock"', containerd)

    def test_every_client_reaches_the_api_on_loopback_with_a_key_only_root_reads(self):
        for name, stem in render.CLIENTS.items():
            path = self.state / "kubeconfig" / name
            config = json.loads(path.read_text())
            self.assertEqual(config["clusters"][0]["cluster"]["server"], "https://127.0.0.1:6443")
            self.assertEqual(config["users"][0]["name"], stem)
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600, name)

    def test_the_ranges_are_private_and_apart(self):
        pods = ipaddress.ip_network(render.POD_CIDR)
        services = ipaddress.ip_network(render.SERVICE_CIDR)
        self.assertTrue(pods.is_private and services.is_private)
        self.assertFalse(pods.overlaps(services))
        self.assertIn(ipaddress.ip_address(render.NODE_IP), pods)
        self.assertEqual(ipaddress.ip_address(render.API_SERVICE_IP), services[1])

    def test_the_metrics_api_points_at_the_node(self):
        docs = [json.loads(d) for d in (self.state / "addons.yaml").read_text().split("\n---\n")]
        kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
        self.assertIn(("APIService", "v1beta1.metrics.k8s.io"), kinds)
        (endpoints,) = [d for d in docs if d["kind"] == "Endpoints"]
        self.assertEqual(endpoints["metadata"]["name"], "metrics-server")
        self.assertEqual(endpoints["subsets"][0]["addresses"], [{"ip": render.NODE_IP}])


if __name__ == "__main__":
    unittest.main()
