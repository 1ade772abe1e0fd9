"""OData query options on users: `$select`, `$top`, `$filter`, `$search`, `$orderby`, `$count`, `$expand`.

`$count`, `$search`, `$orderby` on other properties than displayName and userPrincipalName, and the
advanced filters (`ne`, `not`, `endsWith`) need the header `ConsistencyLevel: eventual` (the advanced
filters `$count=true` too), as Graph's advanced queries do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from connectors.msgraph.simulator.wire import CANONICAL, PROPERTIES, root
from connectors.simulation import Person, Refusal, TokenStream, boolean, decode_token

__all__ = ["DEFAULT_TOP", "MAX_TOP", "Query", "context", "cost", "page_position", "query", "select"]

MAX_TOP, DEFAULT_TOP = 999, 100
_DEFAULT_SELECT = ("businessPhones", "displayName", "givenName", "id", "jobTitle", "mail", "mobilePhone",
                   "officeLocation", "preferredLanguage", "surname", "userPrincipalName")  # fmt: skip
_FILTERABLE = {"accountEnabled", "companyName", "displayName", "givenName", "id", "jobTitle", "mail"}
_FILTERABLE |= {"mailNickname", "surname", "userPrincipalName", "userType"}
_SEARCHABLE = {"displayName", "givenName", "surname", "mail", "userPrincipalName", "jobTitle", "mailNickname"}
_PLAIN_ORDER = {"displayName", "userPrincipalName"}  # ordered without ConsistencyLevel: eventual
_TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<punct>[(),])|(?P<word>[\w.$]+))")
Predicate = Callable[[Person], bool]


@dataclass(frozen=True)
class Query:
    """A listing's options: which users (`keep`), in which order (`order`), and what to show."""

    select: tuple[str, ...]
    top: int
    keep: Predicate | None
    order: tuple[str, bool] | None  # (property, descending)
    count: bool
    expand_manager: bool


def select(request: Request) -> tuple[str, ...]:
    """`$select` names in Graph's spelling (id always comes back); the default set without it."""
    raw = request.query_params.get("$select")
    if raw is None:
        return _DEFAULT_SELECT
    names = []
    for name in filter(None, (n.strip() for n in raw.split(","))):
        if name.lower() not in CANONICAL:
            message = f"Could not find a property named '{name}' on type 'microsoft.graph.user'."
            raise Refusal(400, "Request_BadRequest", message)
        names.append(CANONICAL[name.lower()])
    return tuple(dict.fromkeys(["id", *names]))


def query(request: Request) -> Query:
    """The options of a users listing, checked as Graph checks them."""
    params, eventual = request.query_params, request.headers.get("consistencylevel", "").lower() == "eventual"
    if "$skip" in params:
        raise Refusal(400, "Request_BadRequest", "'$skip' is not supported by the users resource.")
    advanced = [o for o in ("$count", "$search") if o in params]
    if advanced and not eventual:
        message = f"{advanced[0]} is only supported with the header ConsistencyLevel: eventual."
        raise Refusal(400, "Request_UnsupportedQuery", message)
    count = params.get("$count", "").lower() == "true"
    keep = _both(_filter(params.get("$filter"), eventual and count), _search(params.get("$search")))
    return Query(
        select(request), _top(request), keep, _order(params.get("$orderby"), eventual), count, _expand(request)
    )


def page_position(token: str, key: str) -> int:
    """The position a `$skiptoken` holds (`after` a seq, or an `offset` into an ordered listing)."""
    try:
        return int(decode_token(token)[key])
    except (ValueError, KeyError, TypeError):
        message = "The specified page token value has expired and can no longer be included in your request."
        raise Refusal(400, "Directory_ExpiredPageToken", message) from None


def cost(kind: str, request: Request) -> int:
    """Resource units of one read: list 2, others 1; `$select` -1, `$expand` +1, `$top` < 20 -1; at least 1."""
    params = request.query_params
    units = 2 if kind == "list_requests" else 1
    units += ("$expand" in params) - ("$select" in params)
    top = params.get("$top", "")
    units -= top.isdigit() and int(top) < 20
    return max(units, 1)


def context(request: Request, entity_set: str, selected: Sequence[str], suffix: str) -> str:
    shown = "" if tuple(selected) == _DEFAULT_SELECT else f"({','.join(n for n in selected if n != 'id')})"
    return f"{root(request)}/v1.0/$metadata#{entity_set}{shown}{suffix}"


# -- options --------------------------------------------------------------------------------------------


def _top(request: Request) -> int:
    raw = request.query_params.get("$top")
    if raw is None:
        return DEFAULT_TOP
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_TOP:
        message = f"Invalid page size specified: '{raw}'. Must be between 1 and {MAX_TOP} inclusive."
        raise Refusal(400, "Request_UnsupportedQuery", message)
    return int(raw)


def _order(raw: str | None, eventual: bool) -> tuple[str, bool] | None:
    """`$orderby=<property> [asc|desc]`, one property."""
    if raw is None:
        return None
    parts = raw.split()
    name = CANONICAL.get(parts[0].lower()) if parts else None
    if name is None or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
        raise Refusal(400, "Request_UnsupportedQuery", f"Invalid $orderby: '{raw}'.")
    if name not in _PLAIN_ORDER and not eventual:
        message = f"Sorting by '{name}' is only supported with the header ConsistencyLevel: eventual and $count=true."
        raise Refusal(400, "Request_UnsupportedQuery", message)
    return name, len(parts) == 2 and parts[1].lower() == "desc"


def _expand(request: Request) -> bool:
    raw = request.query_params.get("$expand")
    if raw is None:
        return False
    if raw.strip().lower() != "manager":
        message = f"Could not find a navigation property named '{raw}' on type 'microsoft.graph.user'."
        raise Refusal(400, "Request_BadRequest", message)
    return True


def _search(raw: str | None) -> Predicate | None:
    """`"property:term"` clauses joined by AND / OR; a term matches the start of a word of the property."""
    if raw is None:
        return None
    clauses, joins = re.findall(r'"([^"]*)"', raw), re.findall(r'"\s+(AND|OR)\s+"', raw)
    if not clauses or len(joins) != len(clauses) - 1 or re.sub(r'"[^"]*"|\s+|AND|OR', "", raw):
        raise Refusal(400, "Request_UnsupportedQuery", 'Invalid $search: use "property:value" clauses in quotes.')
    tests = [_search_clause(clause) for clause in clauses]
    result = tests[0]
    for join, test in zip(joins, tests[1:], strict=True):
        result = _and(result, test) if join == "AND" else _either(result, test)
    return result


def _search_clause(clause: str) -> Predicate:
    name, _, term = clause.partition(":")
    prop = CANONICAL.get(name.strip().lower())
    if prop not in _SEARCHABLE or not term.strip():
        raise Refusal(400, "Request_UnsupportedQuery", f"Invalid $search clause: '{clause}'.")
    words = term.lower().split()
    get = PROPERTIES[prop]

    def found(person: Person) -> bool:
        tokens = re.findall(r"[a-z0-9]+", str(get(person) or "").lower())
        return all(any(t.startswith(w) for t in tokens) for w in words)

    return found


def _filter(raw: str | None, advanced_ok: bool) -> Predicate | None:
    if raw is None:
        return None
    tokens = [(m.lastgroup or "word", m[m.lastgroup or "word"]) for m in _TOKEN.finditer(raw) if m.lastgroup]
    parser = _Filter(TokenStream(tokens, _bad_filter), advanced_ok)
    predicate = parser.expression()
    if not parser.stream.done:
        raise _bad_filter(raw)
    return predicate


class _Filter:
    """eq, ne, in, startsWith, endsWith, joined by and, or, not and parentheses."""

    def __init__(self, stream: TokenStream, advanced_ok: bool) -> None:
        self.stream, self.advanced_ok = stream, advanced_ok

    def expression(self) -> Predicate:
        return boolean(self.stream, self._atom, lambda: self._advanced("not"))

    def _atom(self) -> Predicate:
        word = self.stream.next()[1]
        if word.lower() in ("startswith", "endswith"):
            return self._function(word.lower())
        return self._comparison(_property(word))

    def _function(self, name: str) -> Predicate:
        if name == "endswith":
            self._advanced("endsWith")
        self.stream.expect("(")
        get = PROPERTIES[_property(self.stream.next()[1])]
        self.stream.expect(",")
        value = str(self._literal()).lower()
        self.stream.expect(")")
        if name == "startswith":
            return lambda p: str(get(p) or "").lower().startswith(value)
        return lambda p: str(get(p) or "").lower().endswith(value)

    def _comparison(self, prop: str) -> Predicate:
        get, op = PROPERTIES[prop], self.stream.next()[1].lower()
        if op == "in":
            self.stream.expect("(")
            values = {_folded(self._literal())}
            while self.stream.take(","):
                values.add(_folded(self._literal()))
            self.stream.expect(")")
            return lambda p: _folded(get(p)) in values
        if op not in ("eq", "ne"):
            raise _bad_filter(op)
        if op == "ne":
            self._advanced("ne")
        value = _folded(self._literal())
        return lambda p: (_folded(get(p)) == value) == (op == "eq")

    def _literal(self) -> Any:
        kind, text = self.stream.next()
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        if text.lower() == "null":
            return None
        raise _bad_filter(text)

    def _advanced(self, what: str) -> None:
        if not self.advanced_ok:
            message = f"'{what}' needs an advanced query: ConsistencyLevel: eventual and $count=true."
            raise Refusal(400, "Request_UnsupportedQuery", message)


def _property(word: str) -> str:
    prop = CANONICAL.get(word.lower())
    if prop not in _FILTERABLE:
        message = f"Unsupported or invalid query filter clause specified for property '{word}' of resource 'User'."
        raise Refusal(400, "Request_UnsupportedQuery", message)
    return prop


def _folded(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _both(left: Predicate | None, right: Predicate | None) -> Predicate | None:
    if left is None or right is None:
        return left or right
    return _and(left, right)


def _and(left: Predicate, right: Predicate) -> Predicate:
    return lambda p: left(p) and right(p)


def _either(left: Predicate, right: Predicate) -> Predicate:
    return lambda p: left(p) or right(p)


def _bad_filter(near: str) -> Refusal:
    return Refusal(400, "Request_UnsupportedQuery", f"Invalid filter clause: syntax error near '{near}'.")
