"""The connection's pure rules: which leave reconnects, the reconnect schedule, the ICE policy, refusals."""

from __future__ import annotations

import pytest

from greenroom.actors.connection import describe_refusal, ice_policy_for, leave_reconnects, reconnect_delay
from greenroom.actors.messages import ConnectOptions
from greenroom.codecs.models import DisconnectReason, IceServer, LeaveAction
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


def test_refusals_are_described() -> None:
    assert describe_refusal(SignalConnectError(None, "refused")) == "cannot reach the server: refused"
    assert "(401)" in describe_refusal(SignalConnectError(401, "invalid token"))
