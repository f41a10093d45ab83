"""The two rules that bound and scope /metrics, without HTTP or a database: which samples a key
sees (monitor/scope.py) and which model_version names become labels (monitor/known_versions.py).
tests/security/test_metrics_scope.py checks both through the API."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ct_llm.monitor.known_versions import KnownVersions, version_label
from ct_llm.monitor.scope import scoped_families


def families() -> list:  # type: ignore[type-arg]
    events = CounterMetricFamily("ct_llm_feedback_events", "h", labels=["tenant", "outcome"])
    events.add_metric(["acme", "accepted"], 3)
    events.add_metric(["globex", "accepted"], 5)
    up = GaugeMetricFamily("ct_llm_store_up", "h", value=1)
    stray = GaugeMetricFamily("ct_llm_stray", "a series someone forgot to label", value=7)
    return [events, up, stray]


def sample_keys(fams: list) -> set[tuple[str, tuple[tuple[str, str], ...]]]:  # type: ignore[type-arg]
    return {(s.name, tuple(sorted(s.labels.items()))) for f in fams for s in f.samples}


def test_a_tenant_sees_its_own_samples_and_shared_health_only() -> None:
    acme = sample_keys(scoped_families(families(), "acme"))
    assert acme == {
        ("ct_llm_feedback_events_total", (("outcome", "accepted"), ("tenant", "acme"))),
        ("ct_llm_store_up", ()),
    }
    # A sample without a tenant label goes to operators only; the family's name stays.
    assert [f.name for f in scoped_families(families(), "acme")] == [
        "ct_llm_feedback_events",
        "ct_llm_store_up",
        "ct_llm_stray",
    ]
    everything = sample_keys(scoped_families(families(), None))
    assert len(everything) == 4 and ("ct_llm_stray", ()) in everything
    original = families()
    scoped_families(original, "acme")
    assert len(original[0].samples) == 2  # the collected families are not edited


def test_version_label_keeps_only_the_tenants_registry_names_and_the_base_model() -> None:
    known = {"acme": frozenset({"acme-a-v1"}), "globex": frozenset({"globex-a-v1"})}
    assert version_label(known, "base", "acme", "acme-a-v1") == "acme-a-v1"
    assert version_label(known, "base", "acme", "base") == "base"
    assert version_label(known, "base", "acme", "globex-a-v1") == "unknown"
    assert version_label(known, "base", "acme", "invented") == "unknown"
    assert version_label(known, "base", "acme", None) == "unknown"
    assert version_label(known, "base", "initech", "base") == "base"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_known_versions_read_again_only_for_a_missing_name_and_at_most_once_per_interval() -> None:
    clock, reads = Clock(), []
    registry = {"acme": frozenset({"acme-a-v1"})}

    def read() -> dict[str, frozenset[str]]:
        reads.append(clock.now)
        return dict(registry)

    known = KnownVersions(read, "base", min_interval_s=5, clock=clock)
    assert known.label("acme", "acme-a-v1") == "unknown"  # label never reads
    assert known.needs_read("acme", ["acme-a-v1"])
    known.read()
    assert known.label("acme", "acme-a-v1") == "acme-a-v1" and reads == [100.0]
    # Known names, the base model and unknown itself never ask for a read.
    assert not known.needs_read("acme", ["acme-a-v1", "base", "unknown"])
    # An invented name asks only once the interval has passed.
    clock.now += 4
    assert not known.needs_read("acme", ["invented-1"])
    clock.now += 1
    assert known.needs_read("acme", ["invented-1"])
    registry["acme"] = frozenset({"acme-a-v1", "acme-a-v2"})  # registered meanwhile
    known.read()
    assert known.label("acme", "acme-a-v2") == "acme-a-v2" and len(reads) == 2
    known.read()  # not due: no read
    assert len(reads) == 2
