"""Operations the CLI (and later the API) share: setting up an installation, what a connection's state is, and
the tags that find a connection's runs."""

from inlet.service.setup import initialise
from inlet.service.status import connection_status, run_history
from inlet.service.sync import (
    change_source,
    drop_poison,
    pause,
    poison_events,
    remove_connection,
    resume,
    retry_poison,
    set_policy,
    sync_status,
)
from inlet.service.tags import connection_tag, run_tags

__all__ = [
    "change_source",
    "connection_status",
    "connection_tag",
    "drop_poison",
    "initialise",
    "pause",
    "poison_events",
    "remove_connection",
    "resume",
    "retry_poison",
    "run_history",
    "run_tags",
    "set_policy",
    "sync_status",
]
