"""`fleet`: run the embedded mesh, the demo, and the stream and contract tools."""

from __future__ import annotations

import typer

from services.cli.commands import (
    contracts,
    council,
    deliberation,
    dlq,
    log,
    mesh,
    nats_users,
    plan,
    projections,
    story,
    streams,
)
from services.cli.runner import FleetGroup

app = typer.Typer(
    cls=FleetGroup, help="SWE AI Fleet: councils of LLM agents on a NATS JetStream mesh.", no_args_is_help=True
)
# Top-level commands: a group added without a name lends its commands to the root.
app.add_typer(mesh.app)
app.add_typer(log.app)
app.add_typer(streams.app, name="streams")
app.add_typer(contracts.app, name="contracts")
app.add_typer(plan.app, name="plan")
app.add_typer(council.app, name="council")
app.add_typer(deliberation.app, name="deliberation")
app.add_typer(story.app, name="story")
app.add_typer(projections.app, name="projections")
app.add_typer(dlq.app, name="dlq")
app.add_typer(nats_users.app, name="nats")

if __name__ == "__main__":
    app()
