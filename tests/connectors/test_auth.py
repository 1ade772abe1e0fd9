"""Auth declared in connector.yaml, filled from a connection's credentials, applied to real requests."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, TypeAdapter, ValidationError

from connectors.auth import ApiKeyAuth, AuthSpec, BasicAuth, BearerAuth, Credentials, NoAuth
from connectors.errors import AuthError

SECRET = "s3cr3t-value-9931"
AUTH = TypeAdapter[Any](AuthSpec)


def sent_with(auth: httpx.Auth | None) -> httpx.Request:
    """The request as the app receives it once `auth` has been applied."""
    received: list[httpx.Request] = []

    def app(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(app), auth=auth) as client:
        client.get("https://api.acme.example/v2/contacts", params={"limit": "10"})
    return received[0]


def creds(**values: str) -> Credentials:
    return {key: SecretStr(value) for key, value in values.items()}


def test_bearer_sets_the_authorization_header() -> None:
    request = sent_with(BearerAuth().build(creds(token=SECRET), "acme"))
    assert request.headers["Authorization"] == f"Bearer {SECRET}"


def test_bearer_reads_a_renamed_credential() -> None:
    request = sent_with(BearerAuth(token_key="access_token").build(creds(access_token=SECRET), "acme"))
    assert request.headers["Authorization"] == f"Bearer {SECRET}"


def test_basic_sends_username_and_password() -> None:
    request = sent_with(BasicAuth().build(creds(username="ada", password=SECRET), "acme"))
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(f"ada:{SECRET}".encode()).decode()


def test_api_key_in_a_header() -> None:
    auth = AUTH.validate_python({"type": "api_key", "in": "header", "name": "X-API-Key"})
    request = sent_with(auth.build(creds(api_key=SECRET), "acme"))
    assert request.headers["X-API-Key"] == SECRET and "api_key" not in request.url.params


def test_api_key_in_the_query_keeps_other_params() -> None:
    auth = AUTH.validate_python({"type": "api_key", "in": "query", "name": "hapikey", "key": "key"})
    request = sent_with(auth.build(creds(key=SECRET), "acme"))
    assert dict(request.url.params) == {"limit": "10", "hapikey": SECRET}
    assert "Authorization" not in request.headers


def test_no_auth_adds_nothing() -> None:
    auth = NoAuth().build(creds(token=SECRET), "acme")
    assert auth is None and "Authorization" not in sent_with(auth).headers


@pytest.mark.parametrize(
    ("spec", "given", "missing"),
    [
        (BearerAuth(), {}, "'token'"),
        (BasicAuth(), {"username": "ada"}, "'password'"),
        (BasicAuth(), {}, "'username', 'password'"),
        (ApiKeyAuth(name="X-Key"), {"token": SECRET}, "'api_key'"),
    ],
)
def test_a_missing_credential_is_an_auth_error_naming_it(spec: Any, given: dict[str, str], missing: str) -> None:
    with pytest.raises(AuthError, match=f"acme: the connection has no credential {missing}") as caught:
        spec.build(creds(**given), "acme")
    assert caught.value.connector == "acme" and SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "auth",
    [
        BearerAuth().build(creds(token=SECRET), "acme"),
        ApiKeyAuth(name="X-Key").build(creds(api_key=SECRET), "acme"),
        ApiKeyAuth.model_validate({"name": "key", "in": "query"}).build(creds(api_key=SECRET), "acme"),
    ],
)
def test_built_auth_does_not_show_the_secret_in_its_repr(auth: httpx.Auth) -> None:
    assert SECRET not in repr(auth)


@pytest.mark.parametrize(
    ("config", "kind"),
    [
        ({"type": "none"}, NoAuth),
        ({"type": "bearer"}, BearerAuth),
        ({"type": "basic", "username_key": "user"}, BasicAuth),
        ({"type": "api_key", "name": "X-Key"}, ApiKeyAuth),
    ],
)
def test_config_selects_the_auth_by_type(config: dict[str, Any], kind: type) -> None:
    assert isinstance(AUTH.validate_python(config), kind)


@pytest.mark.parametrize(
    "config",
    [
        {"type": "oauth2"},
        {"type": "api_key"},
        {"type": "api_key", "name": "k", "in": "cookie"},
        {"type": "bearer", "token": "inline-secrets-are-not-config"},
    ],
)
def test_bad_auth_config_is_rejected(config: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AUTH.validate_python(config)
