"""The receiver's replay memory: a delivery's changes go to the inbox with its receipts, which count for a
retention and are then forgotten (at most once an hour, after whichever answer comes by).

The retention (INLET_WEBHOOK_RECEIPT_SECONDS, 24 h) is at least 10 minutes: a timestamp up to 5 minutes
ahead stays valid for 10, since the hooks apply their 5-minute window both ways. 24 h also covers the apps'
retry schedules (Graph: 4 h, HubSpot: a day), so an app re-sending a delivery whose 2xx it lost is known.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from inlet.store import HeardChange, inbox

__all__ = ["RECEIPT_SECONDS", "Receipts"]

logger = logging.getLogger(__name__)

RECEIPT_SECONDS = 86_400.0
_FORGET_EVERY_SECONDS = 3600.0


class Receipts:
    """Receipts that refuse a delivery's replays for `seconds` (see inlet.store.inbox.receive)."""

    def __init__(self, engine: Engine, seconds: float = RECEIPT_SECONDS) -> None:
        self.engine = engine
        self.seconds = seconds
        self._next_forget = 0.0
        self._lock = threading.Lock()

    def receive(self, connection_id: str, changes: Sequence[HeardChange], body_digest: str, now: float) -> int:
        """How many changes were new; -1 for a replay (nothing written)."""
        return inbox.receive(
            self.engine,
            connection_id,
            changes,
            body_digest,
            now=datetime.fromtimestamp(now, UTC),
            valid_since=datetime.fromtimestamp(now - self.seconds, UTC),
        )

    def forget_due(self, now: float) -> bool:
        """Whether it is time to forget old receipts (True once per interval, to one caller)."""
        with self._lock:
            if now < self._next_forget:
                return False
            self._next_forget = now + min(_FORGET_EVERY_SECONDS, self.seconds / 4)
            return True

    def forget(self, now: float) -> None:
        """Delete the receipts past the retention; a failure waits for the next interval."""
        try:
            gone = inbox.forget_receipts(self.engine, datetime.fromtimestamp(now - self.seconds, UTC))
        except SQLAlchemyError as exc:
            logger.warning("could not forget old webhook receipts (%s); trying again later", type(exc).__name__)
            return
        logger.debug("forgot %d webhook receipts older than %.0f s", gone, self.seconds)
