"""A minimal livekit-agents agent (no plugins) for the interop tests: it joins the room it is dispatched to
and echoes every data packet back to its sender on topic ``echo``. Run by the official livekit-agents
1.8.9 worker in its own venv (``.venv-agents``): ``.venv-agents/bin/python official_agent.py dev``.

Not type-checked with the project (livekit-agents is not installed in the main venv)."""

import asyncio

from livekit import rtc
from livekit.agents import AutoSubscribe, JobContext, WorkerOptions, cli


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect(auto_subscribe=AutoSubscribe.SUBSCRIBE_NONE)
    tasks = set()

    @ctx.room.on("data_received")
    def on_data(packet: rtc.DataPacket) -> None:
        if packet.participant is None:
            return
        reply = b"echo:" + packet.data
        task = asyncio.create_task(
            ctx.room.local_participant.publish_data(
                reply, topic="echo", destination_identities=[packet.participant.identity]
            )
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)


if __name__ == "__main__":
    cli.run_app(WorkerOptions(entrypoint_fnc=entrypoint))
