"""The ``livekit.DataPacket`` codec: protobuf bytes on ``_reliable``/``_lossy`` ⇄ frozen dataclasses.

Every message on the ``_reliable`` and ``_lossy`` data channels is one serialized ``livekit.DataPacket``.
:func:`decode_packet` turns those bytes into a :class:`DataPacket` envelope whose ``value`` is one frozen
dataclass per variant of the ``value`` oneof; :func:`encode_packet` goes the other way. Protobuf objects
never leave this module.

Rules applied here (see ``reference/data-e2ee-formats.md`` §1):

* Size: a serialized packet larger than the negotiated max message size (:data:`MAX_MESSAGE_SIZE`,
  64 000 bytes, unless the SFU's SDP answer says less) is refused before sending
  (:class:`~greenroom.codecs.errors.PayloadTooLargeError`) and on receipt
  (:class:`~greenroom.codecs.errors.CodecError`).
* A packet whose oneof is empty, bytes that are not a ``DataPacket``, or an enum value this version does
  not know are :class:`~greenroom.codecs.errors.CodecError`. A valid variant we do not model (``speaker``,
  ``metrics``) decodes to :class:`Unhandled`, which re-encodes byte-for-byte.
* ``DataPacket.kind`` is carried but must never be used for routing: route by the channel label the bytes
  arrived on. The Rust SDK's FFI enum is numbered the other way round, and the SFU rewrites the field.

Also here: :class:`SequenceCounter` (sender side of ``DataPacket.sequence``) and
:class:`ReliableDeduplicator` (receiver side, JS behaviour: drop already-seen sequence numbers).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, TypeAlias, TypeVar, assert_never

from google.protobuf.message import DecodeError, Message
from livekit.protocol import models as pb

from greenroom.codecs.errors import CodecError, LocalProtocolError, PayloadTooLargeError

__all__ = [
    "MAX_MESSAGE_SIZE",
    "Attributes",
    "ByteHeader",
    "ChatMessage",
    "CompressionType",
    "DataPacket",
    "EncryptableValue",
    "EncryptedPacket",
    "EncryptionType",
    "Kind",
    "OperationType",
    "PacketValue",
    "ReliableDeduplicator",
    "RpcAck",
    "RpcError",
    "RpcRequest",
    "RpcResponse",
    "RpcValue",
    "SequenceCounter",
    "SipDtmf",
    "StreamChunk",
    "StreamHeader",
    "StreamTrailer",
    "StreamValue",
    "TextHeader",
    "Transcription",
    "TranscriptionSegment",
    "Unhandled",
    "UserPacket",
    "decode_encrypted_payload",
    "decode_packet",
    "encode_encrypted_payload",
    "encode_packet",
    "freeze_attributes",
]

MAX_MESSAGE_SIZE: Final = 64_000
"""Default max serialized ``DataPacket`` size (bytes) when the SDP answer carries no ``max-message-size``."""

MAX_SEQUENCE: Final = 0xFFFF_FFFF  # DataPacket.sequence is a uint32

Attributes: TypeAlias = tuple[tuple[str, str], ...]
"""An immutable ``map<string, string>``: (key, value) pairs sorted by key. ``dict(attrs)`` reads it."""


def freeze_attributes(mapping: Mapping[str, str]) -> Attributes:
    """Return ``mapping`` as immutable :data:`Attributes` (pairs sorted by key).

    Args:
        mapping: string keys to string values.

    Returns:
        The sorted tuple of (key, value) pairs.
    """
    return tuple(sorted(mapping.items()))


class Kind(enum.IntEnum):
    """``livekit.DataPacket.Kind`` (wire numbering).

    Informational only: route by the data channel label (``_reliable``/``_lossy``), never by this value.
    The Rust SDK's FFI ``DataPacketKind`` is numbered the other way round and the SFU overwrites it.
    """

    RELIABLE = 0
    LOSSY = 1


class EncryptionType(enum.IntEnum):
    """``livekit.Encryption.Type``. JS writes NONE inside ``EncryptedPacket``; treat any as encrypted."""

    NONE = 0
    GCM = 1
    CUSTOM = 2


class CompressionType(enum.IntEnum):
    """``livekit.DataStream.CompressionType``; ``DEFLATE_RAW`` is RFC 1951 without a zlib wrapper."""

    NONE = 0
    DEFLATE_RAW = 1


class OperationType(enum.IntEnum):
    """``livekit.DataStream.OperationType`` of a text stream."""

    CREATE = 0
    UPDATE = 1
    DELETE = 2
    REACTION = 3


# --------------------------------------------------------------------------------------------------
# Variants of the DataPacket ``value`` oneof


@dataclass(frozen=True, slots=True)
class UserPacket:
    """``livekit.UserPacket`` (field 2): an application payload from ``publish_data``.

    The ``legacy_*`` fields are the deprecated inner sender/destination fields; JS still fills them.
    Receivers should prefer the envelope's values and fall back to these. ``nonce`` is set only by the
    server API (empty or 16 bytes).
    """

    payload: bytes = b""
    topic: str | None = None
    id: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    nonce: bytes = b""
    legacy_participant_sid: str = ""
    legacy_participant_identity: str = ""
    legacy_destination_sids: tuple[str, ...] = ()
    legacy_destination_identities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SipDtmf:
    """``livekit.SipDTMF`` (field 6): a DTMF tone; code 0–9 → '0'–'9', 10 '*', 11 '#', 12–15 'a'–'d'."""

    code: int = 0
    digit: str = ""


@dataclass(frozen=True, slots=True)
class TranscriptionSegment:
    """``livekit.TranscriptionSegment``; start/end times are opaque integers (no documented unit)."""

    id: str = ""
    text: str = ""
    start_time: int = 0
    end_time: int = 0
    final: bool = False
    language: str = ""


@dataclass(frozen=True, slots=True)
class Transcription:
    """``livekit.Transcription`` (field 7); the SFU forwards it only from agents."""

    participant_identity: str = ""
    track_id: str = ""
    segments: tuple[TranscriptionSegment, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """``livekit.ChatMessage`` (field 9); times are Unix milliseconds."""

    id: str = ""
    timestamp: int = 0
    message: str = ""
    edit_timestamp: int | None = None
    deleted: bool = False
    generated: bool = False


@dataclass(frozen=True, slots=True)
class RpcRequest:
    """``livekit.RpcRequest`` (field 10), RPC v1; ``compressed_payload`` is reserved (no SDK writes it)."""

    id: str = ""
    method: str = ""
    payload: str = ""
    response_timeout_ms: int = 0
    version: int = 1
    compressed_payload: bytes = b""


@dataclass(frozen=True, slots=True)
class RpcAck:
    """``livekit.RpcAck`` (field 11)."""

    request_id: str = ""


@dataclass(frozen=True, slots=True)
class RpcError:
    """``livekit.RpcError``: codes 1001–1999 are reserved for the built-in errors."""

    code: int = 0
    message: str = ""
    data: str = ""


@dataclass(frozen=True, slots=True)
class RpcResponse:
    """``livekit.RpcResponse`` (field 12): at most one of ``payload``, ``error``, ``compressed_payload``.

    Raises:
        LocalProtocolError: on construction, if more than one of the three is set.
    """

    request_id: str = ""
    payload: str | None = None
    error: RpcError | None = None
    compressed_payload: bytes | None = None

    def __post_init__(self) -> None:
        chosen = [x for x in (self.payload, self.error, self.compressed_payload) if x is not None]
        if len(chosen) > 1:
            raise LocalProtocolError("RpcResponse carries a payload or an error, not both")


@dataclass(frozen=True, slots=True)
class TextHeader:
    """``livekit.DataStream.TextHeader``: the content header of a text stream."""

    operation_type: OperationType = OperationType.CREATE
    version: int = 0
    reply_to_stream_id: str = ""
    attached_stream_ids: tuple[str, ...] = ()
    generated: bool = False


@dataclass(frozen=True, slots=True)
class ByteHeader:
    """``livekit.DataStream.ByteHeader``: the content header of a byte stream."""

    name: str = ""


@dataclass(frozen=True, slots=True)
class StreamHeader:
    """``livekit.DataStream.Header`` (field 13): opens a data stream.

    ``inline_content`` is presence-sensitive: ``b""`` (present, empty) means a complete empty stream,
    ``None`` means chunks and a trailer follow. ``encryption_type`` is deprecated (E2EE is signalled by the
    envelope). ``timestamp`` is Unix milliseconds; ``total_length`` is the uncompressed length.
    """

    stream_id: str = ""
    timestamp: int = 0
    topic: str = ""
    mime_type: str = ""
    total_length: int | None = None
    attributes: Attributes = ()
    content_header: TextHeader | ByteHeader | None = None
    inline_content: bytes | None = None
    compression: CompressionType = CompressionType.NONE
    encryption_type: EncryptionType = EncryptionType.NONE


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """``livekit.DataStream.Chunk`` (field 14); ``iv`` is deprecated."""

    stream_id: str = ""
    chunk_index: int = 0
    content: bytes = b""
    version: int = 0
    iv: bytes | None = None


@dataclass(frozen=True, slots=True)
class StreamTrailer:
    """``livekit.DataStream.Trailer`` (field 15); a non-empty ``reason`` is an abnormal end."""

    stream_id: str = ""
    reason: str = ""
    attributes: Attributes = ()


@dataclass(frozen=True, slots=True)
class EncryptedPacket:
    """``livekit.EncryptedPacket`` (field 18): an AES-GCM sealed ``EncryptedPacketPayload``."""

    encryption_type: EncryptionType = EncryptionType.GCM
    iv: bytes = b""
    key_index: int = 0
    encrypted_value: bytes = b""


@dataclass(frozen=True, slots=True)
class Unhandled:
    """A valid variant greenroom does not model (``speaker``, ``metrics``): kept as its raw bytes.

    Attributes:
        field: the oneof field name (e.g. ``"metrics"``).
        data: the serialized inner message; re-encoding reproduces it.
    """

    field: str
    data: bytes = b""


PacketValue: TypeAlias = (
    UserPacket
    | SipDtmf
    | Transcription
    | ChatMessage
    | RpcRequest
    | RpcAck
    | RpcResponse
    | StreamHeader
    | StreamChunk
    | StreamTrailer
    | EncryptedPacket
    | Unhandled
)
"""Every value a :class:`DataPacket` can carry."""

EncryptableValue: TypeAlias = (
    UserPacket | ChatMessage | RpcRequest | RpcAck | RpcResponse | StreamHeader | StreamChunk | StreamTrailer
)
"""The variants data-channel E2EE may seal (``livekit.EncryptedPacketPayload``)."""

RpcValue: TypeAlias = RpcRequest | RpcAck | RpcResponse
"""The values of RPC v1 (requests) and of every RPC version (acks, responses)."""

StreamValue: TypeAlias = StreamHeader | StreamChunk | StreamTrailer
"""The values of a data stream (also RPC v2's transport)."""


@dataclass(frozen=True, slots=True)
class DataPacket:
    """``livekit.DataPacket``: the envelope of every data-channel message.

    Attributes:
        value: the variant carried.
        participant_identity: sender identity (stamped by the SFU; a client may leave it empty).
        participant_sid: sender SID (always overwritten by the SFU).
        destination_identities: recipients; empty means everyone but the sender.
        sequence: per-sender reliable sequence number from 1; 0 = unsequenced (lossy, server API).
        kind: informational only; route by the channel label, never by this field.
    """

    value: PacketValue
    participant_identity: str = ""
    participant_sid: str = ""
    destination_identities: tuple[str, ...] = ()
    sequence: int = 0
    kind: Kind = Kind.RELIABLE


# --------------------------------------------------------------------------------------------------
# dataclass -> protobuf (each fills the message it is given, already marked present in its parent)


def _wire(value: enum.IntEnum) -> Any:
    """Our IntEnum as the protobuf enum value it mirrors (same numbers)."""
    return int(value)


def _user_to_pb(v: UserPacket, m: pb.UserPacket) -> None:
    m.payload = v.payload
    m.nonce = v.nonce
    m.participant_sid = v.legacy_participant_sid
    m.participant_identity = v.legacy_participant_identity
    m.destination_sids.extend(v.legacy_destination_sids)
    m.destination_identities.extend(v.legacy_destination_identities)
    for name in ("topic", "id", "start_time", "end_time"):
        if (present := getattr(v, name)) is not None:
            setattr(m, name, present)


def _dtmf_to_pb(v: SipDtmf, m: pb.SipDTMF) -> None:
    m.code, m.digit = v.code, v.digit


def _transcription_to_pb(v: Transcription, m: pb.Transcription) -> None:
    m.transcribed_participant_identity, m.track_id = v.participant_identity, v.track_id
    for s in v.segments:
        m.segments.add(
            id=s.id,
            text=s.text,
            start_time=s.start_time,
            end_time=s.end_time,
            final=s.final,
            language=s.language,
        )


def _chat_to_pb(v: ChatMessage, m: pb.ChatMessage) -> None:
    m.id, m.timestamp, m.message = v.id, v.timestamp, v.message
    m.deleted, m.generated = v.deleted, v.generated
    if v.edit_timestamp is not None:
        m.edit_timestamp = v.edit_timestamp


def _rpc_request_to_pb(v: RpcRequest, m: pb.RpcRequest) -> None:
    m.id, m.method, m.payload = v.id, v.method, v.payload
    m.response_timeout_ms, m.version, m.compressed_payload = (
        v.response_timeout_ms,
        v.version,
        v.compressed_payload,
    )


def _rpc_ack_to_pb(v: RpcAck, m: pb.RpcAck) -> None:
    m.request_id = v.request_id


def _rpc_response_to_pb(v: RpcResponse, m: pb.RpcResponse) -> None:
    m.request_id = v.request_id
    if v.payload is not None:
        m.payload = v.payload
    elif v.error is not None:
        m.error.SetInParent()
        m.error.code, m.error.message, m.error.data = v.error.code, v.error.message, v.error.data
    elif v.compressed_payload is not None:
        m.compressed_payload = v.compressed_payload


def _header_to_pb(v: StreamHeader, m: pb.DataStream.Header) -> None:
    m.stream_id, m.timestamp, m.topic, m.mime_type = v.stream_id, v.timestamp, v.topic, v.mime_type
    m.attributes.update(dict(v.attributes))
    m.compression = _wire(v.compression)
    m.encryption_type = _wire(v.encryption_type)
    if v.total_length is not None:
        m.total_length = v.total_length
    if v.inline_content is not None:
        m.inline_content = v.inline_content
    match v.content_header:
        case TextHeader() as t:
            m.text_header.SetInParent()
            m.text_header.operation_type = _wire(t.operation_type)
            m.text_header.version, m.text_header.reply_to_stream_id = t.version, t.reply_to_stream_id
            m.text_header.attached_stream_ids.extend(t.attached_stream_ids)
            m.text_header.generated = t.generated
        case ByteHeader() as b:
            m.byte_header.SetInParent()
            m.byte_header.name = b.name
        case None:
            pass
        case _:
            assert_never(v.content_header)


def _chunk_to_pb(v: StreamChunk, m: pb.DataStream.Chunk) -> None:
    m.stream_id, m.chunk_index, m.content, m.version = v.stream_id, v.chunk_index, v.content, v.version
    if v.iv is not None:
        m.iv = v.iv


def _trailer_to_pb(v: StreamTrailer, m: pb.DataStream.Trailer) -> None:
    m.stream_id, m.reason = v.stream_id, v.reason
    m.attributes.update(dict(v.attributes))


def _encrypted_to_pb(v: EncryptedPacket, m: pb.EncryptedPacket) -> None:
    m.encryption_type = _wire(v.encryption_type)
    m.iv, m.key_index, m.encrypted_value = v.iv, v.key_index, v.encrypted_value


# type -> (oneof field name, filler). The same field names serve DataPacket and EncryptedPacketPayload.
_TO_PB: Final[dict[type, tuple[str, Callable[[Any, Any], None]]]] = {
    UserPacket: ("user", _user_to_pb),
    SipDtmf: ("sip_dtmf", _dtmf_to_pb),
    Transcription: ("transcription", _transcription_to_pb),
    ChatMessage: ("chat_message", _chat_to_pb),
    RpcRequest: ("rpc_request", _rpc_request_to_pb),
    RpcAck: ("rpc_ack", _rpc_ack_to_pb),
    RpcResponse: ("rpc_response", _rpc_response_to_pb),
    StreamHeader: ("stream_header", _header_to_pb),
    StreamChunk: ("stream_chunk", _chunk_to_pb),
    StreamTrailer: ("stream_trailer", _trailer_to_pb),
    EncryptedPacket: ("encrypted_packet", _encrypted_to_pb),
}

_TO_PB_NAMES: Final = frozenset(name for name, _ in _TO_PB.values())
_UNMODELLED_FIELDS: Final = (
    frozenset(f.name for f in pb.DataPacket.DESCRIPTOR.oneofs_by_name["value"].fields) - _TO_PB_NAMES
)


def _fill_value(value: PacketValue, parent: Message) -> None:
    """Set ``value`` into the ``value`` oneof of ``parent`` (a DataPacket or EncryptedPacketPayload)."""
    if isinstance(value, Unhandled):
        if value.field not in _UNMODELLED_FIELDS:
            raise LocalProtocolError(f"Unhandled cannot stand for DataPacket field {value.field!r}")
        sub = getattr(parent, value.field)
        sub.SetInParent()
        sub.MergeFromString(value.data)
        return
    entry = _TO_PB.get(type(value))
    if entry is None:
        raise LocalProtocolError(f"{type(value).__name__} is not a DataPacket value")
    name, fill = entry
    sub = getattr(parent, name)
    sub.SetInParent()
    fill(value, sub)


def _build(fill: Callable[[], Message]) -> bytes:
    """Run ``fill`` and serialize (map entries sorted, so bytes are reproducible); errors are ours."""
    try:
        return fill().SerializeToString(deterministic=True)
    except (ValueError, TypeError, DecodeError) as exc:
        raise LocalProtocolError(f"cannot encode DataPacket: {exc}") from exc


def encode_packet(packet: DataPacket, *, max_size: int = MAX_MESSAGE_SIZE) -> bytes:
    """Serialize a :class:`DataPacket` for the ``_reliable`` or ``_lossy`` channel.

    Args:
        packet: the envelope and its value.
        max_size: the max message size negotiated with the SFU (default 64 000 bytes).

    Returns:
        The ``livekit.DataPacket`` protobuf bytes.

    Raises:
        PayloadTooLargeError: the serialized packet is larger than ``max_size``; nothing should be sent.
        LocalProtocolError: a field is out of range (e.g. a negative ``sequence``), or an
            :class:`Unhandled` names a field that is not an unmodelled ``DataPacket`` variant.
    """

    def fill() -> Message:
        m = pb.DataPacket(
            kind=_wire(packet.kind),
            participant_identity=packet.participant_identity,
            participant_sid=packet.participant_sid,
            destination_identities=packet.destination_identities,
            sequence=packet.sequence,
        )
        _fill_value(packet.value, m)
        return m

    data = _build(fill)
    if len(data) > max_size:
        raise PayloadTooLargeError(
            f"DataPacket is {len(data)} bytes, above the {max_size}-byte max message size",
            size=len(data),
            limit=max_size,
        )
    return data


def encode_encrypted_payload(value: EncryptableValue) -> bytes:
    """Serialize ``value`` as a ``livekit.EncryptedPacketPayload`` (the plaintext data E2EE seals).

    Args:
        value: one of the encryptable variants (user, chat, RPC, stream packets).

    Returns:
        The protobuf bytes to encrypt into :attr:`EncryptedPacket.encrypted_value`.

    Raises:
        LocalProtocolError: ``value`` is not encryptable or a field is out of range.
    """
    name, _ = _TO_PB.get(type(value), ("", None))
    if name not in _ENCRYPTABLE_FIELDS:
        raise LocalProtocolError(f"{type(value).__name__} cannot be carried inside an EncryptedPacket")

    def fill() -> Message:
        m = pb.EncryptedPacketPayload()
        _fill_value(value, m)
        return m

    return _build(fill)


# --------------------------------------------------------------------------------------------------
# protobuf -> dataclass

_E = TypeVar("_E", bound=enum.IntEnum)


def _enum(cls: type[_E], raw: int) -> _E:
    try:
        return cls(raw)
    except ValueError:
        raise CodecError(f"unknown {cls.__name__} value {raw}") from None


def _optional(m: Message, name: str) -> Any:
    return getattr(m, name) if m.HasField(name) else None


def _user_from_pb(m: pb.UserPacket) -> UserPacket:
    return UserPacket(
        payload=m.payload,
        topic=_optional(m, "topic"),
        id=_optional(m, "id"),
        start_time=_optional(m, "start_time"),
        end_time=_optional(m, "end_time"),
        nonce=m.nonce,
        legacy_participant_sid=m.participant_sid,
        legacy_participant_identity=m.participant_identity,
        legacy_destination_sids=tuple(m.destination_sids),
        legacy_destination_identities=tuple(m.destination_identities),
    )


def _dtmf_from_pb(m: pb.SipDTMF) -> SipDtmf:
    return SipDtmf(code=m.code, digit=m.digit)


def _transcription_from_pb(m: pb.Transcription) -> Transcription:
    segments = tuple(
        TranscriptionSegment(
            id=s.id,
            text=s.text,
            start_time=s.start_time,
            end_time=s.end_time,
            final=s.final,
            language=s.language,
        )
        for s in m.segments
    )
    return Transcription(
        participant_identity=m.transcribed_participant_identity, track_id=m.track_id, segments=segments
    )


def _chat_from_pb(m: pb.ChatMessage) -> ChatMessage:
    return ChatMessage(
        id=m.id,
        timestamp=m.timestamp,
        message=m.message,
        edit_timestamp=_optional(m, "edit_timestamp"),
        deleted=m.deleted,
        generated=m.generated,
    )


def _rpc_request_from_pb(m: pb.RpcRequest) -> RpcRequest:
    return RpcRequest(
        id=m.id,
        method=m.method,
        payload=m.payload,
        response_timeout_ms=m.response_timeout_ms,
        version=m.version,
        compressed_payload=m.compressed_payload,
    )


def _rpc_ack_from_pb(m: pb.RpcAck) -> RpcAck:
    return RpcAck(request_id=m.request_id)


def _rpc_response_from_pb(m: pb.RpcResponse) -> RpcResponse:
    error = RpcError(m.error.code, m.error.message, m.error.data) if m.HasField("error") else None
    return RpcResponse(
        request_id=m.request_id,
        payload=_optional(m, "payload"),
        error=error,
        compressed_payload=_optional(m, "compressed_payload"),
    )


def _content_header_from_pb(m: pb.DataStream.Header) -> TextHeader | ByteHeader | None:
    match m.WhichOneof("content_header"):
        case "text_header":
            t = m.text_header
            return TextHeader(
                operation_type=_enum(OperationType, t.operation_type),
                version=t.version,
                reply_to_stream_id=t.reply_to_stream_id,
                attached_stream_ids=tuple(t.attached_stream_ids),
                generated=t.generated,
            )
        case "byte_header":
            return ByteHeader(name=m.byte_header.name)
        case _:
            return None


def _header_from_pb(m: pb.DataStream.Header) -> StreamHeader:
    return StreamHeader(
        stream_id=m.stream_id,
        timestamp=m.timestamp,
        topic=m.topic,
        mime_type=m.mime_type,
        total_length=_optional(m, "total_length"),
        attributes=freeze_attributes(m.attributes),
        content_header=_content_header_from_pb(m),
        inline_content=_optional(m, "inline_content"),
        compression=_enum(CompressionType, m.compression),
        encryption_type=_enum(EncryptionType, m.encryption_type),
    )


def _chunk_from_pb(m: pb.DataStream.Chunk) -> StreamChunk:
    return StreamChunk(
        stream_id=m.stream_id,
        chunk_index=m.chunk_index,
        content=m.content,
        version=m.version,
        iv=_optional(m, "iv"),
    )


def _trailer_from_pb(m: pb.DataStream.Trailer) -> StreamTrailer:
    return StreamTrailer(stream_id=m.stream_id, reason=m.reason, attributes=freeze_attributes(m.attributes))


def _encrypted_from_pb(m: pb.EncryptedPacket) -> EncryptedPacket:
    return EncryptedPacket(
        encryption_type=_enum(EncryptionType, m.encryption_type),
        iv=m.iv,
        key_index=m.key_index,
        encrypted_value=m.encrypted_value,
    )


# oneof field name -> reader. A field missing here (speaker, metrics) decodes to Unhandled.
_FROM_PB: Final[dict[str, Callable[[Any], PacketValue]]] = {
    "user": _user_from_pb,
    "sip_dtmf": _dtmf_from_pb,
    "transcription": _transcription_from_pb,
    "chat_message": _chat_from_pb,
    "rpc_request": _rpc_request_from_pb,
    "rpc_ack": _rpc_ack_from_pb,
    "rpc_response": _rpc_response_from_pb,
    "stream_header": _header_from_pb,
    "stream_chunk": _chunk_from_pb,
    "stream_trailer": _trailer_from_pb,
    "encrypted_packet": _encrypted_from_pb,
}

_ENCRYPTABLE_FIELDS: Final = frozenset(
    f.name for f in pb.EncryptedPacketPayload.DESCRIPTOR.oneofs_by_name["value"].fields
)


def _parse(message: Message, data: bytes, max_size: int) -> None:
    name = message.DESCRIPTOR.name
    if len(data) > max_size:
        raise CodecError(f"{name} of {len(data)} bytes exceeds the {max_size}-byte limit")
    try:
        message.ParseFromString(data)
    except (DecodeError, ValueError, TypeError, RecursionError) as exc:
        raise CodecError(f"not a valid {name}: {exc}") from exc


def _read_value(parent: Message) -> PacketValue:
    which = parent.WhichOneof("value")
    if which is None:
        raise CodecError(f"{parent.DESCRIPTOR.name} carries no value")
    sub = getattr(parent, which)
    reader = _FROM_PB.get(which)
    return reader(sub) if reader is not None else Unhandled(which, sub.SerializeToString())


def decode_packet(data: bytes, *, max_size: int = MAX_MESSAGE_SIZE) -> DataPacket:
    """Parse one message received on ``_reliable`` or ``_lossy``.

    Args:
        data: the binary data-channel message.
        max_size: refuse anything larger (default 64 000 bytes).

    Returns:
        The decoded envelope; unmodelled variants come back as :class:`Unhandled`.

    Raises:
        CodecError: oversize input, bytes that are not a ``DataPacket``, an empty ``value`` oneof, or an
            enum value this version does not know.
    """
    m = pb.DataPacket()
    _parse(m, data, max_size)
    value = _read_value(m)
    return DataPacket(
        value=value,
        participant_identity=m.participant_identity,
        participant_sid=m.participant_sid,
        destination_identities=tuple(m.destination_identities),
        sequence=m.sequence,
        kind=_enum(Kind, m.kind),
    )


def decode_encrypted_payload(data: bytes, *, max_size: int = MAX_MESSAGE_SIZE) -> EncryptableValue:
    """Parse the decrypted plaintext of an :class:`EncryptedPacket` (a ``livekit.EncryptedPacketPayload``).

    Args:
        data: the plaintext after AES-GCM decryption.
        max_size: refuse anything larger (default 64 000 bytes).

    Returns:
        The variant it carries.

    Raises:
        CodecError: oversize input, malformed bytes, an empty oneof, or an unknown enum value.
    """
    m = pb.EncryptedPacketPayload()
    _parse(m, data, max_size)
    value = _read_value(m)
    assert not isinstance(value, (SipDtmf, Transcription, EncryptedPacket, Unhandled))  # not in this oneof
    return value


# --------------------------------------------------------------------------------------------------
# DataPacket.sequence: sender counter and receiver de-duplication


class SequenceCounter:
    """Sender side of ``DataPacket.sequence`` for one session: 1, 2, 3, … on the reliable channel.

    Stamp every packet sent on ``_reliable`` (after E2EE wrapping, before serializing); lossy packets keep
    ``sequence=0``. Keep the counter across a resume; make a new one for a full reconnect. After
    ``2**32 - 1`` it wraps to 1 (0 means "unsequenced"). Not thread-safe: owned by one actor.
    """

    __slots__ = ("_last",)

    def __init__(self, last: int = 0) -> None:
        """Start after ``last`` (0 for a new session)."""
        if not 0 <= last <= MAX_SEQUENCE:
            raise LocalProtocolError(f"sequence {last} is outside uint32")
        self._last = last

    @property
    def last(self) -> int:
        """The last sequence number handed out (0 if none)."""
        return self._last

    def advance(self) -> int:
        """Return the next sequence number."""
        self._last = self._last % MAX_SEQUENCE + 1
        return self._last

    def stamp(self, packet: DataPacket) -> DataPacket:
        """Return ``packet`` with the next sequence number."""
        return replace(packet, sequence=self.advance())


class ReliableDeduplicator:
    """Receiver side of ``DataPacket.sequence``: drop reliable packets already seen from a sender.

    Tracks the highest sequence per sender SID; an entry not refreshed within ``ttl`` seconds is forgotten
    (JS keeps 30 s). ``sequence == 0`` (unsequenced) is always accepted. Time is passed in. Not
    thread-safe: owned by one actor.
    """

    __slots__ = ("_last_prune", "_seen", "_ttl")

    def __init__(self, ttl: float = 30.0) -> None:
        """Create an empty tracker whose entries expire after ``ttl`` seconds."""
        self._ttl = ttl
        self._seen: dict[str, tuple[int, float]] = {}
        self._last_prune = float("-inf")

    def accept(self, sender_sid: str, sequence: int, now: float) -> bool:
        """Record a received packet; return False if it is a duplicate or arrived out of order.

        Args:
            sender_sid: the envelope's ``participant_sid`` (stamped by the SFU).
            sequence: the envelope's ``sequence``.
            now: a monotonic time in seconds.
        """
        self._prune(now)
        if sequence == 0:
            return True
        entry = self._seen.get(sender_sid)
        if entry is not None and now - entry[1] <= self._ttl and sequence <= entry[0]:
            return False
        self._seen[sender_sid] = (sequence, now)
        return True

    def accept_packet(self, packet: DataPacket, now: float) -> bool:
        """:meth:`accept` applied to a decoded envelope."""
        return self.accept(packet.participant_sid, packet.sequence, now)

    def forget(self, sender_sid: str) -> None:
        """Drop the state of a sender (e.g. when it leaves)."""
        self._seen.pop(sender_sid, None)

    def last_sequences(self, now: float) -> dict[str, int]:
        """The last sequence per live sender, for ``SyncState.datachannel_receive_states`` on resume."""
        self._prune(now)
        return {sid: seq for sid, (seq, _) in self._seen.items()}

    def _prune(self, now: float) -> None:
        if now - self._last_prune < self._ttl:
            return
        self._last_prune = now
        expired: Iterable[str] = [sid for sid, (_, t) in self._seen.items() if now - t > self._ttl]
        for sid in expired:
            del self._seen[sid]
