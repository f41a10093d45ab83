"""`ct-llm bench eval` end to end at a tiny size: the baseline loop, the real vLLM server on the
merged model and (diagnostic) on the base model with the adapter hot-loaded all answer every
prompt, tokens are counted and the JSON carries what the
README quotes. No timing is asserted here: the figures come from running the benchmark itself.

It starts its own vLLM server (not the session one), on $CT_LLM_TEST_BENCH_EVAL_PORT or 18032,
so it neither collides with the tests' server on 18011 nor with a benchmark run on 18031.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from required_services import missing_service

from ct_llm.bench.eval import bench_prompts, run_eval_bench

pytestmark = pytest.mark.integration

PORT = int(os.environ.get("CT_LLM_TEST_BENCH_EVAL_PORT", "18032"))


def test_bench_prompts_are_varied_and_deterministic() -> None:
    prompts = bench_prompts(32)
    assert len(prompts) == 32 and prompts == bench_prompts(32)
    assert all(conv[-1]["role"] == "user" and conv[-1]["content"] for conv in prompts)
    assert len({conv[-1]["content"] for conv in prompts}) == 32
    assert any(conv[0]["role"] == "system" for conv in prompts)  # support prompts
    assert any(conv[0]["role"] == "user" for conv in prompts)  # plain questions


def test_bench_eval_small_run(base_model_dir: Path) -> None:
    from ct_llm.config import ServingConfig
    from ct_llm.deploy.vllm_client import VllmClient
    from ct_llm.deploy.vllm_server import serving_python
    from ct_llm.errors import ServingError

    try:
        serving_python(ServingConfig())
    except ServingError as e:
        missing_service(f"no vLLM serving environment: {e}")
    lines: list[str] = []
    res = run_eval_bench(
        lines.append, prompts=4, max_tokens=8, concurrency=4, port=PORT, base=base_model_dir
    )
    for which in ("baseline", "ours"):
        side = res[which]
        assert side["answered"] == 4, f"{which} left prompts unanswered"
        # 4 prompts, at most 8 new tokens each; an answer has at least one token.
        assert 4 <= side["tokens"] <= 32
        assert side["wall_s"] > 0 and side["tokens_per_s"] > 0 and side["peak_rss_mb"] > 0
    assert res["ours"]["tokens_counted_by"] == "vllm:generation_tokens"
    assert res["ours"]["server_start_s"] > 0 and res["ours"]["concurrency"] == 4
    assert res["ours"]["candidate_serving"] == "merged" and res["ours"]["merge_s"] > 0
    assert len(res["ours"]["peak_rss_mb_by_process"]) >= 1
    lora = res["ours"]["diagnostic_adapter_path"]
    assert 4 <= lora["tokens"] <= 32 and lora["wall_s"] > 0 and lora["adapter_load_s"] > 0
    # Exact agreement is informational (bf16 greedy paths part at near-ties, even within 8
    # tokens); that merging is exact is tests/unit/evals/test_merged.py's job.
    assert 0.0 <= lora["answer_agreement_with_merged"] <= 1.0
    assert 0.0 <= lora["common_prefix_with_merged"] <= 1.0
    assert res["settings"]["prompts"] == 4 and res["settings"]["max_tokens"] == 8
    for key in ("speedup_wall", "speedup_tokens_per_s", "speedup_wall_with_startup"):
        assert res[key] > 0
    assert 0.0 <= res["answer_agreement"] <= 1.0
    assert set(res["targets_met"]) == {"speedup_wall"}
    assert any("vLLM healthy" in line for line in lines)
    # The server was stopped at the end: nothing answers on its port any more.
    assert not VllmClient(f"http://127.0.0.1:{PORT}", timeout=2.0).healthy()
