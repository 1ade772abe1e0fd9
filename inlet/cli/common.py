"""What the CLI's command groups share: turning known errors into exit codes, and parsing name=value pairs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from pydantic import SecretStr

from connectors.errors import ConnectorError, SpecError
from inlet.errors import InletError, NotFound
from inlet.service import Installation, open_installation
from inlet.settings import get_settings
from mappings.errors import MappingError

__all__ = ["credential_value", "installation", "known_errors", "pairs"]


@contextmanager
def known_errors() -> Iterator[None]:
    """Known errors become one line on stderr and a non-zero exit code, never a traceback."""
    try:
        yield
    except NotFound as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except (InletError, SpecError, MappingError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except ConnectorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def pairs(values: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{what} {item!r} is not name=value")
        pairs[name] = value
    return pairs


def credential_value(value: str) -> SecretStr:
    """A credential value as given, or read from `env:NAME` or `@file` so it stays out of shell history."""
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise typer.BadParameter(f"environment variable {name} is not set")
        return SecretStr(os.environ[name])
    if value.startswith("@"):
        return SecretStr(Path(value[1:]).read_text().strip())
    return SecretStr(value)


def installation() -> Installation:
    """The installation of this process's settings (INLET_* and .inlet/)."""
    return open_installation(get_settings())
