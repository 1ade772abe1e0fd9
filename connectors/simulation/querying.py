"""The small query languages simulators parse (SOQL, OData `$filter`): a token cursor and boolean conditions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Test", "TokenStream", "boolean"]

Test = Callable[[Any], bool]  # a condition on one record


class TokenStream:
    """`(kind, text)` tokens read one by one; `error(near)` builds the app's refusal of a bad query."""

    def __init__(self, tokens: list[tuple[str, str]], error: Callable[[str], Exception]) -> None:
        self.tokens, self.at, self.error = tokens, 0, error

    @property
    def done(self) -> bool:
        return self.at >= len(self.tokens)

    def next(self) -> tuple[str, str]:
        if self.done:
            raise self.error("end of query")
        self.at += 1
        return self.tokens[self.at - 1]

    def take(self, word: str) -> bool:
        """Step over the next token when it is `word` (case-insensitive)."""
        if not self.done and self.tokens[self.at][1].upper() == word.upper():
            self.at += 1
            return True
        return False

    def expect(self, word: str) -> None:
        if not self.take(word):
            raise self.error(self.tokens[self.at][1] if not self.done else "end of query")


def boolean(stream: TokenStream, atom: Callable[[], Test], on_not: Callable[[], None] | None = None) -> Test:
    """A condition: `atom`s joined by OR (loosest), AND, NOT and parentheses; `on_not` may refuse NOT."""

    def disjunction() -> Test:
        parts = [conjunction()]
        while stream.take("OR"):
            parts.append(conjunction())
        return parts[0] if len(parts) == 1 else _any(parts)

    def conjunction() -> Test:
        parts = [factor()]
        while stream.take("AND"):
            parts.append(factor())
        return parts[0] if len(parts) == 1 else _all(parts)

    def factor() -> Test:
        if stream.take("NOT"):
            if on_not is not None:
                on_not()
            inner = factor()
            return lambda value: not inner(value)
        if stream.take("("):
            inner = disjunction()
            stream.expect(")")
            return inner
        return atom()

    return disjunction()


def _any(parts: list[Test]) -> Test:
    return lambda value: any(part(value) for part in parts)


def _all(parts: list[Test]) -> Test:
    return lambda value: all(part(value) for part in parts)
