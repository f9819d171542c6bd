"""P10 and P11, side by side: what happens when an agent's code crashes, blocks its event loop, or hangs —
a greenroom agent (a supervised job) and a livekit-agents 1.8.9 agent (its official worker, in
``.venv-agents``), each dispatched by ``greenroom serve``. Both run inside the private namespace.

* **greenroom** (:func:`greenroom_supervision`): one job in this process. P10: ``greenroom.testing.crash``
  raises in the job's logic; the clock runs from just before the crash until the *new* incarnation has
  answered a message told right after the death (kept in the restart stash, replayed). Crashes 1.05 s
  apart (a lone crash: no back-off), with an intensity of 1,000 restarts per 30 s (the benchmark measures
  the restart, not the crash-loop brake, which would end the job after 5 of them). P11: the agent blocks
  its loop (``threading.Event.wait``) or awaits forever; the clock runs from the moment it got stuck
  until the restarted agent answers a ping told right after it (queued behind the stuck message, replayed
  to the next incarnation). Each sample checks the participant never changed (no leave/join).
* **livekit-agents** (:func:`livekit_supervision`): an official client in a fresh room per fault; the
  official worker's agent (``tests/interop/agents/official_agent.py`` with ``GREENROOM_FAULTS=1``) gets a
  ``fault`` packet. Crash: the entrypoint raises — the time until the agent leaves, the status its worker
  reports, and whether any agent answers again within the observation window. Blocked loop:
  ``time.sleep`` on the job's loop — the time until the agent leaves (its worker kills the job process
  after its 60 s ping timeout). Async hang: the agent stops answering with its loop alive — whether
  anything acts within the window.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import threading
import time
from typing import Any

from greenroom import testing
from greenroom.actors.supervision import Intensity
from greenroom.agents import (
    Agent,
    Job,
    JobAssignment,
    JobHandle,
    JobRoomInfo,
    SupervisionOptions,
    agent_token,
    start_job,
)
from greenroom.codecs.tokens import Claims, VideoGrants, mint_token
from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from tests.interop.netns import HOST_IP, PeerProcess
from tests.interop.scenarios_agents import AGENTS_PYTHON, OFFICIAL_AGENT, Proc, process

__all__ = ["greenroom_supervision", "livekit_supervision"]


@dataclasses.dataclass(frozen=True)
class Ping:
    """Answered by the agent with the time it handled it."""

    answer: concurrent.futures.Future[float]


@dataclasses.dataclass(frozen=True)
class Block:
    """Blocks the agent's loop until ``release`` is set; ``at`` gets the time it started."""

    at: concurrent.futures.Future[float]
    release: threading.Event


@dataclasses.dataclass(frozen=True)
class Hang:
    """Makes the agent await forever; ``at`` gets the time it started."""

    at: concurrent.futures.Future[float]


class Probe(Agent):
    """The greenroom side's agent."""

    events = ()

    async def on_message(self, message: Any) -> None:
        match message:
            case Ping(answer=answer):
                answer.set_result(time.monotonic())
            case Block(at=at, release=release):
                at.set_result(time.monotonic())
                release.wait(30)
            case Hang(at=at):
                at.set_result(time.monotonic())
                await asyncio.Event().wait()


async def _ping(handle: JobHandle) -> float:
    answer: concurrent.futures.Future[float] = concurrent.futures.Future()
    handle.tell(Ping(answer))
    return await asyncio.wait_for(asyncio.wrap_future(answer), 10)


async def greenroom_supervision(crashes: int = 20, stuck: int = 5) -> dict[str, Any]:
    """P10/P11 for a greenroom job (see the module docstring)."""
    out: dict[str, Any] = {"crash_ms": [], "blocked_ms": [], "hang_ms": []}
    async with DevServer(ServerConfig(bind=HOST_IP, port=0)) as server:
        key = server.config.api_key
        token = agent_token(key, server.config.keys[key], "bench", "probe")
        options = SupervisionOptions(intensity=Intensity(1000, 30.0))
        job = Job("AJ_bench", JobRoomInfo("bench"))
        handle = start_job(JobAssignment(job, server.url, token), Probe.entrypoint(), options=options)
        await _ping(handle)
        room = handle.room
        assert room is not None
        sid = room.local_participant.sid
        for _ in range(crashes):
            await asyncio.sleep(1.05)  # a lone crash: past the back-off's reset_after (1 s)
            started = time.monotonic()
            await testing.crash(handle, testing.agent_logic())
            out["crash_ms"].append((await _ping(handle) - started) * 1000)
        releases: list[threading.Event] = []
        for kind in ("blocked", "hang"):
            for _ in range(stuck):
                await asyncio.sleep(1.05)
                at: concurrent.futures.Future[float] = concurrent.futures.Future()
                release = threading.Event()
                releases.append(release)
                handle.tell(Block(at, release) if kind == "blocked" else Hang(at))
                stuck_at = await asyncio.wrap_future(at)
                out[f"{kind}_ms"].append((await _ping(handle) - stuck_at) * 1000)
        for release in releases:
            release.set()
        room = handle.room
        out["same_participant"] = room is not None and room.local_participant.sid == sid
        out["restarts"] = len(await handle.restart_events())
        out["stash"] = dataclasses.asdict(handle.stash_stats())
        handle.shutdown()
        await handle.wait(10)
    return out


def _token(identity: str, room: str) -> str:
    return mint_token(
        "devkey", "secret", Claims(identity=identity, video=VideoGrants(room_join=True, room=room))
    )


async def _fault(server: DevServer, kind: str, observe: float) -> dict[str, Any]:
    """One fault injected into a fresh room's official agent; what the client and the server saw."""
    room = f"fault-{kind}"
    peer = await PeerProcess("livekit", f"client-{kind}").start()
    try:
        await peer.call("connect", url=server.url, token=_token("client", room), options={})
        joined = await peer.wait_event(
            lambda e: e.get("event") == "participant_connected" and str(e["identity"]).startswith("agent-"),
            timeout=60,
        )
        agent = joined["identity"]
        await _answered(peer, agent, "warm-up", 60)
        sent = time.monotonic()
        await peer.send_data(kind.encode(), topic="fault", destinations=[agent])
        result: dict[str, Any] = {"agent": agent}
        with contextlib.suppress(AssertionError):
            left = await peer.wait_event(
                lambda e: e.get("event") == "participant_disconnected" and e.get("identity") == agent,
                timeout=observe,
            )
            result["left_after_ms"] = (left["t"] - sent) * 1000
        # does any agent answer again in this room (the same one, or a new dispatch)?
        result["served_again"] = await _answered(peer, None, "anyone?", 3)
        live = server.rooms.get(room)
        dispatches = [] if live is None else list(live.dispatches.values())
        result["jobs"] = [{"status": j.status, "error": j.error} for d in dispatches for j in d.jobs]
        return result
    finally:
        await peer.stop()


async def _answered(peer: PeerProcess, agent: str | None, text: str, timeout: float) -> bool:
    seen = len(peer.received("data_received"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await peer.send_data(text.encode(), topic="ask", destinations=[agent] if agent else [])
        with contextlib.suppress(AssertionError):
            await peer.wait_event(lambda e: len(peer.received("data_received")) > seen, timeout=0.5)
        if any(e.get("topic") == "echo" for e in peer.received("data_received")[seen:]):
            return True
    return False


async def livekit_supervision(observe: float = 90.0, hang_observe: float = 20.0) -> dict[str, Any]:
    """P10/P11 for the official livekit-agents worker (see the module docstring)."""
    if not AGENTS_PYTHON.exists():
        raise RuntimeError(f"{AGENTS_PYTHON} is missing: make .venv-agents/.installed-stamp")
    out: dict[str, Any] = {}
    async with DevServer(ServerConfig(bind=HOST_IP, port=0)) as server:
        env = {
            "LIVEKIT_URL": server.url,
            "LIVEKIT_API_KEY": "devkey",
            "LIVEKIT_API_SECRET": "secret",
            "GREENROOM_FAULTS": "1",
        }
        async with process(str(AGENTS_PYTHON), str(OFFICIAL_AGENT), "dev", env=env) as worker:
            await _registered(server, worker)
            out["crash"] = await _fault(server, "crash", 10.0)
            out["blocked"] = await _fault(server, "block", observe)
            out["hang"] = await _fault(server, "hang", hang_observe)
            out["hang"]["observed_s"] = hang_observe
            out["worker_exit"] = await worker.stop()
    return out


async def _registered(server: DevServer, worker: Proc) -> None:
    deadline = time.monotonic() + 60
    while server.agents.stats().dispatchable < 1:
        if time.monotonic() > deadline:
            raise RuntimeError("the official worker did not register:\n" + "\n".join(worker.output[-30:]))
        await asyncio.sleep(0.1)  # polling the server's registry
