"""The team's app as the push round trips see it: its own records by app id, changed by its own pushes and by
inlet's deliveries (which name the app id of a linked record, or the external id of a new one)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from flows.push_outbox import PushSummary, push_outbox
from inlet.push import PushRequest
from inlet.service import accept_push, open_installation
from inlet.store import link_for, open_store
from tests.conftest import InletEnv

__all__ = ["TeamApp", "run_push"]


@dataclass
class TeamApp:
    """The team's app: records by app id (app-made ones, and ones inlet delivered)."""

    env: InletEnv
    connection: str
    data_source: str = "users"
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: dict[str, str] = field(default_factory=dict)  # external id -> the delivered row, as last seen

    def push(self, *changes: dict[str, Any]) -> None:
        for change in changes:
            if change["type"] == "deleted":
                self.records.pop(change["app_id"], None)
            else:
                self.records[change["app_id"]] = {**self.records.get(change["app_id"], {}), **change["record"]}
        request = PushRequest.model_validate(
            {"tenant": "acme", "connection": self.connection, "data_source": self.data_source, "changes": list(changes)}
        )
        accept_push(open_installation(self.env.settings), request)

    def take_deliveries(self) -> int:
        """Apply what inlet delivered since the last look (the demo app keeps the latest event per record)."""
        applied = 0
        for row in self.env.app_records(connection=self.connection, include_deleted="1"):
            key = repr(sorted(row.items()))
            if self.seen.get(row["external_id"]) == key:
                continue
            self.seen[row["external_id"]] = key
            app_id = self._app_id(row["external_id"])
            if row["deleted"]:
                self.records.pop(app_id, None)
            else:
                self.records[app_id] = {"email": row["record"]["email"], "fullName": row["record"]["fullName"]}
            applied += 1
        return applied

    def _app_id(self, external_id: str) -> str:
        engine = open_store(self.env.settings.store_url)
        for app_id in [a for a in self.records if a.startswith("app-")]:
            link = link_for(engine, self.connection, self.data_source, app_id)
            if link is not None and link.external_id == external_id:
                return app_id
        return f"ext-{external_id}"

    def state(self) -> dict[str, str]:
        """Email -> full name of every record the app holds."""
        return {str(r.get("email")): str(r.get("fullName")) for r in self.records.values()}


def run_push(connection: str) -> PushSummary:
    """The connection's push-outbox run, in this process, against the session's Prefect server."""
    return asyncio.run(push_outbox("acme", connection))
