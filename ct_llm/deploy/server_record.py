"""What ct-llm records about a vLLM server it started, so that a later process (the next
`ct-llm api`, a `ct-llm cycle` beside it) can tell that server from a foreign one on the
same port before it loads a tenant's adapters into it.

The record (`<workspace>/run/vllm-<port>.json`) holds the pid, port, model folder and a random
token that the server was started with in its environment. A server is ours when the pid is
alive, its command line names the port and the model folder, and its environment holds the
token: a healthy server that lists the base model's name proves nothing (any server started
for another workspace, or by someone else, does that).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from ct_llm.atomic import atomic_write_json

TOKEN_ENV = "CT_LLM_SERVER_TOKEN"


@dataclass(frozen=True)
class ServerRecord:
    """A server ct-llm started: its process, port, model folder and the token in its
    environment."""

    pid: int
    port: int
    model_dir: str
    token: str

    @staticmethod
    def new_token() -> str:
        return secrets.token_hex(16)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, asdict(self))


def read_record(path: Path) -> ServerRecord | None:
    try:
        data = json.loads(path.read_text())
        return ServerRecord(
            pid=int(data["pid"]),
            port=int(data["port"]),
            model_dir=str(data["model_dir"]),
            token=str(data["token"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def not_ours(path: Path, port: int, model_dir: Path) -> str | None:
    """Why the server on `port` is not the one this workspace started (None: it is)."""
    record = read_record(path)
    if record is None:
        return f"no record of starting it ({path.name})"
    if record.port != port or Path(record.model_dir) != model_dir:
        return f"the record is of another server (port {record.port}, model {record.model_dir})"
    try:
        proc = psutil.Process(record.pid)
        cmdline, environ = proc.cmdline(), proc.environ()
    except (psutil.Error, OSError):
        return f"the process it recorded (pid {record.pid}) is gone or not readable"
    if str(port) not in cmdline or str(model_dir) not in cmdline:
        return f"pid {record.pid} is now another program"
    if environ.get(TOKEN_ENV) != record.token:
        return f"pid {record.pid} does not hold the token it was started with"
    return None
