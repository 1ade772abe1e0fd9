"""Connection parameters as a connector declares them, and their check: a pattern, a list of values, or a
URL on declared hosts. A parameter declaring none of these is a plain token (letters, digits, `._~-`).

```yaml
parameters:
  base_url: {hosts: ["*.zendesk.com"]}                # https only; "*." any subdomain, "*" any public host
  bucket: {pattern: "[A-Za-z0-9_-]{1,64}", default: crm}
  api_version: {enum: [v59.0, v60.0], default: v60.0}
```

A tenant gives the values; every one is checked when the connection is added and again when a run opens
it. A URL is an origin and an optional plain path: no user info, query or fragment. Hosts the operator
allow-lists (`EgressPolicy`) pass any URL parameter. A value put into a path is percent-encoded whole
(`../x?y` becomes one segment `..%2Fx%3Fy`).
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Iterable, Mapping
from typing import Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.egress import EgressPolicy, internal_reason
from connectors.errors import InvalidParameter

__all__ = [
    "TOKEN_PATTERN",
    "ParameterSpec",
    "TemplateKind",
    "check_templates",
    "check_values",
    "host_matches",
    "in_path",
    "resolve_parameters",
    "template_values",
]

TemplateKind = Literal["url", "oauth", "path"]  # base_url and origins; OAuth endpoints; paths and query values

TOKEN_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._~-]{0,254}"
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_NUMBER = re.compile(r"0x[0-9a-f]*|[0-9]+")  # how inet_aton reads a part: decimal, octal or hex
_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
_CONTROL = re.compile(r"[\x00-\x20\x7f\\]")


class ParameterSpec(BaseModel):
    """A per-connection setting the URLs may use as `{name}` (a subdomain, a bucket, an API root)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    description: str = ""
    default: str | None = None
    pattern: str | None = Field(None, description="the whole value must match this regular expression")
    enum: list[str] | None = Field(None, description="the value must be one of these")
    hosts: list[str] | None = Field(None, description='a URL on one of these hosts ("*.example.com", "*")')
    schemes: list[Literal["https", "http"]] = Field(["https"], description="URL schemes accepted (with hosts)")

    @model_validator(mode="after")
    def _one_rule(self) -> ParameterSpec:
        if sum(rule is not None for rule in (self.pattern, self.enum, self.hosts)) > 1:
            raise ValueError("declare at most one of pattern, enum or hosts")
        if self.pattern is not None:
            re.compile(self.pattern)
        if self.hosts is not None and not self.hosts:
            raise ValueError('hosts needs at least one host ("*" for any public host)')
        if self.default is not None:
            self.check("default", self.default, EgressPolicy(), connector="connector.yaml")
        return self

    @property
    def is_url(self) -> bool:
        return self.hosts is not None

    def rule(self) -> str:
        """The rule in words, for error messages."""
        if self.hosts is not None:
            hosts = "any public host" if "*" in self.hosts else ", ".join(self.hosts)
            return f"an {' or '.join(self.schemes)} URL on {hosts}"
        if self.enum is not None:
            return f"one of {', '.join(self.enum)}"
        return f"text matching {self.pattern or TOKEN_PATTERN}"

    def check(self, name: str, value: str, egress: EgressPolicy, *, connector: str) -> str:
        """The value, normalised (a URL loses its trailing slash); InvalidParameter when it breaks the rule."""
        problem = _url_problem(self, value, egress) if self.is_url else _text_problem(self, value)
        if problem is not None:
            raise InvalidParameter(
                f"{connector}: parameter {name} must be {self.rule()}; {problem}", connector=connector
            )
        return value.rstrip("/") if self.is_url else value


def _text_problem(spec: ParameterSpec, value: str) -> str | None:
    if spec.enum is not None:
        return None if value in spec.enum else f"got {value[:80]!r}"
    if re.fullmatch(spec.pattern or TOKEN_PATTERN, value) is None or _CONTROL.search(value):
        return f"got {value[:80]!r}"
    return None


def _url_problem(spec: ParameterSpec, value: str, egress: EgressPolicy) -> str | None:
    if len(value) > 2048 or _CONTROL.search(value):
        return "it holds spaces, control characters or backslashes"
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, ValueError) as exc:
        return f"it is not a URL ({exc})"
    if url.userinfo or url.query or url.fragment or "?" in value or "#" in value:
        return "it may not carry user info, a query or a fragment"
    port = url.port or {"http": 80, "https": 443}.get(url.scheme)
    allowed = egress.allows(url.host, port)
    if url.scheme not in (("https", "http") if allowed else spec.schemes):
        return f"got the scheme {url.scheme!r}; {egress.hint(url.host)}"
    host_problem = _host_problem(url.host, allowed)
    if host_problem is not None:
        return host_problem
    segments = value.split("://", 1)[-1].partition("/")[2].split("/")  # as given: httpx would drop dot segments
    if any(not _SEGMENT.fullmatch(s) or s in (".", "..") for s in segments if s):
        return "its path may hold only plain segments (letters, digits, ._~-)"
    if allowed:
        return None
    if not host_matches(url.host, spec.hosts or ()):
        return f"got the host {url.host!r}; {egress.hint(url.host)}"
    reason = _literal_reason(url.host)
    return None if reason is None else f"{url.host} is a {reason} address (the egress rule); {egress.hint(url.host)}"


def _host_problem(host: str, allowed: bool) -> str | None:
    """None for an IP address in its usual form, or a DNS name of plain labels that a resolver will not read as a
    number (`2130706433`, `0x7f.1` are 127.0.0.1 to getaddrinfo); one label only (`localhost`) when allowed."""
    if _is_ip(host):
        return None
    labels = host.split(".")
    numeric = all(_NUMBER.fullmatch(label) for label in labels)
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels) or numeric or labels[-1].isdigit():
        return f"got the host {host[:80]!r}, which is neither a DNS name nor an IP address in its usual form"
    if len(labels) == 1 and not allowed:
        return f"got the host {host!r}, a local name (a public host has a domain)"
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _literal_reason(host: str) -> str | None:
    return internal_reason(host) if _is_ip(host) else None


def host_matches(host: str, patterns: Iterable[str]) -> bool:
    """`acme.zendesk.com` matches `*.zendesk.com` (not `zendesk.com` itself); `*` matches any host."""
    host = host.lower()
    for pattern in patterns:
        pattern = pattern.lower()
        if pattern == "*" or host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


def in_path(value: str) -> str:
    """A value as one path segment: everything but letters, digits and `_.~-` percent-encoded, `.`/`..` too."""
    encoded = quote(value, safe="")
    return encoded.replace(".", "%2E") if value in (".", "..") else encoded


def check_values(
    specs: Mapping[str, ParameterSpec], given: Mapping[str, str], egress: EgressPolicy, *, connector: str
) -> dict[str, str]:
    """Each given value checked against its rule (a name without one, like `webhook_account`, is a plain token)."""
    return {
        name: (specs.get(name) or ParameterSpec()).check(name, str(value), egress, connector=connector)
        for name, value in given.items()
    }


def template_values(specs: Mapping[str, ParameterSpec], values: Mapping[str, str]) -> dict[str, str]:
    """What each `{name}` becomes in a URL template: a URL parameter as it is, any other value one path segment."""
    return {name: value if name in specs and specs[name].is_url else in_path(value) for name, value in values.items()}


def resolve_parameters(
    specs: Mapping[str, ParameterSpec],
    given: Mapping[str, str],
    egress: EgressPolicy,
    *,
    connector: str,
    reserved: Iterable[str] = (),
    pending: Iterable[str] = (),
) -> dict[str, str]:
    """The checked values with the defaults filled in; `pending` may be missing (a token will bring them)."""
    reserved = frozenset(reserved)
    unknown = sorted(set(given) - set(specs) - reserved)
    if unknown:
        raise InvalidParameter(
            f"{connector} has no parameters {unknown}; it takes {sorted(specs)}", connector=connector
        )
    resolved = {name: spec.default for name, spec in specs.items() if spec.default is not None}
    resolved |= check_values(specs, given, egress, connector=connector)
    missing = sorted(set(specs) - set(resolved) - set(pending))
    if missing:
        raise InvalidParameter(
            f"{connector} needs parameters {missing} "
            "(`inlet connections update --tenant TENANT --connection CONNECTION --param NAME=VALUE`)",
            connector=connector,
        )
    return resolved


def check_templates(specs: Mapping[str, ParameterSpec], templates: Iterable[tuple[str, str, TemplateKind]]) -> None:
    """Where each kind of parameter may go; ValueError naming the template otherwise.

    A URL parameter may only open a URL template (`base_url`, `origins`, OAuth URLs), never a path. An OAuth
    URL opens with a literal https origin or a URL parameter limited to named hosts, so a client secret can
    only ever go to hosts connector.yaml names.
    """
    for where, template, kind in templates:
        fields = [(literal, field) for literal, field, _, _ in string.Formatter().parse(template) if field]
        lead = fields[0][1] if fields and fields[0][0] == "" else None
        for position, (_, field) in enumerate(fields):
            spec = specs.get(field)
            if spec is not None and spec.is_url and (kind == "path" or position > 0 or lead != field):
                raise ValueError(f"{where}: the URL parameter {{{field}}} may only open a URL, as in {{{field}}}/path")
        if kind != "oauth":
            continue
        if lead is None and not template.startswith("https://"):
            raise ValueError(f"{where}: an OAuth URL must start with https:// or a URL parameter")
        hosts = (specs[lead].hosts or []) if lead is not None and lead in specs else []
        if lead is not None and (not hosts or "*" in hosts):
            raise ValueError(f"{where}: {{{lead}}} opens an OAuth URL, so it must declare the hosts it may name")
