"""The messages and events of end-to-end encryption: every key change is a message (frozen, immutable).

How keys flow (docs/architecture.md, "End-to-end encryption"):

* the facade's ``KeyProvider``/``FrameCryptor``/``E2EEManager`` → RoomActor: :class:`KeyCommand`,
  :class:`CryptorCommand`, :class:`SetE2eeEnabled`, :class:`ListCryptors` (each with a ``Reply``);
* RoomActor (the one owner of the :class:`~greenroom.codecs.e2ee.KeyStore`) → each ParticipantActor
  concerned → its TrackActors: :class:`KeysChanged` (the participant's immutable ring) and
  :class:`CryptorControl`; each TrackActor installs what it owns (ring, key index, enabled) into its
  publication's cryptor on the media path, which reads that snapshot per frame (no mailbox hop per frame);
* the media path → RoomActor → ParticipantActor → TrackActor: :class:`CryptorReport` (a state change),
  which the TrackActor emits as :class:`EncryptionStateChanged`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from greenroom.codecs.e2ee import EncryptionState, KeyOptions, KeyRing

if TYPE_CHECKING:
    from greenroom.actors.messages import Reply

__all__ = [
    "NO_KEYS",
    "CryptorCommand",
    "CryptorControl",
    "CryptorInfo",
    "CryptorReport",
    "E2eeConfig",
    "EncryptionStateChanged",
    "EncryptionStatusChanged",
    "KeyCommand",
    "KeyOp",
    "Keys",
    "KeysChanged",
    "ListCryptors",
    "SetE2eeEnabled",
]


@dataclass(frozen=True, slots=True)
class E2eeConfig:
    """``RoomOptions.encryption`` as the RoomActor gets it.

    Attributes:
        options: salt, derivation, ring size, ratchet window, failure tolerance.
        shared_key: set at index 0 when the room connects (shared-key mode); ``None``: per-participant keys.
        data: whether data packets are encrypted too (``encryption``; the deprecated ``e2ee`` is media only).
    """

    options: KeyOptions
    shared_key: bytes | None = None
    data: bool = True


class KeyOp(enum.Enum):
    """What a :class:`KeyCommand` does (the ``KeyProvider`` method of the same name)."""

    SET_SHARED_KEY = "set_shared_key"
    RATCHET_SHARED_KEY = "ratchet_shared_key"
    EXPORT_SHARED_KEY = "export_shared_key"
    SET_KEY = "set_key"
    RATCHET_KEY = "ratchet_key"
    EXPORT_KEY = "export_key"


@dataclass(frozen=True, slots=True)
class Keys:
    """What a participant's TrackActors need: whether E2EE is on, and the participant's ring."""

    enabled: bool = False
    ring: KeyRing | None = None


NO_KEYS = Keys()
"""E2EE off (the default of every actor)."""


@dataclass(frozen=True, slots=True)
class KeysChanged:
    """RoomActor → ParticipantActor → TrackActors: this participant's keys now."""

    keys: Keys


@dataclass(frozen=True, slots=True)
class CryptorControl:
    """RoomActor → ParticipantActor → TrackActor: ``FrameCryptor.set_key_index`` / ``set_enabled``."""

    track_sid: str
    key_index: int | None = None
    enabled: bool | None = None


@dataclass(frozen=True, slots=True)
class CryptorReport:
    """Media path → RoomActor → ParticipantActor → TrackActor: the cryptor of ``track_sid`` changed state."""

    track_sid: str
    state: EncryptionState


@dataclass(frozen=True, slots=True)
class CryptorInfo:
    """One frame cryptor as ``E2EEManager.frame_cryptors()`` lists it."""

    participant_identity: str
    track_sid: str
    key_index: int
    enabled: bool


@dataclass(frozen=True, slots=True)
class KeyCommand:
    """Facade → RoomActor: one ``KeyProvider`` call; answered with the material (``b""`` for a set)."""

    op: KeyOp
    identity: str
    material: bytes
    index: int
    reply: Reply[bytes]


@dataclass(frozen=True, slots=True)
class CryptorCommand:
    """Facade → RoomActor: ``FrameCryptor.set_key_index``/``set_enabled`` for one track of one participant."""

    identity: str
    track_sid: str
    reply: Reply[None]
    key_index: int | None = None
    enabled: bool | None = None


@dataclass(frozen=True, slots=True)
class SetE2eeEnabled:
    """Facade → RoomActor: ``E2EEManager.set_enabled``: every cryptor of the room on or off."""

    enabled: bool
    reply: Reply[None]


@dataclass(frozen=True, slots=True)
class ListCryptors:
    """Facade → RoomActor: ``E2EEManager.frame_cryptors()``; answered with a tuple of :class:`CryptorInfo`."""

    reply: Reply[tuple[CryptorInfo, ...]]


@dataclass(frozen=True, slots=True)
class EncryptionStateChanged:
    """Event: a cryptor of ``identity``'s track changed state (``e2ee_state_changed``)."""

    identity: str
    state: EncryptionState


@dataclass(frozen=True, slots=True)
class EncryptionStatusChanged:
    """Event: whether all ``identity`` publishes is encrypted (``participant_encryption_status_changed``)."""

    identity: str
    encrypted: bool
