"""The connection machine of a RoomActor, and its pure rules (no loop, no I/O: events in, actions out).

The :class:`ConnectionMachine` is sans-I/O in the manner of the codecs (h11's ``_state.py`` is the model): the
RoomActor feeds it what happened (:data:`ConnEvent` values: a connect was asked, the link's signal was
refused, the join arrived, the primary peer connection came up, the link broke, a timer fired, a close was
asked) and performs the :data:`ConnAction` values it returns, in order. The machine owns the connection's
state, the generation of the current link, the reconnect attempt and schedule, the requests held while
reconnecting, the requests in flight with their deadlines, and the outbox policy; the actor owns the
transports and does what it is told.

States and transitions (the table :data:`TRANSITIONS`; an event not in the table for a state is ignored —
late events of an earlier link carry an older ``generation`` and are ignored in every state)::

    IDLE --Start--> CONNECTING --Up--> CONNECTED --Stop, Leave(not again)--> CLOSED
                       |                  |   ^
      Refused, Lost,   |           Lost,  |   |  Up (republish; the held wait for RecipientsBack)
      Deadline, Leave  v     Leave(again) v   |
                     CLOSED           RECONNECTING --attempts exhausted, 401/403, Leave(not again)--> CLOSED
                                      (RetryDue opens a new link: a new generation; Refused/Lost/Deadline
                                       end that attempt and schedule the next)

Policies decided here (each a documented decision, see docs/architecture.md):

* **Held requests** — while RECONNECTING, holdable requests (publish data/DTMF/transcription, metadata
  updates, publish track, subscription changes) wait in order, at most ``hold_capacity``; beyond it a request
  is refused (:attr:`Admission.REFUSED`, counted). Once connected again they still wait — and new ones
  join them — until the members the data was meant for are back (:class:`RecipientsBack`: the actor says
  so, or its grace timer does; :mod:`greenroom.actors.reliable`); then they are replayed in order
  (:class:`Replay`). They are failed if the room closes instead.
* **Requests in flight** — each has a key (the signal ``request_id``, or a publish's ``cid``), a deadline
  and a loss policy: :attr:`OnLoss.FAIL` (metadata updates: sent on the dead session, never answered) or
  :attr:`OnLoss.RETRY` (a publish not yet acknowledged: asked again after the reconnect, ahead of the held).
* **Outbox** — packets the data plane accepted survive a reconnect (the plane is detached and keeps them for
  the next publisher: :class:`BeginReconnect`); a close fails them (:class:`Teardown`).
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import ipaddress
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

from greenroom.actors.messages import ConnectOptions
from greenroom.actors.supervision import Backoff, backoff_delay
from greenroom.codecs.errors import GreenroomError
from greenroom.codecs.models import ClientConfigSetting, ClientConfiguration, DisconnectReason, LeaveAction
from greenroom.codecs.models import IceServer as WireIceServer
from greenroom.codecs.signalling import Leave
from greenroom.runtime.ice import IcePolicy, IceServer
from greenroom.runtime.signal_transport import SignalConnectError

__all__ = [
    "FATAL_LEAVE_REASONS",
    "HOLD_CAPACITY",
    "TRANSITIONS",
    "Admission",
    "BeginReconnect",
    "ConnAction",
    "ConnEvent",
    "ConnState",
    "ConnectFailedError",
    "Connected",
    "ConnectionMachine",
    "Deadline",
    "Expired",
    "FailRequests",
    "Garbled",
    "Joined",
    "LeaveReceived",
    "Lost",
    "OnLoss",
    "OpenLink",
    "RecipientsBack",
    "Refused",
    "ReleaseLink",
    "Replay",
    "Restored",
    "RetryDue",
    "ScheduleRetry",
    "Start",
    "StartSession",
    "Stop",
    "Teardown",
    "Up",
    "describe_refusal",
    "ice_policy_for",
    "ice_policy_joined",
    "leave_reconnects",
    "next_ping_tick",
    "reconnect_delay",
    "signal_alive",
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
    """The ICE policy for a connection to ``url``, before the join response.

    Loopback-only gathering when the server is on loopback (aioice skips 127.0.0.1 otherwise); aioice's
    defaults (every non-loopback interface) otherwise; the user's ICE servers when given; relayed candidates
    only when the user asked (``RtcConfiguration.ice_transport_type=TRANSPORT_RELAY``).
    """
    servers = _runtime_servers(options.ice_servers)
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return IcePolicy(
            gather_addresses=("127.0.0.1",),
            ice_servers=servers,
            allowed_networks=("127.0.0.0/8", "::1/128"),
            relay_only=options.relay_only,
        )
    return IcePolicy(ice_servers=servers, relay_only=options.relay_only)


def ice_policy_joined(
    policy: IcePolicy,
    options: ConnectOptions,
    servers: tuple[WireIceServer, ...],
    configuration: ClientConfiguration | None,
) -> IcePolicy:
    """The policy once the join response is in: its ``ice_servers`` unless the user gave some (the user's
    ``RtcConfiguration.ice_servers`` win, as in the Rust SDK's ``rtc_engine``), and relayed candidates only
    if the user or the server's ``client_configuration.force_relay`` says so. Peer connections made from now
    on use it (greenroom creates both after the join)."""
    if not options.ice_servers and servers:
        policy = dataclasses.replace(policy, ice_servers=_runtime_servers(servers))
    forced = configuration is not None and configuration.force_relay is ClientConfigSetting.ENABLED
    return dataclasses.replace(policy, relay_only=policy.relay_only or forced)


def _runtime_servers(servers: tuple[WireIceServer, ...]) -> tuple[IceServer, ...]:
    return tuple(IceServer(s.urls, s.username or None, s.credential or None) for s in servers)


#: How far past the silence deadline the ping tick fires (``timed_out`` is strict: at the deadline itself
#: the link still counts as alive).
PING_TICK_SLACK = 0.002


def next_ping_tick(now: float, interval: float, deadline: float | None) -> float:
    """Seconds to the next ping tick: the next ping, or the silence deadline if that comes first — so a dead
    link is given up ``ping_timeout`` after the last message, not up to a polling period later (a 1 s poll
    gave up 3–4 s after a 3 s timeout; the official SDKs at 3.00 s)."""
    if deadline is None:
        return interval
    return min(interval, max(deadline - now, 0.0) + PING_TICK_SLACK)


def signal_alive(event: Lost) -> bool:
    """Whether a lost link's signal connection still works, so a ``leave`` can tell the server: only when a
    peer connection failed (``MEDIA_FAILURE``). After a signal close or a ping timeout the link is known
    dead — a ``leave{CLIENT_INITIATED}`` sent into it, arriving late at a real server, is recorded as the user
    leaving on purpose (issue 14); the official SDKs send none then either."""
    return event.reason is DisconnectReason.MEDIA_FAILURE


def describe_refusal(exc: SignalConnectError) -> str:
    """Why a signal connection was not opened, in words for ``ConnectError``."""
    if exc.status is None:
        return f"cannot reach the server: {exc.reason}"
    return f"the server refused the connection ({exc.status}): {exc.reason}"


# -- the machine ------------------------------------------------------------------------------------------

T = TypeVar("T")

#: Requests held while the room reconnects (replayed in order once reconnected); beyond this they are refused.
HOLD_CAPACITY = 1_000


class Admission(enum.Enum):
    """What :meth:`ConnectionMachine.admit` decided for a holdable request."""

    PROCESS = enum.auto()
    """Connected (or not a state that holds): handle it now."""
    HELD = enum.auto()
    """Reconnecting: kept, replayed once connected again (or failed at close)."""
    REFUSED = enum.auto()
    """Reconnecting with ``hold_capacity`` requests already waiting: fail it now."""


class OnLoss(enum.Enum):
    """What becomes of a request in flight when the link is lost."""

    FAIL = enum.auto()
    RETRY = enum.auto()


# Events (what happened). ``generation`` is the link the event belongs to; a stale one is ignored.


@dataclass(frozen=True, slots=True)
class Start:
    """``connect`` was asked."""

    options: ConnectOptions


@dataclass(frozen=True, slots=True)
class Refused:
    """The link's signal connection could not be opened (``fatal``: 401/403, retrying will not help)."""

    generation: int
    why: str
    fatal: bool = False


@dataclass(frozen=True, slots=True)
class Joined:
    """The server's join response arrived on the link."""

    generation: int


@dataclass(frozen=True, slots=True)
class Up:
    """The link's primary peer connection is connected."""

    generation: int


@dataclass(frozen=True, slots=True)
class Lost:
    """The link broke: signal closed, ping timeout, a peer connection failed or closed."""

    generation: int
    reason: DisconnectReason
    why: str


@dataclass(frozen=True, slots=True)
class Garbled:
    """The server broke the protocol (a bad join, an undecodable frame): fatal only while connecting."""

    generation: int
    why: str


@dataclass(frozen=True, slots=True)
class LeaveReceived:
    """The server sent ``leave``; ``again``: it asks the client to come back (:func:`leave_reconnects`)."""

    generation: int
    reason: DisconnectReason
    again: bool
    why: str


@dataclass(frozen=True, slots=True)
class Deadline:
    """The connect timer of link ``generation`` fired."""

    generation: int


@dataclass(frozen=True, slots=True)
class RetryDue:
    """The reconnect timer armed after link ``generation`` was lost fired."""

    generation: int


@dataclass(frozen=True, slots=True)
class Expired:
    """The deadline of the request in flight ``key`` passed.

    ``ticket`` is the one :meth:`~ConnectionMachine.sent` returned, so the timer of an earlier sending of the
    same key cannot expire a later one.
    """

    key: object
    ticket: int


@dataclass(frozen=True, slots=True)
class RecipientsBack:
    """After a full reconnect: the members the held and unconfirmed data was meant for are back (or the
    grace for them ended) — release the held requests."""

    generation: int


@dataclass(frozen=True, slots=True)
class Stop:
    """Close: the user disconnects, the tree gave up, the actor stops."""

    reason: DisconnectReason
    send_leave: bool = True
    emit: bool = True


ConnEvent: TypeAlias = (
    Start
    | Refused
    | Joined
    | Up
    | Lost
    | Garbled
    | LeaveReceived
    | Deadline
    | RetryDue
    | RecipientsBack
    | Stop
)

# Actions (what the RoomActor must do, in order).


@dataclass(frozen=True, slots=True)
class OpenLink:
    """Open a new link (generation ``generation``): its signal connection, then the join; arm its deadline."""

    generation: int
    timeout: float


@dataclass(frozen=True, slots=True)
class ReleaseLink:
    """Drop the current link (its late events are cut off at once; transports close in the background)."""

    send_leave: bool


@dataclass(frozen=True, slots=True)
class StartSession:
    """Apply the join response: the first join (``rejoin`` false) or a reconcile after a full reconnect."""

    rejoin: bool


@dataclass(frozen=True, slots=True)
class Connected:
    """The room is connected: answer ``connect``, say so."""


@dataclass(frozen=True, slots=True)
class BeginReconnect:
    """The link was lost while connected: say so, detach the data plane (its queue is kept), detach media.

    The publishes in flight were moved to the front of the held requests (asked again once reconnected).
    """

    reason: DisconnectReason


@dataclass(frozen=True, slots=True)
class ScheduleRetry:
    """Arm the reconnect timer: :class:`RetryDue` of ``generation`` after ``delay`` seconds (``failed``: why
    the previous attempt failed; empty for the first)."""

    generation: int
    delay: float
    attempt: int
    failed: str = ""


@dataclass(frozen=True, slots=True)
class Restored:
    """Connected again: say so, republish the local tracks, then wait for the members the held and
    unconfirmed data was meant for (feed :class:`RecipientsBack` once they are back or the grace ends)."""


@dataclass(frozen=True, slots=True)
class Replay(Generic[T]):
    """The recipients are back (or the grace ended): send the unconfirmed again, then handle ``replay``
    (the held requests) in order."""

    replay: tuple[T, ...]


@dataclass(frozen=True, slots=True)
class FailRequests(Generic[T]):
    """Fail these requests: ``timed_out`` (no answer in time) or not connected (lost, closed)."""

    requests: tuple[T, ...]
    why: str
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class Teardown(Generic[T]):
    """Close the connection: release the link, fail ``requests`` (held and in flight) and the outbox, stop the
    children, media; report ``Disconnected(reason)`` if ``emit``; fail a pending ``connect`` with ``why``;
    stop the actor when ``stop`` (nothing is left to drive: the reconnect gave up)."""

    reason: DisconnectReason
    send_leave: bool
    emit: bool
    requests: tuple[T, ...]
    why: str
    stop: bool = False


ConnAction: TypeAlias = (
    OpenLink
    | ReleaseLink
    | StartSession
    | Connected
    | BeginReconnect
    | ScheduleRetry
    | Restored
    | Replay[Any]
    | FailRequests[Any]
    | Teardown[Any]
)


@dataclass(slots=True)
class _InFlight(Generic[T]):
    request: T
    on_loss: OnLoss
    why_late: str
    ticket: int


class ConnectionMachine(Generic[T]):
    """The connection's state, schedule, held and in-flight requests (see the module docstring).

    Args:
        hold_capacity: requests held while reconnecting before refusing more.
    """

    def __init__(self, *, hold_capacity: int = HOLD_CAPACITY) -> None:
        self.state = ConnState.IDLE
        self.generation = 0
        self.attempt = 0
        self.options = ConnectOptions()
        self.hold_capacity = hold_capacity
        self.held_total = 0
        """Requests ever held while reconnecting."""
        self.refused_total = 0
        """Requests refused because ``hold_capacity`` were already held."""
        self.recovering = False
        """After a full reconnect, until :class:`RecipientsBack`: the held requests keep waiting."""
        self._lost_reason = DisconnectReason.UNKNOWN_REASON
        self._linked = False
        self._held: collections.deque[T] = collections.deque()
        self._in_flight: dict[object, _InFlight[T]] = {}
        self._tickets = 0

    # -- requests -----------------------------------------------------------------------------------------

    @property
    def held(self) -> int:
        """Requests waiting for the reconnect now."""
        return len(self._held)

    def admit(self, request: T) -> Admission:
        """Decide for a holdable request: handle it now, hold it (reconnecting, or connected again while the
        recipients are awaited), or refuse it (hold full)."""
        if not (
            self.state is ConnState.RECONNECTING or (self.state is ConnState.CONNECTED and self.recovering)
        ):
            return Admission.PROCESS
        if len(self._held) >= self.hold_capacity:
            self.refused_total += 1
            return Admission.REFUSED
        self._held.append(request)
        self.held_total += 1
        return Admission.HELD

    def sent(self, key: object, request: T, *, on_loss: OnLoss, why_late: str) -> int:
        """A request went out and waits for its answer; the ticket for its deadline's :class:`Expired`."""
        self._tickets += 1
        self._in_flight[key] = _InFlight(request, on_loss, why_late, self._tickets)
        return self._tickets

    def keys_in_flight(self) -> tuple[object, ...]:
        """The keys of the requests waiting for their answer, oldest first."""
        return tuple(self._in_flight)

    def in_flight(self, key: object) -> bool:
        """Whether ``key`` was sent and not answered, expired or failed yet."""
        return key in self._in_flight

    def answered(self, key: object) -> T | None:
        """The answer to ``key`` arrived: the request, or ``None`` when it had already expired or failed."""
        entry = self._in_flight.pop(key, None)
        return None if entry is None else entry.request

    def expire(self, event: Expired) -> list[ConnAction]:
        """The deadline of ``event.key`` passed: fail it if it still waits."""
        entry = self._in_flight.get(event.key)
        if entry is None or entry.ticket != event.ticket:
            return []
        del self._in_flight[event.key]
        return [FailRequests((entry.request,), entry.why_late, timed_out=True)]

    # -- events -------------------------------------------------------------------------------------------

    def handle(self, event: ConnEvent, sample: float = 0.0) -> list[ConnAction]:
        """Apply ``event``; the actions to perform, in order (``sample`` in [0, 1) jitters a retry)."""
        if not isinstance(event, Start | Stop):
            if event.generation != self.generation:
                return []  # a late event of an earlier link
            if not self._linked and not isinstance(event, RetryDue):
                return []  # the link was released: only the retry timer matters now
        step = TRANSITIONS.get((self.state, type(event)))
        if step is None:
            return []
        return step(self, event, sample)

    def _start(self, event: Start, _sample: float) -> list[ConnAction]:
        self.options, self.state = event.options, ConnState.CONNECTING
        return [self._open()]

    def _open(self) -> OpenLink:
        self.generation += 1
        self._linked = True
        return OpenLink(self.generation, self.options.timeout)

    def _joined(self, _event: Joined, _sample: float) -> list[ConnAction]:
        return [StartSession(rejoin=self.state is ConnState.RECONNECTING)]

    def _up(self, _event: Up, _sample: float) -> list[ConnAction]:
        if self.state is ConnState.CONNECTING:
            self.state = ConnState.CONNECTED
            return [Connected()]
        self.state, self.attempt = ConnState.CONNECTED, 0
        return [Restored()]

    def _recipients_back(self, _event: RecipientsBack, _sample: float) -> list[ConnAction]:
        if not self.recovering:
            return []
        self.recovering = False
        replay = tuple(self._held)
        self._held.clear()
        return [Replay(replay)]

    def _connect_failed(
        self, why: str, *, fatal: bool, sample: float, send_leave: bool = True
    ) -> list[ConnAction]:
        if self.state is ConnState.CONNECTING:
            return self._teardown(DisconnectReason.JOIN_FAILURE, send_leave=send_leave, emit=False, why=why)
        self._linked = False
        actions: list[ConnAction] = [ReleaseLink(send_leave=send_leave)]
        if fatal or self.attempt >= self.options.reconnect_attempts:
            why = f"giving up reconnecting after {self.attempt} attempt(s): {why}"
            return actions + self._teardown(
                self._lost_reason, send_leave=False, emit=True, stop=True, why=why
            )
        return [*actions, self._schedule(sample, why)]

    def _schedule(self, sample: float, failed: str = "") -> ScheduleRetry:
        self.attempt += 1
        delay = reconnect_delay(self.attempt, self.options, sample)
        return ScheduleRetry(self.generation, delay, self.attempt, failed)

    def _refused(self, event: Refused, sample: float) -> list[ConnAction]:
        return self._connect_failed(event.why, fatal=event.fatal, sample=sample)

    def _deadline(self, _event: Deadline, sample: float) -> list[ConnAction]:
        why = f"timed out after {self.options.timeout} s waiting for the room"
        return self._connect_failed(why, fatal=False, sample=sample)

    def _garbled(self, event: Garbled, sample: float) -> list[ConnAction]:
        return self._connect_failed(f"the server broke the protocol: {event.why}", fatal=False, sample=sample)

    def _lost_connecting(self, event: Lost, sample: float) -> list[ConnAction]:
        return self._connect_failed(event.why, fatal=False, sample=sample, send_leave=signal_alive(event))

    def _lost(self, event: Lost, sample: float) -> list[ConnAction]:
        if self.options.reconnect_attempts <= 0:
            return self._teardown(event.reason, send_leave=False, emit=True)
        self.state, self._lost_reason, self.attempt = ConnState.RECONNECTING, event.reason, 0
        self._linked, self.recovering = False, True
        failed = [e.request for e in self._in_flight.values() if e.on_loss is OnLoss.FAIL]
        retry = [e.request for e in self._in_flight.values() if e.on_loss is OnLoss.RETRY]
        self._in_flight.clear()
        self._held.extendleft(reversed(retry))  # asked again first, in their order
        # No leave on the lost link, even when only a peer connection failed (``signal_alive``): a leave makes
        # the others hear "left by its own choice" (CLIENT_INITIATED) instead of a fault, and their senders
        # would not report what was in flight to us (greenroom.actors.delivery). The new join replaces the
        # old session if the server still has it (DUPLICATE_IDENTITY).
        actions: list[ConnAction] = [BeginReconnect(event.reason), ReleaseLink(send_leave=False)]
        if failed:
            actions.append(FailRequests(tuple(failed), "the connection was lost before the server answered"))
        return [*actions, self._schedule(sample)]

    def _leave(self, event: LeaveReceived, sample: float) -> list[ConnAction]:
        if self.state is ConnState.CONNECTED and event.again:
            # the server ended this session itself: nothing to tell it
            return self._lost(Lost(event.generation, event.reason, event.why), sample)
        if self.state is ConnState.CONNECTING or (self.state is ConnState.RECONNECTING and event.again):
            return self._connect_failed(
                f"the server refused the join: {event.reason.name}", fatal=False, sample=sample
            )
        return self._teardown(event.reason, send_leave=False, emit=True)

    def _retry_due(self, _event: RetryDue, _sample: float) -> list[ConnAction]:
        return [] if self._linked else [self._open()]

    def _stop(self, event: Stop, _sample: float) -> list[ConnAction]:
        return self._teardown(event.reason, send_leave=event.send_leave, emit=event.emit)

    def _teardown(
        self, reason: DisconnectReason, *, send_leave: bool, emit: bool, stop: bool = False, why: str = ""
    ) -> list[ConnAction]:
        was, self.state, self._linked, self.recovering = self.state, ConnState.CLOSED, False, False
        requests = (*(e.request for e in self._in_flight.values()), *self._held)
        self._in_flight.clear()
        self._held.clear()
        emit = emit and was in (ConnState.CONNECTED, ConnState.RECONNECTING)
        why = why or f"the room disconnected ({reason.name})"
        return [Teardown(reason, send_leave, emit, requests, why, stop)]


_Step: TypeAlias = Callable[[ConnectionMachine[Any], Any, float], list[ConnAction]]
_S = ConnState
_M = ConnectionMachine
#: The transition table: (state, event type) → step. Anything else is ignored in that state.
TRANSITIONS: dict[tuple[ConnState, type[Any]], _Step] = {
    (_S.IDLE, Start): _M._start,
    (_S.IDLE, Stop): _M._stop,
    (_S.CONNECTING, Joined): _M._joined,
    (_S.CONNECTING, Up): _M._up,
    (_S.CONNECTING, Refused): _M._refused,
    (_S.CONNECTING, Lost): _M._lost_connecting,
    (_S.CONNECTING, Garbled): _M._garbled,
    (_S.CONNECTING, LeaveReceived): _M._leave,
    (_S.CONNECTING, Deadline): _M._deadline,
    (_S.CONNECTING, Stop): _M._stop,
    (_S.CONNECTED, Lost): _M._lost,
    (_S.CONNECTED, LeaveReceived): _M._leave,
    (_S.CONNECTED, RecipientsBack): _M._recipients_back,
    (_S.CONNECTED, Stop): _M._stop,
    (_S.RECONNECTING, RetryDue): _M._retry_due,
    (_S.RECONNECTING, Joined): _M._joined,
    (_S.RECONNECTING, Up): _M._up,
    (_S.RECONNECTING, Refused): _M._refused,
    (_S.RECONNECTING, Lost): _M._lost_connecting,
    (_S.RECONNECTING, Garbled): _M._garbled,
    (_S.RECONNECTING, LeaveReceived): _M._leave,
    (_S.RECONNECTING, Deadline): _M._deadline,
    (_S.RECONNECTING, Stop): _M._stop,
}
