"""`POST /v1/feedback` (a batch, or one event) and `GET /v1/feedback/stats`."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from ct_llm.feedback.sender import Sender
from ct_llm.feedback.stats import feedback_stats
from ct_llm.feedback.writer import GroupCommitWriter, WriterBusy, WriterStopped
from ct_llm.gateway.auth import ApiError, Principal
from ct_llm.gateway.bodies import feedback_items, read_json_body
from ct_llm.gateway.chat import GatewayState
from ct_llm.gateway.deps import DbSession, feedback_writer, gateway_state, ingest_role

router = APIRouter()


@router.post("/v1/feedback")
async def feedback(
    request: Request,
    p: Principal = Depends(ingest_role),
    state: GatewayState = Depends(gateway_state),
    writer: GroupCommitWriter = Depends(feedback_writer),
) -> dict[str, Any]:
    state.quotas.admit(p.tenant, "feedback")
    started = time.perf_counter()
    api = state.ws.config.api
    data = await read_json_body(request, api.max_body_bytes)
    items = feedback_items(data, api.max_events_per_batch)
    try:
        # Answered only after the commit that holds these events (see feedback/writer.py).
        result = await writer.ingest(Sender(p.tenant, p.key_prefix, p.trusted), items)
    except (WriterBusy, WriterStopped) as e:
        raise ApiError(
            503,
            f"{e}; retry shortly",
            type_="server_error",
            code="overloaded",
            headers={"Retry-After": "1"},
        ) from None
    voted = [*result.thumbs_down_by_version, *result.thumbs_up_by_version]
    if state.metrics.versions.needs_read(p.tenant, voted):
        # A version registered since the last read (or an invented one): look again, at most
        # every few seconds, off the event loop.
        await run_in_threadpool(state.metrics.versions.read)
    state.metrics.record_feedback(p.tenant, result, time.perf_counter() - started)
    return result.to_dict()


@router.get("/v1/feedback/stats")
def stats(session: DbSession, p: Principal = Depends(ingest_role)) -> dict[str, Any]:
    return feedback_stats(session, p.tenant)
