"""A minimal livekit-agents agent (no plugins) for the interop tests: it joins the room it is dispatched to
and echoes every data packet back to its sender on topic ``echo``. Run by the official livekit-agents
1.8.9 worker in its own venv (``.venv-agents``): ``.venv-agents/bin/python official_agent.py dev``.

With ``GREENROOM_FAULTS=1`` (the P10/P11 benchmarks, ``benchmarks/suite/agents.py``) a packet on topic
``fault`` injects one: ``crash`` makes the entrypoint raise, ``block`` blocks the job's event loop
(``time.sleep``), ``hang`` makes the agent stop answering while its loop runs on (an async hang).

Not type-checked with the project (livekit-agents is not installed in the main venv)."""

import asyncio
import os
import time

from livekit import rtc
from livekit.agents import AutoSubscribe, JobContext, WorkerOptions, cli


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect(auto_subscribe=AutoSubscribe.SUBSCRIBE_NONE)
    tasks = set()
    crash = asyncio.Event()
    hung = []

    @ctx.room.on("data_received")
    def on_data(packet: rtc.DataPacket) -> None:
        if packet.participant is None:
            return
        if packet.topic == "fault":
            if packet.data == b"crash":
                crash.set()
            elif packet.data == b"block":
                time.sleep(120)
            elif packet.data == b"hang":
                hung.append(True)
            return
        if hung:
            return
        reply = b"echo:" + packet.data
        task = asyncio.create_task(
            ctx.room.local_participant.publish_data(
                reply, topic="echo", destination_identities=[packet.participant.identity]
            )
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    if os.environ.get("GREENROOM_FAULTS") == "1":
        await crash.wait()
        raise RuntimeError("injected crash in the entrypoint")


if __name__ == "__main__":
    cli.run_app(WorkerOptions(entrypoint_fnc=entrypoint))
