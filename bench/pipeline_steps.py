"""CPU per record of each step of a full import, in one process, without servers: where inlet's µs go.

    .venv/bin/python bench/pipeline_steps.py [--pages 20] [--page-size 1000]

Runs the json-server connector's steps on generated pages (1,000 users each, the json-server seed's shape) against a
SQLite store in a temporary folder: parse the page (orjson), map each record (raw -> UDM -> app record), take its
id and updated_at, write the page (ledger + outbox + checkpoint, one transaction, its events claimed for the
sender), check that the batch taken from memory may go, encode and sign the delivery body, and acknowledge
(delete) the events. Each step is timed
with `time.process_time`, so other processes on the machine do not count, and printed in µs per record: the
costs the plan in bench/RESULTS.md ranks. No Prefect, no HTTP: those are measured by bench/full_import.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from bench.real_apps import make_user  # noqa: E402
from connectors.egress import EgressPolicy  # noqa: E402
from connectors.registry import open_connector  # noqa: E402
from inlet.delivery import Destination, encode_batch  # noqa: E402
from inlet.delivery.policy import signed_headers  # noqa: E402
from inlet.settings import Settings  # noqa: E402
from inlet.store import Checkpoint, Connection, MappedRecord, PageScope, open_store, outbox, utcnow, write_page  # noqa: E402


class Steps:
    """Process CPU seconds per named step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.process_time()
        yield
        self.seconds[name] += time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--page-size", type=int, default=1000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="pipeline-steps-"))
    settings = Settings(home=folder)
    engine = open_store(f"sqlite:///{folder / 'inlet.db'}")
    loopback = EgressPolicy(allow_hosts=frozenset({"127.0.0.1"}))  # the bench's made-up source is on loopback
    connector = open_connector("json_server", parameters={"base_url": "http://127.0.0.1:1"}, egress=loopback)
    mapper = _mapper(engine, settings)
    scope = PageScope("bench", "bench-src", "users", "gen-1", "run-1")
    with engine.begin() as db:
        db.execute(
            Checkpoint.__table__.insert().values(  # type: ignore[attr-defined]
                connection_id="bench-src",
                data_source="users",
                generation="gen-1",
                pages=0,
                records=0,
                complete=False,
                started_at=utcnow(),
                updated_at=utcnow(),
            )
        )
    destination = Destination(url="http://127.0.0.1:1", path="/inlet/events", secrets=(SecretStr("whsec_" + "A" * 32),))
    steps = Steps()
    owner = outbox.claimant()
    for page in range(args.pages):
        first = page * args.page_size
        body = orjson.dumps([{**make_user(n), "id": n + 1} for n in range(first, first + args.page_size)])
        with steps.step("parse the page (orjson)"):
            records = orjson.loads(body)
        mapped = _map(connector, mapper, records, steps)
        claim = outbox.Claim(owner, 60.0)
        with steps.step("write the page (ledger, outbox, checkpoint: one transaction)"):
            write_page(engine, scope, mapped, next_request="x", claim=claim)
        events = claim.written
        with steps.step("check the batch from memory may go (outbox.leads)"):
            assert outbox.leads(engine, events)
        with steps.step("encode the delivery body"):
            batch = encode_batch(events)
        with steps.step("sign it"):
            signed_headers(destination, events, batch)
        with steps.step("acknowledge (delete from the outbox)"):
            outbox.ack(engine, [e.id for e in events], owner)
    total = args.pages * args.page_size
    print(f"{total:,} records in pages of {args.page_size}; CPU µs per record:")
    for name, seconds in steps.seconds.items():
        print(f"  {seconds / total * 1e6:6.1f}  {name}")
    print(f"  {sum(steps.seconds.values()) / total * 1e6:6.1f}  all steps")


def _mapper(engine: Any, settings: Settings) -> Any:
    from inlet.mapping import build_mapper

    connection = Connection(id="bench-src", tenant_id="bench", app="json_server", parameters={})
    return build_mapper(engine, settings, connection, "users", schema=None)


def _map(connector: Any, mapper: Any, records: list[dict[str, Any]], steps: Steps) -> list[MappedRecord]:
    with steps.step("map (raw -> UDM -> app record)"):
        apps = [mapper.map(raw) for raw in records]
    with steps.step("record id"):
        ids = [connector.record_id("users", raw) for raw in records]
    with steps.step("updated_at (to_iso)"):
        stamps = [connector.updated_at("users", raw) for raw in records]
    with steps.step("keep the raw record (orjson.dumps)"):
        raws = [orjson.dumps(raw).decode() for raw in records]
    return [MappedRecord(*fields) for fields in zip(ids, apps, stamps, raws, strict=True)]


if __name__ == "__main__":
    main()
