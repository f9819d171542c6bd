"""An agent program for the command-line tests: ``greenroom agent dev tests.cli.agent_program:entrypoint``
or ``python tests/cli/agent_program.py dev``. It answers ``ask`` packets on topic ``answer``."""

from __future__ import annotations

import asyncio

from greenroom import rtc
from greenroom.agents import JobContext, WorkerOptions, cli


async def entrypoint(ctx: JobContext) -> None:
    """Join; answer ``<text>`` with ``<text> from <identity>``."""
    await ctx.connect()
    tasks: set[asyncio.Task[None]] = set()

    @ctx.room.on("data_received")
    def on_data(packet: rtc.DataPacket) -> None:
        if packet.topic == "ask":
            text = f"{bytes(packet.data).decode()} from {ctx.room.local_participant.identity}"
            task = asyncio.create_task(ctx.room.local_participant.publish_data(text, topic="answer"))
            tasks.add(task)
            task.add_done_callback(tasks.discard)


opts = WorkerOptions(entrypoint_fnc=entrypoint, agent_name="cli-test")

if __name__ == "__main__":
    cli.run_app(opts)
