"""Raw record -> UDM -> the team's app record, for one connection and data source."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from mappings.engine import CompiledMapping, compile_mapping
from mappings.errors import RecordError, TemplateError
from mappings.schema import AppSchema
from mappings.udm import UDMS

__all__ = ["RecordMapper"]


class RecordMapper:
    """Maps raw records of one collection: the connector's UDM step, then the (layered) app mapping, then
    the app schema's check. `lookups` are the tenant's lookup tables, for the `lookup` filter."""

    def __init__(
        self,
        *,
        data_source: str,
        udm_fields: Mapping[str, str],
        app_mapping: CompiledMapping,
        origin: str,
        lookups: Mapping[str, Mapping[str, Any]] | None = None,
        schema: AppSchema | None = None,
    ):
        if data_source not in UDMS:
            raise TemplateError(f"unknown data source {data_source!r}; known: {sorted(UDMS)}")
        self._udm: type[BaseModel] = UDMS[data_source]
        unknown = sorted(set(udm_fields) - set(self._udm.model_fields))
        if unknown:
            raise TemplateError(
                f"{origin}: udm_fields {unknown} are not fields of the {data_source} UDM", origin=origin
            )
        self._to_udm = compile_mapping(udm_fields, origin=f"{origin} udm_fields")
        self.app_mapping = app_mapping
        self.lookups = dict(lookups or {})
        self.schema = schema

    def map(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The app record for one raw record; RecordError when a field fails or the UDM rejects it."""
        fields = self._to_udm.render({"raw": raw})
        try:
            udm = self._udm.model_validate(fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise RecordError(f"UDM field {field!r}: {first['msg']}", field=field) from None
        context = udm.__dict__.copy()
        context["raw"] = raw
        context["lookups"] = self.lookups
        record = self.app_mapping.render(context)
        if self.schema is not None:
            self.schema.validate(record)
        return record
