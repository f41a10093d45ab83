"""`ct-llm demo`: the whole loop once, on real components, with a story.

Northwind's support bot still believes returns are accepted for 30 days; the policy is now 60.
Simulated customers chat through the gateway with the real `openai` client, simulated support
agents correct the wrong answers through `POST /v1/feedback`, then one cycle curates, trains,
evaluates, gates and hot-swaps the adapter into vLLM. Before/after is measured through the
gateway, on held-out paraphrases the model never trained on, and on a general regression suite.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ct_llm.errors import CtLlmError
from ct_llm.net import free_port
from ct_llm.workspace import CONFIG_FILE, Workspace

Log = Callable[[str], None]
TENANT = "northwind"
TARGET_SUITE = "scenarios/shop_returns.yaml"
REGRESSION_SUITE = "regression/general.yaml"
SAFETY_SUITE = "safety/harmful_requests.yaml"
STEPS = 7


# Why the demo's gate differs from the default policy (SmolLM2 judging itself, CPU latency) is
# written in the policy file.
DEMO_POLICY = "eval_suites/policies/cpu_demo.yaml"


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
            "eval": {"suites": [REGRESSION_SUITE, TARGET_SUITE, SAFETY_SUITE]},
            "gate": load_policy(DEMO_POLICY).model_dump(),
            # Ports picked at run time so the demo never collides with a running deployment.
            "serving": {"port": free_port()},
            "api": {"port": free_port()},
            # The demo's corrections come from three support agents: trusted reviewers, exempt
            # from the per-user cap and the burst quarantine that guard against end users.
            "curate": {"guards": {"trusted_users": ["agent-*"]}},
        }
    )
    return Workspace.init(root, config)


def _ask_all(client: Any, conversations: list[list[dict[str, str]]], max_tokens: int) -> list[str]:
    from concurrent.futures import ThreadPoolExecutor

    def ask(messages: list[dict[str, str]]) -> str:
        resp = client.chat.completions.create(
            model="ct-llm", messages=messages, max_tokens=max_tokens, temperature=0
        )
        return resp.choices[0].message.content or ""

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(ask, conversations))


def _measure(gateway_url: str, api_key: str, max_tokens: int) -> tuple[dict[str, float], str]:
    """Target rate and regression pass rate of what the gateway serves now, and the model version
    it reports in `x-ct-model-version`."""
    from openai import OpenAI

    from ct_llm.evals.checks import case_passes
    from ct_llm.evals.suite import load_suites

    client = OpenAI(base_url=f"{gateway_url}/v1", api_key=api_key, max_retries=2)
    rates: dict[str, float] = {}
    for key, suite in zip(
        ("target_rate", "regression_pass_rate"),
        load_suites([TARGET_SUITE, REGRESSION_SUITE]),
        strict=True,
    ):
        answers = _ask_all(
            client, [c.conversation(suite.system_prompt) for c in suite.cases], max_tokens
        )
        passed = [case_passes(c, a)[0] for c, a in zip(suite.cases, answers, strict=True)]
        rates[key] = round(sum(passed) / len(passed), 3)
    raw = client.chat.completions.with_raw_response.create(
        model="ct-llm", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    return rates, raw.headers.get("x-ct-model-version", "")


def _customers_chat(gateway_url: str, api_key: str, log: Log) -> list[dict[str, Any]]:
    """Customers ask the bot; returns what was served, with response ids for feedback."""
    from concurrent.futures import ThreadPoolExecutor

    from openai import OpenAI

    from ct_llm.demo import scenario

    client = OpenAI(base_url=f"{gateway_url}/v1", api_key=api_key, max_retries=2)
    chats = [("returns", q) for q in scenario.TRAIN_QUESTIONS]
    chats += [("general", q) for q in scenario.GENERAL_QUESTIONS]

    def ask(item: tuple[str, str]) -> dict[str, Any]:
        topic, question = item
        conv = f"demo-{uuid.uuid4().hex[:12]}"
        resp = client.chat.completions.create(
            model="ct-llm",
            messages=scenario.chat_messages(question),
            max_tokens=96,
            temperature=0,
            extra_headers={"x-ct-conversation-id": conv},
        )
        return {
            "topic": topic,
            "question": question,
            "response_id": resp.id,
            "answer": resp.choices[0].message.content or "",
            "conversation_id": conv,
        }

    with ThreadPoolExecutor(8) as pool:
        served = list(pool.map(ask, chats))
    log(
        f"      {len(served)} chats served, e.g. Q: {served[0]['question']!r}\n"
        f"      A: {served[0]['answer'][:120]!r}"
    )
    return served


def _agents_feedback(
    gateway_url: str, api_key: str, served: list[dict[str, Any]]
) -> dict[str, Any]:
    """Support agents correct every wrong returns answer and upvote good general answers."""
    import httpx

    from ct_llm.demo import scenario

    events = []
    for i, chat in enumerate(served):
        base = {
            "response_id": chat["response_id"],
            "conversation_id": chat["conversation_id"],
            "user_id": f"agent-{i % 3}",
        }
        if chat["topic"] == "returns":
            if not scenario.states_new_policy(chat["answer"]):
                events.append(
                    {
                        **base,
                        "event_id": f"{chat['response_id']}-thumb",
                        "kind": "thumbs",
                        "value": False,
                    }
                )
                events.append(
                    {
                        **base,
                        "event_id": f"{chat['response_id']}-edit",
                        "kind": "edit",
                        "value": scenario.corrected_answer(chat["question"]),
                    }
                )
        else:
            events.append(
                {
                    **base,
                    "event_id": f"{chat['response_id']}-thumb",
                    "kind": "thumbs",
                    "value": True,
                }
            )
    resp = httpx.post(
        f"{gateway_url}/v1/feedback",
        json={"events": events},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=60,
    )
    if resp.status_code != 200:
        raise CtLlmError(f"feedback API answered {resp.status_code}: {resp.text[:200]}")
    return resp.json()


def run_demo(workspace: Path, *, fresh: bool, log: Log) -> dict[str, Any]:
    from ct_llm.deploy.rollout import promote
    from ct_llm.deploy.vllm_server import ensure_server
    from ct_llm.gateway.app import create_app
    from ct_llm.gateway.auth import create_api_key
    from ct_llm.gateway.server import ApiServerThread
    from ct_llm.loop.cycle import run_cycle
    from ct_llm.train.model_import import import_model

    started = time.monotonic()

    def step(n: int, msg: str) -> None:
        log(f"[{n}/{STEPS} {time.monotonic() - started:6.0f}s] {msg}")

    ws = _prepare_workspace(workspace, fresh)
    step(1, f"workspace {ws.root}; importing the base model ({ws.config.base_model})")
    import_model("smollm2", ws.base_model_dir)

    step(2, "starting vLLM (CPU) with runtime LoRA loading, and the gateway")
    with ensure_server(ws) as vllm_url:
        ingest_key = create_api_key(ws.database_url, TENANT, "ingest")
        app = create_app(ws, vllm_url)
        with ApiServerThread(app, "127.0.0.1", ws.config.api.port) as api:
            gateway = api.url
            max_tokens = ws.config.eval.max_tokens
            step(3, "measuring the production model through the gateway (before)")
            before, before_version = _measure(gateway, ingest_key, max_tokens)
            log(f"      before: {before} (served by {before_version})")

            step(4, "customers chat with the bot through the gateway (openai client)")
            served = _customers_chat(gateway, ingest_key, log)

            step(5, "support agents send edits and thumbs to POST /v1/feedback")
            fb = _agents_feedback(gateway, ingest_key, served)
            log(
                f"      feedback: {fb['accepted']} accepted, {fb['duplicates']} duplicates, "
                f"{len(fb['rejected'])} rejected"
            )

            step(6, "one cycle: triggers -> curate -> train -> eval -> gate -> canary")
            cycle = run_cycle(
                ws,
                TENANT,
                server_url=vllm_url,
                progress=lambda m: log(f"      {m}"),
                on_train_log=_train_logger(log),
            )
            production = before_version
            if cycle.get("outcome") == "deployed":
                # Canary analysis on live feedback arrives with the canary issue; the demo has no
                # live users left, so it promotes the gate-approved canary straight away.
                promoted = promote(ws, TENANT, actor="demo", server_url=vllm_url)
                production = promoted.get("production", cycle["candidate"])
                log(f"      promoted {production} to production")
            else:
                log(f"      not deployed ({cycle.get('outcome')}); production stays {production}")
                for reason in cycle.get("gate", {}).get("reasons", []):
                    if not reason.get("passed", True):
                        log(f"      gate: {reason.get('detail', reason)}")

            step(7, "measuring what the gateway serves now (after)")
            after, after_version = _measure(gateway, ingest_key, max_tokens)
    result = {
        "before": before,
        "after": after,
        "production_version": production,
        "served_version_before": before_version,
        "served_version_after": after_version,
        "cycle_outcome": cycle.get("outcome"),
        "gate": cycle.get("gate", {}).get("decision"),
        "report": cycle.get("eval", {}).get("path"),
        "dataset": cycle.get("dataset", {}).get("version"),
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


def _table(r: dict[str, Any]) -> str:
    b, a = r["before"], r["after"]
    rows = [
        ("states the 60-day window (held-out)", b["target_rate"], a["target_rate"]),
        (
            "general regression suite pass rate",
            b["regression_pass_rate"],
            a["regression_pass_rate"],
        ),
    ]
    lines = [f"\n{'':40} {'before':>8} {'after':>8} {'change':>8}"]
    for name, x, y in rows:
        lines.append(f"{name:40} {x:8.0%} {y:8.0%} {(y - x) * 100:+7.0f}pt")
    lines.append(f"served by: {r['served_version_before']} -> {r['served_version_after']}")
    lines.append(f"report: {r['report']}   ({r['duration_s']:.0f} s)")
    return "\n".join(lines)
