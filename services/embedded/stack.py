"""`fleet up`: start what is not external, apply the streams, run each service as its own process."""

from __future__ import annotations

import asyncio
import datetime as dt
import fcntl
import json
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path

from contracts import catalog
from services.embedded import binaries
from services.embedded.processes import ManagedProcess, Supervised
from services.embedded.servers import (
    LLM_SLOTS,
    ServerPlan,
    free_port,
    llm_plan,
    nats_cluster_plans,
    nats_plan,
    port_or_free,
    ray_plan,
    ray_temp_dir,
    ray_worker_plan,
    redis_plan,
)
from services.mesh.runtime import connect
from services.mesh.settings import (
    ENDPOINT_VARIABLES,
    ENDPOINTS_FILE,
    Settings,
    SettingsError,
    load_settings,
    port_from,
)
from streams.apply import REPLICAS_VARIABLE, Change, apply_all
from streams.permissions import CLIENT_USERS, OPERATOR, PROVISIONER, USERS, authorization

LOCK_FILE = "fleet.lock"
# `fleet up --cluster` runs what k8s/overlays/prod runs: this many replicas of every service, every stream
# and bucket on each of the three NATS servers, and two Ray worker nodes beside a head that hosts no actor
# (as KubeRay's head, `num-cpus: "0"`, and the prod overlay's two workers).
CLUSTER_SERVICE_REPLICAS = 2
CLUSTER_STREAM_REPLICAS = 3
CLUSTER_RAY_WORKERS = 2
# The actor calls Ray remembers: a few hundred deliberations' turns (the soak sets fewer).
RAY_TASK_EVENTS_VARIABLE = "RAY_task_events_max_num_task_in_gcs"
RAY_TASK_EVENTS_KEPT = 10_000
RAY_NODE_HEALTH_CHECKS = {"RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}
# SmolLM2-135M on 2 cores writes ~115 tokens/s; a shorter answer keeps the demo to minutes.
EMBEDDED_LLM_MAX_TOKENS = "256"
# As many LLM calls in flight as llama-server has slots. More would only wait inside it, where the wait
# counts against the LLM timeout; waiting in JetStream costs nothing.
EMBEDDED_AGENT_CONCURRENCY = str(LLM_SLOTS)
# The seeds' 4096/8192-token contexts fit the per-slot window only cut down, and on 2 cores the 135M model
# reads a prompt that long so slowly that turns ran past the 60 s LLM timeout (the e2e evaluation lost one
# deliberation in four). The embedded LLM gets the budgets the evaluation's figures were measured with.
EMBEDDED_CONTEXT_BUDGET_TOKENS = "400,ARCHITECT=700"
# The agents fill at most this much of each llama-server slot's 4,096 tokens. A prompt near the slot's size
# (a brief at ingress's limit, cut to fit) takes the 135M model on 2 cores, three slots at once, past the
# 60 s LLM timeout; at this size a cut prompt is as long as the byte-bounded cut the evaluation was measured
# with, and a prompt the estimate undercounts still fits the slot.
EMBEDDED_LLM_CONTEXT_TOKENS = 1536


class StackAlreadyRunning(RuntimeError):
    pass


def served_endpoints(plans: list[ServerPlan]) -> dict[str, str]:
    """The endpoints the started servers offer. A NATS cluster's nodes each get theirs under their own name
    (`nats_1_url` ...), and `nats_url` lists every node, so a client that loses one reconnects to another."""
    nodes = [plan for plan in plans if plan.name.startswith("nats-")]
    endpoints: dict[str, str] = {}
    for plan in plans:
        if plan in nodes:
            prefix = plan.name.replace("-", "_")
            endpoints.update({key.replace("nats", prefix, 1): value for key, value in plan.endpoints.items()})
        else:
            endpoints.update(plan.endpoints)
    if nodes:
        endpoints["nats_url"] = ",".join(plan.endpoints["nats_url"] for plan in nodes)
        endpoints["nats_monitor_url"] = nodes[0].endpoints["nats_monitor_url"]
    return endpoints


def write_private(path: Path, text: str) -> Path:
    """A file only this user can read, written whole before anyone may open it."""
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
        handle.write(text)
    return path


def password_file_endpoint(user: str) -> str:
    """The endpoints.json key of a client user's password file under `fleet up --auth` (docs/deploy.md)."""
    return f"nats_{user}_password_file"


def is_running(data_dir: Path) -> bool:
    """A running `fleet up` holds the data dir's lock."""
    lock_path = data_dir / LOCK_FILE
    if not lock_path.exists():
        return False
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def external_endpoints(env: Mapping[str, str]) -> dict[str, str]:
    return {key: env[var] for var, key in ENDPOINT_VARIABLES.items() if env.get(var)}


def plans_for(
    data_dir: Path, external: Mapping[str, str], cpus: int, nats_auth: Path | None = None, cluster: bool = False,
) -> list[ServerPlan]:
    """Only what the environment did not point elsewhere."""
    plans = []
    if "nats_url" not in external:
        plans += nats_cluster_plans(data_dir, nats_auth) if cluster else [nats_plan(data_dir, nats_auth)]
    if not {"valkey_url", "graph_uri"} <= external.keys():
        plans.append(redis_plan(data_dir))
    if "llm_base_url" not in external:
        plans.append(llm_plan(threads=cpus))
    if "ray_address" not in external:
        plans.append(ray_plan(data_dir, cpus=0 if cluster else cpus))
    return plans


def instance_names(service: str, replicas: int) -> list[str]:
    """A service's processes: its own name when it runs alone, `<service>-1`, `<service>-2` ... otherwise."""
    return [service] if replicas == 1 else [f"{service}-{index}" for index in range(1, replicas + 1)]


class EmbeddedStack:
    def __init__(
        self,
        data_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        report: Callable[[str], None] = print,
        service_env: Mapping[str, str] | None = None,
        services: tuple[str, ...] = catalog.SERVICES,
        auth: bool = False,
        cluster: bool = False,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self._env = dict(os.environ if env is None else env)
        self._report = report
        self._service_env = dict(service_env or {})
        self._service_names = services
        # With `cluster`, what production runs (k8s/overlays/prod) on one machine: three NATS servers,
        # every service twice, and two Ray nodes. Each is its own process.
        self.cluster = cluster
        replicas = CLUSTER_SERVICE_REPLICAS if cluster else 1
        # Each service process by its instance name, and the service it runs.
        self.instances: dict[str, str] = {
            instance: name for name in services for instance in instance_names(name, replicas)}
        self._servers: list[ManagedProcess] = []
        self.services: dict[str, Supervised] = {}
        self.endpoints: dict[str, str] = {}
        self.metrics_ports: dict[str, int] = {}
        self.monitor_port: int | None = None
        self.monitor_ports: dict[str, int] = {}
        self.stream_changes: list[Change] = []
        self._lock_handle = None
        # With auth, every service connects as its own NATS user, with the permissions it has in a cluster.
        self.auth = auth
        self._password_files: dict[str, Path] = {}

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    def _acquire_lock(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        handle = (self.data_dir / LOCK_FILE).open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StackAlreadyRunning(
                f"a fleet is already running on {self.data_dir}; `fleet endpoints` shows it"
            ) from None
        self._lock_handle = handle

    async def start(self) -> dict[str, str]:
        self._acquire_lock()
        try:
            await self._start_servers()
            self.stream_changes = await self._apply_streams()
            # A fixed port per service for /metrics and /healthz, kept across its restarts.
            self.metrics_ports = {instance: free_port() for instance in self.instances}
            self.endpoints.update({f"metrics_{instance}": f"http://127.0.0.1:{port}/metrics"
                                   for instance, port in self.metrics_ports.items()})
            monitors = [instance for instance, name in self.instances.items() if name == "monitor"]
            if monitors:
                # The same address run after run, for a bookmark, unless that port is taken.
                self.monitor_port = port_or_free(port_from(self._env, "FLEET_MONITOR_PORT", Settings.monitor_port))
                self.monitor_ports = {monitors[0]: self.monitor_port,
                                      **{instance: free_port() for instance in monitors[1:]}}
                self.endpoints["dashboard_url"] = f"http://127.0.0.1:{self.monitor_port}/"
                self.endpoints.update({f"dashboard_url_{instance}": f"http://127.0.0.1:{port}/"
                                       for instance, port in self.monitor_ports.items() if instance != monitors[0]})
            self._write_endpoints()
            await self._start_services()
        except BaseException:
            await self.stop()
            raise
        return self.endpoints

    async def _start_servers(self) -> None:
        external = external_endpoints(self._env)
        for key, value in external.items():
            self._report(f"external {key}: {value} (not started)")
        self.endpoints = dict(external)
        nats_auth = self._write_nats_users(external) if self.auth else None
        cpus = os.cpu_count() or 2
        await self._start_and_wait(plans_for(self.data_dir, external, cpus=cpus, nats_auth=nats_auth,
                                             cluster=self.cluster), external)
        if self.cluster and "ray_address" not in external:
            # Worker nodes join a head that is up, one after the other: two raylets registering on one address
            # at once can time out looking themselves up (seen once in five starts).
            head = self.endpoints["ray_address"]
            for index in range(1, CLUSTER_RAY_WORKERS + 1):
                await self._start_and_wait([ray_worker_plan(self.data_dir, head, cpus, index)], external)

    async def _start_and_wait(self, plans: list[ServerPlan], external: Mapping[str, str]) -> None:
        started = []
        for plan in plans:
            process = ManagedProcess(
                plan.name, plan.argv, self.logs_dir / f"{plan.name}.log",
                env=plan.environment(self._ray_node_env() if plan.name.startswith("ray") else self._server_env()),
                stop_grace_s=plan.stop_grace_s,
            )
            await process.start()
            self._servers.append(process)
            started.append(process)

        async def ready(plan: ServerPlan, process: ManagedProcess) -> None:
            try:
                seconds = await plan.wait_ready(process.running)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}; last lines of {process.log_path}:\n{process.tail()}") from None
            self._report(f"{plan.name} ready in {seconds:.1f}s: {', '.join(plan.endpoints.values())}")

        await asyncio.gather(*(ready(plan, process) for plan, process in zip(plans, started, strict=True)))
        self.endpoints.update({k: v for k, v in served_endpoints(plans).items() if k not in external})

    def _write_nats_users(self, external: Mapping[str, str]) -> Path:
        """Fresh passwords for every user, readable by this user only, and the server's users file."""
        if "nats_url" in external:
            raise SettingsError(
                "--auth sets up the users of the embedded NATS; FLEET_NATS_URL points at another server, "
                "whose users are its own (see k8s/base/nats/auth.conf)"
            )
        folder = self.data_dir / "secrets"
        folder.mkdir(mode=0o700, exist_ok=True)
        passwords = {user: secrets.token_urlsafe(24) for user in USERS}
        for user, password in passwords.items():
            self._password_files[user] = write_private(folder / f"nats-{user}.password", password)
        self.endpoints.update(nats_user=OPERATOR, nats_password_file=str(self._password_files[OPERATOR]))
        # Clients outside the mesh (an upstream planner, a monitoring subscriber) find theirs beside it.
        self.endpoints.update({password_file_endpoint(user): str(self._password_files[user]) for user in CLIENT_USERS})
        self._report(f"NATS users with least-privilege permissions: {', '.join(USERS)} (passwords in {folder})")
        return write_private(folder / "nats-auth.conf", authorization(passwords))

    def _nats_credentials(self, user: str) -> dict[str, str]:
        if not self.auth:
            return {}
        return {"FLEET_NATS_USER": user, "FLEET_NATS_PASSWORD_FILE": str(self._password_files[user])}

    def _server_env(self) -> dict[str, str]:
        env = dict(self._env)
        # Passive OpenMP waits: llama.cpp's threads otherwise spin for a core the mesh also needs.
        env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", OMP_WAIT_POLICY="PASSIVE")
        # Under `uv run` (`just up`, `just test`), Ray would start every worker with `uv run` in an
        # uploaded copy of the project, building a fresh environment per actor: minutes on 2 cores, past
        # the agents' handler deadline. The services already run in the project's environment.
        env["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
        if "RAY_ADDRESS" not in self._env:
            # A one-node Ray of our own stays on loopback. Otherwise Ray swaps 127.0.0.1 for the
            # host's routable address; despite its name, this switch is the general one for that.
            env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        return env

    def _ray_node_env(self) -> dict[str, str]:
        """`ray start` refuses to add a node while the switch above keeps Ray on loopback. The nodes are
        told their address (127.0.0.1) outright, so they stay on it; the services keep the switch, so
        they look for their raylet on 127.0.0.1 too."""
        env = self._server_env()
        if self.cluster:
            env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "1"
        # The head's GCS keeps the last actor calls for Ray's dashboard, about 1 KB each, 100,000 unless told:
        # memory that grows for hours before it stops. The mesh's own log is the record of every turn.
        env.setdefault(RAY_TASK_EVENTS_VARIABLE, str(RAY_TASK_EVENTS_KEPT))
        # The head declares a node dead after this many missed health checks this far apart: 3 s, not Ray's
        # 15 s, so a lost node's actors restart elsewhere and its turns are retried within the 10 s target.
        for variable, value in RAY_NODE_HEALTH_CHECKS.items():
            env.setdefault(variable, value)
        return env

    async def _apply_streams(self) -> list[Change]:
        settings = load_settings({"FLEET_DATA_DIR": str(self.data_dir), "FLEET_NATS_URL": self.endpoints["nats_url"],
                                  **self._nats_credentials(PROVISIONER)})
        client = await connect(settings, max_reconnect_attempts=3)
        try:
            changes = await apply_all(client.jetstream(), replicas=CLUSTER_STREAM_REPLICAS if self.cluster else None)
        finally:
            await client.close()
        touched = [c for c in changes if c.action != "unchanged"]
        self._report(f"streams applied: {len(touched)} changed, {len(changes) - len(touched)} unchanged")
        return changes

    def _write_endpoints(self) -> None:
        document = {
            **self.endpoints,
            "data_dir": str(self.data_dir),
            "supervisor_pid": os.getpid(),
            "started_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        path = self.data_dir / ENDPOINTS_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(document, indent=2) + "\n")
        temporary.replace(path)

    def service_environment(self) -> dict[str, str]:
        env = self._server_env()
        env.update({var: self.endpoints[key] for var, key in ENDPOINT_VARIABLES.items() if key in self.endpoints})
        env.update(FLEET_DATA_DIR=str(self.data_dir), PYTHONUNBUFFERED="1", RAY_TMPDIR=str(ray_temp_dir(self.data_dir)))
        if "FLEET_LLM_BASE_URL" not in self._env:
            env.setdefault("FLEET_LLM_MAX_TOKENS", EMBEDDED_LLM_MAX_TOKENS)
            env.setdefault("FLEET_AGENT_CONCURRENCY", EMBEDDED_AGENT_CONCURRENCY)
            env.setdefault("FLEET_LLM_CONTEXT_TOKENS", str(EMBEDDED_LLM_CONTEXT_TOKENS))
            env.setdefault("FLEET_CONTEXT_BUDGET_TOKENS", EMBEDDED_CONTEXT_BUDGET_TOKENS)
        if self.cluster:
            env[REPLICAS_VARIABLE] = str(CLUSTER_STREAM_REPLICAS)
        env.update(self._service_env)
        return env

    async def _start_services(self) -> None:
        env = self.service_environment()
        for instance, name in self.instances.items():
            argv = [str(binaries.python()), "-m", "services.cli", "service", name]
            service_env = {**env, "FLEET_METRICS_PORT": str(self.metrics_ports[instance]),
                           **self._nats_credentials(name)}
            if instance in self.monitor_ports:
                service_env["FLEET_MONITOR_PORT"] = str(self.monitor_ports[instance])
            process = ManagedProcess(instance, argv, self.logs_dir / f"{instance}.log", env=service_env)
            supervised = Supervised(process, on_event=self._report)
            await supervised.start()
            self.services[instance] = supervised
            self._report(f"service {instance} started (pid {process.pid}, log {process.log_path})")

    @property
    def servers(self) -> list[ManagedProcess]:
        return list(self._servers)

    def process_ids(self) -> list[int]:
        """The pid of each child; each leads its own process group."""
        children = self._servers + [s.process for s in self.services.values()]
        return [p.pid for p in children if p.pid is not None]

    async def stop(self) -> None:
        """Services first, so nothing is mid-publish when the servers go; then servers in reverse."""
        await asyncio.gather(*(s.stop() for s in self.services.values()))
        self.services.clear()
        for process in reversed(self._servers):
            await process.stop()
        self._servers.clear()
        (self.data_dir / ENDPOINTS_FILE).unlink(missing_ok=True)
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None
