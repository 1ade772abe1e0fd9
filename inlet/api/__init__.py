"""The HTTP API for the team's backend (FastAPI, OpenAPI at /api/openapi.json), and the one app `inlet serve`
runs: receiver, API and tenant pages."""

from inlet.api.app import API_PREFIX, create_api
from inlet.api.server import create_server

__all__ = ["API_PREFIX", "create_api", "create_server"]
