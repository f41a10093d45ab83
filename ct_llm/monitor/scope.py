"""Which series of `GET /metrics` a key sees: a tenant's admin key its own tenant's, an operator
key every tenant's.

The filter runs on what the collectors produced, at render time, so it also holds for series
added later: a sample is shown to a tenant only if its `tenant` label names that tenant. A sample
without the label is therefore shown to operators only, never leaked to every tenant, unless its
family is in `SHARED`: the freshness of the store read, which says nothing about any tenant.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from prometheus_client.core import Metric

SHARED = frozenset({"ct_llm_store_up", "ct_llm_store_snapshot_age_seconds"})


def scoped_families(families: Iterable[Metric], tenant: str | None) -> list[Metric]:
    """`families` as `tenant` may see them (None: everything). A family keeps its name and help
    even when none of its samples remain, so every tenant sees the same set of names."""
    if tenant is None:
        return list(families)
    scoped = []
    for family in families:
        shared = family.name in SHARED
        kept = copy.copy(family)  # shallow: the samples list is replaced, never edited
        kept.samples = [
            s
            for s in family.samples
            if s.labels.get("tenant") == tenant or (shared and "tenant" not in s.labels)
        ]
        scoped.append(kept)
    return scoped


class Families:
    """Collected families in the shape `generate_latest` renders (anything with `collect`)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families
