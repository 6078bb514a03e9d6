"""The dashboard over HTTP: the page, a JSON snapshot, and server-sent events as the state changes.

aiohttp serves it inside the service's own event loop, as it serves /metrics.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from services.monitor.domain import MonitorState

log = logging.getLogger("fleet.monitor")
PAGE = Path(__file__).parent / "static" / "index.html"
# At most this often a connected page gets a new snapshot, however fast events arrive.
PUSH_EVERY_S = 0.5
# A page with nothing new still hears from the server this often, so it can tell a dead connection.
HEARTBEAT_S = 5.0


class Changes:
    """Wakes every waiting page when the state changed."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self._event.wait()), timeout_s)
        except TimeoutError:
            return
        self._event.clear()


def dashboard(state: MonitorState, changes: Changes, nats_connected: Callable[[], bool]) -> web.Application:
    def snapshot() -> dict:
        return state.snapshot(dt.datetime.now(dt.UTC), nats_connected())

    async def page(_: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGE, headers={"Content-Type": "text/html; charset=utf-8"})

    async def current(_: web.Request) -> web.Response:
        return web.json_response(snapshot())

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        try:
            while True:
                await response.write(f"event: state\ndata: {json.dumps(snapshot())}\n\n".encode())
                await changes.wait(HEARTBEAT_S)
                await asyncio.sleep(PUSH_EVERY_S)
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the page went away
        return response

    async def health(_: web.Request) -> web.Response:
        connected = nats_connected()
        return web.json_response({"service": "monitor", "nats": "connected" if connected else "disconnected"},
                                 status=200 if connected else 503)

    app = web.Application()
    app.add_routes([web.get("/", page), web.get("/api/state", current), web.get("/events", events),
                    web.get("/healthz", health)])
    return app


async def serve(app: web.Application, port: int, started: Callable[[int], None]) -> None:
    """Serve until cancelled; a port already in use is an error that names the setting."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, "0.0.0.0", port).start()  # noqa: S104 - reached from outside the pod
    except OSError as exc:
        await runner.cleanup()
        raise OSError(f"the dashboard cannot listen on port {port} ({exc}); set FLEET_MONITOR_PORT") from exc
    started(runner.addresses[0][1])
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
