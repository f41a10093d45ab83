"""`POST /v1/chat/completions`: quotas, then the body, then the proxy (gateway/chat.py)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ct_llm.gateway.auth import ApiError, Principal
from ct_llm.gateway.bodies import read_json_body
from ct_llm.gateway.chat import CONVERSATION_HEADER, USER_HEADER, GatewayState, proxy_chat
from ct_llm.gateway.deps import gateway_state, ingest_role

router = APIRouter()


@router.post("/v1/chat/completions")
async def chat_completions(
    request: Request,
    p: Principal = Depends(ingest_role),
    state: GatewayState = Depends(gateway_state),
) -> Response:
    # Quotas first: a tenant over its share costs no parsing, no database, no model time.
    state.quotas.admit(p.tenant, "chat")
    release = state.quotas.chat_slot(p.tenant)
    try:
        body = await read_json_body(request, state.ws.config.api.max_body_bytes)
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
