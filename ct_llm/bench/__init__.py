"""`ct-llm bench <what>`: benchmarks that run a baseline and ct-llm side by side.

Each benchmark arrives with the issue that sets its bar; asking for one that does not exist yet
says so instead of printing made-up numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ct_llm.errors import CtLlmError

AVAILABLE = {
    "ingest": "feedback ingestion: ours vs a naive FastAPI + ORM endpoint",
    "curate": "curation end to end at 100k and 1M synthetic events",
    "train": "DPO training: ct-llm's shared-prompt engine vs stock TRL DPOTrainer",
    "eval": "eval generation: the vLLM server, concurrent requests vs a transformers loop",
    "swap": "adapter hot-swaps and a rollback under steady chat traffic through the gateway",
    "demo": "the demo N times in a row, each in a fresh workspace: the spread of its results",
}
PLANNED: dict[str, str] = {}


def run_bench(what: str, log: Callable[[str], None], **options: Any) -> dict[str, Any]:
    """Run one benchmark; returns its JSON-ready result."""
    if what == "ingest":
        from ct_llm.bench.ingest import run_ingest_bench

        return run_ingest_bench(log, **options)
    if what == "curate":
        from ct_llm.bench.curate import run_curate_bench

        return run_curate_bench(log, **options)
    if what == "train":
        from ct_llm.bench.train import run_train_bench

        return run_train_bench(log, **options)
    if what == "eval":
        from ct_llm.bench.eval import run_eval_bench

        return run_eval_bench(log, **options)
    if what == "swap":
        from ct_llm.bench.swap import run_swap_bench

        return run_swap_bench(log, **options)
    if what == "demo":
        from ct_llm.bench.demo import run_demo_bench

        return run_demo_bench(log, **options)
    if what not in PLANNED:
        names = ", ".join([*AVAILABLE, *PLANNED])
        raise CtLlmError(f"unknown benchmark '{what}'; choose one of: {names}")
    raise CtLlmError(
        f"`ct-llm bench {what}` is not implemented yet: it arrives with {PLANNED[what]}"
    )
