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
    as_json: bool = JsonOpt,
) -> None:
    """The whole loop once on a built-in scenario (a shop bot learns a new return policy)."""
    from ct_llm.demo.run import run_demo

    res = run_demo(workspace, fresh=fresh, log=progress)
    if as_json:
        sys.stdout.write(json.dumps(res, default=str) + "\n")  # one line, last on stdout


@app.command()
def bench(what: str = typer.Argument(..., help="ingest | curate | train | eval | swap")) -> None:
    """Benchmarks that run the baseline and ct-llm side by side and print ratios."""
    from ct_llm.bench import run_bench

    run_bench(what, log=progress)
