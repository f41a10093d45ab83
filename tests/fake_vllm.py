"""A fake vLLM replica over real HTTP, for tests of the hot-swap path: what VllmClient and the
drain check call (health, models, metrics, load / unload LoRA, completion and chat probes), each
call recorded with a snapshot the test chooses (e.g. the registry's aliases at that moment), any
kind of call made to fail on request, loads made slow, and loads in flight counted.

Importable as `fake_vllm` from any test (pytest puts `tests/` on sys.path).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Aliases = dict[str, str | None]


@dataclass(frozen=True)
class Call:
    kind: str
    """health | models | metrics | load | unload | probe"""
    name: str | None
    """The adapter (or model) the call is about; None for health, models and metrics."""
    aliases: Aliases
    """What `read_aliases` returned when the call arrived (the registry's aliases, say)."""


class FakeVllm(ThreadingHTTPServer):
    """What VllmClient and the drain check call on a vLLM replica, with failures on request."""

    daemon_threads = True

    def __init__(self, base_model: str, read_aliases: Callable[[], Aliases]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.base_model = base_model
        self.read_aliases = read_aliases
        self.adapters: dict[str, str] = {}
        self.calls: list[Call] = []
        self.fail: dict[str, str] = {}
        """kind ("load", "probe", ...) -> "500" | "hang" (answers nothing until released) |
        "forget" (a load answered 200 that the replica then does not list)."""
        self.load_s = 0.0
        self.loads_in_flight = 0
        self.max_loads_in_flight = 0
        self.state_lock = threading.Lock()
        self.released = threading.Event()
        """Set at teardown: a hung handler returns (nothing else waits on it)."""

    def start(self) -> FakeVllm:
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def close(self) -> None:
        self.released.set()
        self.shutdown()
        self.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out closed the connection under a hung handler: expected here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def names(self, kind: str) -> list[str | None]:
        return [c.name for c in self.calls if c.kind == kind]


class _Handler(BaseHTTPRequestHandler):
    server: FakeVllm

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": {"message": message, "code": status}})

    def _record(self, kind: str, name: str | None) -> bool:
        """Record the call; False when it is to fail (the answer is sent here)."""
        server = self.server
        with server.state_lock:
            server.calls.append(Call(kind, name, server.read_aliases()))
        mode = server.fail.get(kind)
        if mode == "500":
            self._error(500, f"injected failure of {kind} {name}")
            return False
        if mode == "hang":
            server.released.wait(30)
            return False
        return True

    def do_GET(self) -> None:
        kind = {"/health": "health", "/v1/models": "models", "/metrics": "metrics"}.get(self.path)
        if kind is None:
            self._error(404, f"no route {self.path}")
        elif self._record(kind, None):
            if kind == "models":
                models = [{"id": self.server.base_model, "root": self.server.base_model}]
                models += [
                    {"id": name, "parent": self.server.base_model, "root": path}
                    for name, path in self.server.adapters.items()
                ]
                self._send(200, {"object": "list", "data": models})
            elif kind == "metrics":
                self._send(200, "vllm:num_requests_running{} 0.0\n", "text/plain")
            else:
                self._send(200, {})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        server = self.server
        if self.path in ("/v1/completions", "/v1/chat/completions"):
            if not self._record("probe", body["model"]):
                return
            if body["model"] not in (server.base_model, *server.adapters):
                self._error(404, f"The model `{body['model']}` does not exist.")
            elif self.path == "/v1/completions":
                self._send(200, {"choices": [{"text": " there"}]})
            else:
                self._send(200, {"choices": [{"message": {"content": "there"}}]})
        elif self.path == "/v1/load_lora_adapter":
            name = body["lora_name"]
            if not self._record("load", name):
                return
            with server.state_lock:
                server.loads_in_flight += 1
                server.max_loads_in_flight = max(server.max_loads_in_flight, server.loads_in_flight)
            time.sleep(server.load_s)
            with server.state_lock:
                server.loads_in_flight -= 1
            if name in server.adapters:  # vLLM's answer, word for word
                self._error(400, f"The lora adapter '{name}' has already been loaded.")
            else:
                if server.fail.get("load") != "forget":
                    server.adapters[name] = body["lora_path"]
                self._send(200, f"Success: LoRA adapter '{name}' added successfully.", "text/plain")
        elif self.path == "/v1/unload_lora_adapter":
            name = body["lora_name"]
            if not self._record("unload", name):
                return
            if server.adapters.pop(name, None) is None:
                self._error(404, f"The lora adapter '{name}' cannot be found.")
            else:
                self._send(
                    200, f"Success: LoRA adapter '{name}' removed successfully.", "text/plain"
                )
        else:
            self._error(404, f"no route {self.path}")
