"""A run waiting for a connection's slot says so, so that a run keeping the connection warm (`flows.warm`) gives the
slot up at once instead of at the end of its warm spell.

Two signs, each cheap for the holder to read: in this process a count per connection (the task worker runs the
scheduler's imports and reconciliations beside its warm runs), across processes (a full import started from the UI
or the CLI) one leased slot on the Prefect limit `inlet-connection-<id>-wanted`, which lapses with its lease when the
waiting process dies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.responses import ConcurrencyLimitWithLeaseResponse
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

__all__ = ["slot_wanted", "wanting"]

_WAITERS = 1000  # the wanted limit only counts waiters; it never makes one wait
_here: dict[str, int] = {}


def _name(connection: str) -> str:
    return f"inlet-connection-{connection}-wanted"


@asynccontextmanager
async def wanting(client: PrefectClient, connection: str, lease_seconds: float) -> AsyncIterator[None]:
    """While inside, `slot_wanted(connection)` is True in every process."""
    _here[connection] = _here.get(connection, 0) + 1
    try:
        lease_id = await _take(client, _name(connection), lease_seconds)
        try:
            yield
        finally:
            await client.release_concurrency_slots_with_lease(lease_id)
    finally:
        _here[connection] -= 1


async def slot_wanted(connection: str, *, across_processes: bool) -> bool:
    """Whether a run waits for the connection's slot: in this process (free to ask), or anywhere (a read of the
    Prefect server)."""
    if _here.get(connection, 0) > 0:
        return True
    if not across_processes:
        return False
    try:
        async with get_client() as client:
            return (await client.read_global_concurrency_limit_by_name(_name(connection))).active_slots > 0
    except ObjectNotFound:  # nobody ever waited for this connection's slot
        return False


async def _take(client: PrefectClient, name: str, lease_seconds: float) -> UUID:
    for _ in range(2):
        answer = await client.increment_concurrency_slots_with_lease(
            names=[name], slots=1, mode="concurrency", lease_duration=lease_seconds
        )
        granted = ConcurrencyLimitWithLeaseResponse.model_validate(answer.json())
        if granted.limits:
            return granted.lease_id
        try:  # the first wait ever for this connection
            await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=_WAITERS))
        except ObjectAlreadyExists:
            pass
    raise RuntimeError(f"the Prefect limit {name} could not be created")
