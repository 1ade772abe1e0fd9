"""Serving a simulator on 127.0.0.1, with every knob of its constructor reachable from the command line.

A knob is a keyword-only constructor argument of a simulator class (`rate_limit`, `search_per_second`);
`knobs` reads them from the signature, so the command line can never lag behind the module:

    python -m connectors.hubspot.simulator --port 8410 --records 1000 --search-per-second 5
    inlet connectors simulate hubspot --port 8410 --search-per-second 5
"""

from __future__ import annotations

import argparse
import functools
import inspect
import logging
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn

from connectors.simulation.base import SimulatorBase

__all__ = ["Knob", "knobs", "serve", "with_knobs"]

logger = logging.getLogger(__name__)
_NOT_KNOBS = ("token", "clock")  # the token has its own option; a clock is not set from a command line


@dataclass(frozen=True)
class Knob:
    """One switch of a simulator: its constructor argument, its type and its default."""

    name: str
    kind: type
    default: Any
    optional: bool  # `None` is a value (e.g. an unlimited quota)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, text: str) -> Any:
        if self.optional and text.lower() in ("none", "null", ""):
            return None
        return self.kind(text)


def knobs(simulator: type[SimulatorBase]) -> list[Knob]:
    """The keyword-only constructor arguments of a simulator class, with their types and defaults."""
    hints = typing.get_type_hints(simulator.__init__)
    found = []
    for name, parameter in inspect.signature(simulator.__init__).parameters.items():
        if parameter.kind is not inspect.Parameter.KEYWORD_ONLY or name in _NOT_KNOBS:
            continue
        kind, optional = _plain(hints[name])
        found.append(Knob(name, kind, parameter.default, optional))
    return found


def with_knobs(
    simulator: type[SimulatorBase], argv: Sequence[str] | None, description: str
) -> tuple[Callable[..., SimulatorBase], str, list[str]]:
    """For `serve`: a factory with the knobs given in `argv` applied, the description with the knobs listed, and
    the rest of `argv` with `--token` (by default the simulator's own default token)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--token", default=inspect.signature(simulator.__init__).parameters["token"].default)
    for knob in knobs(simulator):
        if knob.kind is bool and not knob.optional:
            parser.add_argument(knob.flag, dest=knob.name, action=argparse.BooleanOptionalAction, default=knob.default)
        else:
            parser.add_argument(knob.flag, dest=knob.name, type=knob.parse, default=knob.default)
    args, rest = parser.parse_known_args(argv)
    chosen = {knob.name: getattr(args, knob.name) for knob in knobs(simulator)}
    switches = ", ".join(f"{k.flag} ({k.default!r})" for k in knobs(simulator))
    described = f"{description} Knobs: {switches}." if switches else description
    return functools.partial(simulator, **chosen), described, [*rest, "--token", args.token]


def serve(make: Callable[..., SimulatorBase], description: str, argv: Sequence[str] | None = None) -> None:
    """`python -m connectors.<app>.simulator --port P --records N --seed S --token T [--token-lifetime S]
    [--deliver-every S] [knobs]`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--token", default="sim-token")
    parser.add_argument("--token-lifetime", type=float, default=None, help="seconds an OAuth access token lives")
    parser.add_argument("--deliver-every", type=float, default=1.0, help="seconds between webhook sends (0: none)")
    args = parser.parse_args(argv)
    simulator = make(records=args.records, seed=args.seed, token=args.token)
    simulator.deliver_every = args.deliver_every
    if args.token_lifetime is not None and simulator.oauth is not None:
        simulator.oauth.configure(lifetime_seconds=args.token_lifetime)
    logger.info("serving %s with %d records on http://%s:%d", simulator.connector, args.records, args.host, args.port)
    uvicorn.run(simulator.app, host=args.host, port=args.port, log_level="warning")


def _plain(hint: Any) -> tuple[type, bool]:
    """`int` → (int, False); `int | None` → (int, True)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and isinstance(args[0], type):
            return args[0], True
    if isinstance(hint, type):
        return hint, False
    raise TypeError(f"a simulator knob must be a plain type or an optional one, not {hint!r}")
