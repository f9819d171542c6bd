"""The track registry: SDP media sections → announced publications (the seam RTP forwarding builds on)."""

from __future__ import annotations

from aiortc.mediastreams import AudioStreamTrack

from greenroom.codecs.models import TrackType
from greenroom.codecs.signalling import AddTrackRequest, Answer, MuteTrack, Offer, TrackPublished
from greenroom.devserver.server import DevServer
from greenroom.devserver.tracks import MediaSection, PendingTrack, match_pending, media_sections
from tests.devserver.conftest import run_with_server
from tests.devserver.rawclient import RawClient

# Shape of the Rust SDK's v0 offer after the v1 fallback: recvonly placeholders first, then the real track.
FALLBACK_OFFER = "\r\n".join(
    [
        "v=0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=mid:7",
        "a=recvonly",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "a=mid:10",
        "a=recvonly",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "a=mid:13",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=mid:14",
        "a=sendonly",
        "a=msid:- cid-mic",
        "m=video 0 UDP/TLS/RTP/SAVPF 96",
        "a=mid:15",
        "a=sendonly",
        "a=msid:- cid-cam",
        "",
    ]
)


def test_media_sections_skip_data_and_see_direction_msid_and_port() -> None:
    sections = media_sections(FALLBACK_OFFER)
    assert [(s.mid, s.kind, s.sending) for s in sections] == [
        ("7", TrackType.AUDIO, False),
        ("10", TrackType.VIDEO, False),
        ("14", TrackType.AUDIO, True),
        ("15", TrackType.VIDEO, False),  # port 0: rejected/stopped
    ]
    assert sections[2].msid_track == "cid-mic"


def test_pending_tracks_match_by_cid_then_by_kind() -> None:
    pending = [PendingTrack("a", "TR_a", TrackType.AUDIO), PendingTrack("b", "TR_b", TrackType.AUDIO)]
    by_cid = MediaSection(TrackType.AUDIO, "1", "sendonly", "b")
    assert match_pending(by_cid, pending) == pending[1]
    by_kind = MediaSection(TrackType.AUDIO, "1", "sendonly", "random-aiortc-id")
    assert match_pending(by_kind, pending) == pending[0]
    assert match_pending(MediaSection(TrackType.VIDEO, "1", "sendonly", "x"), pending) is None


def test_published_track_is_announced_to_everyone_and_mute_is_broadcast() -> None:
    async def scenario(server: DevServer) -> None:
        alice = await RawClient.join(server.url, server.mint_token("alice", "r"))
        bob = await RawClient.join(server.url, server.mint_token("bob", "r"))
        track = AudioStreamTrack()
        await alice.send(AddTrackRequest(cid=track.id, name="mic", type=TrackType.AUDIO))
        published = await alice.wait_message(TrackPublished)
        assert alice.publisher is not None
        alice.publisher.pc.addTrack(track)
        await alice.send(Offer(sdp=await alice.publisher.create_offer(), id=2))
        answer = await alice.wait_message(Answer, lambda a: a.id == 2)
        await alice.publisher.set_remote_description(answer.sdp, "answer")
        info = await bob.wait_update(lambda p: p.identity == "alice" and p.tracks)
        assert [(t.sid, t.type, t.name) for t in info.tracks] == [
            (published.track.sid, TrackType.AUDIO, "mic")
        ]
        assert info.tracks[0].mid
        await alice.send(MuteTrack(sid=published.track.sid, muted=True))
        muted = await bob.wait_update(lambda p: p.identity == "alice" and p.tracks and p.tracks[0].muted)
        assert muted.version > info.version
        track.stop()
        await alice.close()
        await bob.close()

    run_with_server(scenario)


def test_start_in_thread_serves_from_the_runtime_loop() -> None:
    import asyncio

    from greenroom.devserver.config import ServerConfig
    from greenroom.runtime import loop as runtime_loop

    server = DevServer(ServerConfig(port=0)).start_in_thread()
    try:

        async def join() -> str:
            client = await RawClient.open(server.url, server.mint_token("alice", "r"))
            sid = client.sid
            await client.close()
            return sid

        assert asyncio.run(join()).startswith("PA_")
    finally:
        server.close_in_thread()
        runtime_loop.shutdown()
