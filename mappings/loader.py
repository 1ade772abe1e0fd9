"""Mapping files and their layers: the default per data source, an override per app, one per tenant.

```yaml
data_source: users
fields:
  email: "{{ email | lower }}"
  crmId: "{{ raw.id }}"
  phone: null          # removes a field an earlier layer defined
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mappings.engine import CompiledMapping
from mappings.errors import TemplateError

__all__ = ["MAPPINGS_DIR", "Layer", "effective_mapping", "read_layer"]

MAPPINGS_DIR = Path(__file__).parent


@dataclass(frozen=True)
class Layer:
    """The fields one file defines; None marks a removed field."""

    origin: str
    fields: dict[str, str | None]


def read_layer(path: Path, *, data_source: str) -> Layer:
    """Read one mapping file; a bad file is a TemplateError naming it, and the line where YAML breaks."""
    origin = str(path)
    try:
        document: Any = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise TemplateError(f"{origin}: not valid YAML{line}: {getattr(exc, 'problem', exc)}", origin=origin) from None
    if not isinstance(document, dict) or not isinstance(document.get("fields"), dict):
        raise TemplateError(f"{origin}: expected a mapping with a `fields:` table", origin=origin)
    if document.get("data_source", data_source) != data_source:
        raise TemplateError(
            f"{origin}: data_source is {document['data_source']!r}, expected {data_source!r}", origin=origin
        )
    fields: dict[str, str | None] = {}
    for target, template in document["fields"].items():
        if template is not None and not isinstance(template, str):
            raise TemplateError(
                f"{origin}: field {target!r} must be a string expression or null, got {type(template).__name__}",
                origin=origin,
                field=str(target),
            )
        fields[str(target)] = template
    return Layer(origin=origin, fields=fields)


def effective_mapping(
    data_source: str, *, app: str | None = None, tenant: str | None = None, overrides_dir: Path | None = None
) -> CompiledMapping:
    """Default, then app, then tenant layer, later wins field by field; compiled once."""
    paths = [MAPPINGS_DIR / f"{data_source}.yaml"]
    if app:
        paths.append(MAPPINGS_DIR / "apps" / app / f"{data_source}.yaml")
    if tenant and overrides_dir:
        paths.append(overrides_dir / tenant / f"{data_source}.yaml")
    if not paths[0].is_file():
        raise TemplateError(f"no default mapping for data source {data_source!r} ({paths[0]})")
    fields: dict[str, str] = {}
    origins: dict[str, str] = {}
    for path in paths:
        if not path.is_file():
            continue
        for target, template in read_layer(path, data_source=data_source).fields.items():
            if template is None:
                fields.pop(target, None)
                origins.pop(target, None)
            else:
                fields[target], origins[target] = template, str(path)
    return CompiledMapping(fields, origins)
