"""docs/deploy.md's local cluster section, scripts/cluster.sh's usage and its steps agree: every
step the script takes is documented in both places, and the docs give no step the script lacks
(python3 -m unittest discover scripts/cluster/tests)."""

import re
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def script_steps():
    text = (REPO / "scripts" / "cluster.sh").read_text()
    dispatch = text[text.rindex('case "$1" in'):]
    return {m for m in re.findall(r"^\s+([a-z-]+)\) step_", dispatch, re.M)}


def usage_steps():
    text = (REPO / "scripts" / "cluster.sh").read_text()
    usage = text[:text.index("set -euo pipefail")]
    return set(re.findall(r"^#   ([a-z-]+) ", usage, re.M))


def documented_steps():
    docs = (REPO / "docs" / "deploy.md").read_text()
    section = docs[docs.index("## A local cluster without Docker"):]
    section = section[:section.index("\n## ", 1)]
    return set(re.findall(r"scripts/cluster\.sh\s+([a-z-]+)", section))


class Steps(unittest.TestCase):
    def test_usage_names_every_step(self):
        self.assertEqual(usage_steps(), script_steps())

    def test_the_docs_give_every_step_and_no_other(self):
        self.assertEqual(documented_steps(), script_steps())

    def test_the_readme_points_at_the_section(self):
        readme = (REPO / "README.md").read_text()
        self.assertIn("docs/deploy.md#a-local-cluster-without-docker", readme)


if __name__ == "__main__":
    unittest.main()
