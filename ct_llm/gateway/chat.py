"""`POST /v1/chat/completions`: route to the tenant's production or canary adapter, proxy to the
OpenAI-compatible server (vLLM), give the answer our own response_id, and log it for feedback.

The answer is logged before the client sees its end (the JSON body, or the SSE `[DONE]`), so
feedback sent right after the answer always finds the response_id.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ct_llm.feedback.context import context_hash
from ct_llm.feedback.schema import check_text, find_non_finite
from ct_llm.gateway.auth import ApiError, Principal, error_body
from ct_llm.gateway.chat_messages import plain_text_messages
from ct_llm.gateway.chat_params import upstream_fields, with_system_prompt
from ct_llm.gateway.quotas import TenantQuotas
from ct_llm.gateway.upstreams import Upstream, Upstreams
from ct_llm.monitor.metrics import ApiMetrics
from ct_llm.registry.registry import resolve_route
from ct_llm.registry.routing import Route
from ct_llm.store.db import session_scope
from ct_llm.store.models import ChatResponse
from ct_llm.workspace import Workspace

CONVERSATION_HEADER = "x-ct-conversation-id"
VERSION_HEADER = "x-ct-model-version"
USER_HEADER = "x-ct-user-id"
"""The end user a chat is for, when the client does not use OpenAI's `user` field."""


@dataclass
class GatewayState:
    """What the request handlers share; one per app."""

    ws: Workspace
    upstreams: Upstreams
    metrics: ApiMetrics
    quotas: TenantQuotas = field(init=False)
    """Per-tenant rate and concurrency quotas, from the workspace's `api.quotas`."""
    http: httpx.AsyncClient | None = None
    """Pooled client, opened by the app's lifespan; None outside it (a client per request)."""

    @property
    def database_url(self) -> str:
        return self.ws.database_url

    @property
    def upstream_url(self) -> str:
        """The first replica (health summary, error messages)."""
        return self.upstreams.first

    @property
    def upstream_urls(self) -> list[str]:
        return [r.url for r in self.upstreams.replicas]

    def __post_init__(self) -> None:
        self.quotas = TenantQuotas(self.ws.config.api.quotas)

    def new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=httpx.Timeout(self.ws.config.api.upstream_timeout_s, connect=5.0)
        )


def new_response_id() -> str:
    return f"chatcmpl-ct-{uuid.uuid4().hex}"


def _check_numbers(body: dict[str, Any]) -> None:
    where = find_non_finite(body)
    if where is not None:
        raise ApiError(
            400,
            f"{where}: numbers must be finite (a number as large as 1e999 overflows to Infinity)",
            code="invalid_number",
        )


# Printable ASCII but the escape character itself: what a `user` may keep as it is in a key.
_KEY_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def conversation_key(header: str | None, body: dict[str, Any]) -> str:
    """The key that pins a conversation to one model (canary bucketing): the client's conversation
    header, else the OpenAI `user` field, else a fresh id (a one-off request).

    The key goes back in a response header, and headers are Latin-1 without line breaks, while
    `user` may be any string ("Zoë", "用户"): a `user` with other characters is percent-encoded
    (UTF-8), the same way every time, so it still names one conversation. The client's own header
    arrived as a header, so it can go back as it is."""
    if header:
        return header[:256]
    user = body.get("user")
    if isinstance(user, str) and user:
        return urllib.parse.quote(user[:256], safe=_KEY_SAFE)[:256]
    return uuid.uuid4().hex


def end_user(header: str | None, body: dict[str, Any]) -> str | None:
    """The end user the gateway logs for a chat: the user header, else OpenAI's `user`. Feedback
    on the answer is attributed to this user, whatever the feedback's body says."""
    user = header if header else body.get("user")
    if not isinstance(user, str) or not user:
        return None
    try:
        return check_text(user[:256])
    except ValueError as e:  # NUL or a lone surrogate: no store could hold it
        raise ApiError(400, f"user: {e}", code="invalid_user") from None


def _upstream_message(r: httpx.Response) -> str:
    try:
        data = r.json()
    except ValueError:
        return r.text[:500] or r.reason_phrase
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if data.get("message"):  # vLLM's older error shape
            return str(data["message"])
    return str(data)[:500]


def upstream_error(r: httpx.Response) -> ApiError:
    """A client mistake the server refused (4xx) keeps its status; a server failure is our 502."""
    message = _upstream_message(r)
    if 400 <= r.status_code < 500:
        return ApiError(r.status_code, message, code="upstream_rejected")
    return ApiError(
        502,
        f"model server error (HTTP {r.status_code}): {message}",
        type_="upstream_error",
        code="upstream_error",
    )


def _replica_of(e: httpx.HTTPError, fallback: str) -> str:
    try:
        url = e.request.url
    except RuntimeError:  # raised before a request was built
        return fallback
    return f"{url.scheme}://{url.host}:{url.port}" if url.port else f"{url.scheme}://{url.host}"


def unreachable(state: GatewayState, e: httpx.HTTPError) -> ApiError:
    if isinstance(e, httpx.TimeoutException):  # not retried: the replica may be working on it
        where = _replica_of(e, state.upstream_url)
        return ApiError(
            504,
            f"model server at {where} timed out",
            type_="upstream_error",
            code="upstream_timeout",
        )
    # A refused connection was tried on every replica (see _send); any other error is one's.
    where = f"model server at {_replica_of(e, state.upstream_url)} is"
    if isinstance(e, httpx.ConnectError) and len(state.upstream_urls) > 1:
        where = f"every model server replica ({', '.join(state.upstream_urls)}) is"
    return ApiError(
        502,
        f"{where} unreachable: {type(e).__name__}",
        type_="upstream_error",
        code="upstream_unreachable",
    )


def _route(state: GatewayState, tenant: str, key: str) -> Route:
    """Runs in a worker thread, so it may also refresh the metrics' registry names when a newly
    deployed version is missing from them (its chats are then counted under its own name)."""
    with session_scope(state.database_url) as session:
        route = resolve_route(session, tenant, key, state.ws.config.base_model)
    if state.metrics.versions.needs_read(tenant, [route.model_version]):
        state.metrics.versions.read()
    return route


def _log(state: GatewayState, **row: Any) -> None:
    row["context_hash"] = context_hash(row["messages"])
    with session_scope(state.database_url) as session:
        session.add(ChatResponse(**row))


def _answer_text(data: dict[str, Any]) -> str:
    try:
        content = data["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""
    return content if isinstance(content, str) else ""  # the log holds text only


def _is_unknown_model(r: httpx.Response) -> bool:
    return r.status_code == 404 and "does not exist" in _upstream_message(r)


async def _send(
    state: GatewayState, client: httpx.AsyncClient, body: dict[str, Any], stream: bool
) -> tuple[httpx.Response, Upstream]:
    """Send to the best replica; a refused connection (the request never arrived) moves on to
    the next one. The chosen replica counts the request in flight until the caller releases it."""
    last: httpx.HTTPError | None = None
    for replica in state.upstreams.order():
        request = client.build_request("POST", replica.url + "/v1/chat/completions", json=body)
        state.upstreams.acquire(replica)
        try:
            return await client.send(request, stream=stream), replica
        except httpx.ConnectError as e:
            state.upstreams.release(replica)
            state.upstreams.mark_down(replica)
            last = e
        except httpx.HTTPError:
            state.upstreams.release(replica)
            raise
    assert last is not None
    raise last


async def proxy_chat(
    state: GatewayState,
    principal: Principal,
    body: dict[str, Any],
    conversation_header: str | None,
    user_header: str | None = None,
    on_done: Callable[[], None] = lambda: None,
) -> Response:
    """Proxy one chat; `on_done` is called once the answer has been relayed (for a stream, when
    the stream ends), or at once when it fails before."""
    try:
        response = await _proxy_chat(
            state, principal, body, conversation_header, user_header, on_done
        )
    except BaseException:
        on_done()
        raise
    if not isinstance(response, _RelayResponse):
        on_done()
    return response


async def _proxy_chat(
    state: GatewayState,
    principal: Principal,
    body: dict[str, Any],
    conversation_header: str | None,
    user_header: str | None,
    on_done: Callable[[], None],
) -> Response:
    tenant = principal.tenant
    limits = state.ws.config.api.chat.for_tenant(tenant)
    _check_numbers(body)
    messages = plain_text_messages(body.get("messages"))
    fields = upstream_fields(body, limits)
    key = conversation_key(conversation_header, body)
    user = end_user(user_header, body)
    sent = with_system_prompt(messages, state.ws.config.system_prompt, limits.client_system_prompt)
    stream = bool(fields.get("stream"))
    own_client = state.http is None
    client = state.new_client() if own_client else state.http
    assert client is not None
    started = time.perf_counter()

    async def attempt(route: Route) -> tuple[httpx.Response, Upstream]:
        upstream_body = {**fields, "model": route.served_model, "messages": sent}
        try:
            r, replica = await _send(state, client, upstream_body, stream)
        except httpx.HTTPError as e:
            state.metrics.record_chat(tenant, route.model_version, "unreachable", None)
            raise unreachable(state, e) from None
        if r.status_code >= 400:
            await r.aread()
            await r.aclose()
            state.upstreams.release(replica)
        return r, replica

    try:
        route = await run_in_threadpool(_route, state, tenant, key)
        r, replica = await attempt(route)
        if _is_unknown_model(r) and route.variant != "base":
            # The version was unloaded between routing and arrival (a swap just finished):
            # route the conversation again, once.
            fresh = await run_in_threadpool(_route, state, tenant, key)
            if fresh != route:
                route = fresh
                r, replica = await attempt(route)
        if r.status_code >= 400:
            state.metrics.record_chat(tenant, route.model_version, "upstream_error", None)
            raise upstream_error(r)
    except BaseException:
        if own_client:
            await client.aclose()
        raise
    response_id = new_response_id()
    headers = {VERSION_HEADER: route.model_version, CONVERSATION_HEADER: key}
    log_row = {
        "id": response_id,
        "tenant": tenant,
        "conversation_id": key,
        "messages": sent,
        "model_version": route.model_version,
        "user_id": user,
        "key_prefix": principal.key_prefix,
    }
    if stream:
        return _relay_stream(
            state, client, own_client, r, replica, headers, log_row, route, started, on_done
        )
    try:
        await r.aread()
    finally:
        await r.aclose()
        state.upstreams.release(replica)
        if own_client:
            await client.aclose()
    try:
        data = r.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        state.metrics.record_chat(tenant, route.model_version, "upstream_error", None)
        raise ApiError(
            502,
            "model server answered with something other than a JSON object",
            type_="upstream_error",
            code="upstream_error",
        )
    data["id"] = response_id
    latency = time.perf_counter() - started
    await run_in_threadpool(
        _log, state, response=_answer_text(data), latency_ms=latency * 1000, **log_row
    )
    state.metrics.record_chat(tenant, route.model_version, "ok", latency)
    return JSONResponse(data, headers=headers)


def _relay_stream(
    state: GatewayState,
    client: httpx.AsyncClient,
    own_client: bool,
    r: httpx.Response,
    replica: Upstream,
    headers: dict[str, str],
    log_row: dict[str, Any],
    route: Route,
    started: float,
    on_done: Callable[[], None],
) -> Response:
    tenant = log_row["tenant"]

    async def finish(parts: list[str]) -> None:
        latency = time.perf_counter() - started
        await run_in_threadpool(
            _log, state, response="".join(parts), latency_ms=latency * 1000, **log_row
        )
        state.metrics.record_chat(tenant, route.model_version, "ok", latency)

    async def relay() -> AsyncIterator[bytes]:
        parts: list[str] = []
        finished = logged = False
        try:
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    if not logged:
                        await finish(parts)
                        logged = True
                    yield b"data: [DONE]\n\n"
                    continue
                try:
                    chunk = json.loads(payload)
                except ValueError:
                    continue
                if isinstance(chunk, dict) and "choices" in chunk:
                    chunk["id"] = log_row["id"]
                    for choice in chunk.get("choices") or []:
                        if isinstance(choice, dict) and choice.get("index", 0) == 0:
                            parts.append((choice.get("delta") or {}).get("content") or "")
                            finished = finished or bool(choice.get("finish_reason"))
                yield b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"
            # Servers that end the stream without `[DONE]` still finished the answer.
            if finished and not logged:
                await finish(parts)
        except httpx.HTTPError as e:
            state.metrics.record_chat(tenant, route.model_version, "upstream_error", None)
            err = error_body(
                f"model server stream broke: {type(e).__name__}", "upstream_error", "upstream_error"
            )
            yield b"data: " + json.dumps(err).encode() + b"\n\n"
        finally:
            await cleanup()

    closed = False

    async def cleanup() -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        await r.aclose()
        state.upstreams.release(replica)
        on_done()
        if own_client:
            await client.aclose()

    return _RelayResponse(relay(), cleanup=cleanup, media_type="text/event-stream", headers=headers)


class _RelayResponse(StreamingResponse):
    """A relayed stream whose cleanup (upstream connection, replica count, the tenant's chat
    slot) runs however the response ends: a client that left before the first byte makes
    Starlette cancel the stream before the generator starts, so its `finally` never runs."""

    def __init__(
        self, content: AsyncIterator[bytes], cleanup: Callable[[], Awaitable[None]], **kw: Any
    ) -> None:
        super().__init__(content, **kw)
        self._cleanup = cleanup

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._cleanup()
