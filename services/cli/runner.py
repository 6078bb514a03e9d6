"""How every `fleet` command runs: its async work stops cleanly on a signal, and what fails is one line."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from services.mesh.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext

console = Console()
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class CommandError(Exception):
    """What stopped a command, in one line that says what to do; `fleet` prints it and exits with 1."""


def run[T](main: Coroutine[Any, Any, T]) -> T:
    """Run `main`; Ctrl-C, SIGTERM or a closed terminal cancels it, so its cleanup runs, and `fleet` exits 0."""

    async def guarded() -> T:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            loop.add_signal_handler(sig, task.cancel)
        return await task

    try:
        return asyncio.run(guarded())
    except asyncio.CancelledError:
        # Stopping on a signal is how `fleet up`, `tail` and `service` are meant to end.
        raise typer.Exit(0) from None


async def _ignore(_: Exception) -> None:
    """nats.py logs each failed attempt with a traceback; the one error `connect` raises says enough."""


@contextlib.asynccontextmanager
async def nats_connection(settings: Settings | None = None) -> AsyncIterator[Client]:
    """A client of the mesh's NATS (as the operator under `fleet up --auth`), closed on the way out."""
    from services.mesh.runtime import connect

    settings = settings or load_settings()
    try:
        # One retry: nats.py retries an unreachable server forever at 0 (and 60 times by default).
        client = await connect(settings, max_reconnect_attempts=1, reconnect_time_wait=0.5, connect_timeout=5,
                               error_cb=_ignore)
    except Exception as exc:  # noqa: BLE001 - whatever the client raised, the fix is the same
        raise CommandError(f"cannot reach NATS at {settings.nats_url}: {exc or type(exc).__name__}; "
                           "is `fleet up` running?") from exc
    try:
        yield client
    finally:
        await client.close()


async def on_jetstream[T](work: Callable[[JetStreamContext], Awaitable[T]]) -> T:
    """`work(js)` against the mesh's JetStream."""
    async with nats_connection() as client:
        return await work(client.jetstream())


def as_command_error(exc: Exception) -> CommandError | None:
    """What bad input or an absent server causes, as a CommandError; None for a bug, which keeps its traceback."""
    from nats.errors import Error as NatsError
    from nats.js.errors import NotFoundError

    from services.mesh.queries import QueryFailed

    match exc:
        case CommandError():
            return exc
        case SettingsError() | QueryFailed() | ValueError() | OSError():
            # OSError here is a file a command was told to write, or the embedded stack's own.
            return CommandError(str(exc))
        case NotFoundError():
            return CommandError(f"JetStream: {exc.description or 'not found'}; "
                                "are the streams declared? `fleet streams apply` declares them")
        case NatsError():
            return CommandError(f"NATS: {exc}")
        case TimeoutError():
            return CommandError(str(exc) or "timed out")
    return None


class FleetGroup(TyperGroup):
    """The root command: what stops a subcommand is one line on stderr, `error: ...`, and exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            error = as_command_error(exc)
            if error is None:
                raise
            Console(stderr=True).print(f"[red]error:[/] {escape(one_line(str(error)))}", soft_wrap=True)
            raise typer.Exit(1) from None


def one_line(message: str) -> str:
    return " ".join(message.split())
