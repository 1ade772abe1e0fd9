"""The pages a team embeds for its tenants (connect an account, status, field mapping), opened with a connect
session; server-rendered, no outside network."""

from inlet.pages.app import create_pages

__all__ = ["create_pages"]
