"""Delivery to the team's app: signed batches from the outbox, retried by policy, behind a circuit breaker."""

from inlet.delivery.auth import BearerToken, ClientCredentials
from inlet.delivery.destinations import destination_for, retire_secret, rotate_secret, set_destination
from inlet.delivery.handoff import Handoff
from inlet.delivery.policy import Destination, DrainResult, encode_batch, shown_url
from inlet.delivery.sender import drain
from inlet.delivery.signing import generate_secret, sign_headers, verify
from inlet.delivery.status import DestinationFigures, destination_figures

__all__ = [
    "BearerToken",
    "ClientCredentials",
    "Destination",
    "DestinationFigures",
    "DrainResult",
    "Handoff",
    "destination_figures",
    "destination_for",
    "drain",
    "encode_batch",
    "generate_secret",
    "retire_secret",
    "rotate_secret",
    "set_destination",
    "shown_url",
    "sign_headers",
    "verify",
]
