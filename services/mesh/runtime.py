"""How every service process starts: connect, bind its durables, serve until signalled."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from faststream import FastStream
from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from services.mesh.consuming import DurableConsumer
from services.mesh.publishing import EventPublisher
from services.mesh.settings import Settings
from streams.apply import verify_consumer


@dataclass(frozen=True)
class Mesh:
    """What a composition root gets to wire its handlers with."""

    service: str
    settings: Settings
    broker: NatsBroker
    js: JetStreamContext
    publisher: EventPublisher


@dataclass(frozen=True)
class Binding:
    consumer: DurableConsumer
    max_workers: int = 1


Wiring = Callable[[Mesh], Awaitable[Sequence[Binding]]]


def configure_logging(service: str) -> None:
    logging.basicConfig(
        level=os.environ.get("FLEET_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s",
    )


def new_broker(service: str, settings: Settings) -> NatsBroker:
    return NatsBroker(
        settings.nats_url,
        name=f"fleet-{service}",
        max_reconnect_attempts=-1,
        logger=logging.getLogger(f"fleet.{service}.broker"),
        # FastStream logs every message; at DEBUG that costs nothing unless asked for.
        log_level=logging.DEBUG,
    )


async def bind_durables(broker: NatsBroker, service: str, settings: Settings, wire: Wiring) -> Mesh:
    """Connect, wire the handlers, and bind each to its existing durable. Call before broker.start()."""
    client = await broker.connect()
    js = client.jetstream()
    mesh = Mesh(service, settings, broker, js, EventPublisher(broker, producer=service))
    for binding in await wire(mesh):
        await verify_consumer(js, binding.consumer.spec)
        binding.consumer.register(broker, max_workers=binding.max_workers)
    return mesh


def build_app(service: str, settings: Settings, wire: Wiring) -> FastStream:
    """A FastStream app whose durables are bound after connecting, before consuming starts."""
    broker = new_broker(service, settings)
    app = FastStream(broker, logger=logging.getLogger(f"fleet.{service}"))

    @app.on_startup
    async def start_service() -> None:
        await bind_durables(broker, service, settings, wire)

    return app
