"""OAuth 2 for connections: client registrations, the connect flow and its callback routes, tokens that refresh."""

from inlet.oauth.clients import client_for, grant_spec, register_client
from inlet.oauth.connect import connect_app_only, connect_link, finish_connect, oauth_auth, start_connect
from inlet.oauth.routes import oauth_routes
from inlet.oauth.tokens import StoredTokens, TokenRow, mark_needs_reauth, read_tokens, save_tokens, swap_tokens

__all__ = [
    "StoredTokens",
    "TokenRow",
    "client_for",
    "connect_app_only",
    "connect_link",
    "finish_connect",
    "grant_spec",
    "mark_needs_reauth",
    "oauth_auth",
    "oauth_routes",
    "read_tokens",
    "register_client",
    "save_tokens",
    "start_connect",
    "swap_tokens",
]
