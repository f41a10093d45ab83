"""One event that breaks validation in a way nobody foresaw costs that event only (issue 17):
the exception becomes its rejection and the rest of the batch is stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ct_llm.feedback import ingest
from ct_llm.feedback.ingest import ingest_events
from ct_llm.feedback.schema import FeedbackEventIn, TextLimits, parse_event
from ct_llm.store.models import FeedbackEvent


def thumbs(event_id: str) -> dict[str, Any]:
    return {"event_id": event_id, "kind": "thumbs", "value": True, "response_id": "r1"}


def test_unforeseen_exception_rejects_only_its_event(
    session: Session, add_response: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    add_response("acme", "r1")

    def fragile(item: Any, limits: TextLimits) -> FeedbackEventIn:
        if item["event_id"] == "boom":
            raise RecursionError("maximum recursion depth exceeded")
        return parse_event(item, limits)

    monkeypatch.setattr(ingest, "parse_event", fragile)
    res = ingest_events(session, "acme", [thumbs("a"), thumbs("boom"), thumbs("b")])
    assert (res.accepted, res.duplicates) == (2, 0)
    [rejected] = res.rejected
    assert (rejected["index"], rejected["event_id"]) == (1, "boom")
    assert "RecursionError" in rejected["error"]
    stored = set(session.scalars(select(FeedbackEvent.event_id)))
    assert stored == {"a", "b"}


@pytest.mark.parametrize("created_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_created_at_that_leaves_the_calendar_in_utc_is_a_validation_error(created_at: str) -> None:
    with pytest.raises(ValueError, match="created_at: is outside years 1-9999 once converted"):
        parse_event({**thumbs("e"), "created_at": created_at})
