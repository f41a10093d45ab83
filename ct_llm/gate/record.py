"""`ct-llm gate`: apply the promotion policy to a candidate's latest eval report and record the
decision (approved / rejected, with a reason per rule) in the registry."""

from __future__ import annotations

from typing import Any

from ct_llm.errors import RegistryError
from ct_llm.evals.candidate import latest_report
from ct_llm.gate.policy import GatePolicy, decide_promotion
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.workspace import Workspace


def gate_candidate(
    ws: Workspace, tenant: str, version_id: str, actor: str = "cli"
) -> dict[str, Any]:
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
        decision = decide_promotion(report.summary, GatePolicy.from_config(ws.config.gate))
        outcome = "approved" if decision.approved else "rejected"
        registry.set_state(session, tenant, version_id, outcome)
        details = {"report": report.id, **decision.to_dict(), "policy": ws.config.gate.model_dump()}
        registry.record(session, tenant, version_id, "gate", outcome, actor, details)
    return {"version": version_id, "decision": outcome, "report": report.id, **decision.to_dict()}
