"""The facade exports only names that exist in livekit.rtc (same spelling), and the errors users import."""

from __future__ import annotations

import inspect

import livekit.rtc as official
import livekit.rtc.participant as official_participant
import pytest

from greenroom import rtc
from greenroom.rtc import participant, room


def test_every_export_is_an_official_name() -> None:
    assert sorted(set(rtc.__all__) - set(official.__all__)) == []
    for name in rtc.__all__:
        assert hasattr(rtc, name), name


def test_publish_errors_live_where_users_import_them() -> None:
    for name in (
        "PublishTrackError",
        "UnpublishTrackError",
        "PublishDataError",
        "PublishDTMFError",
        "PublishTranscriptionError",
        "PublishDataTrackError",
    ):
        assert hasattr(official_participant, name)
        error = getattr(participant, name)("boom")
        assert error.message == "boom"


def test_enum_names_and_numbers_match() -> None:
    for name in (
        "ConnectionState",
        "DataPacketKind",
        "DisconnectReason",
        "ParticipantKind",
        "ParticipantState",
        "TrackKind",
        "TrackSource",
        "IceTransportType",
        "ContinualGatheringPolicy",
        "VideoCodec",
        "VideoQuality",
        "VideoEncoderBackend",
        "EncodedFrameType",
        "FrameMetadataFeature",
        "SimulateScenarioKind",
        "EncryptionType",
        "EncryptionState",
        "KeyDerivationFunction",
    ):
        ours = {member.name: int(member) for member in getattr(rtc, name)}
        assert ours == dict(getattr(official, name).items()), name
        # and they answer like the official protobuf enum wrappers
        assert getattr(rtc, name).items() == getattr(official, name).items(), name
        assert getattr(rtc, name).keys() == getattr(official, name).keys(), name
        assert getattr(rtc, name).values() == getattr(official, name).values(), name
        first = getattr(official, name).keys()[0]
        assert getattr(rtc, name).Name(getattr(official, name).Value(first)) == first
    assert {m.name: int(m) for m in rtc.ConnectionQuality} == {
        m.name: int(m) for m in official.ConnectionQuality
    }


def test_signatures_match_the_official_ones() -> None:
    def params(fn: object) -> list[str]:
        return list(inspect.signature(fn).parameters)  # type: ignore[arg-type]

    assert params(rtc.Room.__init__) == params(official.Room.__init__)
    assert params(rtc.Room.connect) == params(official.Room.connect)
    assert params(rtc.Room.simulate_scenario) == params(official.Room.simulate_scenario)
    for method in (
        "publish_data",
        "publish_dtmf",
        "publish_transcription",
        "set_metadata",
        "set_name",
        "perform_rpc",
        "register_rpc_method",
        "unregister_rpc_method",
        "add_rpc_interceptor",
        "remove_rpc_interceptor",
        "send_text",
        "stream_text",
        "send_bytes",
        "send_file",
        "stream_bytes",
    ):
        assert params(getattr(rtc.LocalParticipant, method)) == params(
            getattr(official.LocalParticipant, method)
        ), method
    assert [f for f in rtc.RoomOptions.__dataclass_fields__] == list(
        official.RoomOptions.__dataclass_fields__
    )
    assert list(rtc.DataPacket.__dataclass_fields__) == list(official.DataPacket.__dataclass_fields__)
    assert list(rtc.SipDTMF.__dataclass_fields__) == list(official.SipDTMF.__dataclass_fields__)
    assert list(rtc.TranscriptionSegment.__dataclass_fields__) == list(
        official.TranscriptionSegment.__dataclass_fields__
    )
    for name in ("RpcInvocationData", "RpcCallInfo"):
        assert list(getattr(rtc, name).__dataclass_fields__) == list(
            getattr(official, name).__dataclass_fields__
        ), name
    assert params(rtc.RpcError.__init__) == params(official.RpcError.__init__)
    for method in (
        "register_text_stream_handler",
        "unregister_text_stream_handler",
        "register_byte_stream_handler",
        "unregister_byte_stream_handler",
    ):
        assert params(getattr(rtc.Room, method)) == params(getattr(official.Room, method)), method
    for name in ("TextStreamInfo", "ByteStreamInfo"):
        assert list(getattr(rtc, name).__dataclass_fields__) == list(
            getattr(official, name).__dataclass_fields__
        ), name
    for cls in ("TextStreamReader", "ByteStreamReader"):
        for attr in ("__aiter__", "__anext__", "close", "aclose", "info"):
            assert hasattr(getattr(official, cls), attr), (cls, attr)
            assert hasattr(getattr(rtc, cls), attr), (cls, attr)
    assert hasattr(rtc.TextStreamReader, "read_all")
    for cls in ("TextStreamWriter", "ByteStreamWriter"):
        for method in ("write", "aclose"):
            assert params(getattr(getattr(rtc, cls), method)) == params(
                getattr(getattr(official, cls), method)
            ), (cls, method)
    assert rtc.StreamError("x").description == "x"
    assert issubclass(rtc.StreamError, ConnectionError)
    for name in ("intercept_outgoing", "intercept_incoming"):
        assert params(getattr(rtc.RpcInterceptor, name)) == params(getattr(official.RpcInterceptor, name))
    assert room.__all__
    assert participant.__all__


def test_enum_lookups_fail_as_protobufs_do() -> None:
    assert rtc.DisconnectReason.Name(3) == "SERVER_SHUTDOWN"
    assert rtc.DisconnectReason.Value("ROOM_DELETED") is rtc.DisconnectReason.ROOM_DELETED
    assert int(rtc.DisconnectReason.ROOM_DELETED) == 5
    with pytest.raises(ValueError, match="no name defined for value 999"):
        rtc.DisconnectReason.Name(999)
    with pytest.raises(ValueError, match="no value defined for name 'NOPE'"):
        rtc.TrackKind.Value("NOPE")
    for name in ("Name", "Value"):
        with pytest.raises(ValueError):
            getattr(official.DisconnectReason, name)(999 if name == "Name" else "NOPE")


def test_video_encoding_has_the_official_fields() -> None:
    assert list(official.VideoEncoding.DESCRIPTOR.fields_by_name) == ["max_bitrate", "max_framerate"]
    options = rtc.TrackPublishOptions(
        video_encoding=rtc.VideoEncoding(max_bitrate=1_500_000, max_framerate=30)
    )
    assert options.video_encoding is not None
    assert options.video_encoding.max_bitrate == 1_500_000
