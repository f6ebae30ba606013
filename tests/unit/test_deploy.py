"""The deployment files (deploy/, Dockerfile): they parse, name only real settings, and keep
the promises a scale-out deployment depends on.

- Every YAML and JSON file under deploy/ parses.
- Every ORDERHUB_* variable they use is one the hub or the client SDK reads.
- The settings every replica must share are defined once for all hub replicas (a compose
  anchor; the Kubernetes ConfigMap and Secret), and secrets are never literal values.
- The hubs, the one-shot commands and every Ray node run the same image; the Ray version
  of the RayCluster is the image's.
- Probes and health checks use the standard gRPC health service on the gRPC port.
- The stream definitions match the subjects the hub consumes and publishes, and the copies
  in the Kubernetes manifests match deploy/.
- `docker compose config` and `kubectl kustomize` render the files, where those tools work
  here (skipped otherwise); Envoy's configuration is checked against Envoy's own schema
  where its protos (xds-protos) are installed.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub import carrier_events, relay, wms_sync
from hub.settings import Settings
from hub.streams import DAY_S, ensure_stream

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = DEPLOY / "docker" / "entrypoint.sh"

#: Settings that must be the same on every hub replica of one deployment.
SHARED = (
    "ORDERHUB_DATABASE_URL",
    "ORDERHUB_NATS_URL",
    "ORDERHUB_RAY_ADDRESS",
    "ORDERHUB_RAY_NAMESPACE",
    "ORDERHUB_INVENTORY_SHARDS",
    "ORDERHUB_LANE_SHARDS",
    "ORDERHUB_TOKEN_SECRET",
    "ORDERHUB_WMS_CONSUMER",
    "ORDERHUB_CARRIER_CONSUMER",
)
#: Of those, the ones that are secrets.
SECRETS = ("ORDERHUB_DATABASE_URL", "ORDERHUB_TOKEN_SECRET", "RAY_AUTH_TOKEN")
#: Where the Ray workers and the hubs' own Ray nodes differ: the resource the actors'
#: nodes offer.
ACTOR_RESOURCE = "orderhub_actors"


# ---------------------------------------------------------------- helpers


def _text_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _yaml_docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def _k8s_objects() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        objects.extend(_yaml_docs(path))
    return objects


def _k8s(kind: str, name: str) -> dict[str, Any]:
    found = [o for o in _k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def _hub_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The compose services that run `orderhub up`."""
    return {n: s for n, s in compose["services"].items() if s.get("command") == ["up"]}


def _pod_containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Containers of a Deployment, Job or RayCluster (head and every worker group)."""
    if obj["kind"] == "RayCluster":
        spec = obj["spec"]
        groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]
        return [c for g in groups for c in g["template"]["spec"]["containers"]]
    if obj["kind"] in ("Deployment", "Job"):
        containers: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
        return containers
    return []


def _port(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


def _dockerfile_arg(name: str) -> str:
    m = re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    assert m, f"Dockerfile has no ARG {name}=…"
    return m.group(1)


def known_variables() -> set[str]:
    """Every ORDERHUB_* variable the hub or the client SDK reads from the environment."""
    names = set(re.findall(r'"(ORDERHUB_[A-Z0-9_]+)"', inspect.getsource(Settings.from_env)))
    reads = re.compile(r'environ(?:\.get\(\s*|\[\s*)"(ORDERHUB_[A-Z0-9_]+)"')
    for folder in (ROOT / "hub", ROOT / "clients" / "python" / "orderhub"):
        for path in folder.rglob("*.py"):
            names.update(reads.findall(path.read_text(encoding="utf-8")))
    return names


# ---------------------------------------------------------------- parsing


def test_every_yaml_and_json_file_under_deploy_parses() -> None:
    checked = 0
    for path in _text_files(DEPLOY):
        if path.suffix in (".yaml", ".yml"):
            assert _yaml_docs(path), f"{path} is empty"
            checked += 1
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
            checked += 1
    assert checked >= 10
    # Documents embedded in manifests parse too.
    envoy = _k8s("ConfigMap", "orderhub-envoy")["data"]["envoy.yaml"]
    assert yaml.safe_load(envoy)["static_resources"]
    for name, text in _k8s("ConfigMap", "orderhub-nats-streams")["data"].items():
        if name.endswith(".json"):
            json.loads(text)


# ---------------------------------------------------------------- settings


def test_every_orderhub_variable_used_in_deploy_is_a_real_setting() -> None:
    known = known_variables()
    assert {"ORDERHUB_GRPC_ADDR", "ORDERHUB_TOKEN_SECRET", "ORDERHUB_TOKEN"} <= known
    files = [*_text_files(DEPLOY), DOCKERFILE, ROOT / ".dockerignore"]
    unknown = {}
    for path in files:
        for name in re.findall(r"\bORDERHUB_[A-Z0-9_]*[A-Z0-9]\b", path.read_text("utf-8")):
            if name not in known:
                unknown.setdefault(name, path.relative_to(ROOT).as_posix())
    assert not unknown, f"not settings the hub reads: {unknown}"


def test_compose_defines_the_shared_settings_once_for_every_hub_replica() -> None:
    compose = _compose()
    hubs = _hub_services(compose)
    replicas = sum(int(s.get("deploy", {}).get("replicas", 1)) for s in hubs.values())
    assert replicas >= 2, "at least two hub replicas"
    text = COMPOSE.read_text(encoding="utf-8")
    for name in SHARED:
        values = {str(s["environment"].get(name)) for s in hubs.values()}
        assert len(values) == 1 and None not in values, f"{name}: {values}"
        # Defined in one place (the x-hub-env anchor), never per service.
        assert len(re.findall(rf"^\s+{name}:", text, re.M)) == 1, name
    env = next(iter(hubs.values()))["environment"]
    example = _env_file(DEPLOY / ".env.example")
    for name in ("ORDERHUB_TOKEN_SECRET", "RAY_AUTH_TOKEN"):
        assert env[name] == f"${{{name}:?set {name} in deploy/.env}}", f"{name} must come from .env"
        assert "CHANGE-ME" in example[name]
    assert "${POSTGRES_PASSWORD:?" in env["ORDERHUB_DATABASE_URL"]
    assert "CHANGE-ME" in example["POSTGRES_PASSWORD"]
    assert _port(env["ORDERHUB_GRPC_ADDR"]) == 50051
    assert env["ORDERHUB_GRPC_ADDR"].startswith("0.0.0.0:")
    # Every variable compose insists on is in the example env file.
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert required <= set(example), required - set(example)


def test_kubernetes_defines_the_shared_settings_once_in_the_configmap_and_secret() -> None:
    config = _k8s("ConfigMap", "orderhub-config")["data"]
    secrets = _env_file(K8S / "secrets.env.example")
    assert set(SECRETS) <= set(secrets)
    for name in SECRETS:
        assert "CHANGE-ME" in secrets[name], f"{name}: the example holds no real secret"
        assert name not in config
    for name in SHARED:
        assert (name in config) != (name in secrets), f"{name}: in exactly one of them"
    assert _port(config["ORDERHUB_GRPC_ADDR"]) == 50051
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    generated = {g["name"]: g for g in kustomization["secretGenerator"]}
    assert generated["orderhub-secrets"]["envs"] == ["secrets.env"]

    hub = _k8s("Deployment", "orderhub-hub")
    assert hub["spec"]["replicas"] >= 2
    (container,) = _pod_containers(hub)
    assert container["args"] == ["up"]
    refs = {
        (kind, ref["name"])
        for source in container["envFrom"]
        for kind, ref in source.items()
        if kind in ("configMapRef", "secretRef")
    }
    assert refs == {("configMapRef", "orderhub-config"), ("secretRef", "orderhub-secrets")}
    # No manifest sets a shared setting (or a secret) on its own.
    for obj in _k8s_objects():
        for c in _pod_containers(obj):
            for var in c.get("env", []):
                if var["name"] in (*SHARED, *SECRETS):
                    assert "valueFrom" in var, f"{obj['metadata']['name']}: {var['name']} inline"


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


# ---------------------------------------------------------------- one image, one Ray


def test_hubs_jobs_and_ray_nodes_use_one_image() -> None:
    services = _compose()["services"]
    image = services["migrate"]["image"]
    for name in ("ray-head", "ray-worker", *_hub_services(_compose())):
        assert services[name]["image"] == image, name
    images = set()
    for obj in _k8s_objects():
        if obj["kind"] == "RayCluster" or obj["metadata"]["name"] in (
            "orderhub-hub",
            "orderhub-migrate",
        ):
            images.update(c["image"] for c in _pod_containers(obj))
    assert images == {"orderhub"}  # rewritten as one by kustomization.yaml's images
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert [i["name"] for i in kustomization["images"]] == ["orderhub"]


def test_ray_version_and_authentication_agree_everywhere() -> None:
    ray_cluster = _k8s("RayCluster", "orderhub-ray")
    assert ray_cluster["spec"]["rayVersion"] == _dockerfile_arg("RAY_VERSION")
    for c in _pod_containers(ray_cluster):
        names = {v["name"] for v in c["env"]}
        assert {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"} <= names, c["name"]
    assert _k8s("ConfigMap", "orderhub-config")["data"]["RAY_AUTH_MODE"] == "token"
    services = _compose()["services"]
    for name in ("ray-head", "ray-worker", *_hub_services(_compose())):
        env = services[name]["environment"]
        assert env["RAY_AUTH_MODE"] == "token", name
        assert env["RAY_AUTH_TOKEN"].startswith("${RAY_AUTH_TOKEN:?"), name
    # The head takes no actors' CPUs; the workers offer the actors' resource; a hub's own
    # Ray node offers nothing.
    head = ray_cluster["spec"]["headGroupSpec"]["rayStartParams"]
    assert head["num-cpus"] == "0"
    assert "--num-cpus=0" in services["ray-head"]["command"]
    for group in ray_cluster["spec"]["workerGroupSpecs"]:
        assert ACTOR_RESOURCE in group["rayStartParams"]["resources"]
        assert group["replicas"] >= 2
    assert any(ACTOR_RESOURCE in part for part in services["ray-worker"]["command"])
    assert int(services["ray-worker"]["deploy"]["replicas"]) >= 2
    script = ENTRYPOINT.read_text(encoding="utf-8")
    assert "--num-cpus=0" in script and '--address="${ORDERHUB_RAY_ADDRESS}"' in script
    assert ACTOR_RESOURCE not in script
    assert _k8s("ConfigMap", "orderhub-config")["data"]["ORDERHUB_RAY_ADDRESS"] == (
        f"{ray_cluster['metadata']['name']}-head-svc:6379"
    )


# ---------------------------------------------------------------- health and shutdown


def test_probes_use_grpc_health_on_the_grpc_port() -> None:
    hub = _k8s("Deployment", "orderhub-hub")
    spec = hub["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    grpc_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
    assert grpc_port == _port(_k8s("ConfigMap", "orderhub-config")["data"]["ORDERHUB_GRPC_ADDR"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": grpc_port}, probe
    assert spec["terminationGracePeriodSeconds"] >= 30
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"

    (name, service), *_ = _hub_services(_compose()).items()
    check = service["healthcheck"]["test"]
    code = check[-1]
    compile(code, f"{name} healthcheck", "exec")
    assert "grpc_health" in code and f"127.0.0.1:{grpc_port}" in code
    assert "SERVING" in code
    grace = service["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) >= 30

    for config in (
        yaml.safe_load((DEPLOY / "envoy" / "envoy.yaml").read_text(encoding="utf-8")),
        yaml.safe_load(_k8s("ConfigMap", "orderhub-envoy")["data"]["envoy.yaml"]),
    ):
        clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
        grpc = clusters["hub_grpc"]
        assert grpc["health_checks"][0]["grpc_health_check"] == {}
        (endpoint,) = grpc["load_assignment"]["endpoints"][0]["lb_endpoints"]
        assert endpoint["endpoint"]["address"]["socket_address"]["port_value"] == grpc_port
        assert grpc["lb_policy"] == "ROUND_ROBIN"
        assert "http2_protocol_options" in json.dumps(grpc["typed_extension_protocol_options"])


def test_the_kubernetes_load_balancer_is_the_compose_one() -> None:
    local = yaml.safe_load((DEPLOY / "envoy" / "envoy.yaml").read_text(encoding="utf-8"))
    in_cluster = yaml.safe_load(_k8s("ConfigMap", "orderhub-envoy")["data"]["envoy.yaml"])
    headless = _k8s("Service", "orderhub-hub")
    assert headless["spec"]["clusterIP"] == "None"
    fqdn = f"orderhub-hub.{yaml.safe_load((K8S / 'kustomization.yaml').read_text())['namespace']}"
    for cluster in in_cluster["static_resources"]["clusters"]:
        for group in cluster["load_assignment"]["endpoints"]:
            for ep in group["lb_endpoints"]:
                address = ep["endpoint"]["address"]["socket_address"]
                assert address["address"] == f"{fqdn}.svc.cluster.local"
                address["address"] = "hub"
    assert in_cluster == local


def test_envoy_configuration_matches_envoys_schema() -> None:
    bootstrap = pytest.importorskip(
        "envoy.config.bootstrap.v3.bootstrap_pb2", reason="xds-protos (Envoy's protos) absent"
    )
    from google.protobuf import json_format

    # The typed_config types the configuration names must be registered to be checked.
    for module in (
        "envoy.extensions.filters.http.router.v3.router_pb2",
        "envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2",
        "envoy.extensions.upstreams.http.v3.http_protocol_options_pb2",
    ):
        importlib.import_module(module)
    for text in (
        (DEPLOY / "envoy" / "envoy.yaml").read_text(encoding="utf-8"),
        _k8s("ConfigMap", "orderhub-envoy")["data"]["envoy.yaml"],
    ):
        # Unknown fields and malformed values raise.
        json_format.ParseDict(yaml.safe_load(text), bootstrap.Bootstrap())


# ---------------------------------------------------------------- NATS streams


def test_streams_carry_the_hubs_subjects_and_the_manifest_copies_match() -> None:
    settings = Settings()
    expected = {
        settings.wms_stream: wms_sync.SUBJECTS,
        settings.oms_stream: relay.SUBJECTS,
        settings.carrier_stream: carrier_events.SUBJECTS,
    }
    defaults = inspect.signature(ensure_stream).parameters
    streams = {}
    for path in sorted((DEPLOY / "nats" / "streams").glob("*.json")):
        config = json.loads(path.read_text(encoding="utf-8"))
        streams[path.name] = config
        assert config["subjects"] == expected[config["name"]], path.name
        assert config["num_replicas"] == 3
        assert config["storage"] == "file"
        ns = 1_000_000_000
        assert config["duplicate_window"] == defaults["duplicate_window_s"].default * ns
        assert config["max_age"] == int(defaults["max_age_s"].default) * ns
        assert config["max_age"] == 7 * int(DAY_S) * ns
    assert {c["name"] for c in streams.values()} == set(expected)

    copies = _k8s("ConfigMap", "orderhub-nats-streams")["data"]
    for name, config in streams.items():
        assert json.loads(copies[name]) == config, name
    script = (DEPLOY / "nats" / "create-streams.sh").read_text(encoding="utf-8")
    assert copies["create-streams.sh"] == script
    job = _k8s("Job", "orderhub-nats-streams")
    (container,) = _pod_containers(job)
    (nats_url,) = [v for v in container["env"] if v["name"] == "NATS_URL"]
    assert nats_url["valueFrom"]["configMapKeyRef"]["key"] == "ORDERHUB_NATS_URL"


# ---------------------------------------------------------------- the image


def test_dockerfile_builds_the_two_distributions_into_a_non_root_image() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert _dockerfile_arg("PYTHON_IMAGE") == "python:3.11-slim"
    assert re.search(r"pip wheel .*\./clients/python \. ", text)
    assert re.search(r"pip install --no-index .* orderhub orderhub-client ", text)
    assert "[test]" not in text and ".[" not in text
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^EXPOSE .*\b50051\b.*\b8080\b", text, re.M)
    entry = re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M)
    assert entry and json.loads(entry.group(1))[-1] == "orderhub-entrypoint"
    assert re.search(r"^CMD \[\"up\"\]$", text, re.M)
    script = ENTRYPOINT.read_text(encoding="utf-8")
    assert script.rstrip().endswith('exec orderhub "$@"')
    assert os.access(ENTRYPOINT, os.X_OK)
    # Whatever the Dockerfile copies from the context is not ignored.
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for src in re.findall(r"^COPY (?:--chmod=\S+ )?(\S+(?: \S+)*) \S+$", text, re.M):
        for item in src.split():
            if item.startswith("--from"):
                break
            top = item.split("/")[0]
            if top in ignored:
                assert f"!{item}" in ignored, f"{item} is excluded by .dockerignore"
            assert (ROOT / item).exists(), item


# ---------------------------------------------------------------- the tools, where present


def _docker_compose_works() -> str | None:
    if shutil.which("docker") is None:
        return "docker is not installed"
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, timeout=60
    )
    if probe.returncode != 0:
        return "the docker compose plugin is not installed"
    return None


def test_docker_compose_config_renders() -> None:
    reason = _docker_compose_works()
    if reason:
        pytest.skip(reason)
    result = subprocess.run(
        [
            "docker",
            "compose",
            "--env-file",
            str(DEPLOY / ".env.example"),
            "-f",
            str(COMPOSE),
            "config",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_kustomize_renders_one_image_in_one_namespace(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    work = tmp_path / "k8s"
    shutil.copytree(K8S, work, ignore=shutil.ignore_patterns("secrets.env"))
    shutil.copy(work / "secrets.env.example", work / "secrets.env")
    result = subprocess.run(
        [kubectl, "kustomize", str(work)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    objects = [o for o in yaml.safe_load_all(result.stdout) if o]
    kinds = {o["kind"] for o in objects}
    assert {"RayCluster", "Deployment", "Job", "Secret", "PodDisruptionBudget"} <= kinds
    for o in objects:
        if o["kind"] != "Namespace":
            assert o["metadata"]["namespace"] == "orderhub", o["metadata"]["name"]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    (image,) = kustomization["images"]
    wanted = f"{image['newName']}:{image['newTag']}"
    ours = [
        c["image"]
        for o in objects
        if o["kind"] == "RayCluster"
        or o["metadata"]["name"] in ("orderhub-hub", "orderhub-migrate")
        for c in _pod_containers(o)
    ]
    assert len(ours) == 4 and set(ours) == {wanted}
