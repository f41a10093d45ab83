"""The one FastAPI app of `ct-llm api`: its state, lifespan, edge middleware and error
handlers, and the routers (gateway/routes/: chat, feedback, admin, ops). Every error is
answered as OpenAI-style JSON, never a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as SqlTimeoutError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ct_llm.deploy.restart import Managed
from ct_llm.deploy.vllm_server import VllmServer
from ct_llm.feedback.schema import TextLimits
from ct_llm.feedback.writer import GroupCommitWriter
from ct_llm.gateway.auth import ApiError, error_response
from ct_llm.gateway.chat import GatewayState
from ct_llm.gateway.edge import BodyLimit
from ct_llm.gateway.routes import admin, chat, feedback, ops
from ct_llm.gateway.upstreams import Upstreams
from ct_llm.gateway.watch import watch_canaries, watch_memory
from ct_llm.monitor.known_versions import KnownVersions
from ct_llm.monitor.metrics import ApiMetrics
from ct_llm.workspace import Workspace

log = logging.getLogger("ct_llm.api")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, e: ApiError) -> Response:
        return e.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> Response:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        msg = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
        return error_response(400, msg, code="invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, e: StarletteHTTPException) -> Response:
        return error_response(e.status_code, str(e.detail), code=None)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(SqlTimeoutError)
    async def _database_error(_: Request, e: Exception) -> Response:
        if not database_unavailable(e):
            return _internal_error(e)  # a schema or code bug: not the client's to retry
        # Locked, full, or unreachable: the request did nothing, and the client may send it
        # again.
        log.warning("database unavailable: %s", getattr(e, "orig", e))
        return error_response(
            503,
            "the database is busy or unreachable; nothing was stored, retry shortly",
            type_="server_error",
            code="database_unavailable",
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, e: Exception) -> Response:
        return _internal_error(e)


def _internal_error(e: Exception) -> Response:
    log.error("unhandled error", exc_info=e)
    return error_response(
        500,
        f"internal error ({type(e).__name__}); see the server log",
        type_="server_error",
        code="internal_error",
    )


def database_unavailable(e: Exception) -> bool:
    """Whether a database error means "busy or unreachable, retry" rather than a bug: a lock
    held past the busy timeout, a full disk, a lost or refused connection, an exhausted pool.
    SQLite reports its own bugs (no such table, too many variables) as OperationalError too,
    so its messages decide."""
    if isinstance(e, SqlTimeoutError | DisconnectionError):
        return True
    if isinstance(e, DBAPIError) and e.connection_invalidated:
        return True
    if isinstance(e, InterfaceError):
        return True
    if not isinstance(e, OperationalError):
        return False
    text = str(e.orig).lower()
    if any(w in text for w in ("locked", "busy", "disk is full", "disk i/o", "unable to open")):
        return True
    # psycopg's OperationalError is the server's or the connection's state, never bad SQL.
    return type(e.orig).__module__.startswith("psycopg")


def create_app(
    ws: Workspace, upstream_url: str | list[str], managed: Sequence[VllmServer] = ()
) -> FastAPI:
    """The app; `upstream_url` is the vLLM replica, or the list of replicas, it proxies to;
    `managed` the replicas this process started (restarted when their memory grows)."""
    urls = [upstream_url] if isinstance(upstream_url, str) else list(upstream_url)
    versions = KnownVersions.of_store(ws.database_url, ws.config.base_model)
    state = GatewayState(ws=ws, upstreams=Upstreams(urls), metrics=ApiMetrics(versions))
    replicas = [Managed(server) for server in managed]
    api_cfg = ws.config.api
    limits = TextLimits(
        max_text_chars=api_cfg.max_text_chars,
        max_comment_chars=api_cfg.max_comment_chars,
        max_messages=api_cfg.max_messages,
        max_metadata_bytes=api_cfg.max_metadata_bytes,
    )
    writer = GroupCommitWriter(ws.database_url, limits=limits)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.http = state.new_client()
        writer.start()
        watchers = []
        if ws.config.deploy.canary_check_interval_s > 0:
            interval = ws.config.deploy.canary_check_interval_s
            watchers.append(watch_canaries(ws, state.upstream_urls, interval))
        if replicas and ws.config.serving.restart_rss_growth_mb is not None:
            watchers.append(watch_memory(ws, replicas, state.upstreams))
        tasks = [asyncio.create_task(w) for w in watchers]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            # Stop taking requests first, then commit what is queued: every request that got
            # into the queue gets its answer.
            await run_in_threadpool(writer.stop)
            client, state.http = state.http, None
            await client.aclose()

    app = FastAPI(title="ct-llm", lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=api_cfg.max_body_bytes)
    app.state.gateway = state
    app.state.database_url = ws.database_url
    app.state.feedback_writer = writer
    _install_error_handlers(app)

    for router in (chat.router, feedback.router, admin.router, ops.router):
        app.include_router(router)
    # Cycles, canary checks and promotions happen in other processes: /metrics reads them from
    # the store when scraped (cached; see monitor/store_metrics.py).
    state.metrics.watch_store(ws.database_url)
    return app
