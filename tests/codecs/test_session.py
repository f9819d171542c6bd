from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from greenroom.codecs import signalling as sig
from greenroom.codecs.errors import CodecError, LocalProtocolError, RemoteProtocolError
from greenroom.codecs.models import (
    DisconnectReason,
    LeaveAction,
    ParticipantInfo,
    RequestResponseReason,
    RoomInfo,
    ServerInfo,
)
from greenroom.codecs.session import (
    CLIENT_RECEIVE,
    CLIENT_SEND,
    SERVER_RECEIVE,
    SERVER_SEND,
    ClientSignalSession,
    ClientState,
    ServerSignalSession,
    ServerState,
)

JOIN = sig.JoinResponse(
    room=RoomInfo("RM_r", "demo"),
    participant=ParticipantInfo("PA_a", "alice"),
    server_info=ServerInfo("1.9.0"),
    ping_interval=5,
    ping_timeout=15,
)


@dataclass
class SessionPair:
    """A client and a server session back to back, no sockets (h11's ConnectionPair)."""

    client: ClientSignalSession = field(default_factory=ClientSignalSession)
    server: ServerSignalSession = field(default_factory=lambda: ServerSignalSession(0.0))

    def to_client(self, msg: sig.SignalResponseMessage, now: float = 0.0) -> list[sig.SignalResponseMessage]:
        self.client.receive_data(self.server.send(msg), now)
        return self.client.events()

    def to_server(self, msg: sig.SignalRequestMessage, now: float = 0.0) -> list[sig.SignalRequestMessage]:
        self.server.receive_data(self.client.send(msg), now)
        return self.server.events()

    def replies_to_client(self, now: float) -> list[sig.SignalResponseMessage]:
        for data in self.server.data_to_send():
            self.client.receive_data(data, now)
        return self.client.events()


def joined_pair() -> SessionPair:
    pair = SessionPair()
    assert pair.to_client(JOIN) == [JOIN]
    return pair


def test_join_moves_both_sides_and_sets_keepalive() -> None:
    pair = SessionPair()
    assert (pair.client.state, pair.server.state) == (ClientState.CONNECTING, ServerState.AWAITING_JOIN)
    pair.to_client(JOIN, now=1.0)
    assert (pair.client.state, pair.server.state) == (ClientState.JOINED, ServerState.ACTIVE)
    assert pair.client.join == JOIN
    assert (pair.client.ping_interval, pair.client.ping_timeout) == (5.0, 15.0)
    assert pair.server.ping_timeout == 15.0


def test_messages_flow_both_ways_and_drain_in_order() -> None:
    pair = joined_pair()
    offer = sig.Offer("v=0", id=1)
    pair.client.receive_data(pair.server.send(offer), 0.0)
    pair.client.receive_data(pair.server.send(sig.RefreshToken("t")), 0.0)
    assert pair.client.next_event() == offer
    assert pair.client.next_event() == sig.RefreshToken("t")
    assert pair.client.next_event() is None
    assert pair.to_server(sig.Answer("v=0", id=1)) == [sig.Answer("v=0", id=1)]
    assert pair.server.next_event() is None


def test_client_rejects_anything_but_join_first() -> None:
    pair = SessionPair()
    data = sig.encode_response(sig.RefreshToken("t"))
    with pytest.raises(RemoteProtocolError) as info:
        pair.client.receive_data(data, 0.0)
    assert info.value.leave_reason == "JOIN_FAILURE"
    assert pair.client.state is ClientState.CONNECTING  # a receive error leaves the state alone
    with pytest.raises(RemoteProtocolError):
        pair.client.receive_data(sig.encode_response(sig.ReconnectResponse()), 0.0)


def test_client_rejects_a_second_join() -> None:
    pair = joined_pair()
    with pytest.raises(RemoteProtocolError) as info:
        pair.client.receive_data(sig.encode_response(JOIN), 0.0)
    assert info.value.leave_reason == "STATE_MISMATCH"


def test_client_refused_with_leave_before_join_is_closed() -> None:
    pair = SessionPair()
    refusal = sig.Leave(DisconnectReason.STATE_MISMATCH, LeaveAction.RECONNECT)
    assert pair.to_client(refusal) == [refusal]
    assert (pair.client.state, pair.server.state) == (ClientState.CLOSED, ServerState.CLOSED)


def test_client_may_only_leave_before_join() -> None:
    client = ClientSignalSession()
    with pytest.raises(LocalProtocolError):
        client.send(sig.PingReq(1))
    assert sig.decode_request(client.send(sig.Leave())) == sig.Leave()
    assert client.state is ClientState.CLOSED


def test_resume_expects_reconnect_first_and_keeps_keepalive() -> None:
    client = ClientSignalSession(resume=True, ping_interval=5, ping_timeout=15)
    server = ServerSignalSession(0.0)
    assert client.state.name == "RESUMING"
    with pytest.raises(RemoteProtocolError):
        client.receive_data(sig.encode_response(JOIN), 0.0)
    client.receive_data(server.send(sig.ReconnectResponse(last_message_seq=3)), 1.0)
    assert client.state is ClientState.JOINED
    assert server.state is ServerState.ACTIVE
    assert client.ping_due(1.0)
    assert not client.timed_out(16.0)
    assert client.timed_out(16.5)


def test_leave_closes_both_sides_and_nothing_passes_afterwards() -> None:
    pair = joined_pair()
    assert pair.to_server(sig.Leave()) == [sig.Leave()]
    assert (pair.client.state, pair.server.state) == (ClientState.CLOSED, ServerState.CLOSED)
    with pytest.raises(LocalProtocolError):
        pair.client.send(sig.PingReq(1))
    with pytest.raises(LocalProtocolError):
        pair.server.send(sig.RefreshToken("t"))
    with pytest.raises(RemoteProtocolError) as server_side:
        pair.server.receive_data(sig.encode_request(sig.PingReq(1)), 0.0)
    assert server_side.value.leave_reason == "STATE_MISMATCH"
    with pytest.raises(RemoteProtocolError):
        pair.client.receive_data(sig.encode_response(sig.RefreshToken("t")), 0.0)


def test_server_leave_closes_the_client() -> None:
    pair = joined_pair()
    pair.to_client(sig.Leave(DisconnectReason.DUPLICATE_IDENTITY))
    assert (pair.client.state, pair.server.state) == (ClientState.CLOSED, ServerState.CLOSED)


def test_server_rejects_requests_before_it_sent_join() -> None:
    server = ServerSignalSession(0.0)
    with pytest.raises(RemoteProtocolError) as info:
        server.receive_data(sig.encode_request(sig.PingReq(1)), 0.0)
    assert info.value.leave_reason == "STATE_MISMATCH"


def test_server_must_open_with_join_reconnect_or_leave() -> None:
    server = ServerSignalSession(0.0)
    with pytest.raises(LocalProtocolError):
        server.send(sig.RefreshToken("t"))
    server.send(JOIN)
    with pytest.raises(LocalProtocolError):
        server.send(JOIN)  # only once
    with pytest.raises(LocalProtocolError):
        server.send(sig.Unhandled("room_moved"))
    assert ServerSignalSession(0.0).send(sig.Leave(DisconnectReason.JOIN_FAILURE))


@pytest.mark.parametrize(
    ("join", "problem"),
    [
        (replace(JOIN, room=None), "room"),
        (replace(JOIN, participant=None), "PA_"),
        (replace(JOIN, participant=ParticipantInfo("P_a", "alice")), "PA_"),
        (replace(JOIN, ping_interval=0), "ping"),
        (replace(JOIN, ping_timeout=0), "ping"),
        (replace(JOIN, server_info=None), "server version"),
        (replace(JOIN, server_info=ServerInfo("")), "server version"),
    ],
)
def test_server_refuses_a_join_the_sdks_would_reject(join: sig.JoinResponse, problem: str) -> None:
    server = ServerSignalSession(0.0)
    with pytest.raises(LocalProtocolError, match=problem):
        server.send(join)
    assert server.state is ServerState.AWAITING_JOIN
    server.send(replace(join, server_version="1.9.0") if problem == "server version" else JOIN)


def test_server_answers_pings_by_itself() -> None:
    pair = joined_pair()
    events = pair.to_server(sig.PingReq(timestamp=1000, rtt=0), now=1.25)
    assert events == [sig.PingReq(1000, 0)]
    assert pair.replies_to_client(now=1.5) == [sig.PongResp(last_ping_timestamp=1000, timestamp=1250)]
    assert pair.client.rtt == 500
    pair.to_server(sig.LegacyPing(7), now=2.0)
    assert pair.replies_to_client(now=2.0) == [sig.LegacyPong(2000)]
    assert pair.server.data_to_send() == []


def test_client_ping_schedule_and_rtt() -> None:
    pair = SessionPair()
    assert not pair.client.ping_due(0.0)  # not joined
    with pytest.raises(LocalProtocolError):
        pair.client.make_ping(0.0)
    pair.to_client(JOIN, now=10.0)
    assert pair.client.ping_due(10.0)  # the first one right away
    assert pair.client.rtt is None
    ping = sig.decode_request(pair.client.make_ping(10.0))
    assert ping == sig.PingReq(timestamp=10_000, rtt=0)
    assert not pair.client.ping_due(14.9)
    assert pair.client.ping_due(15.0)
    pair.server.receive_data(pair.client.make_ping(15.0), 15.0)
    pair.replies_to_client(15.02)
    assert pair.client.rtt == 20
    assert sig.decode_request(pair.client.make_ping(20.0)) == sig.PingReq(20_000, 20)


def test_a_pong_from_a_skewed_clock_never_gives_a_negative_rtt() -> None:
    pair = joined_pair()
    pair.client.receive_data(sig.encode_response(sig.PongResp(99_999, 0)), 1.0)
    assert pair.client.rtt == 0


def test_zero_ping_interval_disables_pings_and_timeouts() -> None:
    client = ClientSignalSession()
    client.receive_data(sig.encode_response(replace(JOIN, ping_interval=0, ping_timeout=0)), 0.0)
    assert not client.ping_due(100.0)
    assert not client.timed_out(1e9)
    assert client.silence_deadline() is None
    assert ClientSignalSession(ping_timeout=15).silence_deadline() is None  # nothing received yet


def test_client_times_out_after_ping_timeout_of_silence() -> None:
    pair = SessionPair()
    assert not pair.client.timed_out(1e9)  # before join the runtime's join deadline applies
    pair.to_client(JOIN, now=0.0)
    assert not pair.client.timed_out(15.0)
    assert pair.client.timed_out(15.1)
    pair.to_client(sig.RefreshToken("t"), now=15.1)  # any message counts as life
    assert not pair.client.timed_out(30.0)
    assert pair.client.silence_deadline() == pytest.approx(30.1)


def test_server_times_out_from_accept_and_from_the_last_request() -> None:
    pair = SessionPair()
    assert not pair.server.timed_out(15.0)
    assert pair.server.timed_out(15.5)  # never joined: the clock started at accept
    pair.to_client(replace(JOIN, ping_timeout=30), now=0.0)
    assert not pair.server.timed_out(29.0)
    pair.to_server(sig.PingReq(1), now=29.0)
    assert not pair.server.timed_out(58.0)
    assert pair.server.timed_out(59.5)


def test_request_ids_match_request_responses() -> None:
    pair = joined_pair()
    first, second = pair.client.next_request_id(), pair.client.next_request_id()
    assert (first, second) == (1, 2)
    pair.to_server(sig.UpdateMetadata(request_id=first, name="A"))
    pair.to_server(sig.UpdateMetadata(request_id=second, metadata="m"))
    pair.to_server(sig.UpdateMetadata(name="no id"))
    assert pair.client.pending_requests == {1, 2}
    events = pair.to_client(sig.RequestResponse(first, RequestResponseReason.OK))
    assert events == [sig.RequestResponse(1)]
    pair.to_client(sig.RequestResponse(99, RequestResponseReason.NOT_FOUND))  # unknown ids still surface
    assert pair.client.pending_requests == {2}


def test_request_ids_wrap_within_uint32_and_skip_zero() -> None:
    client = ClientSignalSession()
    client._request_id = 0xFFFF_FFFE
    assert [client.next_request_id() for _ in range(3)] == [0xFFFF_FFFF, 1, 2]


def test_bad_bytes_raise_codec_errors_and_keep_the_state() -> None:
    pair = joined_pair()
    with pytest.raises(CodecError):
        pair.client.receive_data(b"\xff\xff", 0.0)
    with pytest.raises(CodecError):
        pair.server.receive_data(b"", 0.0)
    assert (pair.client.state, pair.server.state) == (ClientState.JOINED, ServerState.ACTIVE)
    pair.to_server(sig.Leave())  # the session can still be closed cleanly


def test_unhandled_messages_are_events_too() -> None:
    pair = joined_pair()
    from livekit.protocol import rtc as pr

    data = pr.SignalRequest(update_layers=pr.UpdateVideoLayers()).SerializeToString()
    pair.server.receive_data(data, 0.0)
    assert pair.server.events() == [sig.Unhandled("update_layers")]


def test_transition_tables_cover_every_state() -> None:
    assert set(CLIENT_RECEIVE) == set(CLIENT_SEND) == set(ClientState)
    assert set(SERVER_RECEIVE) == set(SERVER_SEND) == set(ServerState)
    assert all(not row for row in (CLIENT_RECEIVE[ClientState.CLOSED], SERVER_SEND[ServerState.CLOSED]))


def test_server_sends_an_update_encoded_once_for_many_sessions_with_each_ones_checks() -> None:
    update = sig.RefreshToken("t")
    encoded = sig.encode_response(update)
    joined = joined_pair().server
    assert joined.send(update, encoded=encoded) is encoded
    with pytest.raises(LocalProtocolError):
        ServerSignalSession(0.0).send(update, encoded=encoded)  # the state is still checked
