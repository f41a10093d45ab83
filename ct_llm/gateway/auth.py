"""API keys and the request principal.

A key is `ctk_<random>`; it is shown once at creation and only its sha256 is stored, with a short
prefix so operators can name a key (to revoke it) without holding the secret. Roles: `ingest`
(chat, feedback, own stats and status), `reviewer` (what ingest may; its feedback is trusted:
support agents, annotators), `admin` (everything for its own tenant, including /v1/admin/* and
its tenant's series of /metrics) and `operator` (/metrics of every tenant and nothing else: a
scrape credential for whoever runs the service). Every key belongs to a tenant, an operator's
too (to name and revoke it), but an operator key acts for no tenant: it cannot chat, send
feedback or run a rollout. Trust is a property of the key, never of a user id in a body (README
"Trust model").
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from ct_llm.errors import CtLlmError
from ct_llm.store.db import session_scope
from ct_llm.store.models import ApiKey, utcnow

KEY_PREFIX = "ctk_"
PREFIX_LEN = len(KEY_PREFIX) + 8
ROLES = ("ingest", "reviewer", "admin", "operator")
# What each role may do: reviewer and admin include everything ingest may; `metrics` reads
# /metrics, scoped by `Principal.metrics_tenant`.
_GRANTS = {
    "ingest": {"ingest"},
    "reviewer": {"ingest"},
    "admin": {"ingest", "admin", "metrics"},
    "operator": {"metrics"},
}
ALL_TENANTS_ROLES = frozenset({"operator"})
"""Roles that read every tenant's metrics."""
TRUSTED_ROLES = frozenset({"reviewer"})
"""Roles whose feedback is exempt from the per-user cap and the quarantine."""


class ApiError(Exception):
    """An error answered as OpenAI-style JSON: `{"error": {"message", "type", "code"}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code = status, message, type_, code
        self.headers = headers

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, self.type, self.code, self.headers)


def error_body(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code}}


def error_response(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(message, type_, code), status_code=status, headers=headers)


@dataclass(frozen=True)
class Principal:
    tenant: str
    role: str
    key_prefix: str

    @property
    def trusted(self) -> bool:
        return self.role in TRUSTED_ROLES

    @property
    def metrics_tenant(self) -> str | None:
        """The tenant whose series /metrics shows this key; None: every tenant's."""
        return None if self.role in ALL_TENANTS_ROLES else self.tenant


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_api_key(database_url: str, tenant: str, role: str) -> str:
    """Create a key for `tenant` with `role`; returns the key (the only time it is visible)."""
    if role not in ROLES:
        raise CtLlmError(f"unknown role '{role}'; use one of: {', '.join(ROLES)}")
    if not tenant or len(tenant) > 64:
        raise CtLlmError("tenant must be 1 to 64 characters")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with session_scope(database_url) as session:
        session.add(
            ApiKey(tenant=tenant, role=role, key_hash=hash_key(key), prefix=key[:PREFIX_LEN])
        )
    return key


def revoke_api_key(database_url: str, prefix: str) -> None:
    """Revoke the key whose display prefix is `prefix` (e.g. `ctk_AbCd1234`)."""
    with session_scope(database_url) as session:
        keys = list(session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)))
        if not keys:
            raise CtLlmError(f"no API key with prefix '{prefix}'")
        if len(keys) > 1:
            raise CtLlmError(f"{len(keys)} keys share the prefix '{prefix}'; revoke by full key")
        if keys[0].revoked_at is None:
            keys[0].revoked_at = utcnow()


def authenticate(database_url: str, authorization: str | None, needed_role: str) -> Principal:
    """The principal of an `Authorization: Bearer <key>` header, or ApiError 401/403.
    `needed_role` is a grant (`ingest`, `admin`, `metrics`): what the key's role must allow."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if not authorization:
        raise ApiError(
            401,
            "missing API key; send 'Authorization: Bearer <key>'",
            code="missing_api_key",
            headers=challenge,
        )
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise ApiError(
            401,
            "malformed Authorization header; send 'Authorization: Bearer <key>'",
            code="invalid_api_key",
            headers=challenge,
        )
    with session_scope(database_url) as session:
        row = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).first()
        if row is None or row.revoked_at is not None:
            # Revoked and unknown keys read the same, so a caller learns nothing about old keys.
            raise ApiError(
                401, "invalid or revoked API key", code="invalid_api_key", headers=challenge
            )
        principal = Principal(tenant=row.tenant, role=row.role, key_prefix=row.prefix)
    if needed_role not in _GRANTS.get(principal.role, set()):
        allowed = " or ".join(f"'{r}'" for r in ROLES if needed_role in _GRANTS[r])
        raise ApiError(
            403,
            f"this key's role '{principal.role}' may not do this; it needs a key with the "
            f"role {allowed}",
            type_="permission_error",
            code="insufficient_role",
        )
    return principal


def require_role(role: str) -> Callable[[Request], Principal]:
    """A FastAPI dependency giving the caller's Principal if its key's role grants `role`."""

    def dependency(request: Request) -> Principal:
        return authenticate(
            request.app.state.database_url, request.headers.get("authorization"), role
        )

    return dependency
