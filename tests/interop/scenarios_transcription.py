"""Interop scenario for transcriptions: a greenroom agent's ``publish_transcription`` against what an official
agent sends (livekit-agents: the ``Transcription`` packet and an ``lk.transcription`` text stream), read by an
official and a greenroom listener. Runs inside a private network namespace on the dev server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.interop.scenarios_greenroom import GRANTS, TRACK, V0, _named, _peers, _server

__all__ = ["transcripts"]


def _segments(segment_id: str) -> list[dict[str, Any]]:
    """An interim and a final segment, as an agent's STT/TTS output sends them."""
    interim = {
        "id": segment_id,
        "text": "hello",
        "start_time": 0,
        "end_time": 0,
        "language": "",
        "final": False,
    }
    return [interim, {**interim, "text": "hello wörld", "final": True}]


def _final_stream(segment: str) -> Callable[[dict[str, Any]], bool]:
    def match(e: dict[str, Any]) -> bool:
        attributes = e.get("attributes") or {}
        return (
            e.get("event") == "stream_received"
            and attributes.get("lk.segment_id") == segment
            and (attributes.get("lk.transcription_final") == "true")
        )

    return match


def _final_packet(segment: str) -> Callable[[dict[str, Any]], bool]:
    final = [{"id": segment, "text": "hello wörld", "final": True}]
    return lambda e: e.get("event") == "transcription_received" and e["segments"] == final


async def transcripts() -> dict[str, Any]:
    """alice (official) and bob (greenroom) are agents transcribing erin (not in the room), each with its own
    segment id (``SG_alice``, ``SG_bob``: both forms name erin, so the id tells the senders apart); carol
    (official) and dave (greenroom) listen: the ``transcription_received`` events and the
    ``lk.transcription`` streams each listener saw."""
    specs = (("livekit", "alice"), ("greenroom", "bob"), ("livekit", "carol"), ("greenroom", "dave"))
    async with _server() as server, _peers(*specs) as peers:
        alice, bob, carol, dave = peers
        for peer in (carol, dave, alice, bob):  # the listeners first: the agents then arrive as events
            kind = "agent" if peer in (alice, bob) else ""
            token = server.mint_token(peer.label, "transcripts", kind=kind, **GRANTS)
            await peer.call(
                "connect", url=server.url, token=token, options=V0 if peer.sdk == "livekit" else {}
            )
        for listener in (carol, dave):
            await listener.call("handle_streams", topic="lk.transcription", bytes=False)
            for sender in (alice, bob):
                await listener.wait_event(_named("participant_connected", identity=sender.label))
        for segment in _segments("SG_alice"):
            await alice.call("agent_transcript", identity="erin", track_sid=TRACK, segment=segment)
        await bob.call(
            "publish_transcription", identity="erin", track_sid=TRACK, segments=_segments("SG_bob")[:1]
        )
        await bob.call(
            "publish_transcription", identity="erin", track_sid=TRACK, segments=_segments("SG_bob")[1:]
        )
        for listener in (carol, dave):
            for name in ("alice", "bob"):
                await listener.wait_event(_final_stream(f"SG_{name}"), timeout=30)
                await listener.wait_event(_final_packet(f"SG_{name}"), timeout=30)
        seen = {
            listener.label: {
                "packets": [
                    {k: v for k, v in e.items() if k not in ("t", "event")}
                    for e in listener.events
                    if e.get("event") == "transcription_received"
                ],
                "streams": [
                    {k: e[k] for k in ("from", "text", "attributes", "error") if k in e}
                    for e in listener.received("stream_received")
                ],
            }
            for listener in (carol, dave)
        }
        for peer in peers:
            await peer.call("disconnect")
        return seen
