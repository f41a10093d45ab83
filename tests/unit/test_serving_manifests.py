"""serving/: the Docker Compose file and the Kubernetes manifests agree with ct-llm itself.

No image can be pulled or built and no cluster reached here, so the files are checked for what
would break a deployment: each parses; the Kubernetes objects have what they need (selectors that
match their pods, resources, vLLM reachable through ClusterIP only and from ct-llm's pods only,
the cycle CronJob); every setting they give ct-llm loads through `load_config` into a real field;
vLLM runs with the flags ct-llm would give it (`build_vllm_command`) and the values of ct-llm's
config; the gateway's upstreams are exactly the vLLM replicas; every `ct-llm` command they run
parses with ct-llm's own CLI.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from typer.testing import CliRunner

from ct_llm.cli import app
from ct_llm.config import REPO_ROOT, WorkspaceConfig, load_config, resolve_resource
from ct_llm.deploy.vllm_server import VLLM_ENV, VLLM_MODULE, build_vllm_command
from ct_llm.errors import BusyError, CtLlmError

SERVING = REPO_ROOT / "serving"
K8S = SERVING / "k8s"
COMPOSE = SERVING / "compose.yaml"
WORKSPACE = "/workspace"
SECRET_EXAMPLE = "secret.example.yaml"
# Created on demand, not by `kubectl apply -k` (their headers say how).
NOT_IN_KUSTOMIZATION = {SECRET_EXAMPLE, "train-job.yaml"}
# ct-llm verbs that talk to vLLM, so their pods must be admitted by the NetworkPolicy.
VLLM_CLIENT_VERBS = {"api", "cycle", "eval", "deploy", "promote", "rollback", "canary"}
COMPOSE_ENV = {"POSTGRES_PASSWORD": "test-password"}  # the one setting without a default


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def k8s_objects() -> list[dict[str, Any]]:
    return [
        o for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml" for o in _docs(p)
    ]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [o for o in k8s_objects() if o["kind"] == kind]


def pod_template(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
        return obj["spec"]["template"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]
    return None


def pods() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, pod template) of every workload."""
    return [(o, t) for o in k8s_objects() if (t := pod_template(o)) is not None]


def containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    spec = template["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        present, value = e["key"] in labels, labels.get(e["key"])
        ok = {
            "In": present and value in e.get("values", []),
            "NotIn": not present or value not in e.get("values", []),
            "Exists": present,
            "DoesNotExist": not present,
        }[e["operator"]]
        if not ok:
            return False
    return True


def service_selects(service: dict[str, Any], labels: dict[str, str]) -> bool:
    return selector_matches({"matchLabels": service["spec"]["selector"]}, labels)


def component(template: dict[str, Any]) -> str:
    return template["metadata"]["labels"]["app.kubernetes.io/component"]


def argv(container: dict[str, Any]) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]


def flag_values(args: list[str]) -> dict[str, str | None]:
    """`--flag value` / `--flag=value` / `--switch` -> {flag: value or None}."""
    out: dict[str, str | None] = {}
    for i, a in enumerate(args):
        if a.startswith("--"):
            name, eq, value = a.partition("=")
            nxt = args[i + 1] if i + 1 < len(args) else None
            out[name] = value if eq else (nxt if nxt and not nxt.startswith("--") else None)
    return out


def ct_llm_invocations(args: list[str]) -> list[list[str]]:
    """The argument lists of every `ct-llm ...` an argv runs, directly or in an `sh -c` script."""
    if args[:2] in (["sh", "-c"], ["bash", "-c"]):
        found = []
        for line in args[2].replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split, lexer.commenters = True, "#"
            tokens, run = list(lexer), None
            for t in tokens:
                if t == "ct-llm":
                    run = []
                    found.append(run)
                elif run is not None and (
                    set(t) <= set(";&|<>()") or t in ("then", "else", "fi", "do", "done")
                ):
                    run = None
                elif run is not None:
                    run.append(t)
        return found
    return [args[1:]] if args and args[0] == "ct-llm" else []


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?error}` over a loaded file."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(f"compose needs {name}: {arg}")
        return arg

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", sub, value)


def compose() -> dict[str, Any]:
    return _interpolate(yaml.safe_load(COMPOSE.read_text()), COMPOSE_ENV)


def compose_argv(service: dict[str, Any]) -> list[str]:
    return [*service.get("entrypoint", []), *service.get("command", [])]


def compose_vllm_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose()["services"].items() if VLLM_MODULE in compose_argv(s)}


def k8s_config(tmp_path: Path) -> WorkspaceConfig:
    """The ConfigMap's ct-llm.yaml with the environment the ct-llm pods give it."""
    (cm,) = of_kind("ConfigMap")
    path = tmp_path / "ct-llm.yaml"
    path.write_text(cm["data"]["ct-llm.yaml"])
    return load_config(path, environ=k8s_ct_llm_env())


def k8s_ct_llm_env() -> dict[str, str]:
    """Every CT_LLM__* variable of the ct-llm containers; a Secret's value is the example's."""
    (secret,) = _docs(K8S / SECRET_EXAMPLE)
    env: dict[str, str] = {}
    for _, t in pods():
        for c in containers(t):
            for e in c.get("env", []):
                if not e["name"].startswith("CT_LLM__"):
                    continue
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                env[e["name"]] = secret["stringData"][ref["key"]] if ref else e["value"]
    return env


def compose_config() -> WorkspaceConfig:
    """What `ct-llm init` writes (the defaults) under the compose file's CT_LLM__* variables."""
    env = compose()["x-ct-llm"]["environment"]
    return load_config(None, environ={k: str(v) for k, v in env.items()})


def test_every_yaml_file_parses_into_mappings() -> None:
    files = sorted(SERVING.glob("**/*.yaml"))
    assert COMPOSE in files and len(files) > 5
    for path in files:
        docs = _docs(path)
        assert docs and all(isinstance(d, dict) for d in docs), path


def test_kustomization_lists_every_manifest_but_the_on_demand_ones() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - NOT_IN_KUSTOMIZATION


def test_objects_are_named_and_labelled() -> None:
    for o in k8s_objects():
        meta = o["metadata"]
        assert o["apiVersion"] and (meta.get("name") or meta.get("generateName")), o
        assert meta["labels"]["app.kubernetes.io/name"] == "ct-llm", meta


def test_workloads_select_their_own_pods_and_services_select_pods_with_the_port() -> None:
    for o, t in pods():
        if o["kind"] in ("Deployment", "StatefulSet"):
            assert selector_matches(o["spec"]["selector"], t["metadata"]["labels"]), o
    for svc in of_kind("Service"):
        targets = [t for _, t in pods() if service_selects(svc, t["metadata"]["labels"])]
        assert targets, f"Service {svc['metadata']['name']} selects no pod"
        ports = {p["name"] for t in targets for c in containers(t) for p in c.get("ports", [])}
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in ports, (svc["metadata"]["name"], p)
    for sts in of_kind("StatefulSet"):
        assert sts["spec"]["serviceName"] in {s["metadata"]["name"] for s in of_kind("Service")}


def test_every_container_asks_for_cpu_and_memory_and_caps_memory() -> None:
    for o, t in pods():
        for c in containers(t):
            res = c["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]), (o["metadata"], c["name"])
            assert "memory" in res["limits"], (o["metadata"], c["name"])
            gpus = res["limits"].get("nvidia.com/gpu")
            assert gpus == res["requests"].get("nvidia.com/gpu"), c["name"]


def test_vllm_is_reachable_through_cluster_ip_only_and_from_ct_llm_pods_only() -> None:
    vllm = [t for _, t in pods() if component(t) == "vllm"]
    assert vllm
    services = [s for s in of_kind("Service") if service_selects(s, vllm[0]["metadata"]["labels"])]
    assert services and not of_kind("Ingress")
    for s in services:
        assert s["spec"].get("type", "ClusterIP") == "ClusterIP", s["metadata"]["name"]
        assert not any("nodePort" in p for p in s["spec"]["ports"])
    (policy,) = [
        p
        for p in of_kind("NetworkPolicy")
        if selector_matches(p["spec"]["podSelector"], vllm[0]["metadata"]["labels"])
    ]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    admitted = [f["podSelector"] for rule in policy["spec"]["ingress"] for f in rule["from"]]
    assert all(set(f) == {"podSelector"} for r in policy["spec"]["ingress"] for f in r["from"])
    for _, t in pods():
        verbs = {inv[0] for c in containers(t) for inv in ct_llm_invocations(argv(c)) if inv}
        allowed = any(selector_matches(sel, t["metadata"]["labels"]) for sel in admitted)
        assert allowed == bool(verbs & VLLM_CLIENT_VERBS), (component(t), verbs)


def test_the_cycle_trains_with_one_process_per_gpu_it_is_given(tmp_path: Path) -> None:
    """`ct-llm cycle` launches `train.nproc` processes: more than the pod's GPUs would fail, fewer
    would leave GPUs idle."""
    (cron,) = [c for c in of_kind("CronJob") if component(pod_template(c)) == "cycle"]
    (container,) = containers(pod_template(cron))
    gpus = int(container["resources"]["limits"]["nvidia.com/gpu"])
    assert k8s_config(tmp_path).train.nproc == gpus
    (cycle,) = [
        s for s in compose()["services"].values() if s.get("command", [])[:2] == ["ct-llm", "cycle"]
    ]
    devices = cycle["deploy"]["resources"]["reservations"]["devices"]
    assert compose_config().train.nproc == sum(len(d["device_ids"]) for d in devices)


def test_cycle_cronjob_runs_one_cycle_at_a_time_with_bounded_retries() -> None:
    (cron,) = [c for c in of_kind("CronJob") if component(pod_template(c)) == "cycle"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert 0 < job["backoffLimit"] <= 5 and job["activeDeadlineSeconds"] > 0
    (container,) = job["template"]["spec"]["containers"]
    (inv,) = ct_llm_invocations(argv(container))
    assert inv[0] == "cycle" and "--json" in inv
    # ct-llm's own verdicts are not retried at once: a busy lock, bad input, a recorded failure.
    rules = job["podFailurePolicy"]["rules"]
    codes = {v for r in rules if r["action"] == "FailJob" for v in r["onExitCodes"]["values"]}
    assert {BusyError.exit_code, CtLlmError.exit_code} <= codes <= {1, 2, 3}
    assert job["template"]["spec"]["restartPolicy"] == "Never"  # podFailurePolicy needs it


def test_workspace_is_one_shared_volume_at_the_same_path_everywhere() -> None:
    (pvc,) = of_kind("PersistentVolumeClaim")
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]
    for _, t in pods():
        volumes = {v["name"]: v for v in t["spec"].get("volumes", [])}
        for c in containers(t):
            # {}: a volumeClaimTemplate's volume (PostgreSQL's own disk)
            by_path = {
                m["mountPath"]: (m, volumes.get(m["name"], {})) for m in c.get("volumeMounts", [])
            }
            claims = {
                p: v["persistentVolumeClaim"]["claimName"]
                for p, (_, v) in by_path.items()
                if "persistentVolumeClaim" in v
            }
            if pvc["metadata"]["name"] not in claims.values():
                continue
            # vLLM is handed adapter paths as ct-llm sees them: the same mount path everywhere.
            assert claims == {WORKSPACE: pvc["metadata"]["name"]}, c["name"]
            assert by_path[WORKSPACE][0].get("readOnly", False) == (component(t) == "vllm")
            if c["image"].startswith("ct-llm"):
                _, config = by_path[f"{WORKSPACE}/ct-llm.yaml"]
                assert config["configMap"]["name"] == "ct-llm-config", c["name"]


def test_references_to_secrets_configmaps_and_claims_exist() -> None:
    (secret,) = _docs(K8S / SECRET_EXAMPLE)
    names = {(o["kind"], o["metadata"].get("name")) for o in k8s_objects()}
    for _, t in pods():
        for v in t["spec"].get("volumes", []):
            if "configMap" in v:
                assert ("ConfigMap", v["configMap"]["name"]) in names
            if "persistentVolumeClaim" in v:
                assert ("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]) in names
        for c in containers(t):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert (
                        ref["name"] == secret["metadata"]["name"]
                        and ref["key"] in secret["stringData"]
                    )


def test_k8s_config_and_every_ct_llm_env_var_load_into_real_fields(tmp_path: Path) -> None:
    cfg = k8s_config(tmp_path)
    assert cfg.database_url and cfg.database_url.startswith("postgresql+psycopg://")
    for name, value in k8s_ct_llm_env().items():
        # load_config refuses unknown keys, so each variable alone must name a real field.
        one = load_config(None, environ={name: value}).model_dump()
        for part in name[len("CT_LLM__") :].lower().split("__"):
            one = one[part]
        assert one == yaml.safe_load(value), name
    # The URL names the PostgreSQL Service, its port, and the user and database it creates.
    (pg,) = [o for o in of_kind("StatefulSet") if component(pod_template(o)) == "postgres"]
    labels = pg["spec"]["template"]["metadata"]["labels"]
    (svc,) = [s for s in of_kind("Service") if service_selects(s, labels)]
    env = {
        e["name"]: e.get("value") for e in pg["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    host = f"{svc['metadata']['name']}:{svc['spec']['ports'][0]['port']}"
    assert cfg.database_url.startswith(f"postgresql+psycopg://{env['POSTGRES_USER']}:")
    assert cfg.database_url.endswith(f"@{host}/{env['POSTGRES_DB']}")


def test_compose_env_vars_load_into_real_fields() -> None:
    env = compose()["x-ct-llm"]["environment"]
    cfg = compose_config().model_dump()
    for name, value in env.items():
        if name.startswith("CT_LLM__"):
            node = cfg
            for part in name[len("CT_LLM__") :].lower().split("__"):
                node = node[part]
            assert node == yaml.safe_load(str(value)), name
    # No password is shipped: every use of it makes compose refuse to start without one.
    uses = re.findall(r"\$\{POSTGRES_PASSWORD([^}]*)\}", COMPOSE.read_text())
    assert len(uses) >= 2 and all(u.startswith(":?") for u in uses), uses
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        _interpolate(yaml.safe_load(COMPOSE.read_text()), {})


def _check_vllm(args: list[str], env: dict[str, str], cfg: WorkspaceConfig, gpus: int) -> str:
    """vLLM's argv and env against what ct-llm would run (build_vllm_command); returns its port."""
    assert VLLM_MODULE in args
    for k, v in VLLM_ENV.items():
        assert env[k] == v  # runtime LoRA loading: how ct-llm hot-swaps
    # The LoRA resolver reloads adapters into a restarted replica from the shared workspace.
    assert "lora_filesystem_resolver" in env["VLLM_PLUGINS"].split(",")
    assert env["VLLM_LORA_RESOLVER_CACHE_DIR"] == f"{WORKSPACE}/adapters"
    got = flag_values(args)
    port = int(got["--port"] or 0)
    model_dir = f"{WORKSPACE}/models/{cfg.base_model}"  # where ct-llm model import puts it
    want = flag_values(build_vllm_command(model_dir, cfg.base_model, cfg.serving, port))
    want["--host"] = "0.0.0.0"  # ct-llm binds loopback on one machine; here the network decides
    assert {k: got.get(k) for k in want} == want
    assert int(got.get("--tensor-parallel-size") or 1) == gpus
    return str(port)


def test_k8s_vllm_runs_as_ct_llm_would_and_the_gateway_reaches_every_replica(
    tmp_path: Path,
) -> None:
    cfg = k8s_config(tmp_path)
    (sts,) = [o for o in of_kind("StatefulSet") if component(pod_template(o)) == "vllm"]
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    port = _check_vllm(argv(c), env, cfg, int(c["resources"]["limits"]["nvidia.com/gpu"]))
    assert {p["containerPort"] for p in c["ports"]} == {int(port)}
    # One URL per pod (stable names of the StatefulSet), all of them, in the config and at the
    # gateway, which loads adapters into each replica separately.
    host = f"{{}}.{sts['spec']['serviceName']}:{port}"
    replicas = [f"http://{host.format(f'vllm-{i}')}" for i in range(sts["spec"]["replicas"])]
    assert cfg.serving.urls == replicas
    (gw,) = [o for o in of_kind("Deployment") if component(o["spec"]["template"]) == "gateway"]
    (gc,) = gw["spec"]["template"]["spec"]["containers"]
    (inv,) = ct_llm_invocations(argv(gc))
    assert inv[0] == "api"
    assert [inv[i + 1] for i, a in enumerate(inv) if a == "--upstream"] == replicas
    assert cfg.api.host == "0.0.0.0" and [p["containerPort"] for p in gc["ports"]] == [cfg.api.port]
    (init,) = sts["spec"]["template"]["spec"]["initContainers"]
    assert f"{WORKSPACE}/models/{cfg.base_model}/config.json" in " ".join(argv(init))


def compose_vllm_urls() -> list[str]:
    urls = []
    for name, s in compose_vllm_services().items():
        (device,) = s["deploy"]["resources"]["reservations"]["devices"]
        port = _check_vllm(
            compose_argv(s), s["environment"], compose_config(), len(device["device_ids"])
        )
        urls.append(f"http://{name}:{port}")
    return urls


def test_compose_vllm_runs_as_ct_llm_would_and_the_gateway_reaches_every_replica() -> None:
    spec, cfg, urls = compose(), compose_config(), compose_vllm_urls()
    assert len(urls) >= 2 and cfg.serving.urls == urls
    for s in compose_vllm_services().values():
        # Reachable by the services on its network only, and only reading the workspace.
        assert "ports" not in s and all(spec["networks"][n].get("internal") for n in s["networks"])
        assert s["volumes"] == [f"workspace:{WORKSPACE}:ro"]
    gateway = spec["services"]["gateway"]
    assert gateway["command"][:2] == ["ct-llm", "api"]
    inv = gateway["command"]
    assert [inv[i + 1] for i, a in enumerate(inv) if a == "--upstream"] == urls
    assert cfg.api.host == "0.0.0.0" and gateway["ports"][0].endswith(f":{cfg.api.port}")
    gpus = [d for s in spec["services"].values() for r in [s.get("deploy", {}).get("resources", {})]
            for d in r.get("reservations", {}).get("devices", [])]  # fmt: skip
    ids = [i for d in gpus for i in d["device_ids"]]
    assert len(ids) == len(set(ids)), "two services on one GPU by default"


def test_compose_services_reference_each_other_consistently() -> None:
    services = compose()["services"]
    vllm_networks = {n for s in compose_vllm_services().values() for n in s["networks"]}
    for name, s in services.items():
        for dep, cond in s.get("depends_on", {}).items():
            assert dep in services, (name, dep)
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], dep
            if cond["condition"] == "service_completed_successfully":
                assert services[dep].get("restart") == "no", dep
            if dep in compose_vllm_services():  # it talks to vLLM: it must share its network
                assert set(s["networks"]) & vllm_networks, name
        if s.get("image", "").startswith("ct-llm"):
            assert f"workspace:{WORKSPACE}" in s["volumes"], name
            # Every ct-llm service uses the store: it must accept connections first.
            assert s["depends_on"]["postgres"]["condition"] == "service_healthy", name
    assert compose_config().database_url == (
        "postgresql+psycopg://ctllm:test-password@postgres:5432/ctllm"
    )
    pg = services["postgres"]["environment"]
    assert (pg["POSTGRES_USER"], pg["POSTGRES_DB"]) == ("ctllm", "ctllm")
    (cycle,) = [s for s in services.values() if s.get("command", [])[:2] == ["ct-llm", "cycle"]]
    assert "--json" in cycle["command"] and cycle["profiles"] and cycle["restart"] == "no"


def test_vllm_image_is_pinned_and_the_same_everywhere() -> None:
    images = {
        c["image"] for _, t in pods() for c in containers(t) if c["image"].startswith("vllm/")
    }
    images |= {s["image"] for s in compose_vllm_services().values()}
    assert len(images) == 1 and not images.pop().endswith(":latest")


def _all_invocations() -> list[list[str]]:
    runs = [inv for _, t in pods() for c in containers(t) for inv in ct_llm_invocations(argv(c))]
    for s in compose()["services"].values():
        runs += ct_llm_invocations(compose_argv(s))
    return runs


def test_every_ct_llm_command_used_parses_with_the_cli() -> None:
    group = typer.main.get_command(app)
    runs = _all_invocations()
    verbs = {inv[0] for inv in runs}
    assert {"init", "api", "cycle", "train", "curate", "eval", "gate", "deploy"} <= verbs
    helped: set[tuple[str, ...]] = set()
    for inv in runs:
        cmd, path, rest = group, [], list(inv)
        while isinstance(getattr(cmd, "commands", None), dict):  # a group: `model import`
            cmd = cmd.commands[rest[0]]
            path.append(rest.pop(0))
        options = {o for p in cmd.params for o in [*p.opts, *p.secondary_opts]}
        for token in rest:
            if token.startswith("-"):
                assert token.split("=")[0] in options, (path, token)
        cmd.make_context(" ".join(["ct-llm", *path]), list(rest))  # types, required options
        if tuple(path) not in helped:
            helped.add(tuple(path))
            res = CliRunner().invoke(app, [*path, "--help"])
            assert res.exit_code == 0 and "Usage" in res.output, path


def test_recipes_and_launch_configs_named_exist(tmp_path: Path) -> None:
    named = [inv[i + 1] for inv in _all_invocations() for i, a in enumerate(inv[:-1])
             if a in ("--recipe", "--accelerate-config")]  # fmt: skip
    with (K8S / "config.yaml").open() as f:
        named.append(yaml.safe_load(yaml.safe_load(f)["data"]["ct-llm.yaml"])["recipe"])
    named.append(compose_config().recipe)
    for cfg in (k8s_config(tmp_path), compose_config()):
        named += [cfg.train.accelerate_config] if cfg.train.accelerate_config else []
    assert len(named) >= 4
    for path in named:
        assert resolve_resource(path).is_file(), path


def test_dockerfile_copies_what_exists_and_the_context_lets_it_through() -> None:
    dockerfile = (SERVING / "Dockerfile").read_text()
    allowed = {
        line[1:].rstrip("/")
        for line in (SERVING / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = [s for line in re.findall(r"^COPY (.+)$", dockerfile, re.M) for s in line.split()[:-1]]
    assert copied
    for src in copied:
        assert (REPO_ROOT / src).exists() and src in allowed, src
    assert 'CMD ["ct-llm",' in dockerfile and "CT_LLM_WORKSPACE=/workspace" in dockerfile
