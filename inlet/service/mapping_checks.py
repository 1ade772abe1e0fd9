"""Checks of a mapping change against the connection's own stored records, before an import finds out: a
`raw.<path>` that no stored record has is most likely a typo (`raw.last_nme`), and would quarantine every record."""

from __future__ import annotations

from typing import Any

import orjson
from jinja2 import Environment, TemplateSyntaxError, nodes

from inlet.service.installation import Installation
from inlet.service.mappings import MappingChange
from inlet.service.tenants import require_tenant
from inlet.store import list_connections, raw_sample

__all__ = ["raw_paths", "unresolved_paths"]

_PARSER = Environment()  # parses only; never renders


def raw_paths(expression: str) -> list[tuple[str, ...]]:
    """The `raw.a.b` / `raw["a"]["b"]` paths an expression reads, longest only: [("a", "b")]."""
    try:
        tree = _PARSER.parse(expression)
    except TemplateSyntaxError:
        return []  # the change's own validation names a syntax error
    found: set[tuple[str, ...]] = set()
    methods = {id(call.node) for call in tree.find_all(nodes.Call)}  # raw.get("x"): `get` is no key
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, nodes.Getattr | nodes.Getitem)
        path = _path(node.node if id(node) in methods else node)
        if path:
            found.add(path)
    return sorted(p for p in found if not any(q != p and q[: len(p)] == p for q in found))


def unresolved_paths(
    inst: Installation,
    tenant: str,
    connection: str | None,
    change: MappingChange,
    data_source: str = "users",
    sample: int = 200,
) -> list[str]:
    """A warning per field whose `raw.` path is in none of the stored records of the connection (or, for the
    tenant's layer, of any of its connections); none when no records are stored yet (nothing to tell by)."""
    require_tenant(inst, tenant)
    ids = [connection] if connection else [c.id for c in list_connections(inst.engine, tenant)]
    records = [orjson.loads(raw) for cid in ids for _, raw in raw_sample(inst.engine, cid, data_source, sample)]
    if not records:
        return []
    where = f"connection {connection}" if connection else f"the connections of tenant {tenant}"
    warnings = []
    for field, expression in change.set_fields.items():
        for path in raw_paths(expression or ""):
            if not any(_resolves(record, path) for record in records):
                warnings.append(
                    f"field {field!r}: raw.{'.'.join(path)} is in none of the {len(records)} stored records of "
                    f"{where} (a typo? it would be quarantined or null)"
                )
    return warnings


def _path(node: nodes.Node) -> tuple[str, ...] | None:
    keys: list[str] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            keys.append(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            keys.append(node.arg.value)
        else:
            return None  # a computed key: nothing to check
        node = node.node
    if isinstance(node, nodes.Name) and node.name == "raw" and keys:
        return tuple(reversed(keys))
    return None


def _resolves(value: Any, path: tuple[str, ...]) -> bool:
    for i, key in enumerate(path):
        if isinstance(value, list):
            return any(_resolves(item, path[i:]) for item in value)
        if not isinstance(value, dict) or key not in value:
            return False
        value = value[key]
    return True
