"""Tests for the ``livekit.DataPacket`` codec (golden bytes, round trips, hostile input, sequencing)."""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit.protocol import models as pb

from greenroom.codecs.errors import CodecError, GreenroomError, LocalProtocolError, PayloadTooLargeError
from greenroom.codecs.packets import (
    MAX_MESSAGE_SIZE,
    ByteHeader,
    ChatMessage,
    CompressionType,
    DataPacket,
    EncryptedPacket,
    EncryptionType,
    Kind,
    OperationType,
    ReliableDeduplicator,
    RpcAck,
    RpcError,
    RpcRequest,
    RpcResponse,
    SequenceCounter,
    SipDtmf,
    StreamChunk,
    StreamHeader,
    StreamTrailer,
    TextHeader,
    Transcription,
    TranscriptionSegment,
    Unhandled,
    UserPacket,
    decode_encrypted_payload,
    decode_packet,
    encode_encrypted_payload,
    encode_packet,
    freeze_attributes,
)

GOLDEN = Path(__file__).parent / "golden" / "packets.json"

SPEAKERS = pb.ActiveSpeakerUpdate(speakers=[pb.SpeakerInfo(sid="PA_1", level=1.0, active=True)])

# name -> (our value, the same message built with the raw livekit.protocol classes)
CASES: dict[str, tuple[DataPacket, pb.DataPacket]] = {
    "rpc_ack_to_bob": (
        DataPacket(RpcAck("r1"), destination_identities=("bob",)),
        pb.DataPacket(rpc_ack=pb.RpcAck(request_id="r1"), destination_identities=["bob"]),
    ),
    "user_lossy_topic": (
        DataPacket(UserPacket(b"hi", topic="t"), kind=Kind.LOSSY),
        pb.DataPacket(user=pb.UserPacket(payload=b"hi", topic="t"), kind=pb.DataPacket.LOSSY),
    ),
    "user_sequenced": (
        DataPacket(UserPacket(b"hi"), participant_identity="alice", sequence=7, participant_sid="PA_1"),
        pb.DataPacket(
            user=pb.UserPacket(payload=b"hi"),
            participant_identity="alice",
            sequence=7,
            participant_sid="PA_1",
        ),
    ),
    "user_every_field": (
        DataPacket(
            UserPacket(
                payload=b"\x00\xff",
                topic="",
                id="m1",
                start_time=0,
                end_time=9,
                nonce=bytes(range(16)),
                legacy_participant_sid="PA_x",
                legacy_participant_identity="carol",
                legacy_destination_sids=("PA_y",),
                legacy_destination_identities=("dave", "erin"),
            ),
            destination_identities=("dave", "erin"),
        ),
        pb.DataPacket(
            user=pb.UserPacket(
                payload=b"\x00\xff",
                topic="",
                id="m1",
                start_time=0,
                end_time=9,
                nonce=bytes(range(16)),
                participant_sid="PA_x",
                participant_identity="carol",
                destination_sids=["PA_y"],
                destination_identities=["dave", "erin"],
            ),
            destination_identities=["dave", "erin"],
        ),
    ),
    "sip_dtmf_star": (
        DataPacket(SipDtmf(code=10, digit="*")),
        pb.DataPacket(sip_dtmf=pb.SipDTMF(code=10, digit="*")),
    ),
    "transcription": (
        DataPacket(
            Transcription(
                "alice",
                "TR_a",
                (
                    TranscriptionSegment("s1", "hello", 10, 20, False, "en"),
                    TranscriptionSegment("s1", "hello world", 10, 30, True, "en"),
                ),
            ),
            participant_identity="agent",
        ),
        pb.DataPacket(
            transcription=pb.Transcription(
                transcribed_participant_identity="alice",
                track_id="TR_a",
                segments=[
                    pb.TranscriptionSegment(id="s1", text="hello", start_time=10, end_time=20, language="en"),
                    pb.TranscriptionSegment(
                        id="s1", text="hello world", start_time=10, end_time=30, final=True, language="en"
                    ),
                ],
            ),
            participant_identity="agent",
        ),
    ),
    "chat_edited": (
        DataPacket(ChatMessage("c1", 1700000000000, "hi!", edit_timestamp=1700000001000, generated=True)),
        pb.DataPacket(
            chat_message=pb.ChatMessage(
                id="c1", timestamp=1700000000000, message="hi!", edit_timestamp=1700000001000, generated=True
            )
        ),
    ),
    "chat_deleted": (
        DataPacket(ChatMessage("c2", 5, "", deleted=True)),
        pb.DataPacket(chat_message=pb.ChatMessage(id="c2", timestamp=5, deleted=True)),
    ),
    "rpc_request_v1": (
        DataPacket(RpcRequest("r2", "greet", '{"a":1}', 8000, 1), destination_identities=("bob",)),
        pb.DataPacket(
            rpc_request=pb.RpcRequest(
                id="r2", method="greet", payload='{"a":1}', response_timeout_ms=8000, version=1
            ),
            destination_identities=["bob"],
        ),
    ),
    "rpc_response_payload_empty": (
        DataPacket(RpcResponse("r2", payload="")),
        pb.DataPacket(rpc_response=pb.RpcResponse(request_id="r2", payload="")),
    ),
    "rpc_response_error": (
        DataPacket(RpcResponse("r3", error=RpcError(1400, "Method not supported at destination"))),
        pb.DataPacket(
            rpc_response=pb.RpcResponse(
                request_id="r3", error=pb.RpcError(code=1400, message="Method not supported at destination")
            )
        ),
    ),
    "rpc_response_compressed": (
        DataPacket(RpcResponse("r4", compressed_payload=b"\x01")),
        pb.DataPacket(rpc_response=pb.RpcResponse(request_id="r4", compressed_payload=b"\x01")),
    ),
    "rpc_response_bare": (
        DataPacket(RpcResponse("r5")),
        pb.DataPacket(rpc_response=pb.RpcResponse(request_id="r5")),
    ),
    "stream_header_text_inline": (
        DataPacket(StreamHeader("s1", 1700000000000, "chat", "text/plain", 2, (), TextHeader(), b"hi")),
        pb.DataPacket(
            stream_header=pb.DataStream.Header(
                stream_id="s1",
                timestamp=1700000000000,
                topic="chat",
                mime_type="text/plain",
                total_length=2,
                text_header=pb.DataStream.TextHeader(),
                inline_content=b"hi",
            )
        ),
    ),
    "stream_header_text_full": (
        DataPacket(
            StreamHeader(
                "s2",
                1,
                "lk.rpc_request",
                "text/plain",
                None,
                freeze_attributes({"lk.rpc_request_id": "r9", "a": "b"}),
                TextHeader(OperationType.REACTION, 3, "s0", ("x", "y"), True),
                b"",
                CompressionType.DEFLATE_RAW,
                EncryptionType.GCM,
            )
        ),
        pb.DataPacket(
            stream_header=pb.DataStream.Header(
                stream_id="s2",
                timestamp=1,
                topic="lk.rpc_request",
                mime_type="text/plain",
                attributes={"lk.rpc_request_id": "r9", "a": "b"},
                text_header=pb.DataStream.TextHeader(
                    operation_type=pb.DataStream.REACTION,
                    version=3,
                    reply_to_stream_id="s0",
                    attached_stream_ids=["x", "y"],
                    generated=True,
                ),
                inline_content=b"",
                compression=pb.DataStream.DEFLATE_RAW,
                encryption_type=pb.Encryption.GCM,
            )
        ),
    ),
    "stream_header_bytes": (
        DataPacket(StreamHeader("s3", 2, "files", "application/octet-stream", 10, (), ByteHeader("a.bin"))),
        pb.DataPacket(
            stream_header=pb.DataStream.Header(
                stream_id="s3",
                timestamp=2,
                topic="files",
                mime_type="application/octet-stream",
                total_length=10,
                byte_header=pb.DataStream.ByteHeader(name="a.bin"),
            )
        ),
    ),
    "stream_header_no_content_header": (
        DataPacket(StreamHeader("s4")),
        pb.DataPacket(stream_header=pb.DataStream.Header(stream_id="s4")),
    ),
    "stream_chunk": (
        DataPacket(StreamChunk("s3", 4, b"data", 1, b"\x00" * 12), destination_identities=("bob",)),
        pb.DataPacket(
            stream_chunk=pb.DataStream.Chunk(
                stream_id="s3", chunk_index=4, content=b"data", version=1, iv=b"\x00" * 12
            ),
            destination_identities=["bob"],
        ),
    ),
    "stream_trailer": (
        DataPacket(StreamTrailer("s3", "aborted", freeze_attributes({"k": "v"}))),
        pb.DataPacket(
            stream_trailer=pb.DataStream.Trailer(stream_id="s3", reason="aborted", attributes={"k": "v"})
        ),
    ),
    "encrypted_reference_vector": (
        DataPacket(
            EncryptedPacket(
                EncryptionType.GCM,
                bytes(range(12)),
                0,
                bytes.fromhex("2f70f92fc6a2cc1163298f7b5050ec31c8a8b59a0c2de8e70c"),
            )
        ),
        pb.DataPacket(
            encrypted_packet=pb.EncryptedPacket(
                encryption_type=pb.Encryption.GCM,
                iv=bytes(range(12)),
                encrypted_value=bytes.fromhex("2f70f92fc6a2cc1163298f7b5050ec31c8a8b59a0c2de8e70c"),
            )
        ),
    ),
    "speaker_unhandled": (
        DataPacket(Unhandled("speaker", SPEAKERS.SerializeToString())),
        pb.DataPacket(speaker=SPEAKERS),
    ),
    "metrics_empty_unhandled": (
        DataPacket(Unhandled("metrics")),
        pb.DataPacket(metrics={}),
    ),
}

# reference/data-e2ee-formats.md §1.10 and §5.13 (produced there with the raw livekit.protocol classes)
REFERENCE_HEX = {
    "rpc_ack_to_bob": "2a03626f625a040a027231",
    "user_lossy_topic": "0801120712026869220174",
    "user_sequenced": "1204120268692205616c6963658001078a010450415f31",
    "stream_header_text_inline": (
        "6a250a0273311080d095ffbc311a0463686174220a746578742f706c61696e28024a005a026869"
    ),
    "encrypted_reference_vector": (
        "92012b0801120c000102030405060708090a0b22192f70f92fc6a2cc1163298f7b5050ec31c8a8b59a0c2de8e70c"
    ),
}


def _golden() -> dict[str, str]:
    loaded: dict[str, str] = json.loads(GOLDEN.read_text())
    return loaded


def test_golden_file_covers_every_case_and_matches_the_reference() -> None:
    golden = _golden()
    assert set(golden) == set(CASES)
    for name, hexa in REFERENCE_HEX.items():
        assert golden[name] == hexa


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_bytes_decode_to_the_value(name: str) -> None:
    ours, raw = CASES[name]
    data = bytes.fromhex(_golden()[name])
    assert decode_packet(data) == ours
    assert pb.DataPacket.FromString(data) == raw


@pytest.mark.parametrize("name", sorted(CASES))
def test_encoding_matches_the_raw_protobuf(name: str) -> None:
    ours, raw = CASES[name]
    encoded = encode_packet(ours)
    # field order may differ between implementations: compare decoded messages, and bytes for upb itself
    assert pb.DataPacket.FromString(encoded) == raw
    assert encoded == raw.SerializeToString(deterministic=True) == bytes.fromhex(_golden()[name])


def test_presence_of_empty_inline_content_survives() -> None:
    header = decode_packet(bytes.fromhex(_golden()["stream_header_text_full"])).value
    assert isinstance(header, StreamHeader)
    assert header.inline_content == b""
    assert header.total_length is None


def test_encrypted_payload_reference_vector() -> None:
    plaintext = bytes.fromhex("0a07120568656c6c6f")
    assert decode_encrypted_payload(plaintext) == UserPacket(b"hello")
    assert encode_encrypted_payload(UserPacket(b"hello")) == plaintext
    ack = encode_encrypted_payload(RpcAck("r1"))
    assert pb.EncryptedPacketPayload.FromString(ack) == pb.EncryptedPacketPayload(
        rpc_ack=pb.RpcAck(request_id="r1")
    )


@pytest.mark.parametrize(
    "value", [SipDtmf(1, "1"), Transcription(), EncryptedPacket(), Unhandled("metrics"), "text"]
)
def test_only_encryptable_variants_go_inside_an_encrypted_packet(value: Any) -> None:
    with pytest.raises(LocalProtocolError):
        encode_encrypted_payload(value)


def test_encrypted_payload_refuses_empty_and_bad_input() -> None:
    with pytest.raises(CodecError, match="carries no value"):
        decode_encrypted_payload(b"")
    with pytest.raises(CodecError):
        decode_encrypted_payload(b"\x0a\xff")
    with pytest.raises(CodecError, match="exceeds"):
        decode_encrypted_payload(bytes(11), max_size=10)


# -- size limits (§1.7) -----------------------------------------------------------------------------


def test_encoding_refuses_a_packet_above_the_max_message_size() -> None:
    fits = DataPacket(UserPacket(b"x" * (MAX_MESSAGE_SIZE - 10)))
    assert len(encode_packet(fits)) <= MAX_MESSAGE_SIZE
    with pytest.raises(PayloadTooLargeError) as info:
        encode_packet(DataPacket(UserPacket(b"x" * MAX_MESSAGE_SIZE)))
    assert info.value.limit == MAX_MESSAGE_SIZE
    assert info.value.size > MAX_MESSAGE_SIZE
    with pytest.raises(PayloadTooLargeError):
        encode_packet(DataPacket(UserPacket(b"x" * 100)), max_size=50)


def test_decoding_refuses_oversize_input() -> None:
    data = encode_packet(DataPacket(UserPacket(b"x" * 100)))
    assert decode_packet(data, max_size=len(data)).value == UserPacket(b"x" * 100)
    with pytest.raises(CodecError, match="exceeds"):
        decode_packet(data, max_size=len(data) - 1)


# -- malformed and unmodelled input -----------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",  # empty oneof
        pb.DataPacket(participant_identity="a", sequence=3).SerializeToString(),  # still no value
        b"\xff\xff\xff",  # not protobuf
        b"\x12\x05\x12",  # truncated length-delimited field
        b"GET / HTTP/1.1\r\n\r\n",
    ],
)
def test_malformed_bytes_are_codec_errors(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode_packet(data)


@pytest.mark.parametrize(
    "raw",
    [
        pb.DataPacket(user=pb.UserPacket(), kind=7),  # type: ignore[arg-type]
        pb.DataPacket(stream_header=pb.DataStream.Header(compression=9)),  # type: ignore[arg-type]
        pb.DataPacket(stream_header=pb.DataStream.Header(encryption_type=5)),  # type: ignore[arg-type]
        pb.DataPacket(
            stream_header=pb.DataStream.Header(text_header=pb.DataStream.TextHeader(operation_type=8))  # type: ignore[arg-type]
        ),
        pb.DataPacket(encrypted_packet=pb.EncryptedPacket(encryption_type=3)),  # type: ignore[arg-type]
    ],
)
def test_unknown_enum_values_are_codec_errors(raw: pb.DataPacket) -> None:
    with pytest.raises(CodecError, match="unknown"):
        decode_packet(raw.SerializeToString())


def test_unhandled_must_name_an_unmodelled_variant() -> None:
    for bad in ("user", "nonsense", "sequence"):
        with pytest.raises(LocalProtocolError, match="Unhandled"):
            encode_packet(DataPacket(Unhandled(bad)))
    with pytest.raises(LocalProtocolError):
        encode_packet(DataPacket(Unhandled("speaker", b"\xff")))  # not a valid ActiveSpeakerUpdate


def test_bad_values_are_local_errors() -> None:
    with pytest.raises(LocalProtocolError):
        encode_packet(DataPacket(RpcAck(), sequence=-1))
    with pytest.raises(LocalProtocolError):
        encode_packet(DataPacket(SipDtmf(code=2**32)))
    with pytest.raises(LocalProtocolError, match="not a DataPacket value"):
        encode_packet(DataPacket("hello"))  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="not both"):
        RpcResponse("r", payload="x", error=RpcError(1500))


def test_values_are_frozen_and_hashable() -> None:
    packet, _ = CASES["stream_header_text_full"]
    assert hash(packet) == hash(decode_packet(encode_packet(packet)))
    with pytest.raises(AttributeError):
        packet.sequence = 3  # type: ignore[misc]


# -- hypothesis round trips -------------------------------------------------------------------------

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
i32 = st.integers(-(2**31), 2**31 - 1)
text = st.text(max_size=20)
names = st.lists(text, max_size=3).map(tuple)
attrs = st.dictionaries(text, text, max_size=3).map(freeze_attributes)

values: st.SearchStrategy[Any] = st.one_of(
    st.builds(
        UserPacket,
        payload=st.binary(max_size=64),
        topic=st.none() | text,
        id=st.none() | text,
        start_time=st.none() | u64,
        end_time=st.none() | u64,
        nonce=st.binary(max_size=16),
        legacy_participant_sid=text,
        legacy_participant_identity=text,
        legacy_destination_sids=names,
        legacy_destination_identities=names,
    ),
    st.builds(SipDtmf, u32, text),
    st.builds(
        Transcription,
        text,
        text,
        st.lists(st.builds(TranscriptionSegment, text, text, u64, u64, st.booleans(), text), max_size=3).map(
            tuple
        ),
    ),
    st.builds(ChatMessage, text, i64, text, st.none() | i64, st.booleans(), st.booleans()),
    st.builds(RpcRequest, text, text, text, u32, u32, st.binary(max_size=8)),
    st.builds(RpcAck, text),
    st.one_of(
        st.builds(RpcResponse, text, payload=text),
        st.builds(RpcResponse, text, error=st.builds(RpcError, u32, text, text)),
        st.builds(RpcResponse, text, compressed_payload=st.binary(max_size=8)),
        st.builds(RpcResponse, text),
    ),
    st.builds(
        StreamHeader,
        text,
        i64,
        text,
        text,
        st.none() | u64,
        attrs,
        st.none()
        | st.builds(TextHeader, st.sampled_from(OperationType), i32, text, names, st.booleans())
        | st.builds(ByteHeader, text),
        st.none() | st.binary(max_size=32),
        st.sampled_from(CompressionType),
        st.sampled_from(EncryptionType),
    ),
    st.builds(StreamChunk, text, u64, st.binary(max_size=32), i32, st.none() | st.binary(max_size=12)),
    st.builds(StreamTrailer, text, text, attrs),
    st.builds(
        EncryptedPacket, st.sampled_from(EncryptionType), st.binary(max_size=12), u32, st.binary(max_size=32)
    ),
)
packets = st.builds(DataPacket, values, text, text, names, u32, st.sampled_from(Kind))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(packets)
def test_round_trip(packet: DataPacket) -> None:
    assert decode_packet(encode_packet(packet)) == packet


@settings(max_examples=100, deadline=None)
@given(values.filter(lambda v: not isinstance(v, (SipDtmf, Transcription, EncryptedPacket))))
def test_encrypted_payload_round_trip(value: Any) -> None:
    assert decode_encrypted_payload(encode_encrypted_payload(value)) == value


def _decode_or_greenroom_error(data: bytes) -> None:
    with contextlib.suppress(GreenroomError):
        decode_packet(data)
    with contextlib.suppress(GreenroomError):
        decode_encrypted_payload(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=256))
def test_random_bytes_raise_only_greenroom_errors(data: bytes) -> None:
    _decode_or_greenroom_error(data)


def _mutate(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(4)
        pos = rng.randrange(len(data) + 1)
        if choice == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif choice == 1:
            data.insert(pos, rng.randrange(256))
        elif choice == 2:
            del data[pos : pos + rng.randint(1, 8)]
        else:
            data = data[:pos]
    return bytes(data)


def test_seeded_mutations_raise_only_greenroom_errors() -> None:
    rng = random.Random(20260907)
    corpus = [bytes.fromhex(h) for h in _golden().values()]
    for _ in range(3000):
        _decode_or_greenroom_error(_mutate(rng, rng.choice(corpus)))


# -- sequencing (§1.6) ------------------------------------------------------------------------------


def test_sequence_counter_starts_at_one_and_wraps_past_zero() -> None:
    counter = SequenceCounter()
    assert counter.last == 0
    assert [counter.advance() for _ in range(3)] == [1, 2, 3]
    assert counter.stamp(DataPacket(RpcAck("r"))).sequence == 4
    near_end = SequenceCounter(2**32 - 2)
    assert [near_end.advance(), near_end.advance()] == [2**32 - 1, 1]
    with pytest.raises(LocalProtocolError):
        SequenceCounter(-1)
    with pytest.raises(LocalProtocolError):
        SequenceCounter(2**32)


def test_deduplicator_drops_replays_per_sender() -> None:
    dedup = ReliableDeduplicator(ttl=30.0)
    assert dedup.accept("PA_a", 1, now=0.0)
    assert dedup.accept("PA_a", 2, now=1.0)
    assert not dedup.accept("PA_a", 2, now=1.5)  # duplicate
    assert not dedup.accept("PA_a", 1, now=1.5)  # replay of an older packet
    assert dedup.accept("PA_b", 1, now=1.5)  # senders are independent
    assert dedup.accept("PA_a", 0, now=2.0)  # unsequenced: always delivered
    assert dedup.accept("PA_a", 0, now=2.0)
    assert dedup.accept_packet(DataPacket(RpcAck(), participant_sid="PA_a", sequence=3), now=2.0)
    assert dedup.last_sequences(now=2.0) == {"PA_a": 3, "PA_b": 1}
    dedup.forget("PA_b")
    dedup.forget("PA_unknown")
    assert dedup.accept("PA_b", 1, now=3.0)


def test_deduplicator_forgets_silent_senders_after_the_ttl() -> None:
    dedup = ReliableDeduplicator(ttl=30.0)
    assert dedup.accept("PA_a", 5, now=0.0)
    assert dedup.accept("PA_b", 5, now=20.0)
    assert not dedup.accept("PA_a", 5, now=29.0)
    # PA_a's entry (refreshed at 0 s) is stale at 40 s: a restarted sender's low numbers are accepted again
    assert dedup.accept("PA_a", 1, now=40.0)
    assert dedup.last_sequences(now=45.0) == {"PA_a": 1, "PA_b": 5}
    assert dedup.last_sequences(now=100.0) == {}
    stale = ReliableDeduplicator(ttl=30.0)
    assert stale.accept("PA_c", 5, now=0.0)
    assert stale.accept("PA_d", 1, now=1.0)  # within the prune interval: nothing pruned yet
    assert stale.accept("PA_c", 2, now=31.0)  # stale entry ignored even though not yet pruned
