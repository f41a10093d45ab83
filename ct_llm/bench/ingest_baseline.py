"""The baseline of `ct-llm bench ingest`: the feedback endpoint as one would first write it.

FastAPI + the SQLAlchemy ORM, one transaction (one durable commit) per event. It validates with
the same schema, checks the same API keys and writes to the same table on the same SQLite
settings (WAL, `synchronous=FULL`) as ct-llm, so the benchmark measures the write path alone.
"""

from __future__ import annotations

from typing import Any

from fastapi import Body, Depends, FastAPI
from sqlalchemy.exc import IntegrityError

from ct_llm.feedback.schema import parse_event, payload_hash
from ct_llm.gateway.auth import Principal, require_role
from ct_llm.store.db import session_scope
from ct_llm.store.models import FeedbackEvent, utcnow


def create_baseline_app(database_url: str) -> FastAPI:
    app = FastAPI(title="naive feedback endpoint")
    app.state.database_url = database_url
    ingest_role = require_role("ingest")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/feedback")
    def feedback(data: Any = Body(...), p: Principal = Depends(ingest_role)) -> dict[str, Any]:
        # A plain `def`: FastAPI runs it in its thread pool, as most such endpoints are written.
        items = data["events"] if isinstance(data, dict) and "events" in data else [data]
        accepted = duplicates = 0
        rejected: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            try:
                ev = parse_event(item)
            except ValueError as e:
                rejected.append({"index": index, "error": str(e)})
                continue
            try:
                with session_scope(database_url) as session:
                    session.add(
                        FeedbackEvent(
                            tenant=p.tenant,
                            event_id=ev.event_id,
                            payload_hash=payload_hash(ev),
                            kind=ev.kind,
                            value=ev.value,
                            messages=[m.model_dump(exclude_none=True) for m in ev.messages or []],
                            response=ev.response,
                            user_id=ev.user_id,
                            conversation_id=ev.conversation_id,
                            created_at=ev.created_at or utcnow(),
                        )
                    )
                accepted += 1
            except IntegrityError:
                duplicates += 1
        return {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}

    return app
