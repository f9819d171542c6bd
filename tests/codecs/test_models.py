from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from livekit.protocol import models as pm
from livekit.protocol import rtc as pr

from greenroom.codecs import models
from greenroom.codecs.errors import CodecError
from greenroom.codecs.models import (
    IceCandidate,
    ParticipantInfo,
    TrackInfo,
    TrackSource,
    TrackType,
    frozen_map,
)
from tests.codecs.signal_strategies import for_type

# every value type with a protobuf twin
PROTO_TYPES = [
    models.Codec,
    models.RoomInfo,
    models.ParticipantPermission,
    models.VideoLayer,
    models.SimulcastCodecInfo,
    models.TrackInfo,
    models.ParticipantInfo,
    models.ServerInfo,
    models.ClientConfiguration,
    models.SpeakerInfo,
    models.ParticipantTracks,
    models.IceServer,
    models.ConnectionQualityInfo,
    models.StreamStateInfo,
    models.TrackPermission,
    models.RegionInfo,
    models.SessionDescription,
    models.DataChannelInfo,
    models.DataChannelReceiveState,
]

# our enum -> the protobuf enum it mirrors
ENUMS: list[tuple[type[enum.IntEnum], Any]] = [
    (models.ParticipantState, pm.ParticipantInfo.State),
    (models.ParticipantKind, pm.ParticipantInfo.Kind),
    (models.TrackType, pm.TrackType),
    (models.TrackSource, pm.TrackSource),
    (models.DisconnectReason, pm.DisconnectReason),
    (models.ReconnectReason, pm.ReconnectReason),
    (models.ConnectionQuality, pm.ConnectionQuality),
    (models.StreamState, pr.StreamState),
    (models.SignalTarget, pr.SignalTarget),
    (models.LeaveAction, pr.LeaveRequest.Action),
    (models.RequestResponseReason, pr.RequestResponse.Reason),
    (models.VideoQuality, pm.VideoQuality),
    (models.EncryptionType, pm.Encryption.Type),
    (models.SubscriptionError, pm.SubscriptionError),
    (models.ClientConfigSetting, pm.ClientConfigSetting),
]


@pytest.mark.parametrize(("ours", "theirs"), ENUMS, ids=lambda e: getattr(e, "__name__", ""))
def test_enum_numbers_match_the_protobuf(ours: type[enum.IntEnum], theirs: Any) -> None:
    assert {m.name: m.value for m in ours} == dict(theirs.items())


def test_server_edition_numbers_match_the_protobuf() -> None:
    # the protobuf spells these members in CamelCase
    assert [(m.name.lower(), m.value) for m in models.ServerEdition] == [
        (n.lower(), v) for n, v in pm.ServerInfo.Edition.items()
    ]


@pytest.mark.parametrize("cls", PROTO_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=40)
@given(data=st.data())
def test_round_trip_through_protobuf_bytes(cls: type, data: st.DataObject) -> None:
    value = data.draw(for_type(cls))
    pb = value.to_proto()
    again = type(pb).FromString(pb.SerializeToString())
    assert cls.from_proto(again) == value  # type: ignore[attr-defined]
    assert hash(cls.from_proto(again)) == hash(value)  # type: ignore[attr-defined]


def test_values_are_frozen_and_hashable() -> None:
    info = ParticipantInfo("PA_1", "alice", tracks=(TrackInfo("TR_1", TrackType.AUDIO),))
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.name = "bob"  # type: ignore[misc]
    assert {info: 1}[info] == 1


def test_string_maps_are_sorted_pairs_with_the_last_duplicate_winning() -> None:
    assert frozen_map({"b": "2", "a": "1"}) == (("a", "1"), ("b", "2"))
    assert frozen_map([("k", "1"), ("k", "2")]) == (("k", "2"),)
    one = ParticipantInfo("PA_1", "a", attributes=(("y", "1"), ("x", "2")))
    two = ParticipantInfo("PA_1", "a", attributes=frozen_map({"x": "2", "y": "1"}))
    assert one == two
    assert one.attributes == (("x", "2"), ("y", "1"))
    assert dict(one.to_proto().attributes) == {"x": "2", "y": "1"}


def test_an_unknown_enum_number_decodes_to_the_zero_member() -> None:
    # LiveKit enums are open: a newer peer may send numbers we do not know
    pb = pm.TrackInfo(sid="TR_1", type=9, source=42)  # type: ignore[arg-type]
    pb.ParseFromString(pb.SerializeToString())
    track = TrackInfo.from_proto(pb)
    assert track.type is TrackType.AUDIO
    assert track.source is TrackSource.UNKNOWN
    perm = models.ParticipantPermission.from_proto(
        pm.ParticipantPermission(can_publish_sources=[1, 77])  # type: ignore[list-item]
    )
    assert perm.can_publish_sources == (TrackSource.CAMERA, TrackSource.UNKNOWN)


def test_participant_permission_is_optional() -> None:
    assert ParticipantInfo.from_proto(pm.ParticipantInfo(sid="PA_1")).permission is None
    info = ParticipantInfo("PA_1", "a", permission=models.ParticipantPermission(can_publish=False))
    assert info.to_proto().HasField("permission")
    assert ParticipantInfo.from_proto(info.to_proto()) == info


# --- IceCandidate: the JSON inside TrickleRequest.candidateInit ---------------------------------------

RUST_CANDIDATE = (
    '{"candidate":"candidate:1 1 udp 2122260223 198.18.0.1 51234 typ host","sdpMid":"0","sdpMLineIndex":0}'
)
JS_CANDIDATE = (
    '{"candidate":"candidate:2 1 udp 1 10.0.0.1 9 typ host","sdpMid":"1","sdpMLineIndex":1,'
    '"usernameFragment":"abcd","extra":true}'
)


def test_candidate_from_rust_and_js_json() -> None:
    rust = IceCandidate.from_json(RUST_CANDIDATE)
    assert rust == IceCandidate("candidate:1 1 udp 2122260223 198.18.0.1 51234 typ host", "0", 0, None)
    js = IceCandidate.from_json(JS_CANDIDATE)
    assert (js.sdp_mid, js.sdp_mline_index, js.username_fragment) == ("1", 1, "abcd")


def test_candidate_json_omits_absent_keys() -> None:
    assert json.loads(IceCandidate("").to_json()) == {"candidate": ""}
    full = IceCandidate("candidate:x", "0", 3, "uf")
    assert json.loads(full.to_json()) == {
        "candidate": "candidate:x",
        "sdpMid": "0",
        "sdpMLineIndex": 3,
        "usernameFragment": "uf",
    }
    assert IceCandidate.from_json('{"candidate":"c","sdpMid":null,"sdpMLineIndex":null}') == IceCandidate("c")


@given(for_type(IceCandidate))
def test_candidate_json_round_trip(candidate: IceCandidate) -> None:
    assert IceCandidate.from_json(candidate.to_json()) == candidate


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[1, 2]",
        '"candidate"',
        "{}",
        '{"candidate": 5}',
        '{"candidate": "c", "sdpMid": 0}',
        '{"candidate": "c", "sdpMLineIndex": "0"}',
        '{"candidate": "c", "sdpMLineIndex": true}',
        '{"candidate": "c", "sdpMLineIndex": -1}',
        '{"candidate": "c", "sdpMLineIndex": 65536}',
        '{"candidate": "c", "sdpMLineIndex": 1.5}',
        '{"candidate": "c", "usernameFragment": []}',
        "[" * 100_000,
    ],
)
def test_bad_candidate_json_raises_codec_error(text: str) -> None:
    with pytest.raises(CodecError):
        IceCandidate.from_json(text)
