"""Run the API: `run_api` for `ct-llm api` (blocks), `ApiServerThread` to run any ASGI app
in-process on a real port (the demo, the tests)."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import uvicorn

from ct_llm.errors import CtLlmError
from ct_llm.lifecycle import Service
from ct_llm.workspace import Workspace


def run_api(
    ws: Workspace,
    upstream_url: str | list[str],
    host: str,
    port: int,
    managed: Sequence[Any] = (),
) -> None:
    """Serve the gateway + feedback API until SIGTERM or SIGINT; `managed`: the vLLM servers
    this process started (see create_app).

    On the signal uvicorn stops accepting connections, lets the requests in flight finish (at
    most `api.drain_s`), runs the app's shutdown (queued feedback is committed) and returns.
    It then re-raises the signal; under `exit_on_signals` that unwinds the caller's `with`
    blocks, so the servers `ct-llm api` started are stopped too."""
    from ct_llm.gateway.app import create_app

    app = create_app(ws, upstream_url, managed)
    api = ws.config.api
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        limit_concurrency=api.max_connections,
        timeout_keep_alive=api.keep_alive_s,
        timeout_graceful_shutdown=api.drain_s,
    )
    uvicorn.Server(config).run()


@contextlib.contextmanager
def exit_on_signals() -> Iterator[None]:
    """SIGTERM (and SIGINT) raise SystemExit in the main thread for the block, so `with` blocks
    and `finally` clauses run: the default SIGTERM action ends the process on the spot and
    leaves child servers running."""

    def leave(sig: int, _frame: Any) -> None:
        raise SystemExit(128 + sig)

    previous = {sig: signal.signal(sig, leave) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class ApiServerThread(Service):
    """An ASGI app served by uvicorn in a background thread.

    with ApiServerThread(create_app(ws, upstream), "127.0.0.1", 18201) as server:
        httpx.get(server.url + "/healthz")
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 8000,
        health_path: str = "/healthz",
        log_level: str = "warning",
    ) -> None:
        self.host, self.port, self.health_path = host, port, health_path
        self.server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on")
        )
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> ApiServerThread:
        """Start serving and return once `health_path` answers (any HTTP status)."""
        self.thread = threading.Thread(target=self.server.run, name=f"api-{self.port}", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.thread.is_alive():
                raise CtLlmError(
                    f"API server on {self.url} stopped while starting "
                    f"(is port {self.port} already in use?)"
                )
            if self.server.started:
                try:
                    httpx.get(self.url + self.health_path, timeout=2.0)
                    return self
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise CtLlmError(
            f"API server on {self.url} did not answer {self.health_path} within {timeout_s:.0f} s"
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout_s)
            self.thread = None
