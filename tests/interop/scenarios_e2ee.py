"""E2EE interop: greenroom's codecs against the official ``livekit`` SDK's encryption, both ways.

Run inside the private namespace by :mod:`tests.interop.test_e2ee_interop`. The dev server runs in this
process and is turned into a *re-encrypting* SFU for the test: every frame and data packet alice (official
SDK, E2EE with a shared key) publishes is

1. captured as it arrived (golden vectors: what libwebrtc's frame cryptor and the Rust data cryptor wrote),
2. decrypted with :mod:`greenroom.codecs.e2ee` / :mod:`greenroom.codecs.e2ee_frames` (official → greenroom),
3. re-encrypted by greenroom with a fresh IV (data: with a changed payload) and forwarded to bob (official
   SDK, same key), who hears the tone, sees the colours and receives the data only if his libwebrtc
   accepts greenroom's ciphertext (greenroom → official). A frame greenroom cannot decrypt is dropped.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from greenroom.codecs import e2ee
from greenroom.codecs.e2ee_frames import FrameDecryptor, FrameEncryptor
from greenroom.codecs.packets import DataPacket, EncryptedPacket, UserPacket
from greenroom.devserver import room as server_room
from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from greenroom.runtime import rtp_forward
from tests.devserver.nodecode import forbid_decoders
from tests.interop.netns import HOST_IP, PeerProcess
from tests.interop.scenarios_media import COLOURS, _colour, _heard
from tests.waiting import wait_until

__all__ = ["official_through_greenroom_crypto"]

V0: dict[str, Any] = {"single_peer_connection": False}
SHARED_KEY = b"greenroom-e2ee-golden"
KEEP_FRAMES = 6


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Recrypter:
    """The test's SFU-side crypto: decrypts alice's frames/packets with greenroom, re-encrypts them."""

    def __init__(self, key: bytes) -> None:
        ring = e2ee.KeyRing.empty(e2ee.KeyOptions()).with_material(key, 0)
        self.ring = ring
        self.decryptors: dict[int, FrameDecryptor] = {}
        self.encryptors: dict[int, FrameEncryptor] = {}
        self.captured: dict[str, list[dict[str, str]]] = {}
        self.counts: dict[str, int] = {"decrypted": 0, "undecryptable": 0, "reencrypted": 0, "clear": 0}
        self.data: list[dict[str, str]] = []

    def frame(self, frame: rtp_forward.EncodedFrame) -> rtp_forward.EncodedFrame | None:
        decryptor = self.decryptors.get(frame.ssrc, FrameDecryptor(self.ring))
        decryptor, outcome = decryptor.decrypt(frame.data, frame.mime_type)
        self.decryptors[frame.ssrc] = decryptor
        if outcome.frame is None:
            self.counts["undecryptable"] += 1
            return None
        self.counts["decrypted"] += 1
        kept = self.captured.setdefault(frame.mime_type, [])
        if len(kept) < KEEP_FRAMES:
            kept.append({"encrypted": _b64(frame.data), "clear": _b64(outcome.frame)})
        encryptor = self.encryptors.get(frame.ssrc, FrameEncryptor(self.ring))
        encryptor, sealed = encryptor.encrypt(outcome.frame, frame.mime_type)
        self.encryptors[frame.ssrc] = encryptor
        assert sealed.frame is not None
        assert sealed.frame != frame.data
        self.counts["reencrypted"] += 1
        return replace(frame, data=sealed.frame)

    def packet(self, packet: DataPacket) -> DataPacket | None:
        value = packet.value
        if not isinstance(value, EncryptedPacket):
            self.counts["clear"] += 1
            return packet
        opened = e2ee.open_packet(value, self.ring)
        assert opened is not None
        if not isinstance(opened.value, UserPacket):
            self.counts["undecryptable"] += 1
            return None
        self.data.append(
            {"wire": _b64(value.encrypted_value), "iv": _b64(value.iv), "payload": _b64(opened.value.payload)}
        )
        changed = replace(opened.value, payload=opened.value.payload + b"|via greenroom")
        sealed = e2ee.seal_packet(changed, self.ring)
        assert sealed is not None
        return replace(packet, value=sealed)


@contextlib.contextmanager
def _recrypting(recrypter: Recrypter) -> Any:
    """Patch the in-process server: frames pushed to a subscriber, packets routed, go through recrypter."""
    push = rtp_forward.ForwardedTrack.push
    route = server_room.Room.route

    def recrypt_push(self: rtp_forward.ForwardedTrack, frame: rtp_forward.EncodedFrame) -> None:
        out = recrypter.frame(frame)
        if out is not None:
            push(self, out)

    def recrypt_route(self: server_room.Room, sender: Any, packet: DataPacket, *, reliable: bool) -> Any:
        out = recrypter.packet(packet)
        if out is None:
            return server_room.Dropped("test: not decryptable")
        return route(self, sender, out, reliable=reliable)

    rtp_forward.ForwardedTrack.push = recrypt_push  # type: ignore[method-assign]
    server_room.Room.route = recrypt_route  # type: ignore[method-assign]
    try:
        yield
    finally:
        rtp_forward.ForwardedTrack.push = push  # type: ignore[method-assign]
        server_room.Room.route = route  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def _server() -> AsyncIterator[tuple[DevServer, list[str]]]:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    attempts = forbid_decoders()
    async with DevServer(ServerConfig(bind=HOST_IP, port=0)) as server:
        yield server, attempts


async def official_through_greenroom_crypto(video_codec: str = "VP8") -> dict[str, Any]:
    """alice (official, E2EE) publishes a tone, colours and data; bob (official, same key) gets them only
    through greenroom's decryption and re-encryption."""
    encryption = {"encryption": {"shared_key": _b64(SHARED_KEY)}, **V0}
    recrypter = Recrypter(SHARED_KEY)
    async with _server() as (server, attempts), contextlib.AsyncExitStack() as stack:
        stack.enter_context(_recrypting(recrypter))
        alice, bob = PeerProcess("livekit", "alice"), PeerProcess("livekit", "bob")
        for peer in (alice, bob):
            await peer.start()
            stack.push_async_callback(peer.stop)
        await alice.call("connect", url=server.url, token=server.mint_token("alice", "r"), options=encryption)
        await bob.call("connect", url=server.url, token=server.mint_token("bob", "r"), options=encryption)
        tone = await alice.call("publish_tone", frequencies=[440.0, 660.0], seconds=1.2, lead=0.5)
        await bob.call("listen_audio", identity="alice", timeout=15)
        colours = await alice.call(
            "publish_colours",
            colours=[COLOURS["red"], COLOURS["green"], COLOURS["blue"]],
            seconds=1.5,
            width=64,
            height=48,
            codec=video_codec,
        )
        await bob.call("watch_video", identity="alice", timeout=15)
        for index in range(3):
            await alice.send_data(f"secret-{index}".encode(), topic="e2ee")

        def windows() -> list[dict[str, Any]]:
            return [e for e in bob.received("audio_window") if e["sid"] == tone["sid"]]

        def seen() -> list[str]:
            names: list[str] = []
            for e in bob.received("video_frame"):
                if e["sid"] == colours["sid"] and (not names or names[-1] != _colour(e["rgb"])):
                    names.append(_colour(e["rgb"]))
            return names

        heard: Callable[[], list[float]] = lambda: _heard(windows())  # noqa: E731
        await wait_until(
            lambda: heard()[-1:] == [660.0], timeout=20, what=lambda: f"bob to hear 660 Hz ({heard()})"
        )
        await wait_until(
            lambda: seen()[-1:] == ["blue"], timeout=20, what=lambda: f"bob to see blue ({seen()})"
        )
        await wait_until(lambda: len(bob.received("data_received")) >= 3, timeout=10, what="bob's 3 packets")
        cryptors = await bob.call("e2ee", call="frame_cryptors")
        return {
            "heard": heard(),
            "seen": seen(),
            "data_at_bob": [base64.b64decode(e["data"]).decode() for e in bob.received("data_received")],
            "counts": recrypter.counts,
            "captured": recrypter.captured,
            "data": recrypter.data,
            "states_at_bob": [(e["identity"], e["state"]) for e in bob.received("e2ee_state_changed")],
            "states_at_alice": [(e["identity"], e["state"]) for e in alice.received("e2ee_state_changed")],
            "encryption_status_at_bob": [
                (e["identity"], e["encrypted"]) for e in bob.received("participant_encryption_status_changed")
            ],
            "cryptors_at_bob": cryptors,
            "decoders": attempts,
        }


# -- greenroom's own client against the official SDK (no re-encrypting server) ------------------------------


async def _frames_of(tap: rtp_forward.RtpTap, count: int) -> list[bytes]:
    """The next ``count`` frames the server taps (as they arrived: encrypted)."""
    seen: list[bytes] = []
    remove = tap.add_listener(lambda frame: seen.append(frame.data))
    try:
        await wait_until(lambda: len(seen) >= count, timeout=5, what=f"{count} tapped frames")
    finally:
        remove()
    return seen


def _encryption(key: bytes, **options: Any) -> dict[str, Any]:
    return {"encryption": {"shared_key": _b64(key), **options}, **V0}


def _windows(peer: PeerProcess, sid: str, since: float = 0.0) -> list[dict[str, Any]]:
    return [e for e in peer.received("audio_window") if e["sid"] == sid and e["t"] >= since]


def _states(peer: PeerProcess) -> list[tuple[str, int]]:
    return [(e["identity"], e["state"]) for e in peer.received("e2ee_state_changed")]


async def greenroom_and_official_both_ways() -> dict[str, Any]:
    """alice (official) and bob (greenroom), one shared key: each hears the other's tone and reads the
    other's data; the server only ever forwards LiveKit-encrypted frames."""
    key = b"both-ways-key"
    async with _server() as (server, attempts), contextlib.AsyncExitStack() as stack:
        alice, bob = PeerProcess("livekit", "alice"), PeerProcess("greenroom", "bob")
        for peer in (alice, bob):
            await peer.start()
            stack.push_async_callback(peer.stop)
        await alice.call(
            "connect", url=server.url, token=server.mint_token("alice", "r"), options=_encryption(key)
        )
        await bob.call(
            "connect", url=server.url, token=server.mint_token("bob", "r"), options=_encryption(key)
        )
        official = await alice.call("publish_tone", frequencies=[440.0], seconds=30.0, lead=0.3)
        ours = await bob.call("publish_tone", frequencies=[660.0], seconds=30.0, lead=0.3)
        await bob.call("listen_audio", identity="alice", timeout=15)
        await alice.call("listen_audio", identity="bob", timeout=15)
        await wait_until(
            lambda: (
                _heard(_windows(bob, official["sid"]))[-1:] == [440.0]
                and _heard(_windows(alice, ours["sid"]))[-1:] == [660.0]
            ),
            timeout=20,
            what=lambda: (
                f"both tones (bob heard {_heard(_windows(bob, official['sid']))}, "
                f"alice heard {_heard(_windows(alice, ours['sid']))})"
            ),
        )
        await alice.send_data(b"official to greenroom", topic="e2ee")
        await bob.send_data(b"greenroom to official", topic="e2ee")
        await wait_until(
            lambda: bob.received("data_received") and alice.received("data_received"), timeout=10, what="data"
        )
        room = server.rooms["r"]
        trailers: dict[str, list[str]] = {}
        for identity, published in (("alice", official), ("bob", ours)):
            session = server.session_of(room, identity)
            assert session is not None
            seen = await _frames_of(session.publications[published["sid"]].tap, 10)
            trailers[identity] = sorted({frame[-2:].hex() for frame in seen})
        return {
            "bob_heard": _heard(_windows(bob, official["sid"])),
            "alice_heard": _heard(_windows(alice, ours["sid"])),
            "data_at_bob": [base64.b64decode(e["data"]).decode() for e in bob.received("data_received")],
            "data_at_alice": [base64.b64decode(e["data"]).decode() for e in alice.received("data_received")],
            "trailers": trailers,
            "states_at_bob": _states(bob),
            "states_at_alice": _states(alice),
            "status_at_bob": [
                (e["identity"], e["encrypted"]) for e in bob.received("participant_encryption_status_changed")
            ],
            "status_at_alice": [
                (e["identity"], e["encrypted"])
                for e in alice.received("participant_encryption_status_changed")
            ],
            "cryptors_at_bob": await bob.call("e2ee", call="frame_cryptors"),
            "decoders": attempts,
        }


async def wrong_key_then_right_key_then_ratchet() -> dict[str, Any]:
    """alice (official) publishes a tone; bob (greenroom) and carol (official) start with a wrong key
    (failure tolerance 3, ratchet window 2): both drop alice's frames and report the same states; the right
    key set late brings the tone; alice ratchets her key and both follow."""
    key = b"the-right-key"
    wrong = _encryption(b"a-wrong-key", failure_tolerance=3, ratchet_window_size=2)
    async with _server() as (server, attempts), contextlib.AsyncExitStack() as stack:
        alice = PeerProcess("livekit", "alice")
        bob, carol = PeerProcess("greenroom", "bob"), PeerProcess("livekit", "carol")
        for peer in (alice, bob, carol):
            await peer.start()
            stack.push_async_callback(peer.stop)
        await alice.call(
            "connect", url=server.url, token=server.mint_token("alice", "r"), options=_encryption(key)
        )
        for peer in (bob, carol):
            await peer.call(
                "connect", url=server.url, token=server.mint_token(peer.label, "r"), options=wrong
            )
        published = await alice.call("publish_tone", frequencies=[440.0], seconds=60.0, lead=0.0)
        sid = published["sid"]
        for peer in (bob, carol):
            await peer.call("listen_audio", identity="alice", timeout=15)
        failed = ("alice", 3)
        await wait_until(
            lambda: failed in _states(bob) and failed in _states(carol) and len(_windows(bob, sid)) >= 20,
            timeout=20,
            what=lambda: f"DECRYPTION_FAILED at both (bob {_states(bob)}, carol {_states(carol)})",
        )
        wrong_phase = {p.label: _windows(p, sid) for p in (bob, carol)}
        mark = time.monotonic()
        for peer in (bob, carol):
            await peer.call("e2ee", call="set_shared_key", key=_b64(key), index=0)
        await wait_until(
            lambda: all(_heard(_windows(p, sid, mark))[-1:] == [440.0] for p in (bob, carol)),
            timeout=20,
            what="the tone at bob and carol once the right key is set",
        )
        before_ratchet = {p.label: len(_states(p)) for p in (bob, carol)}
        ratcheted = await alice.call("e2ee", call="ratchet_shared_key", index=0)
        await wait_until(
            lambda: all(("alice", 5) in _states(p)[before_ratchet[p.label] :] for p in (bob, carol)),
            timeout=20,
            what=lambda: f"KEY_RATCHETED at both (bob {_states(bob)}, carol {_states(carol)})",
        )
        mark = time.monotonic()
        await wait_until(
            lambda: all(len(_windows(p, sid, mark)) >= 10 for p in (bob, carol)), timeout=10, what="1 s more"
        )
        exported = {p.label: await p.call("e2ee", call="export_shared_key", index=0) for p in (bob, carol)}
        return {
            "states": {p.label: _states(p) for p in (bob, carol)},
            "wrong_phase_loud": {label: sum(w["rms"] > 500 for w in ws) for label, ws in wrong_phase.items()},
            "wrong_phase_windows": {label: len(ws) for label, ws in wrong_phase.items()},
            "after_ratchet_loud": {
                p.label: sum(w["rms"] > 500 for w in _windows(p, sid, mark)) for p in (bob, carol)
            },
            "ratcheted": ratcheted,
            "exported": exported,
            "decoders": attempts,
        }


async def per_participant_keys_and_video() -> dict[str, Any]:
    """Per-participant keys: alice (official) and bob (greenroom) each encrypt with their own key; carol
    (official) and bob start without alice's key (MISSING_KEY at both), then get it. Video both ways."""
    keys = {"alice": b"alice-own-key", "bob": b"bob-own-key"}
    per_participant = {"encryption": {"shared_key": None}, **V0}
    async with _server() as (server, attempts), contextlib.AsyncExitStack() as stack:
        alice, carol = PeerProcess("livekit", "alice"), PeerProcess("livekit", "carol")
        bob = PeerProcess("greenroom", "bob")
        for peer in (alice, bob, carol):
            await peer.start()
            stack.push_async_callback(peer.stop)
            token = server.mint_token(peer.label, "r")
            await peer.call("connect", url=server.url, token=token, options=per_participant)
        for peer, own in ((alice, "alice"), (bob, "bob")):
            await peer.call("e2ee", call="set_key", identity=own, key=_b64(keys[own]), index=0)
        await alice.call("e2ee", call="set_key", identity="bob", key=_b64(keys["bob"]), index=0)
        colours = [COLOURS["red"], COLOURS["green"], COLOURS["blue"]]
        official = await alice.call("publish_colours", colours=colours * 20, seconds=0.5, width=64, height=48)
        ours = await bob.call("publish_colours", colours=colours * 20, seconds=0.5, width=64, height=48)
        for peer in (bob, carol):
            await peer.call("watch_video", identity="alice", timeout=15)
        await alice.call("watch_video", identity="bob", timeout=15)
        missing = ("alice", 4)
        await wait_until(
            lambda: missing in _states(bob) and missing in _states(carol),
            timeout=20,
            what=lambda: f"MISSING_KEY at both (bob {_states(bob)}, carol {_states(carol)})",
        )
        for peer in (bob, carol):
            await peer.call("e2ee", call="set_key", identity="alice", key=_b64(keys["alice"]), index=0)

        def colours_seen(peer: PeerProcess, sid: str) -> set[str]:
            return {_colour(e["rgb"]) for e in peer.received("video_frame") if e["sid"] == sid}

        everyone = {"red", "green", "blue"}
        await wait_until(
            lambda: (
                colours_seen(bob, official["sid"]) >= everyone
                and colours_seen(carol, official["sid"]) >= everyone
                and colours_seen(alice, ours["sid"]) >= everyone
            ),
            timeout=30,
            what=lambda: (
                f"every colour everywhere (bob {colours_seen(bob, official['sid'])}, carol "
                f"{colours_seen(carol, official['sid'])}, alice {colours_seen(alice, ours['sid'])})"
            ),
        )
        await bob.send_data(b"to alice, under bob's key", topic="e2ee")
        await wait_until(lambda: alice.received("data_received"), timeout=10, what="alice's packet")
        exported = await bob.call("e2ee", call="export_key", identity="alice", index=0)
        return {
            "states": {p.label: _states(p) for p in (alice, bob, carol)},
            "data_at_alice": [base64.b64decode(e["data"]).decode() for e in alice.received("data_received")],
            "exported_at_bob": base64.b64decode(exported).decode(),
            "decoders": attempts,
        }
