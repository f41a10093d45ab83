"""FastAPI dependencies the routers share: the caller's principal by role, the app's state, the
feedback writer, and a database session per request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from ct_llm.feedback.writer import GroupCommitWriter
from ct_llm.gateway.auth import require_role
from ct_llm.gateway.chat import GatewayState
from ct_llm.store.db import session_scope

ingest_role = require_role("ingest")
admin_role = require_role("admin")
metrics_role = require_role("metrics")


# The two below are `async def` although they wait for nothing: FastAPI runs a plain `def`
# dependency in its thread pool, a thread hop per request per dependency (measured: ingest
# throughput of single-event posts fell by a third).


async def gateway_state(request: Request) -> GatewayState:
    """What the handlers share (gateway/chat.py GatewayState), made by create_app."""
    state: GatewayState = request.app.state.gateway
    return state


async def feedback_writer(request: Request) -> GroupCommitWriter:
    """The app's group-commit writer of feedback events (feedback/writer.py)."""
    writer: GroupCommitWriter = request.app.state.feedback_writer
    return writer


def _db_session(request: Request) -> Iterator[Session]:
    with session_scope(request.app.state.database_url) as session:
        yield session


DbSession = Annotated[Session, Depends(_db_session, scope="function")]
"""A transaction for the request: committed when the route function returns, before the
response is sent (`scope="function"`; the default scope would commit after the client already
had its answer, so a failed commit could not change it), rolled back if the route raises."""
