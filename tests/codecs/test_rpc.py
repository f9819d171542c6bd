"""The RPC wire rules: codes and messages as the official SDK spells them, limits, versions, acks."""

from __future__ import annotations

import livekit.rtc as official
import pytest

from greenroom.codecs import rpc
from greenroom.codecs.packets import RpcAck, RpcError, RpcRequest, StreamChunk, StreamHeader, UserPacket


def test_codes_and_messages_are_the_official_ones() -> None:
    assert {c.name: int(c) for c in rpc.ErrorCode} == {c.name: int(c) for c in official.RpcError.ErrorCode}
    assert {int(c): m for c, m in rpc.MESSAGES.items()} == {
        int(c): m for c, m in official.RpcError.ErrorMessage.items()
    }


def test_truncation_never_cuts_a_character() -> None:
    assert rpc.truncate_utf8("abc", 3) == "abc"
    assert rpc.truncate_utf8("abcd", 3) == "abc"
    assert rpc.truncate_utf8("aé", 2) == "a"  # é is two bytes: dropped whole
    error = rpc.wire_error(4000, "€" * 100, "x" * 20_000)
    assert error.code == 4000
    assert len(error.message.encode()) <= rpc.MAX_ERROR_MESSAGE_BYTES
    assert error.message == "€" * 85
    assert len(error.data) == rpc.MAX_ERROR_DATA_BYTES
    assert rpc.wire_error(1, "m").data == ""
    assert rpc.built_in(rpc.ErrorCode.UNSUPPORTED_METHOD) == RpcError(
        1400, "Method not supported at destination", ""
    )
    assert rpc.built_in(rpc.ErrorCode.APPLICATION_ERROR, "why").data == "why"


def test_limits_versions_and_timeouts() -> None:
    assert rpc.payload_bytes("é" * 10) == 20
    assert not rpc.uses_v2(0)
    assert rpc.uses_v2(1)
    assert rpc.uses_v2(2)
    assert rpc.callee_timeout_ms(15.0, 7.0) == 8000  # the Rust caller's default
    assert rpc.callee_timeout_ms(2.0, 7.0) == 1000  # never below 1 s
    assert rpc.callee_timeout_ms(30.5, 0.5) == 30_000


@pytest.mark.parametrize(
    ("version", "ok"),
    [("1.9.0", True), ("1.8.0", True), ("v2.0.1", True), ("1.7.9", False), ("0.15.1", False), ("", True)],
)
def test_server_version_gate(version: str, ok: bool) -> None:
    assert rpc.server_supports_rpc(version) is ok


def test_v2_attributes_round_trip_and_defaults() -> None:
    attrs = rpc.v2_request_attributes("id1", "greet", 8000)
    assert dict(attrs) == {
        "lk.rpc_request_id": "id1",
        "lk.rpc_request_method": "greet",
        "lk.rpc_request_response_timeout_ms": "8000",
        "lk.rpc_request_version": "2",
    }
    assert rpc.parse_v2_request(attrs) == rpc.V2Request("id1", "greet", 8000, 2)
    # the Rust callee's defaults: 15 s, and version 0 (which it then refuses with 1404)
    assert rpc.parse_v2_request({"lk.rpc_request_response_timeout_ms": "soon"}) == rpc.V2Request(
        "", "", 15_000, 0
    )


def test_what_is_acknowledged() -> None:
    assert rpc.ack_for(RpcRequest(id="r1", version=7)) == RpcAck("r1")
    assert rpc.ack_for(RpcRequest(id="")) is None
    header = StreamHeader(stream_id="s", topic=rpc.REQUEST_TOPIC, attributes=(("lk.rpc_request_id", "r2"),))
    assert rpc.ack_for(header) == RpcAck("r2")
    assert rpc.ack_for(StreamHeader(stream_id="s", topic=rpc.REQUEST_TOPIC)) is None
    assert rpc.ack_for(StreamHeader(stream_id="s", topic="chat")) is None
    assert rpc.ack_for(StreamChunk(stream_id="s")) is None
    assert rpc.ack_for(UserPacket(payload=b"x")) is None
