"""Numbered reliable packets between two greenroom clients across faults (issue 17, item 6): nothing lost
without the sender being told, nothing duplicated, in order.

Faults: the dev server SIGKILLed and restarted (a server in a subprocess), the signal connection of either
side dropped (its TCP connection aborted), the server's ``leave{RECONNECT}`` to either side, and a peer
connection killed (the server closes a participant's subscriber PC). Small by default; ``--faults-long``
runs each at a larger scale (more cycles, a higher rate).
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from greenroom import rtc
from greenroom.codecs.models import DisconnectReason, LeaveAction
from greenroom.devserver.server import DevServer
from greenroom.rtc.room import ReconnectPolicy
from tests.faults.stream import Outcome, Stream, counting_resends
from tests.rtc.support import run_with_server
from tests.rtc.test_reconnect import FAST, join, kill, server_process
from tests.waiting import wait_until

CONN = rtc.ConnectionState
#: Seconds of traffic between two faults: more than the resend margin (2 s), or every fault would send again
#: what the previous one had just sent again (correct — it is in doubt — but not what a fault test measures).
SPACING = 2.5
#: Quick retries for a long time: a restarted server process may take seconds to listen on a loaded machine.
PATIENT = ReconnectPolicy(attempts=60, max_delay=0.5, resend=True)
#: greenroom only on both ends: the doubtful window is sent again (ReconnectPolicy.resend).
RESENDING = ReconnectPolicy(max_delay=0.5, resend=True)


def scale(config: pytest.Config) -> tuple[int, float]:
    """(fault cycles, packets a second) for this run."""
    return (5, 100.0) if config.getoption("--faults-long") else (1, 50.0)


def check(outcome: Outcome, fault: str) -> None:
    print(outcome.line(fault))  # the figures of the run, with -s
    assert outcome.duplicated == 0, outcome.line(fault)
    assert outcome.reordered == 0, outcome.line(fault)
    assert outcome.lost_silently == 0, (outcome.lost, outcome.line(fault))
    assert outcome.sent > 0


async def connected_again(*rooms: rtc.Room) -> None:
    await wait_until(
        lambda: all(r.connection_state == CONN.CONN_CONNECTED for r in rooms), timeout=30, what="reconnected"
    )


async def pair(server: DevServer, policy: ReconnectPolicy = RESENDING) -> tuple[rtc.Room, rtc.Room]:
    rooms = []
    for identity in ("alice", "bob"):
        room = rtc.Room()
        room.reconnect_policy = policy  # read by connect
        await room.connect(server.url, server.mint_token(identity, "r1"))
        rooms.append(room)
    a, b = rooms
    await wait_until(lambda: "bob" in a.remote_participants and "alice" in b.remote_participants, timeout=10)
    return a, b


@pytest.mark.timeout(300)
def test_server_killed_and_restarted(pytestconfig: pytest.Config) -> None:
    cycles, rate = scale(pytestconfig)

    async def scenario() -> Outcome:
        stack = contextlib.AsyncExitStack()
        proc, port = await stack.enter_async_context(server_process())
        a, b = await join(port, "alice", PATIENT), await join(port, "bob", PATIENT)
        await wait_until(lambda: "bob" in a.remote_participants and "alice" in b.remote_participants)
        stream = Stream(a, b, rate=rate)
        stream.start()
        await stream.received_at_least(20)
        for _ in range(cycles):
            kill(proc)
            await wait_until(lambda: a.connection_state == CONN.CONN_RECONNECTING, timeout=10)
            await stream.sent_at_least(int(rate))  # about a second of outage, publishing on
            await stack.aclose()
            stack = contextlib.AsyncExitStack()
            proc, again = await stack.enter_async_context(server_process(port))
            assert again == port
            await connected_again(a, b)
            await stream.received_at_least(int(rate * SPACING))
        outcome = await stream.finish()
        await a.disconnect()
        await b.disconnect()
        await stack.aclose()
        return outcome

    with counting_resends() as resends:
        outcome = asyncio.run(scenario())
    outcome.resent = sum(resends)
    check(outcome, "server SIGKILL + restart")


async def inject(server: DevServer, fault: str, identity: str) -> None:
    """Break ``identity``'s connection the way ``fault`` says."""
    session = server.session_named("r1", identity)
    match fault:
        case "signal dropped":  # its TCP connection aborted: both ends see it dead at once, no leave
            session._ws.abort()
        case "leave{RECONNECT}":
            server.end_session(
                "r1", identity, reason=DisconnectReason.MIGRATION, action=LeaveAction.RECONNECT
            )
        case "peer connection killed":  # the server closes the participant's subscriber PC
            await session._subscriber.close()
        case _:
            raise AssertionError(fault)


FAULTS = ["signal dropped", "leave{RECONNECT}", "peer connection killed"]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("side", ["sender", "receiver"])
@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_on_either_side(fault: str, side: str, pytestconfig: pytest.Config) -> None:
    cycles, rate = scale(pytestconfig)

    async def scenario(server: DevServer) -> Outcome:
        a, b = await pair(server)
        stream = Stream(a, b, rate=rate)
        stream.start()
        await stream.received_at_least(20)
        victim, other = (a, b) if side == "sender" else (b, a)
        for _ in range(cycles):
            old = victim.local_participant.sid
            await inject(server, fault, victim.local_participant.identity)
            await wait_until(
                lambda old=old: (
                    victim.local_participant.sid != old  # type: ignore[misc]
                    and other.remote_participants.get(victim.local_participant.identity) is not None
                    and other.remote_participants[victim.local_participant.identity].sid
                    == victim.local_participant.sid
                ),
                timeout=30,
                what="the victim rejoined and is seen again",
            )
            await connected_again(a, b)
            await stream.received_at_least(int(rate * SPACING))
        outcome = await stream.finish()
        await a.disconnect()
        await b.disconnect()
        return outcome

    with counting_resends() as resends:
        outcome = run_with_server(scenario)
    outcome.resent = sum(resends)
    check(outcome, f"{fault} ({side})")


@pytest.mark.timeout(120)
def test_without_resend_what_was_in_doubt_is_reported() -> None:
    """The default (official SDKs may be in the room): the sender's own fault sends nothing twice; what was
    sent in the doubtful window is counted in ``data_undelivered`` instead."""

    async def scenario(server: DevServer) -> Outcome:
        a, b = await pair(server, FAST)
        stream = Stream(a, b, rate=50.0)
        stream.start()
        await stream.received_at_least(20)
        old = a.local_participant.sid
        await inject(server, "leave{RECONNECT}", "alice")
        await wait_until(
            lambda: (
                a.local_participant.sid != old
                and b.remote_participants.get("alice") is not None
                and b.remote_participants["alice"].sid == a.local_participant.sid
            ),
            timeout=30,
            what="alice rejoined and is seen again",
        )
        await stream.received_at_least(20)
        outcome = await stream.finish()
        await a.disconnect()
        await b.disconnect()
        return outcome

    with counting_resends() as resends:
        outcome = run_with_server(scenario)
    assert sum(resends) == 0
    check(outcome, "leave{RECONNECT} (sender), no resend")
    assert outcome.reported > 0  # the packets of the last ~2 s before the fault: in doubt, said so
