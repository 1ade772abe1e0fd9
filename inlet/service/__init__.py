"""Operations the CLI (and later the API) share: setting up an installation, what a connection's state is, and
the tags that find a connection's runs."""

from inlet.service.setup import initialise
from inlet.service.status import connection_status, run_history
from inlet.service.tags import connection_tag, run_tags

__all__ = ["connection_status", "connection_tag", "initialise", "run_history", "run_tags"]
