"""Bi-directional sync: what the team's app pushes, reversed into each tenant's app, with data links, conflict
policy and no echoes (inlet.store.echoes recognises inlet's own writes on the import path)."""

from inlet.push.conflicts import Conflict, external_changed, resolve
from inlet.push.payload import MAX_CHANGES, PushedChange, PushRequest, change_id
from inlet.push.reverse import ConflictPolicy, Reversed, ReverseMapper, build_reverse, inverse_fields

__all__ = [
    "MAX_CHANGES",
    "Conflict",
    "ConflictPolicy",
    "PushRequest",
    "PushedChange",
    "ReverseMapper",
    "Reversed",
    "build_reverse",
    "change_id",
    "external_changed",
    "inverse_fields",
    "resolve",
]
