"""How a connector authenticates: declared in connector.yaml, filled from the connection's credentials.

```yaml
auth: {type: bearer}                               # Authorization: Bearer <credentials.token>
auth: {type: basic}                                # credentials.username / credentials.password
auth: {type: api_key, in: header, name: X-API-Key} # or in: query
```
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Annotated, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connectors.errors import AuthError

__all__ = ["ApiKeyAuth", "AuthSpec", "BasicAuth", "BearerAuth", "NoAuth", "Credentials"]

Credentials = Mapping[str, SecretStr]


class _Base(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def required_keys(self) -> tuple[str, ...]:
        return ()

    def build(self, credentials: Credentials, connector: str) -> httpx.Auth | None:
        """The httpx auth for these credentials; a missing key is an AuthError naming it."""
        missing = [key for key in self.required_keys() if key not in credentials]
        if missing:
            raise AuthError(
                f"{connector}: the connection has no credential {', '.join(repr(k) for k in missing)}; "
                f"add it with `inlet connections update --tenant TENANT --connection CONNECTION "
                f"--credential {missing[0]}=VALUE`",
                connector=connector,
            )
        return self._build(credentials)

    def _build(self, credentials: Credentials) -> httpx.Auth | None:
        return None


class NoAuth(_Base):
    """A public API."""

    type: Literal["none"] = "none"


class BearerAuth(_Base):
    """`Authorization: Bearer <token>`."""

    type: Literal["bearer"] = "bearer"
    token_key: str = "token"

    def required_keys(self) -> tuple[str, ...]:
        return (self.token_key,)

    def _build(self, credentials: Credentials) -> httpx.Auth:
        return _HeaderAuth("Authorization", f"Bearer {credentials[self.token_key].get_secret_value()}")


class BasicAuth(_Base):
    """HTTP Basic with a username and a password."""

    type: Literal["basic"] = "basic"
    username_key: str = "username"
    password_key: str = "password"

    def required_keys(self) -> tuple[str, ...]:
        return (self.username_key, self.password_key)

    def _build(self, credentials: Credentials) -> httpx.Auth:
        return httpx.BasicAuth(
            credentials[self.username_key].get_secret_value(),
            credentials[self.password_key].get_secret_value(),
        )


class ApiKeyAuth(_Base):
    """An API key in a header or a query parameter."""

    type: Literal["api_key"] = "api_key"
    location: Literal["header", "query"] = Field("header", alias="in")
    name: str
    key: str = "api_key"

    def required_keys(self) -> tuple[str, ...]:
        return (self.key,)

    def _build(self, credentials: Credentials) -> httpx.Auth:
        value = credentials[self.key].get_secret_value()
        if self.location == "header":
            return _HeaderAuth(self.name, value)
        return _QueryAuth(self.name, value)


AuthSpec = Annotated[NoAuth | BearerAuth | BasicAuth | ApiKeyAuth, Field(discriminator="type")]


class _HeaderAuth(httpx.Auth):
    def __init__(self, name: str, value: str) -> None:
        self._name = name
        self._value = value

    def __repr__(self) -> str:
        return f"_HeaderAuth({self._name!r}, '***')"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self._name] = self._value
        yield request


class _QueryAuth(httpx.Auth):
    def __init__(self, name: str, value: str) -> None:
        self._name = name
        self._value = value

    def __repr__(self) -> str:
        return f"_QueryAuth({self._name!r}, '***')"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.url = request.url.copy_set_param(self._name, self._value)
        yield request
