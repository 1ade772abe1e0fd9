"""The shared TLS context: built once per process, and it verifies certificates and host names."""

from __future__ import annotations

import ssl

from connectors.tls import tls_context


def test_one_context_serves_every_client() -> None:
    assert tls_context() is tls_context()


def test_shared_context_verifies_certificates_and_host_names() -> None:
    context = tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.cert_store_stats()["x509_ca"] > 0  # the CA bundle is loaded
