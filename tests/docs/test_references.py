"""The docs reference only files that exist: every relative link, and every repository path written in
backticks, in README.md and docs/*.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
# `flows/serve.py`, `docs/scale-out.md`, `inlet/cli/`: a path with a slash whose first part is a top folder
CODE_PATH = re.compile(r"`([A-Za-z_][\w.-]*/[\w./-]*)`")
TOP = {path.name for path in ROOT.iterdir()}


def references(doc: Path) -> list[tuple[str, Path]]:
    text = doc.read_text()
    found = []
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:", "#")):
            continue
        found.append((target, (doc.parent / target.split("#")[0]).resolve()))
    for path in CODE_PATH.findall(text):
        if path.split("/")[0] in TOP and "<" not in path and "*" not in path:
            found.append((path, ROOT / path))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: str(doc.relative_to(ROOT)))
def test_every_file_a_doc_names_exists(doc: Path) -> None:
    missing = [name for name, path in references(doc) if not path.exists()]
    assert missing == [], f"{doc.name} refers to files that do not exist: {missing}"


def test_the_check_sees_the_references_it_must_see() -> None:
    names = {name for name, _ in references(ROOT / "README.md")}
    assert {"docs/flow-run.png", "docs/scale-out.md", "bench/RESULTS.md"} <= names
    assert "DESIGN.md" not in (ROOT / "README.md").read_text() + "".join(d.read_text() for d in DOCS)
