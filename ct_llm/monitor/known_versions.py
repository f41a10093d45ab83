"""Which `model_version` label values the metrics use: a version the registry knows for the
tenant (its model versions and alias targets) or the base model's name (what the gateway records
for chats the base model answers); any other name becomes `unknown`.

A feedback event without a response_id may name any model_version it likes. As a label each
name would be a new series for the life of the process (20,000 invented names made /metrics
11.6 MB), so the series are bounded by the registry instead of by what clients send.

`version_label` is the rule (pure). `KnownVersions` caches the registry's names for the API's
own counters: the names only grow (versions are never deleted), so the cache is re-read only
when a name is missing from it, at most once per `min_interval_s` (monitor/cached_read.py).
A stream of invented names thus costs one small read per interval; a version registered since
the last read is labelled under its own name from the first event or chat after the re-read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from ct_llm.monitor.cached_read import CachedRead
from ct_llm.monitor.quality import UNKNOWN_VERSION
from ct_llm.registry.registry import known_versions
from ct_llm.store.db import session_scope

MIN_INTERVAL_S = 5.0
MAX_BUSY = 0.05


def version_label(
    known: Mapping[str, frozenset[str]], base_model: str, tenant: str, version: str | None
) -> str:
    """`version` if the registry knows it for `tenant` (or it is the base model), else
    `unknown`."""
    if version and (version == base_model or version in known.get(tenant, ())):
        return version
    return UNKNOWN_VERSION


class KnownVersions:
    """The registry's version names, cached. `label` never reads; a caller that finds
    `needs_read` true calls `read` off the event loop first (it blocks on the database)."""

    def __init__(
        self,
        read: Callable[[], Mapping[str, frozenset[str]]],
        base_model: str,
        *,
        min_interval_s: float = MIN_INTERVAL_S,
        max_busy: float = MAX_BUSY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_model = base_model
        self._cache = CachedRead(
            read,
            what="the registry's versions",
            min_interval_s=min_interval_s,
            max_busy=max_busy,
            clock=clock,
        )

    @classmethod
    def of_store(cls, database_url: str, base_model: str) -> KnownVersions:
        def read() -> Mapping[str, frozenset[str]]:
            with session_scope(database_url) as session:
                return known_versions(session)

        return cls(read, base_model)

    def label(self, tenant: str, version: str | None) -> str:
        return version_label(self._cache.value or {}, self.base_model, tenant, version)

    def needs_read(self, tenant: str, versions: Iterable[str | None]) -> bool:
        """Whether some of `versions` would be `unknown` and a re-read is allowed now."""
        missing = any(
            self.label(tenant, v) == UNKNOWN_VERSION for v in versions if v != UNKNOWN_VERSION
        )
        return missing and self._cache.due()

    def read(self) -> None:
        self._cache.get()
