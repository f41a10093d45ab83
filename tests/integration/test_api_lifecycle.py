"""`ct-llm api` as a process (issue 17, lifecycle): SIGTERM lets a chat in flight finish,
stops the model server it started and removes its record; a server on the port that this
workspace did not start is refused instead of adopted. The model server is a stand-in script
(serving.python) that answers like vLLM, slowly, so no vLLM is needed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from ct_llm.config import ServingConfig, WorkspaceConfig
from ct_llm.deploy.server_record import read_record
from ct_llm.gateway.auth import create_api_key
from ct_llm.net import free_port
from ct_llm.workspace import Workspace

FAKE_VLLM = f"""#!{sys.executable}
import json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
args = sys.argv[1:]
port = int(args[args.index("--port") + 1])
name = args[args.index("--served-model-name") + 1]
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"" if self.path == "/health" else json.dumps({{"data": [{{"id": name}}]}}).encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(float(os.environ.get("FAKE_DELAY_S", "0")))
        body = json.dumps({{"id": "x", "object": "chat.completion", "created": 0, "model": name,
            "choices": [{{"index": 0, "finish_reason": "stop",
                          "message": {{"role": "assistant", "content": "Paris."}}}}]}}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def _workspace(tmp_path: Path, vllm_port: int) -> Workspace:
    script = tmp_path / "fake-vllm"
    script.write_text(FAKE_VLLM)
    script.chmod(0o755)
    serving = ServingConfig(python=str(script), port=vllm_port, startup_timeout_s=30)
    ws = Workspace.init(tmp_path / "ws", WorkspaceConfig(serving=serving))
    ws.base_model_dir.mkdir(parents=True)
    (ws.base_model_dir / "config.json").write_text("{}")
    return ws


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (ProcessLookupError, OSError):
        return False


def _wait(what: str, ok, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _start_api(ws: Workspace, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ct_llm.cli",
            "api",
            "--workspace",
            str(ws.root),
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_sigterm_drains_the_chat_in_flight_and_stops_the_servers_it_started(
    tmp_path: Path,
) -> None:
    vllm_port, api_port = free_port(), free_port()
    ws = _workspace(tmp_path, vllm_port)
    key = create_api_key(ws.database_url, "acme", "ingest")
    env = {**os.environ, "FAKE_DELAY_S": "3"}
    api = _start_api(ws, api_port, env)
    url = f"http://127.0.0.1:{api_port}"
    try:
        _wait("the API", lambda: _up(url) or api.poll() is not None, 60)
        assert api.poll() is None, api.stdout.read().decode() if api.stdout else ""
        record = read_record(ws.run_dir / f"vllm-{vllm_port}.json")
        assert record is not None and _alive(record.pid)

        answers: list[httpx.Response] = []
        chat = threading.Thread(
            target=lambda: answers.append(
                httpx.post(
                    url + "/v1/chat/completions",
                    json={"messages": [{"role": "user", "content": "Capital of France?"}]},
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=30,
                )
            )
        )
        chat.start()
        time.sleep(1.0)  # the chat is waiting for the (slow) model server
        api.send_signal(signal.SIGTERM)
        chat.join(30)
        assert answers and answers[0].status_code == 200, answers
        assert answers[0].json()["choices"][0]["message"]["content"] == "Paris."
        api.wait(60)
        _wait("the model server to stop", lambda: not _alive(record.pid))
        assert not (ws.run_dir / f"vllm-{vllm_port}.json").exists()
    finally:
        if api.poll() is None:
            api.kill()


def test_a_server_this_workspace_did_not_start_is_refused(tmp_path: Path) -> None:
    vllm_port = free_port()
    ws = _workspace(tmp_path, vllm_port)
    # Someone else's server on the port, listing the same model name.
    foreign = subprocess.Popen(
        [
            str(Path(ws.config.serving.python or "")),
            str(ws.base_model_dir),
            "--port",
            str(vllm_port),
            "--served-model-name",
            ws.config.base_model,
        ]
    )
    try:
        _wait("the foreign server", lambda: _up_plain(vllm_port))
        api = _start_api(ws, free_port(), dict(os.environ))
        output, _ = api.communicate(timeout=60)
        assert api.returncode != 0
        text = output.decode()
        assert "did not start" in text and "serving.url" in text, text
        assert foreign.poll() is None  # left alone
    finally:
        foreign.kill()
        foreign.wait()


def _up_plain(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
