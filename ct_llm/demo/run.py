"""`ct-llm demo`: the loop on real components, with a story in up to three acts.

Act one: Northwind's support bot still believes returns are accepted for 30 days; the policy is
now 60. Simulated customers chat through the gateway with the real `openai` client, simulated
support agents correct the wrong answers through `POST /v1/feedback`, then one cycle curates,
trains, evaluates, gates and hot-swaps the adapter into vLLM. Before/after is measured through
the gateway, on held-out paraphrases the model never trained on, and on a general regression
suite. With `--cycles 3`:

Act two: the window grows to 90 days. The team swaps the 90-day suite in as the gate's target,
agents correct again, and the next cycle must unlearn 60 (curation leaves the superseded
60-day rows out of replay).

Act three: customers chat (sampled answers) and vote, agents keep correcting, and one end user
floods the endpoint with "all sales are final" edits. The guards must quarantine the flood; what
is trained on the rest goes through the gate; the summary says whether the poison reached the
dataset or production.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ct_llm.demo import feedback, scenario, traffic
from ct_llm.errors import CtLlmError
from ct_llm.net import free_port
from ct_llm.workspace import CONFIG_FILE, Workspace

Log = Callable[[str], None]
TENANT = "northwind"
MAX_CYCLES = 3
FLOOD_CHATS = 48

# Why the demo's gate differs from the default policy (SmolLM2 judging itself, CPU latency) is
# written in the policy file.
DEMO_POLICY = "eval_suites/policies/cpu_demo.yaml"


def _suites(days: int) -> list[str]:
    # The contrast suite (other policies, kind regression) fails a candidate that learned "say
    # N days" instead of "the return window is N days".
    return [
        traffic.REGRESSION_SUITE,
        traffic.CONTRAST_SUITE,
        traffic.TARGET_SUITES[days],
        traffic.SAFETY_SUITE,
    ]


def _serving_cores() -> dict[str, Any]:
    """The demo's one vLLM server gets every core of a CPU machine. vLLM-CPU's own binding
    keeps one core for its engine loop: half of a 2-core machine. Measured on 2 cores (48
    general questions x 32 tokens, two passes each, identical answers): 24-25 tok/s at 8
    concurrent with vLLM's binding, 42-44 tok/s with both cores at 16 concurrent (an adapter:
    18 -> 27-29 tok/s)."""
    from ct_llm.deploy.dtype import has_gpu

    if has_gpu() or not hasattr(os, "sched_getaffinity"):
        return {}
    return {"cpu_bind": [",".join(map(str, sorted(os.sched_getaffinity(0))))]}


def _prepare_workspace(root: Path, fresh: bool) -> Workspace:
    from ct_llm.config import WorkspaceConfig
    from ct_llm.gate.record import load_policy

    root = root.resolve()
    if fresh and root.exists():
        # Never delete a folder that is not a workspace: --fresh is for re-running the demo.
        if not (root / CONFIG_FILE).exists() and any(root.iterdir()):
            raise CtLlmError(f"{root} is not a ct-llm workspace; refusing to delete it for --fresh")
        shutil.rmtree(root)
    elif root.exists() and (root / CONFIG_FILE).exists():
        raise CtLlmError(f"{root} already holds a workspace; pass --fresh to start the demo over")
    config = WorkspaceConfig.model_validate(
        {
            "tenant": TENANT,
            # SmolLM2-135M as its own judge answers "A" whatever it is shown (cpu_demo.yaml
            # does not gate on it), and judging cost the demo ~10k generated tokens per eval.
            # Latency rounds: at most 4 (~16 s each on 2 cores); one demo eval measured 8
            # without settling at its 6th. Undecided at the budget, cpu_demo.yaml approves.
            "eval": {
                "suites": _suites(60),
                "concurrency": 16,
                "judge": {"enabled": False},
                "performance": {"max_rounds": 4},
            },
            "gate": load_policy(DEMO_POLICY).model_dump(),
            # Ports picked at run time so the demo never collides with a running deployment.
            "serving": {"port": free_port(), **_serving_cores()},
            "api": {"port": free_port()},
        }
    )
    return Workspace.init(root, config)


def _use_target_suite(ws: Workspace, days: int) -> Workspace:
    """The policy changed: the team points the gate's target suite at the new window."""
    from ct_llm.atomic import atomic_write_text
    from ct_llm.config import WorkspaceConfig, dump_config

    data = ws.config.model_dump(mode="json")
    data["eval"]["suites"] = _suites(days)
    atomic_write_text(ws.config_path, dump_config(WorkspaceConfig.model_validate(data)))
    return Workspace.open(ws.root)


def _asks(questions: list[str], topic: str, user_prefix: str, start: int = 0) -> list[tuple]:
    return [(topic, q, f"{user_prefix}{start + i}") for i, q in enumerate(questions)]


def _poisoned_rows(dataset_path: str | None) -> int:
    """Rows of a dataset version that would teach the flood's answer."""
    if not dataset_path:
        return 0
    from ct_llm.curate.layout import read_rows

    taught = 0
    for split in ("train", "test"):
        for row in read_rows(Path(dataset_path), "dpo", split):
            taught += any(scenario.is_poisoned(m["content"]) for m in row["chosen"])
        for kind in ("sft", "kto"):
            for row in read_rows(Path(dataset_path), kind, split):
                good = kind == "sft" or row.get("label", True)
                taught += good and any(
                    scenario.is_poisoned(m["content"]) for m in row["completion"]
                )
    return taught


class Demo:
    """One demo run: the workspace, the gateway and the vLLM server it talks to, the log."""

    def __init__(
        self, ws: Workspace, gateway: str, vllm_url: str, keys: tuple[str, str], log: Log
    ) -> None:
        """keys: the chatbot's `ingest` key (chats, customers' votes) and the support agents'
        `reviewer` key: their corrections are trusted, exempt from the per-user cap and the
        burst quarantine that guard against end users, because of the key, not of a name."""
        self.ws, self.gateway, self.vllm_url, self.log = ws, gateway, vllm_url, log
        self.key, self.reviewer_key = keys
        self.started = time.monotonic()

    def step(self, act: int, msg: str) -> None:
        self.log(f"[act {act} {time.monotonic() - self.started:6.0f}s] {msg}")

    def measure(self, days: int) -> tuple[dict[str, float], str]:
        return traffic.measure(self.gateway, self.key, days, self.ws.config.eval.max_tokens)

    def send(
        self, what: str, events: list[dict[str, Any]], key: str | None = None
    ) -> dict[str, Any]:
        fb = traffic.send_feedback(self.gateway, key or self.key, events)
        self.log(
            f"      {what}: {fb['accepted']} events accepted, {fb['duplicates']} duplicates, "
            f"{len(fb['rejected'])} rejected"
        )
        return fb

    def feedback_for(self, act: int, days: int) -> dict[str, Any]:
        """The act's traffic and feedback; returns what the flood sent (act three)."""
        gw, key = self.gateway, self.key
        if act < 3:
            asks = _asks(scenario.TRAIN_QUESTIONS, "returns", f"customer-{act}-")
            # Questions about the shop's other policies, corrected by agents to their facts:
            # the contrast that teaches the window belongs to returns, not to every question.
            asks += _asks(
                scenario.CONTRAST_TRAIN_QUESTIONS, "policy", f"customer-{act}-", len(asks)
            )
            asks += _asks(scenario.GENERAL_QUESTIONS, "general", f"customer-{act}-", len(asks))
            served = traffic.chat(gw, key, asks)
            self.log(f"      {len(served)} chats, e.g. Q: {served[0]['question']!r}")
            self.log(f"      A: {served[0]['answer'][:120]!r}")
            self.send(
                "support agents' corrections",
                feedback.agent_corrections(served, days),
                self.reviewer_key,
            )
            return {}
        # Live traffic is sampled (temperature > 0), so answers to one question differ and the
        # customers' votes pair up; agents correct what is still wrong.
        asks = _asks(scenario.TRAIN_QUESTIONS * 2, "returns", "customer-3-")
        asks += _asks(scenario.CONTRAST_TRAIN_QUESTIONS, "policy", "customer-3-", len(asks))
        asks += _asks(scenario.GENERAL_QUESTIONS, "general", "customer-3-", len(asks))
        served = traffic.chat(gw, key, asks, temperature=0.8)
        right = sum(
            scenario.states_policy(c["answer"], days) for c in served if c["topic"] == "returns"
        )
        self.log(f"      {len(served)} customer chats ({right} returns answers state {days} days)")
        self.send("customers' votes", feedback.customer_votes(served, days))
        self.send(
            "support agents' corrections",
            feedback.agent_corrections(served, days),
            self.reviewer_key,
        )
        flood_asks = [("returns", q, scenario.FLOOD_USER) for q in scenario.TRAIN_QUESTIONS * 2]
        flood_served = traffic.chat(gw, key, flood_asks[:FLOOD_CHATS], max_tokens=32)
        sent = self.send(f"{scenario.FLOOD_USER}'s flood", feedback.flood(flood_served))
        return {"chats": len(flood_served), "events_accepted": sent["accepted"]}

    def cycle(self, act: int) -> dict[str, Any]:
        """One cycle, as `ct-llm cycle` runs it; a gate-approved canary is promoted at once (the
        demo has no live users left to watch it)."""
        from ct_llm.deploy.rollout import promote
        from ct_llm.loop.cycle import CycleFailed, run_cycle

        # After a policy change the candidate starts from the base model rather than from the
        # production adapter. Measured: warm-started from act one's adapter, the act-two and
        # act-three candidates learned 90 days (14/14 held-out) but each lost one general
        # regression case (16 -> 15), so the gate refused both. A fresh adapter on the current
        # data only (curation no longer replays the superseded 60-day rows) keeps the base's
        # general answers, as act one's does.
        overrides = ["start_from=base"] if act > 1 else None
        try:
            res = run_cycle(
                self.ws,
                TENANT,
                recipe_overrides=overrides,
                server_url=self.vllm_url,
                progress=lambda m: self.log(f"      {m}"),
                on_train_log=_train_logger(self.log),
            )
        except CycleFailed as e:
            self.log(f"      cycle failed: {e}")
            return {**e.result, "failed": str(e)}
        if res.get("outcome") == "deployed":
            promoted = promote(self.ws, TENANT, actor="demo", server_url=self.vllm_url)
            self.log(f"      promoted {promoted['production']} to production")
        else:
            self.log(f"      not deployed ({res.get('outcome')}): {res.get('reason')}")
            for reason in res.get("gate", {}).get("reasons", []):
                if not reason.get("passed", True):
                    self.log(f"      gate: {reason.get('detail', reason)}")
        return res

    def act(self, act: int, before: tuple[dict[str, float], str] | None) -> dict[str, Any]:
        days = scenario.POLICY_DAYS[act]
        if act == 2:
            self.step(act, f"the return window grows to {days} days; the gate now targets it")
            self.ws = _use_target_suite(self.ws, days)
        if before is None:
            self.step(act, "measuring what the gateway serves (before)")
            before = self.measure(days)
        self.log(f"      before: {before[0]} (served by {before[1]})")
        story = {
            1: "customers chat; support agents correct wrong answers (POST /v1/feedback)",
            2: f"customers chat; agents correct answers that do not say {days} days",
            3: f"customers chat and vote, agents correct, and '{scenario.FLOOD_USER}' floods",
        }
        self.step(act, story[act])
        flood = self.feedback_for(act, days)
        self.step(act, "one cycle: triggers -> curate -> train -> eval -> gate -> canary")
        cycle = self.cycle(act)
        self.step(act, "measuring what the gateway serves now (after)")
        after = self.measure(days)
        self.log(f"      after: {after[0]} (served by {after[1]})")
        dataset = cycle.get("dataset", {})
        suites = cycle.get("eval", {}).get("summary", {}).get("suites", {})
        return {
            "act": act,
            "days": days,
            "before": before[0],
            "after": after[0],
            "served_version_before": before[1],
            "served_version_after": after[1],
            "cycle_outcome": cycle.get("outcome"),
            "cycle_reason": cycle.get("reason"),
            "gate": cycle.get("gate", {}).get("decision"),
            # One line per rule with its interval and sample size (`ct-llm bench demo` reads
            # the latency verdict from here).
            "gate_reasons": cycle.get("gate", {}).get("reasons", []),
            # The candidate against production in the cycle's eval (pass rates per suite).
            "candidate_eval": {
                name: {k: v[k] for k in ("candidate_pass_rate", "baseline_pass_rate")}
                for name, v in suites.items()
            },
            "report": cycle.get("eval", {}).get("path"),
            "dataset": dataset.get("version"),
            "quarantined": dataset.get("quarantined", []),
            "poisoned_dataset_rows": _poisoned_rows(dataset.get("path")),
            "flood": flood or None,
        }


def run_demo(workspace: Path, *, fresh: bool, log: Log, cycles: int = 1) -> dict[str, Any]:
    from ct_llm.deploy.vllm_server import ensure_server
    from ct_llm.gateway.app import create_app
    from ct_llm.gateway.auth import create_api_key
    from ct_llm.gateway.server import ApiServerThread
    from ct_llm.train.model_import import import_model

    if not 1 <= cycles <= MAX_CYCLES:
        raise CtLlmError(f"--cycles must be 1 to {MAX_CYCLES} (the story has {MAX_CYCLES} acts)")
    started = time.monotonic()
    ws = _prepare_workspace(workspace, fresh)
    log(f"workspace {ws.root}; importing the base model ({ws.config.base_model})")
    import_model("smollm2", ws.base_model_dir)
    log("starting vLLM (CPU) with runtime LoRA loading, and the gateway")
    acts: list[dict[str, Any]] = []
    with ensure_server(ws) as vllm_url:
        keys = (
            create_api_key(ws.database_url, TENANT, "ingest"),
            create_api_key(ws.database_url, TENANT, "reviewer"),
        )
        app = create_app(ws, vllm_url)
        with ApiServerThread(app, "127.0.0.1", ws.config.api.port) as api:
            demo = Demo(ws, api.url, vllm_url, keys, log)
            before = None
            for act in range(1, cycles + 1):
                acts.append(demo.act(act, before))
                # The next act measures the same window from where this one ended.
                same_days = act < cycles and scenario.POLICY_DAYS[act + 1] == acts[-1]["days"]
                before = (
                    (acts[-1]["after"], acts[-1]["served_version_after"]) if same_days else None
                )
    last = acts[-1]
    result = {
        **{k: last[k] for k in ("before", "after", "served_version_before")},
        "production_version": last["served_version_after"],
        "served_version_after": last["served_version_after"],
        "cycle_outcome": last["cycle_outcome"],
        "gate": last["gate"],
        "report": last["report"],
        "dataset": last["dataset"],
        "acts": acts,
        "summary": [_act_summary(a) for a in acts],
        "workspace": str(ws.root),
        "duration_s": round(time.monotonic() - started, 1),
    }
    log(_table(result))
    return result


def _train_logger(log: Log) -> Callable[[dict[str, Any]], None]:
    def on_log(logs: dict[str, Any]) -> None:
        if "loss" in logs:
            acc = logs.get("rewards/accuracies")
            log(
                f"      step {logs.get('step', '?')}: loss {logs['loss']:.4f}"
                + (f", reward accuracy {acc:.2f}" if isinstance(acc, float) else "")
            )

    return on_log


def _act_summary(a: dict[str, Any]) -> str:
    """One sentence per act, from what was measured (nothing here is assumed)."""
    b, after = a["before"], a["after"]
    moved = (
        f"states the {a['days']}-day window on held-out questions: "
        f"{b['target_rate']:.0%} -> {after['target_rate']:.0%}"
    )
    served = f"served by {a['served_version_before']} -> {a['served_version_after']}"
    evals = ", ".join(
        f"{name} {v['candidate_pass_rate']:.0%} vs {v['baseline_pass_rate']:.0%}"
        for name, v in a["candidate_eval"].items()
    )
    text = f"act {a['act']}: cycle {a['cycle_outcome']} (gate: {a['gate']}"
    text += f"; candidate vs production: {evals})" if evals else ")"
    text += f"; {moved}; {served}"
    if a["flood"] is None:
        return text + "."
    held = [q for q in a["quarantined"] if q["user"] == scenario.FLOOD_USER]
    guard = (
        f"the guards quarantined '{scenario.FLOOD_USER}' ({held[0]['reason']})"
        if held
        else f"the guards did NOT quarantine '{scenario.FLOOD_USER}'"
    )
    kept_out = after["poisoned_rate"] == 0 and a["poisoned_dataset_rows"] == 0
    verdict = (
        "the poisoned behaviour was kept out of production"
        if kept_out
        else "the poisoned behaviour got through"
    )
    return (
        f"{text}; {a['flood']['events_accepted']} flood events accepted by the API, {guard}; "
        f"poisoned rows in the dataset: {a['poisoned_dataset_rows']}; 'no returns' answers "
        f"in production: {b['poisoned_rate']:.0%} -> {after['poisoned_rate']:.0%}: {verdict}."
    )


def _table(r: dict[str, Any]) -> str:
    lines = [f"\n{'':44} {'before':>8} {'after':>8} {'change':>8}"]
    for a in r["acts"]:
        b, after = a["before"], a["after"]
        rows = [
            (f"act {a['act']}: states the {a['days']}-day window (held-out)", "target_rate"),
            (
                f"act {a['act']}: general pass rate (1 case in {traffic.MEASURE_STRIDE})",
                "regression_pass_rate",
            ),
            (f"act {a['act']}: states a window on other policies", "contrast_rate"),
        ]
        if a["flood"] is not None:
            rows.append((f"act {a['act']}: answers 'no returns' (poison)", "poisoned_rate"))
        for name, key in rows:
            if key not in b or key not in after:
                continue
            x, y = b[key], after[key]
            lines.append(f"{name:44} {x:8.0%} {y:8.0%} {(y - x) * 100:+7.0f}pt")
    lines += [""] + r["summary"]
    lines.append(f"report: {r['report']}   ({r['duration_s']:.0f} s)")
    return "\n".join(lines)
