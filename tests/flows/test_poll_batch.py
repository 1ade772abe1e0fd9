"""A sync-polls batch ends even when a poll ignores its cancellation (`.fn()`, with the polls faked: no app, no
Prefect server). tests/flows/test_continuity.py covers a poll cut at its own time limit against real processes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import flows.poll_batch
from flows.batch_apply import BatchApplies
from flows.poll_batch import PollBatch, PollsFailed, sync_polls
from flows.runtime import ImportJob
from inlet.settings import get_settings


def test_a_batch_ends_when_a_poll_ignores_its_cancellation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INLET_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    released = False

    async def poll_and_apply(engine: Any, job: ImportJob, batch: PollBatch, applies: BatchApplies) -> None:
        while job.connection == "stubborn" and not released:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:  # swallowed: neither its own limit nor the batch's cancels it
                continue

    monkeypatch.setattr(flows.poll_batch, "_poll_and_apply", poll_and_apply)

    async def batch() -> PollsFailed:
        nonlocal released
        with pytest.raises(PollsFailed) as failed:
            await sync_polls.fn(
                "hubspot", "stubborn+1", [("acme", "stubborn", "users"), ("acme", "quick", "users")], 0.5
            )
        released = True  # the poll left behind may end now, when asyncio.run cancels it once more
        return failed.value

    failed = asyncio.run(batch())
    assert failed.batch.failed == {"stubborn": "BatchTimedOut: the batch ran past 1 s"} and failed.batch.polled == 1
