"""The RoomActor's end-to-end encryption: the key store, key commands, and data packets sealed and opened.

A mixin of :class:`~greenroom.actors.room.RoomActor` (same actor, same state). The RoomActor is the one owner
of the room's :class:`~greenroom.codecs.e2ee.KeyStore`: every ``KeyProvider`` call is a
:class:`~greenroom.actors.e2ee_messages.KeyCommand` in its mailbox; after each change it tells every
ParticipantActor concerned its new :class:`~greenroom.actors.e2ee_messages.Keys` (a shared-key change
concerns all of them), and they tell their TrackActors, which install the ring into their publication's
cryptor on the media path. Data packets are sealed here on the way out (the local participant's ring, its
latest key index: rust-sdks ``get_latest_key_index``) and opened here on the way in (the sender's ring, by
the packet's outer ``participant_identity``); an auto-ratchet that opened one is kept in the store for that
participant, as native clones the shared handler per participant. A packet that does not open is dropped
(counted); a clear packet is still accepted and marks its sender's data as not encrypted (§5.11).
"""

from __future__ import annotations

import logging
import typing
from dataclasses import replace
from typing import Any, assert_never

from greenroom.actors.e2ee_messages import (
    CryptorCommand,
    CryptorControl,
    CryptorInfo,
    CryptorReport,
    E2eeConfig,
    KeyCommand,
    KeyOp,
    Keys,
    KeysChanged,
    ListCryptors,
    SetE2eeEnabled,
)
from greenroom.actors.media import MediaRouter
from greenroom.actors.roster import LOCAL, Roster
from greenroom.codecs import e2ee, packets
from greenroom.codecs.e2ee import KeyOptions, KeyStore
from greenroom.runtime.e2ee_media import EncryptingEncoder, install_decryption, route_keyframes
from greenroom.runtime.rtp_forward import receiver_for_track

__all__ = ["E2eeHandlers", "E2eeMessage"]

_log = logging.getLogger("greenroom.actors.room")

_ENCRYPTABLE = typing.get_args(packets.EncryptableValue)

E2eeMessage = KeyCommand | CryptorCommand | SetE2eeEnabled | ListCryptors | CryptorReport


class E2eeHandlers:
    """Keys, cryptors and sealed data (mixed into the RoomActor, whose state it is)."""

    _media: MediaRouter
    _roster: Roster
    actor_ref: Any

    def _tell_child(self, key: str, message: Any) -> None:
        raise NotImplementedError

    def _init_e2ee(self) -> None:
        self._e2ee: E2eeConfig | None = None
        self._keys = KeyStore(KeyOptions())
        self._e2ee_enabled = False
        #: counters: data packets sealed, opened, and dropped because they did not open.
        self.e2ee_counts = {"sealed": 0, "opened": 0, "undecryptable": 0}

    def _configure_e2ee(self, config: E2eeConfig | None) -> None:
        """``Room.connect``: the options, and the shared key at index 0 (as the official SDKs)."""
        self._e2ee = config
        self._e2ee_enabled = config is not None
        if config is None:
            return
        ref = self.actor_ref
        self._media.encrypt_local = True
        self._media.cryptor_reports = lambda sid, state: ref.tell(CryptorReport(sid, state))
        self._keys = KeyStore(config.options, shared_mode=config.shared_key is not None)
        if config.shared_key is not None:
            self._keys = self._keys.with_shared_key(config.shared_key, 0)

    def _encrypting(self) -> bool:
        """Whether local tracks are published encrypted (``AddTrackRequest.encryption = GCM``)."""
        return self._e2ee is not None

    def keys_of(self, identity: str) -> Keys:
        """What ``identity``'s actors install (read by the start of a ParticipantActor, too)."""
        return Keys(self._e2ee_enabled, self._keys.ring_for(identity))

    # -- commands ------------------------------------------------------------------------------------------

    def _on_e2ee(self, message: E2eeMessage) -> None:
        match message:
            case KeyCommand():
                self._on_key_command(message)
            case CryptorCommand(identity=identity, track_sid=sid, key_index=index, enabled=enabled):
                self._tell_identity(identity, CryptorControl(sid, index, enabled))
                message.reply.ok(None)
            case SetE2eeEnabled(enabled=enabled):
                self._e2ee_enabled = enabled and self._e2ee is not None
                self._broadcast_keys()
                message.reply.ok(None)
            case ListCryptors(reply=reply):
                reply.ok(self._cryptors())
            case CryptorReport(track_sid=sid):
                owner = self._roster.owner_of(sid)
                if owner is None and self._media.send_cryptor(sid) is not None:
                    owner = LOCAL
                if owner is not None:
                    self._tell_child(owner, message)
            case _:
                assert_never(message)

    def _on_key_command(self, message: KeyCommand) -> None:
        store, index, identity = self._keys, message.index, message.identity
        material = b""
        match message.op:
            case KeyOp.SET_SHARED_KEY:
                store = store.with_shared_key(message.material, index)
            case KeyOp.RATCHET_SHARED_KEY:
                store, material = store.ratchet_shared_key(index)
            case KeyOp.EXPORT_SHARED_KEY:
                material = store.export_shared_key(index)
            case KeyOp.SET_KEY:
                store = store.with_key(identity, message.material, index)
            case KeyOp.RATCHET_KEY:
                store, material = store.ratchet_key(identity, index)
            case KeyOp.EXPORT_KEY:
                material = store.export_key(identity, index)
            case _:
                assert_never(message.op)
        if store is not self._keys:
            self._keys = store
            if message.op in (KeyOp.SET_KEY, KeyOp.RATCHET_KEY):
                self._tell_identity(identity, KeysChanged(self.keys_of(identity)))
            else:
                self._broadcast_keys()
        message.reply.ok(material)

    def _broadcast_keys(self) -> None:
        for key in self._roster.keys():  # noqa: SIM118 - a Roster, not a dict
            self._tell_child(key, KeysChanged(self.keys_of(self._roster.identity_of(key))))

    def _tell_identity(self, identity: str, message: Any) -> None:
        local = self._roster.local
        key = LOCAL if local is not None and local.identity == identity else self._roster.key_of(identity)
        if key is not None:
            self._tell_child(key, message)

    def _cryptors(self) -> tuple[CryptorInfo, ...]:
        found: list[CryptorInfo] = []
        for sid, local, key_index, enabled in self._media.cryptors():
            owner = LOCAL if local else self._roster.owner_of(sid)
            if owner is not None:
                found.append(CryptorInfo(self._roster.identity_of(owner), sid, key_index, enabled))
        return tuple(found)

    # -- media: a remote track's frames are decrypted before aiortc decodes them --------------------------

    def _install_decryption(self, pc: Any, track_sid: str, track: Any, encrypted: bool) -> None:
        """Before the track's media is attached: its receiver decrypts (only a track published encrypted)."""
        if self._e2ee is None or not encrypted:
            return
        cryptor = self._media.add_receive_cryptor(track_sid, self._sif_trailer())
        owner = self._roster.owner_of(track_sid)
        identity = self._roster.identity_of(owner) if owner is not None else ""
        cryptor.install(ring=self._keys.ring_for(identity), enabled=self._e2ee_enabled)
        install_decryption(receiver_for_track(pc, track), cryptor)

    def _route_keyframes(self, pc: Any, gate: Any) -> None:
        """A local encrypted video track: its subscribers' PLIs reach the encoder that encodes it here."""
        if not isinstance(gate.transform, EncryptingEncoder):
            return
        for sender in pc.getSenders():
            if sender.track is gate and not route_keyframes(sender, gate.transform):
                _log.warning("keyframe requests for %s cannot reach its encoder (aiortc version?)", gate.id)

    def _sif_trailer(self) -> bytes:
        return b""

    # -- data packets ---------------------------------------------------------------------------------------

    def _seal(self, packet: packets.DataPacket, identity: str) -> packets.DataPacket | None:
        """The packet as it goes out: sealed when data encryption is on and its variant is encryptable."""
        config = self._e2ee
        if config is None or not config.data or not self._e2ee_enabled:
            return packet
        value = packet.value
        if not isinstance(value, _ENCRYPTABLE):
            return packet  # sip_dtmf, transcription … stay in clear (§5.12)
        ring = self._keys.ring_for(identity)
        sealed = None if ring is None else e2ee.seal_packet(value, ring)
        if sealed is None:
            return None  # no key: nothing is sent (the official SDK fails the publish too)
        self.e2ee_counts["sealed"] += 1
        return replace(packet, value=sealed)

    def _open(self, packet: packets.DataPacket) -> packets.DataPacket | None:
        """An ``EncryptedPacket`` opened with its sender's ring (``None``: drop it)."""
        value = packet.value
        assert isinstance(value, packets.EncryptedPacket)
        identity = packet.participant_identity
        if self._e2ee is None:
            self.e2ee_counts["undecryptable"] += 1
            return None
        opened = e2ee.open_packet(value, self._keys.ring_for(identity))
        if opened is None or opened.value is None:
            self.e2ee_counts["undecryptable"] += 1
            _log.debug("an encrypted packet from %r did not open", identity)
            return None
        if opened.ring is not self._keys.ring_for(identity):
            self._keys = self._keys.with_ring(identity, opened.ring)
        self.e2ee_counts["opened"] += 1
        return replace(packet, value=opened.value)
