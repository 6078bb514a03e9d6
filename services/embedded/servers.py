"""The four embedded servers: how to start each one and how to tell it is ready."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from services.embedded import binaries
from services.embedded.llama_server import llama_server
from services.embedded.processes import ManagedProcess

LLM_MODEL_NAME = "SmolLM2-135M-Instruct"
# nats-server's memory, as k8s/overlays/dev gives its pod (k8s sets GOMEMLIMIT from the pod's limit): Go's
# collector keeps the heap under it, where otherwise the heap's peaks set how much memory the process keeps.
NATS_MEMORY_LIMIT = "512MiB"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_or_free(wanted: int) -> int:
    """`wanted` when nothing listens there yet, else (or for 0) any free port."""
    if wanted:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", wanted))
                return wanted
            except OSError:
                pass
    return free_port()


async def tcp_ready(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def http_ready(url: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
            session.get(url) as reply,
        ):
            return reply.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


@dataclass(frozen=True)
class ServerPlan:
    """A server to start: its command line, the endpoints it offers, and its readiness probe."""

    name: str
    argv: list[str]
    endpoints: dict[str, str]
    port: int
    ready_url: str | None = None
    startup_timeout_s: float = 60.0
    stop_grace_s: float = 10.0
    # Variables the server runs with unless its environment sets them.
    default_env: Mapping[str, str] = field(default_factory=dict)

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        return {**self.default_env, **env}

    async def is_ready(self) -> bool:
        if self.ready_url:
            return await http_ready(self.ready_url)
        return await tcp_ready(self.port)

    async def wait_ready(self, still_running) -> float:
        """Seconds it took; raises if the process died or the deadline passed."""
        began = time.monotonic()
        while time.monotonic() - began < self.startup_timeout_s:
            if not still_running():
                raise RuntimeError(f"{self.name} exited during startup")
            if await self.is_ready():
                return time.monotonic() - began
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} was not ready within {self.startup_timeout_s:.0f}s")


def nats_plan(data_dir: Path, auth_config: Path | None = None) -> ServerPlan:
    """nats-server with JetStream; with `auth_config`, its users and their permissions too."""
    port, monitor = free_port(), free_port()
    store = data_dir / "nats"
    config = ["-c", str(auth_config)] if auth_config is not None else []
    return ServerPlan(
        name="nats",
        argv=[str(binaries.nats_server()), *config, "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(port),
              "-m", str(monitor), "-n", "fleet-embedded"],
        endpoints={"nats_url": f"nats://127.0.0.1:{port}", "nats_monitor_url": f"http://127.0.0.1:{monitor}"},
        port=port,
        ready_url=f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true",
        default_env={"GOMEMLIMIT": NATS_MEMORY_LIMIT},
    )


# The NATS cluster of `fleet up --cluster`, as in k8s/overlays/prod: three servers, every stream on each.
CLUSTER_NATS_NODES = 3


def nats_cluster_plans(data_dir: Path, auth_config: Path | None = None,
                       nodes: int = CLUSTER_NATS_NODES) -> list[ServerPlan]:
    """`nodes` nats-servers routed to one another, each with its own store, client and monitor ports.

    Ready when JetStream has elected its meta leader (the full /healthz): before that a stream cannot be
    created. Each plan's `nats_url` is its own node; the stack lists them all for clients.
    """
    ports = [(free_port(), free_port(), free_port()) for _ in range(nodes)]
    routes = ",".join(f"nats-route://127.0.0.1:{route}" for _, _, route in ports)
    config = ["-c", str(auth_config)] if auth_config is not None else []
    plans = []
    for index, (port, monitor, route) in enumerate(ports, start=1):
        name = f"nats-{index}"
        plans.append(ServerPlan(
            name=name,
            argv=[str(binaries.nats_server()), *config, "-js", "-sd", str(data_dir / name), "-a", "127.0.0.1",
                  "-p", str(port), "-m", str(monitor), "-n", f"fleet-{name}", "--cluster_name", "fleet",
                  "--cluster", f"nats-route://127.0.0.1:{route}", "--routes", routes],
            endpoints={"nats_url": f"nats://127.0.0.1:{port}", "nats_monitor_url": f"http://127.0.0.1:{monitor}"},
            port=port,
            ready_url=f"http://127.0.0.1:{monitor}/healthz",
            default_env={"GOMEMLIMIT": NATS_MEMORY_LIMIT},
        ))
    return plans


def redis_plan(data_dir: Path) -> ServerPlan:
    port = free_port()
    store = data_dir / "redis"
    store.mkdir(parents=True, exist_ok=True)
    return ServerPlan(
        name="redis+falkordb",
        argv=[str(binaries.redis_server()), "--port", str(port), "--bind", "127.0.0.1",
              "--loadmodule", str(binaries.falkordb_module()), "--dir", str(store),
              "--appendonly", "yes", "--save", ""],
        endpoints={"valkey_url": f"redis://127.0.0.1:{port}", "graph_uri": f"falkor://127.0.0.1:{port}"},
        port=port,
    )


# The embedded LLM's requests at once: a council of three proposes, critiques and revises together. A slot
# batches with the others, so three at once cost far less than three one after the other.
LLM_SLOTS = 3
# Tokens each request may read and write (the agents cut prompts to it: FLEET_LLM_CONTEXT_TOKENS).
LLM_CONTEXT_PER_SLOT = 4096


def llm_plan(threads: int, slots: int = LLM_SLOTS) -> ServerPlan:
    """llama.cpp's llama-server with SmolLM2: schemas enforced as grammars, `slots` requests at once."""
    port = free_port()
    return ServerPlan(
        name="llama.cpp",
        argv=[str(llama_server()), "--model", str(binaries.smollm2_model()), "--alias", LLM_MODEL_NAME,
              "--host", "127.0.0.1", "--port", str(port), "--threads", str(threads),
              "--parallel", str(slots), "--ctx-size", str(LLM_CONTEXT_PER_SLOT * slots), "--no-kv-unified",
              "--no-webui"],
        endpoints={"llm_base_url": f"http://127.0.0.1:{port}/v1", "llm_model": LLM_MODEL_NAME},
        port=port,
        ready_url=f"http://127.0.0.1:{port}/health",
    )


def ray_temp_dir(data_dir: Path) -> Path:
    """Ray's unix sockets must fit in 107 bytes, so a deep data dir gets a short stand-in under /tmp."""
    preferred = data_dir / "ray"
    if len(str(preferred)) <= 40:
        return preferred
    return Path("/tmp") / f"fleet-ray-{hashlib.sha256(str(data_dir).encode()).hexdigest()[:10]}"


def ray_plan(data_dir: Path, cpus: int) -> ServerPlan:
    port = free_port()
    return ServerPlan(
        name="ray",
        argv=[str(binaries.ray_cli()), "start", "--head", "--block", "--port", str(port),
              "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus), "--include-dashboard", "false",
              "--disable-usage-stats", "--temp-dir", str(ray_temp_dir(data_dir))],
        endpoints={"ray_address": f"127.0.0.1:{port}"},
        port=port,
        startup_timeout_s=120.0,
        # `ray start --block` lingers on SIGTERM; it keeps no state we need, so the group is killed soon.
        stop_grace_s=3.0,
    )


# A Ray worker's object store under `fleet up --cluster`: what k8s/base/ray/raycluster.yaml gives each pod.
RAY_WORKER_OBJECT_STORE_BYTES = 256 * 1024 * 1024


def ray_worker_plan(data_dir: Path, head_address: str, cpus: int, index: int) -> ServerPlan:
    """A Ray worker node joined to the head, as a KubeRay worker pod is: its own raylet, object store and workers."""
    node_manager = free_port()
    return ServerPlan(
        name=f"ray-worker-{index}",
        argv=[str(binaries.ray_cli()), "start", "--address", head_address, "--block", "--node-ip-address", "127.0.0.1",
              "--num-cpus", str(cpus), "--node-manager-port", str(node_manager), "--disable-usage-stats",
              "--object-store-memory", str(RAY_WORKER_OBJECT_STORE_BYTES), "--temp-dir", str(ray_temp_dir(data_dir))],
        endpoints={f"ray_worker_{index}_address": f"127.0.0.1:{node_manager}"},
        port=node_manager,
        startup_timeout_s=120.0,
        stop_grace_s=3.0,
    )


@contextlib.asynccontextmanager
async def running_server(plan: ServerPlan, log_dir: Path) -> AsyncIterator[dict[str, str]]:
    """Start one packaged server on its port, yield its endpoints, and stop it with its children."""
    process = ManagedProcess(plan.name, plan.argv, log_dir / f"{plan.name}.log",
                             env=plan.environment(os.environ), stop_grace_s=plan.stop_grace_s)
    await process.start()
    try:
        try:
            await plan.wait_ready(process.running)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{process.tail()}") from None
        yield plan.endpoints
    finally:
        await process.stop()
