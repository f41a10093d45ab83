"""Prometheus metrics of what the store holds: feedback volume and quality per model version,
the loop's cycles and trigger values, the canary's state, registry actions.

`metric_families` is pure (a StoreSnapshot in, metric families out); `StoreCollector` reads a
snapshot at scrape time and is registered on the API's own CollectorRegistry
(`ApiMetrics.watch_store`). Every series about a tenant has a `tenant` label (what /metrics
scopes by), and feedback is labelled only with versions the registry knows for the tenant,
`unknown` otherwise (monitor/known_versions.py), so invented model_version names in events
add no series.

Scrape cost is bounded by a cache (monitor/cached_read.py): a snapshot is read at most once per
`min_interval_s` (default 30 s), and never more often than `1 / max_busy` times its own read
time, so a store whose read takes 2 s is read at most every 40 s (5% of one connection's time),
however often and by however many Prometheus servers it is scraped. Between reads a scrape
answers from the cached snapshot; `ct_llm_store_snapshot_age_seconds` says how old it is, and a
failed read keeps the previous snapshot and sets `ct_llm_store_up` to 0.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)

from ct_llm.monitor.cached_read import CachedRead
from ct_llm.monitor.known_versions import version_label
from ct_llm.monitor.quality import VoteTally, parse_vote
from ct_llm.monitor.store_snapshot import StoreSnapshot, read_snapshot
from ct_llm.store.db import session_scope

MIN_INTERVAL_S = 30.0
MAX_BUSY = 0.05


def _number(x: Any) -> float | None:
    if isinstance(x, bool):
        return float(x)
    return float(x) if isinstance(x, (int, float)) else None


def _feedback_families(snap: StoreSnapshot, base_model: str) -> list[Metric]:
    events = CounterMetricFamily(
        "ct_llm_store_feedback_events",
        "Feedback events in the store (every API process, all time), by tenant, model version "
        "and kind.",
        labels=["tenant", "model_version", "kind"],
    )
    thumbs = CounterMetricFamily(
        "ct_llm_store_thumbs",
        "Thumbs votes in the store, by model version and vote (up, down). Thumbs-down rate over "
        "a range: increase(..{vote='down'}[1d]) / increase(sum without(vote)(..)[1d]).",
        labels=["tenant", "model_version", "vote"],
    )
    ratings = CounterMetricFamily(
        "ct_llm_store_ratings",
        "Ratings (1-5) in the store, by model version.",
        labels=["tenant", "model_version"],
    )
    points = CounterMetricFamily(
        "ct_llm_store_rating_points",
        "Sum of the ratings in the store, by model version (mean = points / ratings).",
        labels=["tenant", "model_version"],
    )
    hours = f"{snap.window_h:g}"
    down_rate = GaugeMetricFamily(
        "ct_llm_recent_thumbs_down_rate",
        f"Thumbs-down share of the thumbs votes received in the last {hours} h, by model "
        "version (absent without votes).",
        labels=["tenant", "model_version"],
    )
    mean_rating = GaugeMetricFamily(
        "ct_llm_recent_mean_rating",
        f"Mean rating of the ratings received in the last {hours} h, by model version.",
        labels=["tenant", "model_version"],
    )
    recent_votes = GaugeMetricFamily(
        "ct_llm_recent_votes",
        f"Votes received in the last {hours} h, by model version and kind (thumbs, rating): "
        "how much the two recent_ figures rest on.",
        labels=["tenant", "model_version", "kind"],
    )
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    total: dict[tuple[str, str], VoteTally] = defaultdict(VoteTally)
    recent: dict[tuple[str, str], VoteTally] = defaultdict(VoteTally)
    for tenant, version, kind, vote, is_recent, n in snap.feedback:
        version = version_label(snap.known_versions, base_model, tenant, version)
        counts[(tenant, version, kind)] += n
        if parse_vote(kind, vote) is None:
            continue
        total[(tenant, version)].add(kind, vote, n)
        if is_recent:
            recent[(tenant, version)].add(kind, vote, n)
    for key, n in sorted(counts.items()):
        events.add_metric(list(key), n)
    for (tenant, version), t in sorted(total.items()):
        thumbs.add_metric([tenant, version, "down"], t.thumbs_down)
        thumbs.add_metric([tenant, version, "up"], t.thumbs - t.thumbs_down)
        ratings.add_metric([tenant, version], t.ratings)
        points.add_metric([tenant, version], t.rating_sum)
    for (tenant, version), t in sorted(recent.items()):
        recent_votes.add_metric([tenant, version, "thumbs"], t.thumbs)
        recent_votes.add_metric([tenant, version, "rating"], t.ratings)
        if t.thumbs_down_rate is not None:
            down_rate.add_metric([tenant, version], t.thumbs_down_rate)
        if t.mean_rating is not None:
            mean_rating.add_metric([tenant, version], t.mean_rating)
    return [events, thumbs, ratings, points, down_rate, mean_rating, recent_votes]


def _loop_families(snap: StoreSnapshot) -> list[Metric]:
    cycles = CounterMetricFamily(
        "ct_llm_cycles",
        "Cycles recorded, by tenant and outcome (skipped, deployed, rejected, failed:<stage>).",
        labels=["tenant", "outcome"],
    )
    actions = CounterMetricFamily(
        "ct_llm_registry_actions",
        "Registry actions recorded (gate, deploy, canary_check, promote, rollback, transition, "
        "...), by tenant, action and outcome.",
        labels=["tenant", "action", "outcome"],
    )
    for tenant, action, outcome, n in sorted(snap.lineage):
        if action == "cycle":
            cycles.add_metric([tenant, outcome], n)
        else:
            actions.add_metric([tenant, action, outcome], n)
    last_at = GaugeMetricFamily(
        "ct_llm_last_cycle_timestamp_seconds",
        "When the newest cycle with each outcome was recorded (Unix time).",
        labels=["tenant", "outcome"],
    )
    last_duration = GaugeMetricFamily(
        "ct_llm_last_cycle_duration_seconds",
        "How long the newest cycle with each outcome took.",
        labels=["tenant", "outcome"],
    )
    trigger_value = GaugeMetricFamily(
        "ct_llm_trigger_value",
        "Each trigger's value at the tenant's newest cycle.",
        labels=["tenant", "trigger"],
    )
    trigger_threshold = GaugeMetricFamily(
        "ct_llm_trigger_threshold",
        "Each trigger's threshold at the tenant's newest cycle.",
        labels=["tenant", "trigger"],
    )
    trigger_fired = GaugeMetricFamily(
        "ct_llm_trigger_fired",
        "1 if the trigger fired at the tenant's newest cycle, else 0.",
        labels=["tenant", "trigger"],
    )
    newest: dict[str, Any] = {}
    for c in sorted(snap.cycles, key=lambda c: (c.tenant, c.outcome)):
        last_at.add_metric([c.tenant, c.outcome], c.at)
        if c.duration_s is not None:
            last_duration.add_metric([c.tenant, c.outcome], c.duration_s)
        if c.tenant not in newest or c.at >= newest[c.tenant].at:
            newest[c.tenant] = c
    for tenant, c in sorted(newest.items()):
        for name, t in sorted(c.triggers.items()):
            t = t if isinstance(t, dict) else {}
            for family, key in (
                (trigger_value, "value"),
                (trigger_threshold, "threshold"),
                (trigger_fired, "fired"),
            ):
                value = _number(t.get(key))
                if value is not None:
                    family.add_metric([tenant, str(name)], value)
    return [
        cycles,
        actions,
        last_at,
        last_duration,
        trigger_value,
        trigger_threshold,
        trigger_fired,
    ]


def _serving_families(snap: StoreSnapshot) -> list[Metric]:
    production = InfoMetricFamily(
        "ct_llm_production",
        "The version the production alias names (absent: users get the base model).",
        labels=["tenant"],
    )
    weight = GaugeMetricFamily(
        "ct_llm_canary_weight",
        "Share of conversations routed to the canary (absent: no canary).",
        labels=["tenant", "version"],
    )
    since = GaugeMetricFamily(
        "ct_llm_canary_since_timestamp_seconds",
        "When the canary was deployed (Unix time).",
        labels=["tenant", "version"],
    )
    check = GaugeMetricFamily(
        "ct_llm_canary_last_check_timestamp_seconds",
        "When the current canary was last checked (Unix time), labelled with the action that "
        "check decided (wait, promote, rollback).",
        labels=["tenant", "version", "action"],
    )
    checks = {(t, v): (action, at) for t, v, action, at in snap.canary_checks}
    for tenant, name, version, w, at in sorted(snap.aliases):
        if name == "production":
            production.add_metric([tenant], {"version": version})
        elif name == "canary":
            weight.add_metric([tenant, version], w)
            since.add_metric([tenant, version], at)
            if (tenant, version) in checks:
                action, checked = checks[(tenant, version)]
                check.add_metric([tenant, version, action], checked)
    return [production, weight, since, check]


def metric_families(
    snap: StoreSnapshot, base_model: str = "", age_s: float = 0.0, up: bool = True
) -> list[Metric]:
    """Every family the store collector exposes for `snap` (families without samples too, so
    the names are known before the first read). `base_model` is the name the gateway records
    for chats the base model answered: a known version for every tenant."""
    health = [
        GaugeMetricFamily(
            "ct_llm_store_up", "1 if the last read of the store for metrics succeeded.", value=up
        ),
        GaugeMetricFamily(
            "ct_llm_store_snapshot_age_seconds",
            "Age of the store snapshot these metrics come from (reads are cached).",
            value=age_s,
        ),
        GaugeMetricFamily(
            "ct_llm_store_read_seconds",
            "How long the last read of the store for metrics took.",
            value=snap.read_s,
        ),
    ]
    return [
        *_feedback_families(snap, base_model),
        *_loop_families(snap),
        *_serving_families(snap),
        *health,
    ]


class StoreCollector:
    """A prometheus_client collector over the store, cached as the module docstring says."""

    def __init__(
        self,
        database_url: str,
        *,
        base_model: str = "",
        window_h: float = 24.0,
        min_interval_s: float = MIN_INTERVAL_S,
        max_busy: float = MAX_BUSY,
        read: Callable[[], StoreSnapshot] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock, self.base_model = clock, base_model
        self._database_url, self._window_h = database_url, window_h
        self._cache = CachedRead(
            read or self._read_store,
            what="the store",
            min_interval_s=min_interval_s,
            max_busy=max_busy,
            clock=clock,
        )

    def _read_store(self) -> StoreSnapshot:
        with session_scope(self._database_url) as session:
            return read_snapshot(session, self._window_h)

    def snapshot(self) -> tuple[StoreSnapshot, bool]:
        """The cached snapshot (read anew when it is due) and whether the last read worked."""
        snap = self._cache.get()
        return snap or StoreSnapshot(window_h=self._window_h), self._cache.up

    def collect(self) -> Iterable[Metric]:
        snap, up = self.snapshot()
        age = max(0.0, self.clock() - snap.read_at) if snap.read_at else 0.0
        return metric_families(snap, self.base_model, age_s=age, up=up)

    def describe(self) -> Iterable[Metric]:
        # Registering calls this to check names: answer without touching the store.
        return metric_families(StoreSnapshot(window_h=self._window_h))
