"""Anti-poisoning guards: who may shape a dataset version, and by how much. Pure functions.

Published attacks steer a model with 0.5-5% poisoned preference data, so no single user may
make more than a small share of a version (`max_user_share`, 2% by default), and users whose
volume or voting is abnormal are quarantined (all their events left out, listed in the manifest)
before any rule runs. Reviewers are exempt: the events a `reviewer` key sent (support agents,
annotators). Trust is a property of the key that sent an event, never of a user id a body names.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class UserActivity:
    """One user's events in the window, as the quarantine reads them."""

    events: int
    thumbs: int = 0
    thumbs_down: int = 0


REVIEWER = "reviewer:"
"""Curation's name for a reviewer: `reviewer:<user_id or key prefix>`. No body can claim it."""


def curation_user(user_id: str | None, trusted: bool, key_prefix: str | None) -> str | None:
    """Who an event counts for in the cap and the quarantine. A reviewer key's event is its
    reviewer's; any other event's user id is a claim, renamed if it looks like a reviewer's so
    that no claim can pass for one."""
    if trusted:
        return REVIEWER + (user_id or key_prefix or "unnamed")
    if user_id is not None and user_id.startswith(REVIEWER):
        return "user:" + user_id
    return user_id


def is_reviewer(user: str | None) -> bool:
    return user is not None and user.startswith(REVIEWER)


def find_bursts(
    activity: Mapping[str, UserActivity],
    *,
    volume_factor: float,
    min_events: int,
    vote_z: float,
    min_votes: int,
) -> dict[str, str]:
    """user -> why it is quarantined.

    - volume: more events than `volume_factor` x the median user's, and at least `min_events`;
    - vote pattern: at least `min_votes` thumbs whose down-rate lies more than `vote_z` standard
      errors from the rate of all other users (a one-user campaign up- or down-voting
      everything). A binomial z-test against the rest of the population, so a normal user with
      a strong opinion on a few answers is not caught.
    """
    if not activity:
        return {}
    median = statistics.median(a.events for a in activity.values())
    total_thumbs = sum(a.thumbs for a in activity.values())
    total_down = sum(a.thumbs_down for a in activity.values())
    out: dict[str, str] = {}
    for user, a in sorted(activity.items()):
        if is_reviewer(user):
            continue
        if a.events >= min_events and a.events > volume_factor * median:
            out[user] = f"volume: {a.events} events, {a.events / median:.0f}x the median user"
            continue
        rest = total_thumbs - a.thumbs
        if a.thumbs < min_votes or rest <= 0:
            continue
        p = (total_down - a.thumbs_down) / rest
        # A floor on the variance: with everyone else unanimous (p = 0 or 1) one dissenting
        # vote would otherwise be infinitely surprising.
        se = math.sqrt(max(p * (1 - p), 0.01) / a.thumbs)
        z = (a.thumbs_down / a.thumbs - p) / se
        if abs(z) > vote_z:
            out[user] = (
                f"vote pattern: {a.thumbs_down}/{a.thumbs} thumbs down vs {p:.0%} for everyone"
                f" else (z={z:.1f})"
            )
    return out


def user_cap(rows_per_user: Mapping[str, int], exempt_rows: int, share: float, floor: int) -> int:
    """The most rows any one (non-exempt) user may keep so that, after capping everyone, no user
    holds more than `share` of the version's rows; never below `floor`.

    Capping shrinks the version, which tightens the cap, so this solves for the largest c with
    min(max_u n_u, c) <= share * (exempt_rows + sum_u min(n_u, c)) by bisection. It is valid
    because right minus left starts >= 0 at c = 0 and changes by share * #{u: n_u > c} - 1 per
    step, a non-increasing amount: once it falls it keeps falling, so the feasible c form an
    interval starting at 0.
    """
    counts = list(rows_per_user.values())
    if not counts:
        return floor
    top = max(counts)

    def feasible(c: int) -> bool:
        return min(top, c) <= share * (exempt_rows + sum(min(n, c) for n in counts))

    lo, hi = 0, top  # feasible(0) always holds
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if feasible(mid):
            lo = mid
        else:
            hi = mid - 1
    return max(lo, floor)
