"""`inlet connections update`: change some parameters or credentials of a connection, keeping the rest, after
the same checks as when it was added (the parameters by the connector's rules, the credentials with one
read-only request to the app). No `--replace`, no typing every `--param` again."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import SecretStr
from sqlmodel import Session

from inlet.errors import ConfigError
from inlet.service.connections import ConnectionView, check_credentials, describe_connection
from inlet.service.installation import Installation
from inlet.store import Connection, OAuthToken, check_connection_input, load_connection

__all__ = ["update_connection"]


def update_connection(
    inst: Installation,
    tenant_id: str,
    connection_id: str,
    *,
    parameters: Mapping[str, str] | None = None,
    credentials: Mapping[str, SecretStr] | None = None,
    check: bool = True,
) -> ConnectionView:
    """Merge the given parameters and credentials into the connection's own, check, then save. New credentials
    replace an OAuth sign-in (its tokens go); new parameters alone keep it."""
    parameters, credentials = dict(parameters or {}), dict(credentials or {})
    if not parameters and not credentials:
        raise ConfigError("nothing to change: give --param name=value and/or --credential name=value")
    loaded = load_connection(inst.engine, inst.vault, tenant_id, connection_id)
    current = loaded.connection
    egress = inst.settings.egress.policy()
    merged = check_connection_input(
        current.app, {**current.parameters, **parameters}, current.data_source, egress=egress
    )
    secrets = {**loaded.credentials, **credentials}
    with Session(inst.engine) as session:
        signed_in = session.get(OAuthToken, connection_id) is not None
    if check and (credentials or not signed_in):  # an OAuth connection's access is its tokens, not credentials
        check_credentials(inst, current.app, merged, secrets)
    with Session(inst.engine) as session:
        row = session.get(Connection, connection_id)
        if row is None or row.tenant_id != tenant_id:  # removed meanwhile
            raise ConfigError(f"connection {connection_id!r} of tenant {tenant_id!r} went away; nothing was saved")
        row.parameters = merged
        if credentials:
            row.credentials_encrypted = inst.vault.encrypt(secrets)
            if (token := session.get(OAuthToken, connection_id)) is not None:
                session.delete(token)
        session.add(row)
        session.commit()
    return describe_connection(inst, tenant_id, connection_id)
