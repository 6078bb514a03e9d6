"""`fleet` with bad input or no server: a one-line `error: ...` on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import socket

import pytest
import typer
from typer.testing import CliRunner

from services.cli.main import app
from services.cli.runner import as_command_error, run
from services.embedded.stack import LOCK_FILE
from services.mesh.settings import ENDPOINTS_FILE

# Each of these talks to NATS, so with no `fleet up` and no FLEET_NATS_URL it has nothing to talk to.
NEEDS_NATS = [
    ["streams", "apply"],
    ["streams", "status"],
    ["tail"],
    ["replay", "--stream", "PLANNING"],
    ["trace", "some-id"],
    ["council", "create", "--role", "DEV"],
    ["council", "list"],
    ["council", "delete", "--role", "DEV"],
    ["council", "seed"],
    ["deliberation", "show", "some-id"],
    ["deliberation", "list"],
    ["deliberation", "replay", "some-id", "--dry-run"],
    ["story", "show", "some-id"],
    ["projections", "rebuild"],
    ["dlq", "list"],
    ["dlq", "show", "1"],
    ["dlq", "redrive", "1", "--yes"],
    ["service", "planning"],
    ["plan", "approve", "docs/examples/plan.json"],
]


@pytest.fixture
def fleet(tmp_path, monkeypatch):
    """`fleet ARGS` in this process, its data dir an empty folder: no `fleet up` runs there."""
    monkeypatch.delenv("FLEET_NATS_URL", raising=False)
    monkeypatch.setenv("FLEET_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def failed_in_one_line(result, code: int = 1) -> str:
    """The message of a command that failed as `fleet` promises: exit `code`, one line on stderr, no traceback."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("args", NEEDS_NATS, ids=" ".join)
def test_a_command_with_no_nats_to_talk_to_says_so_and_how_to_start_one(fleet, args, tmp_path):
    message = failed_in_one_line(fleet(*args))

    assert "no NATS server" in message and "`fleet up`" in message and str(tmp_path) in message


@pytest.mark.parametrize("args", [["council", "list"], ["streams", "status"], ["deliberation", "show", "some-id"]],
                         ids=" ".join)
def test_a_command_whose_nats_does_not_answer_names_the_address_it_tried(fleet, args, monkeypatch):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"nats://127.0.0.1:{unused.getsockname()[1]}"
    monkeypatch.setenv("FLEET_NATS_URL", url)

    message = failed_in_one_line(fleet(*args))

    assert f"cannot reach NATS at {url}" in message and "is `fleet up` running?" in message


@pytest.mark.parametrize(("args", "expected"), [
    (["council", "create", "--role", "JANITOR"], "unknown role 'JANITOR'; choose one of DEV, QA, ARCHITECT"),
    (["council", "delete", "--role", "JANITOR"], "unknown role 'JANITOR'; choose one of DEV, QA, ARCHITECT"),
    (["council", "create", "--role", "DEV", "--agents", "2", "--quorum", "3"],
     "quorum 3 is impossible for a council of 2"),
    (["deliberation", "list", "--status", "DONE"], "unknown status 'DONE'; choose one of"),
    (["projections", "rebuild", "search"], "unknown read model 'search'; choose graph, kv or all"),
    (["service", "billing"], "unknown service 'billing'; choose one of planning, dispatch"),
    (["replay", "--stream", "PLANNING", "--from-seq", "3", "--since", "1h"], "give --from-seq or --since, not both"),
    (["replay", "--stream", "PLANNING", "--into", "search"], "--into takes graph or kv"),
    (["deliberation", "replay", "some-id"], "only --dry-run exists"),
    (["dlq", "redrive"], "name the letters to redrive, or give --all"),
    (["plan", "approve", "no/such/plan.json"], "no such file: no/such/plan.json"),
], ids=lambda value: " ".join(value) if isinstance(value, list) else "")
def test_an_unknown_name_or_an_impossible_choice_is_refused_before_anything_is_asked(fleet, args, expected):
    assert expected in failed_in_one_line(fleet(*args))


@pytest.mark.parametrize(("args", "option"), [
    (["demo", "--timeout", "0"], "--timeout"),
    (["demo", "--timeout", "-5"], "--timeout"),
    (["council", "create", "--role", "DEV", "--agents", "0"], "--agents"),
    (["council", "create", "--role", "DEV", "--agents", "17"], "--agents"),
    (["council", "create", "--role", "DEV", "--rounds", "6"], "--rounds"),
    (["council", "create", "--role", "DEV", "--quorum", "0"], "--quorum"),
    (["council", "create", "--role", "DEV", "--top-k", "0"], "--top-k"),
    (["council", "create", "--role", "DEV", "--deadline", "0"], "--deadline"),
    (["council", "create", "--role", "DEV", "--deliberation-deadline", "0"], "--deliberation-deadline"),
    (["tail", "--last", "-1"], "--last"),
    (["replay", "--stream", "PLANNING", "--from-seq", "0"], "--from-seq"),
    (["deliberation", "list", "--limit", "0"], "--limit"),
    (["dlq", "list", "--limit", "0"], "--limit"),
    (["up", "--no-such-option"], "--no-such-option"),
    (["plan", "approve", "docs/examples/plan.json", "--wait", "--timeout", "0"], "--timeout"),
], ids=lambda value: " ".join(value) if isinstance(value, list) else "")
def test_a_number_out_of_range_or_an_unknown_option_is_a_usage_error_naming_the_option(fleet, args, option):
    result = fleet(*args)

    assert result.exit_code == 2, result.output
    assert option in result.stderr and "Traceback" not in result.output


def test_endpoints_with_no_fleet_running_says_where_it_looked(fleet, tmp_path):
    message = failed_in_one_line(fleet("endpoints"))

    assert f"no fleet is running on {tmp_path}" in message and "`fleet up`" in message


def test_endpoints_prints_what_the_running_fleet_wrote(fleet, tmp_path):
    written = {"nats_url": "nats://127.0.0.1:4222", "dashboard_url": "http://127.0.0.1:8470/"}
    (tmp_path / ENDPOINTS_FILE).write_text(json.dumps(written))

    as_json, as_table = fleet("endpoints", "--json"), fleet("endpoints")

    assert as_json.exit_code == 0 and json.loads(as_json.stdout) == written
    assert as_table.exit_code == 0 and "nats://127.0.0.1:4222" in as_table.stdout


def test_a_second_up_on_a_data_dir_in_use_is_refused_and_leaves_the_running_fleet_alone(fleet, tmp_path):
    endpoints = tmp_path / ENDPOINTS_FILE
    endpoints.write_text('{"nats_url": "nats://127.0.0.1:4222"}')
    with (tmp_path / LOCK_FILE).open("a") as held:  # what the first `fleet up` holds while it runs
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)

        message = failed_in_one_line(fleet("up"))

    assert f"a fleet is already running on {tmp_path}" in message
    assert endpoints.exists(), "the refused start removed the running fleet's endpoints.json"


def test_contracts_export_writes_each_schema_the_catalog_and_asyncapi_and_drops_stale_schemas(fleet, tmp_path):
    out = tmp_path / "contracts"
    out.mkdir()
    (out / "RetiredEvent.schema.json").write_text("{}")

    result = fleet("contracts", "export", "--out", str(out))

    assert result.exit_code == 0, result.output
    assert "removed RetiredEvent.schema.json" in result.stdout
    assert not (out / "RetiredEvent.schema.json").exists()
    assert {"catalog.md", "asyncapi.json"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "asyncapi.json").read_text())["asyncapi"].startswith("3.")
    assert len(list(out.glob("*.schema.json"))) > 10


def test_contracts_export_into_a_file_is_a_one_line_error(fleet, tmp_path):
    taken = tmp_path / "a-file"
    taken.write_text("")

    assert str(taken) in failed_in_one_line(fleet("contracts", "export", "--out", str(taken)))


def test_nats_auth_prints_a_user_per_service_and_writes_the_same_with_out(fleet, tmp_path):
    printed = fleet("nats", "auth")
    written = fleet("nats", "auth", "--out", str(tmp_path / "auth.conf"))

    assert printed.exit_code == 0 and "authorization" in printed.stdout and "planning" in printed.stdout
    assert written.exit_code == 0 and (tmp_path / "auth.conf").read_text() == printed.stdout
    assert "NATS_PASSWORD_" in printed.stdout, "passwords come from the server's environment, never the file"


def test_nats_auth_into_a_missing_folder_is_a_one_line_error(fleet, tmp_path):
    assert "No such file or directory" in failed_in_one_line(fleet("nats", "auth", "--out", str(tmp_path / "x/a")))


def test_a_signal_cancels_the_command_so_its_cleanup_runs_and_it_exits_cleanly():
    cleaned_up = []

    async def work() -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(30)
        finally:
            cleaned_up.append(True)

    with pytest.raises(typer.Exit) as stopped:
        run(work())

    assert cleaned_up and stopped.value.exit_code == 0


def test_a_bug_keeps_its_traceback_rather_than_passing_as_bad_input():
    assert as_command_error(KeyError("views")) is None
    assert as_command_error(AttributeError("x")) is None


@pytest.mark.parametrize(("approval", "expected"), [
    ("{", "planning.plan.approved.v1 body is not valid JSON"),
    ('{"story_id": "s"}', "Object missing required field `plan_id`"),
    ('{"story_id": "s", "plan_id": "p", "approved_by": "a", "roles": ["DEV"], '
     '"tasks": [{"task_id": "t", "title": ""}]}',
     "- at `$.tasks[0].title`"),
    ('{"story_id": "s", "plan_id": "p", "approved_by": "a", "roles": ["DEV", "JANITOR"], "tasks": []}',
     "- at `$.roles[1]`"),
    ('{"story_id": "s", "plan_id": "p", "approved_by": "a", "roles": ["QA", "QA"], "tasks": []}',
     "roles listed more than once: QA"),
], ids=["not JSON", "a field missing", "an empty title", "an unknown role", "a role twice"])
def test_plan_approve_checks_the_contract_first_and_names_the_field_path(fleet, approval, expected, monkeypatch):
    """Nothing is published: no NATS is running, and the error is the contract's, not a connection's."""
    result = CliRunner().invoke(app, ["plan", "approve", "-"], input=approval)

    message = failed_in_one_line(result)
    assert expected in message and "NATS" not in message
