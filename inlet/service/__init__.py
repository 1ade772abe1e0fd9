"""Operations the CLI (and later the API) share: setting up an installation, what a connection's state is."""

from inlet.service.setup import initialise
from inlet.service.status import connection_status, run_history

__all__ = ["initialise", "connection_status", "run_history"]
