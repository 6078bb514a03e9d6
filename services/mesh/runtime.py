"""How every service process starts: connect, bind its durables, serve until signalled."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import nats
from aiohttp import web
from faststream import FastStream
from faststream.nats import NatsBroker
from faststream.nats.prometheus import NatsPrometheusMiddleware
from faststream.security import SASLPlaintext
from nats.aio.client import Client
from nats.js import JetStreamContext

from services.mesh import nats_patches
from services.mesh.consuming import DurableConsumer
from services.mesh.metrics import REGISTRY, serve_health_and_metrics
from services.mesh.publishing import EventPublisher
from services.mesh.settings import Settings
from streams.apply import records_retention_s, verify_consumer


@dataclass(frozen=True)
class Mesh:
    """What a composition root gets to wire its handlers with."""

    service: str
    settings: Settings
    broker: NatsBroker
    client: Client
    js: JetStreamContext
    publisher: EventPublisher


@dataclass(frozen=True)
class Binding:
    consumer: DurableConsumer
    max_workers: int = 1


@dataclass(frozen=True)
class Background:
    """Work that runs beside the consumers for the life of the service, such as following a stream.

    If it ever ends with an error, the process exits, so the supervisor (fleet up, Kubernetes)
    restarts it and it carries on from what the log and the stores say.
    """

    name: str
    run: Callable[[], Awaitable[None]]
    close: Callable[[], Awaitable[None]] | None = None


Wiring = Callable[[Mesh], Awaitable[Sequence[Binding | Background]]]


async def connect(settings: Settings, **options) -> Client:
    """A plain nats.py client, as this process's NATS user when it has one."""
    nats_patches.install()
    return await nats.connect(settings.nats_servers, **settings.nats_options(), **options)


def new_broker(service: str, settings: Settings) -> NatsBroker:
    nats_patches.install()
    credentials = settings.nats_options()
    return NatsBroker(
        settings.nats_servers,
        security=SASLPlaintext(username=credentials["user"], password=credentials["password"])
        if credentials else None,
        inbox_prefix=settings.inbox_prefix,
        name=f"fleet-{service}",
        max_reconnect_attempts=-1,
        logger=logging.getLogger(f"fleet.{service}.broker"),
        # FastStream logs every message; at DEBUG that costs nothing unless asked for.
        log_level=logging.DEBUG,
        middlewares=[NatsPrometheusMiddleware(registry=REGISTRY, app_name=f"fleet-{service}")],
    )


async def bind_durables(broker: NatsBroker, service: str, settings: Settings, wire: Wiring) -> list[Background]:
    """Connect, wire the handlers, and bind each to its existing durable. Call before broker.start().

    Returns the background work to start once the broker runs.
    """
    client = await broker.connect()
    js = client.jetstream()
    mesh = Mesh(service, settings, broker, client, js, EventPublisher(js, producer=service))
    background = []
    max_event_age_s = records_retention_s(os.environ)
    for item in await wire(mesh):
        if isinstance(item, Background):
            background.append(item)
            continue
        await verify_consumer(js, item.consumer.spec)
        item.consumer.register(broker, max_workers=item.max_workers, inbox_prefix=settings.inbox_prefix,
                               max_event_age_s=max_event_age_s)
    return background


def start_background(items: Sequence[Background]) -> list[asyncio.Task]:
    def exit_on_failure(task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            logging.getLogger("fleet.runtime").critical(
                "%s stopped: %r; exiting so the supervisor restarts the service", task.get_name(), task.exception(),
                exc_info=task.exception(),
            )
            os._exit(70)

    tasks = []
    for item in items:
        task = asyncio.create_task(item.run(), name=item.name)
        task.add_done_callback(exit_on_failure)
        tasks.append(task)
    return tasks


async def stop_background(tasks: Sequence[asyncio.Task], items: Sequence[Background]) -> None:
    for task in tasks:
        task.cancel()  # a cancelled task does not count as failed, so this exits nothing
    await asyncio.gather(*tasks, return_exceptions=True)
    for item in items:
        if item.close is not None:
            await item.close()


@dataclass
class SideWork:
    """What runs beside the consumers once the broker is up: background work, and /metrics and /healthz."""

    background: list[Background]
    tasks: list[asyncio.Task] = field(default_factory=list)
    http: web.AppRunner | None = None

    async def start(self, broker: NatsBroker, service: str, settings: Settings) -> None:
        connection = broker.connection
        self.http = await serve_health_and_metrics(settings.metrics_port, lambda: connection.is_connected, service)
        self.tasks = start_background(self.background)

    @property
    def http_port(self) -> int | None:
        return self.http.addresses[0][1] if self.http and self.http.addresses else None

    async def stop(self) -> None:
        await stop_background(self.tasks, self.background)
        if self.http is not None:
            await self.http.cleanup()


def build_app(service: str, settings: Settings, wire: Wiring) -> FastStream:
    """A FastStream app whose durables are bound after connecting, before consuming starts."""
    broker = new_broker(service, settings)
    app = FastStream(broker, logger=logging.getLogger(f"fleet.{service}"))
    side: list[SideWork] = []

    @app.on_startup
    async def start_service() -> None:
        side.append(SideWork(await bind_durables(broker, service, settings, wire)))

    @app.after_startup
    async def start_side_work() -> None:
        await side[0].start(broker, service, settings)

    @app.on_shutdown
    async def stop_side_work() -> None:
        if side:
            await side[0].stop()

    return app
