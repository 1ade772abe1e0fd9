"""An app's OAuth endpoints for one connection: connector.yaml's templates filled with checked values.

    token_url: "{login_url}/{directory}/oauth2/v2.0/token"

Each value must keep the rule its parameter declares, with no allow-list: the hosts connector.yaml names
are the only places a client secret or a refresh token can go. A simulator or a sandbox is reached only
through `override`, an origin the operator sets per app (inlet: `INLET_OAUTH_ENDPOINTS__<APP>`); it takes
the place of every URL parameter and literal origin, while the other values (a directory) stay checked.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from connectors.egress import EgressPolicy
from connectors.errors import InvalidParameter
from connectors.oauth import Grant, OAuth2Spec
from connectors.parameters import in_path
from connectors.spec import ConnectorSpec, placeholders

__all__ = ["bind_grant", "check_override"]

_STRICT = EgressPolicy(  # OAuth endpoints never take the operator's egress allow-list
    advice="OAuth endpoints take only the hosts connector.yaml names; an operator points an app's sign-in at "
    "a simulator or sandbox with INLET_OAUTH_ENDPOINTS__<APP>=<origin>"
)


def check_override(override: str) -> str:
    """An operator's endpoint override as an origin `http(s)://host[:port]`; ValueError otherwise."""
    url = httpx.URL(override.rstrip("/"))
    if url.scheme not in ("http", "https") or not url.host or url.path not in ("", "/") or url.query or url.userinfo:
        raise ValueError(f"an OAuth endpoint override is an origin such as http://127.0.0.1:8410, not {override!r}")
    return str(url).rstrip("/")


def bind_grant(
    spec: ConnectorSpec, grant: Grant, parameters: Mapping[str, str], *, override: str | None = None
) -> OAuth2Spec:
    """The grant with concrete URLs for a connection with `parameters`; InvalidParameter names a bad value."""
    oauth = spec.oauth[grant]
    origin = check_override(override) if override else None
    values: dict[str, str] = {}
    for name in sorted({field for url in oauth.urls() for field in placeholders(url)}):
        rule = spec.parameters[name]
        if rule.is_url and origin is not None:
            values[name] = origin
            continue
        value = parameters.get(name, rule.default)
        if value is None:
            raise InvalidParameter(f"{spec.name}: the OAuth endpoints need the parameter {name}", connector=spec.name)
        checked = rule.check(name, value, _STRICT, connector=spec.name)
        values[name] = checked if rule.is_url else in_path(checked)
    urls = {
        field: _fill(getattr(oauth, field), values, origin) for field in ("authorize_url", "token_url", "revoke_url")
    }
    return oauth.model_copy(update={field: url for field, url in urls.items() if url is not None})


def _fill(template: str | None, values: Mapping[str, str], origin: str | None) -> str | None:
    if template is None:
        return None
    url = template.format_map(values)
    if origin is None or template.startswith("{"):
        return url
    target = httpx.URL(origin)  # a literal https origin in connector.yaml, replaced by the operator's
    return str(httpx.URL(url).copy_with(scheme=target.scheme, host=target.host, port=target.port))
