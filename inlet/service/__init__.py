"""Operations the CLI (and later the API) share: setting up an installation, what a connection's state is, and
the tags that find a connection's runs."""

from inlet.service.setup import initialise
from inlet.service.status import connection_status, run_history
from inlet.service.sync import change_source, pause, remove_connection, resume, set_policy, sync_status
from inlet.service.tags import connection_tag, run_tags

__all__ = [
    "change_source",
    "connection_status",
    "connection_tag",
    "initialise",
    "pause",
    "remove_connection",
    "resume",
    "run_history",
    "run_tags",
    "set_policy",
    "sync_status",
]
