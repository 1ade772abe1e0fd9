"""Prefect's API clients share one verifying TLS context per process (flows/prefect_tls.py)."""

from __future__ import annotations

import ssl

from prefect.client.orchestration import PrefectClient, SyncPrefectClient
from prefect.settings import PREFECT_API_TLS_INSECURE_SKIP_VERIFY, temporary_settings

import flows  # noqa: F401  (installs the sharing)

API = "http://127.0.0.1:9/api"


def _context(client: PrefectClient | SyncPrefectClient) -> ssl.SSLContext:
    context = client._client._transport._pool._ssl_context  # type: ignore[union-attr]
    assert isinstance(context, ssl.SSLContext)
    return context


def test_every_client_gets_the_same_verifying_context() -> None:
    contexts = [_context(PrefectClient(API)), _context(PrefectClient(API)), _context(SyncPrefectClient(API))]

    assert contexts[0] is contexts[1] is contexts[2]
    assert contexts[0].verify_mode == ssl.CERT_REQUIRED
    assert contexts[0].check_hostname


def test_the_insecure_setting_gets_its_own_context_and_leaves_the_shared_one_verifying() -> None:
    shared = _context(PrefectClient(API))
    with temporary_settings(updates={PREFECT_API_TLS_INSECURE_SKIP_VERIFY: True}):
        insecure = _context(PrefectClient(API))

    assert insecure is not shared
    assert insecure.verify_mode == ssl.CERT_NONE
    assert shared.verify_mode == ssl.CERT_REQUIRED and shared.check_hostname
    assert _context(PrefectClient(API)) is shared
