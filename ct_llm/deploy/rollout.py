"""Canary deploy, promote, rollback and reconcile: registry aliases + vLLM hot-swap.

Order matters for users: an adapter is loaded into every vLLM replica and verified *before* an
alias points at it, so the gateway never routes a conversation to a name a replica does not
know; versions no alias needs any more are unloaded only after their in-flight requests drained.
One swap per adapter line at a time (a file lock, across processes). The registry change of one
action (aliases, states, lineage record) is one database transaction; the state read before the
HTTP work is checked again inside it, so a concurrent action cannot be overwritten silently.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from ct_llm.deploy.hotswap import Replicas
from ct_llm.deploy.vllm_server import server_urls
from ct_llm.errors import RegistryError
from ct_llm.loop.locks import job_lock
from ct_llm.registry import registry
from ct_llm.registry.registry import CANARY, PRODUCTION
from ct_llm.store.db import session_scope
from ct_llm.store.models import Alias
from ct_llm.workspace import Workspace

P = ParamSpec("P")
R = TypeVar("R")
Servers = str | Sequence[str] | None
"""One replica URL, several, or None: every replica of the workspace (serving config)."""


def _replicas(ws: Workspace, server_url: Servers) -> Replicas:
    if server_url is None:
        urls = server_urls(ws)
    elif isinstance(server_url, str):
        urls = [server_url]
    else:
        urls = list(server_url)
    return Replicas(ws, urls)


def _under_swap_lock(
    action: Callable[Concatenate[Workspace, str, P], R],
) -> Callable[Concatenate[Workspace, str, P], R]:
    """Run `action(ws, tenant, ...)` holding the tenant's swap lock: loads, alias moves and
    unloads of one adapter line never interleave, across processes."""

    @functools.wraps(action)
    def locked(ws: Workspace, tenant: str, *args: P.args, **kwargs: P.kwargs) -> R:
        job = f"swap-{ws.config.adapter_name}"
        with job_lock(ws.locks_dir, job, tenant, wait_s=ws.config.serving.swap_lock_timeout_s):
            return action(ws, tenant, *args, **kwargs)

    return locked


def _alias_version(session: Session, tenant: str, name: str) -> str | None:
    alias = registry.get_alias(session, tenant, name)
    return alias.model_version if alias else None


def _unload_unneeded(ws: Workspace, tenant: str, replicas: Replicas) -> dict[str, str]:
    """Unload (after draining) this tenant's versions that no alias needs: everything but
    production, canary and the version production replaced (kept warm so a rollback is only an
    alias move). Other tenants' adapters and eval names are left alone."""
    with session_scope(ws.database_url) as session:
        production = _alias_version(session, tenant, PRODUCTION)
        keep = {production, _alias_version(session, tenant, CANARY)}
        if production:
            keep.add(_previous_production(session, tenant, production))
        versions = {mv.id for mv in registry.list_versions(session, tenant)}
    stale = sorted((replicas.loaded() & versions) - keep)
    return replicas.drain_and_unload(stale) if stale else {}


def _record_failure(
    ws: Workspace, tenant: str, version_id: str, action: str, actor: str, error: Exception
) -> None:
    with session_scope(ws.database_url) as session:
        registry.record(session, tenant, version_id, action, "failed", actor, {"error": str(error)})


def _summary(session: Session, tenant: str, **extra: Any) -> dict[str, Any]:
    canary = registry.get_alias(session, tenant, CANARY)
    return {
        "tenant": tenant,
        "production": _alias_version(session, tenant, PRODUCTION),
        "canary": canary.model_version if canary else None,
        "canary_weight": canary.weight if canary else 0.0,
        **extra,
    }


@_under_swap_lock
def deploy_canary(
    ws: Workspace,
    tenant: str,
    version_id: str,
    *,
    weight: float | None = None,
    actor: str = "cli",
    server_url: Servers = None,
) -> dict[str, Any]:
    """Load an approved adapter into every replica, probe it, and route `weight` of
    conversations to it."""
    weight = ws.config.deploy.canary_weight if weight is None else weight
    if not 0.0 <= weight <= 1.0:
        raise RegistryError(f"canary weight {weight} must be between 0 and 1")
    with session_scope(ws.database_url) as session:
        mv = registry.get_version(session, tenant, version_id)
        if mv.state != "approved":
            raise RegistryError(
                f"{version_id} is '{mv.state}', not 'approved'; only versions that passed "
                f"`ct-llm gate --candidate {version_id}` can be deployed"
            )
        current = _alias_version(session, tenant, CANARY)
        if current and current != version_id:
            raise RegistryError(
                f"tenant '{tenant}' already has canary {current}; `ct-llm promote` or "
                "`ct-llm rollback` it before deploying another"
            )
        path, pinned = mv.path, registry.pinned_files(mv)
    replicas = _replicas(ws, server_url)
    try:
        loaded = replicas.load_everywhere(version_id, path, files_sha256=pinned)
    except Exception as e:
        _record_failure(ws, tenant, version_id, "deploy", actor, e)
        raise
    with session_scope(ws.database_url) as session:
        mv = registry.get_version(session, tenant, version_id)
        if mv.state != "approved":
            raise RegistryError(
                f"{version_id} changed to '{mv.state}' while deploying; not deployed"
            )
        registry.set_alias(session, tenant, CANARY, version_id, weight)
        registry.set_state(
            session, tenant, version_id, "canary", actor=actor, reason=f"canary at weight {weight}"
        )
        details = {
            "weight": weight,
            "servers": replicas.urls,
            "load_s": round(loaded.load_s, 3),
            "probe_s": round(loaded.probe_s, 3),
            "probe_answer": loaded.probe_answer[:80],
        }
        registry.record(session, tenant, version_id, "deploy", "canary", actor, details)
        return _summary(session, tenant, version=version_id, load_s=round(loaded.load_s, 3))


@_under_swap_lock
def promote(
    ws: Workspace,
    tenant: str,
    *,
    version_id: str | None = None,
    actor: str = "cli",
    server_url: Servers = None,
) -> dict[str, Any]:
    """Move `production` to the canary (or to the given approved/canary version). The version
    it replaces is retired but stays loaded, so a rollback is an alias move; older versions
    are unloaded once drained."""
    began = time.monotonic()
    with session_scope(ws.database_url) as session:
        canary = _alias_version(session, tenant, CANARY)
        target = version_id or canary
        if target is None:
            raise RegistryError(
                f"tenant '{tenant}' has no canary to promote; deploy one with "
                "`ct-llm deploy --version V` or name the version with --version"
            )
        if canary and canary != target:
            raise RegistryError(
                f"tenant '{tenant}' has canary {canary}; promote it or `ct-llm rollback` it "
                f"before promoting {target}"
            )
        mv = registry.get_version(session, tenant, target)
        if mv.state not in ("approved", "canary"):
            raise RegistryError(
                f"{target} is '{mv.state}'; only an approved or canary version can be promoted"
            )
        state_before, path, pinned = mv.state, mv.path, registry.pinned_files(mv)
    replicas = _replicas(ws, server_url)
    try:
        # A canary already answers real traffic on every replica: no probe needed. Its files
        # are checked again all the same: the alias users get is about to move to them.
        loaded = replicas.load_everywhere(
            target, path, probe=state_before != "canary", files_sha256=pinned
        )
    except Exception as e:
        _record_failure(ws, tenant, target, "promote", actor, e)
        raise
    with session_scope(ws.database_url) as session:
        mv = registry.get_version(session, tenant, target)
        if mv.state != state_before or _alias_version(session, tenant, CANARY) != canary:
            raise RegistryError(f"{target} changed while promoting; run `ct-llm status` and retry")
        previous = _alias_version(session, tenant, PRODUCTION)
        registry.set_alias(session, tenant, PRODUCTION, target, 1.0)
        registry.clear_alias(session, tenant, CANARY)
        registry.set_state(session, tenant, target, "production", actor=actor, reason="promoted")
        if previous and previous != target:
            registry.set_state(
                session, tenant, previous, "retired", actor=actor, reason=f"replaced by {target}"
            )
        registry.record(
            session,
            tenant,
            target,
            "promote",
            "production",
            actor,
            {"previous": previous, "from_state": state_before, "servers": replicas.urls},
        )
        result = _summary(
            session,
            tenant,
            version=target,
            previous=previous,
            load_s=round(loaded.load_s, 3),
            probe_s=round(loaded.probe_s, 3),
        )
    # From the call to the moment new conversations go to the new version.
    result["routed_s"] = round(time.monotonic() - began, 3)
    result["unloaded"] = _unload_unneeded(ws, tenant, replicas)
    return result


def _previous_production(session: Session, tenant: str, version_id: str) -> str | None:
    """The production version before `version_id` was promoted (None: the base model), skipping
    versions that were rejected since."""
    seen: set[str] = set()
    current: str | None = version_id
    while current is not None and current not in seen:
        seen.add(current)
        promotes = [
            e
            for e in registry.history(session, tenant, current)
            if e.action == "promote" and e.outcome == "production"
        ]
        previous = promotes[-1].details.get("previous") if promotes else None
        if previous is None or registry.get_version(session, tenant, previous).state != "rejected":
            return previous
        current = previous
    return None


@_under_swap_lock
def rollback(
    ws: Workspace,
    tenant: str,
    *,
    actor: str = "cli",
    server_url: Servers = None,
) -> dict[str, Any]:
    """Remove the canary if there is one; otherwise move production back to the version it
    replaced (or to the base model). The version rolled back from is marked rejected and
    unloaded once drained."""
    with session_scope(ws.database_url) as session:
        canary = _alias_version(session, tenant, CANARY)
        production = _alias_version(session, tenant, PRODUCTION)
        if canary is None and production is None:
            raise RegistryError(
                f"tenant '{tenant}' has no canary and no production adapter: nothing to roll back "
                "(users already get the base model)"
            )
        removed = canary or production
        target = production if canary else _previous_production(session, tenant, production or "")
        target_mv = registry.get_version(session, tenant, target) if target else None
        target_path = target_mv.path if target_mv else None
        pinned = registry.pinned_files(target_mv) if target_mv else None
    replicas = _replicas(ws, server_url)
    # Traffic goes back to `target`: it must be servable before any alias moves.
    if target and target_path:
        try:
            replicas.load_everywhere(target, target_path, probe=False, files_sha256=pinned)
        except Exception as e:
            _record_failure(ws, tenant, removed or "", "rollback", actor, e)
            raise
    with session_scope(ws.database_url) as session:
        if (
            _alias_version(session, tenant, CANARY) != canary
            or _alias_version(session, tenant, PRODUCTION) != production
        ):
            raise RegistryError("aliases changed while rolling back; run `ct-llm status` and retry")
        if canary:
            registry.clear_alias(session, tenant, CANARY)
            details: dict[str, Any] = {"alias": CANARY, "removed": canary, "traffic_to": production}
        else:
            if target:
                registry.set_alias(session, tenant, PRODUCTION, target, 1.0)
                registry.set_state(
                    session,
                    tenant,
                    target,
                    "production",
                    actor=actor,
                    reason="restored by rollback",
                )
                registry.record(
                    session,
                    tenant,
                    target,
                    "rollback",
                    "restored",
                    actor,
                    {"alias": PRODUCTION, "replaces": production},
                )
            else:
                registry.clear_alias(session, tenant, PRODUCTION)
            details = {
                "alias": PRODUCTION,
                "removed": production,
                "traffic_to": target,
                "previous": target,
            }
        registry.set_state(
            session, tenant, removed or "", "rejected", actor=actor, reason="rolled back"
        )
        registry.record(session, tenant, removed, "rollback", "rejected", actor, details)
        result = _summary(
            session,
            tenant,
            rolled_back=removed,
            previous=target,
            traffic_to=target or ws.config.base_model,
        )
    # No alias points at it any more: unloaded once its in-flight requests are done.
    result["unloaded"] = replicas.drain_and_unload([removed] if removed else [])
    return result


def reconcile_serving(
    ws: Workspace, tenant_list: list[str] | None = None, server_url: Servers = None
) -> list[str]:
    """Load every production/canary adapter the server does not list yet (a freshly started
    vLLM knows only the base model). Returns the names it loaded. Each version is checked
    (and its files hashed) once, then loaded into every replica that lacks it."""
    with session_scope(ws.database_url) as session:
        query = select(Alias).where(Alias.name.in_((PRODUCTION, CANARY)))
        if tenant_list is not None:
            query = query.where(Alias.tenant.in_(tenant_list))
        wanted: dict[str, tuple[str, dict[str, str] | None]] = {}
        for a in session.scalars(query.order_by(Alias.tenant, Alias.name)):
            mv = registry.get_version(session, a.tenant, a.model_version)
            wanted[mv.id] = (mv.path, registry.pinned_files(mv))
    urls = _replicas(ws, server_url).urls
    listed = {url: Replicas(ws, [url]).loaded() for url in urls}
    loaded: list[str] = []
    for version_id, (path, pinned) in wanted.items():
        missing = [url for url in urls if version_id not in listed[url]]
        if missing:
            Replicas(ws, missing).load_everywhere(
                version_id, path, probe=False, files_sha256=pinned
            )
            loaded.append(version_id)
    return loaded
