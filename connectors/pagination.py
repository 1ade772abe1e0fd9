"""Declarative paginators: frozen pydantic models, so the YAML config *is* the class.

Each paginator is stateless. Given the request that was sent, its response and what the page held,
`next_request` builds the next request or returns None at the end of the list. The loop in
`connectors.base` owns the state (pages read, requests seen) and the guards against loops.

Stop rules shared by all kinds (`stop:` in YAML) end the listing before the paginator is asked:
an empty page, a short page (fewer records than `page_size`), a false `has_more_path`, or
`total_path` reached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.paths import MISSING, lookup

__all__ = [
    "Cursor",
    "Keyset",
    "NextLink",
    "Offset",
    "PageNumber",
    "PageView",
    "Paginator",
    "SinglePage",
    "StopRules",
]


@dataclass(frozen=True)
class PageView:
    """What a paginator may look at once a page is read."""

    body: Any
    records: list[dict[str, Any]]
    seen: int  # records read so far, this page included


class StopRules(BaseModel):
    """Signals that end a listing, whatever the paginator would do next."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    empty_page: bool = Field(True, description="an empty page ends the list")
    short_page: bool = Field(False, description="a page with fewer than page_size records ends the list")
    has_more_path: str | None = Field(None, description="body path of a boolean; false ends the list")
    total_path: str | None = Field(None, description="body path of the total count; reaching it ends the list")
    end_path: str | None = Field(None, description="body path of a boolean; true ends the list (end_of_stream)")


class _Base(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    page_size: int | None = Field(None, gt=0, description="records per page to ask for")
    limit_param: str | None = Field(None, description="query parameter carrying page_size")
    stop: StopRules = StopRules()

    def first_request(self, request: httpx.Request) -> httpx.Request:
        """The first page's request: the page size set, plus what the kind needs to start."""
        if self.limit_param and self.page_size:
            return _with_param(request, self.limit_param, self.page_size)
        return request

    def is_last(self, page: PageView) -> bool:
        """True when a stop rule says this page ends the listing."""
        rules = self.stop
        if rules.empty_page and not page.records:
            return True
        if rules.short_page and self.page_size and len(page.records) < self.page_size:
            return True
        if rules.has_more_path and not lookup(page.body, rules.has_more_path, False):
            return True
        if rules.end_path and lookup(page.body, rules.end_path, False) is True:
            return True
        if rules.total_path:
            total = lookup(page.body, rules.total_path, None)
            if isinstance(total, int | str) and str(total).isdigit() and page.seen >= int(total):
                return True
        return False


class SinglePage(_Base):
    """The whole collection comes in one response."""

    type: Literal["single_page"] = "single_page"

    def next_request(self, request: httpx.Request, response: httpx.Response, page: PageView) -> None:
        return None


class Cursor(_Base):
    """An opaque token in the body (or a header) goes back as a query parameter or JSON body field.

    HubSpot: `{"results": [...], "paging": {"next": {"after": "52"}}}` → `?after=52`.
    """

    type: Literal["cursor"] = "cursor"
    cursor_path: str | None = Field(None, description="body path of the next token")
    cursor_header: str | None = Field(None, description="response header carrying the next token")
    param: str = Field("cursor", description="where the token goes in the next request")
    location: Literal["query", "json"] = "query"
    initial: str | None = Field(None, description="token sent with the first request")

    @model_validator(mode="after")
    def _one_source(self) -> Cursor:
        if (self.cursor_path is None) == (self.cursor_header is None):
            raise ValueError("set exactly one of cursor_path or cursor_header")
        return self

    def first_request(self, request: httpx.Request) -> httpx.Request:
        request = super().first_request(request)
        return self._with_cursor(request, self.initial) if self.initial is not None else request

    def next_request(self, request: httpx.Request, response: httpx.Response, page: PageView) -> httpx.Request | None:
        if self.cursor_header:
            token: Any = response.headers.get(self.cursor_header)
        else:
            token = lookup(page.body, self.cursor_path or "", None)
        if token in (None, "", MISSING):
            return None
        return self._with_cursor(request, str(token))

    def _with_cursor(self, request: httpx.Request, token: str) -> httpx.Request:
        if self.location == "query":
            return _with_param(request, self.param, token)
        body = orjson.loads(request.content) if request.content else {}
        body[self.param] = token
        return _rebuild(request, content=orjson.dumps(body))


_LINK_NEXT = re.compile(r'<([^>]*)>\s*;[^,]*?\brel="?([^",;]*\bnext\b[^",;]*)"?', re.IGNORECASE)


class NextLink(_Base):
    """The next page's URL, absolute or relative: an RFC 5988 `Link` header (rel="next"),
    a header holding a bare URL (Kinto's `Next-Page`), or a URL in the body (`next_path`).

    `Link: <https://api.example.com/users?_page=3&_limit=100>; rel="next"`
    """

    type: Literal["next_link"] = "next_link"
    header: str | None = Field("Link", description="header with the next URL; 'Link' is parsed per RFC 5988")
    next_path: str | None = Field(None, description="body path of the next URL (instead of a header)")

    def next_request(self, request: httpx.Request, response: httpx.Response, page: PageView) -> httpx.Request | None:
        url = self._next_url(response, page)
        if not url:
            return None
        return _rebuild(request, url=request.url.join(url))

    def _next_url(self, response: httpx.Response, page: PageView) -> str | None:
        if self.next_path:
            value = lookup(page.body, self.next_path, None)
            return str(value) if value not in (None, "", MISSING) else None
        if not self.header:
            return None
        raw = response.headers.get(self.header)
        if not raw:
            return None
        if self.header.lower() != "link":
            return str(raw).strip()
        for match in _LINK_NEXT.finditer(raw):
            if "next" in match.group(2).lower().split():
                return match.group(1).strip()
        return None


class Offset(_Base):
    """`?offset=200&limit=100`; the offset grows by the page size or by what the page held."""

    type: Literal["offset"] = "offset"
    param: str = "offset"
    start: int = 0
    advance: Literal["page_size", "response_size"] = "response_size"
    stop: StopRules = StopRules(short_page=True)

    def first_request(self, request: httpx.Request) -> httpx.Request:
        return _with_param(super().first_request(request), self.param, self.start)

    def next_request(self, request: httpx.Request, response: httpx.Response, page: PageView) -> httpx.Request | None:
        current = int(request.url.params.get(self.param, self.start))
        step = self.page_size if self.advance == "page_size" and self.page_size else len(page.records)
        return _with_param(request, self.param, current + step)


class PageNumber(_Base):
    """`?page=3&per_page=100`, counting from `start`."""

    type: Literal["page_number"] = "page_number"
    param: str = "page"
    start: int = 1
    total_pages_path: str | None = Field(None, description="body path of the page count")
    stop: StopRules = StopRules(short_page=True)

    def first_request(self, request: httpx.Request) -> httpx.Request:
        return _with_param(super().first_request(request), self.param, self.start)

    def next_request(self, request: httpx.Request, response: httpx.Response, page: PageView) -> httpx.Request | None:
        current = int(request.url.params.get(self.param, self.start))
        if self.total_pages_path:
            total = lookup(page.body, self.total_pages_path, None)
            if isinstance(total, int) and current - self.start + 1 >= total:
                return None
        return _with_param(request, self.param, current + 1)


class Keyset(_Base):
    """The last record's key goes back as a filter: `?since_id=<id of the last record>`."""

    type: Literal["keyset"] = "keyset"
    param: str
    key_path: str = Field("id", description="record path of the key")

    def next_request(self, request: httpx.Request, response: httpx.Response, page: PageView) -> httpx.Request | None:
        if not page.records:
            return None
        key = lookup(page.records[-1], self.key_path, None)
        if key in (None, MISSING):
            return None
        return _with_param(request, self.param, key)


Paginator = Annotated[SinglePage | Cursor | NextLink | Offset | PageNumber | Keyset, Field(discriminator="type")]


def _with_param(request: httpx.Request, name: str, value: object) -> httpx.Request:
    return _rebuild(request, url=request.url.copy_set_param(name, str(value)))


def _rebuild(request: httpx.Request, *, url: httpx.URL | None = None, content: bytes | None = None) -> httpx.Request:
    return httpx.Request(
        request.method,
        url if url is not None else request.url,
        headers=[(k, v) for k, v in request.headers.multi_items() if k.lower() != "content-length"],
        content=content if content is not None else request.content,
    )
