"""Every `inlet ...` command that an error or a message in the code tells the operator to run parses as written
with the real CLI (issue 17: a hint needing `--replace` and every `--param` again is no hint). Docstrings are
documentation, not hints; an f-string's placeholders stand as a value."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
from typer._click.exceptions import UsageError  # typer 0.29 carries its own click; its errors are these

from inlet.cli import app

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for folder in ("inlet", "connectors", "flows") for p in sorted((ROOT / folder).rglob("*.py"))]
COMMAND = re.compile(r"`(inlet [^`]+)`|\((inlet [a-z][^)]*)\)")


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(str(v.value) if isinstance(v, ast.Constant) else "X" for v in node.values)
    return None


def hints() -> list[tuple[str, str]]:
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        skip = _docstrings(tree)
        inner = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
        for node in ast.walk(tree):
            if id(node) in skip or id(node) in inner:
                continue
            text = _text(node)
            for match in COMMAND.finditer(text or ""):
                found.append((f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}", match[1] or match[2]))
    return found


HINTS = hints()


def parse(command: str) -> None:
    """Resolve the command down to its leaf and parse its arguments: UsageError for anything wrong."""
    words = shlex.split(command)
    assert words[0] == "inlet" and "..." not in words, f"not a command as written: {command}"
    cli: Any = typer.main.get_command(app)
    ctx = cli.make_context("inlet", [], resilient_parsing=True)
    args = words[1:]
    while hasattr(cli, "list_commands"):  # a group
        assert args, f"{command}: names a group, not a command"
        name, args = args[0], args[1:]
        sub = cli.get_command(ctx, name)
        assert sub is not None, f"{command}: no command {name!r}"
        cli, ctx = sub, sub.make_context(name, [], parent=ctx, resilient_parsing=True)
    cli.make_context(cli.name or "", list(args), parent=ctx.parent, resilient_parsing=False)


def test_the_code_has_hints_to_check() -> None:
    assert len(HINTS) >= 15, HINTS  # the scan finds them (a broken scan would pass every hint)


@pytest.mark.parametrize(("where", "command"), HINTS, ids=[f"{w} {c}" for w, c in HINTS])
def test_every_hint_is_a_command_that_parses(where: str, command: str) -> None:
    try:
        parse(command)
    except UsageError as exc:
        pytest.fail(f"{where}: `{command}` does not parse: {exc.format_message()}")


@pytest.mark.parametrize(
    "command",
    [
        "inlet connections add --credential token=x",  # the hint of issue 17: --tenant, --id and --app missing
        "inlet deliver",
        "inlet connections nosuch --tenant T",
        "inlet import full --tenant T --connection C --no-such-option",
    ],
)
def test_a_broken_hint_fails_the_check(command: str) -> None:
    with pytest.raises((UsageError, AssertionError)):
        parse(command)
