"""Run artifacts a person reads in the Prefect UI: a progress bar while the run goes, a summary table after."""

from __future__ import annotations

import re
import time
from typing import Any
from uuid import UUID

import anyio
from prefect.artifacts import (
    acreate_link_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)
from prefect.settings import PREFECT_UI_URL

from inlet.delivery import DestinationFigures, destination_figures, shown_url
from inlet.local import RunProgress, report_progress
from inlet.settings import Settings
from inlet.store import Store

__all__ = ["Progress", "artifact_key", "publish_delivery_status", "publish_rows", "publish_summary"]


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


_ARTIFACT_EVERY = 5.0  # seconds between two updates of a progress artifact: each costs the Prefect server ~30 ms CPU


class Progress:
    """A progress artifact, updated at most every five seconds (and at the end)."""

    def __init__(self, artifact_id: UUID, expected: int | None, parts: tuple[str, ...] = ()) -> None:
        self._id = artifact_id
        self._expected = expected
        self._last = 0.0
        self._parts = parts

    @classmethod
    async def start(cls, *parts: str, expected: int | None) -> Progress:
        artifact_id = await acreate_progress_artifact(
            progress=0.0, key=artifact_key(*parts, "progress"), description=f"{'/'.join(parts)}: records read"
        )
        return cls(artifact_id, expected, parts)

    async def update(self, seen: int, *, done: bool = False, rate_limited: float = 0.0) -> None:
        """Every call reaches this process's watchers (the CLI's bar); the artifact at most every five seconds."""
        flow, _, connection, *_ = (*self._parts, "", "", "")
        report_progress(RunProgress(flow, connection, seen, self._expected, rate_limited, done))
        now = time.monotonic()
        if not done and now - self._last < _ARTIFACT_EVERY:
            return
        self._last = now
        if done:
            value = 100.0
        elif self._expected:
            value = min(99.0, 100.0 * seen / self._expected)
        else:
            value = 0.0
        await aupdate_progress_artifact(artifact_id=self._id, progress=value)


async def publish_summary(*parts: str, summary: dict[str, Any]) -> None:
    """A table artifact with one row per figure of the run."""
    await acreate_table_artifact(
        key=artifact_key(*parts, "summary"),
        table=[{"figure": name, "value": value} for name, value in summary.items()],
        description=f"{'/'.join(parts)}: run summary",
    )


async def publish_rows(*parts: str, rows: list[dict[str, Any]], description: str) -> None:
    """A table artifact with one row per item: a poll batch's connections, each with its figures."""
    await acreate_table_artifact(key=artifact_key(*parts, "summary"), table=rows, description=description)


async def publish_trigger(ui_path: str, *parts: str) -> None:
    """A link from the run to the Prefect event that started it."""
    base = (PREFECT_UI_URL.value() or "").rstrip("/")
    await acreate_link_artifact(
        key=artifact_key(*parts, "trigger"),
        link=f"{base}{ui_path}",
        link_text="the inlet.records.changed event that started this run",
        description=f"{'/'.join(parts)}: triggered by",
    )


async def publish_delivery_status(engine: Store, settings: Settings) -> None:
    """The delivery figures per destination (what `inlet deliveries status` prints) as a table artifact."""
    figures = await anyio.to_thread.run_sync(destination_figures, engine, settings)
    await acreate_table_artifact(
        key="delivery-status",
        table=[
            row.as_row()
            for row in figures or [DestinationFigures(shown_url(settings.destination_url) + settings.destination.path)]
        ],
        description="deliveries per destination: pending, parked, dead, oldest age, breaker",
    )
