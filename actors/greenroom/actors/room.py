"""RoomActor: one room connection — signal + peer transports, the room's state, and its participants.

The RoomActor owns, for one connected room client:

* the :class:`~greenroom.runtime.signal_transport.SignalTransport` and its sans-I/O
  :class:`~greenroom.codecs.session.ClientSignalSession` (decoding, state checks, app-level pings, request
  ids);
* the subscriber :class:`~greenroom.runtime.peer.PeerTransport` (the server offers it right after ``join``;
  it carries downstream data) and the publisher one (created and offered on the first publish);
* the room's state: ``RoomInfo``, the local ``ParticipantInfo`` and the latest ``ParticipantInfo`` of every
  remote participant — the state a crashed ParticipantActor is restarted from;
* one :class:`~greenroom.actors.participant.ParticipantActor` per remote identity plus the local one, linked
  to it: it is their supervisor (one_for_one, restart from state).

Transports deliver their events (``SignalBytes``, ``PeerStateChanged``, ``DataReceived`` …) to this actor's
mailbox; every signal event and data packet then goes to the ParticipantActor concerned as a message.

Connection state machine (``ConnState``)::

    IDLE --Connect--> CONNECTING --primary PC connected--> CONNECTED --Disconnect, leave{DISCONNECT}--> CLOSED
                   |  deadline, refused, leave           |   ^  link lost (signal closed, ping timeout,
                   v                                     v   |  PC failed, leave{RESUME|RECONNECT})
                 CLOSED                          RECONNECTING --attempts exhausted / fatal leave--> CLOSED
                                                 (full reconnect: new signal + session + PCs, join
                                                  again, republish local tracks, replay held requests)

Every timer (``PingTick``, ``ConnectDeadline``, ``ReconnectTick``) carries the connection ``generation`` it
was armed for, so a timer from an earlier attempt is ignored; a full reconnect is "a new generation of the
same RoomActor", with the room state (and the ParticipantActors of those still present) kept. Each link's
transports report through a :class:`_LinkSink` that is cut when the link is dropped, so a dead link's late
events never reach the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import logging
import random
import time
import urllib.parse
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, TypeAlias, assert_never

import pykka

from greenroom.actors.core import (
    AsyncioActor,
    ChildFailed,
    ChildStopped,
    Crashed,
    link,
    redirect_leftovers,
    stop_actor,
)
from greenroom.actors.media import MediaRouter
from greenroom.actors.messages import (
    ActiveSpeakersChanged,
    ApplyParticipantInfo,
    Connect,
    ConnectDeadline,
    ConnectionQualityChanged,
    ConnectionStateChanged,
    ConnectOptions,
    Crash,
    DeliverPacket,
    Disconnect,
    Disconnected,
    EventSink,
    GetState,
    LocalTrackAdded,
    LocalTrackRepublished,
    LocalTrackSubscribed,
    MediaAttached,
    MediaDetached,
    ParticipantLeft,
    PingTick,
    PublishData,
    PublishDtmf,
    PublishTrack,
    PublishTranscription,
    Reconnected,
    Reconnecting,
    ReconnectTick,
    Reply,
    RoomConnected,
    RoomJoined,
    RoomMetadataChanged,
    SendPacket,
    SetLocalInfo,
    SetLocalTrackMuted,
    SetSubscribed,
    TrackSubscriptionFailed,
    UnpublishTrack,
    UpdateLocalInfo,
)
from greenroom.actors.messages import DataPacketReceived as DataEvent
from greenroom.actors.messages import SipDtmfReceived as DtmfEvent
from greenroom.actors.messages import TranscriptionReceived as TranscriptionEvent
from greenroom.actors.participant import ParticipantActor
from greenroom.actors.supervision import (
    Backoff,
    Escalate,
    Intensity,
    NoRestart,
    Restart,
    RestartType,
    Strategy,
    backoff_delay,
    decide,
)
from greenroom.codecs import packets
from greenroom.codecs.errors import GreenroomError, ProtocolError
from greenroom.codecs.models import (
    DisconnectReason,
    LeaveAction,
    ParticipantInfo,
    ParticipantState,
    ParticipantTracks,
    RequestResponseReason,
    RoomInfo,
    SignalTarget,
    TrackInfo,
)
from greenroom.codecs.session import ClientSignalSession, ClientState
from greenroom.codecs.signalling import (
    AddTrackRequest,
    Answer,
    ConnectionQualityUpdate,
    JoinParams,
    JoinResponse,
    Leave,
    MuteTrack,
    Offer,
    ParticipantUpdate,
    RefreshToken,
    RequestResponse,
    RoomUpdate,
    SignalResponseMessage,
    SpeakersChanged,
    SubscriptionResponse,
    Trickle,
    UpdateMetadata,
    UpdateSubscription,
)
from greenroom.codecs.signalling import TrackPublished as TrackPublishedResponse
from greenroom.codecs.signalling import TrackSubscribed as TrackSubscribedResponse
from greenroom.runtime.ice import IcePolicy, IceServer
from greenroom.runtime.media_path import media_sections, unpack_stream_id
from greenroom.runtime.peer import (
    LOSSY,
    RELIABLE,
    DataChannelClosed,
    DataChannelOpened,
    DataReceived,
    PeerRole,
    PeerStateChanged,
    PeerTransport,
    TrackReceived,
)
from greenroom.runtime.signal_transport import SignalBytes, SignalClosed, SignalConnectError, SignalTransport

__all__ = [
    "ConnState",
    "ConnectFailedError",
    "NotConnectedError",
    "RequestFailedError",
    "RoomActor",
    "RoomClient",
    "RoomSnapshot",
    "ice_policy_for",
    "reconnect_delay",
]

_log = logging.getLogger("greenroom.actors.room")

#: Seconds ``set_metadata``/``set_name``/``set_attributes`` wait for the server's ``request_response``.
REQUEST_TIMEOUT = 5.0
#: Seconds a publish may wait (publisher negotiation + flow control) before it fails.
PUBLISH_TIMEOUT = 30.0
#: Seconds ``publish_track`` waits for ``track_published`` (10 s in both official SDKs).
TRACK_PUBLISH_TIMEOUT = 10.0
#: Seconds the teardown gives each transport to close.
CLOSE_TIMEOUT = 3.0
#: The crash-loop brake for participant actors: more restarts than this within the period and the room gives
#: up (disconnects with ``STATE_MISMATCH``) rather than restart a poisoned actor forever.
PARTICIPANT_INTENSITY = Intensity(max_restarts=10, period=10.0)
#: Requests held while the room reconnects (replayed in order once reconnected); beyond this they fail.
HOLD_CAPACITY = 1_000
#: Leave reasons that end the room even when the server says it could reconnect.
FATAL_LEAVE_REASONS = frozenset(
    {DisconnectReason.DUPLICATE_IDENTITY, DisconnectReason.PARTICIPANT_REMOVED, DisconnectReason.ROOM_DELETED}
)
#: The SDK name and version greenroom reports in the join query.
SDK_NAME = "python"
SDK_VERSION = "1.2.1"


class ConnectFailedError(GreenroomError):
    """``connect`` failed; the message says why (the facade raises it as ``ConnectError``)."""


class NotConnectedError(GreenroomError):
    """The room is not connected (or disconnected while the request was pending)."""


class RequestFailedError(GreenroomError):
    """The server refused a request (``request_response`` with a reason other than OK), or never answered."""


class ConnState(enum.Enum):
    """The RoomActor's connection state (see the module docstring)."""

    IDLE = enum.auto()
    CONNECTING = enum.auto()
    CONNECTED = enum.auto()
    RECONNECTING = enum.auto()
    CLOSED = enum.auto()


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    """The RoomActor's state (answered to ``GetState``; tests and tools)."""

    state: ConnState
    room: RoomInfo | None
    local: ParticipantInfo | None
    remotes: tuple[ParticipantInfo, ...]
    children: tuple[tuple[str, pykka.ActorRef[Any]], ...]
    """``(key, ref)`` of each ParticipantActor: the key is the identity, ``"local"`` for the local one."""
    generation: int


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


def reconnect_delay(attempt: int, options: ConnectOptions, sample: float) -> float:
    """Seconds to wait before full-reconnect attempt ``attempt`` (1-based); a pure function.

    The first attempt is immediate; then ``reconnect_min_delay`` doubled per attempt, capped at
    ``reconnect_max_delay``, times ``1 + 0.5·sample`` (jitter, ``sample`` in [0, 1)). With the defaults
    (10 attempts, 0.3 s, 7 s): 0, 0.3, 0.6, 1.2, 2.4, 4.8, 7, 7, 7, 7 s before jitter — about 40 s in all,
    close to the official SDKs' schedules (signal-protocol.md §10.5).
    """
    if attempt <= 1:
        return 0.0
    backoff = Backoff(options.reconnect_min_delay, options.reconnect_max_delay, random_factor=0.5)
    return backoff_delay(backoff, attempt - 2, sample)


class _LinkSink:
    """Hands one link's transport events to the RoomActor until the link is dropped (then discards them)."""

    __slots__ = ("live", "ref")

    def __init__(self, ref: pykka.ActorRef[Any]) -> None:
        self.ref = ref
        self.live = True

    def tell(self, message: Any) -> None:
        """Forward ``message`` while the link is current."""
        if self.live:
            self.ref.tell(message)


@dataclass(slots=True)
class _Outgoing:
    """A packet accepted for sending, waiting for the publisher's channel to open."""

    label: str
    data: bytes
    reply: Reply[None]


@dataclass(slots=True)
class _Link:
    """Everything that belongs to one connection attempt (one generation); dropped as a whole."""

    generation: int
    url: str
    token: str
    options: ConnectOptions
    policy: IcePolicy
    sink: _LinkSink
    session: ClientSignalSession = field(default_factory=ClientSignalSession)
    signal: SignalTransport | None = None
    subscriber: PeerTransport | None = None
    publisher: PeerTransport | None = None
    publisher_offer_id: int = 0
    publisher_negotiating: bool = False
    publisher_again: bool = False
    subscriber_primary: bool = True
    timers: list[asyncio.TimerHandle] = field(default_factory=list)


RoomMessage: TypeAlias = (
    Connect
    | Disconnect
    | SignalBytes
    | SignalClosed
    | PeerStateChanged
    | DataChannelOpened
    | DataChannelClosed
    | DataReceived
    | TrackReceived
    | PublishData
    | PublishDtmf
    | PublishTranscription
    | UpdateLocalInfo
    | PublishTrack
    | UnpublishTrack
    | SetLocalTrackMuted
    | SetSubscribed
    | SendPacket
    | SetLocalInfo
    | PingTick
    | ConnectDeadline
    | ReconnectTick
    | ChildFailed
    | ChildStopped
    | GetState
    | Crash
)
_ROOM_MESSAGES = (
    Connect,
    Disconnect,
    SignalBytes,
    SignalClosed,
    PeerStateChanged,
    DataChannelOpened,
    DataChannelClosed,
    DataReceived,
    TrackReceived,
    PublishData,
    PublishDtmf,
    PublishTranscription,
    UpdateLocalInfo,
    PublishTrack,
    UnpublishTrack,
    SetLocalTrackMuted,
    SetSubscribed,
    SendPacket,
    SetLocalInfo,
    PingTick,
    ConnectDeadline,
    ReconnectTick,
    ChildFailed,
    ChildStopped,
    GetState,
    Crash,
)
#: What waits while the room reconnects (each is replayed once the room is connected again).
_HELD = (
    PublishData,
    PublishDtmf,
    PublishTranscription,
    UpdateLocalInfo,
    SendPacket,
    SetLocalInfo,
    PublishTrack,
    SetSubscribed,
)
_LOCAL = "local"


class RoomActor(AsyncioActor):
    """One room connection and its state; the supervisor of the room's ParticipantActors.

    Args:
        sink: where the tree reports :data:`~greenroom.actors.messages.RoomEvent` values (the facade).
        media: the room's media path (shared with the facade's streams; a fresh one by default).
    """

    def __init__(self, sink: EventSink, media: MediaRouter | None = None) -> None:
        super().__init__()
        self._sink = sink
        self._media = media if media is not None else MediaRouter()
        self._publishing: dict[str, PublishTrack] = {}
        self._published: dict[str, PublishTrack] = {}  # cid -> request, of every published local track
        self._republishing: dict[str, str] = {}  # new cid -> previous sid, while a full reconnect republishes
        self._held: list[Any] = []  # requests waiting for a reconnect (``_HELD``), replayed in order
        self._url, self._token, self._options = "", "", ConnectOptions()
        self._attempt = 0
        self._lost_reason = DisconnectReason.UNKNOWN_REASON
        self._retry: asyncio.TimerHandle | None = None
        self._rng = random.Random()
        self._state = ConnState.IDLE
        self._generation = 0
        self._link: _Link | None = None
        self._connect: Connect | None = None
        self._room: RoomInfo | None = None
        self._local: ParticipantInfo | None = None
        self._remotes: dict[str, ParticipantInfo] = {}
        self._children: dict[str, pykka.ActorRef[Any]] = {}
        self._restarts: tuple[float, ...] = ()
        self._stash: dict[str, list[Any]] = {}
        self._requests: dict[int, Reply[None]] = {}
        self._outbox: list[_Outgoing] = []
        self._sequence = packets.SequenceCounter()
        self._dedup = packets.ReliableDeduplicator()
        self._log = logging.LoggerAdapter(_log, {"room": "?"})

    def __str__(self) -> str:
        name = self._room.name if self._room is not None else "?"
        return f"RoomActor({name})"

    # -- dispatch -------------------------------------------------------------------------------------------

    async def on_receive(self, message: Any) -> Any:
        """Dispatch one :data:`RoomMessage` (anything else is logged and dropped)."""
        if not isinstance(message, _ROOM_MESSAGES):
            self._log.warning("unexpected message %r", message)
            return None
        if self._state is ConnState.RECONNECTING and isinstance(message, _HELD):
            self._hold(message)
            return None
        return await self._dispatch(message)

    async def _dispatch(self, message: RoomMessage) -> Any:  # noqa: C901, PLR0912 - one line per message
        match message:
            case Connect():
                await self._on_connect(message)
            case Disconnect(reason=reason, reply=reply):
                await self._close(reason, send_leave=True)
                if reply is not None:
                    reply.ok(None)
            case SignalBytes(data=data):
                await self._on_signal_bytes(data)
            case SignalClosed():
                await self._on_signal_closed(message)
            case PeerStateChanged(role=role, state=state):
                await self._on_peer_state(role, state)
            case DataChannelOpened(role=role):
                await self._flush_outbox(role)
            case DataChannelClosed():
                pass
            case TrackReceived():
                await self._on_track_received(message)
            case PublishTrack():
                await self._on_publish_track(message)
            case UnpublishTrack():
                await self._on_unpublish_track(message)
            case SetLocalTrackMuted() | SetSubscribed():
                await self._on_track_control(message)
            case DataReceived():
                self._on_data(message)
            case PublishData() | PublishDtmf() | PublishTranscription() | UpdateLocalInfo():
                self._to_local(message)
            case SendPacket():
                await self._on_send_packet(message)
            case SetLocalInfo():
                await self._on_set_local_info(message)
            case PingTick(generation=generation):
                await self._on_ping_tick(generation)
            case ConnectDeadline(generation=generation):
                await self._on_connect_deadline(generation)
            case ReconnectTick(generation=generation):
                await self._on_reconnect_tick(generation)
            case ChildFailed() | ChildStopped():
                await self._on_child_ended(message)
            case GetState():
                return self.snapshot()
            case Crash(reason=reason):
                raise RuntimeError(reason)
            case _:
                assert_never(message)
        return None

    def snapshot(self) -> RoomSnapshot:
        """The current state (for ``GetState``)."""
        return RoomSnapshot(
            state=self._state,
            room=self._room,
            local=self._local,
            remotes=tuple(self._remotes.values()),
            children=tuple(self._children.items()),
            generation=self._generation,
        )

    async def on_stop(self) -> None:
        """Stopping the actor closes the connection (without an event) and stops the children."""
        await self._close(DisconnectReason.CLIENT_INITIATED, send_leave=True, emit=False)

    async def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """A crashed RoomActor still releases its sockets, peer connections and children."""
        await self._close(DisconnectReason.UNKNOWN_REASON, send_leave=True)

    # -- connect --------------------------------------------------------------------------------------------

    async def _on_connect(self, message: Connect) -> None:
        if self._state is not ConnState.IDLE:
            message.reply.fail(ConnectFailedError(f"cannot connect: the room is {self._state.name.lower()}"))
            return
        self._url, self._token, self._options = message.url, message.token, message.options
        self._connect, self._state = message, ConnState.CONNECTING
        refused = await self._open_link()
        if refused is not None:
            await self._fail_connect(_describe_refusal(refused))

    async def _open_link(self) -> SignalConnectError | None:
        """Start a new link (a new generation): its signal connection, which then receives ``join``.

        Returns:
            The refusal when the signal connection could not be opened, else ``None``.
        """
        self._generation += 1
        options = self._options
        policy = ice_policy_for(self._url, options)
        link_ = _Link(self._generation, self._url, self._token, options, policy, _LinkSink(self.actor_ref))
        self._link = link_
        self._arm(link_, options.timeout, ConnectDeadline(link_.generation))
        params = JoinParams(auto_subscribe=options.auto_subscribe, sdk=SDK_NAME, version=SDK_VERSION)
        link_.signal = SignalTransport(link_.sink)
        try:
            await link_.signal.connect(
                self._url,
                self._token,
                dict(urllib.parse.parse_qsl(params.to_query())),
                timeout=options.timeout,
            )
        except SignalConnectError as exc:
            return exc
        self._log.debug("signal connected to %s", self._url)
        return None

    async def _fail_connect(self, reason: str) -> None:
        if self._state is ConnState.RECONNECTING:  # a reconnect attempt failed: the next one, or give up
            await self._attempt_failed(reason)
            return
        connect, self._connect = self._connect, None
        await self._close(DisconnectReason.JOIN_FAILURE, send_leave=True, emit=False)
        if connect is not None:
            connect.reply.fail(ConnectFailedError(reason))

    async def _on_connect_deadline(self, generation: int) -> None:
        if (
            self._link is None
            or generation != self._link.generation
            or self._state not in (ConnState.CONNECTING, ConnState.RECONNECTING)
        ):
            return
        await self._fail_connect(f"timed out after {self._link.options.timeout} s waiting for the room")

    def _connected(self) -> None:
        """The primary peer connection is up: the room is connected."""
        if self._state is not ConnState.CONNECTING or self._link is None:
            return
        self._state = ConnState.CONNECTED
        connect, self._connect = self._connect, None
        assert self._room is not None
        assert self._local is not None
        self._sink.emit(RoomConnected())
        if connect is not None:
            connect.reply.ok(RoomJoined(self._room, self._local, tuple(self._remotes.values())))

    # -- full reconnect -------------------------------------------------------------------------------------

    async def _link_lost(self, reason: DisconnectReason, why: str) -> None:
        """The connection broke: start a full reconnect (or close when reconnecting is turned off)."""
        self._log.warning("connection lost: %s", why)
        if self._state is not ConnState.CONNECTED or self._options.reconnect_attempts <= 0:
            await self._close(reason, send_leave=False)
            return
        self._state, self._lost_reason, self._attempt = ConnState.RECONNECTING, reason, 0
        self._sink.emit(ConnectionStateChanged(2))  # CONN_RECONNECTING
        self._sink.emit(Reconnecting())
        link_, self._link = self._link, None
        if link_ is not None:
            await self._release(link_, send_leave=True)
        requests, self._requests = self._requests, {}  # sent on the dead session: never answered
        for reply in requests.values():
            reply.fail(NotConnectedError("the connection was lost before the server answered"))
        publishing, self._publishing = self._publishing, {}  # not yet acknowledged: ask again after
        self._held[:0] = publishing.values()
        for sid in self._media.attached():  # the subscriber PC is gone: its streams end (track_unsubscribed)
            await self._media.detach_remote(sid)
            owner = next((p for p in self._remotes.values() if any(t.sid == sid for t in p.tracks)), None)
            if owner is not None:
                self._tell_child(owner.identity, MediaDetached(sid))
        self._schedule_attempt()

    def _schedule_attempt(self) -> None:
        self._attempt += 1
        delay = reconnect_delay(self._attempt, self._options, self._rng.random())
        self._log.info(
            "reconnect attempt %d/%d in %.2f s", self._attempt, self._options.reconnect_attempts, delay
        )
        loop = asyncio.get_running_loop()
        self._retry = loop.call_later(delay, self._tell_self, ReconnectTick(self._generation))

    async def _on_reconnect_tick(self, generation: int) -> None:
        if (
            self._state is not ConnState.RECONNECTING
            or generation != self._generation
            or self._link is not None
        ):
            return
        self._retry = None
        refused = await self._open_link()
        if refused is not None:  # a refused token will not get better: give up at once
            await self._attempt_failed(_describe_refusal(refused), fatal=refused.status in (401, 403))

    async def _attempt_failed(self, why: str, *, fatal: bool = False) -> None:
        if self._state is not ConnState.RECONNECTING:
            return
        link_, self._link = self._link, None
        if link_ is not None:
            await self._release(link_, send_leave=True)
        if fatal or self._attempt >= self._options.reconnect_attempts:
            self._log.error("giving up reconnecting after %d attempt(s): %s", self._attempt, why)
            await self._close(self._lost_reason, send_leave=False)
            self.stop()  # nothing is left to drive: the tree ends here (the facade's close is then a no-op)
            return
        self._log.warning("reconnect attempt %d failed: %s", self._attempt, why)
        self._schedule_attempt()

    def _hold(self, message: Any) -> None:
        """A request while reconnecting: keep it (bounded) for when the room is connected again."""
        if len(self._held) < HOLD_CAPACITY:
            self._held.append(message)
            return
        reply = getattr(message, "reply", None)
        if isinstance(reply, Reply):
            reply.fail(
                NotConnectedError(f"the room is reconnecting and {HOLD_CAPACITY} requests already wait")
            )

    async def _rejoined(self, join: JoinResponse) -> None:
        """A full reconnect's JoinResponse: reconcile, keeping the actors of the participants still here."""
        link_ = self._link
        assert link_ is not None
        assert join.room is not None
        assert join.participant is not None
        self._room, self._local = join.room, join.participant
        link_.subscriber_primary = join.subscriber_primary
        self._tell_child(_LOCAL, ApplyParticipantInfo(join.participant))  # new sid; old local tracks end
        others = {p.identity: p for p in join.other_participants if p.identity != join.participant.identity}
        for identity, info in list(self._remotes.items()):
            if identity not in others:  # left while we were away
                self._participant_left(info, DisconnectReason.UNKNOWN_REASON)
        for identity, info in others.items():
            known = self._remotes.get(identity)
            if known is not None and known.sid == info.sid:  # still here: same actor (versions may restart)
                self._remotes[identity] = info
                self._tell_child(identity, ApplyParticipantInfo(info))
            else:
                self._participant_seen(info)
        self._arm(link_, 0.0, PingTick(link_.generation))
        if not join.subscriber_primary:
            await self._ensure_publisher()

    async def _reconnected(self) -> None:
        """The new link's primary PC is up: connected again; republish, then replay what waited."""
        assert self._room is not None
        assert self._local is not None
        self._state, self._attempt = ConnState.CONNECTED, 0
        self._log.info("reconnected")
        self._sink.emit(ConnectionStateChanged(1))  # CONN_CONNECTED
        self._sink.emit(Reconnected(self._room, self._local))
        published, self._published = self._published, {}
        for cid, request in published.items():
            previous, new_cid = self._media.sid_of(cid), self._media.regate(cid)
            if previous is not None and new_cid is not None:
                self._republishing[new_cid] = previous
                await self._on_publish_track(replace(request, cid=new_cid, reply=Reply.new()))
        held, self._held = self._held, []
        for message in held:
            reply = getattr(message, "reply", None)
            if isinstance(reply, Reply) and reply.done:
                continue  # the caller gave up meanwhile
            again = message
            if isinstance(message, SendPacket):  # built before the loss: the sender's new sid
                again = replace(message, packet=replace(message.packet, participant_sid=self._local.sid))
            await self.on_receive(again)  # held again if the link is lost once more
        if self._outbox and self._state is ConnState.CONNECTED:  # accepted before the loss, not yet sent
            await self._ensure_publisher()
            await self._flush_outbox(PeerRole.PUBLISHER)

    # -- signal ---------------------------------------------------------------------------------------------

    async def _on_signal_bytes(self, data: bytes) -> None:
        link_ = self._link
        if link_ is None:
            return
        try:
            link_.session.receive_data(data, time.time())
        except ProtocolError as exc:
            if self._state is ConnState.CONNECTING:
                await self._fail_connect(f"the server broke the protocol: {exc}")
                return
            self._log.warning("dropped a signal frame: %s", exc)
        for event in link_.session.events():
            await self._on_signal_message(event)
            if self._link is not link_:
                return  # the connection was closed by that message

    async def _on_signal_message(self, msg: SignalResponseMessage) -> None:
        match msg:
            case JoinResponse():  # SignalResponse.join
                await self._on_join(msg)
            case Offer():  # SignalResponse.offer: the server (re)negotiates the subscriber PC
                await self._on_offer(msg)
            case Answer():  # SignalResponse.answer: to our publisher offer
                await self._on_answer(msg)
            case Trickle():  # SignalResponse.trickle
                await self._on_trickle(msg)
            case ParticipantUpdate(participants=infos):  # SignalResponse.update
                self._on_participant_update(infos)
            case RoomUpdate(room=room):  # SignalResponse.room_update
                self._on_room_update(room)
            case Leave():  # SignalResponse.leave
                await self._on_leave(msg)
            case RequestResponse():  # SignalResponse.request_response: answers update_metadata
                self._on_request_response(msg)
            case TrackPublishedResponse() | TrackSubscribedResponse() | MuteTrack():
                await self._on_track_signal(msg)
            case SpeakersChanged() | ConnectionQualityUpdate() | SubscriptionResponse():
                self._on_room_signal(msg)
            case RefreshToken(token=token):  # SignalResponse.refresh_token: used by the next full reconnect
                self._token = token
            case _:
                pass  # pongs (the session measures rtt), speakers, quality, token refresh …

    async def _send(self, msg: Any) -> None:
        link_ = self._link
        if link_ is None or link_.signal is None:
            raise NotConnectedError("the signal connection is closed")
        await link_.signal.send(link_.session.send(msg))

    async def _on_join(self, join: JoinResponse) -> None:
        if join.room is None or join.participant is None:
            await self._fail_connect("the server's join response has no room or participant")
            return
        if self._state is ConnState.RECONNECTING:
            await self._rejoined(join)
            return
        link_ = self._link
        assert link_ is not None
        self._room, self._local = join.room, join.participant
        self._log = logging.LoggerAdapter(_log, {"room": join.room.name})
        link_.subscriber_primary = join.subscriber_primary
        others = {p.identity: p for p in join.other_participants if p.identity != join.participant.identity}
        self._remotes = others
        self._sink.emit(RoomJoined(join.room, join.participant, tuple(others.values()), join.server_version))
        self._start_child(_LOCAL, join.participant, local=True, announce=False)
        for identity, info in others.items():
            self._start_child(identity, info, announce=False)
        self._arm(link_, 0.0, PingTick(link_.generation))
        if not join.subscriber_primary:
            await self._ensure_publisher()

    def _on_room_update(self, room: RoomInfo) -> None:
        old, self._room = self._room, room
        if old is not None and old.metadata != room.metadata:
            self._sink.emit(RoomMetadataChanged(room, old.metadata, room.metadata))

    async def _on_leave(self, leave: Leave) -> None:
        # RESUME is served by a full reconnect too (resume is not implemented); ``can_reconnect`` is what
        # servers before protocol 13 send instead of an action.
        again = leave.action is not LeaveAction.DISCONNECT or leave.can_reconnect
        again = again and leave.reason not in FATAL_LEAVE_REASONS
        why = f"the server sent leave ({leave.reason.name}, {leave.action.name})"
        if self._state is ConnState.CONNECTED and again:
            await self._link_lost(leave.reason, why)
        elif self._state is ConnState.CONNECTING or (self._state is ConnState.RECONNECTING and again):
            await self._fail_connect(f"the server refused the join: {leave.reason.name}")
        else:
            await self._close(leave.reason, send_leave=False)

    def _on_request_response(self, msg: RequestResponse) -> None:
        reply = self._requests.pop(msg.request_id, None)
        if reply is None:
            return
        if msg.reason is RequestResponseReason.OK:
            reply.ok(None)
        else:
            reply.fail(RequestFailedError(f"{msg.reason.name}: {msg.message}".rstrip(": ")))

    async def _on_signal_closed(self, message: SignalClosed) -> None:
        if message.local or self._state in (ConnState.IDLE, ConnState.CLOSED):
            return
        if self._state in (ConnState.CONNECTING, ConnState.RECONNECTING):
            await self._fail_connect(
                f"the server closed the signal connection ({message.code} {message.reason})"
            )
            return
        await self._link_lost(DisconnectReason.SIGNAL_CLOSE, f"signal closed ({message.code})")

    async def _on_ping_tick(self, generation: int) -> None:
        link_ = self._link
        if link_ is None or generation != link_.generation or link_.session.state is not ClientState.JOINED:
            return
        now = time.time()
        if link_.session.timed_out(now):
            await self._link_lost(DisconnectReason.SIGNAL_CLOSE, "ping timeout")
            return
        if link_.session.ping_due(now) and link_.signal is not None:
            with contextlib.suppress(GreenroomError):
                await link_.signal.send(link_.session.make_ping(now))
        interval = link_.session.ping_interval or 5.0
        self._arm(link_, min(interval, max(link_.session.ping_timeout / 3, 0.5)), PingTick(generation))

    # -- peer connections -----------------------------------------------------------------------------------

    def _new_peer(self, role: PeerRole) -> PeerTransport:
        assert self._link is not None
        return PeerTransport(
            role, self._link.sink, policy=self._link.policy, create_data_channels=role is PeerRole.PUBLISHER
        )

    async def _on_offer(self, offer: Offer) -> None:
        link_ = self._link
        assert link_ is not None
        if link_.subscriber is None:
            link_.subscriber = self._new_peer(PeerRole.SUBSCRIBER)
        try:
            sdp = await link_.subscriber.create_answer(offer.sdp)
        except GreenroomError as exc:
            self._log.warning("cannot answer the subscriber offer: %s", exc)
            return
        await self._send(Answer(sdp=sdp, id=offer.id))
        self._check_subscriptions(offer.sdp)

    async def _on_answer(self, answer: Answer) -> None:
        link_ = self._link
        if link_ is None or link_.publisher is None:
            return
        try:
            await link_.publisher.set_remote_description(answer.sdp, "answer")
        except GreenroomError as exc:
            self._log.warning("cannot apply the publisher answer: %s", exc)
        link_.publisher_negotiating = False
        if link_.publisher_again:
            link_.publisher_again = False
            await self._negotiate_publisher()

    async def _on_trickle(self, trickle: Trickle) -> None:
        link_ = self._link
        assert link_ is not None
        peer = link_.publisher if trickle.target is SignalTarget.PUBLISHER else link_.subscriber
        if peer is not None and trickle.candidate.candidate:
            await peer.add_ice_candidate(trickle.candidate)

    async def _ensure_publisher(self) -> None:
        """Create and offer the publisher PC (with ``_reliable``/``_lossy``) on first use."""
        link_ = self._link
        assert link_ is not None
        if link_.publisher is not None:
            return
        link_.publisher = self._new_peer(PeerRole.PUBLISHER)
        await self._negotiate_publisher()

    async def _negotiate_publisher(self) -> None:
        """Offer the publisher PC; one offer outstanding at a time, again after its answer if asked."""
        link_ = self._link
        if link_ is None or link_.publisher is None:
            return
        if link_.publisher_negotiating:
            link_.publisher_again = True
            return
        link_.publisher_negotiating = True
        link_.publisher_offer_id += 1
        sdp = await link_.publisher.create_offer()
        await self._send(Offer(sdp=sdp, id=link_.publisher_offer_id))

    async def _on_peer_state(self, role: PeerRole, state: str) -> None:
        link_ = self._link
        if link_ is None:
            return
        primary = PeerRole.SUBSCRIBER if link_.subscriber_primary else PeerRole.PUBLISHER
        if state == "connected" and role is primary and self._state is ConnState.RECONNECTING:
            await self._reconnected()
        elif state == "connected" and role is primary:
            self._connected()
        elif state in ("failed", "closed") and self._state is ConnState.CONNECTED:
            await self._link_lost(DisconnectReason.MEDIA_FAILURE, f"{role.value} peer connection {state}")
        elif state == "failed" and self._state in (ConnState.CONNECTING, ConnState.RECONNECTING):
            await self._fail_connect(f"the {role.value} peer connection failed")

    # -- data out: SendPacket from the local ParticipantActor ------------------------------------------------

    def _to_local(self, message: PublishData | PublishDtmf | PublishTranscription | UpdateLocalInfo) -> None:
        if self._state is not ConnState.CONNECTED or self._local is None:
            message.reply.fail(NotConnectedError("the room is not connected"))
            return
        self._tell_child(_LOCAL, message)

    async def _on_send_packet(self, message: SendPacket) -> None:
        link_ = self._link
        if self._state is not ConnState.CONNECTED or link_ is None:
            message.reply.fail(NotConnectedError("the room is not connected"))
            return
        packet = self._sequence.stamp(message.packet) if message.reliable else message.packet
        max_size = packets.MAX_MESSAGE_SIZE
        if link_.publisher is not None and link_.publisher.max_message_size is not None:
            max_size = min(max_size, link_.publisher.max_message_size)
        try:
            data = packets.encode_packet(packet, max_size=max_size)
        except GreenroomError as exc:
            message.reply.fail(exc)
            return
        self._outbox.append(_Outgoing(RELIABLE if message.reliable else LOSSY, data, message.reply))
        await self._ensure_publisher()
        await self._flush_outbox(PeerRole.PUBLISHER)

    async def _flush_outbox(self, role: PeerRole) -> None:
        """Send what waits for the publisher's channels, in order, each once its channel is open."""
        link_ = self._link
        if role is not PeerRole.PUBLISHER or link_ is None or link_.publisher is None:
            return
        publisher = link_.publisher
        open_labels = set(publisher.channel_labels())
        waiting: list[_Outgoing] = []
        for item in self._outbox:
            if item.label not in open_labels or any(w.label == item.label for w in waiting):
                waiting.append(item)
                continue
            try:
                await publisher.send(item.label, item.data)
            except GreenroomError as exc:
                item.reply.fail(exc)
            else:
                item.reply.ok(None)
        self._outbox = waiting

    async def _on_set_local_info(self, message: SetLocalInfo) -> None:
        link_ = self._link
        if self._state is not ConnState.CONNECTED or link_ is None:
            message.reply.fail(NotConnectedError("the room is not connected"))
            return
        request_id = link_.session.next_request_id()
        self._requests[request_id] = message.reply
        update = UpdateMetadata(request_id, message.name, message.metadata, message.attributes)
        try:
            await self._send(update)
        except GreenroomError as exc:
            self._requests.pop(request_id, None)
            message.reply.fail(exc)
            return
        loop = asyncio.get_running_loop()
        timer = loop.call_later(REQUEST_TIMEOUT, self._request_timed_out, request_id)
        message.reply.future.add_done_callback(lambda _f: timer.cancel())

    def _request_timed_out(self, request_id: int) -> None:
        reply = self._requests.pop(request_id, None)
        if reply is not None:
            reply.fail(RequestFailedError(f"no answer from the server within {REQUEST_TIMEOUT} s"))

    # -- data in: DataReceived from a PeerTransport ----------------------------------------------------------

    def _on_data(self, message: DataReceived) -> None:
        reliable = message.label == RELIABLE  # route by channel label, never by DataPacket.kind
        try:
            packet = packets.decode_packet(message.data)
        except GreenroomError as exc:
            self._log.warning("dropped an undecodable data packet: %s", exc)
            return
        if reliable and not self._dedup.accept_packet(packet, time.monotonic()):
            return
        identity = packet.participant_identity
        if not identity and isinstance(packet.value, packets.UserPacket):
            identity = packet.value.legacy_participant_identity
        if identity and identity in self._children:
            self._tell_child(identity, DeliverPacket(packet, reliable))
        else:
            self._emit_unattributed(packet, reliable)

    def _emit_unattributed(self, packet: packets.DataPacket, reliable: bool) -> None:
        """A packet from no known participant (a server API): reported with ``participant=None``."""
        match packet.value:
            case packets.UserPacket(payload=payload, topic=topic):
                self._sink.emit(DataEvent("", payload, reliable, topic))
            case packets.SipDtmf(code=code, digit=digit):
                self._sink.emit(DtmfEvent("", code, digit))
            case packets.Transcription() as t:
                self._sink.emit(TranscriptionEvent(t.participant_identity, t.track_id, t.segments))
            case _:
                pass

    # -- participants ---------------------------------------------------------------------------------------

    def _on_participant_update(self, infos: tuple[ParticipantInfo, ...]) -> None:
        local = self._local
        for info in infos:
            if local is not None and (info.sid == local.sid or info.identity == local.identity):
                self._local = local = info
                self._tell_child(_LOCAL, ApplyParticipantInfo(info))
            elif info.state is ParticipantState.DISCONNECTED:
                self._participant_left(info, info.disconnect_reason)
            else:
                self._participant_seen(info)

    def _participant_seen(self, info: ParticipantInfo) -> None:
        known = self._remotes.get(info.identity)
        if known is not None and known.sid != info.sid:  # same identity, new session: old one left
            self._participant_left(known, DisconnectReason.DUPLICATE_IDENTITY)
            known = None
        if known is None:
            self._remotes[info.identity] = info
            self._start_child(info.identity, info, announce=True)
        elif info.version >= known.version:
            self._remotes[info.identity] = info
            self._tell_child(info.identity, ApplyParticipantInfo(info))

    def _participant_left(self, info: ParticipantInfo, reason: DisconnectReason) -> None:
        if self._remotes.pop(info.identity, None) is None:
            return
        self._dedup.forget(info.sid)
        ref = self._children.pop(info.identity, None)
        self._stash.pop(info.identity, None)
        if ref is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(ParticipantLeft(info, reason))

    def _start_child(self, key: str, info: ParticipantInfo, *, local: bool = False, announce: bool) -> None:
        ref = ParticipantActor.start(
            info, self._sink, self.actor_ref, local=local, announce=announce, media=self._media
        )
        link(ref, self.actor_ref, key)
        redirect_leftovers(
            ref, lambda envelopes: self._stash.setdefault(key, []).extend(e.message for e in envelopes)
        )
        self._children[key] = ref
        for message in self._stash.pop(key, []):
            ref.tell(message)

    def _info_of(self, key: str) -> ParticipantInfo | None:
        return self._local if key == _LOCAL else self._remotes.get(key)

    def _tell_child(self, key: str, message: Any) -> None:
        """Tell a ParticipantActor; if it died since, restart it from the room's state first."""
        ref = self._children.get(key)
        if ref is not None:
            try:
                ref.tell(message)
                return
            except pykka.ActorDeadError:
                pass
        self._restart_child(key)
        if key in self._children:
            self._children[key].tell(message)

    def _restart_child(self, key: str) -> None:
        info = self._info_of(key)
        if info is None or self._state in (ConnState.IDLE, ConnState.CLOSED):
            self._children.pop(key, None)
            return
        self._log.warning("restarting the participant actor of %s from the room's state", info.identity)
        self._start_child(key, info, local=key == _LOCAL, announce=False)

    async def _on_child_ended(self, message: ChildFailed | ChildStopped) -> None:
        if self._children.get(message.child_id) is not message.ref:
            return  # an earlier incarnation (already replaced) or a participant that left
        if isinstance(message, ChildStopped):
            self._children.pop(message.child_id, None)
            return
        self._log.warning("participant actor %s crashed: %r", message.child_id, message.exception)
        # The supervision contract's pure decision (one_for_one, permanent, with a restart intensity).
        decision = decide(
            strategy=Strategy.ONE_FOR_ONE,
            children=[(key, RestartType.PERMANENT) for key in self._children],
            failed=message.child_id,
            reason=Crashed(message.exception),
            history=self._restarts,
            now=time.monotonic(),
            intensity=PARTICIPANT_INTENSITY,
        )
        match decision:
            case Restart(history=history):
                self._restarts = history
                self._restart_child(message.child_id)
            case Escalate(restarts=restarts, period=period):
                self._log.error("participant actors crashed %d times in %.0f s: giving up", restarts, period)
                await self._close(DisconnectReason.STATE_MISMATCH, send_leave=True)
            case NoRestart():  # not reached for permanent children; kept for exhaustiveness
                self._children.pop(message.child_id, None)
            case _:
                assert_never(decision)

    # -- media: publish (AddTrackRequest → TrackPublished → sender → renegotiate), subscribe, mute -------

    async def _on_publish_track(self, message: PublishTrack) -> None:
        if self._state is not ConnState.CONNECTED or self._link is None:
            message.reply.fail(NotConnectedError("the room is not connected"))
            return
        if self._media.local(message.cid) is None or message.cid in self._publishing:
            message.reply.fail(RequestFailedError("this track is not publishable (already publishing?)"))
            return
        request = AddTrackRequest(  # SignalRequest.add_track; answered by track_published with our cid
            cid=message.cid,
            name=message.name,
            type=message.type,
            source=message.source,
            width=message.width,
            height=message.height,
            stereo=message.stereo,
            disable_dtx=message.disable_dtx,
            disable_red=message.disable_red,
            stream=message.stream,
        )
        self._publishing[message.cid] = message
        try:
            await self._send(request)
        except GreenroomError as exc:
            self._publishing.pop(message.cid, None)
            message.reply.fail(exc)
            return
        timer = asyncio.get_running_loop().call_later(
            TRACK_PUBLISH_TIMEOUT, self._publish_timed_out, message.cid
        )
        message.reply.future.add_done_callback(lambda _f: timer.cancel())

    def _publish_timed_out(self, cid: str) -> None:
        message = self._publishing.pop(cid, None)
        if message is not None:
            message.reply.fail(RequestFailedError(f"no track_published within {TRACK_PUBLISH_TIMEOUT} s"))

    async def _on_track_published(self, cid: str, info: TrackInfo) -> None:
        message = self._publishing.pop(cid, None)
        gate = self._media.local(cid)
        link_ = self._link
        if message is None or gate is None or link_ is None:
            return
        self._media.bind_local(cid, info.sid)
        self._tell_child(_LOCAL, LocalTrackAdded(info))
        if link_.publisher is None:
            link_.publisher = self._new_peer(PeerRole.PUBLISHER)
        try:
            link_.publisher.add_track(gate)  # msid track id = gate.id = cid: how the server matches it
            self._published[cid] = message
            await self._negotiate_publisher()
        except GreenroomError as exc:
            message.reply.fail(exc)
            return
        message.reply.ok(info)
        previous = self._republishing.pop(cid, None)
        if previous is not None:  # a full reconnect published it again: same publication, new sid
            self._sink.emit(LocalTrackRepublished(previous, info))
            if gate.muted:
                with contextlib.suppress(GreenroomError):
                    await self._send(MuteTrack(info.sid, True))  # SignalRequest.mute

    async def _on_unpublish_track(self, message: UnpublishTrack) -> None:
        link_ = self._link
        cid = self._media.cid_of(message.sid)
        gate = None if cid is None else self._media.local(cid)
        if (
            self._state is ConnState.RECONNECTING
            and cid is not None
            and self._published.pop(cid, None) is not None
        ):
            self._media.drop_local(cid)  # no publisher PC now: it is simply not published again
            message.reply.ok(None)
            return
        if link_ is None or link_.publisher is None or cid is None or gate is None:
            message.reply.fail(RequestFailedError(f"track {message.sid} is not published"))
            return
        link_.publisher.remove_track(gate)  # unpublish = an inactive m-line in the next offer (§6.8)
        self._published.pop(cid, None)
        self._media.drop_local(cid)
        try:
            await self._negotiate_publisher()
        except GreenroomError as exc:
            message.reply.fail(exc)
            return
        message.reply.ok(None)

    async def _on_track_control(self, message: SetLocalTrackMuted | SetSubscribed) -> None:
        if self._state is ConnState.RECONNECTING and isinstance(message, SetLocalTrackMuted):
            self._tell_child(_LOCAL, message)  # the gate mutes now; the republish tells the server
            return
        if self._state is not ConnState.CONNECTED:
            return
        match message:
            case SetLocalTrackMuted(sid=sid, muted=muted):
                self._tell_child(_LOCAL, message)
                with contextlib.suppress(GreenroomError):
                    await self._send(MuteTrack(sid, muted))  # SignalRequest.mute
            case SetSubscribed(track_sid=sid, subscribe=subscribe):
                owner = next((p for p in self._remotes.values() if any(t.sid == sid for t in p.tracks)), None)
                if owner is None:
                    return
                tracks = (ParticipantTracks(owner.sid, (sid,)),)
                with contextlib.suppress(GreenroomError):
                    await self._send(
                        UpdateSubscription((sid,), subscribe, tracks)
                    )  # SignalRequest.subscription
                if not subscribe:
                    self._tell_child(owner.identity, MediaDetached(sid))
            case _:
                assert_never(message)

    async def _on_track_signal(
        self, msg: TrackPublishedResponse | TrackSubscribedResponse | MuteTrack
    ) -> None:
        match msg:
            case TrackPublishedResponse(cid=cid, track=info):  # SignalResponse.track_published
                await self._on_track_published(cid, info)
            case TrackSubscribedResponse(track_sid=sid):  # SignalResponse.track_subscribed
                self._sink.emit(LocalTrackSubscribed(sid))
            case MuteTrack(sid=sid, muted=muted):  # SignalResponse.mute: the server mutes our track
                self._tell_child(_LOCAL, SetLocalTrackMuted(sid, muted))
            case _:
                assert_never(msg)

    def _on_room_signal(self, msg: SpeakersChanged | ConnectionQualityUpdate | SubscriptionResponse) -> None:
        match msg:
            case SpeakersChanged(speakers=speakers):  # the full active set (Rust replaces, JS merges)
                active = sorted((s for s in speakers if s.active), key=lambda s: -s.level)
                self._sink.emit(ActiveSpeakersChanged(tuple((s.sid, s.level) for s in active)))
            case ConnectionQualityUpdate(updates=updates):
                for update in updates:
                    self._sink.emit(ConnectionQualityChanged(update.participant_sid, int(update.quality)))
            case SubscriptionResponse(track_sid=sid, err=err):
                owner = next((p for p in self._remotes.values() if any(t.sid == sid for t in p.tracks)), None)
                identity = "" if owner is None else owner.identity
                self._sink.emit(TrackSubscriptionFailed(identity, sid, err.name))
            case _:
                assert_never(msg)

    async def _on_track_received(self, message: TrackReceived) -> None:
        """The subscriber PC got a track: map it by its m-line's ``a=msid`` (``PA_sid|TR_sid``), attach it."""
        link_ = self._link
        if message.role is not PeerRole.SUBSCRIBER or link_ is None or link_.subscriber is None:
            return
        section = media_sections(link_.subscriber.remote_description or "").get(message.mid or "")
        ids = None if section is None else unpack_stream_id(section.stream_id, section.track_id)
        track = link_.subscriber.track_for_mid(message.mid or "")
        if ids is None or track is None:
            self._log.warning("a received track on mid %s has no LiveKit stream id; ignored", message.mid)
            return
        participant_sid, track_sid = ids
        owner = next((p for p in self._remotes.values() if p.sid == participant_sid), None)
        if owner is None:  # the server must announce the participant before the offer (§6.7)
            self._log.warning("track %s from unknown participant %s; ignored", track_sid, participant_sid)
            return
        await self._media.attach_remote(track_sid, message.mid or "", track)
        self._tell_child(owner.identity, MediaAttached(track_sid))

    def _check_subscriptions(self, offer_sdp: str) -> None:
        """After a subscriber offer: an attached track whose m-line stopped sending was unsubscribed."""
        sections = media_sections(offer_sdp)
        for mid, track_sid in self._media.subscribed_mids().items():
            section = sections.get(mid)
            if section is not None and section.sending:
                continue
            owner = next(
                (p for p in self._remotes.values() if any(t.sid == track_sid for t in p.tracks)), None
            )
            if owner is not None:
                self._tell_child(owner.identity, MediaDetached(track_sid))

    # -- teardown -------------------------------------------------------------------------------------------

    def _arm(self, link_: _Link, delay: float, message: Any) -> None:
        loop = asyncio.get_running_loop()
        link_.timers.append(loop.call_later(delay, self._tell_self, message))

    def _tell_self(self, message: Any) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(message)

    async def _close(self, reason: DisconnectReason, *, send_leave: bool, emit: bool = True) -> None:
        """Close the connection: leave, transports, children, pending requests; then report it once."""
        was = self._state
        if was is ConnState.CLOSED:
            return
        self._state = ConnState.CLOSED
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._published.clear()
        self._republishing.clear()
        link_, self._link = self._link, None
        if link_ is not None:
            await self._release(link_, send_leave)
        self._fail_pending(NotConnectedError(f"the room disconnected ({reason.name})"))
        await self._media.close()
        await self._stop_children()
        if emit and was in (ConnState.CONNECTED, ConnState.RECONNECTING):
            self._sink.emit(Disconnected(reason))

    async def _release(self, link_: _Link, send_leave: bool) -> None:
        link_.sink.live = False  # from here on, nothing of this link reaches the actor
        for timer in link_.timers:
            timer.cancel()
        if send_leave and link_.signal is not None and link_.session.state is ClientState.JOINED:
            with contextlib.suppress(GreenroomError, OSError):
                await asyncio.wait_for(link_.signal.send(link_.session.send(Leave())), CLOSE_TIMEOUT)
        closers = [p.close() for p in (link_.publisher, link_.subscriber) if p is not None]
        if link_.signal is not None:
            closers.append(link_.signal.close())
        for closer in closers:
            try:
                await asyncio.wait_for(closer, CLOSE_TIMEOUT)
            except (TimeoutError, Exception):
                self._log.warning("a transport did not close cleanly", exc_info=True)

    def _fail_pending(self, error: GreenroomError) -> None:
        connect, self._connect = self._connect, None
        if connect is not None:
            connect.reply.fail(ConnectFailedError(str(error)))
        requests, self._requests = self._requests, {}
        for reply in requests.values():
            reply.fail(error)
        outbox, self._outbox = self._outbox, []
        for item in outbox:
            item.reply.fail(error)
        publishing, self._publishing = self._publishing, {}
        for publish in publishing.values():
            publish.reply.fail(error)
        held, self._held = self._held, []
        for message in held:
            waiting = getattr(message, "reply", None)
            if isinstance(waiting, Reply):
                waiting.fail(error)

    async def _stop_children(self) -> None:
        children, self._children = self._children, {}
        self._stash.clear()
        for ref in children.values():
            redirect_leftovers(ref, None)
            await stop_actor(ref, timeout=CLOSE_TIMEOUT)


def _describe_refusal(exc: SignalConnectError) -> str:
    if exc.status is None:
        return f"cannot reach the server: {exc.reason}"
    return f"the server refused the connection ({exc.status}): {exc.reason}"


# --- the facade's handle -----------------------------------------------------------------------------------


class RoomClient:
    """The rtc facade's handle on one room's actor tree.

    Every coroutine here runs on the runtime loop (the facade schedules them with
    :func:`greenroom.runtime.loop.submit`); each ends with a deadline. Requests go to the RoomActor's mailbox
    with a :class:`~greenroom.actors.messages.Reply` and wait for it — never for the actor itself.

    Args:
        ref: the RoomActor.
    """

    def __init__(self, ref: pykka.ActorRef[Any], media: MediaRouter | None = None) -> None:
        self.ref = ref
        self.media = media if media is not None else MediaRouter()
        """The media path (runtime loop only): the facade's streams read it, publishing registers in it."""

    @classmethod
    def start(cls, sink: EventSink) -> RoomClient:
        """Start a RoomActor reporting to ``sink`` (any thread)."""
        media = MediaRouter()
        return cls(RoomActor.start(sink, media), media)

    async def connect(self, url: str, token: str, options: ConnectOptions) -> RoomJoined:
        """Join the room; returns the join snapshot once the primary peer connection is up.

        Raises:
            ConnectFailedError: refused, unreachable, timed out, or the server closed the connection.
        """
        reply: Reply[RoomJoined] = Reply.new()
        self.ref.tell(Connect(url, token, options, reply))
        try:
            return await asyncio.wait_for(asyncio.shield(reply.future), options.timeout + CLOSE_TIMEOUT)
        except TimeoutError:
            raise ConnectFailedError(f"timed out after {options.timeout} s") from None

    async def request(self, make: Any, timeout: float = PUBLISH_TIMEOUT) -> None:
        """Send ``make(reply)`` to the RoomActor and wait for the reply (publish, set_metadata …)."""
        reply: Reply[None] = Reply.new()
        try:
            self.ref.tell(make(reply))
        except pykka.ActorDeadError:
            raise NotConnectedError("the room is closed") from None
        try:
            await asyncio.wait_for(asyncio.shield(reply.future), timeout)
        except TimeoutError:
            raise RequestFailedError(f"no answer within {timeout} s") from None

    async def ask(self, make: Any, timeout: float = PUBLISH_TIMEOUT) -> Any:
        """Like :meth:`request`, returning the reply's value (``publish_track`` → ``TrackInfo``)."""
        reply: Reply[Any] = Reply.new()
        try:
            self.ref.tell(make(reply))
        except pykka.ActorDeadError:
            raise NotConnectedError("the room is closed") from None
        try:
            return await asyncio.wait_for(asyncio.shield(reply.future), timeout)
        except TimeoutError:
            raise RequestFailedError(f"no answer within {timeout} s") from None

    async def close(self, reason: DisconnectReason = DisconnectReason.CLIENT_INITIATED) -> None:
        """Disconnect (if connected) and stop the whole tree; safe to call more than once."""
        reply: Reply[None] = Reply.new()
        with contextlib.suppress(pykka.ActorDeadError):
            self.ref.tell(Disconnect(reason, reply))
            with contextlib.suppress(TimeoutError, GreenroomError):
                await asyncio.wait_for(asyncio.shield(reply.future), 3 * CLOSE_TIMEOUT)
        await stop_actor(self.ref, timeout=3 * CLOSE_TIMEOUT)
