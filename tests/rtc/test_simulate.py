"""``Room.simulate_scenario`` against the dev server: each kind stages the fault the official SDK stages."""

from __future__ import annotations

import pytest

from greenroom import rtc
from greenroom.devserver.server import DevServer
from tests.rtc.support import Recorder, connect, run_with_server
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize(
    "kind",
    [
        rtc.SimulateScenarioKind.SIMULATE_FULL_RECONNECT,
        rtc.SimulateScenarioKind.SIMULATE_SIGNAL_RECONNECT,
        rtc.SimulateScenarioKind.SIMULATE_NODE_FAILURE,
        rtc.SimulateScenarioKind.SIMULATE_FORCE_TCP,
    ],
)
def test_link_faults_reconnect_the_room_and_it_serves_again(kind: rtc.SimulateScenarioKind) -> None:
    async def scenario(server: DevServer) -> None:
        alice = await connect(server, "alice")
        bob = await connect(server, "bob")
        got = Recorder(bob, "data_received")
        rec = Recorder(alice, "reconnecting", "reconnected", "disconnected")
        await alice.simulate_scenario(kind)
        await wait_until(
            lambda: "reconnected" in rec.names(), timeout=30, what=f"reconnected after {kind.name}"
        )
        assert rec.names() == ["reconnecting", "reconnected"]
        assert alice.connection_state == rtc.ConnectionState.CONN_CONNECTED
        await wait_until(lambda: "alice" in bob.remote_participants, timeout=20, what="alice back for bob")
        await alice.local_participant.publish_data(b"after", reliable=True)
        await wait_until(lambda: got.named("data_received"), timeout=20, what="data after the fault")
        await alice.disconnect()
        await bob.disconnect()

    run_with_server(scenario)


def test_server_leave_disconnects_with_server_shutdown() -> None:
    async def scenario(server: DevServer) -> None:
        alice = await connect(server, "alice")
        rec = Recorder(alice, "reconnecting", "disconnected")
        await alice.simulate_scenario(rtc.SimulateScenarioKind.SIMULATE_SERVER_LEAVE)
        await wait_until(lambda: rec.named("disconnected"), timeout=20, what="disconnected")
        assert rec.named("disconnected") == [(rtc.DisconnectReason.SERVER_SHUTDOWN,)]
        assert "reconnecting" not in rec.names()
        with pytest.raises(RuntimeError, match="requires a connected room"):
            await alice.simulate_scenario(rtc.SimulateScenarioKind.SIMULATE_SPEAKER)

    run_with_server(scenario)


def test_speaker_makes_the_others_see_an_active_speaker_then_none() -> None:
    async def scenario(server: DevServer) -> None:
        alice = await connect(server, "alice")
        bob = await connect(server, "bob")
        speakers = Recorder(bob, "active_speakers_changed")
        await alice.simulate_scenario(rtc.SimulateScenarioKind.SIMULATE_SPEAKER)

        def seen() -> list[list[str]]:
            return [[p.identity for p in args[0]] for args in speakers.named("active_speakers_changed")]

        await wait_until(lambda: ["alice"] in seen(), timeout=10, what="alice speaking")
        await wait_until(lambda: seen()[-1] == [], timeout=10, what="nobody speaking after 3 s")
        await alice.disconnect()
        await bob.disconnect()

    run_with_server(scenario)
