"""VllmServer's process handling with a stand-in "serving Python" (a script that answers /health
or dies), so start / health wait / failure report / process-group stop are tested without vLLM."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx
import pytest

from ct_llm.config import ServingConfig
from ct_llm.deploy.vllm_client import VllmClient
from ct_llm.deploy.vllm_server import VllmServer
from ct_llm.errors import ServingError

# A fake vLLM: writes its pid and a sleeping child's pid, then serves /health and /v1/models.
FAKE_SERVER = f"""#!{sys.executable}
import json, os, subprocess, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
args = sys.argv[1:]
port = int(args[args.index("--port") + 1])
name = args[args.index("--served-model-name") + 1]
assert os.environ["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
child = subprocess.Popen(["sleep", "300"])
open(os.environ["FAKE_PIDS"], "w").write(f"{{os.getpid()}} {{child.pid}}")
print("INFO fake vllm up", flush=True)
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"" if self.path == "/health" else json.dumps({{"data": [{{"id": name}}]}}).encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a):
        pass
HTTPServer(("127.0.0.1", port), H).serve_forever()
"""

FAILING_SERVER = """#!/bin/sh
echo "INFO loading"
echo "ValueError: Available memory on node 0 is less than requested memory for kv" >&2
exit 3
"""


def _script(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fake-python"
    path.write_text(text)
    path.chmod(0o755)
    return path


def _model_dir(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    return model


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited all the same.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_start_waits_for_health_and_stop_kills_the_whole_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids_file = tmp_path / "pids"
    monkeypatch.setenv("FAKE_PIDS", str(pids_file))
    cfg = ServingConfig(
        python=str(_script(tmp_path, FAKE_SERVER)), port=18004, startup_timeout_s=30
    )
    log = tmp_path / "logs" / "vllm.log"
    with VllmServer(_model_dir(tmp_path), "smol", cfg, log_path=log) as server:
        assert server.url == "http://127.0.0.1:18004"
        assert server.startup_s is not None and server.startup_s < 30
        assert VllmClient(server.url).list_models() == ["smol"]
        leader, child = (int(p) for p in pids_file.read_text().split())
        assert _alive(leader) and _alive(child)
        # A second server on a port that already answers is refused instead of clashing.
        with pytest.raises(ServingError, match="already answers"):
            VllmServer(_model_dir(tmp_path / "b"), "x", cfg, log_path=log).start()
    deadline = time.monotonic() + 10
    while (_alive(leader) or _alive(child)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(leader) and not _alive(child)
    with pytest.raises(httpx.HTTPError):
        httpx.get("http://127.0.0.1:18004/health", timeout=1)
    assert "fake vllm up" in log.read_text()


def test_a_server_that_dies_reports_the_cause(tmp_path: Path) -> None:
    cfg = ServingConfig(
        python=str(_script(tmp_path, FAILING_SERVER)), port=18005, startup_timeout_s=30
    )
    server = VllmServer(_model_dir(tmp_path), "smol", cfg, log_path=tmp_path / "vllm.log")
    with pytest.raises(ServingError) as info:
        server.start()
    msg = str(info.value)
    assert "exited with code 3" in msg
    assert "cause: ValueError: Available memory" in msg
    assert "serving.memory_fraction" in msg
    assert server.process is None


def test_unreachable_server_is_unhealthy_and_errors_clearly() -> None:
    client = VllmClient("http://127.0.0.1:18006", timeout=2)
    assert client.healthy() is False
    with pytest.raises(ServingError, match="cannot reach vLLM"):
        client.list_models()
