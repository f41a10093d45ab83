"""Reading what a vLLM replica is busy with from its /metrics text (deploy/drain.py)."""

from __future__ import annotations

from ct_llm.deploy.drain import parse_activity

LORA = 'vllm:lora_requests_info{max_lora="4",running_lora_adapters="%s",waiting_lora_adapters="%s"}'
METRICS = "\n".join(
    [
        "# HELP vllm:num_requests_running Number of requests in model execution batches.",
        'vllm:num_requests_running{engine="0",model_name="smol"} 2.0',
        'vllm:num_requests_waiting{engine="0",model_name="smol"} 1.0',
        LORA % ("t-a-v1", "") + " 1.7e+09",
        LORA % ("t-a-v2,t-a-v3", "t-a-v4") + " 1.8e+09",  # the newest
        LORA % ("", "") + " 1.6e+09",
    ]
)


def test_the_newest_lora_series_is_what_runs_now() -> None:
    act = parse_activity(METRICS)
    assert act.requests == 3.0
    assert act.adapters == {"t-a-v2", "t-a-v3", "t-a-v4"}  # waiting ones count too
    assert act.uses("t-a-v4") and not act.uses("t-a-v1")  # v1's series is older


def test_an_idle_replica_uses_nothing_whatever_its_last_lora_series_says() -> None:
    idle = METRICS.replace("} 2.0", "} 0.0").replace("} 1.0", "} 0.0")
    act = parse_activity(idle)
    assert act.requests == 0.0 and not act.uses("t-a-v2")


def test_no_lora_metrics_means_no_adapter_in_use() -> None:
    act = parse_activity('vllm:num_requests_running{model_name="smol"} 5.0\n')
    assert act.requests == 5.0 and act.adapters == frozenset() and not act.uses("x")
