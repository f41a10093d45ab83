"""The monitor's store reads on a real SQLite file and a real PostgreSQL server: days in UTC,
windows, tenants kept apart, the newest records chosen, and the API's page and metrics."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from ct_llm.errors import ConfigError
from ct_llm.feedback.vote_query import daily_vote_counts
from ct_llm.gateway.app import create_app
from ct_llm.gateway.auth import create_api_key
from ct_llm.monitor import queries
from ct_llm.monitor.page_data import status_page_payload
from ct_llm.monitor.quality import daily_quality
from ct_llm.monitor.status import operator_status
from ct_llm.monitor.store_snapshot import read_snapshot
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.store.models import EvalReport
from ct_llm.workspace import Workspace

Seed = Any  # the `seed` fixture of this folder's conftest.py
UTC = timezone.utc
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DEAD_UPSTREAM = "http://127.0.0.1:18219"


def test_daily_votes_fall_on_their_utc_day_within_the_window(ws: Workspace, seed: Seed) -> None:
    late = datetime(2026, 3, 8, 23, 30, tzinfo=UTC)
    seed.logged_votes("acme", "v1", "thumbs", False, late, n=3)
    seed.logged_votes("acme", "v1", "thumbs", True, late + timedelta(hours=1), n=2)  # next day
    seed.logged_votes("acme", "v1", "rating", 4, late + timedelta(hours=1), n=2)
    seed.logged_votes("acme", "v1", "edit", "better answer", late)  # not a vote
    seed.logged_votes("acme", "v1", "thumbs", False, datetime(2026, 2, 1, tzinfo=UTC))  # too old
    seed.logged_votes("globex", "v1", "thumbs", False, late, n=5)  # another tenant
    with session_scope(ws.database_url) as s:
        if s.get_bind().dialect.name == "postgresql":
            # A server or session in another zone must not move votes to another day.
            s.execute(text("SET TIME ZONE 'Pacific/Auckland'"))
        counts = daily_vote_counts(s, "acme", datetime(2026, 3, 1, tzinfo=UTC))
    days = {(d.day, d.version): d.counts for d in daily_quality(counts)}
    assert set(days) == {("2026-03-08", "v1"), ("2026-03-09", "v1")}
    assert days[("2026-03-08", "v1")].thumbs_down_rate == 1.0
    assert days[("2026-03-08", "v1")].thumbs == 3
    assert days[("2026-03-09", "v1")].thumbs_down_rate == 0.0
    assert days[("2026-03-09", "v1")].mean_rating == 4.0


def test_the_daily_chart_counts_votes_as_the_canary_does(ws: Workspace, seed: Seed) -> None:
    """Free-standing events name no logged answer, and one user counts at most 20 answers a
    version (feedback/votes.py): neither can paint the chart."""
    day = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    seed.votes("acme", "v1", "thumbs", False, day, n=300)  # free-standing: no logged response
    seed.logged_votes("acme", "v1", "thumbs", False, day, n=30, user="mallory")
    seed.logged_votes("acme", "v1", "thumbs", True, day, n=5)  # five anonymous answers
    with session_scope(ws.database_url) as s:
        counts = daily_vote_counts(s, "acme", datetime(2026, 3, 1, tzinfo=UTC))
    assert counts[("2026-03-08", "v1")].thumbs == 25  # 20 of mallory's + 5
    assert counts[("2026-03-08", "v1")].thumbs_down == 20


def test_feedback_counts_group_every_tenant_in_one_scan(ws: Workspace, seed: Seed) -> None:
    seed.votes("acme", "v1", "thumbs", False, NOW - timedelta(hours=1), n=2)
    seed.votes("acme", "v1", "thumbs", False, NOW - timedelta(days=3), n=4)
    for i in range(3):  # three different edits: one group, not three
        seed.votes("acme", "v1", "edit", f"answer {i}", NOW)
    seed.votes("globex", None, "rating", 5, NOW)
    with session_scope(ws.database_url) as s:
        rows = queries.feedback_counts(s, NOW - timedelta(hours=24))
    assert sorted(rows, key=str) == sorted(
        [
            ("acme", "v1", "thumbs", "false", True, 2),
            ("acme", "v1", "thumbs", "false", False, 4),
            ("acme", "v1", "edit", None, True, 3),
            ("globex", None, "rating", "5", True, 1),
        ],
        key=str,
    )


def _versions(ws: Workspace) -> None:
    with session_scope(ws.database_url) as s:
        for n in (1, 2, 3):
            registry.register_adapter(s, "acme", f"acme-a-v{n}", n, "p", None, None, {})
        registry.set_alias(s, "acme", "production", "acme-a-v1")
        registry.set_alias(s, "acme", "canary", "acme-a-v3", 0.2)


def test_operator_status_picks_the_newest_records(ws: Workspace, seed: Seed) -> None:
    _versions(ws)
    trig = {"volume": {"name": "volume", "fired": False, "value": 2, "threshold": 8}}
    # Inserted in time order, as the store's ids grow with time (newest = highest id).
    seed.event("acme", "acme-a-v1", "promote", "production", NOW - timedelta(days=5))
    seed.event("acme", "acme-a-v2", "cycle", "deployed", NOW - timedelta(days=2), duration_s=300)
    seed.event("acme", "acme-a-v2", "canary_check", "rollback", NOW - timedelta(days=2))
    seed.event("acme", "acme-a-v2", "rollback", "rejected", NOW - timedelta(days=2))
    seed.event("acme", None, "cycle", "skipped", NOW - timedelta(hours=2), triggers=trig)
    seed.event("acme", None, "cycle", "skipped", NOW - timedelta(hours=1), triggers=trig)
    seed.event("globex", None, "cycle", "failed:train", NOW)  # another tenant
    seed.event("acme", "acme-a-v3", "canary_check", "wait", NOW - timedelta(hours=3))
    seed.votes("acme", "acme-a-v3", "thumbs", False, NOW - timedelta(hours=1), n=1)
    seed.votes("acme", "acme-a-v3", "thumbs", True, NOW - timedelta(hours=1), n=3)
    seed.votes("acme", "acme-a-v3", "thumbs", False, NOW - timedelta(days=2), n=9)  # old
    with session_scope(ws.database_url) as s:
        st = operator_status(s, "acme", "base", now=NOW)
    assert st["production"] == "acme-a-v1"
    assert st["canary"]["version"] == "acme-a-v3" and st["canary"]["weight"] == 0.2
    assert st["canary"]["last_check"]["action"] == "wait"  # not v2's old rollback
    assert st["last_cycle"]["outcome"] == "skipped"
    assert st["triggers"] == trig
    assert st["last_cycle_that_ran"]["outcome"] == "deployed"
    assert st["last_cycle_that_ran"]["duration_s"] == 300
    assert st["cycles_by_outcome"] == {"deployed": 1, "skipped": 2}
    assert st["last_version_change"]["action"] == "rollback"
    recent = st["recent_quality"]["by_model_version"]["acme-a-v3"]
    assert recent["thumbs"] == 4 and recent["thumbs_down_rate"] == 0.25
    assert st["feedback"]["by_model_version"]["acme-a-v3"]["thumbs"] == 13


def test_page_payload_takes_the_verdict_of_the_gate_that_read_the_report(
    ws: Workspace, seed: Seed
) -> None:
    _versions(ws)
    seed.event("acme", "acme-a-v2", "promote", "production", NOW - timedelta(days=40))  # too old
    with session_scope(ws.database_url) as s:
        for rid, at in (("r-old", NOW - timedelta(days=2)), ("r-new", NOW - timedelta(days=1))):
            s.add(
                EvalReport(
                    id=rid, tenant="acme", candidate="acme-a-v2", baseline="acme-a-v1", path="p",
                    summary={"suites": {"general": {"candidate_pass_rate": 0.5}}}, created_at=at,
                )
            )  # fmt: skip
    failed = [{"rule": "judge", "passed": False}, {"rule": "latency", "passed": True}]
    seed.event("acme", "acme-a-v2", "gate", "rejected", NOW - timedelta(days=2), report="r-old",
               reasons=failed)  # fmt: skip
    seed.event("acme", "acme-a-v2", "gate", "approved", NOW - timedelta(days=1), report="r-new",
               reasons=[])  # fmt: skip
    with session_scope(ws.database_url) as s:
        payload = status_page_payload(s, "acme", "base", days=30, now=NOW)
        with pytest.raises(ConfigError, match="from 1 to 365"):
            status_page_payload(s, "acme", "base", days=0, now=NOW)
    reports = {r["id"]: r for r in payload["reports"]}
    assert [r["id"] for r in payload["reports"]] == ["r-new", "r-old"]
    assert reports["r-old"]["verdict"] == "rejected"
    assert reports["r-old"]["failed_rules"] == ["judge"]
    assert reports["r-new"]["verdict"] == "approved"
    assert payload["changes"] == []
    assert payload["first_day"] == "2026-02-09" and payload["last_day"] == "2026-03-10"


def test_snapshot_reads_aliases_cycles_and_checks(ws: Workspace, seed: Seed) -> None:
    _versions(ws)
    seed.event("acme", None, "cycle", "skipped", NOW - timedelta(hours=2), duration_s=0.5)
    seed.event("acme", None, "cycle", "skipped", NOW - timedelta(hours=1), duration_s=0.25)
    seed.event("acme", "acme-a-v3", "canary_check", "wait", NOW - timedelta(hours=3))
    seed.event("acme", "acme-a-v3", "canary_check", "promote", NOW - timedelta(hours=2))
    with session_scope(ws.database_url) as s:
        snap = read_snapshot(s, 24, now=NOW)
    assert [(c.outcome, c.duration_s) for c in snap.cycles] == [("skipped", 0.25)]
    assert [(t, v, a) for t, v, a, _ in snap.canary_checks] == [("acme", "acme-a-v3", "promote")]
    assert {(t, n, v, w) for t, n, v, w, _ in snap.aliases} == {
        ("acme", "production", "acme-a-v1", 1.0),
        ("acme", "canary", "acme-a-v3", 0.2),
    }
    assert ("acme", "cycle", "skipped", 2) in snap.lineage


def test_api_page_and_store_metrics(ws: Workspace, seed: Seed) -> None:
    _versions(ws)
    now = datetime.now(UTC)
    seed.logged_votes("acme", "acme-a-v1", "thumbs", False, now - timedelta(hours=1), n=1)
    seed.logged_votes("acme", "acme-a-v1", "thumbs", True, now - timedelta(hours=1), n=3)
    seed.event("acme", None, "cycle", "skipped", now, triggers={"volume": {"value": 4}})
    admin = create_api_key(ws.database_url, "acme", "admin")
    ingest = create_api_key(ws.database_url, "acme", "ingest")
    with TestClient(create_app(ws, DEAD_UPSTREAM)) as client:
        auth = {"Authorization": f"Bearer {admin}"}
        text = client.get("/metrics", headers=auth).text
        assert (
            'ct_llm_store_thumbs_total{model_version="acme-a-v1",tenant="acme",vote="down"} 1.0'
            in text
        )
        assert (
            'ct_llm_recent_thumbs_down_rate{model_version="acme-a-v1",tenant="acme"} 0.25' in text
        )
        assert 'ct_llm_trigger_value{tenant="acme",trigger="volume"} 4.0' in text
        assert 'ct_llm_canary_weight{tenant="acme",version="acme-a-v3"} 0.2' in text
        assert 'ct_llm_production_info{tenant="acme",version="acme-a-v1"} 1.0' in text
        assert "ct_llm_store_up 1.0" in text

        r = client.get("/v1/admin/status.html", headers=auth)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert 'id="chart-thumbs-down"' in r.text and "acme-a-v3" in r.text
        r = client.get("/v1/admin/status.html", headers={"Authorization": f"Bearer {ingest}"})
        assert r.status_code == 403
        r = client.get("/v1/admin/status.html?days=0", headers=auth)
        assert r.status_code == 400 and "days" in r.json()["error"]["message"]
