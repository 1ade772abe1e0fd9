"""Mapping layers: the default per data source, an override per app, per tenant and per connection.

Later layers win field by field: default (`mappings/<data source>.yaml`), app (`mappings/apps/<app>/...`),
tenant (file `<overrides>/<tenant>/<data source>.yaml`, then the store), connection (file
`<overrides>/<tenant>/<connection>/<data source>.yaml`, then the store). A layer file:

```yaml
data_source: users
fields:
  email: "{{ email | lower }}"
  crmId: "{{ raw.id }}"
  phone: null          # removes a field an earlier layer defined
lookups:               # tables for the `lookup` filter; a later layer replaces a table of the same name
  countries: {FR: France, DE: Germany}
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mappings.engine import CompiledMapping
from mappings.errors import TemplateError

__all__ = ["MAPPINGS_DIR", "Layer", "effective_mapping", "layer_from_document", "read_layer"]

MAPPINGS_DIR = Path(__file__).parent
StoredLevel = Literal["tenant", "connection"]


@dataclass(frozen=True)
class Layer:
    """The fields one file (or store row) defines; None marks a removed field."""

    origin: str
    fields: dict[str, str | None]
    lookups: dict[str, dict[str, Any]] = field(default_factory=dict)


def read_layer(path: Path, *, data_source: str) -> Layer:
    """Read one mapping file; a bad file is a TemplateError naming it, and the line where YAML breaks."""
    origin = str(path)
    try:
        document: Any = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise TemplateError(f"{origin}: not valid YAML{line}: {getattr(exc, 'problem', exc)}", origin=origin) from None
    return layer_from_document(document, origin=origin, data_source=data_source)


def layer_from_document(document: Any, *, origin: str, data_source: str) -> Layer:
    """A layer from a parsed YAML document; TemplateError naming `origin` and the field when it is malformed."""
    if not isinstance(document, dict) or not isinstance(document.get("fields", {}), dict):
        raise TemplateError(f"{origin}: expected a mapping with a `fields:` table", origin=origin)
    if "fields" not in document and "lookups" not in document:
        raise TemplateError(f"{origin}: expected a mapping with a `fields:` table", origin=origin)
    if document.get("data_source", data_source) != data_source:
        raise TemplateError(
            f"{origin}: data_source is {document['data_source']!r}, expected {data_source!r}", origin=origin
        )
    fields: dict[str, str | None] = {}
    for target, template in (document.get("fields") or {}).items():
        if template is not None and not isinstance(template, str):
            raise TemplateError(
                f"{origin}: field {target!r} must be a string expression or null, got {type(template).__name__}",
                origin=origin,
                field=str(target),
            )
        fields[str(target)] = template
    return Layer(origin=origin, fields=fields, lookups=_lookups(document.get("lookups"), origin))


def _lookups(value: Any, origin: str) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    tables = value if isinstance(value, dict) else None
    if tables is None or not all(isinstance(t, dict) for t in tables.values()):
        raise TemplateError(f"{origin}: `lookups:` must map table names to tables of key: value", origin=origin)
    return {str(name): {str(k): v for k, v in table.items()} for name, table in tables.items()}


def effective_mapping(
    data_source: str,
    *,
    app: str | None = None,
    tenant: str | None = None,
    connection: str | None = None,
    overrides_dir: Path | None = None,
    stored: Mapping[StoredLevel, Layer] | None = None,
) -> CompiledMapping:
    """Every layer in order, later wins field by field; compiled once, with where each field came from."""
    default = MAPPINGS_DIR / f"{data_source}.yaml"
    if not default.is_file():
        raise TemplateError(f"no default mapping for data source {data_source!r} ({default})")
    layers = [read_layer(default, data_source=data_source)]
    layers += _file(MAPPINGS_DIR / "apps" / app / f"{data_source}.yaml" if app else None, data_source)
    if tenant:
        tenant_dir = overrides_dir / tenant if overrides_dir else None
        layers += _file(tenant_dir / f"{data_source}.yaml" if tenant_dir else None, data_source)
        layers += [stored["tenant"]] if stored and "tenant" in stored else []
        if connection:
            layers += _file(tenant_dir / connection / f"{data_source}.yaml" if tenant_dir else None, data_source)
            layers += [stored["connection"]] if stored and "connection" in stored else []
    return merge(layers, tenant=tenant or "")


def _file(path: Path | None, data_source: str) -> list[Layer]:
    return [read_layer(path, data_source=data_source)] if path is not None and path.is_file() else []


def merge(layers: list[Layer], *, tenant: str = "") -> CompiledMapping:
    """Apply layers in order and compile the result."""
    fields: dict[str, str] = {}
    origins: dict[str, str] = {}
    lookups: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for target, template in layer.fields.items():
            if template is None:
                fields.pop(target, None)
                origins.pop(target, None)
            else:
                fields[target], origins[target] = template, layer.origin
        lookups.update(layer.lookups)
    return CompiledMapping(fields, origins, lookups=lookups, tenant=tenant)
