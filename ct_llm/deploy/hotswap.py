"""Adapter operations across every vLLM replica: load + verify + probe, and drain + unload.

Each replica keeps its own adapter table, so a version is servable only once every replica
lists it and has answered a probe with it; only then may the gateway route to it (the caller
moves the alias after `load_everywhere`). Unloading waits until no replica still works on the
name (deploy/drain.py), because unloading under in-flight requests fails them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ct_llm.deploy.adapter_checks import check_adapter
from ct_llm.deploy.drain import wait_drained
from ct_llm.deploy.vllm_client import VllmClient
from ct_llm.errors import ServingError
from ct_llm.workspace import Workspace

log = logging.getLogger(__name__)
# The probe: one token generated with the adapter proves vLLM can serve it (weights in a LoRA slot,
# a forward pass through them); its text says nothing, so the prompt is as short as possible.
PROBE_PROMPT = "Hello"


@dataclass
class LoadResult:
    load_s: float
    """Longest load over the replicas (0 where it was loaded already)."""
    probe_s: float
    """Longest probe answer over the replicas."""
    probe_answer: str


class Replicas:
    """The vLLM replicas of a workspace (or the given URLs)."""

    def __init__(self, ws: Workspace, urls: Sequence[str]) -> None:
        if not urls:
            raise ServingError("no vLLM replica to act on")
        self.ws = ws
        self.clients = [VllmClient(u) for u in urls]

    @property
    def urls(self) -> list[str]:
        return [c.base_url for c in self.clients]

    @staticmethod
    def _load_one(client: VllmClient, name: str, path: str, probe: bool) -> LoadResult:
        """Load into one replica, then check it is listed and answers - both at once: on a
        busy replica every round trip counts, and the swap waits for the slowest replica."""
        began = time.monotonic()
        loaded_now = client.load_adapter(name, path)
        load_s = time.monotonic() - began if loaded_now else 0.0

        def probe_once() -> tuple[float, str]:
            began = time.monotonic()
            answer = client.complete(name, PROBE_PROMPT, max_tokens=1)
            return time.monotonic() - began, answer

        with ThreadPoolExecutor(max_workers=2) as pool:
            listed = pool.submit(client.list_models)
            probed = pool.submit(probe_once) if probe else None
            if name not in listed.result():
                raise ServingError(
                    f"vLLM at {client.base_url} accepted adapter '{name}' but does not list it "
                    "in /v1/models; check the server log"
                )
            probe_s, answer = probed.result() if probed else (0.0, "")
        return LoadResult(load_s, probe_s, answer)

    def load_everywhere(
        self,
        name: str,
        path: str,
        *,
        probe: bool = True,
        files_sha256: Mapping[str, str] | None = None,
    ) -> LoadResult:
        """Check the adapter folder once (safetensors only, inside adapters/, rank, base
        model, every file's sha256 against the manifest and `files_sha256`, the registry's
        copy), then load it into every replica at once, verify each lists it and answers a
        one-token probe with it. Any replica failing fails the whole load."""
        ws = self.ws
        base_dir = ws.base_model_dir if (ws.base_model_dir / "config.json").exists() else None
        check_adapter(
            path, ws.adapters_dir, ws.config.serving.max_lora_rank, base_dir, files_sha256
        )
        resolved = str(Path(path).resolve())
        with ThreadPoolExecutor(max_workers=len(self.clients)) as pool:
            results = list(
                pool.map(lambda c: self._load_one(c, name, resolved, probe), self.clients)
            )
        return LoadResult(
            max(r.load_s for r in results),
            max(r.probe_s for r in results),
            results[0].probe_answer,
        )

    def loaded(self) -> set[str]:
        """Adapter names loaded on any replica (unreachable replicas are skipped)."""
        names: set[str] = set()
        for client in self.clients:
            try:
                names |= set(client.loaded_adapters())
            except ServingError as e:
                log.warning("cannot list adapters of %s: %s", client.base_url, e)
        return names

    def drain_and_unload(self, names: Sequence[str]) -> dict[str, str]:
        """Unload each name from every replica once no request for it is left there.
        Returns name -> "unloaded" | "draining" (still busy after serving.drain_timeout_s: left
        loaded, harmless, retried by the next swap) | the error."""
        out: dict[str, str] = {}
        timeout_s = self.ws.config.serving.drain_timeout_s
        for name in names:
            if not wait_drained(self.urls, name, timeout_s):
                out[name] = "draining"
                continue
            try:
                for client in self.clients:
                    client.unload_adapter(name)
                out[name] = "unloaded"
            except ServingError as e:
                out[name] = str(e)
        return out
