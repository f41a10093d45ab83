"""The demo and the benchmarks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from ct_llm.cli.common import (
    JsonOpt,
    app,
    progress,
)


@app.command()
def demo(
    workspace: Path = typer.Option(
        Path("demo-workspace"), "--workspace", "-w", help="Workspace for the demo."
    ),
    fresh: bool = typer.Option(False, "--fresh", help="Delete the demo workspace first."),
    cycles: int = typer.Option(
        1,
        "--cycles",
        min=1,
        max=3,
        help="1: a shop bot learns a new return window (60 days). 3: then the window changes "
        "again (90 days), and a flooding user poisons the third cycle's feedback.",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """The loop on a built-in scenario: a shop bot learns its new return policy from feedback."""
    from ct_llm.demo.run import run_demo

    res = run_demo(workspace, fresh=fresh, log=progress, cycles=cycles)
    if as_json:
        sys.stdout.write(json.dumps(res, default=str) + "\n")  # one line, last on stdout


@app.command()
def bench(
    what: str = typer.Argument(..., help="ingest | curate | train | eval | swap | demo"),
    events: int = typer.Option(10_000, help="ingest: events sent in batches."),
    batch: int = typer.Option(100, help="ingest: events per batch."),
    concurrency: int | None = typer.Option(
        None, min=1, help="ingest: concurrent clients for the batches (8); eval: requests (16)."
    ),
    rate: float = typer.Option(200.0, help="ingest: single-event posts per second."),
    seconds: float = typer.Option(10.0, help="ingest: how long the single-event load runs."),
    sizes: str = typer.Option(
        "100000,1000000", help="curate: event counts to measure, comma-separated (10x apart)."
    ),
    pairs: int = typer.Option(64, min=1, help="train: preference pairs, trained for one epoch."),
    pairs_per_step: int = typer.Option(4, min=1, help="train: pairs per optimizer step."),
    prompts: int = typer.Option(32, min=1, help="eval: chat prompts answered by each side."),
    max_tokens: int = typer.Option(
        None, min=1, help="eval: most new tokens per answer (64); swap: per chat answer (16)."
    ),
    swaps: int = typer.Option(10, min=2, help="swap: adapter swaps under load."),
    clients: int = typer.Option(4, min=1, help="swap: clients streaming chats without pause."),
    replicas: int = typer.Option(1, min=1, help="swap: vLLM replicas behind the gateway."),
    arrivals: float = typer.Option(
        None, min=0.01, help="swap: open-loop new conversations per second instead of --clients."
    ),
    runs: int = typer.Option(5, min=1, help="demo: demo runs, one after the other."),
    cycles: int = typer.Option(
        1, "--cycles", help="demo: 1 (the new return window) or 3 (all three acts)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="demo: folder for the runs' workspaces (default: a new temp folder)."
    ),
    keep: bool = typer.Option(False, "--keep", help="demo: keep each run's workspace."),
    as_json: bool = typer.Option(
        False, "--json", help="One line of JSON (default: the same JSON, indented)."
    ),
) -> None:
    """Run a baseline and ct-llm side by side; prints one JSON object with the ratios. `demo`
    runs the demo --runs times instead and prints the spread of its results."""
    from ct_llm.bench import run_bench

    options = {}
    if what == "ingest":
        options = dict(
            events=events, batch=batch, concurrency=concurrency or 8, rate=rate, seconds=seconds
        )
    elif what == "curate":
        try:
            options = {"sizes": tuple(int(s) for s in sizes.split(",") if s.strip())}
        except ValueError:
            raise typer.BadParameter(
                f"--sizes takes integers like 100000,1000000, not {sizes!r}"
            ) from None
    elif what == "train":
        options = {"pairs": pairs, "batch": pairs_per_step}
    elif what == "eval":
        options = {
            "prompts": prompts,
            "max_tokens": max_tokens or 64,
            "concurrency": concurrency or 16,
        }
    elif what == "swap":
        options = {
            "swaps": swaps,
            "clients": clients,
            "max_tokens": max_tokens or 16,
            "replicas": replicas,
            "rate": arrivals,
        }
    elif what == "demo":
        if cycles not in (1, 3):
            raise typer.BadParameter(f"--cycles takes 1 or 3 for bench demo, not {cycles}")
        options = {"runs": runs, "cycles": cycles, "out": out, "keep": keep}
    result = run_bench(what, log=progress, **options)
    sys.stdout.write(json.dumps(result, indent=None if as_json else 2) + "\n")
