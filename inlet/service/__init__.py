"""Operations the CLI (and later the API) share: setting up an installation, what a connection's state is, and
the tags that find a connection's runs."""

from inlet.service.setup import OWNER_ONLY_UMASK, initialise, secure_home
from inlet.service.status import connection_status, run_history
from inlet.service.tags import connection_tag, run_tags

__all__ = [
    "OWNER_ONLY_UMASK",
    "connection_status",
    "connection_tag",
    "initialise",
    "run_history",
    "run_tags",
    "secure_home",
]
