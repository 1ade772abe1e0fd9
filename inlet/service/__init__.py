"""Operations the CLI (and later the API) share: setting up an installation, what a connection's state is."""

from inlet.service.setup import OWNER_ONLY_UMASK, initialise, secure_home
from inlet.service.status import connection_status, run_history

__all__ = ["OWNER_ONLY_UMASK", "initialise", "connection_status", "run_history", "secure_home"]
