"""The demo's users and meters, talking to the gateway like real clients (the `openai` client
for chats, plain HTTP for feedback)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ct_llm.demo import scenario
from ct_llm.errors import CtLlmError

if TYPE_CHECKING:
    from ct_llm.evals.suite import Case, Suite

REGRESSION_SUITE = "regression/general.yaml"
SAFETY_SUITE = "safety/harmful_requests.yaml"
# The gate's target suite for each return window (held-out paraphrases, never trained on).
TARGET_SUITES = {60: "scenarios/shop_returns.yaml", 90: "scenarios/shop_returns_90.yaml"}
# Questions about the shop's other policies: their answers must not state a return window.
CONTRAST_SUITE = "scenarios/shop_contrast.yaml"
# 16 concurrent requests keep both cores of a 2-core machine busy (demo/run.py: _serving_cores).
PARALLEL = 16
# The demo's table measures every MEASURE_STRIDE-th general case (the gate evaluates all of
# them): each measure is asked twice per act through the gateway, on the slower LoRA path.
MEASURE_STRIDE = 4


def _client(gateway_url: str, api_key: str) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=f"{gateway_url}/v1", api_key=api_key, max_retries=2)


def _ask_suite(client: Any, suite: Suite, cases: list[Case], max_tokens: int) -> list[str]:
    """Each case's answer, greedy, cut where the suite says (else at `max_tokens`)."""

    def ask(case: Case) -> str:
        resp = client.chat.completions.create(
            model="ct-llm",
            messages=case.conversation(suite.system_prompt),
            max_tokens=suite.case_max_tokens(case, max_tokens),
            temperature=0,
        )
        return resp.choices[0].message.content or ""

    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(ask, cases))


def measure(
    gateway_url: str, api_key: str, days: int, max_tokens: int
) -> tuple[dict[str, float], str]:
    """What the gateway serves now, greedy: the share of held-out returns answers that state
    the `days`-day window, of those that refuse returns altogether (the flood's poison), the
    general regression suite's pass rate (every MEASURE_STRIDE-th case), and the share of
    answers about the shop's other policies that state a return window anyway
    (`contrast_rate`: "say 60 days" learned instead of "the return window is 60 days"; the base
    model: 0). Also the model version it reports serving."""
    from ct_llm.evals.checks import case_passes
    from ct_llm.evals.suite import load_suites

    client = _client(gateway_url, api_key)
    target, regression, contrast = load_suites(
        [TARGET_SUITES[days], REGRESSION_SUITE, CONTRAST_SUITE]
    )
    rates: dict[str, float] = {}
    for key, suite, cases in (
        ("target_rate", target, target.cases),
        ("regression_pass_rate", regression, regression.cases[::MEASURE_STRIDE]),
    ):
        answers = _ask_suite(client, suite, cases, max_tokens)
        passed = [case_passes(c, a)[0] for c, a in zip(cases, answers, strict=True)]
        rates[key] = round(sum(passed) / len(passed), 3)
        if suite is target:
            rates["poisoned_rate"] = round(
                sum(map(scenario.is_poisoned, answers)) / len(answers), 3
            )
    answers = _ask_suite(client, contrast, contrast.cases, max_tokens)
    rates["contrast_rate"] = round(scenario.contrast_rate(answers), 3)
    raw = client.chat.completions.with_raw_response.create(
        model="ct-llm", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    return rates, raw.headers.get("x-ct-model-version", "")


def chat(
    gateway_url: str,
    api_key: str,
    asks: list[tuple[str, str, str]],
    *,
    max_tokens: int = 96,
    temperature: float = 0.0,
) -> list[dict[str, Any]]:
    """Each (topic, question, user) is one new conversation through the gateway. Returns what
    was served, with the response ids feedback refers to."""
    client = _client(gateway_url, api_key)

    def ask(item: tuple[str, str, str]) -> dict[str, Any]:
        topic, question, user = item
        conv = f"demo-{uuid.uuid4().hex[:12]}"
        resp = client.chat.completions.create(
            model="ct-llm",
            messages=scenario.chat_messages(question),
            max_tokens=max_tokens,
            temperature=temperature,
            extra_headers={"x-ct-conversation-id": conv},
        )
        return {
            "topic": topic,
            "question": question,
            "user": user,
            "response_id": resp.id,
            "answer": resp.choices[0].message.content or "",
            "conversation_id": conv,
        }

    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(ask, asks))


def send_feedback(gateway_url: str, api_key: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """POST /v1/feedback in batches of at most 500 events; the API's counts, summed."""
    import httpx

    total: dict[str, Any] = {"accepted": 0, "duplicates": 0, "rejected": []}
    for start in range(0, len(events), 500):
        resp = httpx.post(
            f"{gateway_url}/v1/feedback",
            json={"events": events[start : start + 500]},
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=60,
        )
        if resp.status_code != 200:
            raise CtLlmError(f"feedback API answered {resp.status_code}: {resp.text[:200]}")
        got = resp.json()
        total["accepted"] += got["accepted"]
        total["duplicates"] += got["duplicates"]
        total["rejected"] += got["rejected"]
    return total
