"""`inlet mappings` and `inlet quarantine` on the command line: layers shown with their origin, refusals
that name tenant, field and reason and save nothing, and one tenant never seeing another's records."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from inlet.cli import app
from inlet.settings import get_settings
from inlet.store import QuarantinedRecord, open_store
from tests.support.tables import table_rows

runner = CliRunner()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INLET_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    assert invoke("init")[0] == 0
    for tenant in ("acme", "globex"):
        invoke("tenants", "add", tenant)
        invoke(
            "connections",
            "add",
            "-t",
            tenant,
            "--id",
            f"{tenant}-hs",
            "--app",
            "hubspot",
            "--credential",
            "token=x",
            "--no-check",
        )
    return tmp_path / "home"


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def show(tenant: str, connection: str | None = None) -> dict[str, str]:
    code, output = invoke("mappings", "show", "-t", tenant, *(["-c", connection] if connection else []))
    assert code == 0, output
    return {row["field"]: f"{row['expression']}    [{row['layer']}]" for row in table_rows(output)}


def test_show_names_the_layer_of_every_field() -> None:
    assert invoke("mappings", "set", "-t", "acme", "email", "{{ email | lower }}")[0] == 0
    assert invoke("mappings", "set", "-t", "acme", "-c", "acme-hs", "crmId", "{{ raw.id }}")[0] == 0
    fields = show("acme", "acme-hs")
    assert fields["email"].endswith("[tenant acme (store)]") and fields["crmId"].endswith(
        "[connection acme-hs (store)]"
    )
    assert "[default (" in fields["phone"]
    assert "crmId" not in show("acme") and show("globex")["email"].endswith(".yaml)]")


def test_a_yaml_file_sets_fields_and_lookups(tmp_path: Path) -> None:
    layer = tmp_path / "acme.yaml"
    layer.write_text(
        "fields:\n  country: \"{{ raw.c | lookup('countries', none) }}\"\nlookups:\n  countries: {FR: France}\n"
    )
    code, output = invoke("mappings", "set", "-t", "acme", "--file", str(layer))
    assert code == 0, output
    code, output = invoke("mappings", "show", "-t", "acme")
    assert re.search(r"^│ countries +│ 1 +│$", output, re.MULTILINE) and "country" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["email", "{{ email | }}"], "tenant 'acme': store: tenant acme: field 'email': expected token 'name'"),
        (["email", "{{ email | nosuchfilter }}"], "field 'email': No filter named 'nosuchfilter'"),
        (["-c", "globex-hs", "email", "{{ email }}"], "tenant 'acme' has no connection 'globex-hs'"),
    ],
)
def test_a_refused_change_says_why_and_saves_nothing(args: list[str], message: str) -> None:
    code, output = invoke("mappings", "set", "-t", "acme", *args)
    assert code == 2 and message in output
    assert show("acme")["email"].endswith("users.yaml)]")


def test_schema_refusals_name_tenant_field_and_reason(home: Path) -> None:
    (home / "schemas").mkdir()
    (home / "schemas" / "users.yaml").write_text(
        "type: object\nrequired: [email]\nproperties:\n"
        + "".join(f"  {name}: {{}}\n" for name in ("email", "fullName", "firstName", "lastName", "phone"))
        + "".join(f"  {name}: {{}}\n" for name in ("company", "title", "active", "sourceUpdatedAt"))
    )
    code, output = invoke("mappings", "set", "-t", "acme", "nickname", "{{ first_name }}")
    assert code == 2 and "tenant 'acme': field 'nickname'" in output and "has no such field" in output
    code, output = invoke("mappings", "set", "-t", "acme", "email", "--remove")
    assert code == 2 and "tenant 'acme': field 'email': required by the app schema" in output and "not mapped" in output
    assert "nickname" not in show("acme") and "email" in show("acme")


def test_unset_and_reset_go_back_to_the_files() -> None:
    invoke("mappings", "set", "-t", "acme", "email", "{{ email | upper }}")
    invoke("mappings", "set", "-t", "acme", "phone", "--remove")
    assert "phone" not in show("acme")
    assert invoke("mappings", "unset", "-t", "acme", "phone")[0] == 0
    assert "phone" in show("acme") and "upper" in show("acme")["email"]
    assert "reset the mapping of tenant acme" in invoke("mappings", "reset", "-t", "acme")[1]
    assert "upper" not in show("acme")["email"]


def test_quarantine_of_one_tenant_is_invisible_to_another(home: Path) -> None:
    with Session(open_store(get_settings().store_url)) as session:
        session.add(
            QuarantinedRecord(
                connection_id="acme-hs", data_source="users", external_id="7", raw="{}", error="e", run_id="r"
            )
        )
        session.commit()
    (row,) = table_rows(invoke("quarantine", "list", "-t", "acme")[1])
    assert (row["connection"], row["record"], row["run"], row["error"]) == ("acme-hs", "7", "r", "e")
    assert invoke("quarantine", "list", "-t", "globex")[1] == "nothing quarantined\n"
    code, output = invoke("quarantine", "show", "-t", "globex", "1")
    assert code == 2 and "tenant 'globex' has no quarantined record 1" in output
    assert "external id: 7" in invoke("quarantine", "show", "-t", "acme", "1")[1]


def test_unknown_tenant_is_not_found() -> None:
    code, output = invoke("mappings", "show", "-t", "nobody")
    assert code == 2 and "no tenant 'nobody'" in output


def test_schema_command_shows_the_schema_in_use(home: Path) -> None:
    assert "no app schema for users" in invoke("mappings", "schema", "-t", "acme")[1]
    (home / "schemas").mkdir()
    (home / "schemas" / "users.yaml").write_text("type: object\nrequired: [email]\n")
    code, output = invoke("mappings", "schema", "-t", "acme", "--refresh")
    assert code == 0 and f"# {home / 'schemas' / 'users.yaml'}" in output and '"required": [\n    "email"' in output
