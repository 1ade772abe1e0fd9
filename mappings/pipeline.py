"""Raw record -> UDM -> the team's app record, for one connection and data source, under a per-record budget."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from mappings.budget import MappingBudget, Meter, activate, deactivate
from mappings.engine import CompiledMapping, compile_mapping
from mappings.errors import BudgetExceeded, RecordError, TemplateError
from mappings.schema import AppSchema
from mappings.udm import UDMS
from mappings.udm.fields import fields_validator

__all__ = ["RecordMapper"]


class RecordMapper:
    """Maps raw records of one collection: the connector's UDM step, then the (layered) app mapping, then
    the app schema's check. `lookups` are the tenant's lookup tables, for the `lookup` filter; `budget` bounds
    each record's render (a record over it is a BudgetExceeded, quarantined like any RecordError)."""

    def __init__(
        self,
        *,
        data_source: str,
        udm_fields: Mapping[str, str],
        app_mapping: CompiledMapping,
        origin: str,
        lookups: Mapping[str, Mapping[str, Any]] | None = None,
        schema: AppSchema | None = None,
        budget: MappingBudget | None = None,
        clock: Callable[[], float] | None = None,
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
        self._validate_udm = fields_validator(self._udm)
        self.app_mapping = app_mapping
        self.lookups = dict(lookups or {})
        self.schema = schema
        self.budget = budget or MappingBudget()
        self._meter = Meter(self.budget, clock) if clock else Meter(self.budget)
        self.overruns: list[str] = []  # why each record over the time budget was stopped
        self._metered = self._to_udm.metered or app_mapping.metered  # plain lookups need no meter

    def map(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The app record for one raw record; RecordError when a field fails or the UDM rejects it."""
        if len(self.overruns) >= self.budget.overruns:
            raise BudgetExceeded(
                f"not mapped: {len(self.overruns)} records went past the mapping's time budget in this run "
                f"({self.overruns[-1]}); fix the mapping, then `inlet quarantine retry`",
                reason="time",
            )
        if not self._metered:
            return self._map(raw)
        token = activate(self._meter)
        try:
            return self._map(raw)
        except BudgetExceeded as exc:
            if exc.reason == "time":
                self.overruns.append(str(exc))
            raise
        finally:
            deactivate(token)

    def _map(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        fields = self._to_udm.render({"raw": raw})
        try:
            context = self._validate_udm(fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise RecordError(f"UDM field {field!r}: {first['msg']}", field=field) from None
        context["raw"] = raw
        context["lookups"] = self.lookups
        record = self.app_mapping.render(context)
        if self.schema is not None:
            self.schema.validate(record)
        return record

    def probe(self, samples: Iterable[Mapping[str, Any]], origin: str) -> None:
        """Map sample records (a stored few and one made up) and refuse the mapping, as a TemplateError, when
        one goes past the budget; other record errors depend on the data and are left to the import."""
        made_up = {name: "sample" for name in self._udm.model_fields} | {"raw": {}, "lookups": self.lookups}
        for sample, render in [*((s, self.map) for s in samples), (made_up, self._app_only)]:
            try:
                render(sample)
            except BudgetExceeded as exc:
                raise TemplateError(
                    f"{origin}: {exc}, on sample data; the mapping was not saved", origin=origin, field=exc.field
                ) from None
            except RecordError:
                continue
        self.overruns.clear()

    def _app_only(self, context: Mapping[str, Any]) -> dict[str, Any]:
        token = activate(self._meter)
        try:
            return self.app_mapping.render(context)
        finally:
            deactivate(token)
