"""P9's greenroom agent: ``greenroom agent dev benchmarks.suite.echo_agent:entrypoint``. Like the official
one it is measured against (``tests/interop/agents/official_agent.py``), it joins the room it is dispatched
to, subscribes to nothing, and answers every data packet to its sender with ``echo:<data>`` on topic
``echo``. Every job runs in the one worker process."""

from __future__ import annotations

import asyncio

from greenroom import rtc
from greenroom.agents import AutoSubscribe, JobContext


async def entrypoint(ctx: JobContext) -> None:
    """Join; echo each packet back to the participant that sent it."""
    await ctx.connect(auto_subscribe=AutoSubscribe.SUBSCRIBE_NONE)
    tasks: set[asyncio.Task[None]] = set()

    @ctx.room.on("data_received")
    def on_data(packet: rtc.DataPacket) -> None:
        if packet.participant is None:
            return
        task = asyncio.create_task(
            ctx.room.local_participant.publish_data(
                b"echo:" + bytes(packet.data),
                topic="echo",
                destination_identities=[packet.participant.identity],
            )
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)
