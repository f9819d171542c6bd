"""The host supervisor with real worker processes: placement over K processes, a killed process's bots
placed again, a drain that makes every bot leave and every process exit."""

from __future__ import annotations

import asyncio
import os
import signal

from greenroom import rtc
from greenroom.devserver.server import DevServer
from greenroom.fleet.pool import Host, HostOptions
from greenroom.fleet.spec import BotSpec
from tests.fleet.test_runner import ROOM, bot, server_spec
from tests.rtc.support import Recorder, connect, run_with_server
from tests.waiting import wait_until


def bots(n: int) -> tuple[BotSpec, ...]:
    return tuple(bot(f"bot-{i}", index=i) for i in range(n))


def test_a_killed_worker_is_replaced_and_its_bots_come_back_then_a_drain_ends_everything() -> None:
    async def scenario(server: DevServer) -> None:
        observer = await connect(server, "observer", ROOM)
        left = Recorder(observer, "participant_disconnected")
        wanted = {f"bot-{i}" for i in range(6)}
        host = Host(
            bots(6), server_spec(server), HostOptions(processes=2, report_interval=0.2, drain_timeout=10)
        )
        running = asyncio.create_task(host.run(install_signals=False))
        try:
            await wait_until(
                lambda: set(observer.remote_participants) == wanted, timeout=40, what="6 bots joined"
            )
            await wait_until(lambda: host.view.running() == 6, timeout=10, what="the view counts 6 running")
            assert {len(s.assigned) for s in host.slots.values()} == {3}
            victim_slot, victim_pid = next(iter(host.pids().items()))
            victims = set(host.slots[victim_slot].assigned)
            os.kill(victim_pid, signal.SIGKILL)
            await wait_until(
                lambda: victims <= {a[0].identity for _, a in left.events},
                timeout=30,
                what="its bots dropped out",
            )
            await wait_until(
                lambda: set(observer.remote_participants) == wanted, timeout=40, what="its bots came back"
            )
            assert host.pids()[victim_slot] != victim_pid
            assert host.view.process_restarts == {"SIGKILL": 1}
            assert host.view.slots[victim_slot].process_restarts == 1
            left.events.clear()
            host.request_stop()
            view = await asyncio.wait_for(running, 30)
            assert host.pids() == {}
            await wait_until(lambda: not observer.remote_participants, what="every bot left")
            assert {a[0].identity for _, a in left.events} == wanted
            reasons = {a[0].disconnect_reason for _, a in left.events}
            assert reasons <= {rtc.DisconnectReason.CLIENT_INITIATED}
            assert all(s.state.startswith(("drained", "exited")) for s in view.slots.values()), view.slots
        finally:
            host.request_stop()
            host.request_stop()
            await asyncio.wait_for(running, 30)
            await observer.disconnect()

    run_with_server(scenario)
