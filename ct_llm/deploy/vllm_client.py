"""A small synchronous client for the vLLM server's admin side: health, models, LoRA hot-swap.

Chat traffic goes through the gateway (or the `openai` client); this client is for lifecycle
operations and a tiny probe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from ct_llm.errors import ServingError


def _server_message(resp: httpx.Response) -> str:
    """vLLM answers errors as {"error": {"message": ...}} (older: {"message": ...})."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:500] or f"HTTP {resp.status_code}"
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if body.get("message"):
            return str(body["message"])
    return str(body)[:500]


def _same_path(a: str, b: str) -> bool:
    return Path(a).resolve() == Path(b).resolve()


class VllmClient:
    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            with httpx.Client(timeout=self.timeout) as http:
                return http.request(method, self.base_url + path, **kwargs)
        except (httpx.ReadTimeout, httpx.WriteTimeout) as e:
            # Reached but silent: "is it running?" would send the user the wrong way. A load
            # may still complete after this; no alias names it, and the next try reuses it.
            raise ServingError(
                f"vLLM at {self.base_url} did not answer {method} {path} within "
                f"{self.timeout:g} s ({type(e).__name__}); it may be overloaded or stuck: see "
                "its log, then retry"
            ) from None
        except httpx.HTTPError as e:
            raise ServingError(
                f"cannot reach vLLM at {self.base_url} ({type(e).__name__}: {e}); "
                "is it running? `ct-llm api` starts one, or set serving.url"
            ) from None

    def healthy(self) -> bool:
        try:
            return self._request("GET", "/health").status_code == 200
        except ServingError:
            return False

    def _models(self) -> list[dict[str, Any]]:
        resp = self._request("GET", "/v1/models")
        if resp.status_code != 200:
            raise ServingError(f"vLLM at {self.base_url} /v1/models: {_server_message(resp)}")
        return list(resp.json().get("data", []))

    def list_models(self) -> list[str]:
        """Served names: the base model and every loaded adapter."""
        return [m["id"] for m in self._models()]

    def loaded_adapters(self) -> dict[str, str]:
        """Adapter name -> the path it was loaded from (vLLM lists it as the model's `root`)."""
        return {m["id"]: str(m.get("root", "")) for m in self._models() if m.get("parent")}

    def load_adapter(self, name: str, path: str | Path) -> bool:
        """Load a LoRA adapter under `name`; True if it was loaded now, False if it already was.
        Loading a name again from the same path is a no-op: version names are immutable, so
        the same name means the same weights."""
        path = str(path)
        resp = self._request(
            "POST", "/v1/load_lora_adapter", json={"lora_name": name, "lora_path": path}
        )
        if resp.status_code == 200:
            return True
        message = _server_message(resp)
        if "already been loaded" in message:
            loaded_from = self.loaded_adapters().get(name)
            if loaded_from and not _same_path(loaded_from, path):
                raise ServingError(
                    f"vLLM at {self.base_url} already serves an adapter named '{name}' from "
                    f"{loaded_from}, not {path}; version names are immutable, so restart serving "
                    "or use a new version"
                )
            return False
        raise ServingError(
            f"vLLM at {self.base_url} refused to load adapter '{name}' from {path}: {message}"
        )

    def unload_adapter(self, name: str) -> None:
        """Unload an adapter; one that is not loaded counts as unloaded."""
        resp = self._request("POST", "/v1/unload_lora_adapter", json={"lora_name": name})
        if resp.status_code == 200 or resp.status_code == 404:
            return
        raise ServingError(
            f"vLLM at {self.base_url} refused to unload adapter '{name}': {_server_message(resp)}"
        )

    def chat(self, model: str, messages: list[dict[str, Any]], max_tokens: int = 16) -> str:
        """One greedy chat completion; returns the answer text (a probe, not the serving path)."""
        resp = self._request(
            "POST",
            "/v1/chat/completions",
            json={
                "model": model,
                "messages": messages,
                "max_tokens": max_tokens,
                "temperature": 0.0,
            },
        )
        if resp.status_code != 200:
            raise ServingError(
                f"vLLM at {self.base_url}: chat with '{model}' failed: {_server_message(resp)}"
            )
        return str(resp.json()["choices"][0]["message"]["content"] or "")

    def complete(self, model: str, prompt: str, max_tokens: int = 1) -> str:
        """One greedy plain-text completion; returns the text. The swap's probe: no chat
        template, so the prompt is a couple of tokens (on a busy vLLM-CPU a templated chat probe
        took 0.42 s, this 0.25 s)."""
        resp = self._request(
            "POST",
            "/v1/completions",
            json={"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0},
        )
        if resp.status_code != 200:
            raise ServingError(
                f"vLLM at {self.base_url}: completion with '{model}' failed: "
                f"{_server_message(resp)}"
            )
        return str(resp.json()["choices"][0]["text"] or "")
