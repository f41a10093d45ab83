"""`/v1/admin/*`: a tenant's rollouts (canary, promote, rollback) and its status page, for keys
with the `admin` role. Bodies are read after the key is checked (a parameter typed as a model
would be read and parsed first) and validated here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from ct_llm.deploy.rollout import deploy_canary, promote, rollback
from ct_llm.errors import CtLlmError, RegistryError, ServingError
from ct_llm.gateway.auth import ApiError, Principal
from ct_llm.gateway.bodies import read_json_body
from ct_llm.gateway.chat import GatewayState
from ct_llm.gateway.deps import DbSession, admin_role, gateway_state
from ct_llm.monitor.page import CSP, render_status_page
from ct_llm.monitor.page_data import DEFAULT_DAYS, MAX_DAYS, status_page_payload

router = APIRouter()


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


# The status page (monitor/page.py) shows the registry, eval verdicts and who did what, so it is
# for operators. Tools send the admin key; people open the file that `ct-llm status --html FILE`
# writes, or save this answer with curl.
@router.get("/v1/admin/status.html")
def status_page(
    session: DbSession,
    days: int = Query(DEFAULT_DAYS, ge=1, le=MAX_DAYS, description="UTC days to chart."),
    p: Principal = Depends(admin_role),
    state: GatewayState = Depends(gateway_state),
) -> Response:
    payload = status_page_payload(session, p.tenant, state.ws.config.base_model, days=days)
    headers = {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }
    return HTMLResponse(render_status_page(payload), headers=headers)


async def _rollout(
    action: Callable[..., Any], p: Principal, state: GatewayState, *args: Any, **kwargs: Any
) -> Any:
    """Run a rollout action (deploy/rollout.py) for the caller's tenant off the event loop,
    recorded as done by the caller's key; its refusals become 4xx/502 answers."""
    try:
        return await run_in_threadpool(
            action,
            state.ws,
            p.tenant,
            *args,
            actor=f"api:{p.key_prefix}",
            server_url=state.upstream_urls,
            **kwargs,
        )
    except CtLlmError as e:
        raise _admin_error(e) from None


@router.post("/v1/admin/rollback")
async def admin_rollback(
    p: Principal = Depends(admin_role), state: GatewayState = Depends(gateway_state)
) -> Any:
    return await _rollout(rollback, p, state)


@router.post("/v1/admin/promote")
async def admin_promote(
    request: Request,
    p: Principal = Depends(admin_role),
    state: GatewayState = Depends(gateway_state),
) -> Any:
    body = None  # no body: promote the canary
    if (await request.body()).strip():
        data = await read_json_body(request, state.ws.config.api.max_body_bytes)
        body = _admin_body(PromoteRequest, data)
    return await _rollout(promote, p, state, version_id=body.version if body else None)


@router.post("/v1/admin/canary")
async def admin_canary(
    request: Request,
    p: Principal = Depends(admin_role),
    state: GatewayState = Depends(gateway_state),
) -> Any:
    data = await read_json_body(request, state.ws.config.api.max_body_bytes)
    body = _admin_body(CanaryRequest, data)
    return await _rollout(deploy_canary, p, state, body.version, weight=body.weight)
