"""Every filter and global a mapping author gets: a table of (expression, record, expected), and its failures."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from mappings import RecordError, compile_mapping

LOOKUPS = {"countries": {"FR": "France", "DE": "Germany", "1": "one"}}
WHEN = datetime(2026, 11, 24, 17, 24, 49, 524000, tzinfo=UTC)


def render(expression: str, record: dict[str, Any]) -> Any:
    mapping = compile_mapping({"out": expression}, origin="test")
    return mapping.render({"raw": record, "lookups": LOOKUPS})["out"]


@pytest.mark.parametrize(
    ("expression", "record", "expected"),
    [
        ("{{ raw.name | first_name }}", {"name": "Ada King Lovelace"}, "Ada"),
        ("{{ raw.name | first_name }}", {"name": "  "}, None),
        ("{{ raw.name | first_name }}", {"name": None}, None),
        ("{{ raw.name | last_name }}", {"name": "Ada King Lovelace"}, "King Lovelace"),
        ("{{ raw.name | last_name }}", {"name": "Ada"}, None),
        ("{{ raw.email | lower }}", {"email": "Ada@Example.ORG"}, "ada@example.org"),
        ("{{ raw.email | upper }}", {"email": "ada@x.org"}, "ADA@X.ORG"),
        ("{{ raw.email | trim }}", {"email": "  ada@x.org \n"}, "ada@x.org"),
        ("{{ raw.email | trim | lower }}", {"email": " Ada@X.org "}, "ada@x.org"),
        ("{{ raw.fax | default('n/a') }}", {}, "n/a"),
        ("{{ raw.fax | default(none) }}", {}, None),
        ("{{ raw.fax | default(0) }}", {}, 0),
        ("{{ coalesce(raw.mobile, raw.phone, 'n/a') }}", {"phone": "+33 1"}, "+33 1"),
        ("{{ coalesce(raw.mobile, raw.phone, 'n/a') }}", {"mobile": "", "phone": None}, "n/a"),
        ("{{ coalesce(raw.a, raw.b) }}", {"a": 0, "b": 5}, 0),
        ("{{ coalesce(raw.a) }}", {}, None),
        ("{{ raw.mobile | coalesce(raw.phone) }}", {"mobile": None, "phone": "+49"}, "+49"),
        ("{{ raw.at | parse_date }}", {"at": "2026-11-24T17:24:49.524Z"}, WHEN),
        ("{{ raw.at | parse_date }}", {"at": 1795541089524}, WHEN),
        ("{{ raw.at | parse_date }}", {"at": 1795541089}, WHEN.replace(microsecond=0)),
        ("{{ raw.at | parse_date }}", {"at": None}, None),
        ("{{ raw.at | parse_date('%d/%m/%Y') }}", {"at": "24/11/2026"}, datetime(2026, 11, 24)),
        ("{{ raw.at | format_date('%Y-%m-%d') }}", {"at": "2026-11-24T17:24:49.524Z"}, "2026-11-24"),
        ("{{ raw.at | format_date }}", {"at": 1795541089}, "2026-11-24T17:24:49+0000"),
        ("{{ raw.at | parse_date('%d/%m/%Y') | format_date('%Y%m%d') }}", {"at": "01/02/2026"}, "20260201"),
        ("{{ raw.at | format_date('%Y') }}", {"at": None}, None),
        ("{{ raw.country | lookup('countries') }}", {"country": "FR"}, "France"),
        ("{{ raw.country | lookup('countries', 'other') }}", {"country": "IT"}, "other"),
        ("{{ raw.country | lookup('countries', none) }}", {"country": None}, None),
        ("{{ raw.n | lookup('countries') }}", {"n": 1}, "one"),
        ("{{ (raw.country) | lookup('countries') }}", {"country": "DE"}, "Germany"),
        ("{{ raw.tags | join(', ') }}", {"tags": ["a", "b"]}, "a, b"),
        ("{{ raw.tags | join }}", {"tags": []}, ""),
        ("{{ raw.tags | split(',') }}", {"tags": "a,b,,c"}, ["a", "b", "", "c"]),
        ("{{ raw.tags | split }}", {"tags": " a  b "}, ["a", "b"]),
        ("{{ raw.tags | split(',', 1) }}", {"tags": "a,b,c"}, ["a", "b,c"]),
        ("{{ raw.tags | split }}", {"tags": None}, []),
        ("{{ raw.email | hash }}", {"email": "ada@x.org"}, hashlib.sha256(b"ada@x.org").hexdigest()),
        ("{{ raw.email | hash('md5') }}", {"email": "ada@x.org"}, hashlib.md5(b"ada@x.org").hexdigest()),
        ("{{ raw.id | hash('sha1') }}", {"id": 7}, hashlib.sha1(b"7").hexdigest()),
    ],
)
def test_filter(expression: str, record: dict[str, Any], expected: Any) -> None:
    result = render(expression, record)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    ("expression", "record", "message"),
    [
        ("{{ raw.at | parse_date }}", {"at": "last tuesday"}, "Invalid isoformat"),
        ("{{ raw.at | parse_date }}", {"at": True}, "cannot read a date"),
        ("{{ raw.at | parse_date }}", {"at": [1]}, "cannot read a date from a list"),
        ("{{ raw.at | parse_date('%d/%m/%Y') }}", {"at": "2026-11-24"}, "does not match format"),
        ("{{ raw.country | lookup('countries') }}", {"country": "IT"}, "not in the lookup table 'countries'"),
        ("{{ raw.country | lookup('regions') }}", {"country": "FR"}, "no lookup table 'regions'"),
        ("{{ raw.country | lookup('countries', 'x') }}", {}, "is undefined"),
        ("{{ raw.tags | split }}", {"tags": ["a"]}, "expected text"),
        ("{{ raw.email | hash('crc') }}", {"email": "a"}, "unknown algorithm 'crc'"),
        ("{{ raw.email | hash }}", {}, "is undefined"),
    ],
)
def test_filter_failure_is_a_record_error(expression: str, record: dict[str, Any], message: str) -> None:
    with pytest.raises(RecordError, match=message):
        render(expression, record)


@pytest.mark.parametrize(
    "expression",
    [
        "{{ 'x' * 1000000 }}",
        "{{ [0] * 1000000 }}",
        "{{ 2 ** 100000 }}",
        "{{ '%999999999d' % 1 }}",
        "{{ '%999999999d' | format(1) }}",
        "{{ 'x' | center(999999999) }}",
        "{{ 'x' | indent(999999999) }}",
        "{{ lipsum(1000000) }}",
        "{{ range(10 ** 9) | list }}",
    ],
)
def test_expressions_that_would_take_the_workers_memory_are_refused(expression: str) -> None:
    with pytest.raises(RecordError):
        render(expression, {})


@pytest.mark.parametrize(
    ("expression", "expected"),
    [("{{ 'ab' * 3 }}", "ababab"), ("{{ 2 ** 10 }}", 1024), ("{{ '%05d' % 42 }}", "00042"), ("{{ 7 % 3 }}", 1)],
)
def test_small_products_powers_and_formats_still_work(expression: str, expected: Any) -> None:
    assert render(expression, {}) == expected
