"""The connection's pure rules and its machine: states, transitions, held and in-flight requests, leaves."""

from __future__ import annotations

from typing import Any

import pytest
from aiortc import RTCIceTransportPolicy

from greenroom.actors.connection import (
    PING_TICK_SLACK,
    TRANSITIONS,
    Admission,
    BeginReconnect,
    Connected,
    ConnectionMachine,
    ConnEvent,
    ConnState,
    Deadline,
    Expired,
    FailRequests,
    Garbled,
    Joined,
    LeaveReceived,
    Lost,
    OnLoss,
    OpenLink,
    RecipientsBack,
    Refused,
    ReleaseLink,
    Replay,
    Restored,
    RetryDue,
    ScheduleRetry,
    Start,
    StartSession,
    Stop,
    Teardown,
    Up,
    describe_refusal,
    ice_policy_for,
    ice_policy_joined,
    leave_reconnects,
    next_ping_tick,
    reconnect_delay,
)
from greenroom.actors.messages import ConnectOptions
from greenroom.codecs.models import (
    ClientConfigSetting,
    ClientConfiguration,
    DisconnectReason,
    IceServer,
    LeaveAction,
)
from greenroom.codecs.signalling import Leave
from greenroom.runtime.signal_transport import SignalConnectError


@pytest.mark.parametrize(
    ("leave", "again"),
    [
        (Leave(reason=DisconnectReason.SERVER_SHUTDOWN, action=LeaveAction.RECONNECT), True),
        (Leave(reason=DisconnectReason.SERVER_SHUTDOWN, action=LeaveAction.RESUME), True),
        (Leave(reason=DisconnectReason.SERVER_SHUTDOWN, action=LeaveAction.DISCONNECT), False),
        (Leave(reason=DisconnectReason.SERVER_SHUTDOWN, can_reconnect=True), True),
        (Leave(reason=DisconnectReason.DUPLICATE_IDENTITY, action=LeaveAction.RECONNECT), False),
        (Leave(reason=DisconnectReason.ROOM_DELETED, can_reconnect=True), False),
    ],
)
def test_which_leave_reconnects(leave: Leave, again: bool) -> None:
    assert leave_reconnects(leave) is again


def test_the_reconnect_schedule() -> None:
    options = ConnectOptions()
    delays = [reconnect_delay(n, options, 0.0) for n in range(1, 11)]
    assert delays == pytest.approx([0, 0.3, 0.6, 1.2, 2.4, 4.8, 7, 7, 7, 7])
    assert reconnect_delay(3, options, 0.999) == pytest.approx(0.6 * 1.4995)


def test_ice_policy_follows_the_server_address() -> None:
    assert ice_policy_for("ws://127.0.0.1:7880", ConnectOptions()).gather_addresses == ("127.0.0.1",)
    assert ice_policy_for("ws://localhost:7880", ConnectOptions()).gather_addresses == ("127.0.0.1",)
    assert ice_policy_for("wss://example.org", ConnectOptions()).gather_addresses is None
    servers = (IceServer(urls=("turn:127.0.0.1:3478",), username="u", credential="c"),)
    policy = ice_policy_for("ws://[::1]:7880", ConnectOptions(ice_servers=servers))
    assert policy.ice_servers[0].username == "u"


def test_the_ping_tick_fires_at_the_silence_deadline() -> None:
    assert next_ping_tick(100.0, 5.0, None) == 5.0
    assert next_ping_tick(100.0, 5.0, 115.0) == 5.0  # the next ping first
    assert next_ping_tick(100.0, 5.0, 103.0) == pytest.approx(3.0 + PING_TICK_SLACK)  # the deadline first
    assert next_ping_tick(100.0, 5.0, 99.0) == PING_TICK_SLACK  # overdue: at once


def test_the_join_response_completes_the_ice_policy() -> None:
    """The join's ICE servers unless the user gave some; relay-only if the user or the server says so;
    all of it in the RTCConfiguration aiortc gets."""
    stun = (IceServer(urls=("stun:10.0.0.1:3478",)),)
    turn = (IceServer(urls=("turn:10.0.0.2:3478?transport=udp",), username="u", credential="c"),)
    forced = ClientConfiguration(force_relay=ClientConfigSetting.ENABLED)
    plain = ConnectOptions()
    joined = ice_policy_joined(ice_policy_for("ws://h", plain), plain, turn, None)
    assert ([s.urls for s in joined.ice_servers], joined.relay_only) == ([turn[0].urls], False)
    configuration = joined.rtc_configuration()
    assert configuration.iceServers is not None
    assert (configuration.iceServers[0].username, configuration.iceServers[0].credential) == ("u", "c")
    assert configuration.iceTransportPolicy is RTCIceTransportPolicy.ALL
    mine = ConnectOptions(ice_servers=stun)
    joined = ice_policy_joined(ice_policy_for("ws://h", mine), mine, turn, forced)
    assert ([s.urls for s in joined.ice_servers], joined.relay_only) == ([stun[0].urls], True)
    assert joined.rtc_configuration().iceTransportPolicy is RTCIceTransportPolicy.RELAY
    relay = ConnectOptions(relay_only=True)
    disabled = ClientConfiguration(force_relay=ClientConfigSetting.DISABLED)
    assert ice_policy_joined(ice_policy_for("ws://h", relay), relay, (), disabled).relay_only


def test_refusals_are_described() -> None:
    assert describe_refusal(SignalConnectError(None, "refused")) == "cannot reach the server: refused"
    assert "(401)" in describe_refusal(SignalConnectError(401, "invalid token"))


# -- the connection machine: events in, actions out ----------------------------------------------------------

LOST = DisconnectReason.SIGNAL_CLOSE


def started(**options: Any) -> ConnectionMachine[str]:
    machine: ConnectionMachine[str] = ConnectionMachine(hold_capacity=2)
    start = Start(ConnectOptions(**options))
    assert machine.handle(start) == [OpenLink(1, start.options.timeout)]
    return machine


def connected(**options: Any) -> ConnectionMachine[str]:
    machine = started(**options)
    assert machine.handle(Joined(1)) == [StartSession(rejoin=False)]
    assert machine.handle(Up(1)) == [Connected()]
    assert machine.state is ConnState.CONNECTED
    return machine


def reconnecting() -> ConnectionMachine[str]:
    machine = connected()
    actions = machine.handle(Lost(1, LOST, "signal closed"))
    assert actions == [BeginReconnect(LOST), ReleaseLink(send_leave=False), ScheduleRetry(1, 0.0, 1)]
    assert machine.state is ConnState.RECONNECTING
    return machine


def test_a_leave_goes_only_into_a_link_whose_signal_still_works() -> None:
    """No ``leave`` on a link known dead (signal closed, ping timeout, the server's own leave): a real server
    would record it as a deliberate leave. Once connected, not either when only a peer connection failed: the
    others would hear a deliberate leave, not a fault (their senders would not report what was in flight);
    while an attempt connects, a failed peer connection leaves its signal working and it says goodbye."""
    media = DisconnectReason.MEDIA_FAILURE
    for event, leave in (
        (Lost(1, LOST, "ping timeout"), False),
        (LeaveReceived(1, DisconnectReason.SERVER_SHUTDOWN, True, "leave"), False),
        (Lost(1, media, "publisher failed"), False),
    ):
        actions = connected().handle(event)
        assert actions[1] == ReleaseLink(send_leave=leave), event
    machine = reconnecting()
    machine.handle(RetryDue(1))
    assert machine.handle(Lost(2, LOST, "ping timeout"))[0] == ReleaseLink(send_leave=False)
    machine.handle(RetryDue(2))
    assert machine.handle(Lost(3, media, "pc failed"))[0] == ReleaseLink(send_leave=True)
    assert started().handle(Lost(1, LOST, "signal closed"))[0].send_leave is False  # type: ignore[union-attr]


def test_connect_join_up_is_connected() -> None:
    machine = connected()
    assert machine.generation == 1
    assert machine.admit("data") is Admission.PROCESS


def test_a_failed_connect_closes_without_an_event() -> None:
    cases: list[tuple[ConnEvent, str]] = [
        (Refused(1, "cannot reach the server"), "cannot reach the server"),
        (Deadline(1), "timed out after 10.0 s waiting for the room"),
        (Garbled(1, "bad frame"), "the server broke the protocol: bad frame"),
        (Lost(1, DisconnectReason.MEDIA_FAILURE, "pc failed"), "pc failed"),
        (
            LeaveReceived(1, DisconnectReason.JOIN_FAILURE, False, "leave"),
            "the server refused the join: JOIN_FAILURE",
        ),
    ]
    for event, why in cases:
        machine = started(timeout=10.0)
        assert machine.handle(event) == [Teardown(DisconnectReason.JOIN_FAILURE, True, False, (), why)]
        assert machine.state is ConnState.CLOSED
    signal_lost = started(timeout=10.0).handle(Lost(1, LOST, "signal closed"))
    assert signal_lost == [Teardown(DisconnectReason.JOIN_FAILURE, False, False, (), "signal closed")]


def test_events_of_another_link_or_state_are_ignored() -> None:
    machine = connected()
    assert machine.handle(Lost(0, LOST, "an old link")) == []
    assert machine.handle(Deadline(1)) == []  # not connecting any more
    assert machine.handle(Garbled(1, "a bad frame")) == []  # dropped, not fatal once connected
    assert machine.handle(Start(ConnectOptions())) == []
    assert machine.state is ConnState.CONNECTED


def test_a_lost_link_reconnects_and_replays_held_requests() -> None:
    machine = reconnecting()
    assert machine.handle(Up(1)) == []  # the released link's late events do not count
    assert machine.admit("a") is Admission.HELD
    assert machine.admit("b") is Admission.HELD
    assert machine.admit("c") is Admission.REFUSED
    assert (machine.held, machine.held_total, machine.refused_total) == (2, 2, 1)
    assert machine.handle(RetryDue(1)) == [OpenLink(2, ConnectOptions().timeout)]
    assert machine.handle(RetryDue(2)) == []  # a link is open already
    assert machine.handle(Joined(2)) == [StartSession(rejoin=True)]
    assert machine.handle(Up(2)) == [Restored()]
    assert (machine.state, machine.attempt, machine.held) == (ConnState.CONNECTED, 0, 2)
    assert machine.recovering  # connected, but the held wait for their recipients (and new ones join them)
    assert machine.admit("d") is Admission.REFUSED
    assert machine.handle(RecipientsBack(1)) == []  # of an earlier link
    assert machine.handle(RecipientsBack(2)) == [Replay(("a", "b"))]
    assert machine.handle(RecipientsBack(2)) == []  # once: the grace timer after the roster said so
    assert (machine.recovering, machine.held) == (False, 0)
    assert machine.admit("e") is Admission.PROCESS


def test_failed_attempts_back_off_then_give_up() -> None:
    machine = reconnecting()
    machine.handle(RetryDue(1))
    actions = machine.handle(Refused(2, "refused"), sample=0.0)
    assert actions == [ReleaseLink(send_leave=True), ScheduleRetry(2, 0.3, 2, "refused")]
    machine.handle(RetryDue(2))
    actions = machine.handle(Refused(3, "invalid token", fatal=True))
    assert actions[0] == ReleaseLink(send_leave=True)
    assert actions[1] == Teardown(
        LOST, False, True, (), "giving up reconnecting after 2 attempt(s): invalid token", stop=True
    )


def test_every_failure_of_an_attempt_counts() -> None:
    machine = reconnecting()
    failures: list[ConnEvent] = [
        Deadline(2),
        Garbled(3, "x"),
        Lost(4, LOST, "pc failed"),
        LeaveReceived(5, LOST, True, "l"),
    ]
    for event in failures:
        machine.handle(RetryDue(machine.generation))
        actions = machine.handle(event)
        assert isinstance(actions[-1], ScheduleRetry)
    assert machine.attempt == 5


def test_reconnect_disabled_closes_at_once() -> None:
    machine = connected(reconnect_attempts=0)
    assert machine.handle(Lost(1, LOST, "signal closed")) == [
        Teardown(LOST, False, True, (), "the room disconnected (SIGNAL_CLOSE)")
    ]


def test_leave_decides_by_state_and_action() -> None:
    machine = connected()
    again = LeaveReceived(1, DisconnectReason.SERVER_SHUTDOWN, True, "leave")
    assert isinstance(machine.handle(again)[0], BeginReconnect)
    gone = connected()
    removed = DisconnectReason.PARTICIPANT_REMOVED
    actions = gone.handle(LeaveReceived(1, removed, False, "leave"))
    assert actions == [Teardown(removed, False, True, (), "the room disconnected (PARTICIPANT_REMOVED)")]
    away = reconnecting()
    away.handle(RetryDue(1))
    assert away.handle(LeaveReceived(2, removed, False, "leave"))[0] == Teardown(
        removed, False, True, (), "the room disconnected (PARTICIPANT_REMOVED)"
    )


def test_requests_in_flight_fail_or_retry_on_loss_and_expire_by_ticket() -> None:
    machine = connected()
    first = machine.sent(7, "metadata", on_loss=OnLoss.FAIL, why_late="no answer")
    machine.sent("cid", "publish", on_loss=OnLoss.RETRY, why_late="no track_published")
    assert machine.in_flight(7)
    assert machine.in_flight("cid")
    assert machine.keys_in_flight() == (7, "cid")
    actions = machine.handle(Lost(1, LOST, "signal closed"))
    assert FailRequests(("metadata",), "the connection was lost before the server answered") in actions
    assert machine.held == 1  # the publish is asked again first
    assert machine.expire(Expired(7, first)) == []  # already failed
    machine.handle(RetryDue(1))
    machine.handle(Up(2))
    again = machine.sent("cid", "publish", on_loss=OnLoss.RETRY, why_late="no track_published")
    assert machine.expire(Expired("cid", again - 1)) == []  # the timer of the earlier sending
    assert machine.expire(Expired("cid", again)) == [FailRequests(("publish",), "no track_published", True)]
    machine.sent(8, "name", on_loss=OnLoss.FAIL, why_late="no answer")
    assert machine.answered(8) == "name"
    assert machine.answered(8) is None


def test_a_close_fails_everything_waiting_and_reports_once() -> None:
    machine = reconnecting()
    machine.admit("held")
    machine.handle(RetryDue(1))
    machine.sent(1, "in flight", on_loss=OnLoss.FAIL, why_late="late")
    stop = Stop(DisconnectReason.CLIENT_INITIATED)
    assert machine.handle(stop) == [
        Teardown(
            DisconnectReason.CLIENT_INITIATED,
            True,
            True,
            ("in flight", "held"),
            "the room disconnected (CLIENT_INITIATED)",
        )
    ]
    assert machine.handle(stop) == []  # closed: nothing more
    idle: ConnectionMachine[str] = ConnectionMachine()
    assert idle.handle(Stop(DisconnectReason.CLIENT_INITIATED, emit=True))[0] == Teardown(
        DisconnectReason.CLIENT_INITIATED, True, False, (), "the room disconnected (CLIENT_INITIATED)"
    )


def test_every_transition_is_a_documented_state() -> None:
    assert {state for state, _event in TRANSITIONS} == set(ConnState) - {ConnState.CLOSED}
