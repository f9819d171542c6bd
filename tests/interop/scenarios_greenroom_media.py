"""Media interop: a greenroom client and an official ``livekit`` client exchange media through the dev server.

Run inside the private namespace by :mod:`tests.interop.test_greenroom_media`. Every client is the same
peer program (:mod:`tests.interop.peer`) with only the ``rtc`` import changed; in each room ``alice`` runs
greenroom and ``bob`` the official SDK, and both publish and both listen, so each scenario checks both
directions at once. The server runs in *this* process with every aiortc decoder forbidden
(:func:`tests.devserver.nodecode.forbid_decoders`): the peers are separate processes.

* :func:`tones_both_ways` — a tone sequence each way (FFT peak of each 100 ms window).
* :func:`mute_both_ways` — one long tone each way; each side mutes and unmutes in turn; the other side's
  events and the loudness of what it hears are returned with the time marks.
* :func:`colours_both_ways` — a VP8 colour cycle each way (mean RGB of each received frame).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from tests.devserver.nodecode import forbid_decoders
from tests.interop.netns import HOST_IP, PeerProcess
from tests.interop.scenarios_greenroom import _named, _peers
from tests.waiting import wait_until

__all__ = ["colours_both_ways", "heard", "mute_both_ways", "tones_both_ways"]

V0: dict[str, Any] = {"single_peer_connection": False}
SDKS = (("greenroom", "alice"), ("livekit", "bob"))
TONES = {"alice": [440.0, 660.0, 880.0], "bob": [550.0, 770.0, 990.0]}
LONG = {"alice": 500.0, "bob": 700.0}
COLOURS = {"alice": [[255, 0, 0], [0, 255, 0], [0, 0, 255]], "bob": [[0, 0, 255], [255, 0, 0], [0, 255, 0]]}


@contextlib.asynccontextmanager
async def _room(name: str) -> AsyncIterator[tuple[DevServer, list[str], PeerProcess, PeerProcess]]:
    """The server (no decoder allowed) and alice (greenroom) + bob (official), both connected to ``name``."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    attempts = forbid_decoders()
    async with DevServer(ServerConfig(bind=HOST_IP, port=0)) as server, _peers(*SDKS) as (alice, bob):
        for peer in (alice, bob):
            options = V0 if peer.sdk == "livekit" else {}
            token = server.mint_token(peer.label, name)
            await peer.call("connect", url=server.url, token=token, options=options)
        await alice.wait_event(_named("participant_connected", identity="bob"))
        yield server, attempts, alice, bob


def heard(windows: list[dict[str, Any]]) -> list[float]:
    """The sequence of distinct tones heard (a tone counts after 3 consecutive loud windows)."""
    tones: list[float] = []
    run_freq, run = 0.0, 0
    for window in windows:
        loud = window["rms"] > 500
        freq = round(window["peak_hz"] / 10) * 10 if loud else 0.0
        run = run + 1 if freq == run_freq else 1
        run_freq = freq
        if loud and run == 3 and (not tones or tones[-1] != freq):
            tones.append(freq)
    return tones


def _shows(rgb: list[int], colour: list[int]) -> bool:
    """Whether a received frame's mean RGB is clearly the pure ``colour``."""
    return all(abs(a - b) < 100 for a, b in zip(rgb, colour, strict=True))


def _windows(peer: PeerProcess, sid: str) -> list[dict[str, Any]]:
    return [e for e in peer.received("audio_window") if e["sid"] == sid]


async def _publish_and_listen(
    alice: PeerProcess, bob: PeerProcess, tones: dict[str, list[float]], seconds: float
) -> dict[str, str]:
    """Both publish ``tones[label]`` and each listens to the other; returns label → published sid."""
    sids = {}
    for peer in (alice, bob):
        published = await peer.call("publish_tone", frequencies=tones[peer.label], seconds=seconds, lead=1.5)
        sids[peer.label] = published["sid"]
    for peer, other in ((alice, "bob"), (bob, "alice")):
        listening = await peer.call("listen_audio", identity=other, timeout=15)
        assert listening["sid"] == sids[other], (listening, sids)
    return sids


async def _wait_loud(
    peer: PeerProcess, sid: str, count: int, timeout: float = 15.0, since: float = 0.0
) -> None:
    """Wait until ``peer`` heard ``count`` loud windows of ``sid`` (stamped at or after ``since``)."""
    await wait_until(
        lambda: sum(w["rms"] > 500 and w["t"] >= since for w in _windows(peer, sid)) >= count,
        timeout=timeout,
        interval=0.05,
        what=lambda: f"{peer.label} to hear {sid}: {_windows(peer, sid)[-5:]}",
    )


async def _wait_windows(peer: PeerProcess, sid: str, count: int, since: float, timeout: float = 10.0) -> None:
    """Wait until ``peer`` got ``count`` windows of ``sid`` (loud or not) stamped at or after ``since``."""
    await wait_until(
        lambda: sum(w["t"] >= since for w in _windows(peer, sid)) >= count,
        timeout=timeout,
        interval=0.05,
        what=lambda: f"{count} windows of {sid} at {peer.label}",
    )


async def tones_both_ways() -> dict[str, Any]:
    """alice (greenroom) plays 440 → 660 → 880 Hz, bob (official) 550 → 770 → 990 Hz; each listens."""
    async with _room("tones") as (_server, attempts, alice, bob):
        sids = await _publish_and_listen(alice, bob, TONES, seconds=1.2)
        for peer in (alice, bob):
            await peer.wait_event(_named("tone_done"), timeout=25)
        for peer, other in ((alice, "bob"), (bob, "alice")):  # the last tone and the silence after it
            await wait_until(
                lambda peer=peer, other=other: (  # type: ignore[misc]
                    heard(_windows(peer, sids[other]))[-1:] == TONES[other][-1:]
                    and _windows(peer, sids[other])[-1]["rms"] < 500
                ),
                timeout=10,
                what=lambda peer=peer, other=other: (
                    f"{peer.label} to hear {TONES[other][-1]} Hz then silence"
                ),  # type: ignore[misc]
            )
        return {
            "heard_by": {
                "bob": heard(_windows(bob, sids["alice"])),
                "alice": heard(_windows(alice, sids["bob"])),
            },
            "subscribed": {
                p.label: [(e["sid"], e["from"]) for e in p.received("track_subscribed")] for p in (alice, bob)
            },
            "local_track_subscribed": {
                p.label: [e["sid"] for e in p.received("local_track_subscribed")] for p in (alice, bob)
            },
            "speakers": {
                p.label: [e["speakers"] for e in p.received("active_speakers_changed")] for p in (alice, bob)
            },
            "sids": sids,
            "decoders": attempts,
        }


async def _toggle(muter: PeerProcess, watcher: PeerProcess, sid: str) -> dict[str, float]:
    """``muter`` mutes ``sid`` until the watcher got 0.8 s of its stream past the decoder's fade-out, then
    unmutes until the watcher heard 0.5 s of the tone again; returns the time marks (CLOCK_MONOTONIC)."""
    marks = {"mute_sent": time.monotonic()}
    await muter.call("set_muted", sid=sid, muted=True)
    seen = await watcher.wait_event(_named("track_muted", sid=sid), timeout=10)
    marks["mute_seen"] = seen["t"]
    await _wait_windows(watcher, sid, 8, since=marks["mute_seen"] + 0.7)
    marks["unmute_sent"] = time.monotonic()
    await muter.call("set_muted", sid=sid, muted=False)
    seen = await watcher.wait_event(_named("track_unmuted", sid=sid), timeout=10)
    marks["unmute_seen"] = seen["t"]
    await _wait_loud(watcher, sid, 5, timeout=10, since=marks["unmute_seen"] + 0.4)
    marks["end"] = time.monotonic()
    return marks


async def mute_both_ways() -> dict[str, Any]:
    """Each publishes one long tone; alice (greenroom) mutes and unmutes, then bob (official) does."""
    async with _room("mute") as (_server, attempts, alice, bob):
        long_tones = {label: [hz] for label, hz in LONG.items()}
        sids = await _publish_and_listen(alice, bob, long_tones, seconds=14.0)
        for peer, other in ((alice, "bob"), (bob, "alice")):  # both hear the other before anything is muted
            await _wait_loud(peer, sids[other], 8)
        before = time.monotonic()
        marks = {
            "alice": await _toggle(alice, bob, sids["alice"]),
            "bob": await _toggle(bob, alice, sids["bob"]),
        }
        return {
            "before": before,
            "marks": marks,
            "windows": {"bob": _windows(bob, sids["alice"]), "alice": _windows(alice, sids["bob"])},
            "events": {
                p.label: [
                    (e["event"], e["sid"], e["from"])
                    for e in p.events
                    if e.get("event", "").startswith("track_")
                ]
                for p in (alice, bob)
            },
            "sids": sids,
            "decoders": attempts,
        }


async def colours_both_ways() -> dict[str, Any]:
    """alice (greenroom) shows red → green → blue, bob (official) blue → red → green; each watches."""
    async with _room("colours") as (_server, attempts, alice, bob):
        sids, features = {}, {}
        for peer in (alice, bob):
            published = await peer.call(
                "publish_colours",
                colours=COLOURS[peer.label],
                seconds=1.5,
                fps=20,
                lead=2.0,
                features=["FMF_USER_TIMESTAMP", "FMF_FRAME_ID"],
            )
            sids[peer.label] = published["sid"]
            features[peer.label] = published["features"]
        for peer, other in ((alice, "bob"), (bob, "alice")):
            await peer.call("watch_video", identity=other, timeout=15)
        for peer in (alice, bob):
            await peer.wait_event(_named("colours_done"), timeout=25)
        for peer, other in ((alice, "bob"), (bob, "alice")):  # the other's last colour has arrived
            await wait_until(
                lambda peer=peer, other=other: any(  # type: ignore[misc]
                    _shows(e["rgb"], COLOURS[other][-1]) for e in peer.received("video_frame")[-5:]
                ),
                timeout=10,
                what=lambda peer=peer: f"{peer.label} to see the last colour",  # type: ignore[misc]
            )
        return {
            "frames_at": {
                p.label: [(e["rgb"], e["width"], e["height"]) for e in p.received("video_frame")]
                for p in (alice, bob)
            },
            "sids": sids,
            "decoders": attempts,
            "features": features,  # each publisher's own publication.frame_metadata_features
            "features_seen": {  # what each one's track_subscribed said of the other's publication
                p.label: [e["features"] for e in p.received("track_subscribed")] for p in (alice, bob)
            },
        }
