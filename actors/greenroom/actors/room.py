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
from dataclasses import dataclass, replace
from typing import Any, TypeAlias, assert_never

import pykka

from greenroom.actors.connection import (
    ConnectFailedError,
    ConnState,
    describe_refusal,
    ice_policy_for,
    leave_reconnects,
    reconnect_delay,
)
from greenroom.actors.core import AsyncioActor
from greenroom.actors.dataplane import DataPlane, DataPlaneStats
from greenroom.actors.link import CLOSE_TIMEOUT, Link, LinkSink, NotConnectedError
from greenroom.actors.media import MediaRouter
from greenroom.actors.messages import (
    ApplyParticipantInfo,
    Connect,
    ConnectDeadline,
    ConnectionStateChanged,
    ConnectOptions,
    Crash,
    Disconnect,
    Disconnected,
    EventSink,
    GetState,
    GetTree,
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
    SetLocalTrackMuted,
    SetSubscribed,
    Stall,
    TreeState,
    UnpublishTrack,
    UpdateLocalInfo,
)
from greenroom.actors.participant import stall
from greenroom.actors.room_media import TRACK_PUBLISH_TIMEOUT, MediaHandlers, RequestFailedError
from greenroom.actors.room_members import REQUEST_TIMEOUT, Members
from greenroom.actors.roster import LOCAL, Joined, Roster
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
from greenroom.runtime.signal_transport import SignalBytes, SignalClosed, SignalConnectError, SignalTransport

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
#: Requests held while the room reconnects (replayed in order once reconnected); beyond this they fail.
HOLD_CAPACITY = 1_000
#: The SDK name and version greenroom reports in the join query.
SDK_NAME = "python"
SDK_VERSION = "1.2.1"

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
    | UpdateLocalInfo
    | PublishTrack
    | UnpublishTrack
    | SetLocalTrackMuted
    | SetSubscribed
    | PingTick
    | ConnectDeadline
    | ReconnectTick
    | GetState
    | GetTree
    | Crash
    | Stall
)
_ROOM_MESSAGES = typing.get_args(RoomMessage)
#: What waits while the room reconnects (each is replayed once the room is connected again).
_HELD = (PublishData, PublishDtmf, PublishTranscription, UpdateLocalInfo, PublishTrack, SetSubscribed)


class RoomActor(Members, MediaHandlers, AsyncioActor):
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
        self._local_tracks: dict[str, TrackInfo] = {}  # sid -> info, restores the local ParticipantActor
        self._republishing: dict[str, str] = {}  # new cid -> previous sid, while a full reconnect republishes
        self._held: list[Any] = []  # requests waiting for a reconnect (``_HELD``), replayed in order
        self._url, self._token, self._options = "", "", ConnectOptions()
        self._attempt = 0
        self._lost_reason = DisconnectReason.UNKNOWN_REASON
        self._retry: asyncio.TimerHandle | None = None
        self._rng = random.Random()
        self._state = ConnState.IDLE
        self._generation = 0
        self._link: Link | None = None
        self._connect: Connect | None = None
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
        self._requests: dict[int, Reply[None]] = {}
        self._plane = DataPlane()
        self._sequence = packets.SequenceCounter()
        self._dedup = packets.ReliableDeduplicator()
        self._log = logging.LoggerAdapter(_log, {"room": "?"})

    def __str__(self) -> str:
        name = self._room.name if self._room is not None else "?"
        return f"RoomActor({name})"

    # -- dispatch -------------------------------------------------------------------------------------------

    async def on_receive(self, message: Any) -> Any:
        """Dispatch one :data:`RoomMessage` or a child's exit (anything else is logged and dropped)."""
        if isinstance(message, SUPERVISION_MESSAGES):
            await self._on_supervision(message)
            return None
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
            case DataChannelOpened() | DataChannelClosed():
                self._plane.channel_changed()
            case TrackReceived():
                await self._on_track_received(message)
            case PublishTrack():
                await self._on_publish_track(message)
            case UnpublishTrack():
                await self._on_unpublish_track(message)
            case SetLocalTrackMuted() | SetSubscribed():
                self._on_track_control(message)
            case DataReceived(label=label, data=data):
                self._on_data(label, data)
            case PublishData() | PublishDtmf() | PublishTranscription():
                await self._on_publish(message)
            case UpdateLocalInfo():
                self._on_update_local_info(message)
            case PingTick(generation=generation):
                await self._on_ping_tick(generation)
            case ConnectDeadline(generation=generation):
                await self._on_connect_deadline(generation)
            case ReconnectTick(generation=generation):
                await self._on_reconnect_tick(generation)
            case GetState():
                return self.snapshot()
            case GetTree():
                return self.tree()
            case Crash(reason=reason):
                raise RuntimeError(reason)
            case Stall():
                await stall(message)
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
            generation=self._generation,
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

    # -- connect --------------------------------------------------------------------------------------------

    async def _on_connect(self, message: Connect) -> None:
        if self._state is not ConnState.IDLE:
            message.reply.fail(ConnectFailedError(f"cannot connect: the room is {self._state.name.lower()}"))
            return
        self._url, self._token, self._options = message.url, message.token, message.options
        self._connect, self._state = message, ConnState.CONNECTING
        refused = await self._open_link()
        if refused is not None:
            await self._fail_connect(describe_refusal(refused))

    async def _open_link(self) -> SignalConnectError | None:
        """Start a new link (a new generation): its signal connection, which then receives ``join``.

        Returns:
            The refusal when the signal connection could not be opened, else ``None``.
        """
        self._generation += 1
        options = self._options
        policy = ice_policy_for(self._url, options)
        link_ = Link(self._generation, self._url, self._token, options, policy, LinkSink(self.actor_ref))
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
        local = self._roster.local
        if self._state is not ConnState.CONNECTING or self._link is None or local is None:
            return
        assert self._room is not None
        self._state = ConnState.CONNECTED
        connect, self._connect = self._connect, None
        self._sink.emit(RoomConnected())
        if connect is not None:
            connect.reply.ok(RoomJoined(self._room, local, self._roster.remotes()))

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
        self._plane.detach()  # accepted packets stay queued for the next publisher
        link_, self._link = self._link, None
        if link_ is not None:
            await link_.release(send_leave=True)
        requests, self._requests = self._requests, {}  # sent on the dead session: never answered
        for reply in requests.values():
            reply.fail(NotConnectedError("the connection was lost before the server answered"))
        publishing, self._publishing = self._publishing, {}  # not yet acknowledged: ask again after
        self._held[:0] = publishing.values()
        await self._detach_all_media()
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
            await self._attempt_failed(describe_refusal(refused), fatal=refused.status in (401, 403))

    async def _attempt_failed(self, why: str, *, fatal: bool = False) -> None:
        if self._state is not ConnState.RECONNECTING:
            return
        link_, self._link = self._link, None
        if link_ is not None:
            await link_.release(send_leave=True)
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
        self._room = join.room
        self._roster.set_local(join.participant)
        link_.subscriber_primary = join.subscriber_primary
        self._local_tracks.clear()  # the old local tracks ended with the old session; republished below
        self._tell_child(LOCAL, ApplyParticipantInfo(join.participant))  # new sid; old local tracks end
        others = {p.identity: p for p in join.other_participants if p.identity != join.participant.identity}
        for info in self._roster.remotes():
            if info.identity not in others:  # left while we were away
                self._participant_left(info.sid, info, DisconnectReason.UNKNOWN_REASON)
        for info in others.values():
            # still here with the same sid: same actor, whatever the version (a restarted server restarts
            # them); the same identity with a new sid is a leave + a join, as in the Rust SDK
            self._participant_seen(info, any_version=True)
        self._arm(link_, 0.0, PingTick(link_.generation))
        if not join.subscriber_primary:
            await self._ensure_publisher()

    async def _reconnected(self) -> None:
        """The new link's primary PC is up: connected again; republish, then replay what waited."""
        local = self._roster.local
        assert self._room is not None
        assert local is not None
        self._state, self._attempt = ConnState.CONNECTED, 0
        self._log.info("reconnected")
        self._sink.emit(ConnectionStateChanged(1))  # CONN_CONNECTED
        self._sink.emit(Reconnected(self._room, local))
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
            await self.on_receive(message)  # held again if the link is lost once more
        if self._plane.stats().queued and self._state is ConnState.CONNECTED:  # accepted before the loss
            await self._ensure_publisher()

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
            await self._on_signal_message(link_, event)
            if self._link is not link_:
                return  # the connection was closed by that message

    async def _on_signal_message(self, link_: Link, msg: SignalResponseMessage) -> None:  # noqa: C901
        match msg:
            case JoinResponse():  # SignalResponse.join
                await self._on_join(msg)
            case Offer():  # SignalResponse.offer: the server (re)negotiates the subscriber PC
                if await link_.answer(msg):
                    self._check_subscriptions(msg.sdp)
            case Answer():  # SignalResponse.answer: to our publisher offer
                await link_.apply_answer(msg)
            case Trickle():  # SignalResponse.trickle
                await link_.trickle(msg)
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
                pass  # pongs (the session measures rtt) and messages greenroom does not model

    async def _on_join(self, join: JoinResponse) -> None:
        if join.room is None or join.participant is None:
            await self._fail_connect("the server's join response has no room or participant")
            return
        if self._state is ConnState.RECONNECTING:
            await self._rejoined(join)
            return
        link_ = self._link
        assert link_ is not None
        self._room = join.room
        self._roster.set_local(join.participant)
        self._log = logging.LoggerAdapter(_log, {"room": join.room.name})
        link_.subscriber_primary = join.subscriber_primary
        self._start_child(LOCAL, announce=False)
        for info in join.other_participants:
            if info.identity != join.participant.identity:
                seen = self._roster.seen(info)
                if isinstance(seen, Joined):
                    self._start_child(seen.key, announce=False)
        remotes = self._roster.remotes()
        self._sink.emit(RoomJoined(join.room, join.participant, remotes, join.server_version))
        self._arm(link_, 0.0, PingTick(link_.generation))
        if not join.subscriber_primary:
            await self._ensure_publisher()

    def _on_room_update(self, room: RoomInfo) -> None:
        old, self._room = self._room, room
        if old is not None and old.metadata != room.metadata:
            self._sink.emit(RoomMetadataChanged(room, old.metadata, room.metadata))

    async def _on_leave(self, leave: Leave) -> None:
        again = leave_reconnects(leave)
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
                link_.post_frame(link_.session.make_ping(now))
        interval = link_.session.ping_interval or 5.0
        self._arm(link_, min(interval, max(link_.session.ping_timeout / 3, 0.5)), PingTick(generation))

    # -- peer connections -----------------------------------------------------------------------------------

    async def _ensure_publisher(self, *, offer: bool = True) -> PeerTransport:
        """The current link's publisher PC (created and offered on first use), handed to the data plane."""
        assert self._link is not None
        publisher = await self._link.ensure_publisher(offer=offer)
        self._plane.attach(publisher)
        return publisher

    async def _on_peer_state(self, role: PeerRole, state: str) -> None:
        link_ = self._link
        if link_ is None:
            return
        primary = link_.primary()
        if state == "connected" and role is primary and self._state is ConnState.RECONNECTING:
            await self._reconnected()
        elif state == "connected" and role is primary:
            self._connected()
        elif state in ("failed", "closed") and self._state is ConnState.CONNECTED:
            await self._link_lost(DisconnectReason.MEDIA_FAILURE, f"{role.value} peer connection {state}")
        elif state == "failed" and self._state in (ConnState.CONNECTING, ConnState.RECONNECTING):
            await self._fail_connect(f"the {role.value} peer connection failed")

    # -- teardown -------------------------------------------------------------------------------------------

    def _arm(self, link_: Link, delay: float, message: Any) -> None:
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
            await link_.release(send_leave)
        error = NotConnectedError(f"the room disconnected ({reason.name})")
        self._fail_pending(error)
        await self._plane.close(error)
        await self._media.close()
        await self._participants.shutdown()
        self._roster.clear()
        self._leaving.clear()
        if emit and was in (ConnState.CONNECTED, ConnState.RECONNECTING):
            self._sink.emit(Disconnected(reason))

    def _fail_pending(self, error: GreenroomError) -> None:
        connect, self._connect = self._connect, None
        if connect is not None:
            connect.reply.fail(ConnectFailedError(str(error)))
        requests, self._requests = self._requests, {}
        for reply in requests.values():
            reply.fail(error)
        publishing, self._publishing = self._publishing, {}
        for publish in publishing.values():
            publish.reply.fail(error)
        held, self._held = self._held, []
        for message in held:
            waiting = getattr(message, "reply", None)
            if isinstance(waiting, Reply):
                waiting.fail(error)
