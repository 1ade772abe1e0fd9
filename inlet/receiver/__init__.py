"""The webhook receiver: an ASGI app that verifies, routes and records the apps' change notices."""

from inlet.receiver.app import create_receiver, receipt_digest

__all__ = ["create_receiver", "receipt_digest"]
