"""Citations of the design of record resolve: every `docs/design.md §N` (or `design.md section
N`, or a link to `design.md#anchor`) in the repository names a section or heading that
docs/design.md has, a bare `§N` inside docs/design.md names one of its own sections, and nothing
names the design file that lived outside the repository. Needs python3 alone
(python3 -m unittest discover -s scripts/checks)."""

import re
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DESIGN = Path("docs") / "design.md"
# Spelt in two parts, so that a search of the repository for it finds only real citations.
FORMER = "DESIGN" + ".md"
SKIPPED_DIRS = {".git", "target", "node_modules", "__pycache__", ".venv", "venv"}

NUMBER = r"\d+(?:\.\d+)*"
# A citation may run onto the next comment line: `docs/design.md\n/// §3.4`.
CITATION = re.compile(
    rf"design\.md(?:\s|//[/!]?|#(?![\w-])|\*)*"
    rf"((?:§\s*{NUMBER}|section\s+{NUMBER})(?:(?:\s*,\s*|\s+and\s+|\s+or\s+)(?:§\s*{NUMBER}))*)"
)
ANCHOR = re.compile(r"design\.md#([\w-]+)")
# Inside docs/design.md: `§N` that is not an RFC's section.
OWN = re.compile(rf"§\s*({NUMBER})")
RFC_BEFORE = re.compile(r"RFC\s+\d+\s*$")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def slug(heading):
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def outline(design_text):
    """The section numbers and heading anchors of docs/design.md."""
    headings = HEADING.findall(design_text)
    numbers = set()
    for heading in headings:
        m = re.match(rf"({NUMBER})\.?\s", heading)
        if m:
            numbers.add(m.group(1))
    return numbers, {slug(h) for h in headings}


def text_files(root):
    for path in sorted(root.rglob("*")):
        if any(part in SKIPPED_DIRS for part in path.relative_to(root).parts):
            continue
        # This file's cases cite missing sections on purpose.
        if not path.is_file() or path.resolve() == Path(__file__).resolve():
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue
        try:
            yield path, data.decode("utf-8")
        except UnicodeDecodeError:
            continue


def problems(root):
    """Every unresolved citation under `root`, as `path:line: what`."""
    design = root / DESIGN
    if not design.is_file():
        return [f"{DESIGN} is missing"]
    numbers, anchors = outline(design.read_text(encoding="utf-8"))
    found = []
    for path, text in text_files(root):
        where = path.relative_to(root)

        def line_of(offset):
            return text.count("\n", 0, offset) + 1

        for m in re.finditer(re.escape(FORMER), text):
            found.append(f"{where}:{line_of(m.start())}: names {FORMER}; cite {DESIGN} instead")
        for m in CITATION.finditer(text):
            for number in re.findall(NUMBER, m.group(1)):
                if number not in numbers:
                    found.append(f"{where}:{line_of(m.start())}: {DESIGN} has no §{number}")
        for m in ANCHOR.finditer(text):
            if m.group(1) not in anchors:
                found.append(f"{where}:{line_of(m.start())}: {DESIGN} has no heading #{m.group(1)}")
        if where == DESIGN:
            for m in OWN.finditer(text):
                if RFC_BEFORE.search(text[max(0, m.start() - 16):m.start()]):
                    continue
                if m.group(1) not in numbers:
                    found.append(f"{where}:{line_of(m.start())}: no §{m.group(1)} on this page")
    return found


class RepositoryCitations(unittest.TestCase):
    def test_every_citation_resolves(self):
        self.assertEqual(problems(REPO), [])

    def test_the_design_keeps_its_sections(self):
        numbers, _ = outline((REPO / DESIGN).read_text(encoding="utf-8"))
        self.assertTrue({"1", "2", "3", "4", "5", "6"} <= numbers, numbers)


class TheCheckRefusesBrokenCitations(unittest.TestCase):
    """The check on a repository of its own, made for each case."""

    DESIGN_TEXT = "# Design\n\n## 1. One\n\n### 1.1 Part\n\n## 2. Two (the second)\n\nSee §1.1.\n"

    def check(self, files):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for name, text in {str(DESIGN): self.DESIGN_TEXT, **files}.items():
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_text(text, encoding="utf-8")
            return problems(root)

    def test_valid_citations_pass(self):
        self.assertEqual(
            self.check({
                "src/lib.rs": "//! The API (docs/design.md §1.1, §2) and\n//! docs/design.md\n//! §2 again.\n",
                "README.md": "[two](docs/design.md#2-two-the-second), RFC 6749 §4.3\n",
                "deploy.yaml": "# docs/design.md section 2\n",
            }),
            [],
        )

    def test_a_missing_section_fails(self):
        found = self.check({"src/lib.rs": "//! docs/design.md §1.1, §3\n"})
        self.assertEqual(found, [f"src/lib.rs:1: {DESIGN} has no §3"])

    def test_a_missing_section_across_comment_lines_fails(self):
        found = self.check({"src/lib.rs": "/// as docs/design.md\n/// §7 says\n"})
        self.assertEqual(found, [f"src/lib.rs:1: {DESIGN} has no §7"])

    def test_a_missing_anchor_fails(self):
        found = self.check({"README.md": "see [it](docs/design.md#9-nine)\n"})
        self.assertEqual(found, [f"README.md:1: {DESIGN} has no heading #9-nine"])

    def test_naming_the_former_file_fails(self):
        found = self.check({"k/policy.yaml": f"# ({FORMER} section 2)\n"})
        self.assertEqual(len(found), 1, found)
        self.assertIn(f"names {FORMER}", found[0])

    def test_a_missing_section_inside_the_design_fails(self):
        self.DESIGN_TEXT += "As §4 says; RFC 6749 §4.4 is not ours.\n"
        found = self.check({})
        self.assertEqual(found, [f"{DESIGN}:10: no §4 on this page"])


if __name__ == "__main__":
    unittest.main()
