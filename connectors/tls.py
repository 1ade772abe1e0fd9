"""One TLS context per process, shared by every HTTP client that talks to an app.

httpx builds a new `ssl.SSLContext` for each client and loads certifi's CA bundle into it: 15-40 ms of CPU on
a 2-core machine, more than mapping a page of records costs, and a run opens a client per connection. A context
is not changed after it is built, and one context may serve many clients and threads, so it is built once
(the same way httpx does: SSL_CERT_FILE / SSL_CERT_DIR when set, certifi otherwise).
"""

from __future__ import annotations

import ssl
from functools import cache

import httpx

__all__ = ["tls_context"]


@cache
def tls_context() -> ssl.SSLContext:
    """The process's verifying TLS context (certificates and host names checked)."""
    return httpx.create_ssl_context()
