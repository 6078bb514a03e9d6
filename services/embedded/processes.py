"""Child processes, each in its own process group, logged to a file, stopped without strays."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

log = logging.getLogger("fleet.up")

PR_SET_PDEATHSIG = 1


def _terminate_with_parent() -> None:
    """Runs in the child before exec: if the supervisor dies, even by SIGKILL, the child gets SIGTERM."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class ManagedProcess:
    """One child. `start_new_session` puts it in its own group, so stopping kills its children too."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        stop_grace_s: float = 10.0,
    ):
        self.name = name
        self.stop_grace_s = stop_grace_s
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
                preexec_fn=_terminate_with_parent if sys.platform == "linux" else None,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    async def stop(self) -> None:
        """SIGTERM the whole group, then SIGKILL whatever is left after the grace period."""
        if self.process is None:
            return
        grace_s = self.stop_grace_s
        group = self.process.pid
        _signal_group(group, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), grace_s)
        except TimeoutError:
            log.warning("%s did not stop within %.0fs; killing it", self.name, grace_s)
        _signal_group(group, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await self.process.wait()

    def tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)


def restart_delay_s(restarts: int) -> float:
    """Backoff between restarts of a crashing service: 1, 2, 4 ... 30 s."""
    return float(min(2 ** restarts, 30))


class Supervised:
    """Keeps a service process running the way an orchestrator would: restart with backoff."""

    healthy_after_s = 60.0

    def __init__(self, process: ManagedProcess, on_event: Callable[[str], None]):
        self.process = process
        self._on_event = on_event
        self._stopping = False
        self._task: asyncio.Task | None = None
        self.restarts = 0

    async def start(self) -> None:
        await self.process.start()
        self._task = asyncio.create_task(self._watch(), name=f"watch-{self.process.name}")

    async def _watch(self) -> None:
        consecutive = 0
        while True:
            began = time.monotonic()
            code = await self.process.wait()
            if self._stopping:
                return
            if time.monotonic() - began > self.healthy_after_s:
                consecutive = 0
            self.restarts += 1
            self._on_event(
                f"service {self.process.name} exited with code {code}; restarting (restart #{self.restarts}, "
                f"log: {self.process.log_path})"
            )
            while True:
                delay = restart_delay_s(consecutive)
                consecutive += 1
                await asyncio.sleep(delay)
                if self._stopping:
                    return
                try:
                    await self.process.start()
                    break
                except OSError as exc:
                    self._on_event(f"service {self.process.name} failed to start: {exc}; trying again")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.process.stop()
