"""What the CLI's command groups share: lazy imports, one-line errors, name=value pairs and credential values.

Every command module imports the service layer (and with it the store, httpx and Prefect) through `lazy`, on
first use: `inlet --help` and a typo'd command answer without loading any of them.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
import traceback
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from pydantic import SecretStr

    from inlet.service import Installation

__all__ = [
    "credential_value",
    "describe_failure",
    "fail",
    "installation",
    "known_errors",
    "lazy",
    "pairs",
    "set_debug",
]

_DEBUG = {"on": bool(os.environ.get("INLET_DEBUG"))}


class _LazyModule(types.ModuleType):
    """Stands for a module until an attribute is read, then imports it (once: sys.modules keeps it)."""

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self.__name__), attr)


def lazy(name: str) -> Any:
    """Module `name`, imported when first used. Modules use it as `service = lazy("inlet.service")` under an
    `if TYPE_CHECKING` import of the same module, so mypy still checks every call."""
    return _LazyModule(name)


def set_debug(on: bool) -> None:
    """`inlet --debug ...`: known failures print their traceback too."""
    _DEBUG["on"] = on


def describe_failure(exc: BaseException) -> tuple[str, int] | None:
    """A known failure as (one line for the operator, exit code); None for a failure nobody foresaw."""
    name = type(exc).__name__
    modules = {cls.__module__.split(".")[0] for cls in type(exc).__mro__}
    text = _first_line(exc)
    if _is(exc, "inlet.errors", "NotFound"):
        return text, 2
    if _is(exc, "inlet.errors", "ProcessError"):
        return text, 3
    if _is(exc, "inlet.errors", "Unavailable"):
        return text, 3
    if _is(exc, "inlet.errors", "InletError") or _is(exc, "connectors.errors", "SpecError"):
        return text, 2
    if _is(exc, "mappings.errors", "MappingError"):
        return text, 2
    if _is(exc, "connectors.errors", "ConnectorError"):
        return text, 1
    if _is(exc, "pydantic", "ValidationError"):
        return f"invalid value: {_validation_line(exc)}", 2
    if isinstance(exc, TimeoutError) and "slot" in text:
        return f"{text}: another run of this connection holds it; wait for it or see `inlet status`", 4
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return f"a port is taken by another program ({exc.strerror}); free it or choose another port", 3
    if "httpx" in modules and name in {"InvalidURL", "UnsupportedProtocol"}:
        return f"invalid URL: {text}", 2
    if "httpx" in modules and name in {"ConnectError", "ConnectTimeout", "ReadTimeout", "RemoteProtocolError"}:
        return f"a server did not answer ({name}: {text}); is the Prefect server up? start it with `inlet up`", 3
    if isinstance(exc, RuntimeError) and text.startswith("Failed to reach API at"):  # Prefect's client
        return f"the Prefect server does not answer ({text}): start it with `inlet up`, or fix PREFECT_API_URL", 3
    if "prefect" in modules and name == "PrefectHTTPStatusError":
        return f"the Prefect server refused a request: {text}", 3
    return None


def _is(exc: BaseException, module: str, name: str) -> bool:
    """isinstance without importing `module` (if it is not loaded, nothing raised one of its errors)."""
    loaded = sys.modules.get(module)
    cls = getattr(loaded, name, None) if loaded is not None else None
    return isinstance(cls, type) and isinstance(exc, cls)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    more = " (the rest with --debug)" if len(lines) > 1 else ""
    return lines[0].rstrip(":") + more


def _validation_line(exc: BaseException) -> str:
    errors: list[dict[str, Any]] = getattr(exc, "errors", list)()
    if not errors:
        return _first_line(exc)
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or getattr(exc, "title", "value")
    extra = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', '')}{extra}"


def fail(exc: BaseException) -> typer.Exit:
    """Print `exc` as one line on stderr (its traceback too under --debug) and give the Exit to raise."""
    known = describe_failure(exc)
    if _DEBUG["on"]:
        traceback.print_exception(exc, file=sys.stderr)
    if known is None:
        text = f"unexpected {type(exc).__name__}: {_first_line(exc)}"
        hint = "" if _DEBUG["on"] else "; run again with --debug for the traceback"
        typer.secho(f"error: {text}{hint}", err=True, fg="red")
        return typer.Exit(1)
    line, code = known
    typer.secho(f"error: {line}", err=True, fg="red")
    return typer.Exit(code)


@contextmanager
def known_errors() -> Iterator[None]:
    """Every failure becomes one line on stderr and a non-zero exit code; a traceback only under --debug."""
    try:
        yield
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        if type(exc).__module__.startswith("typer"):  # Exit, Abort, BadParameter: Typer prints those itself
            raise
        raise fail(exc) from None


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
    from pydantic import SecretStr

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
    from inlet.service import open_installation
    from inlet.settings import get_settings

    return open_installation(get_settings())
