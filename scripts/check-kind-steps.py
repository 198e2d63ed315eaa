"""The kind steps of docs/deploy.md and of the CI workflow's kind job are the same commands: every
command in the code blocks of the docs' "## kind" section and every line of the kind job's `run`
steps is `scripts/kind.sh STEP`, the two lists are equal in order, and scripts/kind.sh knows
every STEP. Also: docker/docker-bake.hcl builds exactly the images docker/compose.yaml builds.
Prints what differs and exits 1. Run by scripts/check-deploy.sh (with its venv's Python, which
has PyYAML).

usage: check-kind-steps.py DOCS WORKFLOW KIND_SH BAKE COMPOSE
"""

import re
import sys

import yaml


def docs_commands(text):
    section = re.search(r"^## kind\n(.*?)(?=^## )", text, re.S | re.M)
    if not section:
        return None, ["docs: no '## kind' section"]
    commands, problems = [], []
    for block in re.findall(r"^```(?:sh|bash)?\n(.*?)^```", section.group(1), re.S | re.M):
        for line in block.splitlines():
            command = line.split(" #")[0].strip()
            if not command or command.startswith("#"):
                continue
            if not command.startswith("scripts/kind.sh "):
                problems.append(f"docs: the kind section gives a command that is not a scripts/kind.sh step: {command}")
            commands.append(command)
    return commands, problems


def job_commands(workflow):
    job = (workflow.get("jobs") or {}).get("kind")
    if not job:
        return None, ["workflow: no 'kind' job"]
    commands, problems = [], []
    for step in job.get("steps", []):
        for line in str(step.get("run", "")).splitlines():
            command = line.split(" #")[0].strip()
            if not command or command.startswith("#"):
                continue
            if not command.startswith("scripts/kind.sh "):
                problems.append(f"workflow: the kind job runs a command that is not a scripts/kind.sh step: {command}")
            commands.append(command)
    return commands, problems


def main(docs, workflow, kind_sh, bake, compose):
    problems = []
    in_docs, found = docs_commands(open(docs).read())
    problems += found
    in_job, found = job_commands(yaml.safe_load(open(workflow)))
    problems += found
    if in_docs is not None and in_job is not None and in_docs != in_job:
        problems.append("the docs' kind steps and the kind job's differ:\n  docs: " + "\n        ".join(in_docs)
                        + "\n  job:  " + "\n        ".join(in_job))
    steps = set(re.findall(r"^    ([a-z-]+)\) step_", open(kind_sh).read(), re.M))
    for command in (in_docs or []) + (in_job or []):
        words = command.split()
        if words[0] == "scripts/kind.sh" and (len(words) != 2 or words[1] not in steps):
            problems.append(f"{command}: scripts/kind.sh has no such step (it has: {', '.join(sorted(steps))})")
    services = re.search(r'variable "SERVICES" \{\s*default = \[([^\]]*)\]', open(bake).read())
    baked = set(re.findall(r'"([^"]+)"', services.group(1))) if services else set()
    composed = {s["build"]["args"]["SERVICE"] for s in yaml.safe_load(open(compose))["services"].values()
                if isinstance(s.get("build"), dict) and "SERVICE" in s["build"].get("args", {})}
    if not baked or baked != composed:
        problems.append(f"docker-bake.hcl builds {sorted(baked)}, compose.yaml {sorted(composed)}")
    for problem in problems:
        print(f"kind steps: {problem}", file=sys.stderr)
    if not problems:
        print(f"kind steps: the docs and the kind job run the same {len(in_docs)} scripts/kind.sh steps; "
              f"bake and compose build the same {len(baked)} service images", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
