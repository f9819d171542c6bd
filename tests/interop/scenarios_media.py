"""Media interop: official ``livekit`` SDK clients (subprocesses) exchange media through the dev server.

Run inside the private namespace by :mod:`tests.interop.test_official_media`. The server runs in *this*
process with every aiortc decoder forbidden (:func:`tests.devserver.nodecode.forbid_decoders`): the SDK peers
are separate processes, so any decoder constructed here was the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from tests.devserver.nodecode import forbid_decoders
from tests.interop.netns import HOST_IP, PeerProcess
from tests.waiting import wait_until

__all__ = ["official_colour_cycle", "official_mute", "official_tone_sequence"]

V0: dict[str, Any] = {"single_peer_connection": False}
TONES = [440.0, 660.0, 880.0]


@contextlib.asynccontextmanager
async def _server() -> AsyncIterator[tuple[DevServer, list[str]]]:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    attempts = forbid_decoders()
    async with DevServer(ServerConfig(bind=HOST_IP, port=0)) as server:
        yield server, attempts


@contextlib.asynccontextmanager
async def _peers(*labels: str) -> AsyncIterator[list[PeerProcess]]:
    peers = await asyncio.gather(*(PeerProcess("livekit", label).start() for label in labels))
    try:
        yield list(peers)
    finally:
        await asyncio.gather(*(peer.stop() for peer in peers), return_exceptions=True)


def _heard(windows: list[dict[str, Any]]) -> list[float]:
    """The sequence of distinct tones heard (a tone counts after 3 consecutive loud windows)."""
    heard: list[float] = []
    run_freq, run = 0.0, 0
    for window in windows:
        loud = window["rms"] > 500
        freq = round(window["peak_hz"] / 10) * 10 if loud else 0.0
        run = run + 1 if freq == run_freq else 1
        run_freq = freq
        if loud and run == 3 and (not heard or heard[-1] != freq):
            heard.append(freq)
    return heard


async def official_tone_sequence() -> dict[str, Any]:
    """alice (official SDK) publishes 440 → 660 → 880 Hz; bob (official SDK) listens through the server."""
    async with _server() as (server, attempts), _peers("alice", "bob") as (alice, bob):
        await alice.call("connect", url=server.url, token=server.mint_token("alice", "r"), options=V0)
        await bob.call("connect", url=server.url, token=server.mint_token("bob", "r"), options=V0)
        started = time.monotonic()
        published = await alice.call("publish_tone", frequencies=TONES, seconds=1.2, lead=0.5)
        listening = await bob.call("listen_audio", identity="alice", timeout=15)
        subscribed_s = time.monotonic() - started
        session = server.session_of(server.rooms["r"], "alice")
        assert session is not None
        publication = session.publications[published["sid"]]
        levels: list[int | None] = []
        publication.tap.add_listener(lambda frame: levels.append(frame.audio_level))
        await alice.wait_event(lambda e: e.get("event") == "tone_done", timeout=20)

        def windows_of() -> list[dict[str, Any]]:
            return [e for e in bob.received("audio_window") if e["sid"] == published["sid"]]

        # the silence after the last tone has reached bob: everything before it has too
        await wait_until(
            lambda: _heard(windows_of())[-1:] == [TONES[-1]] and windows_of()[-1]["rms"] < 500,
            timeout=10,
            what=lambda: f"bob to hear {TONES[-1]} Hz and the silence after (heard {_heard(windows_of())})",
        )
        windows = windows_of()
        return {
            "published_sid": published["sid"],
            "listening_sid": listening["sid"],
            "subscribed_s": subscribed_s,
            "heard": _heard(windows),
            "windows": len(windows),
            "speakers_at_bob": [e["speakers"] for e in bob.received("active_speakers_changed")],
            "local_track_subscribed": [e["sid"] for e in alice.received("local_track_subscribed")],
            "tapped_packets": publication.tap.packets,
            "packets_with_level": sum(level is not None for level in levels),
            "loudest_level": min((level for level in levels if level is not None), default=None),
            "decoders": attempts,
        }


COLOURS = {"red": [255, 0, 0], "green": [0, 255, 0], "blue": [0, 0, 255]}


def _colour(rgb: list[int]) -> str:
    return min(COLOURS, key=lambda name: sum((a - b) ** 2 for a, b in zip(rgb, COLOURS[name], strict=True)))


async def official_colour_cycle(width: int = 64, height: int = 48) -> dict[str, Any]:
    """alice (official SDK) publishes red → green → blue video; bob (official SDK) watches via the server."""
    async with _server() as (server, attempts), _peers("alice", "bob") as (alice, bob):
        await alice.call("connect", url=server.url, token=server.mint_token("alice", "r"), options=V0)
        await bob.call("connect", url=server.url, token=server.mint_token("bob", "r"), options=V0)
        colours = [COLOURS["red"], COLOURS["green"], COLOURS["blue"]]
        published = await alice.call(
            "publish_colours", colours=colours, seconds=1.5, width=width, height=height
        )
        watching = await bob.call("watch_video", identity="alice", timeout=15)
        await alice.wait_event(lambda e: e.get("event") == "colours_done", timeout=20)
        await wait_until(  # the last colour has reached bob
            lambda: any(
                e["sid"] == published["sid"] and _colour(e["rgb"]) == "blue"
                for e in bob.received("video_frame")[-5:]
            ),
            timeout=10,
            what="bob to see blue",
        )
        session = server.session_of(server.rooms["r"], "alice")
        assert session is not None
        tap = session.publications[published["sid"]].tap
        seen: list[str] = []
        frames = [e for e in bob.received("video_frame") if e["sid"] == published["sid"]]
        for frame in frames:
            name = _colour(frame["rgb"])
            if not seen or seen[-1] != name:
                seen.append(name)
        return {
            "published_sid": published["sid"],
            "watching_sid": watching["sid"],
            "seen": seen,
            "frames": len(frames),
            "size": [frames[-1]["width"], frames[-1]["height"]] if frames else None,
            "mime_type": tap.mime_type,
            "tapped_frames": tap.frames,
            "keyframe_requests": tap.keyframe_requests_sent,
            "decoders": attempts,
        }


async def official_mute() -> dict[str, Any]:
    """alice (official SDK) plays one long 440 Hz tone and mutes it for 2 s; bob (official SDK) listens."""
    async with _server() as (server, attempts), _peers("alice", "bob") as (alice, bob):
        await alice.call("connect", url=server.url, token=server.mint_token("alice", "r"), options=V0)
        await bob.call("connect", url=server.url, token=server.mint_token("bob", "r"), options=V0)
        published = await alice.call("publish_tone", frequencies=[440.0], seconds=7.0, lead=0.0)
        await bob.call("listen_audio", identity="alice", timeout=15)
        session = server.session_of(server.rooms["r"], "alice")
        assert session is not None
        publication = session.publications[published["sid"]]

        def between(start: float, end: float) -> list[dict[str, Any]]:
            return [
                w
                for w in bob.received("audio_window")
                if w["sid"] == published["sid"] and start <= w["t"] < end
            ]

        def speakers() -> list[list[str]]:
            return [e["speakers"] for e in bob.received("active_speakers_changed")]

        await wait_until(
            lambda: _heard(between(0.0, math.inf)) == [440.0], timeout=15, what="bob to hear 440 Hz"
        )
        marks = {"muted": time.monotonic()}
        await alice.call("set_muted", sid=published["sid"], muted=True)
        await bob.wait_event(lambda e: e.get("event") == "track_muted", timeout=5)
        server_muted = publication.muted
        # muted: bob's stream goes on; 1.5 s of it once the decoder's fade-out is over, and alice no speaker
        await wait_until(
            lambda: len(between(marks["muted"] + 0.5, math.inf)) >= 15 and [] in speakers(),
            timeout=10,
            what=lambda: f"1.5 s of bob's stream while muted, speakers {speakers()}",
        )
        marks["unmuted"] = time.monotonic()
        await alice.call("set_muted", sid=published["sid"], muted=False)
        await bob.wait_event(lambda e: e.get("event") == "track_unmuted", timeout=5)
        await wait_until(
            lambda: _heard(between(marks["unmuted"], math.inf)) == [440.0] and speakers()[-1:] == [["alice"]],
            timeout=10,
            what=lambda: f"bob to hear 440 Hz again with alice speaking (speakers {speakers()})",
        )
        marks["end"] = time.monotonic()

        return {
            "server_muted": server_muted,
            "server_unmuted": not publication.muted,
            "before": _heard(between(0.0, marks["muted"])),
            "while_muted_loud": sum(w["rms"] > 500 for w in between(marks["muted"] + 0.5, marks["unmuted"])),
            "while_muted_windows": len(between(marks["muted"] + 0.5, marks["unmuted"])),
            "after": _heard(between(marks["unmuted"], marks["end"])),
            "speakers_at_bob": [e["speakers"] for e in bob.received("active_speakers_changed")],
            "decoders": attempts,
        }
