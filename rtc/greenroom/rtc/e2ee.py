"""End-to-end encryption, as ``livekit.rtc`` exposes it: options, the key provider, the manager, cryptors.

Same names, fields, defaults and enum numbers as ``livekit.rtc`` 1.2.1 (``livekit/rtc/e2ee.py``). The calls
are synchronous there (FFI requests) and synchronous here: each is one message to the RoomActor — the one
owner of the room's keys — and a wait for its answer (a key derivation at most, ~30–60 ms), never done on
the runtime loop. Keys travel RoomActor → ParticipantActors → TrackActors → the media path; see
``docs/architecture.md`` ("End-to-end encryption").

``RoomOptions(encryption=E2EEOptions(...))`` turns on media and data encryption (the deprecated ``e2ee``
field: media only). With ``KeyProviderOptions.shared_key`` set, the key is set at index 0 when the room
connects (shared-key mode); without it, keys are per participant (``set_key``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from greenroom.actors.e2ee_messages import (
    CryptorCommand,
    CryptorInfo,
    E2eeConfig,
    KeyCommand,
    KeyOp,
    ListCryptors,
    SetE2eeEnabled,
)
from greenroom.codecs.e2ee import (
    DEFAULT_FAILURE_TOLERANCE,
    DEFAULT_KEY_RING_SIZE,
    DEFAULT_RATCHET_SALT,
    DEFAULT_RATCHET_WINDOW_SIZE,
    EncryptionState,
    KeyDerivationFunction,
    KeyOptions,
    derive,
)
from greenroom.codecs.proto_enum import ProtoEnum

if TYPE_CHECKING:
    from greenroom.rtc._port import RoomPort

__all__ = [
    "DEFAULT_FAILURE_TOLERANCE",
    "DEFAULT_KEY_RING_SIZE",
    "DEFAULT_RATCHET_SALT",
    "DEFAULT_RATCHET_WINDOW_SIZE",
    "E2EEManager",
    "E2EEOptions",
    "EncryptionState",
    "EncryptionType",
    "FrameCryptor",
    "KeyDerivationFunction",
    "KeyProvider",
    "KeyProviderOptions",
]


class EncryptionType(ProtoEnum):
    """The E2EE scheme (``livekit.rtc.EncryptionType``)."""

    NONE = 0
    GCM = 1
    CUSTOM = 2


@dataclass
class KeyProviderOptions:
    """How keys are derived and kept (``livekit.rtc.KeyProviderOptions``; same defaults).

    Attributes:
        shared_key: one key for everybody (set at index 0 on connect); ``None``: per-participant keys.
        ratchet_salt: the salt of every derivation.
        ratchet_window_size: how many ratchet steps a receiver tries when a key fails.
        failure_tolerance: failures before ``DECRYPTION_FAILED`` (−1: never counted, as the official default).
        key_ring_size: key slots per participant.
        key_derivation_function: PBKDF2 (default) or HKDF; not signalled: every participant must agree.
    """

    shared_key: bytes | None = None
    ratchet_salt: bytes = DEFAULT_RATCHET_SALT
    ratchet_window_size: int = DEFAULT_RATCHET_WINDOW_SIZE
    failure_tolerance: int = DEFAULT_FAILURE_TOLERANCE
    key_ring_size: int = DEFAULT_KEY_RING_SIZE
    key_derivation_function: int = KeyDerivationFunction.PBKDF2


@dataclass
class E2EEOptions:
    """``RoomOptions.encryption`` (``livekit.rtc.E2EEOptions``)."""

    key_provider_options: KeyProviderOptions = field(default_factory=KeyProviderOptions)
    encryption_type: int = EncryptionType.GCM


def config_of(options: E2EEOptions | None, *, data: bool) -> E2eeConfig | None:
    """What the RoomActor gets from ``RoomOptions.encryption`` (``data``) or ``.e2ee`` (media only)."""
    if options is None or options.encryption_type == EncryptionType.NONE:
        return None
    p = options.key_provider_options
    key_options = KeyOptions(
        salt=p.ratchet_salt,
        kdf=KeyDerivationFunction(p.key_derivation_function),
        ring_size=p.key_ring_size,
        ratchet_window=p.ratchet_window_size,
        failure_tolerance=p.failure_tolerance,
    )
    if p.shared_key is not None:
        derive(p.shared_key, key_options.salt, key_options.kdf)  # here, not on the runtime loop
    return E2eeConfig(key_options, p.shared_key, data)


class KeyProvider:
    """The room's keys (``livekit.rtc.KeyProvider``): every call is a message to the RoomActor."""

    def __init__(self, port: RoomPort, options: KeyProviderOptions) -> None:
        self._port = port
        self._options = options

    @property
    def options(self) -> KeyProviderOptions:
        """The options the room connected with."""
        return self._options

    def _call(self, op: KeyOp, identity: str, key: bytes, index: int) -> bytes:
        if key:  # derive on the caller's thread; the RoomActor then finds it memoised
            kdf = KeyDerivationFunction(self._options.key_derivation_function)
            derive(key, self._options.ratchet_salt, kdf)
        result: bytes = self._port.ask_blocking(lambda reply: KeyCommand(op, identity, key, index, reply))
        return result

    def set_shared_key(self, key: bytes, key_index: int) -> None:
        """Set the shared key at ``key_index`` (shared-key mode only, as native)."""
        self._call(KeyOp.SET_SHARED_KEY, "", key, key_index)

    def export_shared_key(self, key_index: int) -> bytes:
        """The shared key material at ``key_index`` (``b""`` if none)."""
        return self._call(KeyOp.EXPORT_SHARED_KEY, "", b"", key_index)

    def ratchet_shared_key(self, key_index: int) -> bytes:
        """Ratchet the shared key at ``key_index``; returns the new material (``b""`` if none was set)."""
        return self._call(KeyOp.RATCHET_SHARED_KEY, "", b"", key_index)

    def set_key(self, participant_identity: str, key: bytes, key_index: int) -> None:
        """Set ``participant_identity``'s key at ``key_index``."""
        self._call(KeyOp.SET_KEY, participant_identity, key, key_index)

    def export_key(self, participant_identity: str, key_index: int) -> bytes:
        """``participant_identity``'s key material at ``key_index`` (``b""`` if none)."""
        return self._call(KeyOp.EXPORT_KEY, participant_identity, b"", key_index)

    def ratchet_key(self, participant_identity: str, key_index: int) -> bytes:
        """Ratchet ``participant_identity``'s key at ``key_index``; returns the new material."""
        return self._call(KeyOp.RATCHET_KEY, participant_identity, b"", key_index)


class FrameCryptor:
    """One track's cryptor (``livekit.rtc.FrameCryptor``): a snapshot, whose setters are messages."""

    def __init__(self, port: RoomPort, info: CryptorInfo) -> None:
        self._port = port
        self._participant_identity = info.participant_identity
        self._track_sid = info.track_sid
        self._key_index = info.key_index
        self._enabled = info.enabled

    @property
    def participant_identity(self) -> str:
        """Whose track."""
        return self._participant_identity

    @property
    def track_sid(self) -> str:
        """Which track."""
        return self._track_sid

    @property
    def key_index(self) -> int:
        """The key index it encrypts with (a sender's; receivers read the index from each frame)."""
        return self._key_index

    @property
    def enabled(self) -> bool:
        """Whether it encrypts/decrypts (a disabled one passes frames through)."""
        return self._enabled

    def set_enabled(self, enabled: bool) -> None:
        """Turn this cryptor on or off."""
        self._enabled = enabled
        self._control(enabled=enabled)

    def set_key_index(self, key_index: int) -> None:
        """Encrypt with the key at ``key_index`` from now on."""
        self._key_index = key_index
        self._control(key_index=key_index)

    def _control(self, **change: Any) -> None:
        identity, sid = self._participant_identity, self._track_sid
        self._port.ask_blocking(lambda reply: CryptorCommand(identity, sid, reply, **change))


class E2EEManager:
    """The room's end-to-end encryption (``livekit.rtc.E2EEManager``; ``Room.e2ee_manager``)."""

    def __init__(self, port: RoomPort, options: E2EEOptions | None) -> None:
        self.options = options
        self._port = port
        self._enabled = options is not None
        self._key_provider = None if options is None else KeyProvider(port, options.key_provider_options)

    @property
    def key_provider(self) -> KeyProvider | None:
        """The key provider (``None`` when the room connected without encryption)."""
        return self._key_provider

    @property
    def enabled(self) -> bool:
        """Whether frames and data are encrypted."""
        return self._enabled

    def set_enabled(self, enabled: bool) -> None:
        """Switch every cryptor of the room on or off."""
        self._enabled = enabled
        self._port.ask_blocking(lambda reply: SetE2eeEnabled(enabled, reply))

    def frame_cryptors(self) -> list[FrameCryptor]:
        """One cryptor per encrypted track (local ones encrypt, remote ones decrypt)."""
        infos: tuple[CryptorInfo, ...] = self._port.ask_blocking(ListCryptors)
        return [FrameCryptor(self._port, info) for info in infos]
