"""ParticipantActor and TrackActor in isolation: a recording sink and a fake room (their collaborators)."""

from __future__ import annotations

import asyncio
from typing import Any

import pykka
import pytest

from greenroom.actors import messages as m
from greenroom.actors.core import ask, live_actors, stop_actor
from greenroom.actors.participant import ParticipantActor, TrackActor, TrackState, changed_attributes
from greenroom.codecs import packets
from greenroom.codecs.models import DisconnectReason, ParticipantInfo, ParticipantState, TrackInfo, TrackType
from greenroom.runtime import loop as runtime
from tests.helpers import assert_eventually_async


class Sink:
    def __init__(self) -> None:
        self.events: list[m.RoomEvent] = []

    def emit(self, event: m.RoomEvent) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


AUDIO = TrackInfo(sid="TR_a", type=TrackType.AUDIO, name="mic")
ALICE = ParticipantInfo(
    sid="PA_a", identity="alice", state=ParticipantState.JOINED, tracks=(AUDIO,), version=1
)


def run(coro: Any) -> Any:
    return runtime.run_sync(coro, timeout=30)


def test_changed_attributes() -> None:
    old = ParticipantInfo(sid="PA_1", identity="a", attributes=(("a", "1"), ("b", "2")))
    new = ParticipantInfo(sid="PA_1", identity="a", attributes=(("a", "1"), ("b", "3"), ("c", "4")))
    gone = ParticipantInfo(sid="PA_1", identity="a")
    assert changed_attributes(old, new) == {"b": "3", "c": "4"}
    assert changed_attributes(old, gone) == {"a": "", "b": ""}


def test_remote_participant_reports_changes_in_order() -> None:
    async def main() -> None:
        sink = Sink()
        ref = ParticipantActor.start(ALICE, sink)
        changed = ParticipantInfo(
            sid="PA_a",
            identity="alice",
            name="Alice",
            metadata="m",
            attributes=(("k", "v"),),
            state=ParticipantState.ACTIVE,
            tracks=(TrackInfo(sid="TR_a", type=TrackType.AUDIO, name="mic", muted=True),),
            version=2,
        )
        ref.tell(m.ApplyParticipantInfo(changed))
        user = packets.DataPacket(packets.UserPacket(payload=b"hi", topic="t"), participant_identity="alice")
        ref.tell(m.DeliverPacket(user, reliable=True))
        ref.tell(m.DeliverPacket(packets.DataPacket(packets.SipDtmf(1, "1")), reliable=True))
        ref.tell(m.ParticipantLeft(changed, DisconnectReason.CLIENT_INITIATED))
        await assert_eventually_async(lambda: not ref.is_alive() and not live_actors())
        assert len(sink.of(m.TrackMuted)) == 1  # from the TrackActor: ordered only among its own events
        kinds = [type(e).__name__ for e in sink.events if not isinstance(e, m.TrackMuted)]
        assert kinds == [
            "ParticipantConnected",
            "TrackPublished",
            "ParticipantNameChanged",
            "ParticipantMetadataChanged",
            "ParticipantAttributesChanged",
            "ParticipantActive",
            "DataPacketReceived",
            "SipDtmfReceived",
            "ParticipantDisconnected",
        ]
        assert sink.of(m.DataPacketReceived) == [m.DataPacketReceived("alice", b"hi", True, "t")]

    run(main())


def test_a_crashed_track_actor_is_restarted_from_the_participant_state() -> None:
    async def main() -> None:
        sink = Sink()
        ref = ParticipantActor.start(ALICE, sink, announce=False)
        await assert_eventually_async(lambda: len(live_actors()) == 2)
        tracks = [r for r in live_actors() if r.actor_class is TrackActor]
        assert len(tracks) == 1
        assert await ask(tracks[0], m.GetState()) == TrackState("TR_a", "mic", 0, 0, False, False)
        tracks[0].tell(m.Crash("track bug"))
        await assert_eventually_async(
            lambda: [r for r in live_actors() if r.actor_class is TrackActor] not in ([], tracks)
        )
        muted = ParticipantInfo(
            sid="PA_a",
            identity="alice",
            tracks=(TrackInfo(sid="TR_a", type=TrackType.AUDIO, name="mic", muted=True),),
            version=2,
        )
        ref.tell(m.ApplyParticipantInfo(muted))
        await assert_eventually_async(lambda: len(sink.of(m.TrackMuted)) == 1)
        assert ref.is_alive()
        await stop_actor(ref)
        assert not live_actors()

    run(main())


def test_a_crashed_participant_stops_its_track_actors() -> None:
    async def main() -> None:
        ref = ParticipantActor.start(ALICE, Sink(), announce=False)
        await assert_eventually_async(lambda: len(live_actors()) == 2)
        ref.tell(m.Crash("participant bug"))
        await assert_eventually_async(lambda: not live_actors())
        with pytest.raises(pykka.ActorDeadError):
            ref.tell(m.GetState())

    run(main())


def test_reply_is_completed_once() -> None:
    async def main() -> None:
        reply: m.Reply[int] = m.Reply.new()
        reply.ok(1)
        reply.ok(2)
        reply.fail(RuntimeError())
        assert reply.done
        assert await reply.future == 1

    asyncio.run(main())
