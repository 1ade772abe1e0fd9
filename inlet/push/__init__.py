"""Bi-directional sync: what the team's app pushes, reversed into each tenant's app, with data links, conflict
policy and no echoes (inlet.store.echoes recognises inlet's own writes on the import path)."""

from inlet.push.body import nested_body
from inlet.push.conflicts import Conflict, external_changed, resolve
from inlet.push.engine import PushResult, drain_pushes
from inlet.push.payload import MAX_CHANGES, PushedChange, PushRequest, change_id
from inlet.push.reverse import ConflictPolicy, Reversed, ReverseMapper, build_reverse, inverse_fields
from inlet.push.runtime import PushRuntime, open_push_runtime, reverse_mapper

__all__ = [
    "MAX_CHANGES",
    "Conflict",
    "ConflictPolicy",
    "PushRequest",
    "PushResult",
    "PushRuntime",
    "PushedChange",
    "ReverseMapper",
    "Reversed",
    "build_reverse",
    "change_id",
    "drain_pushes",
    "open_push_runtime",
    "reverse_mapper",
    "external_changed",
    "inverse_fields",
    "nested_body",
    "resolve",
]
