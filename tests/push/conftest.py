"""The real external apps of the integration tests (json-server, Kinto), for the push round trips."""

from tests.integration.conftest import json_server_factory, kinto_collection, kinto_server

__all__ = ["json_server_factory", "kinto_collection", "kinto_server"]
