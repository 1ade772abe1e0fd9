"""The SOQL the simulator answers, parsed as Salesforce would and refused in its words where it would.

SELECT f, Account.Name FROM Contact|User
[WHERE cond]            cond: comparisons (= != <> < <= > >=, [NOT] IN (...), LIKE) joined by AND, OR,
                        NOT and parentheses; datetimes unquoted, strings quoted, true/false/null bare
[ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]     (OFFSET at most 2,000)
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.salesforce.simulator.records import FIELDS, canonical, kind_of, parse_time
from connectors.simulation import Refusal, TokenStream, boolean

__all__ = ["MAX_OFFSET", "Query", "Row", "parse_soql", "value_of"]

MAX_OFFSET = 2000
Row = dict[str, Any]
Condition = Callable[[Row], bool]
_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<time>\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:?\d\d))"
    r"|(?P<number>\d+(?:\.\d+)?)|(?P<op>!=|<>|<=|>=|=|<|>)|(?P<punct>[(),])|(?P<word>[A-Za-z_][\w.]*))"
)
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "!=": operator.ne, "<>": operator.ne,
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}  # fmt: skip
_KEYWORDS = {"SELECT", "FROM", "WHERE", "ORDER", "BY", "LIMIT", "OFFSET", "AND", "OR", "NOT", "IN", "LIKE"}


@dataclass(frozen=True)
class Query:
    sobject: str
    fields: tuple[str, ...]
    where: Condition | None = None
    order: tuple[tuple[str, bool, bool], ...] = ()  # (field, descending, nulls last)
    limit: int | None = None
    offset: int = 0


def parse_soql(text: str) -> Query:
    """The query, or a 400 `MALFORMED_QUERY` / `INVALID_FIELD` / `INVALID_TYPE` as Salesforce answers it."""
    return _Parser(_tokens(text)).query()


def value_of(row: Row, field: str) -> Any:
    head, _, tail = field.partition(".")
    return (row[head] or {}).get(tail) if tail else row[field]


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.stream = TokenStream(tokens, lambda near: _malformed(f"unexpected token: '{near}'"))
        self.sobject = ""

    def query(self) -> Query:
        self.stream.expect("SELECT")
        names = [self._word()]
        while self.stream.take(","):
            names.append(self._word())
        self.stream.expect("FROM")
        self.sobject = _sobject(self._word())
        fields = tuple(canonical(self.sobject, name) for name in names)
        if len(set(fields)) < len(fields):
            raise _malformed("duplicate field selected")
        where = boolean(self.stream, self._comparison) if self.stream.take("WHERE") else None
        order = self._order() if self.stream.take("ORDER") else ()
        limit = self._integer() if self.stream.take("LIMIT") else None
        offset = self._integer() if self.stream.take("OFFSET") else 0
        if not self.stream.done:
            raise _malformed(f"unexpected token: '{self.stream.next()[1]}'")
        if offset > MAX_OFFSET:
            raise Refusal(400, "NUMBER_OUTSIDE_VALID_RANGE", f"Maximum SOQL offset allowed is {MAX_OFFSET}")
        return Query(self.sobject, fields, where, order, limit, offset)

    def _comparison(self) -> Condition:
        field = canonical(self.sobject, self._word())
        kind = kind_of(self.sobject, field)
        if kind == "address":
            raise Refusal(400, "INVALID_FIELD", f"field '{field}' can not be filtered in a query call")
        negated = self.stream.take("NOT")
        if self.stream.take("IN"):
            self.stream.expect("(")
            wanted = {_literal(field, kind, self.stream.next())}
            while self.stream.take(","):
                wanted.add(_literal(field, kind, self.stream.next()))
            self.stream.expect(")")
            return lambda row: (value_of(row, field) in wanted) != negated
        if negated:
            raise _malformed("unexpected token: 'NOT'")
        if self.stream.take("LIKE"):
            pattern = _like(str(_literal(field, "string", self.stream.next())))
            return lambda row: bool(pattern.fullmatch(str(value_of(row, field) or "")))
        kind_, op = self.stream.next()
        if kind_ != "op":
            raise _malformed(f"unexpected token: '{op}'")
        wanted_value = _literal(field, kind, self.stream.next())
        return lambda row: _compare(value_of(row, field), op, wanted_value)

    def _order(self) -> tuple[tuple[str, bool, bool], ...]:
        self.stream.expect("BY")
        order = []
        while True:
            field = canonical(self.sobject, self._word())
            descending = self.stream.take("DESC")
            if not descending:
                self.stream.take("ASC")
            nulls_last = descending
            if self.stream.take("NULLS"):
                nulls_last = self._word().upper() == "LAST"
            order.append((field, descending, nulls_last))
            if not self.stream.take(","):
                return tuple(order)

    # -- tokens --------------------------------------------------------------------------------------

    def _word(self) -> str:
        kind, text = self.stream.next()
        if kind != "word" or text.upper() in _KEYWORDS:
            raise _malformed(f"unexpected token: '{text}'")
        return text

    def _integer(self) -> int:
        kind, text = self.stream.next()
        if kind != "number" or not text.isdigit():
            raise _malformed(f"unexpected token: '{text}'")
        return int(text)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, at = [], 0
    while at < len(text.rstrip()):
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            raise _malformed(f"unexpected token: '{text[at:].split()[0]}'")
        kind = match.lastgroup or "word"
        tokens.append((kind, match[kind]))
        at = match.end()
    return tokens


def _sobject(name: str) -> str:
    found = next((s for s in FIELDS if s.lower() == name.lower()), None)
    if found is None:
        raise Refusal(400, "INVALID_TYPE", f"sObject type '{name}' is not supported.")
    return found


def _literal(field: str, kind: str, token: tuple[str, str]) -> Any:
    token_kind, raw = token
    if raw.lower() == "null" and token_kind == "word":
        return None
    if kind == "datetime":
        if token_kind == "string":  # SOQL datetime literals are unquoted
            message = f"value of filter criterion for field '{field}' must be of type dateTime and should not be "
            raise Refusal(400, "INVALID_FIELD", message + "enclosed in quotes")
        if token_kind != "time" or (moment := parse_time(raw.replace("Z", "+00:00"))) is None:
            raise Refusal(400, "INVALID_FIELD", f"value of filter criterion for field '{field}' is not a dateTime")
        return moment
    if kind == "boolean" and token_kind == "word" and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if token_kind != "string" or kind == "boolean":
        raise _malformed(f"unexpected token: '{raw}'")
    return raw[1:-1].replace("\\'", "'")


def _compare(actual: Any, op: str, wanted: Any) -> bool:
    """SOQL's comparison: `= null` / `!= null` test for null; other comparisons with a null are false,
    except `!=`, which a null passes."""
    if actual is None or wanted is None:
        return op == "=" and actual is wanted or op in ("!=", "<>") and actual is not wanted
    return _OPS[op](actual, wanted)


def _like(pattern: str) -> re.Pattern[str]:
    """LIKE: `%` any run, `_` one character, case-insensitive."""
    return re.compile("".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern), re.I)


def _malformed(message: str) -> Refusal:
    return Refusal(400, "MALFORMED_QUERY", message)
