"""The one FastAPI app of `ct-llm api`: the chat gateway, the feedback API, status, metrics and
the admin actions. Every error is answered as OpenAI-style JSON, never a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ct_llm.deploy.restart import Managed
from ct_llm.deploy.vllm_server import VllmServer
from ct_llm.errors import CtLlmError, RegistryError, ServingError
from ct_llm.feedback.schema import TextLimits
from ct_llm.feedback.sender import Sender
from ct_llm.feedback.stats import feedback_stats
from ct_llm.feedback.writer import GroupCommitWriter, WriterBusy, WriterStopped
from ct_llm.gateway.auth import ApiError, Principal, error_response, require_role
from ct_llm.gateway.chat import CONVERSATION_HEADER, USER_HEADER, GatewayState, proxy_chat
from ct_llm.gateway.edge import BodyLimit
from ct_llm.gateway.json_guard import MAX_JSON_DEPTH, nests_deeper_than
from ct_llm.gateway.upstreams import Upstreams
from ct_llm.gateway.watch import watch_canaries, watch_memory
from ct_llm.monitor.known_versions import KnownVersions
from ct_llm.monitor.metrics import ApiMetrics
from ct_llm.monitor.page import CSP, render_status_page
from ct_llm.monitor.page_data import DEFAULT_DAYS, MAX_DAYS, status_page_payload
from ct_llm.monitor.status import tenant_status
from ct_llm.store.db import session_scope
from ct_llm.workspace import Workspace

log = logging.getLogger("ct_llm.api")

ingest_role = require_role("ingest")
admin_role = require_role("admin")
metrics_role = require_role("metrics")


async def read_json_body(request: Request, limit: int) -> Any:
    """The request body as JSON: 413 over `limit` bytes, 400 if it is not JSON or nests too
    deep (json_guard.py).

    Content-Length is checked first so an honest oversized upload is refused unread; the bytes
    are counted too, because chunked bodies carry no length and a client may lie about it.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_big = int(declared) > limit
        except ValueError:
            raise ApiError(400, "Content-Length is not a number", code="bad_request") from None
        if too_big:
            raise ApiError(
                413,
                f"body is {declared} bytes; the limit is {limit} "
                "(api.max_body_bytes); split the request",
                code="body_too_large",
            )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(
                413,
                f"body is over the limit of {limit} bytes (api.max_body_bytes); split the request",
                code="body_too_large",
            )
        chunks.append(chunk)
    raw = b"".join(chunks)
    if nests_deeper_than(raw, MAX_JSON_DEPTH):
        raise ApiError(
            400,
            f"body nests arrays/objects more than {MAX_JSON_DEPTH} levels deep; "
            "send a flatter body",
            code="json_too_deep",
        )
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"body is not valid JSON ({e})", code="invalid_json") from None


def _no_constants(name: str) -> Any:
    # Python's parser takes NaN / Infinity, which JSON (RFC 8259) has not, and PostgreSQL's json
    # type refuses them at insert time: refuse them at the door instead.
    raise ValueError(f"{name} is not a JSON value")


def feedback_items(data: Any, max_events: int) -> list[Any]:
    """`{"events": [...]}` or one event object -> the list of raw events."""
    if isinstance(data, dict) and "events" in data:
        if set(data) != {"events"} or not isinstance(data["events"], list):
            raise ApiError(
                400, "'events' must be a list and the only key of a batch body", code="invalid_body"
            )
        items: list[Any] = data["events"]
    elif isinstance(data, dict):
        items = [data]
    else:
        raise ApiError(
            400,
            'body must be {"events": [event, ...]} or a single event object',
            code="invalid_body",
        )
    if len(items) > max_events:
        raise ApiError(
            413,
            f"{len(items)} events in one request; the limit is {max_events} "
            "(api.max_events_per_batch); split the batch",
            code="too_many_events",
        )
    return items


class CanaryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(min_length=1, max_length=256)
    weight: float | None = Field(None, ge=0, le=1)


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str | None = Field(None, min_length=1, max_length=256)
    """The version to promote; None: the canary."""


def _admin_body(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = f"{where}: {first['msg']}" if where else first["msg"]
        raise ApiError(400, msg, code="invalid_request") from None


def _admin_error(e: CtLlmError) -> ApiError:
    if isinstance(e, RegistryError):
        return ApiError(409, str(e), code="conflict")
    if isinstance(e, ServingError):
        return ApiError(502, str(e), type_="upstream_error", code="serving_error")
    return ApiError(400, str(e), code="invalid_request")


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

    @app.exception_handler(OperationalError)
    async def _database_unavailable(_: Request, e: OperationalError) -> Response:
        # Locked (SQLite: another writer past the busy timeout), full, or unreachable: the
        # request did nothing, and the client may send it again.
        log.warning("database unavailable: %s", e.orig)
        return error_response(
            503,
            "the database is busy or unreachable; nothing was stored, retry shortly",
            type_="server_error",
            code="database_unavailable",
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, e: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(
            500,
            f"internal error ({type(e).__name__}); see the server log",
            type_="server_error",
            code="internal_error",
        )


def create_app(
    ws: Workspace, upstream_url: str | list[str], managed: Sequence[VllmServer] = ()
) -> FastAPI:
    """The app; `upstream_url` is the vLLM replica, or the list of replicas, it proxies to;
    `managed` the replicas this process started (restarted when their memory grows)."""
    urls = [upstream_url] if isinstance(upstream_url, str) else list(upstream_url)
    versions = KnownVersions.of_store(ws.database_url, ws.config.base_model)
    state = GatewayState(ws=ws, upstreams=Upstreams(urls), metrics=ApiMetrics(versions))
    quotas = state.quotas
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

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request, p: Principal = Depends(ingest_role)) -> Response:
        # Quotas first: a tenant over its share costs no parsing, no database, no model time.
        quotas.admit(p.tenant, "chat")
        release = quotas.chat_slot(p.tenant)
        try:
            body = await read_json_body(request, api_cfg.max_body_bytes)
            if not isinstance(body, dict):
                raise ApiError(400, "body must be a JSON object", code="invalid_body")
        except BaseException:
            release()
            raise
        return await proxy_chat(
            state,
            p,
            body,
            request.headers.get(CONVERSATION_HEADER),
            request.headers.get(USER_HEADER),
            on_done=release,
        )

    @app.post("/v1/feedback")
    async def feedback(request: Request, p: Principal = Depends(ingest_role)) -> dict[str, Any]:
        quotas.admit(p.tenant, "feedback")
        started = time.perf_counter()
        data = await read_json_body(request, api_cfg.max_body_bytes)
        items = feedback_items(data, api_cfg.max_events_per_batch)
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
            # A version registered since the last read (or an invented one): look again, at
            # most every few seconds, off the event loop.
            await run_in_threadpool(state.metrics.versions.read)
        state.metrics.record_feedback(p.tenant, result, time.perf_counter() - started)
        return result.to_dict()

    @app.get("/v1/feedback/stats")
    def stats(p: Principal = Depends(ingest_role)) -> dict[str, Any]:
        with session_scope(state.database_url) as session:
            return feedback_stats(session, p.tenant)

    @app.get("/v1/status")
    def status(p: Principal = Depends(ingest_role)) -> dict[str, Any]:
        with session_scope(state.database_url) as session:
            return tenant_status(session, p.tenant, ws.config.base_model)

    # A tenant's admin key sees its own tenant's series, an operator key every tenant's
    # (monitor/scope.py). Prometheus sends the key with `authorization: {credentials: <key>}`.
    @app.get("/metrics")
    def metrics(p: Principal = Depends(metrics_role)) -> Response:
        body = state.metrics.render(p.metrics_tenant)
        return Response(body, media_type=state.metrics.content_type)

    # Cycles, canary checks and promotions happen in other processes: /metrics reads them from
    # the store when scraped (cached; see monitor/store_metrics.py).
    state.metrics.watch_store(ws.database_url)

    # The status page (monitor/page.py) shows the registry, eval verdicts and who did what, so it
    # is for operators. Tools send the admin key; people open the file that
    # `ct-llm status --html FILE` writes, or save this answer with curl.
    @app.get("/v1/admin/status.html")
    def status_page(
        days: int = Query(DEFAULT_DAYS, ge=1, le=MAX_DAYS, description="UTC days to chart."),
        p: Principal = Depends(admin_role),
    ) -> Response:
        with session_scope(state.database_url) as session:
            payload = status_page_payload(session, p.tenant, ws.config.base_model, days=days)
        headers = {
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        }
        return HTMLResponse(render_status_page(payload), headers=headers)

    @app.get("/healthz")
    async def healthz() -> Response:
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

    @app.post("/v1/admin/rollback")
    def admin_rollback(p: Principal = Depends(admin_role)) -> dict[str, Any]:
        from ct_llm.deploy.rollout import rollback

        try:
            return rollback(
                ws, p.tenant, actor=f"api:{p.key_prefix}", server_url=state.upstream_urls
            )
        except CtLlmError as e:
            raise _admin_error(e) from None

    # Admin bodies are read after the key is checked (a parameter typed as a model would be read
    # and parsed first), and validated here.
    @app.post("/v1/admin/promote")
    async def admin_promote(request: Request, p: Principal = Depends(admin_role)) -> Any:
        from ct_llm.deploy.rollout import promote

        body = None  # no body: promote the canary
        if (await request.body()).strip():
            data = await read_json_body(request, api_cfg.max_body_bytes)
            body = _admin_body(PromoteRequest, data)
        try:
            return await run_in_threadpool(
                promote,
                ws,
                p.tenant,
                version_id=body.version if body else None,
                actor=f"api:{p.key_prefix}",
                server_url=state.upstream_urls,
            )
        except CtLlmError as e:
            raise _admin_error(e) from None

    @app.post("/v1/admin/canary")
    async def admin_canary(request: Request, p: Principal = Depends(admin_role)) -> Any:
        from ct_llm.deploy.rollout import deploy_canary

        body = _admin_body(CanaryRequest, await read_json_body(request, api_cfg.max_body_bytes))
        try:
            return await run_in_threadpool(
                deploy_canary,
                ws,
                p.tenant,
                body.version,
                weight=body.weight,
                actor=f"api:{p.key_prefix}",
                server_url=state.upstream_urls,
            )
        except CtLlmError as e:
            raise _admin_error(e) from None

    return app


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
