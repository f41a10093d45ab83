"""Prometheus metrics of one API app.

Each app owns its `CollectorRegistry`, so several apps in one process (tests, the demo) keep
separate counts instead of clashing on the global registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

if TYPE_CHECKING:
    from ct_llm.feedback.ingest import IngestResult

# Chat latency on CPU ranges from ~0.1 s (cached, short) to a minute (long answers), so the
# buckets reach further than the client library's web-request defaults.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# A feedback answer waits for one durable commit: milliseconds, unless the disk stalls.
FEEDBACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ApiMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.feedback_events = Counter(
            "ct_llm_feedback_events",
            "Feedback events received, by tenant and outcome (accepted, duplicate, rejected).",
            ["tenant", "outcome"],
            registry=self.registry,
        )
        self.thumbs_down = Counter(
            "ct_llm_thumbs_down_events",
            "Accepted thumbs-down events, by the model version that produced the answer.",
            ["model_version"],
            registry=self.registry,
        )
        self.thumbs_up = Counter(
            "ct_llm_thumbs_up_events",
            "Accepted thumbs-up events, by model version. Thumbs-down rate of a version: "
            "down / (down + up).",
            ["model_version"],
            registry=self.registry,
        )
        self.feedback_rejected = Counter(
            "ct_llm_feedback_rejected_events",
            "Rejected feedback events, by tenant and reason (invalid, conflict, unknown_response).",
            ["tenant", "reason"],
            registry=self.registry,
        )
        self.feedback_latency = Histogram(
            "ct_llm_feedback_request_seconds",
            "Time from a feedback request's arrival to its answer (after the durable commit).",
            buckets=FEEDBACK_BUCKETS,
            registry=self.registry,
        )
        self.chat_requests = Counter(
            "ct_llm_chat_requests",
            "Chat completions proxied, by model version and outcome (ok, upstream_error, "
            "unreachable).",
            ["model_version", "outcome"],
            registry=self.registry,
        )
        self.chat_latency = Histogram(
            "ct_llm_chat_latency_seconds",
            "Latency of successful chat completions (to the last token when streaming).",
            ["model_version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def record_feedback(self, tenant: str, result: IngestResult, latency_s: float) -> None:
        outcomes = (
            ("accepted", result.accepted),
            ("duplicate", result.duplicates),
            ("rejected", len(result.rejected)),
        )
        for outcome, n in outcomes:
            if n:
                self.feedback_events.labels(tenant, outcome).inc(n)
        for reason, n in result.rejected_by_reason.items():
            self.feedback_rejected.labels(tenant, reason).inc(n)
        for version, n in result.thumbs_down_by_version.items():
            self.thumbs_down.labels(version).inc(n)
        for version, n in result.thumbs_up_by_version.items():
            self.thumbs_up.labels(version).inc(n)
        self.feedback_latency.observe(latency_s)

    def record_chat(self, model_version: str, outcome: str, latency_s: float | None) -> None:
        self.chat_requests.labels(model_version, outcome).inc()
        if latency_s is not None:
            self.chat_latency.labels(model_version).observe(latency_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def watch_store(self, database_url: str) -> None:
        """Also expose what the store holds (feedback quality per version, cycles, triggers,
        canary state), read at scrape time: see monitor/store_metrics.py for the cost bound."""
        from ct_llm.monitor.store_metrics import StoreCollector

        self.registry.register(StoreCollector(database_url))
