"""One feedback server for `ct-llm bench ingest`, in a process of its own so the load generator
does not share its interpreter (and GIL) with the server it measures.

    python -m ct_llm.bench.ingest_server {ours|baseline} WORKSPACE PORT
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from ct_llm.workspace import Workspace

# The feedback path never calls the model server; chat is not part of this benchmark.
NO_UPSTREAM = "http://127.0.0.1:9"


def main(argv: list[str]) -> None:
    if len(argv) != 3 or argv[0] not in ("ours", "baseline"):
        sys.exit(__doc__)
    which, root, port = argv[0], Path(argv[1]), int(argv[2])
    ws = Workspace.open(root)
    if which == "ours":
        from ct_llm.gateway.app import create_app

        app = create_app(ws, NO_UPSTREAM)
    else:
        from ct_llm.bench.ingest_baseline import create_baseline_app

        app = create_baseline_app(ws.database_url)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main(sys.argv[1:])
