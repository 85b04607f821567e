"""The deployment files agree with the code and with each other: they parse, name one image and one
port, probe endpoints the app serves, reference Secret keys and env variables the service reads,
and carry a config the service accepts. (No Docker engine or cluster is needed for these checks.)"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import kubernetes_validate
import pytest
import requests
import yaml

from cds_service.cli import _gunicorn_file
from cds_service.config import ENV_OVERRIDES, MEMORY_SECRET_ENV, settings_from_mapping

from .conftest import free_port, start_service
from .timing import scaled

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
IMAGE = "registry.example.org/mg-cds/cds-service:0.1.0"
SERVICE_ENV = set(ENV_OVERRIDES) | {
    MEMORY_SECRET_ENV,
    "CDS_SERVICE_CONFIG",
    "PROMETHEUS_MULTIPROC_DIR",
    "GUNICORN_WORKERS",
    "GUNICORN_THREADS",
}


def manifests() -> dict[str, dict]:
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and "kind" in doc and doc["kind"] != "Kustomization":
                found[doc["kind"]] = doc
    return found


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict]:
    return manifests()


@pytest.fixture(scope="module")
def container(k8s) -> dict:
    return _containers(k8s)["cds-service"]


@pytest.fixture(scope="module")
def sidecar(k8s) -> dict:
    return _containers(k8s)["nginx"]


def _containers(k8s) -> dict[str, dict]:
    found = {c["name"]: c for c in k8s["Deployment"]["spec"]["template"]["spec"]["containers"]}
    assert set(found) == {"cds-service", "nginx"}
    return found


def nginx_conf() -> str:
    return (DEPLOY / "nginx" / "nginx.conf").read_text()


def arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_every_manifest_parses_and_kustomization_lists_them(k8s):
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == on_disk, "every manifest but the example Secret is applied"
    wanted = {"Deployment", "Service", "HorizontalPodAutoscaler", "ConfigMap", "Secret", "PodDisruptionBudget"}
    assert wanted | {"NetworkPolicy", "Namespace"} == set(k8s)
    assert kustomization["images"][0]["name"] + ":" + kustomization["images"][0]["newTag"] == IMAGE


@pytest.mark.parametrize("version", ["1.30", "1.33"])
def test_manifests_are_valid_kubernetes_objects(k8s, version):
    """Strict validation against the Kubernetes OpenAPI schemas (bundled, offline): a misspelt or
    misplaced field fails here rather than at `kubectl apply`."""
    for doc in k8s.values():
        kubernetes_validate.validate(doc, version, strict=True)
    broken = copy.deepcopy(k8s["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def test_one_image_everywhere():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    containers = manifests()["Deployment"]["spec"]["template"]["spec"]["containers"]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    readme = (ROOT / "README.md").read_text()
    assert {c["image"] for c in containers} == {s["image"] for s in compose["services"].values() if "cds" in s["image"]}
    assert {c["image"] for c in containers} == {IMAGE}, "the nginx sidecar runs the same image"
    assert f"-t {IMAGE}" in dockerfile and IMAGE in readme
    version = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert IMAGE.endswith(f":{version}"), "the image tag follows the package version"


def test_ports_and_probes_match_the_app(k8s, container, sidecar, make_app):
    """The EHR's port (8080) is nginx's; gunicorn's (8081) is nginx's upstream; the image run alone
    (docker run, the CMD) serves 8080 itself."""
    port = int(re.search(r"listen (\d+);", nginx_conf()).group(1))
    app_port = int(arg(container["args"], "--port"))
    assert f"server 127.0.0.1:{app_port};" in nginx_conf() and app_port != port
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"EXPOSE {port} " in dockerfile and f'"--port", "{port}"' in dockerfile
    assert f"127.0.0.1:{port}/healthz" in dockerfile
    service_port = k8s["Service"]["spec"]["ports"][0]
    assert service_port["targetPort"] == "http"
    assert [(p["name"], p["containerPort"]) for p in sidecar["ports"]] == [("http", port)]
    routes = {rule.rule for rule in make_app().url_map.iter_rules()}
    probes = {name: container[name]["httpGet"] for name in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert {p["path"] for p in probes.values()} == {"/healthz", "/readyz"} <= routes
    assert probes["readinessProbe"]["path"] == "/readyz" and probes["livenessProbe"]["path"] == "/healthz"
    assert all(p["port"] == "app" for p in probes.values())
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert sidecar["livenessProbe"]["tcpSocket"] == {"port": "http"}, "a gunicorn restart does not restart nginx"
    annotations = k8s["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/metrics" not in routes, "metrics are not on the EHR's port"
    metrics_port = yaml.safe_load(k8s["ConfigMap"]["data"]["config.yaml"])["metrics"]["port"]
    assert int(annotations["prometheus.io/port"]) == metrics_port != port
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"app": app_port, "metrics": metrics_port}
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    assert compose["cds-service"]["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert arg(compose["cds-service"]["command"], "--port") == str(app_port)
    assert compose["nginx"]["network_mode"] == "service:cds-service", "nginx reaches gunicorn on loopback"
    assert compose["nginx"]["command"] == sidecar["args"] and compose["nginx"]["entrypoint"] == sidecar["command"]


def test_the_nginx_front_bounds_slow_clients_and_keeps_the_services_answers():
    conf = nginx_conf()
    for directive in ("client_header_timeout", "client_body_timeout", "keepalive_timeout", "send_timeout"):
        assert re.search(rf"^\s*{directive} \d+s;", conf, re.M), directive
    assert "proxy_request_buffering on;" in conf
    limit = int(re.search(r"client_max_body_size (\d+)m;", conf).group(1)) * 1_000_000
    assert limit == settings_from_mapping({}).max_body_bytes, "nginx refuses what the service would refuse"
    assert "proxy_set_header X-Forwarded-For" in conf, "an unsigned call through nginx is not a local one"
    assert "error_page 413" in conf and "OperationOutcome" in conf, "nginx's refusals are JSON too"
    assert not re.search(r"^user ", conf, re.M), "runs as the image's user"


def test_pods_are_locked_down_and_sized(k8s, container):
    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    for each in _containers(k8s).values():
        assert each["securityContext"]["readOnlyRootFilesystem"] is True
        assert each["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= set(each["resources"]["requests"]) and each["resources"]["limits"]
        assert "/tmp" in {m["mountPath"] for m in each["volumeMounts"]}
    assert re.search(r"^USER 10001$", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert "python:3.11-slim" in (DEPLOY / "Dockerfile").read_text()
    gunicorn = _gunicorn_file(DEPLOY / "gunicorn.conf.py")
    assert isinstance(gunicorn, dict), gunicorn
    assert pod["terminationGracePeriodSeconds"] > gunicorn["graceful_timeout"] + 5, "preStop sleep + graceful stop fit"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts, "the metrics folder and SQLite fallback need a writable /tmp on a read-only root"
    assert gunicorn["worker_tmp_dir"] == "/dev/shm"


def test_labels_and_targets_line_up(k8s):
    labels = k8s["Deployment"]["spec"]["template"]["metadata"]["labels"]
    for kind, selector in (
        ("Deployment", k8s["Deployment"]["spec"]["selector"]["matchLabels"]),
        ("Service", k8s["Service"]["spec"]["selector"]),
        ("PodDisruptionBudget", k8s["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]),
        ("NetworkPolicy", k8s["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"]),
    ):
        assert selector.items() <= labels.items(), f"{kind} selects no pod"
    target = k8s["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", k8s["Deployment"]["metadata"]["name"])
    hpa = k8s["HorizontalPodAutoscaler"]["spec"]
    assert hpa["minReplicas"] >= 2 > k8s["PodDisruptionBudget"]["spec"]["minAvailable"]


def test_network_policy_lets_the_ingress_reach_only_the_cds_port_and_monitoring_only_metrics(k8s):
    policy = k8s["NetworkPolicy"]["spec"]
    reach = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]: sorted(
            p["port"] for p in rule["ports"]
        )
        for rule in policy["ingress"]
        for peer in rule["from"]
    }
    assert reach == {"ingress-nginx": [8080], "monitoring": [9464]}


def test_network_policy_allows_egress_only_to_dns_database_and_ehr(k8s):
    policy = k8s["NetworkPolicy"]["spec"]
    assert "Egress" in policy["policyTypes"]
    ports = sorted({p["port"] for rule in policy["egress"] for p in rule["ports"]})
    assert ports == [53, 443, 5432]
    assert all(rule.get("to") for rule in policy["egress"]), "no egress rule open to everywhere"


def test_env_and_secret_references_are_read_by_the_service(k8s, container):
    secret = k8s["Secret"]
    for env in container["env"]:
        assert env["name"] in SERVICE_ENV, f"{env['name']} is read by nothing"
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    volumes = {v["name"]: v for v in k8s["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == k8s["ConfigMap"]["metadata"]["name"]
    assert {i["key"] for i in volumes["keys"]["secret"]["items"]} <= set(secret["stringData"])
    compose_env = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["cds-service"]["environment"]
    assert set(compose_env) <= SERVICE_ENV


def test_the_shipped_configs_are_accepted_by_the_service(k8s, container, tmp_path):
    """The ConfigMap's config, with the Secret's key files where the Deployment mounts them."""
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    config_path = next(e["value"] for e in container["env"] if e["name"] == "CDS_SERVICE_CONFIG")
    assert config_path == f"{mounts['config']}/config.yaml"
    raw = yaml.safe_load(k8s["ConfigMap"]["data"]["config.yaml"])
    for issuer in raw["security"]["trusted_issuers"]:
        mounted = Path(issuer["jwks_file"])
        assert str(mounted.parent) == mounts["keys"]
        local = tmp_path / mounted.name
        local.write_text(k8s["Secret"]["stringData"][mounted.name])
        issuer["jwks_file"] = str(local)
    settings = settings_from_mapping({**raw, "database_url": k8s["Secret"]["stringData"]["database-url"]})
    assert (
        settings.security.trusted_issuers
        and settings.public_base_url
        and settings.store.database_url.startswith("postgresql+psycopg://")
    )
    example = yaml.safe_load((DEPLOY / "config.example.yaml").read_text())
    assert settings_from_mapping(example).security.trusted_issuers[0].jwks_url.startswith("https://")


def test_the_image_build_stage_has_what_the_wheel_needs(tmp_path):
    """The Dockerfile's first stage copies only some files: a wheel built from just those must hold
    the package data the service loads at run time (knowledge, hooks, migrations)."""
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", (DEPLOY / "Dockerfile").read_text(), re.M)
    sources = [name for line in copied for name in line.split() if not name.startswith("deploy/")]
    (tmp_path / "src").mkdir()
    for name in sources:
        target = tmp_path / "src" / name
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, target)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(tmp_path), "."],
        cwd=tmp_path / "src",
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    # package metadata complete and warning-free (a template folder left out of the package list once warned)
    warnings = [line.strip() for line in (build.stdout + build.stderr).splitlines() if "Warning:" in line]
    assert not warnings, warnings
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "cds_service/knowledge/rules.yaml",
        "cds_service/hooks/request.schema.json",
        "cds_service/feedback/migrations/env.py",
        "cds_service/feedback/migrations/versions/0002_cards_issued.py",
        "cds_service/security/jwt_replay.py",
        "cds_service/memory/store.py",
    ):
        assert needed in names


def test_the_containers_command_serves_with_the_shipped_gunicorn_and_example_config(tmp_path):
    """The image's CMD, run here (on loopback): the example config and gunicorn file are accepted,
    the server becomes ready, and the HEALTHCHECK command passes."""
    cmd = json.loads(re.search(r"^CMD (\[.+\])$", (DEPLOY / "Dockerfile").read_text(), re.M).group(1))
    port = free_port()
    cmd = [c.replace("/etc/cds-service/gunicorn.conf.py", str(DEPLOY / "gunicorn.conf.py")) for c in cmd]
    cmd[cmd.index("--host") + 1], cmd[cmd.index("--port") + 1] = "127.0.0.1", str(port)
    cmd += ["--metrics-port", str(free_port())]  # the example config's 0.0.0.0:9464, moved to a free port
    env = {
        "PATH": str(Path(sys.executable).parent),
        "CDS_SERVICE_CONFIG": str(DEPLOY / "config.example.yaml"),
        "CDS_SERVICE_DATA_DIR": str(tmp_path / "data"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    proc, base = start_service(*cmd, env=env, cwd=tmp_path, command=False)
    try:
        assert requests.get(f"{base}/readyz", timeout=scaled(5)).json()["status"] == "ok"
        healthcheck = re.search(r'"python3", "-c", "(.+)"\]$', (DEPLOY / "Dockerfile").read_text(), re.M).group(1)
        probe = subprocess.run([sys.executable, "-c", healthcheck.replace(":8080/", f":{port}/")], timeout=scaled(10))
        assert probe.returncode == 0
        unsigned = requests.post(f"{base}/cds-services/magnesium-order-check", json={}, timeout=scaled(5))
        assert unsigned.status_code == 401, "with trusted issuers configured, unsigned calls are refused"
    finally:
        proc.terminate()
        assert proc.wait(timeout=scaled(30)) == 0


def _jobs() -> dict[str, dict]:
    return {p.stem: yaml.safe_load(p.read_text()) for p in sorted((K8S / "simulate").glob("*.yaml"))}


def _env(container: dict, name: str) -> str:
    return next(e["value"] for e in container["env"] if e["name"] == name)


@pytest.mark.parametrize("version", ["1.30", "1.33"])
def test_the_simulation_jobs_are_valid_and_agree_on_the_shards(version):
    """Partition once, one Indexed Job pod per shard reading only its shard, a merge Job: valid
    Kubernetes objects that agree on the number of shards."""
    jobs = _jobs()
    assert set(jobs) == {"partition-job", "indexed-job", "merge-job"}
    for job in jobs.values():
        kubernetes_validate.validate(job, version, strict=True)
        assert job["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    spec = jobs["indexed-job"]["spec"]
    (shard,) = spec["template"]["spec"]["containers"]
    (split,) = jobs["partition-job"]["spec"]["template"]["spec"]["containers"]
    shards = _env(shard, "SHARDS")
    assert _env(split, "SHARDS") == shards
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == int(shards)
    command = " ".join(shard["args"])
    assert (
        '--shard "$JOB_COMPLETION_INDEX/$SHARDS"' in command and "/data/results/shard-$JOB_COMPLETION_INDEX" in command
    )
    assert "simulate /data/partition " in command and "--out /data/partition" in " ".join(split["args"])
    (merge,) = jobs["merge-job"]["spec"]["template"]["spec"]["containers"]
    assert "simulate-merge /data/results/shard-*" in " ".join(merge["args"])
    applied = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert not any("simulate" in r for r in applied), (
        "the simulation Jobs are run on purpose, never applied with the service"
    )


def test_the_simulation_jobs_commands_run_partition_shards_and_merge(tmp_path):
    """The three Jobs' own shell commands, run here in order with /data in a temporary folder (each
    Indexed Job pod with its JOB_COMPLETION_INDEX): the merged figures equal one run on the export."""
    from . import planted

    data = tmp_path / "data"
    planted.generate(data / "export", 60, seed=4)
    (tmp_path / "config.yaml").write_text(f"data_dir: {tmp_path / 'state'}\n")
    jobs = _jobs()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

    def run(name: str, **extra: str) -> None:
        (container,) = jobs[name]["spec"]["template"]["spec"]["containers"]
        script = " ".join(container["args"]).replace("/data/", f"{data}/")
        script = script.replace("/etc/cds-service/config/config.yaml", str(tmp_path / "config.yaml"))
        values = {e["name"]: e["value"] for e in container.get("env", [])}
        subprocess.run([*container["command"], script], env={**env, **values, **extra}, check=True, timeout=300)

    run("partition-job")
    for index in range(jobs["indexed-job"]["spec"]["completions"]):
        run("indexed-job", JOB_COMPLETION_INDEX=str(index), WORKERS="1")
    run("merge-job")
    subprocess.run(
        [Path(sys.executable).parent / "cds-service", "simulate", data / "export", "--out", tmp_path / "one",
         "--workers", "1"], env=env, check=True, timeout=300, capture_output=True
    )  # fmt: skip
    merged = json.loads((data / "results" / "merged" / "figures.json").read_text())
    one = json.loads((tmp_path / "one" / "figures.json").read_text())
    assert merged["orders_replayed"] > 0 and merged["input"]["shards"] == jobs["indexed-job"]["spec"]["completions"]
    for figures in (merged, one):
        figures.pop("about"), figures.pop("input")
    assert merged == one


def test_the_alert_rules_watch_metrics_the_service_exports_and_readiness_ignores_the_store(container):
    """Store health is an alert, not a probe: readiness (/readyz) answers while the store is down
    (tests/test_resilience.py), and the shipped rules name only metrics the service exports."""
    from cds_service import metrics

    rule = yaml.safe_load((K8S / "monitoring" / "prometheusrule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    applied = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert not any("monitoring" in r for r in applied), "the CRD may be absent: applied on its own"
    exported = {m.name for m in metrics.REGISTRY.collect()} | {m.name + "_total" for m in metrics.REGISTRY.collect()}
    rules = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"CdsStoreDown", "CdsCardRecordsLost"} <= set(rules)
    for expr in rules.values():
        for name in re.findall(r"\bcds_[a-z_]+", expr):
            assert name in exported, f"{name} is not a metric of the service"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_the_shipped_deploy_fits_postgresqls_default_connection_limit(k8s, container):
    """The README's connection budget, on the shipped manifests: every pod the autoscaler and a
    rolling update can run at once, each holding its full pools, plus a few for `migrate`, `report`
    and an operator, within PostgreSQL's default max_connections (100) less its 3 reserved ones."""
    from cds_service.feedback.connections import pool_size

    gunicorn = _gunicorn_file(DEPLOY / "gunicorn.conf.py")
    env = {e["name"]: e.get("value") for e in container["env"]}
    workers = int(env.get("GUNICORN_WORKERS") or gunicorn["workers"])
    threads = int(env.get("GUNICORN_THREADS") or gunicorn["threads"])
    config = yaml.safe_load(k8s["ConfigMap"]["data"]["config.yaml"])
    memory = bool((config.get("memory") or {}).get("enabled"))
    pods = k8s["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] + int(
        k8s["Deployment"]["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    )
    admin = 5
    assert pods * workers * pool_size(threads, memory) + admin <= 100 - 3
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["cds-service"]
    assert int(compose["environment"]["GUNICORN_WORKERS"]) * pool_size(threads, memory) + admin <= 100 - 3
