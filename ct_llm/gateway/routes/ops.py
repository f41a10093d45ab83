"""What operators and probes read: `/healthz` (no key), `/metrics` (admin: own tenant; operator:
all) and `/v1/status` (a tenant's own serving state, any of its keys)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from ct_llm.gateway.auth import Principal
from ct_llm.gateway.chat import GatewayState
from ct_llm.gateway.deps import DbSession, gateway_state, ingest_role, metrics_role
from ct_llm.monitor.status import tenant_status
from ct_llm.store.db import session_scope

router = APIRouter()


@router.get("/v1/status")
def status(
    session: DbSession,
    p: Principal = Depends(ingest_role),
    state: GatewayState = Depends(gateway_state),
) -> dict[str, Any]:
    return tenant_status(session, p.tenant, state.ws.config.base_model)


# A tenant's admin key sees its own tenant's series, an operator key every tenant's
# (monitor/scope.py). Prometheus sends the key with `authorization: {credentials: <key>}`.
@router.get("/metrics")
def metrics(
    p: Principal = Depends(metrics_role), state: GatewayState = Depends(gateway_state)
) -> Response:
    body = state.metrics.render(p.metrics_tenant)
    return Response(body, media_type=state.metrics.content_type)


@router.get("/healthz")
async def healthz(state: GatewayState = Depends(gateway_state)) -> Response:
    def db_ok() -> bool:
        try:
            with session_scope(state.database_url) as session:
                session.execute(text("SELECT 1"))
            return True
        except Exception:  # any failure means "not healthy", reported, not raised
            return False

    db = await run_in_threadpool(db_ok)
    replicas = await _replicas_ok(state)
    body = {
        "status": "ok" if db else "error",
        "db": db,
        "upstream": any(replicas.values()),
        "replicas": replicas,
    }
    return JSONResponse(body, status_code=200 if db else 503)


async def _replicas_ok(state: GatewayState) -> dict[str, bool]:
    """Per replica: does vLLM answer `GET /health` with 200 (it can serve)?"""

    async def one(client: httpx.AsyncClient, url: str) -> bool:
        try:
            return (await client.get(url + "/health", timeout=2.0)).status_code == 200
        except httpx.HTTPError:
            return False

    urls = state.upstream_urls
    if state.http is not None:
        results = await asyncio.gather(*(one(state.http, u) for u in urls))
    else:
        async with httpx.AsyncClient(timeout=2.0) as client:
            results = await asyncio.gather(*(one(client, u) for u in urls))
    return dict(zip(urls, results, strict=True))
