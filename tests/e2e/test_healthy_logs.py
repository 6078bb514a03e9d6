"""A healthy mesh logs no ERROR: an operator who sees one must act, so a mesh that starts and runs the demo
must log none, from its first line. This runs first on the shared mesh: later specs feed it bad input on
purpose, and the dead letters they cause are rightly logged as errors."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from contracts import catalog
from contracts.events import DeliberationCompleted
from services.cli.demo import print_story, print_winners, run_demo, sample_approval
from tests.e2e.flows import as_operator, with_default_councils

pytestmark = [pytest.mark.e2e, pytest.mark.fresh_mesh]

UNHEALTHY_LEVELS = {"ERROR", "CRITICAL"}


def unhealthy(line: str) -> bool:
    """A line logged at ERROR or above, or a traceback, whether the line is JSON or plain text."""
    try:
        record = json.loads(line)
    except ValueError:
        return "Traceback" in line or " ERROR " in line or " CRITICAL " in line
    return record.get("level") in UNHEALTHY_LEVELS or "exc_info" in record


async def test_a_demo_run_logs_no_error_and_no_traceback_in_any_service(mesh, js):
    stack, _ = mesh
    await with_default_councils(js, sample_approval().roles)
    logs = {service: stack.logs_dir / f"{service}.log" for service in catalog.SERVICES}
    assert all(path.exists() for path in logs.values()), sorted(logs)

    shown = Console(file=io.StringIO(), width=200)
    client = await as_operator(stack)
    try:
        progress = await run_demo(client, shown)
        print_winners(progress, shown)
        await print_story(client, progress.story_id, shown)
    finally:
        await client.close()

    results = [row.result for row in progress.rows.values()]
    assert len(results) == 2 and all(isinstance(result, DeliberationCompleted) for result in results)
    output = shown.file.getvalue()
    assert f"fleet story show {progress.story_id}" in output and "not shown" not in output
    logged = {service: path.read_text(errors="replace").splitlines() for service, path in logs.items()}
    assert all(logged.values()), "a service logged nothing at all, not even its start"
    assert {service: [line for line in lines if unhealthy(line)] for service, lines in logged.items()} == {
        service: [] for service in catalog.SERVICES}
