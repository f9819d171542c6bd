"""The RoomActor against the real dev server: crash containment and the state a restart comes from."""

from __future__ import annotations

from typing import Any

import pykka

from greenroom import rtc, testing
from greenroom.actors import messages as m
from greenroom.actors.core import ask
from greenroom.actors.participant import ParticipantActor
from greenroom.actors.room import ConnState, RoomSnapshot, ice_policy_for
from greenroom.devserver.server import DevServer
from tests.helpers import assert_eventually_async
from tests.rtc.support import Recorder, connect, run_with_server


def _room_ref(room: rtc.Room) -> pykka.ActorRef[Any]:
    client = room._client
    assert client is not None
    return client.ref


async def _snapshot(room: rtc.Room) -> RoomSnapshot:
    snapshot = await ask(_room_ref(room), m.GetState())
    assert isinstance(snapshot, RoomSnapshot)
    return snapshot


async def _child(room: rtc.Room, key: str) -> pykka.ActorRef[Any] | None:
    return dict((await _snapshot(room)).children)[key]


def test_ice_policy_follows_the_server_address() -> None:
    assert ice_policy_for("ws://127.0.0.1:7880", m.ConnectOptions()).gather_addresses == ("127.0.0.1",)
    assert ice_policy_for("ws://localhost:7880", m.ConnectOptions()).gather_addresses == ("127.0.0.1",)
    assert ice_policy_for("wss://example.org", m.ConnectOptions()).gather_addresses is None


def test_a_crashed_participant_actor_is_restarted_with_its_state_and_data_keeps_flowing() -> None:
    async def scenario(server: DevServer) -> None:
        bob = await connect(server, "bob")
        rec = Recorder(bob, "data_received", "participant_connected", "participant_disconnected")
        alice = await connect(server, "alice")
        await alice.local_participant.set_metadata("before the crash")
        await assert_eventually_async(
            lambda: (
                "alice" in bob.remote_participants
                and bob.remote_participants["alice"].metadata == "before the crash"
            )
        )
        view = bob.remote_participants["alice"]
        old = await _child(bob, "alice")
        assert old is not None
        assert old.actor_class is ParticipantActor

        await testing.crash(bob, testing.participant("alice"))
        await alice.local_participant.publish_data(b"during")  # stashed, then handled by the new incarnation
        await assert_eventually_async(lambda: len(rec.named("data_received")) == 1)
        new = await testing.serving(bob, testing.participant("alice"), since=old)
        assert not old.is_alive()
        info = await testing.state(bob, testing.participant("alice"))
        assert info.metadata == "before the crash"  # restored from the snapshot the RoomActor keeps
        await alice.local_participant.publish_data(b"after")
        await assert_eventually_async(lambda: len(rec.named("data_received")) == 2)
        assert [a[0].data for a in rec.named("data_received")] == [b"during", b"after"]
        assert all(a[0].participant is view for a in rec.named("data_received"))
        assert [a[0].identity for a in rec.named("participant_connected")] == ["alice"]  # not re-announced
        assert rec.named("participant_disconnected") == []
        assert bob.isconnected()
        assert (await _snapshot(bob)).state is ConnState.CONNECTED

        # the local participant's actor too: publishing goes on after its crash
        local = await testing.crash(alice, testing.local_participant())
        await alice.local_participant.publish_data(b"local restarted")
        await assert_eventually_async(lambda: len(rec.named("data_received")) == 3)
        assert await testing.serving(alice, testing.local_participant(), since=local) is not new
        await alice.disconnect()
        await bob.disconnect()

    run_with_server(scenario)
