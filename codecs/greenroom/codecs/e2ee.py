"""LiveKit end-to-end encryption, part 1: keys, key rings, the ratchet, and sealed data packets (pure).

Byte-compatible with the official SDKs (``reference/data-e2ee-formats.md`` §5; the native frame cryptor of
webrtc-sdk/webrtc ``api/crypto/frame_crypto_transformer.{h,cc}`` that the Rust/Python SDK runs, and
client-sdk-js ``src/e2ee``). What a user supplies is *key material*; what AES-GCM uses is derived from it:

* **Derivation** (``KeyDerivationFunction``, not signalled on the wire: everybody must agree):
  PBKDF2-HMAC-SHA256(password=material, salt=ratchet salt, 100 000 iterations) — native
  ``DerivePBKDF2KeyFromRawKey`` — or HKDF-SHA256(ikm=material, salt=ratchet salt, info=128 zero bytes) —
  native ``DeriveHkdfSha256FromSecret``. The AES-128 key is 16 bytes of it; a **ratchet step** replaces the
  material by 32 bytes of the same derivation (``ParticipantKeyHandler::RatchetKeyMaterial``). Neither
  function feeds the output length into the derivation, so the 16-byte key is the first half of the 32-byte
  ratchet output: one derivation serves both, and :func:`derive` memoises it (a wrong key makes a receiver
  try ``ratchet_window_size`` steps on every frame; at ~27 ms per PBKDF2 block that must happen once).
* **Key ring** (``ParticipantKeyHandler``): ``key_ring_size`` slots (≤ 0 → 16, > 256 → 256, as native);
  setting a key at index *i* stores slot ``i % size``, makes it the latest index, marks the ring valid and
  clears its failure count. Immutable here: every change returns a new :class:`KeyRing`.
* **Failure tolerance** (native ``DecryptionFailure``): with ``failure_tolerance < 0`` (the Python SDK's
  default) failures are not counted; else the ring turns invalid once more than ``failure_tolerance`` have
  been seen since the last key was set or ratcheted (successes do not reset it — JS differs, R8).
* **Auto-ratchet** on receive (:meth:`KeyRing.open`): if the slot's key fails, up to
  ``ratchet_window_size`` successive materials are tried; the first that opens replaces the slot.
* **Key store** (:class:`KeyStore`, native ``DefaultKeyProviderImpl``): per-participant rings, or one shared
  ring that every participant starts from; a shared-key change is also applied to every participant's ring.
* **Data packets** (§5.12): the encryptable ``DataPacket`` variant is serialized as an
  ``EncryptedPacketPayload``, sealed with AES-128-GCM (12-byte IV, no AAD) and carried as an
  ``EncryptedPacket``. The sender uses the latest key index it set (rust-sdks ``get_latest_key_index``).

Nothing here logs or prints a key: :class:`KeySet` hides its bytes from ``repr``.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Final, Generic, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from greenroom.codecs.errors import CodecError
from greenroom.codecs.packets import (
    EncryptableValue,
    EncryptedPacket,
    EncryptionType,
    decode_encrypted_payload,
    encode_encrypted_payload,
)
from greenroom.codecs.proto_enum import ProtoEnum

__all__ = [
    "AES_KEY_LENGTH",
    "DEFAULT_FAILURE_TOLERANCE",
    "DEFAULT_KEY_RING_SIZE",
    "DEFAULT_RATCHET_SALT",
    "DEFAULT_RATCHET_WINDOW_SIZE",
    "IV_LENGTH",
    "MATERIAL_LENGTH",
    "MAX_KEY_RING_SIZE",
    "PBKDF2_ITERATIONS",
    "TAG_LENGTH",
    "EncryptionState",
    "KeyDerivationFunction",
    "KeyOptions",
    "KeyRing",
    "KeySet",
    "KeyStore",
    "Opened",
    "OpenedPacket",
    "derive",
    "new_iv",
    "open_packet",
    "ratchet_material",
    "seal_packet",
]

DEFAULT_RATCHET_SALT: Final = b"LKFrameEncryptionKey"
DEFAULT_RATCHET_WINDOW_SIZE: Final = 16
DEFAULT_FAILURE_TOLERANCE: Final = -1
DEFAULT_KEY_RING_SIZE: Final = 16
MAX_KEY_RING_SIZE: Final = 256
PBKDF2_ITERATIONS: Final = 100_000
AES_KEY_LENGTH: Final = 16
MATERIAL_LENGTH: Final = 32
IV_LENGTH: Final = 12
TAG_LENGTH: Final = 16
_HKDF_INFO: Final = bytes(128)

T = TypeVar("T")


class KeyDerivationFunction(ProtoEnum):
    """How material becomes a key (``livekit.rtc.KeyDerivationFunction``)."""

    PBKDF2 = 0
    HKDF = 1


class EncryptionState(ProtoEnum):
    """A frame cryptor's state (``livekit.rtc.EncryptionState`` = native ``FrameCryptionState``)."""

    NEW = 0
    OK = 1
    ENCRYPTION_FAILED = 2
    DECRYPTION_FAILED = 3
    MISSING_KEY = 4
    KEY_RATCHETED = 5
    INTERNAL_ERROR = 6


@functools.lru_cache(maxsize=4096)
def derive(material: bytes, salt: bytes, kdf: KeyDerivationFunction) -> bytes:
    """The 32 bytes derived from ``material``: the next ratchet material; its first 16 bytes are the AES key.

    Memoised (bounded LRU): the auto-ratchet walks the same chain for every frame under a wrong key.
    """
    if kdf == KeyDerivationFunction.HKDF:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=MATERIAL_LENGTH, salt=salt, info=_HKDF_INFO)
        return hkdf.derive(material)
    return hashlib.pbkdf2_hmac("sha256", material, salt, PBKDF2_ITERATIONS, MATERIAL_LENGTH)


def ratchet_material(material: bytes, salt: bytes, kdf: KeyDerivationFunction) -> bytes:
    """One ratchet step: the material that replaces ``material`` (native ``RatchetKeyMaterial``)."""
    return derive(material, salt, kdf)


def new_iv() -> bytes:
    """A fresh 96-bit IV. Receivers take the IV verbatim; random bits need no cross-frame state (§5.4)."""
    return os.urandom(IV_LENGTH)


@dataclass(frozen=True, slots=True)
class KeyOptions:
    """The key provider's options that shape rings (``livekit.rtc.KeyProviderOptions`` minus the key).

    ``ring_size`` is normalised as native does: ≤ 0 → 16, > 256 → 256.
    """

    salt: bytes = DEFAULT_RATCHET_SALT
    kdf: KeyDerivationFunction = KeyDerivationFunction.PBKDF2
    ring_size: int = DEFAULT_KEY_RING_SIZE
    ratchet_window: int = DEFAULT_RATCHET_WINDOW_SIZE
    failure_tolerance: int = DEFAULT_FAILURE_TOLERANCE

    def __post_init__(self) -> None:
        size = self.ring_size
        size = DEFAULT_KEY_RING_SIZE if size <= 0 else min(size, MAX_KEY_RING_SIZE)
        object.__setattr__(self, "ring_size", size)


@dataclass(frozen=True, slots=True)
class KeySet:
    """One slot: the material (what ``export_key`` returns) and the AES key derived from it."""

    material: bytes = field(repr=False)
    key: bytes = field(repr=False)

    @classmethod
    def of(cls, material: bytes, options: KeyOptions) -> KeySet:
        """The slot for ``material`` under ``options``' salt and derivation."""
        return cls(material, derive(material, options.salt, options.kdf)[:AES_KEY_LENGTH])


@dataclass(frozen=True, slots=True)
class Opened(Generic[T]):
    """What :meth:`KeyRing.open` gives back.

    Attributes:
        value: the plaintext (as the opener returned it), or ``None`` when no key in the window opened it.
        ring: the ring to keep: the same one, or one whose slot holds the ratcheted material.
        ratcheted: whether it opened only after ratcheting (the state ``KEY_RATCHETED``).
    """

    value: T | None
    ring: KeyRing
    ratcheted: bool = False


@dataclass(frozen=True, slots=True)
class KeyRing:
    """One participant's keys (native ``ParticipantKeyHandler``), immutable: changes return a new ring.

    Attributes:
        options: salt, derivation, size, ratchet window, failure tolerance.
        slots: one :class:`KeySet` or ``None`` per index.
        latest: the index of the key set or ratcheted last (the data-packet sender's index).
        valid: false until a key is set, and after more failures than the tolerance allows.
        failures: decryption failures counted since the last key change (only with a tolerance ≥ 0).
    """

    options: KeyOptions
    slots: tuple[KeySet | None, ...]
    latest: int = 0
    valid: bool = False
    failures: int = 0

    @classmethod
    def empty(cls, options: KeyOptions) -> KeyRing:
        """A ring of ``options.ring_size`` empty slots."""
        return cls(options, (None,) * options.ring_size)

    def key_at(self, index: int) -> KeySet | None:
        """The slot at ``index``, or ``None`` when it is empty or out of range."""
        return self.slots[index] if 0 <= index < len(self.slots) else None

    def with_material(self, material: bytes, index: int) -> KeyRing:
        """The ring with ``material`` at ``index % size`` (negative: the latest index), valid, no failures."""
        slot = index % len(self.slots) if index >= 0 else self.latest
        slots = (*self.slots[:slot], KeySet.of(material, self.options), *self.slots[slot + 1 :])
        return replace(self, slots=slots, latest=slot, valid=True, failures=0)

    def ratcheted(self, index: int) -> tuple[KeyRing, bytes]:
        """Ratchet the key at ``index``: the new ring and the new material (``b""``, same ring, if empty)."""
        current = self.key_at(index if index >= 0 else self.latest)
        if current is None:
            return self, b""
        material = ratchet_material(current.material, self.options.salt, self.options.kdf)
        return self.with_material(material, index), material

    def export(self, index: int) -> bytes:
        """The material at ``index`` (``b""`` when empty), as ``export_key`` returns it."""
        current = self.key_at(index)
        return b"" if current is None else current.material

    def failed(self) -> tuple[KeyRing, bool]:
        """Count one decryption failure; whether that made the ring invalid (native ``DecryptionFailure``)."""
        tolerance = self.options.failure_tolerance
        if tolerance < 0:
            return self, False
        failures = self.failures + 1
        invalid = failures > tolerance
        return replace(self, failures=failures, valid=self.valid and not invalid), invalid

    def open(self, index: int, attempt: Callable[[bytes], T | None]) -> Opened[T]:
        """Open something sealed with the key at ``index`` (which must be set), ratcheting if need be.

        Args:
            index: the key index the sender named.
            attempt: tries one AES key; returns the plaintext or ``None`` when the tag does not verify.
        """
        current = self.key_at(index)
        assert current is not None, "open() needs a key at the index: check key_at first"
        value = attempt(current.key)
        if value is not None:
            return Opened(value, self)
        material = current.material
        for _ in range(self.options.ratchet_window):
            material = ratchet_material(material, self.options.salt, self.options.kdf)
            value = attempt(KeySet.of(material, self.options).key)
            if value is not None:
                return Opened(value, self.with_material(material, index), ratcheted=True)
        return Opened(None, self)


@dataclass(frozen=True, slots=True)
class KeyStore:
    """Everybody's keys (native ``DefaultKeyProviderImpl``), immutable. One owner changes it: the RoomActor.

    In shared-key mode every participant starts from the shared ring; a key set for one identity
    overrides it for that identity; setting or ratcheting the shared key also sets it in every
    participant's ring (native ``SetSharedKey``/``RatchetSharedKey``). Outside shared mode the shared-key
    operations change nothing (native returns false).
    """

    options: KeyOptions
    shared_mode: bool = False
    shared: KeyRing | None = None
    rings: Mapping[str, KeyRing] = field(default_factory=lambda: MappingProxyType({}))

    def ring_for(self, identity: str) -> KeyRing | None:
        """The ring that encrypts/decrypts ``identity``'s media and data, if any key concerns it."""
        ring = self.rings.get(identity)
        if ring is None and self.shared_mode:
            return self.shared
        return ring

    def with_shared_key(self, material: bytes, index: int) -> KeyStore:
        """Set the shared key at ``index`` (and in every participant's ring)."""
        if not self.shared_mode:
            return self
        shared = (self.shared or KeyRing.empty(self.options)).with_material(material, index)
        rings = {who: ring.with_material(material, index) for who, ring in self.rings.items()}
        return replace(self, shared=shared, rings=MappingProxyType(rings))

    def ratchet_shared_key(self, index: int) -> tuple[KeyStore, bytes]:
        """Ratchet the shared key at ``index``; every participant's ring gets the new material."""
        if self.shared is None:
            return self, b""
        shared, material = self.shared.ratcheted(index)
        if not material:
            return self, b""
        rings = {who: ring.with_material(material, index) for who, ring in self.rings.items()}
        return replace(self, shared=shared, rings=MappingProxyType(rings)), material

    def export_shared_key(self, index: int) -> bytes:
        """The shared material at ``index`` (``b""`` if none)."""
        return b"" if self.shared is None else self.shared.export(index)

    def with_key(self, identity: str, material: bytes, index: int) -> KeyStore:
        """Set ``identity``'s key at ``index``."""
        ring = self.rings.get(identity) or KeyRing.empty(self.options)
        return self.with_ring(identity, ring.with_material(material, index))

    def with_ring(self, identity: str, ring: KeyRing) -> KeyStore:
        """``identity``'s ring replaced (a receiver's auto-ratchet or failure count, kept per participant)."""
        return replace(self, rings=MappingProxyType({**self.rings, identity: ring}))

    def ratchet_key(self, identity: str, index: int) -> tuple[KeyStore, bytes]:
        """Ratchet ``identity``'s key at ``index``: the new store and material (``b""`` if there is none)."""
        ring = self.rings.get(identity)
        if ring is None:
            return self, b""
        ring, material = ring.ratcheted(index)
        return self.with_ring(identity, ring), material

    def export_key(self, identity: str, index: int) -> bytes:
        """``identity``'s material at ``index`` (``b""`` if none)."""
        ring = self.rings.get(identity)
        return b"" if ring is None else ring.export(index)


# -- data packets (DataPacket.encrypted_packet, §5.12) ------------------------------------------------------


def seal_packet(value: EncryptableValue, ring: KeyRing, *, iv: bytes | None = None) -> EncryptedPacket | None:
    """Seal ``value`` with the ring's latest key, or ``None`` when that slot is empty (nothing is sent).

    Args:
        value: the variant to carry (user, chat, RPC, stream packets).
        ring: the sender's own ring.
        iv: the 12-byte IV (a fresh random one by default; tests pass a fixed one).

    Raises:
        LocalProtocolError: ``value`` is not an encryptable variant.
    """
    key = ring.key_at(ring.latest)
    if key is None:
        return None
    iv = new_iv() if iv is None else iv
    sealed = AESGCM(key.key).encrypt(iv, encode_encrypted_payload(value), None)
    return EncryptedPacket(EncryptionType.GCM, iv, ring.latest, sealed)


@dataclass(frozen=True, slots=True)
class OpenedPacket:
    """What :func:`open_packet` gives back: the value (or ``None``), the ring to keep, and the outcome."""

    value: EncryptableValue | None
    ring: KeyRing
    state: EncryptionState


def open_packet(packet: EncryptedPacket, ring: KeyRing | None) -> OpenedPacket | None:
    """Open an ``EncryptedPacket`` from the participant whose ring is ``ring``.

    Returns ``None`` when there is no ring at all; otherwise an :class:`OpenedPacket` whose ``state`` is
    ``OK``/``KEY_RATCHETED`` (``value`` set), ``MISSING_KEY`` (no key at the packet's index) or
    ``DECRYPTION_FAILED`` (IV not 12 bytes, shorter than a tag, no key in the ratchet window opens it, or
    the plaintext is not an ``EncryptedPacketPayload``). Any ``encryption_type`` is accepted (JS writes 0,
    R1).
    """
    if ring is None:
        return None
    if len(packet.iv) != IV_LENGTH or len(packet.encrypted_value) < TAG_LENGTH:
        return OpenedPacket(None, ring, EncryptionState.DECRYPTION_FAILED)
    if ring.key_at(packet.key_index) is None:
        return OpenedPacket(None, ring, EncryptionState.MISSING_KEY)

    def attempt(key: bytes) -> bytes | None:
        try:
            return AESGCM(key).decrypt(packet.iv, packet.encrypted_value, None)
        except InvalidTag:
            return None

    opened = ring.open(packet.key_index, attempt)
    if opened.value is None:
        return OpenedPacket(None, opened.ring.failed()[0], EncryptionState.DECRYPTION_FAILED)
    try:
        value = decode_encrypted_payload(opened.value)
    except CodecError:
        return OpenedPacket(None, opened.ring, EncryptionState.DECRYPTION_FAILED)
    state = EncryptionState.KEY_RATCHETED if opened.ratcheted else EncryptionState.OK
    return OpenedPacket(value, opened.ring, state)
