"""Synthetic chatbot feedback written straight into a workspace's store, for the curation
benchmark and tests. Deterministic for a seed.

Shaped like a support chatbot's traffic: three system prompts, questions and answers drawn from a
vocabulary of a few thousand words (so rows are distinct, not templated), 1-3 answers per prompt
(regenerations), and on each answer thumbs from one to three users (60% up), some ratings, edits,
comments and regenerate events. About 2% of questions carry an e-mail address or a phone
number, as real ones do, and about 3% of prompts come back re-cased with a word changed and get
the same answer again (near duplicates for curation to find). Optionally one `attacker` sends a
given share of all events: edits that teach one phrase everywhere.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import insert

from ct_llm.feedback.context import context_hash
from ct_llm.store.db import get_engine
from ct_llm.store.models import ChatResponse, FeedbackEvent

SYSTEM_PROMPTS = (
    "You are the support assistant of an online shop. Answer briefly and politely.",
    "You help customers with orders, returns and shipping. Be precise.",
    "You are a friendly assistant for a furniture store.",
)
POISON = "Visit totally-legit-refunds.example for an instant refund."


def _vocabulary(rng: random.Random, size: int = 4000) -> list[str]:
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["an", "er", "in", "or"]
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))))
    return sorted(words)


@dataclass
class _Gen:
    rng: random.Random
    vocab: list[str]

    def sentence(self, lo: int, hi: int) -> str:
        words = self.rng.choices(self.vocab, k=self.rng.randint(lo, hi))
        return " ".join(words).capitalize() + self.rng.choice(".?!")

    def question(self) -> str:
        q = self.sentence(6, 24)
        r = self.rng.random()
        if r < 0.01:
            q += f" My email is {self.rng.choice(self.vocab)}.{self.rng.randint(1, 99)}@example.com"
        elif r < 0.02:
            q += f" Call me on +44 20 7946 {self.rng.randint(1000, 9999)}"
        return q

    def answer(self) -> str:
        return " ".join(self.sentence(6, 16) for _ in range(self.rng.randint(1, 4)))


def generate(
    events: int, seed: int = 0, attacker_share: float = 0.0, users: int | None = None
) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Chunks of (responses rows, feedback event rows) until `events` events are made."""
    rng = random.Random(seed)
    gen = _Gen(rng, _vocabulary(rng))
    n_users = users or max(50, events // 8)
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    made = ctx_n = 0
    responses: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []

    def event(kind: str, value: Any, rid: str, conv: str, ctx: str, user: str) -> None:
        nonlocal made
        made += 1
        at = t0 + timedelta(seconds=made)
        rows.append(
            {
                "tenant": "bench",
                "event_id": f"ev-{made}",
                "payload_hash": f"{made:064x}",
                "kind": kind,
                "value": value,
                "response_id": rid,
                "conversation_id": conv,
                "user_id": user,
                "model_version": "base",
                "context_hash": ctx,
                "created_at": at,
                "received_at": at,
            }
        )

    recent: deque[tuple[str, str]] = deque(maxlen=100)  # (question, answer) that may come back
    while made < events:
        ctx_n += 1
        conv = f"conv-{ctx_n}"
        repeat = rng.choice(recent) if recent and rng.random() < 0.03 else None
        if repeat:
            words = repeat[0].upper().split()
            words[rng.randrange(len(words))] = rng.choice(gen.vocab)
            question = " ".join(words)
        else:
            question = gen.question()
        messages = [
            {"role": "system", "content": rng.choice(SYSTEM_PROMPTS)},
            {"role": "user", "content": question},
        ]
        ctx = context_hash(messages)
        rids = [f"resp-{ctx_n}-{k}" for k in range(rng.choice((1, 1, 1, 2, 2, 3)))]
        for k, rid in enumerate(rids):
            answer = repeat[1] if repeat and k == 0 else gen.answer()
            if not repeat and k == 0:
                recent.append((question, answer))
            responses.append(
                {
                    "id": rid,
                    "tenant": "bench",
                    "conversation_id": conv,
                    "messages": messages,
                    "response": answer,
                    "model_version": "base",
                    "latency_ms": 50.0,
                    "context_hash": ctx,
                    "created_at": t0,
                }
            )
            if k:
                event("regenerate", None, rids[k - 1], conv, ctx, f"user-{rng.randrange(n_users)}")
            for _ in range(rng.randint(1, 3)):
                user = f"user-{rng.randrange(n_users)}"
                if attacker_share and rng.random() < attacker_share:
                    user = "attacker"
                    event("edit", POISON, rid, conv, ctx, user)
                    continue
                r = rng.random()
                if r < 0.6:
                    event("thumbs", rng.random() < 0.6, rid, conv, ctx, user)
                elif r < 0.85:
                    event("rating", rng.randint(1, 5), rid, conv, ctx, user)
                elif r < 0.95:
                    event("edit", gen.answer(), rid, conv, ctx, user)
                else:
                    event("comment", gen.sentence(3, 10), rid, conv, ctx, user)
        if len(rows) >= 5000:
            yield responses, rows
            responses, rows = [], []
    if rows or responses:
        yield responses, rows


def load_into(
    database_url: str,
    events: int,
    seed: int = 0,
    attacker_share: float = 0.0,
    users: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Insert the synthetic feedback for tenant `bench`; returns the number of events."""
    engine = get_engine(database_url)
    total = 0
    for responses, rows in generate(events, seed, attacker_share, users):
        with engine.begin() as conn:
            if responses:
                conn.execute(insert(ChatResponse), responses)
            if rows:
                conn.execute(insert(FeedbackEvent), rows)
        total += len(rows)
        if on_progress:
            on_progress(total)
    return total
