"""Model versions, aliases and the append-only lineage log, over a SQLAlchemy session.

States: candidate -> approved | rejected; approved -> canary -> production -> retired.
Aliases per tenant: `production` (what users get) and `canary` (a share of conversations).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ct_llm.errors import RegistryError
from ct_llm.registry.routing import Route, choose_route
from ct_llm.store.models import Alias, LineageEvent, ModelVersion, utcnow

STATES = ("candidate", "approved", "rejected", "canary", "production", "retired")
PRODUCTION, CANARY = "production", "canary"
FILES_KEY = "files_sha256"  # in ModelVersion.info: the adapter's file hashes at registration


def adapter_version_id(tenant: str, adapter_name: str, number: int) -> str:
    return f"{tenant}-{adapter_name}-v{number}"


def next_adapter_version(session: Session, tenant: str, adapter_name: str) -> tuple[str, int]:
    """The next immutable version name; numbers are never reused, even for rejected versions."""
    last = session.scalar(
        select(func.max(ModelVersion.number)).where(
            ModelVersion.tenant == tenant, ModelVersion.kind == "adapter"
        )
    )
    number = (last or 0) + 1
    return adapter_version_id(tenant, adapter_name, number), number


def register_adapter(
    session: Session,
    tenant: str,
    version_id: str,
    number: int,
    path: str,
    dataset_version: str | None,
    parent_version: str | None,
    info: dict[str, Any],
    files_sha256: dict[str, str] | None = None,
) -> ModelVersion:
    """Register a trained adapter as a candidate. `files_sha256` (its manifest's `files`) is
    kept in the row: every later load checks the folder against this copy too, so rewriting the
    manifest along with the weights does not pass (`pinned_files`)."""
    if files_sha256 is not None:
        info = {**info, FILES_KEY: dict(files_sha256)}
    mv = ModelVersion(
        id=version_id,
        tenant=tenant,
        kind="adapter",
        number=number,
        path=path,
        state="candidate",
        dataset_version=dataset_version,
        parent_version=parent_version,
        info=info,
    )
    session.add(mv)
    session.flush()
    return mv


def pinned_files(mv: ModelVersion) -> dict[str, str] | None:
    """The sha256 of the adapter's files as registered (None: registered without them, then
    its manifest alone is checked)."""
    files = (mv.info or {}).get(FILES_KEY)
    return dict(files) if isinstance(files, dict) else None


def get_version(session: Session, tenant: str, version_id: str) -> ModelVersion:
    mv = session.get(ModelVersion, version_id)
    if mv is None or mv.tenant != tenant:
        raise RegistryError(f"no model version '{version_id}' for tenant '{tenant}'")
    return mv


def list_versions(session: Session, tenant: str) -> list[ModelVersion]:
    return list(
        session.scalars(
            select(ModelVersion).where(ModelVersion.tenant == tenant).order_by(ModelVersion.number)
        )
    )


def known_versions(session: Session) -> dict[str, frozenset[str]]:
    """Every tenant's version names the registry knows: its model versions and whatever its
    aliases name. Monitoring labels series only with these (monitor/known_versions.py)."""
    known: dict[str, set[str]] = {}
    rows = session.execute(select(ModelVersion.tenant, ModelVersion.id)).all()
    rows += session.execute(select(Alias.tenant, Alias.model_version)).all()
    for tenant, version in rows:
        known.setdefault(tenant, set()).add(version)
    return {tenant: frozenset(versions) for tenant, versions in known.items()}


def latest_version(session: Session, tenant: str, state: str | None = None) -> ModelVersion | None:
    q = select(ModelVersion).where(ModelVersion.tenant == tenant)
    if state:
        q = q.where(ModelVersion.state == state)
    return session.scalars(q.order_by(ModelVersion.number.desc()).limit(1)).first()


# Which state a version may move to from each state. Re-gating a candidate's verdict is allowed
# (approved <-> rejected before deployment); a rolled-back version is rejected; the production
# version a promotion replaced is retired, and a rollback may restore it.
TRANSITIONS: dict[str, frozenset[str]] = {
    "candidate": frozenset({"approved", "rejected"}),
    "approved": frozenset({"rejected", "canary", "production"}),
    "rejected": frozenset({"approved"}),
    "canary": frozenset({"production", "rejected"}),
    "production": frozenset({"retired", "rejected"}),
    "retired": frozenset({"production"}),
}


def check_transition(current: str, state: str) -> None:
    """Raise RegistryError unless a version in `current` may move to `state` (pure)."""
    if state not in STATES:
        raise ValueError(f"unknown state {state}")
    if state != current and state not in TRANSITIONS.get(current, frozenset()):
        allowed = ", ".join(sorted(TRANSITIONS.get(current, ()))) or "nothing"
        raise RegistryError(f"a '{current}' version cannot become '{state}' (allowed: {allowed})")


def set_state(
    session: Session,
    tenant: str,
    version_id: str,
    state: str,
    *,
    actor: str = "system",
    reason: str = "",
) -> None:
    """Move a version to `state` if the transition is allowed, and record it (time, actor,
    reason) in the lineage log: the registry's history is the list of these events."""
    mv = get_version(session, tenant, version_id)
    check_transition(mv.state, state)
    if mv.state == state:
        return
    previous, mv.state = mv.state, state
    record(
        session,
        tenant,
        version_id,
        "transition",
        state,
        actor,
        {"from": previous, "to": state, "reason": reason},
    )


def get_alias(session: Session, tenant: str, name: str) -> Alias | None:
    return session.get(Alias, (tenant, name))


def set_alias(
    session: Session, tenant: str, name: str, version_id: str, weight: float = 1.0
) -> None:
    alias = session.get(Alias, (tenant, name))
    if alias is None:
        session.add(Alias(tenant=tenant, name=name, model_version=version_id, weight=weight))
    else:
        alias.model_version, alias.weight, alias.updated_at = version_id, weight, utcnow()
    session.flush()


def clear_alias(session: Session, tenant: str, name: str) -> None:
    alias = session.get(Alias, (tenant, name))
    if alias is not None:
        session.delete(alias)
        session.flush()


def record(
    session: Session,
    tenant: str,
    model_version: str | None,
    action: str,
    outcome: str,
    actor: str,
    details: dict[str, Any] | None = None,
) -> LineageEvent:
    ev = LineageEvent(
        tenant=tenant,
        model_version=model_version,
        action=action,
        outcome=outcome,
        actor=actor,
        details=details or {},
    )
    session.add(ev)
    session.flush()
    return ev


def history(session: Session, tenant: str, model_version: str | None = None) -> list[LineageEvent]:
    q = select(LineageEvent).where(LineageEvent.tenant == tenant)
    if model_version is not None:
        q = q.where(LineageEvent.model_version == model_version)
    return list(session.scalars(q.order_by(LineageEvent.id)))


def resolve_route(session: Session, tenant: str, conversation_key: str, base_model: str) -> Route:
    prod = get_alias(session, tenant, PRODUCTION)
    canary = get_alias(session, tenant, CANARY)
    return choose_route(
        conversation_key,
        base_model,
        prod.model_version if prod else None,
        canary.model_version if canary else None,
        canary.weight if canary else 0.0,
    )
