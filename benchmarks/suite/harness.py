"""What every benchmark scenario shares: the dev server as a process of its own (so its CPU can be read),
the benchmark client processes, and the statistics.

Everything here runs inside the private namespace (``tests.interop.netns.run_in_netns``).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from tests.interop.netns import HOST_IP, ROOT, PeerProcess

__all__ = ["AgentProcess", "ServerProcess", "percentile", "process_cpu_seconds"]

_TICK = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``nan`` for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


class ServerProcess:
    """``greenroom serve`` on 198.18.0.1, an ephemeral port, in its own process."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._tokens = DevServer(ServerConfig(bind=HOST_IP, port=0))  # only signs tokens
        self.url = ""

    async def __aenter__(self) -> ServerProcess:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "greenroom.devserver",
            "serve",
            "--bind",
            HOST_IP,
            "--port",
            "0",
            "--log-level",
            "ERROR",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        line = (await asyncio.wait_for(self._proc.stdout.readline(), 30)).decode()
        if "ready at " not in line:
            raise RuntimeError(f"dev server did not start: {line!r}")
        self.url = line.split("ready at ", 1)[1].split()[0]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            try:
                await asyncio.wait_for(self._proc.wait(), 15)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def cpu_seconds(self) -> float:
        """The server process's CPU seconds so far."""
        return process_cpu_seconds(self.pid)

    def mint_token(self, identity: str, room: str, **grants: Any) -> str:
        """A join token signed with the server's default key."""
        return self._tokens.mint_token(identity, room, **grants)


class AgentProcess(PeerProcess):
    """A ``benchmarks.suite.agent`` process (``tests.interop.peer`` plus the benchmark operations)."""

    async def start(self) -> AgentProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.suite.agent",
            "--sdk",
            self.sdk,
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            limit=2**26,
        )
        self._reader = asyncio.create_task(self._read())
        await self.wait_event(lambda e: e.get("event") == "ready", timeout=30)
        return self

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid
