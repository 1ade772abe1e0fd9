"""The connector.yaml reference in docs/ is what the pydantic spec generates, and it describes real files."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import yaml
from typer.testing import CliRunner

from connectors.reference import PAGE_FILE, SCHEMA_FILE, json_schema, markdown, stale, write
from connectors.registry import CONNECTORS_DIR
from inlet.cli import app

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_committed_reference_is_what_the_spec_generates() -> None:
    assert stale(DOCS) == [], "docs/ is stale: run `make reference` (inlet connectors schema) and commit"


def test_a_change_to_the_spec_makes_the_reference_stale(tmp_path: Path) -> None:
    assert write(tmp_path) == [tmp_path / SCHEMA_FILE, tmp_path / PAGE_FILE] and stale(tmp_path) == []
    (tmp_path / PAGE_FILE).write_text(markdown().replace("| `since_filters` |", "| `since_filter` |"))
    result = CliRunner().invoke(app, ["connectors", "schema", "--check", "--out", str(tmp_path)])
    assert result.exit_code == 1 and f"stale: {tmp_path / PAGE_FILE}" in result.output


def test_the_page_documents_every_section_and_key() -> None:
    schema, page = json_schema(), markdown()
    for name, definition in schema["$defs"].items():
        assert f"## {name}\n" in page
        assert all(f"| `{key}` |" in page for key in definition.get("properties", {}))
    assert all(f"| `{key}` |" in page for key in schema["properties"])


def test_every_shipped_and_example_connector_yaml_validates_against_the_schema() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    for path in [*CONNECTORS_DIR.glob("*/connector.yaml"), DOCS / "examples/connectors/tinycrm/connector.yaml"]:
        errors = [
            f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(yaml.safe_load(path.read_text()))
        ]
        assert errors == [], f"{path}: {errors}"


def test_the_schema_refuses_what_the_spec_refuses() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    document = yaml.safe_load((DOCS / "examples/connectors/tinycrm/connector.yaml").read_text())
    document["collections"]["contacts"]["list"]["paginater"] = {"type": "cursor"}
    assert any("paginater" in e.message for e in validator.iter_errors(document))


def test_the_guide_and_the_reference_link_only_to_files_that_exist() -> None:
    for page in (DOCS / "writing-a-connector.md", DOCS / PAGE_FILE):
        targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text())
        missing = [t for t in targets if not t.startswith("http") and not (page.parent / t).exists()]
        assert targets and missing == [], f"{page.name}: {missing}"
