"""The AsyncAPI 3.0 document of the mesh, built from the contracts catalog: one source for both.

Every event is a channel (its subject) with one message; every producer has a `send` operation on
it and every consumer a `receive`. Queries are request/reply: the projection service `receive`s on
the query subject and replies on the requester's inbox. Payload schemas come from msgspec, the same
types the services decode with.
"""

from __future__ import annotations

import re
from importlib import metadata

import msgspec

from contracts import catalog, envelope
from contracts.catalog import EVENTS, EventSpec
from contracts.queries import QUERIES, STATUS_HEADER, QueryError, QuerySpec

SCHEMA_REF = "#/components/schemas/{name}"
HEADER_MEANINGS = {
    envelope.MSG_ID: "Event id; JetStream de-duplicates on it. The one header ingress must send.",
    envelope.EVENT_TYPE: "<aggregate>.<event>",
    envelope.SCHEMA_VERSION: "Payload schema version.",
    envelope.OCCURRED_AT: "ISO-8601 UTC time the event occurred.",
    envelope.PRODUCER: "The service that published it.",
    envelope.CORRELATION_ID: "Id of the first event of the causal chain.",
    envelope.CAUSATION_ID: "Id of the event that caused this one.",
    envelope.AGGREGATE_TYPE: "The aggregate's type.",
    envelope.AGGREGATE_ID: "The aggregate's id.",
    envelope.TRACEPARENT: "W3C trace context; a whole deliberation is one trace.",
}
QUERY_ASKERS = (catalog.OPERATOR, catalog.AGENTS)


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "_", text).strip("_")


def _message_name(spec: EventSpec) -> str:
    return spec.payload.__name__ + ("V0" if spec.legacy else "")


def _ref(kind: str, name: str) -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def _envelope_headers() -> dict:
    return {
        "type": "object",
        "properties": {name: {"type": "string", "description": meaning} for name, meaning in HEADER_MEANINGS.items()},
        "required": [envelope.MSG_ID],
    }


def _event_channel(spec: EventSpec) -> tuple[str, dict, dict]:
    name = _message_name(spec)
    channel = {
        "address": spec.subject,
        "title": f"{spec.event_type} v{spec.version}" + (" (legacy)" if spec.legacy else ""),
        "description": spec.summary,
        "messages": {name: _ref("messages", name)},
    }
    message = {
        "name": name,
        "title": f"{spec.event_type} v{spec.version}",
        "summary": spec.summary,
        "contentType": "application/json",
        "headers": _ref("schemas", "Envelope"),
        "payload": {"$ref": SCHEMA_REF.format(name=spec.payload.__name__)},
        "correlationId": {"location": f"$message.header#/{envelope.CORRELATION_ID}"},
    }
    return _slug(spec.subject), channel, message


def _event_operations(spec: EventSpec, channel_id: str) -> dict[str, dict]:
    message = {"$ref": f"#/channels/{channel_id}/messages/{_message_name(spec)}"}
    operations = {}
    for action, parties in (("send", spec.producers), ("receive", spec.consumers)):
        for party in parties:
            operations[f"{_slug(party)}.{action}.{channel_id}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "messages": [message],
                "summary": f"{party} {'publishes' if action == 'send' else 'consumes'} {spec.subject}",
            }
    return operations


def _query_parts(query: QuerySpec) -> tuple[dict, dict, dict]:
    channel_id, reply_id = _slug(query.subject), _slug(query.subject) + "_reply"
    request, reply = query.request.__name__, query.reply.__name__
    channels = {
        channel_id: {"address": query.subject, "description": query.summary,
                     "messages": {request: _ref("messages", request)}},
        # NATS replies go to the requester's inbox, which each request names itself.
        reply_id: {"address": None, "messages": {reply: _ref("messages", reply),
                                                 "QueryError": _ref("messages", "QueryError")}},
    }
    messages = {
        request: {"name": request, "contentType": "application/json",
                  "payload": {"$ref": SCHEMA_REF.format(name=request)}},
        reply: {"name": reply, "contentType": "application/json", "headers": _ref("schemas", "QueryStatus"),
                "payload": {"$ref": SCHEMA_REF.format(name=reply)}},
    }
    reply_messages = [{"$ref": f"#/channels/{reply_id}/messages/{name}"} for name in (reply, "QueryError")]
    request_message = [{"$ref": f"#/channels/{channel_id}/messages/{request}"}]
    operations = {
        f"projection.answer.{channel_id}": {
            "action": "receive", "channel": {"$ref": f"#/channels/{channel_id}"}, "messages": request_message,
            "summary": query.summary,
            "reply": {"channel": {"$ref": f"#/channels/{reply_id}"}, "messages": reply_messages},
        },
    }
    for asker in QUERY_ASKERS:
        operations[f"{_slug(asker)}.ask.{channel_id}"] = {
            "action": "send", "channel": {"$ref": f"#/channels/{channel_id}"}, "messages": request_message,
            "reply": {"channel": {"$ref": f"#/channels/{reply_id}"}, "messages": reply_messages},
        }
    return channels, messages, operations


def _schemas() -> dict[str, dict]:
    types = [spec.payload for spec in EVENTS]
    types += [t for query in QUERIES for t in (query.request, query.reply)] + [QueryError]
    _, components = msgspec.json.schema_components(types, ref_template=SCHEMA_REF)
    return components


def asyncapi_document() -> dict:
    channels: dict[str, dict] = {}
    messages: dict[str, dict] = {"QueryError": {
        "name": "QueryError", "contentType": "application/json", "headers": _ref("schemas", "QueryStatus"),
        "payload": {"$ref": SCHEMA_REF.format(name="QueryError")},
    }}
    operations: dict[str, dict] = {}
    for spec in EVENTS:
        channel_id, channel, message = _event_channel(spec)
        channels[channel_id] = channel
        messages[message["name"]] = message
        operations |= _event_operations(spec, channel_id)
    for query in QUERIES:
        query_channels, query_messages, query_operations = _query_parts(query)
        channels |= query_channels
        messages |= query_messages
        operations |= query_operations
    schemas = _schemas() | {
        "Envelope": _envelope_headers(),
        "QueryStatus": {"type": "object", "properties": {STATUS_HEADER: {
            "type": "string", "description": "200, or 400/404/500/503 with a QueryError body"}}},
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "SWE AI Fleet event mesh",
            "version": metadata.version("swe-ai-fleet"),
            "description": "Councils of LLM agents deliberating over NATS JetStream. Generated by "
                           "`fleet contracts asyncapi` from contracts/; do not edit by hand.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "embedded": {"host": "127.0.0.1:4222", "protocol": "nats",
                         "description": "`fleet up` (the real port is in .fleet/endpoints.json)"},
            "kubernetes": {"host": "nats.fleet.svc.cluster.local:4222", "protocol": "nats"},
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }
