"""A STAND-IN for the LLM server, for benchmarks and fault runs: not a model, and never used by `fleet up`.

It speaks the part of the OpenAI chat-completions API the agents use. With no upstream it answers at
once (or after a fixed latency) with a canned text, or, when the request carries a JSON schema, with
the smallest document that follows it; so what a benchmark measures is the mesh, not a model. With
`--upstream URL` it forwards every request to a real server (llama.cpp, vLLM) instead.

Either way a fault can be switched on and off while it runs, which is how the fault runs make the LLM
slow, failing or malformed without touching the mesh:

    POST /_fault {"mode": "ok" | "slow" | "http500" | "malformed", "delay_s": 5}
    GET  /_stats  -> {"requests": N, "by_mode": {...}}

and the answers' length can be set (every free-text field padded to so many characters, within its
schema's maxLength), which is how the capacity benchmark tells the bytes an answer adds:

    POST /_answers {"chars": 2048}

    python -m bench.llm_standin --port 8480 [--latency-ms 500] [--upstream http://127.0.0.1:8080/v1]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from services.embedded import binaries
from services.embedded.servers import ServerPlan, free_port

MODEL = "standin-instant"
FAULT_MODES = ("ok", "slow", "http500", "malformed")
CANNED = ("Stand-in answer: split the change into a pure domain function and a thin adapter, "
          "test the function with examples and properties, and roll it out behind a flag.")


def instance_of(schema: dict[str, Any], chars: int = 0) -> Any:
    """The smallest value that follows this (inlined) JSON schema: enough for msgspec to accept it; free
    text padded to `chars` characters where the schema allows."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        values = schema["enum"]
        # A score (an enum of integers) in the middle of its range, as for an integer with bounds; else the first.
        return values[len(values) // 2] if all(isinstance(v, int) for v in values) else values[0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            return instance_of(schema[combinator][0], chars)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: instance_of(properties[name], chars) for name in schema.get("required", properties)}
    if kind == "array":
        return [instance_of(schema.get("items", {}), chars) for _ in range(schema.get("minItems", 0))]
    if kind == "integer":
        low, high = schema.get("minimum", 0), schema.get("maximum", 10)
        return (low + high) // 2
    if kind == "number":
        return float(schema.get("minimum", 0))
    if kind == "boolean":
        return True
    if kind == "string":
        text = "Stand-in: the simplest proposal that meets the rubric.".ljust(chars, ".")
        return text[: schema.get("maxLength", len(text))].ljust(schema.get("minLength", 0), ".")
    return None


def schema_of(request: dict[str, Any]) -> dict[str, Any] | None:
    response_format = request.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return response_format.get("json_schema", {}).get("schema")
    return response_format.get("schema")


def answer(request: dict[str, Any], chars: int = 0) -> dict[str, Any]:
    schema = schema_of(request)
    content = CANNED.ljust(chars, ".") if schema is None else msgspec.json.encode(instance_of(schema, chars)).decode()
    return {
        "id": f"standin-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


@dataclass
class Fault:
    mode: str = "ok"
    delay_s: float = 0.0


@dataclass
class StandIn:
    latency_s: float = 0.0
    upstream: str | None = None
    fault: Fault = field(default_factory=Fault)
    answer_chars: int = 0
    requests: collections.Counter = field(default_factory=collections.Counter)
    _session: aiohttp.ClientSession | None = None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        fault = self.fault
        self.requests[fault.mode] += 1
        if fault.mode == "slow":
            await asyncio.sleep(fault.delay_s)
        if fault.mode == "http500":
            return web.json_response({"error": {"message": "stand-in fault: internal error"}}, status=500)
        if fault.mode == "malformed":
            return web.Response(body=b'{"choices": [{"message": {"content": ', content_type="application/json")
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        body = await request.read()
        if self.upstream is None:
            return web.json_response(answer(msgspec.json.decode(body), self.answer_chars))
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "authorization")}
        async with self._session.post(self.upstream.rstrip("/") + "/chat/completions", data=body,
                                      headers=headers) as reply:
            return web.Response(body=await reply.read(), status=reply.status, content_type="application/json")

    async def models(self, _: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    async def set_fault(self, request: web.Request) -> web.Response:
        wanted = await request.json()
        mode = wanted.get("mode", "ok")
        if mode not in FAULT_MODES:
            return web.json_response({"error": f"mode must be one of {', '.join(FAULT_MODES)}"}, status=400)
        self.fault = Fault(mode=mode, delay_s=float(wanted.get("delay_s", 0.0)))
        return web.json_response({"mode": mode, "delay_s": self.fault.delay_s})

    async def set_answers(self, request: web.Request) -> web.Response:
        chars = (await request.json()).get("chars", 0)
        if not isinstance(chars, int) or chars < 0:
            return web.json_response({"error": "chars must be a whole number of characters, 0 or more"}, status=400)
        self.answer_chars = chars
        return web.json_response({"chars": chars})

    async def stats(self, _: web.Request) -> web.Response:
        return web.json_response({"requests": sum(self.requests.values()), "by_mode": dict(self.requests),
                                  "fault": self.fault.mode})

    def app(self) -> web.Application:
        application = web.Application(client_max_size=8 * 1024 * 1024)
        application.router.add_post("/v1/chat/completions", self.chat)
        application.router.add_get("/v1/models", self.models)
        application.router.add_post("/_fault", self.set_fault)
        application.router.add_get("/_stats", self.stats)
        application.router.add_post("/_answers", self.set_answers)
        application.on_startup.append(self._open)
        application.on_cleanup.append(self._close)
        return application

    async def _open(self, _: web.Application) -> None:
        if self.upstream:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))

    async def _close(self, _: web.Application) -> None:
        if self._session is not None:
            await self._session.close()


def standin_plan(latency_ms: float = 0.0, upstream: str | None = None) -> ServerPlan:
    """The stand-in as a server to start with `running_server`, or to point `FLEET_LLM_BASE_URL` at."""
    port = free_port()
    argv = [str(binaries.python()), "-m", "bench.llm_standin", "--port", str(port), "--latency-ms", str(latency_ms)]
    return ServerPlan(
        name="llm-standin",
        argv=argv + (["--upstream", upstream] if upstream else []),
        endpoints={"llm_base_url": f"http://127.0.0.1:{port}/v1", "llm_model": MODEL,
                   "standin_url": f"http://127.0.0.1:{port}"},
        port=port,
        ready_url=f"http://127.0.0.1:{port}/v1/models",
        stop_grace_s=2.0,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.llm_standin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer (default 0)")
    parser.add_argument("--upstream", help="forward to this OpenAI-compatible base URL instead of answering")
    options = parser.parse_args(argv)
    standin = StandIn(latency_s=options.latency_ms / 1000, upstream=options.upstream)
    web.run_app(standin.app(), host="127.0.0.1", port=options.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
