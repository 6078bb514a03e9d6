"""Request/reply on core NATS for the queries in contracts/queries.py: serving them and asking them."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from faststream.nats import NatsBroker
from faststream.nats.response import NatsResponse
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from contracts.queries import STATUS_HEADER, QueryError, QuerySpec
from services.mesh.consuming import the_message_itself

log = logging.getLogger("fleet.queries")


class NotFound(LookupError):
    """The query names something the read models do not hold (yet)."""


class QueryFailed(RuntimeError):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status


def _reply(status: int, body: msgspec.Struct) -> NatsResponse:
    return NatsResponse(msgspec.json.encode(body), headers={STATUS_HEADER: str(status)})


def serve(broker: NatsBroker, spec: QuerySpec, answer: Callable[[msgspec.Struct], Awaitable[msgspec.Struct]],
          *, queue: str) -> None:
    """Answer `spec` on its subject, in a queue group so replicas share the load."""

    async def on_request(message: Any) -> NatsResponse:  # the NatsMessage: see the_message_itself
        try:
            request = spec.request_decoder.decode(message.body)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return _reply(400, QueryError(status=400, error=f"invalid {spec.subject} request: {exc}"))
        try:
            return _reply(200, await answer(request))
        except NotFound as exc:
            return _reply(404, QueryError(status=404, error=str(exc)))
        except Exception as exc:  # noqa: BLE001 - the asker gets the error instead of a timeout
            log.exception("%s failed", spec.subject)
            return _reply(500, QueryError(status=500, error=f"{type(exc).__name__}: {exc}"))

    broker.subscriber(spec.subject, queue=queue, decoder=the_message_itself)(on_request)


async def ask(client: Client, spec: QuerySpec, request: msgspec.Struct, *, timeout_s: float = 5.0):
    """The typed reply, or QueryFailed with the status and the reason."""
    try:
        reply = await client.request(spec.subject, msgspec.json.encode(request), timeout=timeout_s)
    except NoRespondersError:
        raise QueryFailed(503, f"nobody answers {spec.subject}: is the projection service running?") from None
    except NatsTimeout:
        raise QueryFailed(504, f"{spec.subject} got no reply within {timeout_s:g}s") from None
    status = int((reply.headers or {}).get(STATUS_HEADER, "200"))
    if status != 200:
        error = msgspec.json.decode(reply.data, type=QueryError)
        raise QueryFailed(error.status, error.error)
    return spec.reply_decoder.decode(reply.data)
