"""Interop scenarios for data streams: the official ``livekit`` SDK and greenroom sending to each other.

Runs inside a private network namespace (:func:`tests.interop.netns.run_in_netns`) on the dev server; each
client is :mod:`tests.interop.peer` in its own process. :func:`streams_both_ways` sends the same streams in
each direction — official → greenroom, greenroom → official, and official → official as the reference —
and returns what each receiver read; :func:`hostile_streams` has a greenroom peer send malformed streams to
an official and a greenroom receiver, then a normal one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests import wiretap
from tests.interop.netns import PeerProcess
from tests.interop.scenarios_greenroom import V0, _named, _peers, _server

__all__ = ["compressed_streams", "hostile_streams", "streams_both_ways"]

FILE_SIZE = 5_000_000
MARKER = "marker"


async def _send_all(sender: PeerProcess, to: str) -> dict[str, Any]:
    """The streams of one direction, each addressed to ``to``; returns what the sender says it sent."""
    dest: dict[str, Any] = {"destinations": [to]}
    sent: dict[str, Any] = {}
    sent["short"] = await sender.call(
        "send_text", topic="chat", text="forty characters of text, exactly: 40 ch", **dest
    )
    sent["long"] = await sender.call(
        "send_text", topic="chat", unit="é😀", repeat=50_000, attributes={"k": "v"}, **dest
    )
    sent["bytes"] = await sender.call("send_bytes", topic="blobs", size=200_000, name="blob.bin", **dest)
    sent["file"] = await sender.call(
        "send_file", topic="files", size=FILE_SIZE, name="photo.png", timeout=120, **dest
    )
    sent["written"] = await sender.call(
        "stream_text",
        topic="chat",
        parts=["one ", "two ", "three"],
        attributes={"a": "1"},
        close_attributes={"b": "2"},
        **dest,
    )
    sent["written_bytes"] = await sender.call(
        "stream_bytes", topic="blobs", sizes=[10_000, 20_000, 1], **dest
    )
    sent["aborted"] = await sender.call("stream_text", topic="chat", parts=["half"], reason="gave up", **dest)
    sent["unhandled"] = await sender.call("send_text", topic="nobody-listens", text="ignored", **dest)
    sent["other_topic"] = await sender.call("send_text", topic="other", text="for the other handler", **dest)
    await sender.call("send_text", topic="chat", text=MARKER, **dest)
    return sent


def _received(receiver: PeerProcess, sender: str) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in e.items() if k not in ("t", "event", "stream_id")}
        for e in receiver.received("stream_received")
        if e["from"] == sender
    ]


async def streams_both_ways() -> dict[str, Any]:
    """alice (official) ⇄ bob (greenroom), and carol (official) → alice as the reference."""
    async with (
        _server() as server,
        _peers(("livekit", "alice"), ("greenroom", "bob"), ("livekit", "carol")) as peers,
    ):
        alice, bob, carol = peers
        for peer in peers:
            options = V0 if peer.sdk == "livekit" else {}
            await peer.call(
                "connect", url=server.url, token=server.mint_token(peer.label, "streams"), options=options
            )
        for peer in (alice, bob):
            for topic in ("chat", "blobs", "files", "other"):
                await peer.call("handle_streams", topic=topic)
        for index, peer in enumerate(peers):  # later members arrive as events (earlier ones in the join)
            for later in peers[index + 1 :]:
                await peer.wait_event(_named("participant_connected", identity=later.label))
        sent = {
            "official_to_greenroom": await _send_all(alice, "bob"),
            "greenroom_to_official": await _send_all(bob, "alice"),
            "official_to_official": await _send_all(carol, "alice"),
        }
        marker = _named("stream_received", topic="chat", length=len(MARKER))
        await bob.wait_event(lambda e: marker(e) and e["from"] == "alice", timeout=120)
        await alice.wait_event(lambda e: marker(e) and e["from"] == "bob", timeout=120)
        await alice.wait_event(lambda e: marker(e) and e["from"] == "carol", timeout=120)
        received = {
            "official_to_greenroom": _received(bob, "alice"),
            "greenroom_to_official": _received(alice, "bob"),
            "official_to_official": _received(alice, "carol"),
        }
        for peer in peers:
            await peer.call("disconnect")
        return {"sent": sent, "received": received}


HOSTILE: list[dict[str, Any]] = [
    {"chunk": ["ghost", 0, "nobody opened this"]},
    {"trailer": ["ghost", ""]},
    {"header": {"id": "trunc", "topic": "chat", "total_length": 100}},
    {"chunk": ["trunc", 0, "fifty characters........................ and a few"]},
    {"trailer": ["trunc", ""]},
    {"header": {"id": "gap", "topic": "chat"}},
    {"chunk": ["gap", 0, "a"]},
    {"chunk": ["gap", 2, "c"]},
    {"trailer": ["gap", ""]},
    {"header": {"id": "long", "topic": "blobs", "bytes": True, "total_length": 2}},
    {"chunk": ["long", 0, "abc"]},
    {"trailer": ["long", ""]},
    *({"header": {"id": f"flood{i}", "topic": "flood"}} for i in range(150)),
]


async def hostile_streams() -> dict[str, Any]:
    """bob (greenroom) sends malformed streams, then a normal one, to alice (official) and carol (greenroom);
    dave (official) sends a normal one too: what does each receiver read?"""
    async with (
        _server() as server,
        _peers(
            ("livekit", "alice"), ("greenroom", "bob"), ("greenroom", "carol"), ("livekit", "dave")
        ) as peers,
    ):
        alice, bob, carol, dave = peers
        for peer in peers:
            options = V0 if peer.sdk == "livekit" else {}
            await peer.call(
                "connect", url=server.url, token=server.mint_token(peer.label, "hostile"), options=options
            )
        for peer in (alice, carol):
            for topic in ("chat", "blobs", "flood"):
                await peer.call("handle_streams", topic=topic)
        await bob.call("send_raw_streams", packets=HOSTILE, destinations=["alice", "carol"])
        await bob.call("send_text", topic="chat", text="bob is fine", destinations=["alice", "carol"])
        await dave.call("send_text", topic="chat", text="dave is fine", destinations=["alice", "carol"])
        for receiver in (alice, carol):
            for text in ("bob is fine", "dave is fine"):
                await receiver.wait_event(
                    _named("stream_received", topic="chat", length=len(text)), timeout=30
                )
        await bob.call("disconnect")  # the flood's open streams end with bob
        await asyncio.gather(
            *(
                r.wait_event(lambda e: e.get("event") == "participant_disconnected", timeout=15)
                for r in (alice, carol)
            )
        )
        await dave.call("send_text", topic="chat", text="after bob left", destinations=["alice", "carol"])
        for receiver in (alice, carol):
            await receiver.wait_event(
                _named("stream_received", topic="chat", length=len("after bob left")), timeout=30
            )
        result = {
            p.label: [
                {k: e[k] for k in ("topic", "from", "length", "error") if k in e}
                for e in p.received("stream_received")
            ]
            for p in (alice, carol)
        }
        states = {p.label: await p.call("state") for p in (alice, carol)}
        for peer in (alice, carol, dave):
            await peer.call("disconnect")
        return {"received": result, "connected": {k: v["connected"] for k, v in states.items()}}


COMPRESSIBLE: dict[str, Any] = {
    "unit": "compress me ",
    "repeat": 10_000,
}  # 120 000 bytes: a few hundred once deflated


async def compressed_streams() -> dict[str, Any]:
    """alice (official), bob and carol (greenroom) each send one compressible text stream to the next one
    (alice → bob → carol → alice, so greenroom ⇄ official both ways and greenroom → greenroom), with the dev
    server relaying everyone's announced capabilities; returns what each sender put on the wire (the stream
    header as the server decoded it, the bytes of its chunks) and what each receiver read."""
    async with (
        _server() as server,
        _peers(("livekit", "alice"), ("greenroom", "bob"), ("greenroom", "carol")) as peers,
    ):
        for peer in peers:
            options = V0 if peer.sdk == "livekit" else {}
            await peer.call(
                "connect", url=server.url, token=server.mint_token(peer.label, "deflate"), options=options
            )
            await peer.call("handle_streams", topic="z", bytes=False)
        for index, peer in enumerate(peers):
            for later in peers[index + 1 :]:
                await peer.wait_event(_named("participant_connected", identity=later.label))
        ring = list(zip(peers, peers[1:] + peers[:1], strict=True))
        with wiretap.tap() as wire:
            sent = {
                p.label: await p.call("send_text", topic="z", destinations=[to.label], **COMPRESSIBLE)
                for p, to in ring
            }
            for sender, receiver in ring:
                await receiver.wait_event(
                    _named("stream_received", topic="z", **{"from": sender.label}), timeout=60
                )
        on_wire = {}
        for sender, _ in ring:
            [header] = wire.headers(sender.label, "z")
            on_wire[sender.label] = {
                "compression": header.compression.name,
                "total_length": header.total_length,
                "inline": None if header.inline_content is None else len(header.inline_content),
                "chunked": sum(len(c.content) for c in wire.chunks(sender.label, header.stream_id)),
            }
        received = {
            receiver.label: [
                {k: e[k] for k in ("from", "length", "sha256", "error") if k in e}
                for e in receiver.received("stream_received")
            ]
            for _, receiver in ring
        }
        for peer in peers:
            await peer.call("disconnect")
        return {"sent": {k: v["sha256"] for k, v in sent.items()}, "wire": on_wire, "received": received}
