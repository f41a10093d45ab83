"""What every command module shares: the Typer apps, consoles, common options and output."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from ct_llm import __version__

app = typer.Typer(
    name="ct-llm",
    help="Continuous fine-tuning for LLM chatbots: feedback -> curated data -> LoRA/DPO -> "
    "eval gate -> vLLM canary -> promote or roll back.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
model_app = typer.Typer(help="Base models.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (per tenant, with a role).", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(keys_app, name="keys")

out = Console()
err = Console(stderr=True)

WorkspaceOpt = typer.Option(
    Path("ct-llm-workspace"),
    "--workspace",
    "-w",
    envvar="CT_LLM_WORKSPACE",
    help="Workspace folder (config, database, artifacts).",
)
TenantOpt = typer.Option(None, "--tenant", "-t", help="Tenant (default: the workspace's).")
JsonOpt = typer.Option(False, "--json", help="Print the result as JSON.")


def open_workspace(workspace: Path, tenant: str | None = None):  # type: ignore[no-untyped-def]
    from ct_llm.workspace import Workspace

    ws = Workspace.open(workspace)
    return ws, tenant or ws.config.tenant


def progress(message: str) -> None:
    """Progress lines on stderr, printed as they are: no markup, no wrapping of long paths."""
    err.print(message, markup=False, highlight=False, soft_wrap=True)


def emit(result: Any, as_json: bool, human: str | None = None) -> None:
    # JSON goes to stdout unwrapped so scripts can parse it; the human text may be styled.
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
    else:
        out.print(human if human is not None else json.dumps(result, indent=2, default=str))


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"ct-llm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version_callback,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    pass
