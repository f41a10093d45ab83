"""`ct-llm <verb>`: parses arguments, calls one library function, prints the result.

No logic lives only here. Importing this package must stay cheap (no torch): heavy modules are
imported inside the commands that need them. One module per group of verbs; importing them
registers their commands on `app`.
"""

from __future__ import annotations

import sys

# isort: off
# Importing a module registers its commands; this order is the order of `ct-llm --help`.
from ct_llm.cli import setup  # noqa: F401
from ct_llm.cli import loop  # noqa: F401
from ct_llm.cli import serving  # noqa: F401
from ct_llm.cli import tools  # noqa: F401

# isort: on
from ct_llm.cli.common import app, progress
from ct_llm.errors import CtLlmError

__all__ = ["app", "main"]


def main() -> None:
    # Standalone mode lets typer report usage errors (missing option, bad type) itself; the
    # errors a user can cause further in become one line on stderr and a non-zero exit.
    try:
        app()
    except CtLlmError as e:
        progress(f"error: {e}")
        sys.exit(e.exit_code)
    except OSError as e:
        progress(f"error: {e}")
        sys.exit(1)
