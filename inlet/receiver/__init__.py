"""The webhook receiver: an ASGI app that verifies, routes and records the apps' change notices."""

from inlet.receiver.app import RECEIPT_SECONDS, create_receiver

__all__ = ["RECEIPT_SECONDS", "create_receiver"]
