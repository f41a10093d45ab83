from __future__ import annotations

import pytest
from sqlalchemy import select

from ct_llm.errors import CtLlmError
from ct_llm.gateway.auth import (
    ApiError,
    authenticate,
    create_api_key,
    hash_key,
    revoke_api_key,
)
from ct_llm.store.db import session_scope
from ct_llm.store.models import ApiKey
from ct_llm.workspace import Workspace


def test_only_the_hash_is_stored(ws: Workspace) -> None:
    key = create_api_key(ws.database_url, "acme", "ingest")
    assert key.startswith("ctk_") and len(key) > 40
    with session_scope(ws.database_url) as s:
        row = s.scalars(select(ApiKey)).one()
        assert row.key_hash == hash_key(key) and key not in (row.key_hash, row.prefix)
        assert key.startswith(row.prefix) and len(row.prefix) == 12
    assert create_api_key(ws.database_url, "acme", "ingest") != key


def test_authenticate_roles_and_revocation(ws: Workspace) -> None:
    url = ws.database_url
    ingest = create_api_key(url, "acme", "ingest")
    admin = create_api_key(url, "acme", "admin")
    p = authenticate(url, f"Bearer {ingest}", "ingest")
    assert (p.tenant, p.role, p.key_prefix) == ("acme", "ingest", ingest[:12])
    assert authenticate(url, f"bearer {admin}", "admin").role == "admin"
    assert authenticate(url, f"Bearer {admin}", "ingest").tenant == "acme"
    with pytest.raises(ApiError) as e:
        authenticate(url, f"Bearer {ingest}", "admin")
    assert e.value.status == 403
    for header in (None, "", "Bearer", f"Basic {ingest}", "Bearer ctk_nope"):
        with pytest.raises(ApiError) as e:
            authenticate(url, header, "ingest")
        assert e.value.status == 401
    revoke_api_key(url, ingest[:12])
    with pytest.raises(ApiError) as e:
        authenticate(url, f"Bearer {ingest}", "ingest")
    assert e.value.status == 401 and "revoked" in e.value.message


def test_user_errors(ws: Workspace) -> None:
    with pytest.raises(CtLlmError, match="unknown role"):
        create_api_key(ws.database_url, "acme", "root")
    with pytest.raises(CtLlmError, match="no API key"):
        revoke_api_key(ws.database_url, "ctk_missing")
