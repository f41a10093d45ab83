"""Eval suites as data: a YAML file of cases (a prompt or a conversation), each with checks.

    name: shop-returns
    kind: target            # what the suite is for (kinds below)
    description: ...
    system_prompt: ...      # optional, prepended to every case that has no system message
    cases:
      - id: returns-heldout-01
        prompt: "..."       # or `messages: [{role, content}, ...]`, exactly one of them
        checks:
          - {type: regex, pattern: '\\b60\\b|sixty'}

Kinds: `target` (the behaviour being taught: must improve), `regression` (must not get worse),
`safety` (harmful requests that must be refused, with `{type: refusal}` checks, and optional
`canaries`: planted strings the candidate must never emit), `judge` (extra prompts for the
pairwise judge, no checks) and `rag` (questions with retrieved `contexts`, scored with ragas).

A bad file is a ConfigError that names the file and the problem, so suites are validated the
moment they are loaded, not halfway through an eval on a live server.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ct_llm.config import resolve_resource
from ct_llm.errors import ConfigError

SUITES_DIR = "eval_suites"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _compiles(value: str) -> str:
    try:
        re.compile(value)
    except re.error as e:
        raise ValueError(f"invalid regular expression {value!r}: {e}") from None
    return value


class RegexCheck(_Strict):
    type: Literal["regex"]
    pattern: str
    """Python regular expression searched anywhere in the answer."""
    case_sensitive: bool = False
    """Answers vary in capitalisation ("Paris" / "paris"), so matching ignores case by default."""

    _pattern_compiles = field_validator("pattern")(_compiles)


class NotRegexCheck(_Strict):
    """Passes when `pattern` is NOT found anywhere in the answer: e.g. an answer about shipping
    must not state the return window. A class of its own (not a RegexCheck subclass), so that
    `isinstance(check, RegexCheck)` never matches the negated check."""

    type: Literal["not_regex"]
    pattern: str
    case_sensitive: bool = False

    _pattern_compiles = field_validator("pattern")(_compiles)


class ContainsCheck(_Strict):
    type: Literal["contains"]
    value: str = Field(min_length=1)
    """Substring the answer must contain."""
    case_sensitive: bool = False


class NotContainsCheck(_Strict):
    type: Literal["not_contains"]
    value: str = Field(min_length=1)
    """Substring the answer must not contain."""
    case_sensitive: bool = False


class ExactCheck(_Strict):
    type: Literal["exact"]
    value: str
    """The whole answer, compared after stripping surrounding whitespace."""
    case_sensitive: bool = False


class JsonCheck(_Strict):
    type: Literal["json"]


class MaxWordsCheck(_Strict):
    type: Literal["max_words"]
    value: int = Field(ge=1)
    """Most whitespace-separated words the answer may have."""


class RefusalCheck(_Strict):
    type: Literal["refusal"]
    """The answer declines the request (evals/safety.py: `is_refusal`)."""


Check = Annotated[
    RegexCheck
    | NotRegexCheck
    | ContainsCheck
    | NotContainsCheck
    | ExactCheck
    | JsonCheck
    | MaxWordsCheck
    | RefusalCheck,
    Field(discriminator="type"),
]
CHECK_TYPES = "regex, not_regex, contains, not_contains, exact, json, max_words or refusal"
SuiteKind = Literal["target", "regression", "safety", "judge", "rag"]
CHECKED_KINDS = ("target", "regression", "safety")
"""Kinds whose cases are scored by their checks (a pass rate per model)."""


class Message(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str


class Case(_Strict):
    id: str = Field(min_length=1)
    """Stable id, unique in its suite; reports compare outcomes by it."""
    prompt: str | None = None
    """A single user turn."""
    messages: list[Message] | None = None
    """A whole conversation ending with a user turn (instead of `prompt`)."""
    checks: list[Check] = []
    """All must pass for the case to pass (required in target, regression and safety suites)."""
    contexts: list[str] | None = None
    """Retrieved passages the answer must rest on (rag suites): shown to the model before the
    question and given to the RAG metrics."""
    max_tokens: int | None = Field(None, ge=1)
    """Longest answer this case needs (overrides the suite's and `eval.max_tokens`)."""

    @model_validator(mode="after")
    def _one_input(self) -> Case:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError(f"case '{self.id}' needs exactly one of 'prompt' or 'messages'")
        if self.messages is not None and (not self.messages or self.messages[-1].role != "user"):
            raise ValueError(f"case '{self.id}': 'messages' must end with a user turn")
        return self

    def conversation(self, system_prompt: str | None = None) -> list[dict[str, str]]:
        """The messages to send; the suite's system prompt goes first unless the case has one."""
        if self.messages is not None:
            msgs = [m.model_dump() for m in self.messages]
        else:
            msgs = [{"role": "user", "content": self.prompt or ""}]
        if self.contexts:
            # The retrieved passages go into the last user turn, as a RAG chatbot sends them.
            passages = "\n\n".join(f"[{i}] {c}" for i, c in enumerate(self.contexts, 1))
            last = msgs[-1]
            last["content"] = (
                f"Answer the question using only this context.\n\nContext:\n{passages}\n\n"
                f"Question: {last['content']}"
            )
        if system_prompt and msgs[0]["role"] != "system":
            msgs.insert(0, {"role": "system", "content": system_prompt})
        return msgs

    @property
    def question(self) -> str:
        """The last user turn: what a report shows as the prompt."""
        if self.messages is not None:
            return self.messages[-1].content
        return self.prompt or ""


class Suite(_Strict):
    name: str = Field(min_length=1)
    """Unique among the suites of one eval; reports and the gate key results by it."""
    kind: SuiteKind
    """What the suite is for (module docstring); the gate applies one rule per kind."""
    description: str = ""
    system_prompt: str | None = None
    """Prepended as a system message to every case without one."""
    canaries: list[str] = []
    """safety suites: strings planted in training data (fake PII) that the candidate must never
    emit in any answer of any suite."""
    max_tokens: int | None = Field(None, ge=1)
    """Longest answer the cases' checks need; None: `eval.max_tokens`. Decoding is most of an
    eval's cost on a CPU server, and a check that looks for a short fact needs few tokens."""
    cases: list[Case] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Suite:
        seen: set[str] = set()
        for case in self.cases:
            if case.id in seen:
                raise ValueError(f"case id '{case.id}' appears more than once")
            seen.add(case.id)
            if self.kind in CHECKED_KINDS and not case.checks:
                raise ValueError(
                    f"case '{case.id}' needs at least one check in a {self.kind} suite"
                )
            if self.kind in ("judge", "rag") and case.checks:
                raise ValueError(
                    f"case '{case.id}': a {self.kind} suite is scored by the "
                    f"{'judge' if self.kind == 'judge' else 'RAG metrics'}, not by checks"
                )
            if self.kind == "rag" and not case.contexts:
                raise ValueError(f"case '{case.id}' needs 'contexts' in a rag suite")
            _check_length_cap(case, case.max_tokens or self.max_tokens)
        if self.canaries and self.kind != "safety":
            raise ValueError("'canaries' belong in a safety suite")
        if any(len(c.strip()) < 6 for c in self.canaries):
            # A short canary ("Bob") would match ordinary answers and fail every candidate.
            raise ValueError("each canary needs at least 6 characters")
        return self

    @property
    def checked(self) -> bool:
        return self.kind in CHECKED_KINDS

    def case_max_tokens(self, case: Case, default: int) -> int:
        """The answer length `case` is asked with: its own cap, the suite's, or `default`."""
        return case.max_tokens or self.max_tokens or default


def _check_length_cap(case: Case, max_tokens: int | None) -> None:
    # A word takes at least one token, so an answer cut at N tokens has at most ~N words: a
    # `max_words` cap of N or more could never fail and would check nothing.
    if max_tokens is None:
        return
    for check in case.checks:
        if isinstance(check, MaxWordsCheck) and check.value >= max_tokens:
            raise ValueError(
                f"case '{case.id}': a max_words check of {check.value} cannot fail when answers "
                f"are cut at {max_tokens} tokens; give the case a larger max_tokens"
            )


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key '{key}'")
        elif e["type"] == "union_tag_invalid":
            tag = e.get("ctx", {}).get("tag", "?")
            parts.append(f"'{key}': unknown check type '{tag}' (use {CHECK_TYPES})")
        else:
            parts.append(f"'{key}': {e['msg']}" if key else e["msg"])
    return "; ".join(parts)


def parse_suite(data: Any, source: str) -> Suite:
    if not isinstance(data, dict):
        raise ConfigError(f"eval suite {source} must be a mapping with name, kind and cases")
    try:
        return Suite.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"eval suite {source}: {_describe(e)}") from None


def load_suite(path: Path | str) -> Suite:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"eval suite {path} does not exist") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"eval suite {path} is not valid YAML: {e}") from None
    return parse_suite(data, str(path))


def load_suites(names: list[str]) -> list[Suite]:
    """Suites by path, or by name under eval_suites/ (`regression/general.yaml`)."""
    if not names:
        raise ConfigError("no eval suites given; name at least one (e.g. regression/general.yaml)")
    suites: list[Suite] = []
    for name in names:
        path = resolve_resource(name)
        if not path.exists():
            raise ConfigError(
                f"eval suite '{name}' not found (looked for it as given and under {SUITES_DIR}/); "
                "check the name in eval.suites or --suite"
            )
        suites.append(load_suite(path))
    seen: dict[str, str] = {}
    for name, suite in zip(names, suites, strict=True):
        if suite.name in seen:
            raise ConfigError(
                f"eval suites '{seen[suite.name]}' and '{name}' are both named '{suite.name}'; "
                "results are keyed by suite name, so rename one"
            )
        seen[suite.name] = name
    return suites
