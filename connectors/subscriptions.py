"""Webhook subscriptions as a connector declares them (`subscriptions:` in connector.yaml): how inlet creates,
renews and deletes, per connection, the app's subscription that sends it webhooks.

```yaml
subscriptions:
  lifetime_seconds: 2500000          # the app's longest (none: the subscription never expires)
  renew_before_seconds: 86400
  verify_secret: "{secret}"          # what the connector's verify_webhook checks, from the secret inlet chose
  create:
    method: POST
    path: /v1.0/subscriptions
    json: {notificationUrl: "{notification_url}", clientState: "{secret}", expirationDateTime: "{expires}"}
    id_path: id
    expiry_path: expirationDateTime
  renew: {method: PATCH, path: "/v1.0/subscriptions/{subscription_id}", json: {expirationDateTime: "{expires}"}}
  delete: {method: DELETE, path: "/v1.0/subscriptions/{subscription_id}"}
  secret_from: {path: "/api/v2/webhooks/{subscription_id}/signing_secret", secret_path: signing_secret.secret}
```

Strings in `json` and `path` may hold `{notification_url}`, `{secret}` (a random secret inlet chose),
`{expires}` (ISO-8601 UTC), `{subscription_id}`, `{tenant}` and `{connection}`; nothing else is filled in.
`secret_from`: the app chooses the signing secret (Zendesk) and inlet reads it after creating.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["PLACEHOLDERS", "SecretFrom", "SubscriptionCall", "SubscriptionSpec", "fill"]

PLACEHOLDERS = frozenset({"notification_url", "secret", "expires", "subscription_id", "tenant", "connection"})
_FIELD = re.compile(r"\{([a-z_]+)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class SubscriptionCall(_Strict):
    """One call of the app's subscription API; `id_path` / `expiry_path` read its answer."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str
    json_body: Any = Field(None, alias="json", description="the JSON body, with placeholders in its strings")
    id_path: str | None = Field(None, description="the new subscription's id in the answer")
    expiry_path: str | None = Field(None, description="its expiry (ISO-8601) in the answer")

    @model_validator(mode="after")
    def _known_placeholders(self) -> SubscriptionCall:
        unknown = sorted({*_placeholders(self.path), *_placeholders(self.json_body)} - PLACEHOLDERS)
        if unknown:
            raise ValueError(f"unknown placeholders {unknown}; known: {sorted(PLACEHOLDERS)}")
        return self


class SecretFrom(_Strict):
    """Read the signing secret the app chose: GET `path`, the secret at `secret_path`."""

    path: str
    secret_path: str


class SubscriptionSpec(_Strict):
    """How one app's webhook subscription lives: created on connect, renewed before expiry, deleted on disconnect."""

    create: SubscriptionCall
    renew: SubscriptionCall | None = Field(None, description="none: the subscription lives until deleted")
    delete: SubscriptionCall
    lifetime_seconds: int | None = Field(None, gt=0, description="the expiry asked for; none: it never expires")
    renew_before_seconds: int = Field(86_400, gt=0, description="renew when less than this is left")
    verify_secret: str = Field("{secret}", description="the secret verify_webhook checks ({secret}: inlet's)")
    secret_from: SecretFrom | None = Field(None, description="the app chooses the secret; read it after creating")
    gone: list[int] = Field([404, 410], description="statuses that mean the subscription no longer exists")

    @model_validator(mode="after")
    def _consistent(self) -> SubscriptionSpec:
        if self.create.id_path is None:
            raise ValueError("create.id_path is required: inlet must know the subscription's id to delete it")
        if self.lifetime_seconds is not None and self.renew is None:
            raise ValueError("a subscription with a lifetime_seconds needs `renew:`")
        return self


def fill(template: Any, values: dict[str, str]) -> Any:
    """`template` with `{name}` replaced in every string (keys and nested values included) by `values[name]`."""
    if isinstance(template, str):
        return _FIELD.sub(lambda m: values[m.group(1)] if m.group(1) in values else m.group(0), template)
    if isinstance(template, dict):
        return {fill(k, values): fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(item, values) for item in template]
    return template


def _placeholders(template: Any) -> list[str]:
    if isinstance(template, str):
        return _FIELD.findall(template)
    if isinstance(template, dict):
        return [name for k, v in template.items() for name in (*_placeholders(k), *_placeholders(v))]
    if isinstance(template, list):
        return [name for item in template for name in _placeholders(item)]
    return []
