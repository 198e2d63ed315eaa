"""scripts/cluster.sh down removes what up made, and both are safe to run twice: run in network
and mount namespaces of its own, so the machine's own network is never touched
(python3 -m unittest discover scripts/cluster/tests; needs root, as the cluster does)."""

import os
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

SCRIPT = r"""
set -euo pipefail
source scripts/cluster.sh
chains() { { iptables -S; iptables -t mangle -S; ip6tables -S; } | grep -cE 'FLEET-|KUBE-' || true; }
jumps() { iptables -S FORWARD | grep -c 'FLEET-ISOLATION' || true; }

sysctl -qw net.ipv4.ip_forward=0
network_up
network_up
# What kubelet makes of its own.
iptables -N KUBE-FIREWALL && iptables -A INPUT -j KUBE-FIREWALL
ip6tables -N KUBE-FIREWALL && ip6tables -A OUTPUT -j KUBE-FIREWALL
iptables -t mangle -N KUBE-IPTABLES-HINT
echo "jumps after two ups: $(jumps)"
echo "forwarding: $(sysctl -n net.ipv4.ip_forward)"
ip -br link show "$BRIDGE" >/dev/null && echo "bridge: yes"
ip route show "$SERVICE_CIDR" | grep -q "$SERVICE_SINK" && echo "service sink: yes"
mount --bind "$STATE" "$STATE"
mkdir -p "$STATE/kubelet/pods/x"
mount -t tmpfs tmpfs "$STATE/kubelet/pods/x"
start etcd sleep 1000
sleep 0.5
pid="$(cat "$STATE/pids/etcd.pid")"
child="$(pgrep -P "$pid")"

step_down
step_down
echo "mounts left: $(findmnt -rn -o TARGET | grep -cF "$STATE" || true)"
echo "process left: $(kill -0 "$pid" 2>/dev/null && echo yes || echo no)"
# A killed child is gone once its new parent has reaped it: a moment after the signal.
for _ in $(seq 20); do kill -0 "$child" 2>/dev/null || break; sleep 0.1; done
echo "child left: $(kill -0 "$child" 2>/dev/null && echo yes || echo no)"
echo "links left: $(ip -br link | grep -cE "^($BRIDGE|$SERVICE_SINK) " || true)"
echo "chains left: $(chains)"
echo "forwarding after: $(sysctl -n net.ipv4.ip_forward)"
"""


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare") and shutil.which("iptables"),
                     "needs root, unshare and iptables (scripts/cluster.sh's own needs)")
class Teardown(unittest.TestCase):
    def test_down_removes_everything_up_made_and_both_repeat_safely(self):
        with tempfile.TemporaryDirectory() as state:
            done = subprocess.run(
                ["unshare", "--net", "--mount", "--propagation", "private", "bash", "-c", SCRIPT],
                cwd=REPO, capture_output=True, text=True, timeout=120,
                env={**os.environ, "FLEET_CLUSTER_STATE": state})
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
            lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
            self.assertEqual(lines["jumps after two ups"], "1", "up twice adds its rules once")
            self.assertEqual(lines["forwarding"], "1")
            self.assertEqual(lines["bridge"], "yes")
            self.assertEqual(lines["service sink"], "yes")
            self.assertEqual(lines["mounts left"], "0")
            self.assertEqual(lines["process left"], "no")
            self.assertEqual(lines["child left"], "no")
            self.assertEqual(lines["links left"], "0")
            self.assertEqual(lines["chains left"], "0")
            self.assertEqual(lines["forwarding after"], "0", "the sysctl is back as it was before up")
            self.assertIn("the cluster is down", done.stderr)


if __name__ == "__main__":
    unittest.main()
