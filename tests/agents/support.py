"""Shared helpers of the agent tests: start a job of an entrypoint against the test's dev server."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

from greenroom import rtc
from greenroom.agents import (
    Job,
    JobAssignment,
    JobContext,
    JobHandle,
    JobResult,
    JobRoomInfo,
    SupervisionOptions,
    agent_token,
    start_job,
)
from greenroom.agents.job import Entrypoint
from greenroom.devserver.server import DevServer
from tests.waiting import wait_until

AGENT = "agent-under-test"


def start(
    server: DevServer,
    entrypoint: Entrypoint,
    *,
    room: str = "r1",
    identity: str = AGENT,
    options: SupervisionOptions | None = None,
    statuses: list[JobResult] | None = None,
    token: str | None = None,
) -> JobHandle:
    """Start ``entrypoint`` as a job in ``room`` (the way the worker protocol's assignment will)."""
    key = server.config.api_key
    job = Job(f"AJ_{secrets.token_hex(4)}", JobRoomInfo(room))
    token = token or agent_token(key, server.config.keys[key], room, identity)
    return start_job(
        JobAssignment(job, server.url, token),
        entrypoint,
        options=options,
        on_status=None if statuses is None else statuses.append,
    )


async def agent_in(room: rtc.Room, identity: str = AGENT) -> rtc.RemoteParticipant:
    """Wait until ``identity`` is in ``room``; return it."""
    return await wait_until(lambda: room.remote_participants.get(identity), what=f"{identity} joined")


class Inbox:
    """What an observer received on one topic, in order."""

    def __init__(self, room: rtc.Room, topic: str) -> None:
        self.texts: list[str] = []

        @room.on("data_received")
        def on_data(packet: rtc.DataPacket) -> None:
            if packet.topic == topic:
                self.texts.append(bytes(packet.data).decode())

    async def next_after(self, count: int, what: str) -> str:
        """Wait for the message after the first ``count``; return it."""
        await wait_until(lambda: len(self.texts) > count, what=what)
        return self.texts[count]


async def ask_agent(room: rtc.Room, inbox: Inbox, text: str, *, identity: str = AGENT) -> str:
    """Send ``text`` to the agent on topic ``ask``; the agent's answer (topic ``answer``)."""
    count = len(inbox.texts)
    await room.local_participant.publish_data(text, topic="ask", destination_identities=[identity])
    return await inbox.next_after(count, f"the agent's answer to {text!r}")


async def finished(handle: JobHandle, timeout: float = 10.0) -> JobResult:
    """The job's final result."""
    return await handle.wait(timeout)


def echo_on(ctx: JobContext, reply: Callable[[str], str]) -> None:
    """Register the test agents' ``ask`` → ``answer`` callback: ``reply(text)`` makes the answer text."""
    tasks: set[asyncio.Task[None]] = set()

    @ctx.room.on("data_received")
    def on_data(packet: rtc.DataPacket) -> None:
        if packet.topic != "ask":
            return
        answer = reply(bytes(packet.data).decode())
        task = asyncio.create_task(ctx.room.local_participant.publish_data(answer, topic="answer"))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
