"""What a TrackActor and a ParticipantActor own of end-to-end encryption.

* :class:`TrackCryptor` (one per TrackActor): the publication's cryptor settings — the participant's
  :class:`~greenroom.actors.e2ee_messages.Keys`, the key index (``FrameCryptor.set_key_index``; a sender
  encrypts with it, default 0 as native, R9) and ``enabled`` — and its last ``EncryptionState``. It installs
  them into the publication's cryptor on the media path (which reads that immutable snapshot per frame)
  whenever they change, and emits each state change the media path reports as ``e2ee_state_changed``. The
  media-path cryptor outlives the actor, so a restarted TrackActor takes its key index, ``enabled`` and
  state back from it: nothing is lost and no state is emitted twice.
* :class:`EncryptionStatus` (one per ParticipantActor): whether everything the participant publishes is
  encrypted — every track published with an encryption type and no clear data packet seen (rust-sdks
  ``update_encryption_status``/``update_data_encryption_status``); emitted on change as
  ``participant_encryption_status_changed``.
"""

from __future__ import annotations

from typing import assert_never

from greenroom.actors.e2ee_messages import (
    CryptorControl,
    CryptorReport,
    EncryptionStateChanged,
    EncryptionStatusChanged,
    Keys,
    KeysChanged,
)
from greenroom.actors.media import MediaRouter
from greenroom.actors.messages import EventSink
from greenroom.codecs.e2ee import EncryptionState
from greenroom.codecs.models import TrackInfo
from greenroom.runtime.e2ee_media import ReceiveCryptor, SendCryptor

__all__ = ["EncryptionStatus", "TrackCryptor"]


class TrackCryptor:
    """One publication's cryptor settings and state (see the module docstring)."""

    def __init__(
        self, identity: str, sid: str, *, local: bool, keys: Keys, media: MediaRouter | None, sink: EventSink
    ) -> None:
        self._identity, self._sid, self._local = identity, sid, local
        self._media, self._sink = media, sink
        self.keys = keys
        self.key_index = 0
        self.enabled = True
        self.state = EncryptionState.NEW
        cryptor = self._cryptor()
        if isinstance(cryptor, SendCryptor):  # a restart: the media path kept what the last one installed
            e = cryptor.encryptor
            self.key_index, self.enabled, self.state = e.key_index, e.enabled, e.state
        elif cryptor is not None:
            self.enabled, self.state = cryptor.decryptor.enabled, cryptor.decryptor.state
        self.install()

    def _cryptor(self) -> SendCryptor | ReceiveCryptor | None:
        if self._media is None:
            return None
        if self._local:
            return self._media.send_cryptor(self._sid)
        return self._media.receive_cryptor(self._sid)

    def install(self) -> None:
        """Put the current settings into the media path's cryptor (if the publication has one yet)."""
        cryptor = self._cryptor()
        enabled = self.enabled and self.keys.enabled
        if isinstance(cryptor, SendCryptor):
            cryptor.install(ring=self.keys.ring, key_index=self.key_index, enabled=enabled)
        elif cryptor is not None:
            cryptor.install(ring=self.keys.ring, enabled=enabled)

    def on(self, message: KeysChanged | CryptorControl | CryptorReport) -> None:
        """One E2EE message for the TrackActor."""
        match message:
            case KeysChanged(keys=keys):
                self.keys_changed(keys)
            case CryptorControl(key_index=key_index, enabled=enabled):
                self.control(key_index, enabled)
            case CryptorReport(state=state):
                self.reported(state)
            case _:
                assert_never(message)

    def keys_changed(self, keys: Keys) -> None:
        """The participant's keys changed (set, ratcheted, E2EE switched on or off)."""
        self.keys = keys
        self.install()

    def control(self, key_index: int | None, enabled: bool | None) -> None:
        """``FrameCryptor.set_key_index`` / ``set_enabled``."""
        if key_index is not None:
            self.key_index = key_index
        if enabled is not None:
            self.enabled = enabled
        self.install()

    def reported(self, state: EncryptionState) -> None:
        """The media path's cryptor changed state: emit it (once per change)."""
        if state != self.state:
            self.state = state
            self._sink.emit(EncryptionStateChanged(self._identity, state))


class EncryptionStatus:
    """Whether a participant's tracks and data are all encrypted; emits the changes (only with E2EE on)."""

    def __init__(self, identity: str, sink: EventSink) -> None:
        self._identity, self._sink = identity, sink
        self.encrypted = False
        self._clear_data = False
        self._encrypted_data = False

    def update(self, tracks: list[TrackInfo], *, enabled: bool, data: bool | None = None) -> None:
        """Recompute after the tracks changed or a data packet (``data``: was it encrypted) arrived."""
        if data is False:
            self._clear_data = True
        elif data:
            self._encrypted_data = True
        if not enabled:
            return
        encrypted = (
            (bool(tracks) or self._encrypted_data)
            and all(int(t.encryption) != 0 for t in tracks)
            and not self._clear_data
        )
        if encrypted != self.encrypted:
            self.encrypted = encrypted
            self._sink.emit(EncryptionStatusChanged(self._identity, encrypted))
