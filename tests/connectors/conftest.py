"""Fixtures shared by the connector tests."""

from __future__ import annotations

import types

import pytest

from connectors import base


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the connector chose between retries; the sleeping itself is skipped."""
    recorded: list[float] = []

    async def sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(base, "asyncio", types.SimpleNamespace(sleep=sleep))
    return recorded
