"""``greenroom agent dev|start MODULE:ATTR`` and ``cli.run_app`` as real processes against ``greenroom
serve``: the worker registers and serves a room; SIGTERM drains (the running job goes on, the process
exits 0 once it ended); SIGINT ends the jobs now; usage errors exit 2 — never 0 on a failure."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from greenroom import rtc
from greenroom.codecs.tokens import Claims, VideoGrants, mint_token
from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from tests.agents.test_protocol_worker import agents_in, ask_agent
from tests.rtc.support import Recorder
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # dev secret


@asynccontextmanager
async def agent_process(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def room_with_agent(server: DevServer, room: str) -> rtc.Room:
    config = '{"agents":[{"agentName":"cli-test"}]}'
    user = rtc.Room()
    await user.connect(server.url, _token(server, room, config))
    await wait_until(lambda: agents_in(user), timeout=20, what="the agent process's agent")
    return user


def _token(server: DevServer, room: str, config: str) -> str:
    claims = Claims(identity="user", room_config=config, video=VideoGrants(room_join=True, room=room))
    return mint_token("devkey", "secret", claims)


def test_greenroom_agent_dev_serves_rooms_and_sigterm_drains_then_exits_0() -> None:
    async def main() -> None:
        async with DevServer(ServerConfig(port=0)) as server:
            args = (
                "-m",
                "greenroom.cli",
                "agent",
                "dev",
                "tests.cli.agent_program:opts",
                "--url",
                server.url,
            )
            async with agent_process(*args) as proc:
                user = await room_with_agent(server, "r1")
                [agent] = agents_in(user)
                assert await ask_agent(user, "hi") == f"hi from {agent}"
                proc.send_signal(signal.SIGTERM)
                await wait_until(
                    lambda: server.agents.stats().workers == 1 and _draining(server), what="drain"
                )
                assert await ask_agent(user, "still") == f"still from {agent}"  # the running job goes on
                assert proc.returncode is None
                assert server.close_room("r1")  # the job ends: the drain is over
                assert await asyncio.wait_for(proc.wait(), 20) == 0
                assert proc.stderr is not None
                log = (await proc.stderr.read()).decode()
                assert "draining" in log
                assert "Traceback" not in log
                await user.disconnect()

    asyncio.run(main())


def _draining(server: DevServer) -> bool:
    return any(w.status is not None and w.status.name == "FULL" for w in server.agents._workers.values())


def test_run_app_sigint_ends_the_jobs_now_and_the_agent_leaves() -> None:
    async def main() -> None:
        async with DevServer(ServerConfig(port=0)) as server:
            program = ("tests/cli/agent_program.py", "dev", "--url", server.url)
            async with agent_process(*program) as proc:
                user = await room_with_agent(server, "r1")
                rec = Recorder(user, "participant_disconnected")
                proc.send_signal(signal.SIGINT)
                assert await asyncio.wait_for(proc.wait(), 20) == 0
                await wait_until(lambda: rec.named("participant_disconnected"), what="the agent left")
                await user.disconnect()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["-m", "greenroom.cli", "agent", "dev", "tests.cli.nothing_here:entrypoint"], "cannot import"),
        (["-m", "greenroom.cli", "agent", "dev", "tests.cli.agent_program:ROOT"], "is not a WorkerOptions"),
        (["-m", "greenroom.cli", "agent", "start"], "usage: greenroom agent"),
        (["tests/cli/agent_program.py", "start"], "start needs the server's url, api key, api secret"),
    ],
)
def test_usage_errors_exit_2(args: list[str], text: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert text in proc.stderr
