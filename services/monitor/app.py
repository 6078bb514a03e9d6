"""Composition root of the monitor service: the live dashboard, fed by every stream of the mesh."""

from __future__ import annotations

import logging

from services.mesh.runtime import Background, Mesh
from services.monitor.domain import MonitorState
from services.monitor.feed import follow_streams, poll_jetstream
from services.monitor.web import Changes, dashboard, serve

SERVICE = "monitor"
log = logging.getLogger("fleet.monitor")


async def wire(mesh: Mesh) -> list[Background]:
    state, changes = MonitorState(), Changes()
    app = dashboard(state, changes, lambda: mesh.client.is_connected)

    def started(port: int) -> None:
        log.info("dashboard on http://127.0.0.1:%s/", port)

    return [
        Background("monitor-streams", lambda: follow_streams(mesh.js, state, changes.notify)),
        Background("monitor-jetstream", lambda: poll_jetstream(mesh.js, state, changes.notify)),
        Background("monitor-http", lambda: serve(app, mesh.settings.monitor_port, started)),
    ]
