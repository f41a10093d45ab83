"""`ct-llm gate`: apply the promotion policy to a candidate's latest eval report and record the
decision (approved / rejected, with a reason per rule and the policy used) in the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ct_llm.errors import ConfigError, RegistryError
from ct_llm.evals.candidate import latest_report
from ct_llm.gate.policy import GatePolicy, decide_promotion
from ct_llm.gate.scores import scores_from_summary
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.workspace import Workspace


def load_policy(path: Path | str) -> GatePolicy:
    """A policy file: the keys of the `gate:` section of ct-llm.yaml, validated strictly."""
    from ct_llm.config import format_validation_error, resolve_resource

    resolved = resolve_resource(str(path))
    try:
        data = yaml.safe_load(resolved.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"gate policy {path} does not exist") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"gate policy {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"gate policy {path} must be a mapping of rule settings")
    try:
        return GatePolicy.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(f"gate policy {path}", e)) from None


def gate_candidate(
    ws: Workspace,
    tenant: str,
    version_id: str,
    actor: str = "cli",
    policy: GatePolicy | None = None,
    policy_source: str | None = None,
) -> dict[str, Any]:
    policy = policy or ws.config.gate
    with session_scope(ws.database_url) as session:
        mv = registry.get_version(session, tenant, version_id)
        if mv.state not in ("candidate", "approved", "rejected"):
            raise RegistryError(
                f"{version_id} is '{mv.state}'; only candidates go through the gate"
            )
        report = latest_report(session, tenant, version_id)
        if report is None:
            raise RegistryError(
                f"{version_id} has no eval report; run `ct-llm eval --candidate {version_id}` first"
            )
        candidate, production = scores_from_summary(report.summary)
        decision = decide_promotion(
            candidate, production, policy, serving_max_rank=ws.config.serving.max_lora_rank
        )
        outcome = "approved" if decision.approved else "rejected"
        failed = "; ".join(r.rule for r in decision.failed)
        reason = "every rule passed" if decision.approved else f"failed: {failed}"
        registry.set_state(session, tenant, version_id, outcome, actor=actor, reason=reason)
        details = {
            "report": report.id,
            **decision.to_dict(),
            "policy": policy.model_dump(),
            "policy_source": policy_source or "workspace gate: section",
        }
        registry.record(session, tenant, version_id, "gate", outcome, actor, details)
    return {"version": version_id, "decision": outcome, "report": report.id, **decision.to_dict()}
