"""report.json payloads for the report tests: a full, realistic one (with hostile model text)
and a minimal one from an older run where only the check suites ran."""

from __future__ import annotations

from typing import Any

SCRIPT = "<script>alert('x')</script>"
IMG = '<img src="http://evil.example/pixel.png" onerror="alert(1)">'
LINK = '<a href="https://evil.example/phish">click</a>'


def _case(
    i: int, suite: str, cand_passed: bool, base_passed: bool, cand_answer: str = "fine"
) -> dict[str, Any]:
    return {
        "id": f"{suite}-{i:02d}",
        "prompt": f"Question {i} for {suite}?",
        "candidate_answer": cand_answer,
        "baseline_answer": f"production answer {i}",
        "candidate_passed": cand_passed,
        "baseline_passed": base_passed,
        "candidate_failed_checks": [] if cand_passed else ["contains '60 days'"],
        "baseline_failed_checks": [] if base_passed else ["contains '60 days'"],
        "candidate_error": None,
        "baseline_error": None,
    }


def _suite(name: str, kind: str, cases: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(cases)
    return {
        "name": name,
        "kind": kind,
        "description": f"the {kind} suite {name}",
        "candidate_pass_rate": sum(c["candidate_passed"] for c in cases) / n,
        "baseline_pass_rate": sum(c["baseline_passed"] for c in cases) / n,
        "n": n,
        "cases": cases,
    }


def full_payload(approved: bool = False) -> dict[str, Any]:
    """Every part present: 3 suites (one regression flipped by hostile text, 12 target cases
    improved), a judge with low/high interval, RAG, one canary leak, performance."""
    general = [_case(i, "general", True, True) for i in range(15)]
    general.append(_case(15, "general", False, True, cand_answer=f"{SCRIPT} {IMG} {LINK}"))
    general[-1]["baseline_error"] = "HTTP 500: boom & <b>bust</b>"
    target = [_case(i, "shop-returns", i < 12, i < 1) for i in range(14)]
    # Asked again on the served path, case 01 failed: flaky, left out of the gate's counts.
    target[1].update(candidate_recheck=False, baseline_recheck=False, recheck_answer="30 days")
    safety = [_case(i, "safety & refusals", True, True) for i in range(6)]
    items = []
    outcomes = ["win"] * 5 + ["loss"] * 2 + ["tie"] * 10 + ["unparseable"] * 3
    for i, outcome in enumerate(outcomes):
        first, second = {"win": ("A", "B"), "loss": ("B", "A"), "tie": ("A", "A")}.get(
            outcome, (None, "B")
        )
        items.append(
            {
                "id": f"pair-{i:02d}",
                "prompt": f"Pairwise prompt {i}",
                "candidate_answer": SCRIPT if i == 5 else f"candidate says {i}",
                "baseline_answer": f"production says {i}",
                "candidate_first": first,
                "candidate_second": second,
                "outcome": outcome,
                "raw": ['{"winner": "A"}', f"I pick {IMG}"],
            }
        )
    rag_cases = [
        {
            "id": f"rag-{i}",
            "question": f"What does document {i} say?",
            "contexts": [f"Document {i}: returns within 60 days.", LINK],
            "candidate_answer": f"60 days ({i})",
            "baseline_answer": f"30 days ({i})",
            "scores": {
                "candidate": {"faithfulness": 0.9 - 0.1 * i, "answer_relevancy": 0.8},
                "baseline": {"faithfulness": 0.4, "answer_relevancy": None if i == 2 else 0.7},
            },
            "errors": ["answer_relevancy: judge timed out"] if i == 2 else [],
        }
        for i in range(3)
    ]
    reasons = [
        {"rule": "target", "passed": True, "detail": "shop-returns 0.86 vs production 0.07"},
        {"rule": "regression", "passed": approved, "detail": "general 0.94 vs production 1.00"},
        {"rule": "judge", "passed": True, "detail": "win rate low 0.36 >= 0.30"},
        {"rule": "canary", "passed": approved, "detail": "1 canary leaked <in candidate>"},
    ]
    return {
        "id": "acme-assistant-v3-20261126T100000Z",
        "created_at": "2026-11-26T10:00:00+00:00",
        "tenant": "acme",
        "candidate": "acme-assistant-v3",
        "baseline": "acme-assistant-v2",
        "decision": {"approved": approved, "reasons": reasons},
        "summary": {"suites": {"general": {"candidate_pass_rate": 15 / 16}}, "note": SCRIPT},
        "settings": {
            "base_url": "http://127.0.0.1:8000",
            "max_tokens": 96,
            "concurrency": 8,
            "temperature": 0.0,
            "started_at": "2026-11-26T09:59:48+00:00",
            "duration_s": 12.3,
        },
        "suites": [
            _suite("general", "regression", general),
            _suite("shop-returns", "target", target),
            _suite("safety & refusals", "safety", safety),
        ],
        "judge": {
            "judge_model": "smol",
            "judge_url": "http://127.0.0.1:8001",
            "guided": True,
            "wins": 5,
            "losses": 2,
            "ties": 10,
            "unparseable": 3,
            "n": 17,
            "rate": 0.588,
            "low": 0.36,
            "high": 0.78,
            "requests": 40,
            "budget": 200,
            "skipped": 0,
            "items": items,
        },
        "rag": {
            "metrics": {
                "faithfulness": {"candidate": 0.8, "baseline": 0.4, "n": 3, "failed": 0},
                "answer_relevancy": {"candidate": 0.8, "baseline": 0.7, "n": 3, "failed": 1},
            },
            "cases": rag_cases,
        },
        "safety": {
            "canaries": 3,
            "leaks": [
                {
                    "model": "candidate",
                    "suite": "safety & refusals",
                    "case": "safety & refusals-03",
                    "canary": "CANARY-7f3a <b>x</b>",
                }
            ],
        },
        "performance": {
            "candidate": {
                "p50_ms": 810.0,
                "p95_ms": 1200.0,
                "tokens_per_s": 35.2,
                "n": 36,
                "errors": 0,
            },
            "baseline": {
                "p50_ms": 760.0,
                "p95_ms": 1100.0,
                "tokens_per_s": 37.9,
                "n": 36,
                "errors": 1,
            },
            "adapter": {
                "rank": 16,
                "size_bytes": 7_000_000,
                "parameters": 1_800_000,
                "serving_memory_bytes": 12_000_000,
            },
        },
    }


def minimal_payload() -> dict[str, Any]:
    """An older report: check suites and a decision only; judge, RAG, safety and performance
    missing or null, and one case without outcome flags."""
    general = [_case(i, "general", True, i != 2) for i in range(4)]
    general.append({"id": "odd", "prompt": None, "candidate_answer": None})
    return {
        "candidate": "acme-assistant-v2",
        "baseline": "smollm2-135m-instruct",
        "decision": {"approved": True, "reasons": [{"rule": "regression", "passed": True}]},
        "suites": [
            {"name": "general", "kind": "regression", "cases": general},
            {"name": "no-rates", "kind": "target", "candidate_pass_rate": None, "n": None},
        ],
        "judge": None,
        "rag": None,
    }
