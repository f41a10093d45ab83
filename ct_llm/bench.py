"""`ct-llm bench <what>`: benchmarks that run a baseline and ct-llm side by side.

Each benchmark arrives with the issue that sets its bar; asking for one that does not exist yet
says so instead of printing made-up numbers.
"""

from __future__ import annotations

from collections.abc import Callable

from ct_llm.errors import CtLlmError

PLANNED = {
    "ingest": "feedback ingestion (issue #3)",
    "curate": "curation (issue #4)",
    "train": "training speed vs stock TRL (issue #5)",
    "eval": "vLLM eval vs a transformers generate loop (issue #6)",
    "swap": "adapter hot-swap under load (issue #7)",
}


def run_bench(what: str, log: Callable[[str], None]) -> None:
    if what not in PLANNED:
        raise CtLlmError(f"unknown benchmark '{what}'; choose one of: {', '.join(PLANNED)}")
    raise CtLlmError(
        f"`ct-llm bench {what}` is not implemented yet: it arrives with {PLANNED[what]}"
    )
