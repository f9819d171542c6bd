"""Agent-protocol interop scenarios (run inside a private network namespace by ``run_in_netns``):

* the official livekit-agents 1.8.9 worker (a minimal agent, no plugins, in its own venv ``.venv-agents``)
  registers with ``greenroom serve``, gets a job when an official client's join creates a room, and echoes
  that client's data;
* greenroom's worker registers with the same kind of server and serves a room an official client joins;
* the server killed (SIGKILL, no goodbye) and restarted on the same port: each worker registers again and
  the room keeps exactly one agent.

Each returns a JSON-able dict of what was observed; ``tests/interop/test_agents_interop.py`` asserts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from livekit import api

from greenroom.codecs.tokens import Claims, VideoGrants, mint_token
from tests.interop.netns import HOST_IP, PeerProcess

ROOT = Path(__file__).resolve().parents[2]


def _agents_python() -> Path:
    """The official worker's interpreter (``make .venv-agents/.installed-stamp``; agents/requirements.txt):
    ``$GREENROOM_AGENTS_PYTHON``, else ``.venv-agents`` in this checkout, else the one beside the venv
    running the tests (a git worktree sharing the main checkout's venv)."""
    if found := os.environ.get("GREENROOM_AGENTS_PYTHON"):
        return Path(found)
    here = ROOT / ".venv-agents" / "bin" / "python"
    beside = Path(sys.prefix).parent / ".venv-agents" / "bin" / "python"
    return here if here.exists() or not beside.exists() else beside


AGENTS_PYTHON = _agents_python()
OFFICIAL_AGENT = ROOT / "tests" / "interop" / "agents" / "official_agent.py"
GREENROOM_AGENT = "tests.cli.agent_program:entrypoint"


def _token(identity: str, room: str) -> str:
    return mint_token(
        "devkey", "secret", Claims(identity=identity, video=VideoGrants(room_join=True, room=room))
    )


class Proc:
    """A subprocess whose output is kept (for the scenario's report when something fails)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.output: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.output.append(line.decode(errors="replace").rstrip())

    async def line(self, text: str, timeout: float = 30.0) -> str:
        async with asyncio.timeout(timeout):
            while True:
                for line in self.output:
                    if text in line:
                        return line
                await asyncio.sleep(0.05)  # polling the collected output

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._reader
        return self.proc.returncode


@contextlib.asynccontextmanager
async def process(*args: str, env: dict[str, str] | None = None) -> AsyncIterator[Proc]:
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    p = Proc(proc)
    try:
        yield p
    finally:
        await p.stop(signal.SIGKILL)


def server_args(port: int) -> tuple[str, ...]:
    return (sys.executable, "-m", "greenroom.cli", "serve", "--bind", HOST_IP, "--port", str(port))


@contextlib.asynccontextmanager
async def server(port: int = 0) -> AsyncIterator[tuple[Proc, str]]:
    """``greenroom serve`` on the namespace's address (a process: it can be killed without a word)."""
    async with process(*server_args(port), "--log-level", "INFO") as proc:
        line = await proc.line("ready at ws://", 30)
        yield proc, "ws://" + line.split("ready at ws://")[1].split()[0]


def official_worker(url: str) -> tuple[tuple[str, ...], dict[str, str]]:
    env = {"LIVEKIT_URL": url, "LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": "secret"}
    return (str(AGENTS_PYTHON), str(OFFICIAL_AGENT), "dev"), env


def greenroom_worker(url: str) -> tuple[tuple[str, ...], dict[str, str]]:
    args = (sys.executable, "-m", "greenroom.cli", "agent", "dev", GREENROOM_AGENT, "--url", url)
    return args, {}


WORKERS = {"official": official_worker, "greenroom": greenroom_worker}


async def agent_of(peer: PeerProcess, timeout: float = 60.0) -> str:
    event = await peer.wait_event(
        lambda e: (
            e.get("event") == "participant_connected" and str(e.get("identity", "")).startswith("agent-")
        ),
        timeout=timeout,
    )
    return str(event["identity"])


async def echo(peer: PeerProcess, agent: str, text: str, topic: str) -> str:
    """Send ``text`` to the agent until an answer on ``topic`` comes (a packet that reaches the agent before
    its callback is registered, or while it reconnects, is not answered); the answer."""
    seen = len(peer.received("data_received"))
    for _ in range(40):
        await peer.send_data(text.encode(), topic="ask", destinations=[agent])
        with contextlib.suppress(AssertionError):
            await peer.wait_event(lambda e: len(peer.received("data_received")) > seen, timeout=1.0)
        for event in peer.received("data_received")[seen:]:
            if event.get("topic") == topic and event.get("from") == agent:
                return base64.b64decode(event["data"]).decode()
    raise AssertionError(f"no answer from {agent} on {topic}")


async def dispatch_jobs(url: str, room: str) -> list[dict[str, Any]]:
    http = "http" + url.removeprefix("ws")
    async with api.LiveKitAPI(http, "devkey", "secret") as lk:
        return [
            {
                "id": j.id,
                "status": j.state.status,
                "error": j.state.error,
                "identity": j.state.participant_identity,
            }
            for d in await lk.agent_dispatch.list_dispatch(room)
            for j in d.state.jobs
        ]


async def worker_serves_official_client(kind: str) -> dict[str, Any]:
    """A worker (``official`` or ``greenroom``) registers; an official client's join creates the room;
    the agent joins and echoes the client's data; closing the room terminates the job."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    report: dict[str, Any] = {}
    async with server() as (srv, url):
        args, env = WORKERS[kind](url)
        async with process(*args, env=env) as worker:
            await srv.line("registered (agent", 60)
            peer = await PeerProcess("livekit", "client").start()
            try:
                await peer.call("connect", url=url, token=_token("client", "r1"), options={})
                agent = await agent_of(peer)
                report["agent"] = agent
                topic = "echo" if kind == "official" else "answer"
                report["answer"] = await echo(peer, agent, "hello", topic)
                report["jobs"] = await dispatch_jobs(url, "r1")
                async with api.LiveKitAPI("http" + url.removeprefix("ws"), "devkey", "secret") as lk:
                    await lk.room.delete_room(api.DeleteRoomRequest(room="r1"))
                await peer.wait_event(lambda e: e.get("event") == "disconnected", timeout=20)
                # the termination reached the worker: it reports the job's end
                report["ended"] = (await srv.line("ended:", 40)).split("ended:")[1].strip()
            finally:
                await peer.stop()
            report["worker_exit"] = await worker.stop(signal.SIGINT)
            report["worker_log"] = worker.output[-40:]
        report["server_log"] = [line for line in srv.output if "agentservice" in line][-40:]
    return report


async def server_restart_keeps_one_agent(kind: str) -> dict[str, Any]:
    """Kill the server (SIGKILL) while a worker's agent serves an official client, start it again on the
    same port: the worker registers again, the room comes back with the same single agent."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    report: dict[str, Any] = {}
    async with server() as (srv, url):
        port = int(url.rsplit(":", 1)[1])
        args, env = WORKERS[kind](url)
        async with process(*args, env=env) as worker:
            await srv.line("registered (agent", 60)
            peer = await PeerProcess("livekit", "client").start()
            try:
                await peer.call("connect", url=url, token=_token("client", "r1"), options={})
                agent = await agent_of(peer)
                topic = "echo" if kind == "official" else "answer"
                report["before"] = await echo(peer, agent, "before", topic)
                await srv.stop(signal.SIGKILL)
                async with server(port) as (again, _url):
                    await again.line("registered (agent", 60)
                    report["after"] = await echo(peer, agent, "after", topic)
                    # a barrier: a second room gets its agent; any second dispatch for r1 came first
                    other = await PeerProcess("livekit", "other").start()
                    try:
                        await other.call("connect", url=url, token=_token("other", "r2"), options={})
                        report["r2_agent"] = await agent_of(other)
                        report["r2_answer"] = await echo(other, report["r2_agent"], "r2", topic)
                    finally:
                        await other.stop()
                    state = await peer.call("state")
                    report["agents_in_r1"] = sorted(i for i in state["remote"] if i.startswith("agent-"))
                    report["agent"] = agent
                    joined = [e["identity"] for e in peer.received("participant_connected")]
                    report["agents_ever_joined_r1"] = [i for i in joined if i.startswith("agent-")]
                    report["server_log"] = [line for line in again.output if "agentservice" in line][-40:]
            finally:
                await peer.stop()
            report["worker_log"] = worker.output[-60:]
    return report
