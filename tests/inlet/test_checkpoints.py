"""Checkpoints: a full import resumes its unfinished enumeration, and starts a new one when asked or when done."""

from __future__ import annotations

from sqlalchemy import Engine

from inlet.store import PageScope, current_generation, start_or_resume, write_page

CONNECTION, SOURCE = "acme-hubspot", "users"


def test_the_first_run_starts_an_enumeration_at_page_zero(engine: Engine) -> None:
    assert current_generation(engine, CONNECTION, SOURCE) is None
    checkpoint = start_or_resume(engine, CONNECTION, SOURCE)
    assert (checkpoint.pages, checkpoint.records, checkpoint.next_request, checkpoint.complete) == (0, 0, None, False)
    assert current_generation(engine, CONNECTION, SOURCE) == checkpoint.generation


def test_an_unfinished_enumeration_is_resumed_where_its_last_page_left_it(engine: Engine) -> None:
    first = start_or_resume(engine, CONNECTION, SOURCE)
    scope = PageScope("acme", CONNECTION, SOURCE, first.generation, "run-1")
    write_page(engine, scope, [], next_request='{"after": "100"}')
    resumed = start_or_resume(engine, CONNECTION, SOURCE)
    assert (resumed.generation, resumed.pages, resumed.next_request) == (first.generation, 1, '{"after": "100"}')


def test_a_finished_enumeration_or_a_restart_starts_a_new_one(engine: Engine) -> None:
    first = start_or_resume(engine, CONNECTION, SOURCE)
    write_page(engine, PageScope("acme", CONNECTION, SOURCE, first.generation, "run-1"), [], next_request="{}")
    restarted = start_or_resume(engine, CONNECTION, SOURCE, restart=True)
    assert restarted.generation != first.generation and restarted.pages == 0
    write_page(engine, PageScope("acme", CONNECTION, SOURCE, restarted.generation, "run-2"), [], next_request=None)
    after_done = start_or_resume(engine, CONNECTION, SOURCE)
    assert after_done.generation not in (first.generation, restarted.generation) and not after_done.complete
    assert current_generation(engine, CONNECTION, SOURCE) == after_done.generation
