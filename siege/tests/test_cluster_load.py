"""The in-cluster load as the siege pod runs it: only the files siege/kustomization.yaml puts into
its ConfigMap, as a package on PYTHONPATH, `python3 -m siege.cluster_load`, here against a
stand-in gateway."""

import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from siege.common import HERE
from siege.tests.gateway import Gateway


def configmap_files():
    """The files siege/kustomization.yaml's configMapGenerator lists."""
    text = (HERE / "kustomization.yaml").read_text()
    return re.findall(r"^\s+- (\S+\.py)$", text, re.M)


class ClusterLoadTest(unittest.TestCase):
    def test_the_configmap_holds_the_load_and_the_client_it_imports(self):
        self.assertEqual(sorted(configmap_files()), ["__init__.py", "api.py", "cluster_load.py"])
        imported = set(re.findall(r"^from siege\.(\w+) import|^import siege\.(\w+)",
                                  (HERE / "cluster_load.py").read_text(), re.M))
        self.assertEqual({a or b for a, b in imported}, {"api"})

    def test_cycles_through_a_gateway_from_the_configmap_files_alone(self):
        gateway = Gateway().start()
        self.addCleanup(gateway.stop)
        with tempfile.TemporaryDirectory() as mounted:
            package = Path(mounted) / "siege"
            package.mkdir()
            for name in configmap_files():
                (package / name).write_text((HERE / name).read_text())
            env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": mounted,
                   "PYTHONDONTWRITEBYTECODE": "1", "GATEWAY_URL": gateway.url,
                   "LOAD_CONCURRENCY": "3", "LOAD_SECONDS": "1", "LOAD_PROGRESS_EVERY": "0.5",
                   "MANAGER_EMAIL": "manager@fleet.example", "MANAGER_PASSWORD": "secret"}
            done = subprocess.run([sys.executable, "-m", "siege.cluster_load"], cwd=mounted, env=env,
                                  capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        summary = lines[-1]["summary"]
        self.assertGreater(summary["cycles"], 0)
        self.assertEqual(summary["concurrency"], 3)
        self.assertEqual(summary["answers"]["book 201"], 3)
        self.assertEqual(summary["answers"]["register 201"], 1)
        self.assertEqual(summary["answers"]["rent 201"], summary["answers"]["return 200"])
        self.assertTrue(any("progress" in line for line in lines))


if __name__ == "__main__":
    unittest.main()
