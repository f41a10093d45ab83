"""FastAPI dependencies the routers share: the caller's principal by role, the app's state, the
feedback writer, and a database session per request."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlalchemy.orm import Session

from ct_llm.feedback.writer import GroupCommitWriter
from ct_llm.gateway.auth import require_role
from ct_llm.gateway.chat import GatewayState
from ct_llm.store.db import session_scope

ingest_role = require_role("ingest")
admin_role = require_role("admin")
metrics_role = require_role("metrics")


def gateway_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


def feedback_writer(request: Request) -> GroupCommitWriter:
    writer: GroupCommitWriter = request.app.state.feedback_writer
    return writer


def db_session(request: Request) -> Iterator[Session]:
    """A transaction for the request: committed when the route returns, rolled back if it
    raises (FastAPI runs this in its thread pool, as it does the sync routes that take it)."""
    with session_scope(request.app.state.database_url) as session:
        yield session
