"""Tests for what TrackActors and ParticipantActors own of E2EE (``greenroom.actors.track_crypto``): the
settings installed into the media path's cryptor, a restart restoring them from it, the state events, and
the participant's encryption status. Through real actors and media: ``tests/rtc/test_e2ee.py``."""

from __future__ import annotations

import asyncio
from typing import Any

from greenroom.actors.e2ee_messages import (
    CryptorControl,
    CryptorReport,
    EncryptionStateChanged,
    EncryptionStatusChanged,
    Keys,
    KeysChanged,
)
from greenroom.actors.media import MediaRouter
from greenroom.actors.track_crypto import EncryptionStatus, TrackCryptor
from greenroom.codecs.e2ee import EncryptionState, KeyOptions, KeyRing
from greenroom.codecs.models import EncryptionType, TrackInfo, TrackType

RING = KeyRing.empty(KeyOptions()).with_material(b"k", 0)
ON = Keys(True, RING)


class Sink:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def emit(self, event: Any) -> None:
        self.events.append(event)


class Source:
    kind = "audio"


def test_a_local_tracks_settings_reach_its_send_cryptor_and_survive_a_restart() -> None:
    async def go() -> None:
        media, sink = MediaRouter(), Sink()
        cid = media.add_local(Source(), encrypt=True)  # type: ignore[arg-type]
        media.bind_local(cid, "TR_1")
        crypto = TrackCryptor("me", "TR_1", local=True, keys=ON, media=media, sink=sink)
        cryptor = media.send_cryptor("TR_1")
        assert cryptor is not None
        assert cryptor.encryptor.ring is RING
        crypto.on(CryptorControl("TR_1", key_index=2, enabled=False))
        assert (cryptor.encryptor.key_index, cryptor.encryptor.enabled) == (2, False)
        crypto.on(CryptorControl("TR_1", enabled=True))
        crypto.on(CryptorReport("TR_1", EncryptionState.OK))
        crypto.on(CryptorReport("TR_1", EncryptionState.OK))  # no change: no event
        cryptor.encryptor = cryptor.encryptor.__class__(RING, 2, True, EncryptionState.OK)
        again = TrackCryptor("me", "TR_1", local=True, keys=ON, media=media, sink=sink)  # a restart
        assert (again.key_index, again.enabled, again.state) == (2, True, EncryptionState.OK)
        again.on(KeysChanged(Keys(False, RING)))  # E2EE switched off: the cryptor passes frames
        assert not cryptor.encryptor.enabled
        assert sink.events == [EncryptionStateChanged("me", EncryptionState.OK)]

    asyncio.run(go())


def test_a_remote_tracks_ring_is_installed_once_its_receive_cryptor_exists() -> None:
    media, sink = MediaRouter(), Sink()
    crypto = TrackCryptor("alice", "TR_2", local=False, keys=ON, media=media, sink=sink)
    receiving = media.add_receive_cryptor("TR_2")
    assert receiving.decryptor.ring is None
    crypto.install()  # MediaAttached
    assert receiving.decryptor.ring is RING
    receiving.decryptor = receiving.decryptor.__class__(RING, False, b"", EncryptionState.KEY_RATCHETED)
    restored = TrackCryptor("alice", "TR_2", local=False, keys=ON, media=media, sink=sink)
    assert (restored.enabled, restored.state) == (False, EncryptionState.KEY_RATCHETED)
    assert TrackCryptor("x", "TR_3", local=False, keys=ON, media=None, sink=sink).state == EncryptionState.NEW


def track(sid: str, encrypted: bool) -> TrackInfo:
    kind = EncryptionType.GCM if encrypted else EncryptionType.NONE
    return TrackInfo(sid=sid, name="t", type=TrackType.AUDIO, encryption=kind)


def test_the_encryption_status_follows_tracks_and_data() -> None:
    sink = Sink()
    status = EncryptionStatus("alice", sink)
    status.update([], enabled=True)
    status.update([track("TR_1", True)], enabled=True)
    status.update([track("TR_1", True)], enabled=True, data=True)
    status.update([track("TR_1", True), track("TR_2", False)], enabled=True)
    status.update([track("TR_1", True)], enabled=True)
    status.update([track("TR_1", True)], enabled=True, data=False)  # clear data: never encrypted again
    status.update([track("TR_1", True)], enabled=True, data=True)
    assert sink.events == [
        EncryptionStatusChanged("alice", True),
        EncryptionStatusChanged("alice", False),
        EncryptionStatusChanged("alice", True),
        EncryptionStatusChanged("alice", False),
    ]
    off = Sink()
    EncryptionStatus("bob", off).update([track("TR_1", True)], enabled=False)
    assert off.events == []
    data_only = Sink()
    EncryptionStatus("carol", data_only).update([], enabled=True, data=True)
    assert data_only.events == [EncryptionStatusChanged("carol", True)]
