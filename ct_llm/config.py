"""Typed settings: the workspace's `ct-llm.yaml`, then environment variables
(`CT_LLM__<KEY>`, `CT_LLM__<SECTION>__<KEY>`), then CLI overrides. Unknown keys and wrong types
are errors that name the key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ct_llm.deploy.canary import CanaryPolicy
from ct_llm.errors import ConfigError
from ct_llm.gate.policy import GatePolicy

# The repository that holds recipes/ and eval_suites/ (editable installs and source checkouts).
REPO_ROOT = Path(__file__).resolve().parents[1]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServingConfig(_Strict):
    url: str | None = None
    """An already running OpenAI-compatible vLLM server to use; None: ct-llm starts its own."""
    urls: list[str] = []
    """Several already running replicas (each loaded separately, traffic spread over them);
    `url` counts as one more."""
    replicas: int = Field(1, ge=1)
    """Replicas ct-llm starts when it manages serving: ports `port`, `port`+1, ..."""
    host: str = "127.0.0.1"
    """Interface the managed vLLM binds to; loopback so only the gateway reaches it."""
    port: int = 8001
    """Port of the managed vLLM server."""
    python: str | None = None
    """Python of the serving environment; default `$CT_LLM_VLLM_PYTHON`, else
    `<repo>/.venv-vllm/bin/python`."""
    max_loras: int = 4
    """Adapters vLLM keeps loaded at once (production + canary + eval candidates)."""
    max_lora_rank: int = 16
    """Largest LoRA rank the server accepts; adapters above it are refused before loading."""
    max_model_len: int = 2048
    """Context length the server allocates for."""
    memory_fraction: float = Field(0.3, gt=0, le=1)
    """vLLM `--gpu-memory-utilization`; on CPU the share of host memory for the KV cache."""
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    """Serving dtype. `auto`: bfloat16 on a GPU or a CPU with native bf16 instructions, else
    float32 (vLLM-CPU emulates bf16 on other CPUs, ~3x slower: ct_llm/deploy/dtype.py)."""
    startup_timeout_s: float = 600.0
    """How long to wait for the server to become healthy."""
    extra_args: list[str] = []
    """More vLLM command-line flags, passed through as they are."""
    restart_rss_growth_mb: float | None = Field(4096.0, gt=0)
    """`ct-llm api` restarts a replica it started once its resident memory grew this much over
    what it used when warm (vLLM may keep memory of unloaded adapters); one at a time and only
    while another replica serves. None: never."""
    drain_timeout_s: float = Field(120.0, ge=0)
    """How long an old adapter may keep serving in-flight requests before it is unloaded."""
    swap_lock_timeout_s: float = Field(300.0, ge=0)
    """How long a swap waits for another swap of the same adapter to finish."""
    cpu_bind: list[str] = []
    """vLLM-CPU only: the cores of each managed replica, one entry per replica in vLLM's
    VLLM_CPU_OMP_THREADS_BIND syntax (e.g. ['0-7', '8-15']). Empty: vLLM's automatic binding,
    which puts every replica on the same cores."""

    @model_validator(mode="after")
    def _one_binding_per_replica(self) -> ServingConfig:
        if self.cpu_bind and len(self.cpu_bind) != self.replicas:
            raise ValueError(
                f"cpu_bind names {len(self.cpu_bind)} core list(s) for {self.replicas} "
                "replica(s); give one per replica or none"
            )
        return self


_M = TypeVar("_M", bound=BaseModel)


def _with_overrides(cls: type[_M], defaults: BaseModel, own: BaseModel | None) -> _M:
    """`cls` from `defaults`' fields, with those `own` set explicitly in its config."""
    values = {name: getattr(defaults, name) for name in cls.model_fields}
    if own is not None:
        values.update({name: getattr(own, name) for name in own.model_fields_set})
    return cls(**values)


VllmExtra = Literal[
    "top_k",
    "min_p",
    "repetition_penalty",
    "length_penalty",
    "min_tokens",
    "stop_token_ids",
    "include_stop_str_in_output",
    "skip_special_tokens",
    "spaces_between_special_tokens",
    "bad_words",
    "ignore_eos",
    "prompt_logprobs",
    "guided_json",
    "guided_regex",
    "guided_choice",
    "guided_grammar",
    "structured_outputs",
]
"""vLLM's own sampling fields that `api.chat.extra_params` may let through. Some fields are
never forwarded whatever the config says: `chat_template` (a client's Jinja template runs on
the server), `request_id` (ids are vLLM's, shared by every tenant), `priority` (one tenant
would jump the others' queue), `vllm_xargs`, `kv_transfer_params`, `cache_salt`."""

SystemPromptPolicy = Literal["operator_first", "replace", "refuse"]


class ChatLimits(_Strict):
    """What one chat request may ask of the model server (see gateway/chat_params.py)."""

    max_tokens: int = Field(1024, ge=1)
    """Most tokens one answer may ask for (`max_tokens` / `max_completion_tokens`); a request
    for more is refused with 400, a request that names none gets this many."""
    max_n: int = Field(1, ge=1)
    """Most answers (`n`) one request may ask for."""
    extra_params: list[VllmExtra] = []
    """vLLM-specific request fields forwarded as sent (off by default: a request naming one
    is refused with 400 unless it is listed here)."""
    client_system_prompt: SystemPromptPolicy = "operator_first"
    """A client's system message: `operator_first` keeps the operator's `system_prompt` first
    and the client's after it (in one leading system message), `replace` lets the client's
    replace it, `refuse` answers 400 to any request that carries one."""


class ChatConfig(ChatLimits):
    tenants: dict[str, ChatLimits] = {}
    """Per-tenant limits; a tenant's entry overrides only the fields it sets."""

    def for_tenant(self, tenant: str) -> ChatLimits:
        return _with_overrides(ChatLimits, self, self.tenants.get(tenant))


class QuotaLimits(_Strict):
    """Per tenant and gateway process; 0 turns a limit off. Over a limit: 429 + Retry-After."""

    chat_per_s: float = Field(50.0, ge=0)
    """Chat requests a second, sustained (a token bucket that holds `burst_s` seconds' worth)."""
    feedback_per_s: float = Field(500.0, ge=0)
    """Feedback requests a second (a batch counts once), sustained."""
    burst_s: float = Field(2.0, gt=0)
    """How many seconds' worth of requests may arrive at once after a quiet spell."""
    max_concurrent_chats: int = Field(64, ge=0)
    """Chat requests of one tenant in flight at once (answers being generated)."""


class QuotaConfig(QuotaLimits):
    tenants: dict[str, QuotaLimits] = {}
    """Per-tenant quotas; a tenant's entry overrides only the fields it sets."""

    def for_tenant(self, tenant: str) -> QuotaLimits:
        return _with_overrides(QuotaLimits, self, self.tenants.get(tenant))


class ApiConfig(_Strict):
    host: str = "127.0.0.1"
    """Interface of `ct-llm api`."""
    port: int = 8000
    """Port of `ct-llm api`."""
    max_body_bytes: int = 1_000_000
    """Largest accepted request body; bigger bodies get 413."""
    max_events_per_batch: int = 1000
    """Most feedback events in one POST."""
    max_text_chars: int = Field(100_000, ge=1)
    """Longest message content, answer or edit in a feedback event."""
    max_comment_chars: int = Field(10_000, ge=1)
    max_messages: int = Field(256, ge=1)
    """Most messages in an event's conversation."""
    max_metadata_bytes: int = Field(16_384, ge=2)
    """Largest serialized `metadata` object of an event."""
    upstream_timeout_s: float = 120.0
    """Timeout of a proxied chat completion."""
    max_connections: int = Field(1000, ge=1)
    """Open connections uvicorn serves at once; more are answered 503 (uvicorn's
    `limit_concurrency`)."""
    keep_alive_s: float = Field(5.0, gt=0)
    """Idle keep-alive connections are closed after this long (uvicorn's
    `timeout_keep_alive`)."""
    drain_s: float = Field(30.0, ge=0)
    """On SIGTERM/SIGINT, how long requests in flight may take to finish before the API
    stops."""
    chat: ChatConfig = ChatConfig()
    quotas: QuotaConfig = QuotaConfig()


RULES = (
    "edit_pair",
    "thumbs_pair",
    "rating_pair",
    "regenerate_pair",
    "thumbs_kto",
    "sft_top_rated",
    "sft_edit",
)

# Chat-template markers of the common open-weights families; user text containing one could
# forge turns once templated.
CONTROL_TOKENS = [
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "[INST]",
    "[/INST]",
    "<start_of_turn>",
    "<end_of_turn>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
]


class GuardsConfig(_Strict):
    max_user_share: float = Field(0.02, gt=0, le=1)
    """Most rows of a dataset version that one user's feedback may make."""
    min_rows_per_user: int = Field(1, ge=0)
    """The cap never goes below this many rows per user (small versions)."""
    cap_anonymous: bool = True
    """Feedback without a user id is capped as if one user sent it all; false exempts it (for
    chatbots that send no user ids, at the price of the guard)."""
    thumbs_pair_min_users: int = Field(1, ge=1)
    """Distinct users who must agree on each side of a pair built from thumbs."""
    burst_volume_factor: float = Field(10.0, gt=1)
    """Quarantine a user with more events than this many times the median user."""
    burst_min_events: int = Field(50, ge=1)
    """...and at least this many events in the window."""
    burst_vote_z: float = Field(5.0, gt=0)
    """Quarantine a user whose thumbs-down rate is this many standard errors from everyone
    else's."""
    burst_min_votes: int = Field(30, ge=1)
    """...when the user cast at least this many thumbs."""

    @model_validator(mode="before")
    @classmethod
    def _no_trusted_users(cls, data: Any) -> Any:
        # Removed, not ignored: a config that relied on it would otherwise cap its agents.
        if isinstance(data, dict) and "trusted_users" in data:
            raise ValueError(
                "trusted_users was removed: a user id in a feedback body is a claim anyone can "
                "make. Trust is a key role now: send the reviewers' feedback with a key made by "
                "`ct-llm keys create --role reviewer`"
            )
        return data


class ReplayConfig(_Strict):
    fraction: float = Field(0.25, ge=0)
    """Rows drawn from the parent version's training split, as a share of the new rows."""
    golden_fraction: float = Field(1.0, ge=0, le=1)
    """Share of the tenant's imported golden examples mixed into every version."""


class CurateConfig(_Strict):
    heldout_fraction: float = Field(0.2, ge=0, lt=1)
    """Share of conversations kept out of training for evaluation."""
    seed: int = 0
    """Seed of the conversation-level split and the replay sample."""
    window: str = Field("new", pattern="^(new|all)$")
    """`new`: events since the parent version (plus replay); `all`: every event again."""
    rules: list[str] = [r for r in RULES if r != "regenerate_pair"]
    """Pairing rules to run (curate/rules.py); `regenerate_pair` is opt-in."""
    rating_margin: int = Field(2, ge=1, le=4)
    """Ratings on one prompt pair up when their means differ by at least this much."""
    sft_min_rating: float = Field(5, ge=1, le=5)
    """An answer rated at least this (mean over users) becomes an SFT example."""
    max_turn_chars: int = Field(8000, ge=1)
    """A message or answer longer than this drops the example."""
    control_tokens: list[str] = CONTROL_TOKENS
    """Strings that may not appear in any message or answer."""
    near_dup: bool = True
    """Drop near-duplicates (MinHash LSH) as well as exact duplicates."""
    guards: GuardsConfig = GuardsConfig()
    replay: ReplayConfig = ReplayConfig()

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, rules: list[str]) -> list[str]:
        unknown = sorted(set(rules) - set(RULES))
        if unknown:
            raise ValueError(f"unknown rule(s) {unknown}; known: {list(RULES)}")
        return rules


class JudgeConfig(_Strict):
    enabled: bool = True
    """Compare candidate and production answers with a pairwise LLM judge."""
    url: str | None = None
    """OpenAI-compatible endpoint of the judge; None: the serving vLLM (`serving.url`)."""
    model: str | None = None
    """Model name at that endpoint; None: the base model served by vLLM."""
    api_key_env: str | None = None
    """Environment variable holding the judge's API key (never the key itself in the file)."""
    heldout: bool = True
    """Judge on the prompts of the candidate's curated held-out split (plus any judge suites)."""
    max_prompts: int = Field(40, ge=1)
    """At most this many held-out prompts (a seeded sample)."""
    max_requests: int = Field(200, ge=2)
    """Request budget: two per comparison (both presentation orders)."""
    max_tokens: int = Field(64, ge=1)
    """Cap on a verdict's length."""
    guided: bool | None = None
    """Guided JSON verdicts: None tries them and falls back to free text if the server refuses."""


class RagConfig(_Strict):
    metrics: list[str] = ["faithfulness", "answer_relevancy"]
    """ragas metrics scored for rag suites, with the judge's endpoint as the LLM."""
    timeout_s: float = Field(180.0, gt=0)
    """Per sample and metric; a timeout is a counted failure, not a hung eval."""
    max_tokens: int = Field(512, ge=1)
    """Cap on each judge reply while scoring."""
    max_list_items: int = Field(10, ge=1)
    """Most statements the judge may list per answer; lower it for a judge with a short context
    (SmolLM2 behind a 1024-token server fits 3)."""

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, metrics: list[str]) -> list[str]:
        from ct_llm.evals.rag import check_metrics

        return list(check_metrics(metrics))


class PerformanceConfig(_Strict):
    enabled: bool = True
    """Measure latency and tokens/s of each model alone on the live server."""
    prompts: int = Field(8, ge=1)
    """Prompts per round (the first cases of the checked suites)."""
    rounds: int = Field(2, ge=1)
    """Rounds at least, alternating which model goes first, so drift on a shared machine
    cancels."""
    max_rounds: int = Field(8, ge=1)
    """Rounds at most: more are measured (two at a time) while the gate's latency interval
    straddles its limit; at this budget the policy's `latency_undecided` applies."""
    max_tokens: int = Field(32, ge=1)
    """Tokens generated per request (end-of-sequence ignored, so both models do equal work)."""
    concurrency: int = Field(4, ge=1)


class EvalConfig(_Strict):
    suites: list[str] = ["regression/general.yaml", "safety/harmful_requests.yaml"]
    """Suites under eval_suites/ run for every candidate."""
    concurrency: int = Field(8, ge=1)
    """Concurrent requests to the server while evaluating."""
    max_tokens: int = Field(96, ge=1)
    """Generation cap per eval answer, unless its suite or case sets its own `max_tokens`."""
    judge: JudgeConfig = JudgeConfig()
    rag: RagConfig = RagConfig()
    performance: PerformanceConfig = PerformanceConfig()
    candidate_serving: Literal["auto", "adapter", "merged"] = "auto"
    """How the candidate answers the eval prompts: `adapter` hot-loaded into the live server,
    or `merged` into the base weights on a second short-lived server (vLLM-CPU's LoRA path is
    ~5x slower than the base model). `auto`: merged when ct-llm manages a CPU server, else
    adapter. Latency is always measured on the live server with the adapter."""
    merged_memory_fraction: float = Field(0.1, gt=0, le=1)
    """`--gpu-memory-utilization` of the merged candidate's server (KV cache share)."""
    recheck: bool = True
    """Ask the discordant cases again (the candidate as the adapter on the live server, what
    users get; production in another batch): a case whose outcome changes is flaky and left
    out of the gate's counts (evals/recheck.py)."""
    recheck_sample: int = Field(24, ge=0)
    """Concordant cases also asked again (a seeded sample), to measure how often the fast path
    disagrees with the served one."""


# The `gate:` section is the promotion policy itself (gate/policy.py, pure and documented there).
GateConfig = GatePolicy


class DeployConfig(_Strict):
    canary_weight: float = Field(0.1, ge=0, le=1)
    """Share of conversations routed to a new canary."""
    canary: CanaryPolicy = CanaryPolicy()
    """When live feedback promotes or rolls back the canary (`ct-llm canary`; the policy and
    its sequential test are documented in deploy/canary.py)."""
    canary_check_interval_s: float = Field(60.0, ge=0)
    """`ct-llm api` checks every canary this often and promotes or rolls back by itself;
    0 turns the watcher off (then `ct-llm canary --apply` from a scheduler does it)."""


def check_cron(cron: str) -> str:
    """`cron` if it is a 5-field crontab expression, else a ValueError showing the form."""
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(cron)
    except ValueError as e:
        raise ValueError(
            f"'{cron}' is not a crontab expression (minute hour day month weekday, "
            f"e.g. '0 2 * * *'): {e}"
        ) from None
    return cron


def _check_timezone(name: str) -> str:
    """`name` if the system's time zone database knows it (IANA names)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone '{name}' (an IANA name such as 'UTC')") from None
    return name


class DriftConfig(_Strict):
    """The drift trigger (loop/drift.py): production's recent feedback against its baseline."""

    enabled: bool = True
    """Test the production model's feedback for quality drift at every cycle check."""
    window_h: float = Field(24.0, gt=0)
    """The recent window: the last this many hours."""
    baseline_days: float = Field(14.0, gt=0)
    """The baseline: the same model's feedback before the window, since it was promoted, at
    most this many days back."""
    metrics: list[Literal["thumbs_down_rate", "mean_rating"]] = [
        "thumbs_down_rate",
        "mean_rating",
    ]
    """Metrics tested; alpha is split equally between them."""
    min_votes: int = Field(100, ge=2)
    """Votes of a metric each window needs before it is tested."""
    alpha: float = Field(0.002, gt=0, lt=1)
    """Significance per check, over all metrics (0.001 each by default; measured false-alarm
    rate and detection delay in tests/unit/loop/test_drift.py)."""
    min_thumbs_down_increase: float = Field(0.02, ge=0, le=1)
    """Smallest rise of the thumbs-down rate worth a training run, however significant."""
    min_rating_drop: float = Field(0.1, ge=0, le=4)
    """Smallest fall of the mean rating worth a training run, however significant."""

    @field_validator("metrics")
    @classmethod
    def _some_metrics(cls, metrics: list[str]) -> list[str]:
        if not metrics or len(set(metrics)) != len(metrics):
            raise ValueError("metrics must name thumbs_down_rate and/or mean_rating, once each")
        return metrics


class PromptDriftConfig(_Strict):
    """The optional prompt-distribution trigger (loop/prompt_drift.py); needs the `rag` extra
    (sentence embeddings). Uses the windows of `triggers.drift`."""

    enabled: bool = False
    """Compare what users ask in the recent window with the baseline's, at every check."""
    max_prompts: int = Field(200, ge=10)
    """Prompts embedded per window (a seeded sample of its newest 5x as many)."""
    min_prompts: int = Field(50, ge=5)
    """Prompts each window needs before it is tested."""
    alpha: float = Field(0.01, gt=0, lt=1)
    """Significance of the permutation test."""
    permutations: int = Field(500, ge=99)
    """Random relabellings for the p-value (its resolution is 1 / (permutations + 1))."""


class TriggerConfig(_Strict):
    min_new_examples: int = Field(8, ge=1)
    """Volume trigger: train when at least this many new usable feedback events arrived."""
    schedule: str | None = None
    """Schedule trigger: a crontab expression (e.g. '0 2 * * *', nightly at 02:00); train when
    one of its times passed since the last cycle that trained. None: off."""
    timezone: str = "UTC"
    """Time zone of `schedule` and of `schedule.cron` (IANA name)."""
    drift: DriftConfig = DriftConfig()
    prompt_drift: PromptDriftConfig = PromptDriftConfig()
    retry_backoff_s: float = Field(300.0, gt=0)
    """After a failed cycle, the next one waits this long; doubled after each further failure."""
    retry_backoff_max_s: float = Field(21600.0, gt=0)
    """The longest wait between attempts, however many cycles failed in a row."""

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, cron: str | None) -> str | None:
        return None if cron is None else check_cron(cron)

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, name: str) -> str:
        return _check_timezone(name)


class ScheduleConfig(_Strict):
    """`ct-llm schedule`: when it checks the triggers, and for which tenants."""

    cron: str = "*/15 * * * *"
    """When the scheduler runs a cycle check (crontab, in `triggers.timezone`); `--interval`
    replaces it with a fixed period. Whether a check trains is the triggers' decision."""
    tenants: list[str] = []
    """Tenants to run cycles for; empty: the workspace's `tenant`."""
    all_tenants: bool = False
    """Every tenant that has an API key or feedback, re-read at each check (new tenants join
    without a restart); overrides `tenants`."""
    max_parallel: int = Field(1, ge=1)
    """Cycles of different tenants that may run at once (each one trains on this machine)."""

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str) -> str:
        return check_cron(cron)


class TrainConfig(_Strict):
    """How `ct-llm cycle` (and `ct-llm schedule`'s cycles) launch training; `ct-llm cycle
    --nproc / --accelerate-config` override it for one run. `ct-llm train` uses it too unless
    given its own flags."""

    nproc: int = Field(1, ge=1)
    """Data-parallel training processes on this machine (torchrun: gloo on CPU, NCCL on GPUs);
    1 trains in the cycle's own process. Above 1, keep `schedule.max_parallel` at 1: cycles of
    several tenants at once would share the GPUs and the launcher's default rendezvous port."""
    accelerate_config: str | None = None
    """An accelerate config file (FSDP, DeepSpeed ZeRO-3: recipes/accelerate/), resolved like
    `recipe`; training then starts with `accelerate launch` instead of torchrun. None: torchrun
    (or no launcher at all when `nproc` is 1)."""

    def with_overrides(self, nproc: int | None, accelerate_config: str | None) -> TrainConfig:
        """These settings with one run's `--nproc` / `--accelerate-config` (None: the setting),
        checked like the file's."""
        try:
            return TrainConfig(
                nproc=self.nproc if nproc is None else nproc,
                accelerate_config=accelerate_config or self.accelerate_config,
            )
        except ValidationError as e:
            raise ConfigError(format_validation_error("train", e)) from None


class WorkspaceConfig(_Strict):
    tenant: str = "default"
    """Tenant the CLI acts for unless `--tenant` says otherwise."""
    base_model: str = "smollm2-135m-instruct"
    """Name of the base model under `models/` (see `ct-llm model import`)."""
    adapter_name: str = "assistant"
    """Adapter versions are named `<tenant>-<adapter_name>-v<N>`."""
    recipe: str = "recipes/smollm2-135m/dpo_cpu.yaml"
    """Training recipe used by `ct-llm cycle`."""
    system_prompt: str | None = None
    """System prompt the gateway adds when a request has none (the chatbot's persona)."""
    database_url: str | None = None
    """SQLAlchemy URL; None: SQLite `ct-llm.db` in the workspace."""
    serving: ServingConfig = ServingConfig()
    api: ApiConfig = ApiConfig()
    curate: CurateConfig = CurateConfig()
    eval: EvalConfig = EvalConfig()
    gate: GateConfig = GateConfig()
    deploy: DeployConfig = DeployConfig()
    triggers: TriggerConfig = TriggerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    train: TrainConfig = TrainConfig()


def format_validation_error(source: str, err: ValidationError) -> str:
    """One line naming every bad key: `source: unknown key 'a.b'; 'c': Input should be ...`."""
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key '{key}'")
        else:
            parts.append(f"'{key}': {e['msg']}")
    return f"{source}: " + "; ".join(parts)


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=value` -> (["a", "b"], value); the value is parsed as YAML (numbers, bools, lists)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not key=value")
    key, raw = text.split("=", 1)
    if not key:
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    out = dict(data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.get(part)
            child = dict(child) if isinstance(child, dict) else {}
            node[part] = child
            node = child
        node[path[-1]] = value
    return out


def _env_overrides(environ: dict[str, str]) -> list[str]:
    out = []
    for name, value in environ.items():
        if name.startswith("CT_LLM__"):
            key = name[len("CT_LLM__") :].lower().replace("__", ".")
            out.append(f"{key}={value}")
    return out


def load_config(
    path: Path | None, overrides: list[str] | None = None, environ: dict[str, str] | None = None
) -> WorkspaceConfig:
    data: dict[str, Any] = {}
    if path is not None and path.exists():
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML: {e}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping of settings")
        data = loaded
    env = os.environ if environ is None else environ
    data = apply_overrides(data, _env_overrides(dict(env)) + list(overrides or []))
    try:
        return WorkspaceConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(str(path or "config"), e)) from None


def dump_config(config: WorkspaceConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def resolve_resource(path: str) -> Path:
    """A recipe or suite path as given, else relative to the ct-llm repository."""
    p = Path(path)
    if p.exists() or p.is_absolute():
        return p
    for root in (REPO_ROOT, REPO_ROOT / "eval_suites"):
        if (root / p).exists():
            return root / p
    return p
