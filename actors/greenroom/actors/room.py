"""RoomActor: one room connection — its links, its data plane, and the supervision of its participants.

The RoomActor owns, for one connected room client:

* the current :class:`~greenroom.actors.link.Link` (signal transport + sans-I/O session + the subscriber and
  publisher PCs) and the connection state (:class:`~greenroom.actors.connection.ConnState`);
* the :class:`~greenroom.actors.dataplane.DataPlane`: publish commands are turned into packets, stamped,
  encoded and *queued* here; the plane's sender tasks send them, so no handler waits on a data channel;
* the :class:`~greenroom.actors.roster.Roster`: each participant's stable key, and the snapshot that
  restores its actor — the participants' state itself belongs to their ParticipantActors;
* the supervision of one ParticipantActor per remote participant plus the local one, through the project's
  one mechanism (a :class:`~greenroom.actors.supervision.ChildTable`: transient children,
  :data:`PARTICIPANT_INTENSITY`, :data:`PARTICIPANT_BACKOFF`, stable addresses whose stash keeps what arrives
  while a child restarts). Past the intensity the room gives up: it disconnects with ``STATE_MISMATCH``.

Transports deliver their events (``SignalBytes``, ``PeerStateChanged``, ``DataReceived`` …) to this actor's
mailbox; every signal event and data packet then goes to the ParticipantActor concerned as a message.
Media handlers live in :mod:`greenroom.actors.room_media` (a mixin: same actor, same state).

Every timer (``PingTick``, ``ConnectDeadline``, ``ReconnectTick``) carries the connection ``generation`` it
was armed for, so a timer from an earlier attempt is ignored; a full reconnect is "a new generation of the
same RoomActor", with the room state (and the ParticipantActors of those still present) kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import typing
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias, assert_never

import pykka

from greenroom.actors.connection import (
    HOLD_CAPACITY,
    Admission,
    BeginReconnect,
    ConnAction,
    Connected,
    ConnectFailedError,
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
    ice_policy_for,
    ice_policy_joined,
    leave_reconnects,
    next_ping_tick,
    reconnect_delay,
)
from greenroom.actors.core import AsyncioActor
from greenroom.actors.dataplane import DataPlane, DataPlaneStats
from greenroom.actors.delivery import DeliveryDue, DeliveryHandlers
from greenroom.actors.e2ee_messages import (
    CryptorCommand,
    CryptorReport,
    KeyCommand,
    ListCryptors,
    SetE2eeEnabled,
)
from greenroom.actors.identity import join_params
from greenroom.actors.link import CLOSE_TIMEOUT, Link, LinkSink, NotConnectedError
from greenroom.actors.media import MediaRouter
from greenroom.actors.messages import (
    Connect,
    ConnectDeadline,
    ConnectOptions,
    Crash,
    Disconnect,
    Disconnected,
    EventSink,
    GetState,
    GetTree,
    LinkRefused,
    PingTick,
    PublishData,
    PublishDtmf,
    PublishPacket,
    PublishTrack,
    PublishTranscription,
    ReconnectTick,
    Reply,
    RequestExpired,
    RoomConnected,
    RoomJoined,
    RoomMetadataChanged,
    SetLocalTrackMuted,
    SetSubscribed,
    Stall,
    TreeState,
    UnpublishTrack,
    UpdateLocalInfo,
)
from greenroom.actors.participant import stall
from greenroom.actors.reliable import IdentityDeduplicator, sequence_base
from greenroom.actors.room_e2ee import E2eeHandlers, E2eeMessage
from greenroom.actors.room_media import TRACK_PUBLISH_TIMEOUT, MediaHandlers, RequestFailedError
from greenroom.actors.room_members import REQUEST_TIMEOUT, Members
from greenroom.actors.roster import LOCAL, Roster
from greenroom.actors.simulate import Simulate, Simulations
from greenroom.actors.supervision import (
    SUPERVISION_MESSAGES,
    Backoff,
    ChildTable,
    Intensity,
)
from greenroom.codecs import packets
from greenroom.codecs.errors import GreenroomError, ProtocolError
from greenroom.codecs.models import (
    DisconnectReason,
    ParticipantInfo,
    RequestResponseReason,
    RoomInfo,
    TrackInfo,
)
from greenroom.codecs.session import ClientState
from greenroom.codecs.signalling import (
    Answer,
    ConnectionQualityUpdate,
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
)
from greenroom.codecs.signalling import TrackPublished as TrackPublishedResponse
from greenroom.codecs.signalling import TrackSubscribed as TrackSubscribedResponse
from greenroom.runtime.peer import (
    DataChannelClosed,
    DataChannelOpened,
    DataReceived,
    PeerRole,
    PeerStateChanged,
    PeerTransport,
    TrackReceived,
)
from greenroom.runtime.signal_transport import SignalBytes, SignalClosed

__all__ = [
    "PARTICIPANT_BACKOFF",
    "PARTICIPANT_INTENSITY",
    "ConnState",
    "ConnectFailedError",
    "NotConnectedError",
    "RequestFailedError",
    "RoomActor",
    "RoomSnapshot",
    "ice_policy_for",
    "reconnect_delay",
]

_log = logging.getLogger("greenroom.actors.room")

#: The crash-loop brake for participant actors: more restarts than this within the period and the room gives
#: up (disconnects with ``STATE_MISMATCH``) rather than restart a poisoned actor forever.
PARTICIPANT_INTENSITY = Intensity(max_restarts=10, period=10.0)
#: A lone crash restarts at once; a crash loop slows down: 10 ms doubling up to 0.5 s (± 20 %), counting the
#: restarts of the last second (a crash more than 1 s after the previous restart is a lone crash again).
PARTICIPANT_BACKOFF = Backoff(min_delay=0.01, max_delay=0.5, random_factor=0.2, reset_after=1.0, immediate=1)

__all__ += ["CLOSE_TIMEOUT", "HOLD_CAPACITY", "REQUEST_TIMEOUT", "TRACK_PUBLISH_TIMEOUT"]


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    """The RoomActor's state (answered to ``GetState``; tests and tools)."""

    state: ConnState
    room: RoomInfo | None
    local: ParticipantInfo | None
    remotes: tuple[ParticipantInfo, ...]
    children: tuple[tuple[str, pykka.ActorRef[Any] | None], ...]
    """``(name, ref)`` of each ParticipantActor: the identity, ``"local"`` for the local one; ``ref`` is
    ``None`` while it restarts."""
    generation: int
    outbox: DataPlaneStats
    """The data plane's counters (packets queued, sent, failed, refused)."""


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
    | PublishPacket
    | UpdateLocalInfo
    | PublishTrack
    | UnpublishTrack
    | SetLocalTrackMuted
    | SetSubscribed
    | PingTick
    | ConnectDeadline
    | ReconnectTick
    | LinkRefused
    | RequestExpired
    | GetState
    | GetTree
    | Crash
    | Stall
    | Simulate
    | DeliveryDue
    | E2eeMessage
)
_ROOM_MESSAGES = typing.get_args(RoomMessage)
#: What waits while the room reconnects (each is replayed once the room is connected again).
_PUBLISH = (PublishData, PublishDtmf, PublishTranscription, PublishPacket)
_HELD = (*_PUBLISH, UpdateLocalInfo, PublishTrack, SetSubscribed)


class RoomActor(Members, MediaHandlers, Simulations, DeliveryHandlers, E2eeHandlers, AsyncioActor):
    """One room connection and its state; the supervisor of the room's ParticipantActors.

    Args:
        sink: where the tree reports :data:`~greenroom.actors.messages.RoomEvent` values (the facade).
        media: the room's media path (shared with the facade's streams; a fresh one by default).
    """

    def __init__(self, sink: EventSink, media: MediaRouter | None = None) -> None:
        super().__init__()
        self._sink = sink
        self._media = media if media is not None else MediaRouter()
        self._machine: ConnectionMachine[Any] = ConnectionMachine(hold_capacity=HOLD_CAPACITY)
        self._published: dict[str, PublishTrack] = {}  # cid -> request, of every published local track
        self._local_tracks: dict[str, TrackInfo] = {}  # sid -> info, restores the local ParticipantActor
        self._republishing: dict[str, str] = {}  # new cid -> previous sid, while a full reconnect republishes
        self._url, self._token, self._options = "", "", ConnectOptions()
        self._retry: asyncio.TimerHandle | None = None
        self._rng = random.Random()
        self._link: Link | None = None
        self._releasing: set[asyncio.Task[None]] = set()  # links dropped, closing in the background
        self._connect: Connect | None = None
        self._join: JoinResponse | None = None  # the join response being applied (StartSession)
        self._room: RoomInfo | None = None
        self._roster = Roster()
        self._leaving: dict[str, ParticipantInfo] = {}  # key -> last info, until its actor has said goodbye
        self._participants = ChildTable(
            self.actor_ref,
            "participants",
            intensity=PARTICIPANT_INTENSITY,
            backoff=PARTICIPANT_BACKOFF,
            ask_timeout=self.ask_timeout,
        )
        self._plane = DataPlane()
        self._sequence = packets.SequenceCounter(sequence_base(time.time()))  # kept across full reconnects
        self._dedup = IdentityDeduplicator()
        self._away: dict[str, float] = {}
        self._alive_at = time.monotonic()
        self._log = logging.LoggerAdapter(_log, {"room": "?"})
        self._init_e2ee()

    def __str__(self) -> str:
        name = self._room.name if self._room is not None else "?"
        return f"RoomActor({name})"

    @property
    def _state(self) -> ConnState:
        return self._machine.state

    def _in_flight(self, key: object) -> bool:
        return self._machine.in_flight(key)

    def _answered(self, key: object) -> Any:
        return self._machine.answered(key)

    # -- dispatch -------------------------------------------------------------------------------------------

    async def on_receive(self, message: Any) -> Any:
        """Dispatch one :data:`RoomMessage` or a child's exit (anything else is logged and dropped)."""
        if isinstance(message, SUPERVISION_MESSAGES):
            await self._on_supervision(message)
            return None
        if not isinstance(message, _ROOM_MESSAGES):
            self._log.warning("unexpected message %r", message)
            return None
        if isinstance(message, _HELD):
            admission = self._machine.admit(message)
            if admission is Admission.HELD:
                return None
            if admission is Admission.REFUSED:
                _fail(
                    message, NotConnectedError(f"the room is reconnecting and {HOLD_CAPACITY} requests wait")
                )
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
            case DataChannelOpened() | DataChannelClosed():
                self._plane.channel_changed()
            case TrackReceived():
                await self._on_track_received(message)
            case PublishTrack():
                self._on_publish_track(message)
            case UnpublishTrack():
                self._on_unpublish_track(message)
            case SetLocalTrackMuted() | SetSubscribed():
                self._on_track_control(message)
            case DataReceived(label=label, data=data):
                self._on_data(label, data)
            case PublishData() | PublishDtmf() | PublishTranscription() | PublishPacket():
                self._on_publish(message)
            case UpdateLocalInfo():
                self._on_update_local_info(message)
            case PingTick(generation=generation):
                await self._on_ping_tick(generation)
            case LinkRefused(generation=generation, why=why, fatal=fatal):
                await self._feed(Refused(generation, why, fatal))
            case ConnectDeadline(generation=generation):
                await self._feed(Deadline(generation))
            case ReconnectTick(generation=generation):
                await self._feed(RetryDue(generation))
            case RequestExpired(key=key, ticket=ticket):
                await self._perform_all(self._machine.expire(Expired(key, ticket)))
            case DeliveryDue():
                await self._on_delivery_due(message)
            case GetState():
                return self.snapshot()
            case GetTree():
                return self.tree()
            case Simulate():
                await self._on_simulate(message)
            case Crash(reason=reason):
                raise RuntimeError(reason)
            case Stall():
                await stall(message)
            case KeyCommand() | CryptorCommand() | SetE2eeEnabled() | ListCryptors() | CryptorReport():
                self._on_e2ee(message)
            case _:
                assert_never(message)
        return None

    def snapshot(self) -> RoomSnapshot:
        """The current state (for ``GetState``)."""
        children = tuple(
            (c.id if c.id == LOCAL else self._name_of(c.id), c.ref)
            for c in self._participants.which_children()
        )
        return RoomSnapshot(
            state=self._state,
            room=self._room,
            local=self._roster.local,
            remotes=self._roster.remotes(),
            children=children,
            generation=self._machine.generation,
            outbox=self._plane.stats(),
        )

    def tree(self) -> TreeState:
        """The participants' actors and the restarts made (for ``GetTree``)."""
        children = tuple((c.id, self._name_of(c.id), c.ref) for c in self._participants.which_children())
        return TreeState(children, tuple(self._participants.restart_events()))

    def _name_of(self, key: str) -> str:
        if key == LOCAL:
            return LOCAL
        info = self._roster.info(key) or self._leaving.get(key)
        return key if info is None else info.identity

    async def on_stop(self) -> None:
        """Stopping the actor closes the connection (without an event) and stops the children."""
        await self._close(DisconnectReason.CLIENT_INITIATED, send_leave=True, emit=False)

    async def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """A crashed RoomActor still releases its sockets, peer connections and children."""
        await self._close(DisconnectReason.UNKNOWN_REASON, send_leave=True)

    # -- the pump: events into the connection machine, its actions performed -----------------------------

    async def _feed(self, event: ConnEvent) -> None:
        await self._perform_all(self._machine.handle(event, self._rng.random()))

    async def _perform_all(self, actions: list[ConnAction]) -> None:
        for action in actions:
            await self._perform(action)

    async def _perform(self, action: ConnAction) -> None:  # noqa: C901 - one line per action
        match action:
            case OpenLink(generation=generation, timeout=timeout):
                self._open_link(generation, timeout)
            case ReleaseLink(send_leave=send_leave):
                self._release_link(send_leave)
            case StartSession(rejoin=rejoin):
                await (self._rejoined() if rejoin else self._joined())
            case Connected():
                self._connected()
            case BeginReconnect(reason=reason):
                await self._begin_reconnect(reason)
            case ScheduleRetry(generation=generation, delay=delay, attempt=attempt, failed=failed):
                if failed:
                    self._log.warning("reconnect attempt %d failed: %s", attempt - 1, failed)
                attempts = self._options.reconnect_attempts
                self._log.info("reconnect attempt %d/%d in %.2f s", attempt, attempts, delay)
                loop = asyncio.get_running_loop()
                self._retry = loop.call_later(delay, self._tell_self, ReconnectTick(generation))
            case Restored():
                await self._reconnected()
            case Replay(replay=replay):
                await self._replay(replay)
            case FailRequests(requests=requests, why=why, timed_out=timed_out):
                error = RequestFailedError(why) if timed_out else NotConnectedError(why)
                for request in requests:
                    _fail(request, error)
            case Teardown():
                await self._teardown(action)
            case _:
                assert_never(action)

    # -- connect --------------------------------------------------------------------------------------------

    async def _on_connect(self, message: Connect) -> None:
        if self._state is not ConnState.IDLE:
            message.reply.fail(ConnectFailedError(f"cannot connect: the room is {self._state.name.lower()}"))
            return
        self._url, self._token, self._options = message.url, message.token, message.options
        self._connect = message
        self._configure_e2ee(message.options.e2ee)
        await self._feed(Start(message.options))

    def _open_link(self, generation: int, timeout: float) -> None:
        """A new link (a new generation): its signal connection opens in the link's task, then ``join``."""
        policy = ice_policy_for(self._url, self._options)
        link_ = Link(generation, self._url, self._token, self._options, policy, LinkSink(self.actor_ref))
        self._link = link_
        self._arm(link_, timeout, ConnectDeadline(generation))
        params = join_params(auto_subscribe=self._options.auto_subscribe)
        link_.open(dict(urllib.parse.parse_qsl(params.to_query())))

    def _release_link(self, send_leave: bool) -> None:
        """Drop the current link now; its transports close in the background (awaited by the teardown)."""
        link_, self._link = self._link, None
        if link_ is None:
            return
        link_.cut()
        task = asyncio.get_running_loop().create_task(
            link_.release(send_leave), name="greenroom-link-release"
        )
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    def _connected(self) -> None:
        """The primary peer connection is up: the room is connected."""
        local = self._roster.local
        assert self._room is not None
        assert local is not None
        connect, self._connect = self._connect, None
        self._sink.emit(RoomConnected())
        if connect is not None:
            connect.reply.ok(RoomJoined(self._room, local, self._roster.remotes()))

    # -- signal ---------------------------------------------------------------------------------------------

    async def _on_signal_bytes(self, data: bytes) -> None:
        link_ = self._link
        if link_ is None:
            return
        self._alive_at = time.monotonic()  # a frame from a live server (a leave included)
        try:
            link_.session.receive_data(data, time.time())
        except ProtocolError as exc:
            self._log.warning("dropped a signal frame: %s", exc)
            await self._feed(Garbled(link_.generation, str(exc)))
        for event in link_.session.events():
            await self._on_signal_message(link_, event)
            if self._link is not link_:
                return  # the connection was closed by that message

    async def _on_signal_message(self, link_: Link, msg: SignalResponseMessage) -> None:
        match msg:
            case JoinResponse():  # SignalResponse.join
                await self._on_join(link_, msg)
            case Offer():  # SignalResponse.offer: the server (re)negotiates the subscriber PC
                self._check_subscriptions(msg.sdp)
                self._negotiate(link_.answer, msg)
            case Answer():  # SignalResponse.answer: to our publisher offer
                self._negotiate(link_.apply_answer, msg)
            case Trickle():  # SignalResponse.trickle
                self._negotiate(link_.trickle, msg)
            case ParticipantUpdate(participants=infos):  # SignalResponse.update
                self._on_participant_update(infos)
                await self._check_recipients()
            case RoomUpdate(room=room):  # SignalResponse.room_update
                self._on_room_update(room)
            case Leave():  # SignalResponse.leave
                why = f"the server sent leave ({msg.reason.name}, {msg.action.name})"
                await self._feed(LeaveReceived(link_.generation, msg.reason, leave_reconnects(msg), why))
            case RequestResponse():  # SignalResponse.request_response: answers update_metadata
                self._on_request_response(msg)
            case TrackPublishedResponse() | TrackSubscribedResponse() | MuteTrack():
                self._on_track_signal(msg)
            case SpeakersChanged() | ConnectionQualityUpdate() | SubscriptionResponse():
                self._on_room_signal(msg)
            case RefreshToken(token=token):  # SignalResponse.refresh_token: used by the next full reconnect
                self._token = token
            case _:
                pass  # pongs (the session measures rtt) and messages greenroom does not model

    def _negotiate(self, operation: Callable[[Any], None], message: Any) -> None:
        """Hand a server offer/answer/trickle to the link's negotiator (refused when it is flooded)."""
        try:
            operation(message)
        except GreenroomError as exc:
            self._log.warning("dropped %s: %s", type(message).__name__, exc)

    async def _on_join(self, link_: Link, join: JoinResponse) -> None:
        if join.room is None or join.participant is None:
            await self._feed(Garbled(link_.generation, "the join response has no room or participant"))
            return
        self._join = join
        link_.policy = ice_policy_joined(
            link_.policy, self._options, join.ice_servers, join.client_configuration
        )
        try:
            await self._feed(Joined(link_.generation))
        finally:
            self._join = None

    def _on_room_update(self, room: RoomInfo) -> None:
        old, self._room = self._room, room
        if old is not None and old.metadata != room.metadata:
            self._sink.emit(RoomMetadataChanged(room, old.metadata, room.metadata))

    def _on_request_response(self, msg: RequestResponse) -> None:
        if msg.request_id == 0 and msg.reason is not RequestResponseReason.OK:
            self._publish_refused(msg)
            return
        request = self._machine.answered(msg.request_id)
        if request is None:
            return
        if msg.reason is RequestResponseReason.OK:
            request.reply.ok(None)
        else:
            request.reply.fail(RequestFailedError(f"{msg.reason.name}: {msg.message}".rstrip(": ")))

    def _publish_refused(self, msg: RequestResponse) -> None:
        """A refused ``add_track`` (it has no request id): the copy's ``cid`` names the publish; a server that
        sends no copy refuses them all (the permission is the participant's, not the track's)."""
        waiting = [k for k in self._machine.keys_in_flight() if isinstance(k, str)]
        for cid in [msg.add_track_cid] if msg.add_track_cid else waiting:
            request = self._machine.answered(cid)
            if isinstance(request, PublishTrack):
                request.reply.fail(RequestFailedError(f"{msg.reason.name}: {msg.message}".rstrip(": ")))

    async def _on_signal_closed(self, message: SignalClosed) -> None:
        link_ = self._link
        if message.local or link_ is None:
            return
        why = f"the server closed the signal connection ({message.code} {message.reason})"
        self._alive_at = time.monotonic()  # a close: the path worked until now
        await self._feed(Lost(link_.generation, DisconnectReason.SIGNAL_CLOSE, why))

    async def _on_ping_tick(self, generation: int) -> None:
        link_ = self._link
        if link_ is None or generation != link_.generation or link_.session.state is not ClientState.JOINED:
            return
        now = time.time()
        if link_.session.timed_out(now):
            await self._feed(Lost(generation, DisconnectReason.SIGNAL_CLOSE, "ping timeout"))
            return
        if link_.session.ping_due(now) and link_.signal is not None:
            with contextlib.suppress(GreenroomError):
                link_.post_frame(link_.session.make_ping(now))
        interval = link_.session.ping_interval or 5.0
        self._arm(
            link_, next_ping_tick(now, interval, link_.session.silence_deadline()), PingTick(generation)
        )

    # -- peer connections -----------------------------------------------------------------------------------

    def _ensure_publisher(self, *, offer: bool = True) -> PeerTransport:
        """The current link's publisher PC (created and offered on first use), handed to the data plane."""
        assert self._link is not None
        publisher = self._link.ensure_publisher(offer=offer)
        self._plane.attach(publisher)
        return publisher

    async def _on_peer_state(self, role: PeerRole, state: str) -> None:
        link_ = self._link
        if link_ is None:
            return
        if state == "connected" and role is link_.primary():
            await self._feed(Up(link_.generation))
        elif state in ("failed", "closed"):
            why = f"the {role.value} peer connection {state}"
            await self._feed(Lost(link_.generation, DisconnectReason.MEDIA_FAILURE, why))

    # -- requests in flight and timers ----------------------------------------------------------------------

    def _sent(self, key: object, request: Any, delay: float, *, on_loss: OnLoss, why_late: str) -> None:
        """Track a request in flight in the machine and arm its deadline (cancelled once it is answered)."""
        ticket = self._machine.sent(key, request, on_loss=on_loss, why_late=why_late)
        timer = asyncio.get_running_loop().call_later(delay, self._tell_self, RequestExpired(key, ticket))
        request.reply.future.add_done_callback(lambda _f: timer.cancel())

    def _arm(self, link_: Link, delay: float, message: Any) -> None:
        loop = asyncio.get_running_loop()
        link_.timers.append(loop.call_later(delay, self._tell_self, message))

    def _tell_self(self, message: Any) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(message)

    # -- teardown -------------------------------------------------------------------------------------------

    async def _close(self, reason: DisconnectReason, *, send_leave: bool, emit: bool = True) -> None:
        """Close the connection (a no-op once closed): the machine decides what to fail and report."""
        await self._feed(Stop(reason, send_leave, emit))

    async def _teardown(self, action: Teardown[Any]) -> None:
        """Leave, transports, children, pending requests; then report it once."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._published.clear()
        self._republishing.clear()
        self._away.clear()
        link_, self._link = self._link, None
        if link_ is not None:
            await link_.release(action.send_leave)
        if self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)
        error = NotConnectedError(f"the room disconnected ({action.reason.name})")
        connect, self._connect = self._connect, None
        if connect is not None:
            connect.reply.fail(ConnectFailedError(action.why))
        for request in action.requests:
            _fail(request, error)
        await self._plane.close(error)
        await self._media.close()
        await self._participants.shutdown()
        self._roster.clear()
        self._leaving.clear()
        if action.emit:
            self._sink.emit(Disconnected(action.reason))
        if action.stop:
            self._log.error("%s", action.why)
            self.stop()  # nothing is left to drive: the tree ends here (the facade's close is then a no-op)


def _fail(request: Any, error: BaseException) -> None:
    """Fail a held or in-flight request (``SetSubscribed`` has no reply: nobody waits for it)."""
    reply = getattr(request, "reply", None)
    if isinstance(reply, Reply):
        reply.fail(error)
