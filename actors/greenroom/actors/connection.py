"""The connection's states and its reconnect schedule (pure: no loop, no I/O).

Connection state machine of a RoomActor (``ConnState``)::

    IDLE --Connect--> CONNECTING --primary PC connected--> CONNECTED --Disconnect, leave{DISCONNECT}--> CLOSED
                   |  deadline, refused, leave           |   ^  link lost (signal closed, ping timeout,
                   v                                     v   |  PC failed, leave{RESUME|RECONNECT})
                 CLOSED                          RECONNECTING --attempts exhausted / fatal leave--> CLOSED
                                                 (full reconnect: new signal + session + PCs, join
                                                  again, republish local tracks, replay held requests)
"""

from __future__ import annotations

import enum
import ipaddress
import urllib.parse

from greenroom.actors.messages import ConnectOptions
from greenroom.actors.supervision import Backoff, backoff_delay
from greenroom.codecs.errors import GreenroomError
from greenroom.codecs.models import DisconnectReason, LeaveAction
from greenroom.codecs.signalling import Leave
from greenroom.runtime.ice import IcePolicy, IceServer
from greenroom.runtime.signal_transport import SignalConnectError

__all__ = [
    "FATAL_LEAVE_REASONS",
    "ConnState",
    "ConnectFailedError",
    "describe_refusal",
    "ice_policy_for",
    "leave_reconnects",
    "reconnect_delay",
]

#: Leave reasons that end the room even when the server says it could reconnect.
FATAL_LEAVE_REASONS = frozenset(
    {DisconnectReason.DUPLICATE_IDENTITY, DisconnectReason.PARTICIPANT_REMOVED, DisconnectReason.ROOM_DELETED}
)


class ConnectFailedError(GreenroomError):
    """``connect`` failed; the message says why (the facade raises it as ``ConnectError``)."""


class ConnState(enum.Enum):
    """The RoomActor's connection state (see the module docstring)."""

    IDLE = enum.auto()
    CONNECTING = enum.auto()
    CONNECTED = enum.auto()
    RECONNECTING = enum.auto()
    CLOSED = enum.auto()


def leave_reconnects(leave: Leave) -> bool:
    """Whether a server ``leave`` asks the client to come back (full reconnect) rather than to go away.

    RESUME is served by a full reconnect too (resume is not implemented); ``can_reconnect`` is what servers
    before protocol 13 send instead of an action.
    """
    again = leave.action is not LeaveAction.DISCONNECT or leave.can_reconnect
    return again and leave.reason not in FATAL_LEAVE_REASONS


def reconnect_delay(attempt: int, options: ConnectOptions, sample: float) -> float:
    """Seconds to wait before full-reconnect attempt ``attempt`` (1-based).

    The first attempt is immediate; then ``reconnect_min_delay`` doubled per attempt, capped at
    ``reconnect_max_delay``, times ``1 + 0.5·sample`` (jitter, ``sample`` in [0, 1)). With the defaults
    (10 attempts, 0.3 s, 7 s): 0, 0.3, 0.6, 1.2, 2.4, 4.8, 7, 7, 7, 7 s before jitter — about 40 s in all,
    close to the official SDKs' schedules (signal-protocol.md §10.5).
    """
    if attempt <= 1:
        return 0.0
    backoff = Backoff(options.reconnect_min_delay, options.reconnect_max_delay, random_factor=0.5)
    return backoff_delay(backoff, attempt - 2, sample)


def ice_policy_for(url: str, options: ConnectOptions) -> IcePolicy:
    """The ICE policy for a connection to ``url``.

    Loopback-only gathering when the server is on loopback (aioice skips 127.0.0.1 otherwise); aioice's
    defaults (every non-loopback interface) otherwise; the user's ICE servers when given.
    """
    servers = tuple(IceServer(s.urls, s.username or None, s.credential or None) for s in options.ice_servers)
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return IcePolicy(
            gather_addresses=("127.0.0.1",), ice_servers=servers, allowed_networks=("127.0.0.0/8", "::1/128")
        )
    return IcePolicy(ice_servers=servers)


def describe_refusal(exc: SignalConnectError) -> str:
    """Why a signal connection was not opened, in words for ``ConnectError``."""
    if exc.status is None:
        return f"cannot reach the server: {exc.reason}"
    return f"the server refused the connection ({exc.status}): {exc.reason}"
