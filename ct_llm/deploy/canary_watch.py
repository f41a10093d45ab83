"""The I/O side of canary analysis: read both arms' votes since the canary was deployed, decide
with the pure deploy/canary.py, record the decision in the lineage log, and with `apply` act on
it through deploy/rollout.py (which loads, verifies and moves the aliases).

Both arms are read over the same window, from the moment the canary alias was set: production
votes from before it come from another period (other users, other questions) and would bias the
comparison. The window is on `received_at`, the server's clock, not the client's `created_at`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ct_llm.deploy import rollout
from ct_llm.deploy.canary import ArmFeedback, decide_canary
from ct_llm.errors import RegistryError
from ct_llm.feedback.vote_query import vote_counts
from ct_llm.registry import registry
from ct_llm.registry.registry import CANARY, PRODUCTION
from ct_llm.store.db import session_scope
from ct_llm.store.models import Alias, utcnow
from ct_llm.workspace import Workspace


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything ct-llm stores is UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def canary_stats(
    session: Session, tenant: str, canary_version: str, production_version: str, since: datetime
) -> tuple[ArmFeedback, ArmFeedback]:
    """(canary, production) votes received since `since`, as feedback/votes.py defines a vote
    that may decide a rollout. `production_version` is the production adapter, or the base
    model's name when users get the base model."""
    arms = vote_counts(session, tenant, [canary_version, production_version], _utc(since))
    return arms[canary_version], arms[production_version]


def check_canary(
    ws: Workspace,
    tenant: str,
    *,
    apply: bool,
    actor: str = "canary-watch",
    server_url: str | Sequence[str] | None = None,
    record_wait: bool = True,
) -> dict[str, Any]:
    """Decide promote | rollback | wait for the tenant's canary and record it (lineage action
    `canary_check`). With `apply`, a promote or rollback is carried out at once on the given
    vLLM replica(s) (None: the workspace's). `record_wait=False` leaves "wait" unrecorded (the
    gateway's periodic watcher: one row a minute per canary says nothing)."""
    policy = ws.config.deploy.canary
    with session_scope(ws.database_url) as session:
        alias = registry.get_alias(session, tenant, CANARY)
        if alias is None:
            raise RegistryError(
                f"tenant '{tenant}' has no canary to check; deploy one with "
                "`ct-llm deploy --version V`"
            )
        canary = alias.model_version
        prod_alias = registry.get_alias(session, tenant, PRODUCTION)
        production = prod_alias.model_version if prod_alias else ws.config.base_model
        since = _utc(alias.updated_at)
        canary_arm, production_arm = canary_stats(session, tenant, canary, production, since)
        elapsed_h = round((utcnow() - since).total_seconds() / 3600, 3)
        decision = decide_canary(canary_arm, production_arm, policy, elapsed_h=elapsed_h)
        will_apply = apply and decision.action != "wait"
        details = {
            "production": production,
            "since": since.isoformat(),
            "applied": will_apply,
            "policy": policy.model_dump(),
            **decision.to_dict(),
        }
        if record_wait or decision.action != "wait":
            registry.record(
                session, tenant, canary, "canary_check", decision.action, actor, details
            )
    result: dict[str, Any] = {
        "tenant": tenant,
        "canary": canary,
        "production": production,
        "since": since.isoformat(),
        **decision.to_dict(),
        "applied": None,
    }
    if will_apply:
        result["applied"] = _apply(ws, tenant, canary, decision.action, actor, server_url)
    return result


def _apply(
    ws: Workspace,
    tenant: str,
    canary: str,
    action: str,
    actor: str,
    server_url: str | Sequence[str] | None,
) -> dict[str, Any]:
    if action == "promote":
        # Naming the version makes rollout refuse if another canary took its place meanwhile.
        return rollout.promote(ws, tenant, version_id=canary, actor=actor, server_url=server_url)
    # rollback() removes whatever the canary is now, so check it is still the one judged.
    with session_scope(ws.database_url) as session:
        alias = registry.get_alias(session, tenant, CANARY)
        if alias is None or alias.model_version != canary:
            raise RegistryError(
                f"the canary of tenant '{tenant}' changed while {canary} was being checked; "
                "run `ct-llm canary` again"
            )
    return rollout.rollback(ws, tenant, actor=actor, server_url=server_url)


def tenants_with_canary(ws: Workspace) -> list[str]:
    with session_scope(ws.database_url) as session:
        rows = session.scalars(select(Alias.tenant).where(Alias.name == CANARY))
        return sorted(set(rows))
