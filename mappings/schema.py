"""App schemas: the JSON Schema of the record the team's app accepts, checked against mappings and records.

A schema comes from a YAML (or JSON) file or from the team's app (see inlet.app_schemas). Two checks use it:

- `check_mapping`, when a mapping is saved or loaded: every target field must be a property of the schema,
  and every required property must be mapped. The error names the tenant, the field and the reason.
- `validate`, for every mapped record: a record that fails is a RecordError, which the import quarantines.

Mapped records hold native values (a datetime stays a datetime until the record is serialised), so a
`"type": "string"` property also accepts dates and datetimes.

jsonschema is the reference, and it costs about 130 µs per 10-field record. So a record is first checked,
in the JSON form the app receives, by a validator fastjsonschema generates from the schema (about 7 µs);
only a record it rejects goes to jsonschema, whose verdict and message count. Schemas using keywords newer
than draft 7 (which fastjsonschema would ignore) skip the shortcut. The schema is the team's own app's;
fastjsonschema generates code from it, so schemas are not taken from tenants.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import fastjsonschema
import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from pydantic_core import to_jsonable_python

from mappings.errors import RecordError, SchemaMismatch, TemplateError

__all__ = ["AppSchema", "read_schema"]


_NEWER_THAN_DRAFT_7 = frozenset(
    {
        "prefixItems",
        "dependentRequired",
        "dependentSchemas",
        "unevaluatedItems",
        "unevaluatedProperties",
        "minContains",
        "maxContains",
        "$dynamicRef",
        "$dynamicAnchor",
        "$recursiveRef",
        "$anchor",
        "$defs",
    }
)


def _is_string(checker: Any, instance: Any) -> bool:
    return isinstance(instance, str | date)


_Validator = validators.extend(  # type: ignore[no-untyped-call]  # jsonschema leaves extend unannotated
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("string", _is_string),
)


class AppSchema:
    """One data source's record schema in the team's app, compiled once."""

    def __init__(self, document: Mapping[str, Any], *, origin: str) -> None:
        if not isinstance(document, Mapping):
            raise TemplateError(f"{origin}: an app schema must be a JSON Schema object", origin=origin)
        try:
            Draft202012Validator.check_schema(document)
        except SchemaError as exc:
            where = "/".join(str(p) for p in exc.path) or "the top level"
            raise TemplateError(f"{origin}: not a valid JSON Schema at {where}: {exc.message}", origin=origin) from None
        self.document = dict(document)
        self.origin = origin
        self.properties = set(document.get("properties", {}))
        self.required = [str(name) for name in document.get("required", [])]
        self._validator = _Validator(self.document, format_checker=Draft202012Validator.FORMAT_CHECKER)
        self._fast = _fast_validator(self.document)

    def check_mapping(self, targets: Iterable[str], *, tenant: str, origins: Mapping[str, str] | None = None) -> None:
        """SchemaMismatch unless every target is a schema property and every required property is mapped."""
        targets = list(targets)
        for target in targets:
            if target not in self.properties:
                where = f" (from {origins[target]})" if origins and target in origins else ""
                raise SchemaMismatch(
                    f"tenant {tenant!r}: field {target!r}{where}: the app schema ({self.origin}) has no such field; "
                    f"it has {sorted(self.properties)}",
                    origin=self.origin,
                    field=target,
                    tenant=tenant,
                )
        for name in self.required:
            if name not in targets:
                raise SchemaMismatch(
                    f"tenant {tenant!r}: field {name!r}: required by the app schema ({self.origin}) but not mapped; "
                    f"map it with `inlet mappings set --tenant {tenant} {name} '<expression>'`",
                    origin=self.origin,
                    field=name,
                    tenant=tenant,
                )

    def validate(self, record: Mapping[str, Any]) -> None:
        """RecordError naming the field and the rule when the record fails the schema (no values are quoted)."""
        if self._fast is not None:
            try:
                self._fast(to_jsonable_python(record))
                return
            except Exception:  # noqa: BLE001  # a rejection, or a shortcut that cannot judge: jsonschema decides
                pass
        error = best_match(self._validator.iter_errors(record))
        if error is not None:
            raise _record_error(error)


def _fast_validator(document: dict[str, Any]) -> Callable[[Any], Any] | None:
    if _uses(document, _NEWER_THAN_DRAFT_7):
        return None
    try:
        validator: Callable[[Any], Any] = fastjsonschema.compile(document)
    except Exception:  # noqa: BLE001  # anything it cannot compile is validated by jsonschema alone
        return None
    return validator


def _uses(node: Any, keywords: frozenset[str]) -> bool:
    if isinstance(node, dict):
        return any(key in keywords or _uses(value, keywords) for key, value in node.items())
    if isinstance(node, list):
        return any(_uses(item, keywords) for item in node)
    return False


def _record_error(error: ValidationError) -> RecordError:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        required: Any = error.validator_value
        instance: Any = error.instance
        missing = [name for name in required if name not in instance]
        field = ".".join(p for p in (path, str(missing[0]) if missing else "") if p)
        return RecordError(f"field {field!r}: required by the app schema but missing", field=field)
    rule = f"{error.validator} {error.validator_value!r}" if error.validator != "additionalProperties" else ""
    what = f"breaks the app schema rule {rule}" if rule else "is not allowed by the app schema"
    if error.validator == "type":
        what += f" (got {type(error.instance).__name__})"
    return RecordError(f"field {path or '<record>'!r}: {what}", field=path)


def read_schema(path: Path) -> AppSchema:
    """An app schema from a YAML or JSON file (a JSON Schema object, or `{schema: <object>}`)."""
    origin = str(path)
    try:
        document: Any = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise TemplateError(f"{origin}: not valid YAML{line}", origin=origin) from None
    if isinstance(document, dict) and isinstance(document.get("schema"), dict):
        document = document["schema"]
    return AppSchema(document, origin=origin)
