"""The per-connection request budget: a sliding window, with a fake clock."""

from __future__ import annotations

from connectors.budget import RequestBudget


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_requests_within_the_budget_do_not_wait() -> None:
    clock = FakeClock()
    budget = RequestBudget(3, 10, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        await budget.acquire()
    assert clock.slept == [] and budget.waited == 0


async def test_the_request_over_the_budget_waits_for_the_window_to_slide() -> None:
    clock = FakeClock()
    budget = RequestBudget(2, 10, clock=clock, sleep=clock.sleep)
    await budget.acquire()
    clock.now = 4.0
    await budget.acquire()
    await budget.acquire()
    assert clock.slept == [6.0] and budget.waited == 6.0


async def test_a_burst_of_requests_is_spread_at_the_budget_rate() -> None:
    clock = FakeClock()
    budget = RequestBudget(5, 1, clock=clock, sleep=clock.sleep)
    for _ in range(20):
        await budget.acquire()
    assert clock.now == 3.0  # 20 requests at 5 per second: the last one goes out after 3 s
