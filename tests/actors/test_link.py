"""The link's tasks against the real dev server: a negotiation in progress never holds the RoomActor."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

import pytest

from greenroom import rtc, testing
from greenroom.actors.room import ConnState, RoomSnapshot
from greenroom.devserver.server import DevServer
from greenroom.rtc.participant import PublishTrackError
from greenroom.runtime.peer import PeerRole, PeerTransport
from tests.rtc.support import Recorder, connect, run_with_server
from tests.waiting import wait_until


def test_a_publisher_offer_that_does_not_finish_does_not_hold_the_mailbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aiortc's createOffer can wait seconds for ICE gathering (STUN/TURN): it runs in the link's negotiator.

    The offer is held at a gate the test opens only after the RoomActor answered a state query and a
    metadata round trip with the server, so the order proves it, not a timer.
    """
    gate: concurrent.futures.Future[None] = concurrent.futures.Future()
    offers_started: list[PeerRole] = []
    real_create_offer = PeerTransport.create_offer

    async def gated_create_offer(self: PeerTransport) -> str:
        offers_started.append(self.role)
        await asyncio.wrap_future(gate)
        return await real_create_offer(self)

    async def scenario(server: DevServer) -> None:
        bob = await connect(server, "bob")
        alice = await connect(server, "alice")
        await wait_until(lambda: "alice" in bob.remote_participants)
        received = Recorder(bob, "data_received")
        monkeypatch.setattr(PeerTransport, "create_offer", gated_create_offer)
        publish = asyncio.ensure_future(
            alice.local_participant.publish_data(b"after the gate", reliable=True)
        )
        await wait_until(lambda: offers_started == [PeerRole.PUBLISHER])
        snapshot: Any = await testing.state(alice, testing.room_actor())
        assert isinstance(snapshot, RoomSnapshot)
        assert snapshot.state is ConnState.CONNECTED
        await alice.local_participant.set_metadata("answered while the offer waits")
        await wait_until(
            lambda: bob.remote_participants["alice"].metadata == "answered while the offer waits"
        )
        assert not publish.done()
        gate.set_result(None)
        await publish
        await wait_until(lambda: len(received.named("data_received")) == 1)
        await alice.disconnect()
        await bob.disconnect()

    run_with_server(scenario)


def test_a_link_cut_before_its_offer_tells_the_publisher_it_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    """``publish_track`` waiting for an offer that will never go out fails (the room closed), never hangs."""
    gate: concurrent.futures.Future[None] = concurrent.futures.Future()
    real_create_offer = PeerTransport.create_offer
    offers_started: list[PeerRole] = []

    async def gated_create_offer(self: PeerTransport) -> str:
        offers_started.append(self.role)
        await asyncio.wrap_future(gate)
        return await real_create_offer(self)

    async def scenario(server: DevServer) -> None:
        alice = await connect(server, "alice")
        monkeypatch.setattr(PeerTransport, "create_offer", gated_create_offer)
        source = rtc.AudioSource(48000, 1)
        track = rtc.LocalAudioTrack.create_audio_track("mic", source)
        publish = asyncio.ensure_future(alice.local_participant.publish_track(track))
        await wait_until(lambda: offers_started == [PeerRole.PUBLISHER])
        await alice.disconnect()
        with pytest.raises(PublishTrackError, match="closed before the offer went out"):
            await publish
        assert gate.cancelled()  # the negotiator task was cancelled with the link

    run_with_server(scenario)
