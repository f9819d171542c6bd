"""Bots for the fleet tests: they do what an observer in their room tells them (topic = the command)."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

from greenroom.agents import Agent, JobContext, RoomEvent
from greenroom.agents.context import AutoSubscribe
from greenroom.fleet import record_message
from greenroom.fleet.bots import Chatter


class OrderedCrashError(RuntimeError):
    """The crash an observer asked for."""


class Obedient(Agent):
    """``crash`` → its handler raises; ``leave`` → its job ends (SUCCESS); ``ping`` → answers ``pong``.

    Commands are addressed by destination identity, so one bot of a room can be told alone.
    """

    events = ("data_received",)
    auto_subscribe = AutoSubscribe.SUBSCRIBE_NONE

    def __init__(self, tag: str = "") -> None:
        self.tag = tag

    async def on_message(self, message: Any) -> None:
        """Obey."""
        match message:
            case RoomEvent("data_received", (packet, *_)):
                sender = packet.participant.identity if packet.participant else ""
                match packet.topic:
                    case "crash":
                        raise OrderedCrashError(f"{self.identity} told to crash")
                    case "leave":
                        self.ctx.shutdown("told to leave")
                    case "ping":
                        await self.send(f"{self.identity} {self.tag}", to=sender, topic="pong")


async def probe(ctx: JobContext) -> None:
    """An entrypoint-shape bot: joins, answers ``ping`` with its params (from the job metadata)."""
    await ctx.connect(auto_subscribe=AutoSubscribe.SUBSCRIBE_NONE)
    params = json.loads(ctx.job.metadata or "{}")
    tasks: set[asyncio.Task[None]] = set()

    @ctx.room.on("data_received")
    def on_data(packet: Any) -> None:
        if packet.topic == "ping":
            record_message()
            task = asyncio.create_task(
                ctx.room.local_participant.publish_data(
                    json.dumps(params), topic="pong", destination_identities=[packet.participant.identity]
                )
            )
            tasks.add(task)
            task.add_done_callback(tasks.discard)


class ChaosCrashError(RuntimeError):
    """The crash a :class:`Chaotic` bot draws."""


class Chaotic(Chatter):
    """A Chatter that crashes with probability ``crash_rate`` on each message on topic ``chaos``: the chaos
    test drives the crashes from the room, so they stop when it stops sending."""

    def __init__(self, crash_rate: float = 0.5, interval: float = 1.0, topic: str = "fleet") -> None:
        super().__init__(interval=interval, topic=topic)
        self.crash_rate = crash_rate

    async def on_message(self, message: Any) -> None:
        """Maybe crash; otherwise as a Chatter."""
        match message:
            case RoomEvent("data_received", (packet, *_)) if packet.topic in ("chaos", "crash"):
                if packet.topic == "crash" or random.random() < self.crash_rate:
                    raise ChaosCrashError(f"{self.identity} crashed ({packet.topic})")
            case _:
                await super().on_message(message)
