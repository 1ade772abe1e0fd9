"""Delivery reliability: six bad days at the team's app, each run until the app holds exactly the source.

    .venv/bin/python bench/reliability.py [--down-seconds 120] [--slow-seconds 5] [--only down,slow]

Every scenario starts the demo app (a real process on 127.0.0.1) with a fault knob, fills a SQLite outbox
with users (every record created, every third one updated too, so a record has two ordered events), and
drains it the way the `deliver-outbox` schedule does, every `--tick` seconds, with the bench policy of
bench/drill.py (the shipped policy's shape, with minutes instead of hours). It then checks that the
app's records equal the source's, that every event was applied exactly once, and that the attempts kept to
the policy, and rewrites the reliability table in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.drill import BENCH_POLICY, Drill, Figures, spawn_drain  # noqa: E402
from inlet.store import outbox  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
BEGIN, END = "<!-- reliability:begin -->", "<!-- reliability:end -->"
Scenario = Callable[[Path, argparse.Namespace], Coroutine[Any, Any, Figures]]


async def random_503(folder: Path, args: argparse.Namespace) -> Figures:
    drill, figures = _drill(folder, args), Figures("20% random 503s")
    drill.faults(failure_rate=0.2, status=503, seed=1)
    await drill.converge(drill.destination(BENCH_POLICY), figures, tick=args.tick, deadline=600)
    faults = drill.stats()["faults"]
    return _finish(drill, figures, figures.attempts == _batches(drill) + faults, f"{faults} 503s, each retried once")


async def storm_429(folder: Path, args: argparse.Namespace) -> Figures:
    drill, figures = _drill(folder, args), Figures("429 storm, Retry-After: 2")
    drill.faults(fail_next=args.storm, status=429, retry_after=2)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(seconds)

    await drill.converge(drill.destination(BENCH_POLICY), figures, tick=args.tick, deadline=600, sleep=sleep)
    ok = all(w >= 2 for w in waits) and figures.parked == 0
    return _finish(drill, figures, ok, f"{args.storm} 429s; every wait >= Retry-After; breaker stayed closed")


async def down(folder: Path, args: argparse.Namespace) -> Figures:
    drill, figures = _drill(folder, args, start=False), Figures(f"app down {args.down_seconds:.0f} s")
    converging = asyncio.create_task(
        drill.converge(drill.destination(BENCH_POLICY), figures, tick=args.tick, deadline=args.down_seconds + 600)
    )
    await asyncio.sleep(args.down_seconds)
    await asyncio.to_thread(drill.start_app)
    back = time.monotonic()
    await converging
    failed = figures.attempts - drill.stats()["requests"]
    cooldown, cap = BENCH_POLICY["breaker_cooldown_seconds"], BENCH_POLICY["retry_cap_seconds"]
    bound = BENCH_POLICY["breaker_threshold"] + math.ceil(math.log2(args.down_seconds / cooldown + 1))
    bound += math.ceil(args.down_seconds / cap) + 1
    note = f"{failed} failed attempts while down (bound {bound}); converged {time.monotonic() - back:.0f} s after"
    opened = figures.parked > 0 or failed < BENCH_POLICY["breaker_threshold"]
    return _finish(drill, figures, failed <= bound and opened, note)


async def slow(folder: Path, args: argparse.Namespace) -> Figures:
    drill = Drill(folder, records=args.records // 8, connections=4, batch_size=args.batch)
    drill.fill()
    drill.start_app()
    figures = Figures(f"app answers in {args.slow_seconds:.0f} s, 4 connections")
    drill.faults(delay_seconds=args.slow_seconds)
    await drill.converge(drill.destination(BENCH_POLICY), figures, tick=args.tick, deadline=600)
    in_flight = drill.stats()["max_in_flight"]
    ok = in_flight <= BENCH_POLICY["concurrency"]
    return _finish(drill, figures, ok, f"at most {in_flight} requests in flight (limit {BENCH_POLICY['concurrency']})")


async def rejected(folder: Path, args: argparse.Namespace) -> Figures:
    drill, figures = _drill(folder, args), Figures("422 for one record, then replay")
    drill.faults(reject_ids=["42"])
    await drill.converge(drill.destination(BENCH_POLICY), figures, tick=args.tick, deadline=600)
    dead = figures.dead
    drill.faults()
    outbox.replay(drill.engine)
    await drill.converge(drill.destination(BENCH_POLICY), figures, tick=args.tick, deadline=600)
    ok = dead == 2 and figures.attempts == 1 + _batches(drill, held=2) + 1
    return _finish(drill, figures, ok, f"{dead} events dead (the record's two), others delivered; replay sent them")


async def killed(folder: Path, args: argparse.Namespace) -> Figures:
    drill, figures = _drill(folder, args), Figures("drain process killed mid-delivery")
    drill.faults(delay_seconds=0.5)
    process = spawn_drain(drill, "acme-0", "bench")
    started = time.monotonic()
    while drill.stats()["events_applied"] < args.records // 4 and process.poll() is None:
        await asyncio.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)
    figures.notes.append(f"SIGKILL after {drill.stats()['events_applied']} events applied")
    drill.faults()
    await drill.converge(drill.destination(BENCH_POLICY), figures, tick=args.tick, deadline=600)
    figures.seconds = time.monotonic() - started
    figures.attempts = drill.stats()["requests"]  # the killed process's attempts count too
    drill.record_app_figures(figures)
    return _finish(drill, figures, figures.duplicates <= 10, "duplicates at most the batch in flight (10)")


SCENARIOS: dict[str, Scenario] = {
    "503": random_503,
    "429": storm_429,
    "down": down,
    "slow": slow,
    "422": rejected,
    "killed": killed,
}


def _drill(folder: Path, args: argparse.Namespace, *, start: bool = True) -> Drill:
    drill = Drill(folder, records=args.records, batch_size=args.batch)
    drill.fill()
    if start:
        drill.start_app()
    return drill


def _batches(drill: Drill, held: int = 0) -> int:
    return sum(math.ceil((drill.events // len(drill.connections) - held) / drill.batch_size) for _ in drill.connections)


def _finish(drill: Drill, figures: Figures, within_policy: bool, note: str) -> Figures:
    try:
        drill.record_app_figures(figures)
        matches = drill.app_state() == drill.expected and drill.pending() == 0
        once = figures.applied == drill.events
        figures.notes[:0] = [
            f"state == source: {'yes' if matches else 'NO'}",
            f"each event applied once: {'yes' if once else 'NO'}",
            f"within policy: {'yes' if within_policy else 'NO'} ({note})",
        ]
    finally:
        drill.close()
    return figures


def _table(rows: list[Figures], args: argparse.Namespace) -> str:
    policy = ", ".join(f"{k}={v}" for k, v in BENCH_POLICY.items())
    lines = [
        BEGIN,
        f"## Delivery reliability (`bench/reliability.py`, {date.today().isoformat()})",
        "",
        f"{args.records:,} users per scenario (every third updated too: two ordered events per such record), "
        f"batches of {args.batch}, the demo app as a real process with its fault knobs, the drain repeated "
        f"every {args.tick:g} s as the `deliver-outbox` schedule does. Policy: {policy}.",
        "",
        "| scenario | events sent | attempts | duplicates seen by the app | time to converge | checks |",
        "|---|---|---|---|---|---|",
    ]
    for f in rows:
        checks = "; ".join(f.notes)
        lines.append(
            f"| {f.scenario} | {f.events:,} | {f.attempts:,} | {f.duplicates} | {f.seconds:.1f} s | {checks} |"
        )
    return "\n".join([*lines, "", END])


def _write(table: str) -> None:
    text = RESULTS.read_text()
    if BEGIN in text:
        text = text[: text.index(BEGIN)] + table + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + table + "\n"
    RESULTS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--tick", type=float, default=5.0, help="seconds between drains (the schedule)")
    parser.add_argument("--down-seconds", type=float, default=120.0)
    parser.add_argument("--slow-seconds", type=float, default=5.0)
    parser.add_argument("--storm", type=int, default=10, help="429 answers in a row")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated: " + ",".join(SCENARIOS))
    parser.add_argument("--no-write", action="store_true", help="print the table without touching RESULTS.md")
    args = parser.parse_args()
    rows = []
    for name in args.only.split(","):
        with tempfile.TemporaryDirectory(prefix=f"reliability-{name}-") as folder:
            figures = asyncio.run(SCENARIOS[name](Path(folder), args))
        print(f"{figures.scenario}: {figures}", flush=True)
        rows.append(figures)
    table = _table(rows, args)
    print(table)
    if not args.no_write:
        _write(table)


if __name__ == "__main__":
    main()
