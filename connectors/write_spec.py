"""`writes:` of a collection in connector.yaml: how inlet creates, updates and deletes the app's records.

```yaml
collections:
  contacts:
    writes:
      fields: [email, firstname, lastname]          # what the app lets a client write (the catalogue shows it)
      create: {method: POST, path: /crm/v3/objects/contacts, body: {properties: $fields}, id_path: id}
      update: {method: PATCH, path: "/crm/v3/objects/contacts/{id}", body: {properties: $fields}}
      delete: {method: DELETE, path: "/crm/v3/objects/contacts/{id}"}
      etag: {header: If-Match, response_header: ETag}  # optimistic concurrency, where the app has it
      idempotency_header: Idempotency-Key             # where the app has it; else `find` before a re-create
      find: {params: {email: "$field:email"}}         # the list endpoint filtered by a written field
      #     {scan: true, match: [Email]}               # no filter: the whole listing, after a lost create only
      paths: {first_name: names.0.givenName}          # where an expression's UDM field is written
      error_message_path: message
      conflict: [{status: [409, 412]}]
```

A body or params template is JSON whose strings may be one of these tokens, replaced whole:
`$fields` (the written fields, an object), `$field:<name>` (one of them), `$field_names` (their names,
comma-separated), `$etag`, `$id`, `$now_ms` and `$now_iso` (the write's time, for apps that keep no
modification time themselves). Any other string is sent as it is. The default body is `$fields`; a
`$merge` key merges its object into the one holding it (`{$merge: $fields, updatedAt: $now_ms}`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["BatchCall", "ConflictRule", "EtagSpec", "FindSpec", "ModifiedBySpec", "WriteCall", "WritesSpec", "TOKENS"]

TOKENS = ("$fields", "$field_names", "$etag", "$id", "$now_ms", "$now_iso")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class WriteCall(_Strict):
    """One write request: its method, path (`{id}` is the external id) and body template."""

    method: Literal["POST", "PUT", "PATCH", "DELETE"]
    path: str
    params: dict[str, str] = {}
    headers: dict[str, str] = {}
    body: Any = Field("$fields", description="the JSON body template; null: no body")
    record_path: str = Field("", description="where the written record is in the answer (empty: the body)")
    id_path: str | None = Field(None, description="create: where the new record's id is in the answer")
    id_safe: str = Field("", description="characters left unquoted in {id} (Google's `people/c1` keeps `/`)")
    etag_required: bool = Field(False, description="the app refuses this call without an etag (Google People)")
    send_etag: bool = Field(True, description="false: the app takes no precondition on this call (Salesforce DELETE)")


class BatchCall(_Strict):
    """Many records in one request: `body` holds `$items`, each rendered from `item` (tokens as above, plus
    `$key`, the op's idempotency key); the answer's `results_path` lists the written records, matched to the
    ops by `match_path` (an echoed key, such as HubSpot's `objectWriteTraceId`) or else by order."""

    method: Literal["POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: str
    body: Any = {"inputs": "$items"}
    item: Any
    results_path: str | None = Field("results", description="null: the answer has no body (an archive)")
    id_path: str = "id"
    match_path: str | None = None


class EtagSpec(_Strict):
    """Optimistic concurrency: where the etag goes on a write and where a write's answer gives the new one.

    `header` (If-Match, If-Unmodified-Since) or `body_path` (Google's `etag` field) carries it out;
    `response_header` or `response_path` (in the written or read record) brings the new one back. `quote` wraps a
    bare value in double quotes for the header (Kinto's ETag is `"1700000000000"`)."""

    header: str | None = None
    body_path: str | None = None
    response_header: str | None = None
    response_path: str | None = None
    quote: bool = False
    http_date: bool = Field(
        False, description="the value is a modified time, sent as an HTTP date (If-Unmodified-Since)"
    )

    @model_validator(mode="after")
    def _one_way_out(self) -> EtagSpec:
        if (self.header is None) == (self.body_path is None):
            raise ValueError("set exactly one of etag.header or etag.body_path")
        return self


class FindSpec(_Strict):
    """A record that a lost create may have made: the list endpoint with these params (templates over the
    fields); the single record found is the one (several: ambiguous, refused). An app with no filter to find
    by `scan`s its whole listing, comparing the `match` fields: only after a create whose answer was lost."""

    path: str | None = Field(None, description="default: the collection's list path")
    params: dict[str, str] = {}
    match: list[str] = Field([], description="written fields a found record must hold too (paths, `primary` steps)")
    scan: bool = Field(False, description="no filter: list every page, only to look up a create that may have landed")
    records_path: str | None = Field(None, description="default: the collection's list records_path")
    method: Literal["GET", "POST"] = "GET"
    body: Any = None


class ConflictRule(_Strict):
    """An answer that means "the record changed since you read it" (or already exists)."""

    status: list[int]
    body_contains: str | None = None
    existing_id_pattern: str | None = Field(None, description="a regex whose group 1 is the existing record's id")


class ModifiedBySpec(_Strict):
    """The app's own "modified by" marker on a record: the value at `path` equals `equals` (a literal, or a
    `{parameter}` of the connection) when inlet's connection made the last change."""

    path: str
    equals: str


class WritesSpec(_Strict):
    """Create, update and delete of one collection, and what they may write."""

    fields: list[str] = Field(description="the fields a client may write, by the app's names")
    paths: dict[str, str] = Field(
        {},
        description="UDM field -> the path a write puts it at, for UDM fields whose udm_fields entry is an "
        "expression rather than a plain `raw.` path (Google's primary-item filters: `names.0.givenName`)",
    )
    create: WriteCall | None = None
    update: WriteCall | None = None
    delete: WriteCall | None = None
    delete_ok: list[int] = Field([404, 410], description="answers to a delete that mean it is already gone")
    etag: EtagSpec | None = None
    idempotency_header: str | None = None
    find: FindSpec | None = None
    modified_by: ModifiedBySpec | None = None
    error_message_path: str = Field("message", description="the app's message in a refusal's body")
    conflict: list[ConflictRule] = [ConflictRule(status=[409, 412])]
    batch_limit: int | None = Field(None, ge=1, description="records per batch call, where the app has one")
    batch: dict[Literal["create", "update", "delete"], BatchCall] = Field(
        {}, description="batch endpoints (write_batch), where the app has them"
    )

    @model_validator(mode="after")
    def _paths_take_the_id(self) -> WritesSpec:
        for kind, call in (("update", self.update), ("delete", self.delete)):
            if call is not None and "{id}" not in call.path:
                raise ValueError(f"writes.{kind}.path must contain {{id}}")
        if self.create is not None and self.create.id_path is None:
            raise ValueError("writes.create needs id_path: where the answer gives the new record's id")
        if not (self.create or self.update or self.delete):
            raise ValueError("writes needs at least one of create, update or delete")
        return self

    def calls(self) -> list[tuple[str, WriteCall]]:
        return [(k, c) for k, c in (("create", self.create), ("update", self.update), ("delete", self.delete)) if c]
