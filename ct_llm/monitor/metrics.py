"""Prometheus metrics of one API app.

Each app owns its `CollectorRegistry`, so several apps in one process (tests, the demo) keep
separate counts instead of clashing on the global registry. Every series about a tenant has a
`tenant` label, which is what `render` scopes by (monitor/scope.py), and a `model_version` label
only ever holds a name the registry knows (monitor/known_versions.py), so the number of series
is bounded by keys and registry, not by what clients send.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from ct_llm.monitor.known_versions import KnownVersions
from ct_llm.monitor.scope import Families, scoped_families

if TYPE_CHECKING:
    from ct_llm.feedback.ingest import IngestResult

# Chat latency on CPU ranges from ~0.1 s (cached, short) to a minute (long answers), so the
# buckets reach further than the client library's web-request defaults.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# A feedback answer waits for one durable commit: milliseconds, unless the disk stalls.
FEEDBACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ApiMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, versions: KnownVersions) -> None:
        self.versions = versions
        """Turns model_version labels the registry does not know into `unknown`."""
        self.registry = CollectorRegistry()
        self.feedback_events = Counter(
            "ct_llm_feedback_events",
            "Feedback events received, by tenant and outcome (accepted, duplicate, rejected).",
            ["tenant", "outcome"],
            registry=self.registry,
        )
        self.thumbs_down = Counter(
            "ct_llm_thumbs_down_events",
            "Accepted thumbs-down events, by tenant and the model version that produced the "
            "answer.",
            ["tenant", "model_version"],
            registry=self.registry,
        )
        self.thumbs_up = Counter(
            "ct_llm_thumbs_up_events",
            "Accepted thumbs-up events, by tenant and model version. Thumbs-down rate of a "
            "version: down / (down + up).",
            ["tenant", "model_version"],
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
            "Time from a feedback request's arrival to its answer (after the durable commit), by "
            "tenant.",
            ["tenant"],
            buckets=FEEDBACK_BUCKETS,
            registry=self.registry,
        )
        self.chat_requests = Counter(
            "ct_llm_chat_requests",
            "Chat completions proxied, by tenant, model version and outcome (ok, "
            "upstream_error, unreachable).",
            ["tenant", "model_version", "outcome"],
            registry=self.registry,
        )
        self.chat_latency = Histogram(
            "ct_llm_chat_latency_seconds",
            "Latency of successful chat completions (to the last token when streaming), by "
            "tenant and model version.",
            ["tenant", "model_version"],
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
        for counter, by_version in (
            (self.thumbs_down, result.thumbs_down_by_version),
            (self.thumbs_up, result.thumbs_up_by_version),
        ):
            for version, n in by_version.items():
                counter.labels(tenant, self.versions.label(tenant, version)).inc(n)
        self.feedback_latency.labels(tenant).observe(latency_s)

    def record_chat(
        self, tenant: str, model_version: str, outcome: str, latency_s: float | None
    ) -> None:
        version = self.versions.label(tenant, model_version)
        self.chat_requests.labels(tenant, version, outcome).inc()
        if latency_s is not None:
            self.chat_latency.labels(tenant, version).observe(latency_s)

    def render(self, tenant: str | None) -> bytes:
        """The exposition text of `tenant`'s series (None: every tenant's, for operators)."""
        return generate_latest(Families(scoped_families(self.registry.collect(), tenant)))

    def watch_store(self, database_url: str) -> None:
        """Also expose what the store holds (feedback quality per version, cycles, triggers,
        canary state), read at scrape time: see monitor/store_metrics.py for the cost bound."""
        from ct_llm.monitor.store_metrics import StoreCollector

        self.registry.register(StoreCollector(database_url, base_model=self.versions.base_model))
