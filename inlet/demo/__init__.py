"""The demo: a receiving app to copy from, its fault knobs and schemas, and the `inlet demo` command."""

from inlet.demo.app import create_demo_app
from inlet.demo.command import DEMO_CONNECTION, DEMO_TENANT, DEMO_WEBHOOK_SECRET, run_demo, run_up
from inlet.demo.schemas import USERS_SCHEMA

__all__ = [
    "DEMO_CONNECTION",
    "DEMO_TENANT",
    "DEMO_WEBHOOK_SECRET",
    "USERS_SCHEMA",
    "create_demo_app",
    "run_demo",
    "run_up",
]
