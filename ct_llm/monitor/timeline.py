"""The registry's history as the status page shows it: which version users got from when
(promotions and rollbacks, marked on the quality charts) and every state transition. Pure:
lineage events as plain dicts in (`at`, `action`, `outcome`, `version`, `actor`, `details`),
plain data out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any


def _utc(at: str) -> datetime:
    """An ISO time in UTC; a naive one is UTC already (SQLite returns them so)."""
    moment = datetime.fromisoformat(at)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


@dataclass(frozen=True)
class VersionChange:
    """A moment from which users got another production version."""

    at: str
    """ISO time (UTC)."""
    action: str
    """`promote` or `rollback`."""
    version: str
    """The version promoted, or the one rolled back."""
    traffic_to: str | None
    """Who serves afterwards: the promoted version, the version restored, None: the base model
    (or, for a rolled-back canary, production as before)."""
    actor: str

    @property
    def day(self) -> str:
        return _utc(self.at).date().isoformat()

    @property
    def day_fraction(self) -> float:
        """How far into its UTC day the change happened, 0..1: where its mark sits in the day."""
        t = _utc(self.at)
        return (t.hour * 3600 + t.minute * 60 + t.second) / 86400

    @property
    def when(self) -> str:
        """The time for people: `YYYY-MM-DD HH:MM UTC`."""
        return _utc(self.at).strftime("%Y-%m-%d %H:%M UTC")

    @property
    def label(self) -> str:
        if self.action == "promote":
            return f"promoted {self.version}"
        return f"rolled back {self.version}"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VersionChange:
        return cls(d["at"], d["action"], d["version"], d.get("traffic_to"), d.get("actor", ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "action": self.action,
            "version": self.version,
            "traffic_to": self.traffic_to,
            "actor": self.actor,
            "label": self.label,
        }


def version_changes(events: list[dict[str, Any]]) -> list[VersionChange]:
    """Promotions and rollbacks that took effect, oldest first.

    A failed promote or rollback moved nothing and is left out. A rollback of production
    records two events (the restored version, then the rejected one); the rejected one stands
    for the rollback, so each rollback is marked once."""
    out = []
    for e in sorted(events, key=lambda e: _utc(e["at"])):
        details = e.get("details") if isinstance(e.get("details"), dict) else {}
        if e["action"] == "promote" and e["outcome"] == "production":
            out.append(VersionChange(e["at"], "promote", e["version"], e["version"], e["actor"]))
        elif e["action"] == "rollback" and e["outcome"] == "rejected":
            to = details.get("traffic_to")
            out.append(VersionChange(e["at"], "rollback", e["version"], to, e["actor"]))
    return out


def transition_rows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """State transitions (`transition` lineage events) as table rows, in the order given."""
    rows = []
    for e in events:
        if e["action"] != "transition":
            continue
        details = e.get("details") if isinstance(e.get("details"), dict) else {}
        rows.append(
            {
                "at": e["at"],
                "version": e["version"],
                "from": details.get("from"),
                "to": details.get("to", e["outcome"]),
                "actor": e["actor"],
                "reason": details.get("reason", ""),
            }
        )
    return rows
