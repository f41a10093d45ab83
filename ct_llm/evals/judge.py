"""The pairwise LLM judge, the I/O part: ask an OpenAI-compatible endpoint which of two answers
is better, in both presentation orders, within a request budget.

The judge is any OpenAI-compatible server: the local vLLM by default, a larger model or an API in
production (`eval.judge` in ct-llm.yaml). Where the server supports guided decoding
(`response_format` with a JSON schema; vLLM does) the verdict is constrained to
`{"winner": "A" | "B" | "tie"}`, so even a small judge always answers in a readable form; a
server that rejects the parameter is detected on the first request and asked in free text
instead (MT-Bench's `[[A]]` format), and an unreadable verdict is counted, never guessed.
The pure rules (parsing, both-orders rule, Wilson interval) are in evals/pairwise.py.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from ct_llm.evals.pairwise import Outcome, Verdict, combine_orders, parse_verdict, win_rate

log = logging.getLogger(__name__)

# MT-Bench's pairwise judge prompt (Zheng et al. 2023), shortened, with a JSON verdict.
SYSTEM_PROMPT = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two "
    "AI assistants to the user question displayed below. Choose the assistant that follows the "
    "user's instructions and answers the question better: consider helpfulness, relevance, "
    "accuracy, depth and level of detail. Do not let the order in which the responses were "
    "presented, their length, or the assistants' names influence your evaluation. Be as "
    'objective as possible. Answer with JSON only: {"winner": "A"} if assistant A is better, '
    '{"winner": "B"} if assistant B is better, {"winner": "tie"} for a tie.'
)
_FREE_TEXT_SUFFIX = ' If you cannot answer in JSON, end with "[[A]]", "[[B]]" or "[[C]]" for a tie.'
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"winner": {"type": "string", "enum": ["A", "B", "tie"]}},
    "required": ["winner"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class JudgeSettings:
    base_url: str
    model: str
    api_key: str = "none"
    max_requests: int = 200
    """Budget: each comparison costs two requests (both orders); items past it are skipped."""
    max_tokens: int = 64
    guided: bool | None = None
    """True: always ask for guided JSON; False: never; None: try it, fall back when refused."""
    concurrency: int = 8
    timeout_s: float = 120.0
    seed: int = 0
    """Which items fit the budget is a seeded sample, so a rerun judges the same ones."""


@dataclass(frozen=True)
class JudgeItem:
    id: str
    prompt: str
    """The user's question as the judge sees it (the last user turn, context included)."""
    candidate_answer: str
    baseline_answer: str


@dataclass
class JudgedItem:
    id: str
    prompt: str
    candidate_answer: str
    baseline_answer: str
    candidate_first: Verdict | None
    """The verdict with the candidate shown as A."""
    candidate_second: Verdict | None
    """The verdict with the candidate shown as B."""
    outcome: Outcome
    raw: list[str] = field(default_factory=list)
    """The judge's two replies (or the request errors), for the report."""


@dataclass
class JudgeResult:
    judge_model: str
    judge_url: str
    guided: bool
    items: list[JudgedItem]
    requests: int
    budget: int
    skipped: int
    """Items left unjudged by the request budget."""

    def summary(self) -> dict[str, Any]:
        wr = win_rate([i.outcome for i in self.items])
        return {
            "wins": wr.wins,
            "losses": wr.losses,
            "ties": wr.ties,
            "unparseable": wr.unparseable,
            "n": wr.n,
            "rate": wr.rate,
            "low": round(wr.low, 4),
            "high": round(wr.high, 4),
            "requests": self.requests,
            "budget": self.budget,
            "skipped": self.skipped,
            "guided": self.guided,
            "judge_model": self.judge_model,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "judge_url": self.judge_url,
            "items": [asdict(i) for i in self.items],
        }


def judge_messages(prompt: str, first: str, second: str, guided: bool) -> list[dict[str, str]]:
    user = (
        f"[User Question]\n{prompt}\n\n"
        f"[The Start of Assistant A's Answer]\n{first}\n[The End of Assistant A's Answer]\n\n"
        f"[The Start of Assistant B's Answer]\n{second}\n[The End of Assistant B's Answer]"
    )
    system = SYSTEM_PROMPT if guided else SYSTEM_PROMPT + _FREE_TEXT_SUFFIX
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


class _Judge:
    """One judge session: the client, and whether guided decoding works on this server."""

    def __init__(self, settings: JudgeSettings) -> None:
        from ct_llm.evals.runner import make_client

        self.settings = settings
        self.client = make_client(settings.base_url, settings.api_key, settings.timeout_s)
        self.guided = settings.guided is not False
        self._probe = threading.Lock()
        self._probed = settings.guided is not None

    def ask(self, prompt: str, first: str, second: str) -> str:
        """The judge's reply; raises openai errors other than a refused `response_format`."""
        import openai

        if not self._probed:
            # The first request decides whether this server takes guided JSON; the others wait
            # so they do not all fail the same way.
            with self._probe:
                if not self._probed:
                    try:
                        return self._create(prompt, first, second, guided=True)
                    except openai.BadRequestError as e:
                        log.warning("judge server refused guided JSON (%s); using free text", e)
                        self.guided = False
                        return self._create(prompt, first, second, guided=False)
                    finally:
                        self._probed = True
        return self._create(prompt, first, second, guided=self.guided)

    def _create(self, prompt: str, first: str, second: str, guided: bool) -> str:
        extra: dict[str, Any] = {}
        if guided:
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "verdict", "schema": VERDICT_SCHEMA},
            }
        resp = self.client.chat.completions.create(
            model=self.settings.model,
            messages=judge_messages(prompt, first, second, guided),
            temperature=0.0,
            max_tokens=self.settings.max_tokens,
            seed=self.settings.seed,
            **extra,
        )
        return (resp.choices[0].message.content or "") if resp.choices else ""


def _verdict(judge: _Judge, prompt: str, first: str, second: str) -> tuple[Verdict | None, str]:
    import openai

    try:
        text = judge.ask(prompt, first, second)
    except openai.OpenAIError as e:
        # A failed request is an unreadable verdict: counted, shown in the report.
        return None, f"request failed: {e.__class__.__name__}: {str(e)[:200]}"
    return parse_verdict(text), text


def _judge_one(judge: _Judge, item: JudgeItem) -> JudgedItem:
    first, raw1 = _verdict(judge, item.prompt, item.candidate_answer, item.baseline_answer)
    second, raw2 = _verdict(judge, item.prompt, item.baseline_answer, item.candidate_answer)
    return JudgedItem(
        item.id,
        item.prompt,
        item.candidate_answer,
        item.baseline_answer,
        first,
        second,
        combine_orders(first, second),
        [raw1, raw2],
    )


def within_budget(items: Sequence[JudgeItem], max_requests: int, seed: int) -> list[JudgeItem]:
    """The items the budget pays for (two requests each): all of them, or a seeded sample kept in
    the original order."""
    fits = max(0, max_requests // 2)
    if len(items) <= fits:
        return list(items)
    chosen = set(random.Random(seed).sample(range(len(items)), fits))
    return [it for i, it in enumerate(items) if i in chosen]


def judge_pairs(items: Sequence[JudgeItem], settings: JudgeSettings) -> JudgeResult:
    """Judge every item the budget allows in both orders, concurrently."""
    from ct_llm.evals.runner import check_model_served

    chosen = within_budget(items, settings.max_requests, settings.seed)
    judge = _Judge(settings)
    if chosen:
        check_model_served(judge.client, settings.base_url, settings.model)
    with ThreadPoolExecutor(max_workers=max(1, settings.concurrency)) as pool:
        judged = list(pool.map(lambda it: _judge_one(judge, it), chosen))
    result = JudgeResult(
        settings.model,
        settings.base_url,
        judge.guided,
        judged,
        requests=2 * len(judged),
        budget=settings.max_requests,
        skipped=len(items) - len(chosen),
    )
    s = result.summary()
    log.info(
        "judge: %d comparisons (%d skipped by the budget): %d wins, %d losses, %d ties, "
        "%d unparseable; win rate %.2f [%.2f, %.2f]",
        len(judged),
        result.skipped,
        s["wins"],
        s["losses"],
        s["ties"],
        s["unparseable"],
        s["rate"],
        s["low"],
        s["high"],
    )
    return result
