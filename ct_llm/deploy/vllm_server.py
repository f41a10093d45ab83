"""The vLLM server process: build its command line, start it, wait until healthy, stop it.

vLLM lives in its own virtual environment (it pins transformers/openai/fastapi versions that
differ from ct-llm's), so it is started as a separate process and reached over HTTP only.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ct_llm.config import REPO_ROOT, ServingConfig
from ct_llm.deploy.dtype import serving_dtype
from ct_llm.deploy.server_record import TOKEN_ENV, ServerRecord, not_ours
from ct_llm.deploy.vllm_client import VllmClient
from ct_llm.errors import ServingError
from ct_llm.lifecycle import Service
from ct_llm.workspace import Workspace

VLLM_MODULE = "vllm.entrypoints.openai.api_server"
# Runtime LoRA updating is what makes hot-swap possible: /v1/load_lora_adapter is off without it.
VLLM_ENV = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
# Variables of ct-llm's own environment that would make vLLM's Python import the wrong packages.
_ENV_TO_DROP = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")


def serving_python(cfg: ServingConfig) -> Path:
    """The Python of the serving environment: cfg.python, $CT_LLM_VLLM_PYTHON, or .venv-vllm."""
    raw = cfg.python or os.environ.get("CT_LLM_VLLM_PYTHON")
    path = Path(raw) if raw else REPO_ROOT / ".venv-vllm" / "bin" / "python"
    if not path.exists():
        raise ServingError(
            f"the vLLM serving environment is missing ({path} does not exist); "
            "run `make install-serving`, or set serving.python / $CT_LLM_VLLM_PYTHON"
        )
    return path


def build_vllm_command(
    model_dir: Path | str, served_name: str, cfg: ServingConfig, port: int
) -> list[str]:
    """The vLLM argument list after the Python executable (pure: no file or process access)."""
    return [
        "-m",
        VLLM_MODULE,
        "--model",
        str(model_dir),
        "--served-model-name",
        served_name,
        "--enable-lora",
        "--max-lora-rank",
        str(cfg.max_lora_rank),
        "--max-loras",
        str(cfg.max_loras),
        "--dtype",
        cfg.dtype,
        "--max-model-len",
        str(cfg.max_model_len),
        # On CPU this is the share of host memory for the KV cache; vLLM's 0.92 default fails there.
        "--gpu-memory-utilization",
        str(cfg.memory_fraction),
        "--host",
        cfg.host,
        "--port",
        str(port),
        *cfg.extra_args,
    ]


def _connect_host(host: str) -> str:
    # A server bound to every interface is reached through loopback.
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def server_urls(ws: Workspace) -> list[str]:
    """Every replica of the workspace: serving.url + serving.urls when set, else the managed
    host:port, port+1, ... (serving.replicas of them)."""
    cfg = ws.config.serving
    external = [u.rstrip("/") for u in [*([cfg.url] if cfg.url else []), *cfg.urls]]
    if external:
        return list(dict.fromkeys(external))
    host = _connect_host(cfg.host)
    return [f"http://{host}:{cfg.port + i}" for i in range(cfg.replicas)]


def server_url(ws: Workspace) -> str:
    """The first replica: where evals and one-off requests go."""
    return server_urls(ws)[0]


_EXCEPTION_LINE = re.compile(r"\b[A-Z]\w*(Error|Exception): ")
_LOGGED_BELOW_ERROR = re.compile(r"\b(DEBUG|INFO|WARNING)\b")
# Known start failures -> what the operator should change.
_HINTS = {
    "less than requested memory for kv": "the KV cache share is too small or too large for this "
    "machine; adjust serving.memory_fraction (on CPU it must also cover the model weights)",
    "Address already in use": "the port is taken; stop that process or set serving.port",
}


def meaningful_log_tail(text: str, lines: int = 8) -> str:
    """The part of a vLLM log worth showing: a hint for known failures, the distinct exception
    lines (the root cause is often far above the end of the log), then the last lines without
    blank lines or progress-bar redraws."""
    kept = [ln.rstrip() for ln in text.replace("\r", "\n").splitlines()]
    kept = [ln for ln in kept if ln.strip() and "it/s]" not in ln and "s/it]" not in ln]
    causes: list[str] = []
    for ln in kept:
        if _LOGGED_BELOW_ERROR.search(ln):
            continue  # e.g. vLLM's ulimit warning quotes "OSError: ..." without one happening
        match = _EXCEPTION_LINE.search(ln)
        if match and ln[match.start() :] not in causes:
            causes.append(ln[match.start() :])
    hints = [f"hint: {hint}" for needle, hint in _HINTS.items() if needle in text]
    if len(causes) > 3:
        causes = causes[:1] + causes[-2:]
    parts = hints + [f"cause: {c}" for c in causes] + ["log tail:"] + kept[-lines:]
    return "\n".join(parts)


class VllmServer(Service):
    """One vLLM OpenAI-compatible server process in its own process group.

    Use as a context manager: `with VllmServer(model_dir, "smol", cfg, port=18001) as s: s.url`.
    """

    def __init__(
        self,
        model_dir: Path | str,
        served_name: str,
        cfg: ServingConfig,
        *,
        port: int | None = None,
        log_path: Path | None = None,
        startup_timeout_s: float | None = None,
        cpu_bind: str | None = None,
        record_path: Path | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.record_path = record_path
        """Where to record the started server (server_record.py), so later processes of the
        workspace can tell it from a foreign one; None: not recorded (a private server)."""
        self._token = ServerRecord.new_token()
        self.cpu_bind = cpu_bind
        """Cores for vLLM-CPU's OpenMP threads (VLLM_CPU_OMP_THREADS_BIND); None: vLLM's own."""
        self.served_name = served_name
        # `auto` is resolved once, here: the command line names the dtype actually served.
        self.cfg = cfg.model_copy(update={"dtype": serving_dtype(cfg.dtype)})
        self.port = port if port is not None else cfg.port
        self.log_path = log_path or Path(f"vllm-{self.port}.log")
        self.startup_timeout_s = startup_timeout_s or cfg.startup_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None
        """Seconds from spawn until /health answered (set by start)."""

    @property
    def url(self) -> str:
        return f"http://{_connect_host(self.cfg.host)}:{self.port}"

    def command(self) -> list[str]:
        args = build_vllm_command(self.model_dir, self.served_name, self.cfg, self.port)
        return [str(serving_python(self.cfg)), *args]

    def environment(self, parent: Mapping[str, str]) -> dict[str, str]:
        """The server's environment: ours minus what would mislead vLLM's Python, plus
        runtime LoRA loading and the core binding."""
        env = {k: v for k, v in parent.items() if k not in _ENV_TO_DROP}
        env.update(VLLM_ENV)
        env[TOKEN_ENV] = self._token
        if self.cpu_bind:
            env["VLLM_CPU_OMP_THREADS_BIND"] = self.cpu_bind
        return env

    def start(self) -> VllmServer:
        if self.process is not None:
            raise ServingError(f"vLLM server on port {self.port} is already started")
        if not (self.model_dir / "config.json").exists():
            raise ServingError(f"{self.model_dir} is not a model folder (no config.json)")
        client = VllmClient(self.url, timeout=5.0)
        if client.healthy():
            raise ServingError(
                f"something already answers on {self.url}; stop it or pick another serving.port"
            )
        cmd = self.command()
        env = self.environment(os.environ)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- ct-llm: starting {' '.join(cmd)}\n".encode())
            log.flush()
            # Own session = own process group, so stop() also ends vLLM's engine-core children.
            self.process = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        try:
            self._wait_healthy(client, began)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - began
        if self.record_path is not None:
            record = ServerRecord(self.process.pid, self.port, str(self.model_dir), self._token)
            record.write(self.record_path)
        return self

    def _wait_healthy(self, client: VllmClient, began: float) -> None:
        assert self.process is not None
        deadline = began + self.startup_timeout_s
        while True:
            code = self.process.poll()
            if code is not None:
                raise ServingError(
                    f"vLLM exited with code {code} while starting (log: {self.log_path}):\n"
                    f"{self.log_tail()}"
                )
            if client.healthy():
                return
            if time.monotonic() > deadline:
                raise ServingError(
                    f"vLLM did not become healthy within {self.startup_timeout_s:.0f} s "
                    f"(raise serving.startup_timeout_s; log: {self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(1.0)

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return meaningful_log_tail(text, lines)

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM the process group, then SIGKILL it if it has not exited after `grace_s`."""
        proc, self.process = self.process, None
        if proc is None:
            return
        if self.record_path is not None:
            self.record_path.unlink(missing_ok=True)
        try:
            pgid = os.getpgid(proc.pid)
        except ProcessLookupError:
            pgid = None
        if pgid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
        if pgid is not None:
            # Also reaps children that outlive the leader (vLLM's engine-core process).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


@contextlib.contextmanager
def ensure_servers(
    ws: Workspace, log_dir: Path | None = None, started: list[VllmServer] | None = None
) -> Iterator[list[str]]:
    """Yield the base URLs of the workspace's healthy vLLM replicas; `started`, if given,
    receives the servers started here (the caller may restart them).

    serving.url / serving.urls set: use them (error if one does not answer). Else, per managed
    replica (serving.replicas on port, port+1, ...): reuse a healthy server already there that
    this workspace started and recorded (e.g. the one `ct-llm api` started; any other server on
    the port is an error), or start one on the base model - all missing ones at once - and stop
    the ones started here when the block ends.
    """
    cfg = ws.config.serving
    urls = server_urls(ws)
    if cfg.url or cfg.urls:
        down = [u for u in urls if not VllmClient(u, timeout=10.0).healthy()]
        if down:
            raise ServingError(
                f"serving replica(s) {', '.join(down)} do not answer /health; start them or "
                "fix serving.url / serving.urls"
            )
        yield urls
        return
    missing: list[VllmServer] = []
    for i, url in enumerate(urls):
        port = cfg.port + i
        record_path = ws.run_dir / f"vllm-{port}.json"
        if VllmClient(url, timeout=10.0).healthy():
            # Adopted only if this workspace started it: a foreign server would be given
            # this workspace's adapters and serve its tenants.
            why = not_ours(record_path, port, ws.require_base_model())
            if why is not None:
                raise ServingError(
                    f"a server this workspace did not start answers on {url} ({why}); stop it, "
                    "set serving.port to a free port, or name it in serving.url to use it"
                )
            continue
        log_path = (log_dir or ws.logs_dir) / f"vllm-{port}.log"
        missing.append(
            VllmServer(
                ws.require_base_model(),
                ws.config.base_model,
                cfg,
                port=port,
                log_path=log_path,
                cpu_bind=cfg.cpu_bind[i] if cfg.cpu_bind else None,
                record_path=record_path,
            )
        )
    with contextlib.ExitStack() as stack:
        if missing:
            # Started side by side: their start-up (weights, compile, KV cache) overlaps.
            try:
                with ThreadPoolExecutor(max_workers=len(missing)) as pool:
                    results = list(pool.map(_start_or_error, missing))
            except BaseException:
                # Interrupted while they start (SIGTERM under exit_on_signals): the pool has
                # let every start finish; stop them all (stop() is a no-op for one that never
                # started) rather than leave servers nobody will stop.
                for server in missing:
                    server.stop()
                raise
            for server in results:
                if isinstance(server, VllmServer):
                    stack.callback(server.stop)
                    if started is not None:
                        started.append(server)
            errors = [e for e in results if isinstance(e, BaseException)]
            if errors:
                raise errors[0]
        yield urls


def _start_or_error(server: VllmServer) -> VllmServer | BaseException:
    try:
        return server.start()
    except BaseException as e:  # reported by the caller once every start has finished
        return e


@contextlib.contextmanager
def ensure_server(ws: Workspace, log_dir: Path | None = None) -> Iterator[str]:
    """`ensure_servers`, for callers that talk to one replica (evals): the first one."""
    with ensure_servers(ws, log_dir) as urls:
        yield urls[0]
