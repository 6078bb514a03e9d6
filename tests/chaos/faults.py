"""The faults, one small object each: `inject` breaks one thing, `heal` mends it and says what it saw.

A fault acts on a `Target`: the running EmbeddedStack and the LLM stand-in in front of the agents.
Healing waits for the thing to be back (a restarted service running again, a server answering), so
the run measures the mesh's recovery, not a race with the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import aiohttp
from nats.js import JetStreamContext

from bench.llm_standin import standin_plan
from contracts import catalog
from services.embedded.processes import ManagedProcess
from services.embedded.servers import ServerPlan, http_ready, tcp_ready
from services.embedded.stack import EmbeddedStack
from streams.definitions import CONSUMERS, STREAMS, ConsumerSpec
from tests.chaos.readback import wait_until

# How long a healed thing may take to be back before the fault run says it did not come back.
BACK_WITHIN_S = 90.0
# How long a kill waits for its service to hold unacknowledged messages, so that it cuts work in half.
IN_FLIGHT_WITHIN_S = 10.0
# How long a kill keeps its service frozen waiting for a message its open pull request may still bring,
# before it lets the service run again and fetch anew (a pull request lasts 5 s, services/mesh/consuming.py).
FROZEN_FOR_WORK_S = 1.5


class FaultDidNotHeal(RuntimeError):
    pass


class StandInServer:
    """The LLM stand-in as a process of the run's own, so a fault can stop it and start it on the same port."""

    def __init__(self, log_dir: Path, upstream: str | None = None) -> None:
        self.plan: ServerPlan = standin_plan(upstream=upstream)
        self.process = ManagedProcess(self.plan.name, self.plan.argv, log_dir / f"{self.plan.name}.log",
                                      stop_grace_s=self.plan.stop_grace_s)

    @property
    def endpoints(self) -> dict[str, str]:
        return self.plan.endpoints

    async def start(self) -> None:
        await self.process.start()
        try:
            await self.plan.wait_ready(self.process.running)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.process.tail()}") from None

    async def stop(self) -> None:
        await self.process.stop()

    async def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.request(method, self.endpoints["standin_url"] + path, json=body) as reply,
        ):
            reply.raise_for_status()
            return await reply.json()

    async def set_fault(self, mode: str, delay_s: float = 0.0) -> dict:
        return await self._call("POST", "/_fault", {"mode": mode, "delay_s": delay_s})

    async def stats(self) -> dict:
        return await self._call("GET", "/_stats")

    async def wait_for_requests(self, within_s: float = IN_FLIGHT_WITHIN_S) -> bool:
        """Whether a new request came within `within_s`: a fault injected then meets calls in flight."""
        before = (await self.stats())["requests"]

        async def grew() -> bool:
            return (await self.stats())["requests"] > before

        try:
            await wait_until(grew, within_s, "an LLM request", every_s=0.05)
        except TimeoutError:
            return False
        return True


@dataclass
class Target:
    stack: EmbeddedStack
    llm: StandInServer
    js: JetStreamContext
    # The agents' FLEET_LLM_TIMEOUT_S: a slow LLM must answer later than this.
    llm_timeout_s: float

    def server(self, name: str) -> ManagedProcess:
        [process] = [p for p in self.stack.servers if p.name == name]
        return process


async def _until(condition, what: str, within_s: float = BACK_WITHIN_S, every_s: float = 0.2) -> float:
    """Seconds until `condition()` (async) holds; FaultDidNotHeal after `within_s`."""
    try:
        return await wait_until(condition, within_s, what, every_s)
    except TimeoutError as exc:
        raise FaultDidNotHeal(str(exc)) from None


async def services_connected(stack: EmbeddedStack) -> bool:
    """Every service's /healthz says its NATS connection is up."""
    answers = await asyncio.gather(*(http_ready(f"http://127.0.0.1:{port}/healthz")
                                     for port in stack.metrics_ports.values()))
    return bool(answers) and all(answers)


@dataclass
class Fault:
    """One fault. `hold_s`: how long it lasts before `heal`, while approvals keep coming."""

    name: str
    description: str
    hold_s: float = 5.0
    observed: dict = field(default_factory=dict)

    async def inject(self, target: Target) -> None:
        """Break the thing; the base fault breaks nothing (the baseline run)."""

    async def hold(self, target: Target) -> None:
        """Let the fault last."""
        await asyncio.sleep(self.hold_s)

    async def heal(self, target: Target) -> None:
        """Mend it, and wait until it is back."""


@dataclass
class KillService(Fault):
    """SIGKILL a service's process: no shutdown, no acks; the supervisor must restart it.

    The kill comes while the service holds work: delivered messages it has not acknowledged. It is
    frozen (SIGSTOP) first, so what its durables report is what the kill meets: a frozen process
    acknowledges nothing more. `observed["work_at_kill"]` has each durable's figures at that moment,
    and `observed["unacked_at_kill"]` their unacknowledged messages in all (None for the projection,
    which follows streams with no durable).
    """

    service: str = ""
    # The process killed: the service's own name on the one-node mesh, a replica's under `--cluster`.
    instance: str = ""
    settle_s: float = 0.0

    async def inject(self, target: Target) -> None:
        self.instance = self.instance or self.service
        await self._kill(target)

    async def _kill(self, target: Target) -> None:
        supervised = target.stack.services[self.instance]
        pid = supervised.process.pid
        durables = [c for c in CONSUMERS if c.service == self.service]
        work = await self._frozen_holding_work(target.js, pid, durables)
        self.observed.update(killed=self.instance, killed_pid=pid, restarts_before=supervised.restarts,
                             work_at_kill=work, unacked_at_kill=_unacked(work) if durables else None)
        self._killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)

    async def _frozen_holding_work(self, js: JetStreamContext, pid: int, durables: list[ConsumerSpec]) -> dict:
        """Freeze the service once it holds unacknowledged messages, or at the deadline; its durables' figures.

        Frozen while idle, it still gets the messages its open pull request asks for, and cannot ack
        them; if none comes, it runs again for a moment to fetch anew.
        """
        deadline = time.monotonic() + IN_FLIGHT_WITHIN_S
        while True:
            os.kill(pid, signal.SIGSTOP)
            if not durables:
                return {}

            async def holds_work() -> bool:
                return _unacked(await held_work(js, durables)) > 0

            with contextlib.suppress(FaultDidNotHeal):
                await _until(holds_work, "work in flight", within_s=FROZEN_FOR_WORK_S, every_s=0.05)
            # A sibling replica acks what it holds within this; what is still unacknowledged then is the frozen one's.
            await asyncio.sleep(self.settle_s)
            work = await held_work(js, durables)
            if _unacked(work) > 0 or time.monotonic() > deadline:
                return work
            os.kill(pid, signal.SIGCONT)
            await asyncio.sleep(0.1)

    async def heal(self, target: Target) -> None:
        supervised = target.stack.services[self.instance]

        async def restarted() -> bool:
            return supervised.restarts > self.observed["restarts_before"] and supervised.process.running() \
                and supervised.process.pid != self.observed["killed_pid"]

        await _until(restarted, f"{self.instance} restarted by the supervisor")
        self.observed["restarted_after_s"] = round(time.monotonic() - self._killed_at, 1)
        port = target.stack.metrics_ports[self.instance]
        self.observed["healthy_after_s"] = round(
            await _until(lambda: http_ready(f"http://127.0.0.1:{port}/healthz"), f"{self.instance} healthy")
            + self.observed["restarted_after_s"], 1)


# What a replica holds: the messages its handlers are working on (FastStream's gauge), and for the
# projection, whether it holds the lease and so writes the read models.
IN_PROCESS_METRIC = "faststream_received_messages_in_process"
# How long to look for a replica at work before freezing one and waiting for the work to come to it.
REPLICA_AT_WORK_WITHIN_S = 3.0
LEASE_METRIC = "fleet_projection_lease_held"


async def replica_holdings(port: int) -> float:
    """The messages a replica's handlers are working on, plus 1 per projection lease it holds (its /metrics)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as reply,
        ):
            text = await reply.text()
    except (aiohttp.ClientError, TimeoutError):
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith((IN_PROCESS_METRIC + "{", LEASE_METRIC + "{")))


@dataclass
class KillReplica(KillService):
    """SIGKILL the replica of a service that holds work, while its sibling keeps running (`--cluster`).

    The replica is the one whose handlers are working on messages (or, for the projection, that holds a
    lease) when the kill comes, if one is: `observed["held_by_killed"]`. Handlers that take milliseconds
    are rarely seen at work, so the replica is then frozen until the durables hold unacknowledged messages
    that stay so for `settle_s` (its sibling acks its own by then): `observed["unacked_at_kill"]`. The
    sibling takes over the shared durables' messages once their ack wait is over.
    """

    settle_s: float = 0.5

    async def inject(self, target: Target) -> None:
        replicas = [i for i, name in target.stack.instances.items() if name == self.service]
        holdings: dict[str, float] = {}

        async def one_holds_work() -> bool:
            holdings.update({i: await replica_holdings(target.stack.metrics_ports[i]) for i in replicas})
            return max(holdings.values()) > 0

        with contextlib.suppress(FaultDidNotHeal):
            await _until(one_holds_work, "a replica holding work", within_s=REPLICA_AT_WORK_WITHIN_S, every_s=0.05)
        self.instance = max(replicas, key=lambda i: holdings.get(i, 0.0))
        self.observed["held_by_killed"] = holdings.get(self.instance, 0.0)
        await self._kill(target)


async def held_work(js: JetStreamContext, durables: list[ConsumerSpec]) -> dict[str, dict[str, int]]:
    """Each durable's messages delivered and not yet acknowledged (unacked), and not yet delivered (pending)."""
    infos = {c.durable: await js.consumer_info(c.stream, c.durable) for c in durables}
    return {durable: {"unacked": info.num_ack_pending or 0, "pending": info.num_pending or 0}
            for durable, info in infos.items()}


def _unacked(work: dict[str, dict[str, int]]) -> int:
    return sum(figures["unacked"] for figures in work.values())


@dataclass
class RestartServer(Fault):
    """Stop a server (SIGTERM, then SIGKILL after its grace) and start the same process again: same port, same data."""

    server: str = ""

    async def inject(self, target: Target) -> None:
        await target.server(self.server).stop()

    async def heal(self, target: Target) -> None:
        process = target.server(self.server)
        await process.start()
        self.observed["ready_after_s"] = round(await _until(lambda: self._ready(target), f"{self.server} ready"), 1)
        self.observed["services_connected_after_s"] = round(
            await _until(lambda: services_connected(target.stack), "every service reconnected"), 1)

    async def _ready(self, target: Target) -> bool:
        endpoints = target.stack.endpoints
        if self.server == "nats":
            return await http_ready(endpoints["nats_monitor_url"] + "/healthz?js-enabled-only=true")
        if self.server.startswith("nats-"):
            # A cluster node is back when every stream it holds a copy of has caught up with its leader.
            return await http_ready(endpoints[f"{self.server.replace('-', '_')}_monitor_url"] + "/healthz")
        return await tcp_ready(urlparse(endpoints["valkey_url"]).port)


@dataclass
class KillServer(RestartServer):
    """SIGKILL a server while the services hold unacknowledged work, then start it again: same port, same data.

    nats-server writes a message to its files before it acks it; what is not yet flushed to the disk is
    in the operating system's cache, which a killed process does not take with it (`sync_interval` bounds
    what a power loss could take). `observed["lost"]` compares each stream's last sequence before the
    kill with the one after the restart; `observed["unacked_at_kill"]` is the work the kill met.
    """

    async def inject(self, target: Target) -> None:
        async def holds_work() -> bool:
            return _unacked(await held_work(target.js, list(CONSUMERS))) > 0

        with contextlib.suppress(FaultDidNotHeal):
            await _until(holds_work, "work in flight", within_s=IN_FLIGHT_WITHIN_S, every_s=0.05)
        work = await held_work(target.js, list(CONSUMERS))
        self.observed.update(work_at_kill=work, unacked_at_kill=_unacked(work),
                             stored_before=await last_sequences(target.js))
        process = target.server(self.server)
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()

    async def heal(self, target: Target) -> None:
        await super().heal(target)
        after: dict[str, int] = {}

        async def read_again() -> bool:
            try:
                after.update(await last_sequences(target.js))
            except Exception:  # noqa: BLE001 - the test's own client may still be reconnecting
                return False
            return True

        await _until(read_again, "the log readable again")
        before = self.observed.pop("stored_before")
        self.observed["lost"] = {stream: last - after.get(stream, 0) for stream, last in before.items()
                                 if after.get(stream, 0) < last}


@dataclass
class KillStreamLeader(KillServer):
    """SIGKILL the NATS node that leads the busiest stream (the most messages stored) while the services hold
    unacknowledged work, then start it again (`--cluster`). The two nodes left elect a new leader from the
    copies they hold; `observed["leader_elected_after_s"]` is how long that took."""

    async def inject(self, target: Target) -> None:
        sizes = await last_sequences(target.js)
        busiest = max(sizes, key=sizes.__getitem__)
        leader = (await target.js.stream_info(busiest)).cluster.leader
        self.server = leader.removeprefix("fleet-")
        self.observed.update(stream=busiest, leader=leader)
        began = time.monotonic()
        await super().inject(target)

        async def new_leader() -> bool:
            try:
                now = (await asyncio.wait_for(target.js.stream_info(busiest), 2.0)).cluster.leader
            except Exception:  # noqa: BLE001 - no leader yet, or the test's client still reconnecting
                return False
            if now and now != leader:
                self.observed["new_leader"] = now
                return True
            return False

        self.observed["leader_elected_after_s"] = round(
            await _until(new_leader, f"a new leader of {busiest}", every_s=0.1), 1)
        self.observed["killed_for_s"] = round(time.monotonic() - began, 1)


@dataclass
class RollingRestart(Fault):
    """Stop every service replica in turn with SIGTERM and wait for it to be back and healthy before the next,
    as a Deployment rollout does, under load (`--cluster`: its sibling carries the work meanwhile)."""

    hold_s: float = 0.0

    async def inject(self, target: Target) -> None:
        back_after: dict[str, float] = {}
        for instance, supervised in target.stack.services.items():
            pid, restarts = supervised.process.pid, supervised.restarts

            async def restarted(supervised=supervised, pid=pid, restarts=restarts) -> bool:
                return supervised.restarts > restarts and supervised.process.running() \
                    and supervised.process.pid != pid

            began = time.monotonic()
            os.kill(pid, signal.SIGTERM)
            await _until(restarted, f"{instance} started again")
            port = target.stack.metrics_ports[instance]
            await _until(lambda port=port: http_ready(f"http://127.0.0.1:{port}/healthz"), f"{instance} healthy")
            back_after[instance] = round(time.monotonic() - began, 1)
        self.observed["back_after_s"] = back_after


def ray_actor_processes(node_group: int) -> list[int]:
    """The pids of the Ray workers that a node's raylet (in process group `node_group`) started for actors.

    Each worker leads a session of its own, so killing the node's group leaves them; a lost node takes
    them with it, so the fault kills them too."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                # Fields after the command's closing parenthesis: state, ppid, pgrp.
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")[0]
                stats[int(entry.name)] = (int(fields[1]), int(fields[2]), cmdline)
    node = {pid for pid, (_, group, _) in stats.items() if group == node_group}
    return [pid for pid, (parent, _, cmdline) in stats.items()
            if parent in node and cmdline.startswith(b"ray::") and pid not in node]


@dataclass
class KillRayNode(Fault):
    """SIGKILL the Ray worker node hosting the most actors, its raylet and those actors, while the agents call the
    LLM; start it again after `hold_s` (`--cluster`). Ray restarts the lost actors on the node left
    (max_restarts=-1); a turn that was in flight fails with RayActorError and is redelivered to the restarted actor."""

    server: str = ""

    async def inject(self, target: Target) -> None:
        self.observed["llm_busy_at_fault"] = await target.llm.wait_for_requests()
        hosted = {p.name: ray_actor_processes(p.pid) for p in target.stack.servers if p.name.startswith("ray-worker-")}
        self.server = max(hosted, key=lambda name: len(hosted[name]))
        process = target.server(self.server)
        actors = hosted[self.server]
        self.observed.update(node=self.server, actors_on_node=len(actors),
                             actors_elsewhere=sum(len(a) for name, a in hosted.items() if name != self.server))
        os.killpg(process.pid, signal.SIGKILL)
        for pid in actors:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await process.wait()

    async def heal(self, target: Target) -> None:
        process = target.server(self.server)
        await process.start()
        port = int(target.stack.endpoints[f"{self.server.replace('-', '_')}_address"].rsplit(":", 1)[1])
        self.observed["ready_after_s"] = round(await _until(lambda: tcp_ready(port), f"{self.server} ready"), 1)


async def last_sequences(js: JetStreamContext) -> dict[str, int]:
    """Each stream's last stored sequence: a stream that lost acked messages ends lower than it did."""
    return {spec.name: (await js.stream_info(spec.name)).state.last_seq for spec in STREAMS}


@dataclass
class LlmMode(Fault):
    """Switch the stand-in's answers to a failure mode; `slow` answers after the agents have given up."""

    mode: str = "ok"

    async def inject(self, target: Target) -> None:
        self.observed["llm_busy_at_fault"] = await target.llm.wait_for_requests()
        delay_s = target.llm_timeout_s + 2.0 if self.mode == "slow" else 0.0
        self.observed["switched"] = await target.llm.set_fault(self.mode, delay_s)
        self.observed["requests_before"] = (await target.llm.stats())["by_mode"].get(self.mode, 0)

    async def _met(self, target: Target) -> int:
        """How many requests met the fault so far."""
        return (await target.llm.stats())["by_mode"].get(self.mode, 0) - self.observed["requests_before"]

    async def hold(self, target: Target) -> None:
        """At least `hold_s`, and until a request has met the fault: a real model may be busy with one call
        for longer than the hold, and a fault no request met tested nothing."""
        await asyncio.sleep(self.hold_s)

        async def met() -> bool:
            return await self._met(target) > 0

        with contextlib.suppress(FaultDidNotHeal):
            await _until(met, "a request meeting the fault", within_s=BACK_WITHIN_S)

    async def heal(self, target: Target) -> None:
        self.observed["requests_while_faulty"] = await self._met(target)
        del self.observed["requests_before"]
        await target.llm.set_fault("ok")


@dataclass
class StopLlm(Fault):
    """Stop the LLM server's process, then start it again on the same port: connections are refused meanwhile."""

    async def inject(self, target: Target) -> None:
        self.observed["llm_busy_at_fault"] = await target.llm.wait_for_requests()
        await target.llm.stop()

    async def heal(self, target: Target) -> None:
        began = time.monotonic()
        await target.llm.start()
        self.observed["ready_after_s"] = round(time.monotonic() - began, 1)


def all_faults() -> list[Fault]:
    """Every fault of the run, in the order it injects them; fresh objects, since each records what it saw."""
    # No hold: healing is the supervisor's restart, and waiting for it measures how soon it comes.
    kills = [KillService(f"kill-{name}", f"SIGKILL {name}; the supervisor restarts it", hold_s=0.0, service=name)
             for name in catalog.SERVICES if name != catalog.MONITOR]
    return [
        Fault("none", "no fault: the baseline"),
        *kills,
        RestartServer("nats-restart", "nats-server stopped for 5 s and started again (same port and store)",
                      server="nats"),
        KillServer("nats-kill", "nats-server SIGKILLed while services hold unacknowledged work, started again "
                   "after 5 s (same port and store)", server="nats"),
        StopLlm("llm-stopped", "the LLM server stopped for 5 s: connections refused"),
        LlmMode("llm-slow", "the LLM answers 2 s after the agents' timeout", mode="slow"),
        LlmMode("llm-http500", "the LLM answers HTTP 500", mode="http500"),
        LlmMode("llm-malformed", "the LLM answers truncated JSON", mode="malformed"),
        RestartServer("store-restart", "redis+FalkorDB (the graph and KV) stopped for 5 s and started again",
                      server="redis+falkordb"),
    ]


def cluster_faults() -> list[Fault]:
    """The faults of `--cluster`: what production's replicas and nodes are there to survive."""
    kills = [KillReplica(f"kill-{name}-replica", f"SIGKILL the {name} replica holding work; its sibling carries on",
                         hold_s=0.0, service=name)
             for name in catalog.SERVICES if name != catalog.MONITOR]
    return [
        Fault("none", "no fault: the baseline"),
        KillStreamLeader("nats-leader-kill", "the NATS node leading the busiest stream SIGKILLed while services "
                         "hold unacknowledged work, started again after 5 s"),
        *kills,
        RollingRestart("rolling-restart", "every service replica stopped (SIGTERM) and started again, one at a "
                       "time, as a Deployment rollout does"),
        KillRayNode("ray-node-kill", "the Ray worker node hosting the most actors SIGKILLed with them, started again "
                    "after 5 s"),
    ]


FAULT_NAMES = tuple(f.name for f in all_faults())
CLUSTER_FAULT_NAMES = tuple(f.name for f in cluster_faults())


def chosen(names: list[str] | None, cluster: bool = False) -> list[Fault]:
    faults = cluster_faults() if cluster else all_faults()
    if not names:
        return faults
    known = CLUSTER_FAULT_NAMES if cluster else FAULT_NAMES
    unknown = set(names) - set(known)
    if unknown:
        raise ValueError(f"unknown fault(s) {', '.join(sorted(unknown))}"
                         f"{' with --cluster' if cluster else ''}; there are: {', '.join(known)}")
    return [f for f in faults if f.name in names]
