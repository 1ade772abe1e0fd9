"""The webhook receiver: an ASGI app that verifies, routes and records the apps' change notices."""

from inlet.receiver.app import create_receiver
from inlet.receiver.receipts import RECEIPT_SECONDS

__all__ = ["RECEIPT_SECONDS", "create_receiver"]
