"""One connected participant: its signal WebSocket and its two aiortc peer connections.

A :class:`ParticipantSession` is a plain set of asyncio tasks on the server's loop (no actors: the dev
server's state is one room dict touched from one loop, so mailboxes would add hops and nothing else):

* the **reader** decodes ``SignalRequest`` frames and dispatches them (``match`` + ``assert_never``);
* the **signal writer** drains an ordered outbox, so a ``ParticipantUpdate`` queued before a subscriber
  ``offer`` is always sent before it (trap 10 of signal-protocol.md §11.5) and broadcasts from other
  sessions never interleave inside a frame;
* the **data pump** forwards relayed ``DataPacket`` bytes on the subscriber (primary) connection, in order.

Media lives in the :class:`~greenroom.devserver.session_media.SessionMedia` mixin (``session_media.py``):
taps, publications, subscriptions (``reconcile``) and media statistics; this module keeps the signal
connection, the negotiation of both peer connections and the data relay.

``subscriber_primary`` is always true: the server offers the subscriber PC with ``_reliable``/``_lossy``
right after the JoinResponse (trap 7) and downstream data goes there, because a receive-only Rust client
never connects its publisher PC (signal-protocol.md §6.1). Subscriber renegotiations go through one queue
(:meth:`ParticipantSession.renegotiate`: one offer outstanding, a flag to offer again after the answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol, assert_never

from websockets.exceptions import ConnectionClosed

from greenroom.codecs.errors import CodecError, GreenroomError, LocalProtocolError, RemoteProtocolError
from greenroom.codecs.models import (
    ClientConfigSetting,
    ClientConfiguration,
    DisconnectReason,
    LeaveAction,
    ParticipantInfo,
    ParticipantState,
    ServerInfo,
    SignalTarget,
    SpeakerInfo,
    TrackInfo,
)
from greenroom.codecs.packets import decode_packet, encode_packet
from greenroom.codecs.session import ServerSignalSession
from greenroom.codecs.signalling import (
    AddTrackRequest,
    Answer,
    JoinParams,
    JoinResponse,
    Leave,
    LegacyPing,
    MuteTrack,
    Offer,
    ParticipantUpdate,
    PingReq,
    RequestResponse,
    SignalRequestMessage,
    SignalResponseMessage,
    SimulateScenario,
    SpeakersChanged,
    SubscriptionPermission,
    SyncState,
    Trickle,
    Unhandled,
    UpdateMetadata,
    UpdateSubscription,
    UpdateTrackSettings,
    encode_response,
)
from greenroom.devserver.config import SERVER_VERSION, ServerConfig
from greenroom.devserver.front import SignalSocket
from greenroom.devserver.limits import (
    CLOSE_POLICY_VIOLATION,
    NORMAL_CLOSE,
    CloseFrame,
    DataQueue,
    ServerStats,
    SignalOutbox,
    TokenBucket,
)
from greenroom.devserver.room import Dropped, Member, Room, Routed
from greenroom.devserver.session_media import SessionMedia
from greenroom.runtime.ice import IceCandidateLike, IcePolicy
from greenroom.runtime.peer import (
    LOSSY,
    RELIABLE,
    DataChannelClosed,
    DataChannelOpened,
    DataReceived,
    PeerRole,
    PeerStateChanged,
    PeerTransport,
    PeerTransportError,
    TrackReceived,
)

__all__ = ["Hub", "ParticipantSession", "broadcast"]

_log = logging.getLogger("greenroom.devserver.participant")

_STAMP_HEADROOM = 512  # bytes the stamped identity/sid may add to a relayed packet
_WRITER_GRACE = 3.0  # seconds the signal writer gets to flush a final LeaveRequest
_YIELD_EVERY = 32  # signal frames handled in a row before the reader lets other tasks run


class Hub(Protocol):
    """What a session needs from the server: the other sessions of its room, and a way out."""

    config: ServerConfig
    stats: ServerStats

    def session_of(self, room: Room, identity: str) -> ParticipantSession | None:
        """The live session of ``identity`` in ``room``."""

    def depart(self, session: ParticipantSession, reason: DisconnectReason) -> None:
        """Take the session's member out of its room and tell the others."""

    def room_changed(self, room: Room) -> None:
        """Send every member a ``room_update`` (participant counts changed)."""

    def media_changed(self, room: Room) -> None:
        """Publications or subscription rules changed: every session of ``room`` reconciles."""

    def emit(
        self,
        event: str,
        room: Room,
        *,
        participant: ParticipantInfo | None = None,
        track: TrackInfo | None = None,
    ) -> None:
        """Queue a webhook event (``track_published``, ``participant_joined`` …); never waits."""


class _Log(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra: Mapping[str, object] = self.extra or {}
        return f"[{extra['room']}/{extra['participant']}] {msg}", kwargs


@dataclass(frozen=True, slots=True)
class _End:
    """Why a session ends: the reason for the room, and whether the client gets a LeaveRequest."""

    reason: DisconnectReason
    send_leave: bool = True
    action: LeaveAction = LeaveAction.DISCONNECT
    close: CloseFrame = NORMAL_CLOSE


def _now_ms() -> int:
    return int(time.time() * 1000)


class ParticipantSession(SessionMedia):
    """Signal session + publisher/subscriber peer connections of one participant (media: the mixin)."""

    def __init__(
        self,
        hub: Hub,
        room: Room,
        member: Member,
        websocket: SignalSocket,
        *,
        params: JoinParams,
        policy: IcePolicy,
    ) -> None:
        self.room = room
        self.member = member
        self.params = params
        self._hub = hub
        self._config = hub.config
        self._ws = websocket
        self._policy = policy
        self._log = _Log(_log, {"room": room.name, "participant": member.identity})
        limits = self._limits = hub.config.limits
        self._stats = hub.stats
        self._outbox = SignalOutbox(limits.signal_queue_frames, limits.signal_queue_bytes)
        self._sig = ServerSignalSession(time.time(), ping_timeout=hub.config.ping_timeout)
        self._rate = TokenBucket.full(limits.signal_rate, limits.signal_burst, time.monotonic())
        self._data = DataQueue(limits.data_queue_packets, limits.data_queue_bytes, hub.stats)
        self._pumping = False
        self._end: _End | None = None
        self._aborted = False  # the client stopped reading: its socket was aborted
        self._deadline: asyncio.TimerHandle | None = None
        self._trickles = {SignalTarget.PUBLISHER: 0, SignalTarget.SUBSCRIBER: 0}
        self._subscriber = PeerTransport(PeerRole.SUBSCRIBER, self, policy=policy, create_data_channels=True)
        self._publisher: PeerTransport | None = None
        self._early_publisher_candidates: list[IceCandidateLike] = []
        self._sub_offer_id = 0
        self._sub_awaiting_answer = False  # an offer is being made or awaits its answer
        self._sub_again = False
        self._sub_ready = False  # the subscriber PC connected on its first (data-only) offer
        self._background: set[asyncio.Task[None]] = set()
        self._peer_closes: list[asyncio.Task[None]] = []  # awaited by _finish, never cancelled
        self._tasks: list[asyncio.Task[None]] = []
        self._init_media()

    # --- lifecycle ---------------------------------------------------------------------------------

    async def run(self, evicted: ParticipantInfo | None) -> None:
        """Serve the session until the client leaves, misbehaves, is replaced or the server stops."""
        self._tasks = [
            asyncio.create_task(self._write_signal(), name=f"signal-writer {self.member.sid}"),
            asyncio.create_task(self._pump_data(), name=f"data-pump {self.member.sid}"),
        ]
        self._deadline = asyncio.get_running_loop().call_later(self._limits.join_deadline, self._join_expired)
        end = _End(DisconnectReason.CLIENT_INITIATED, send_leave=False)
        try:
            self._join(evicted)
            await self.renegotiate()  # data channels only; tracks follow once it is answered (see reconcile)
            end = await self._read()
        except RemoteProtocolError as exc:
            self._log.warning("closing the session: %s", exc)
            end = _End(_reason(exc.leave_reason))
        except (GreenroomError, ConnectionClosed) as exc:
            self._log.warning("closing the session after %s: %s", type(exc).__name__, exc)
            end = _End(DisconnectReason.UNKNOWN_REASON)
        finally:
            await self._finish(end)

    @property
    def _closing(self) -> bool:
        return self._end is not None

    def end(
        self,
        reason: DisconnectReason,
        *,
        action: LeaveAction = LeaveAction.DISCONNECT,
        close: CloseFrame = NORMAL_CLOSE,
    ) -> None:
        """Ask the session to end: send ``LeaveRequest{reason, action}`` then close with ``close``
        (idempotent)."""
        if self._end is not None:
            return
        self._end = _End(reason, action=action, close=close)
        self.signal(Leave(reason=reason, action=action))
        self._outbox.close(close)

    def _join_expired(self) -> None:
        """The join deadline (``Limits.join_deadline``): still JOINED, the peer connection never came up."""
        if self._end is None and self.member.state is ParticipantState.JOINED:
            self._stats.join_timeouts += 1
            self._log.warning("not connected %.0f s after joining: JOIN_FAILURE", self._limits.join_deadline)
            self.end(DisconnectReason.JOIN_FAILURE)

    async def _finish(self, end: _End) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        if self._end is None:
            self._end = end
            if end.send_leave:
                self.signal(Leave(reason=end.reason, action=end.action))
            self._outbox.close(end.close)
        writer, pump = self._tasks
        if not self._aborted:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(writer), _WRITER_GRACE)
        for task in (writer, pump, *self._background):
            task.cancel()
        await asyncio.gather(writer, pump, *self._background, *self._peer_closes, return_exceptions=True)
        self._outbox.clear()
        self._data.clear()
        await self._ws.close()
        self._close_media()
        for peer in (self._subscriber, self._publisher):
            if peer is not None:
                await peer.close()
        self._hub.depart(self, self._end.reason)
        self._log.info("session ended (%s)", self._end.reason.name)

    async def _read(self) -> _End:
        frames = 0
        while True:
            frame = await self._next_frame()
            if isinstance(frame, _End):
                return frame
            frames += 1
            if frames % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # frames already buffered never make recv() wait: let the others run
            if self._end is not None:
                return self._end  # ending: the writer's close reads (or drops) whatever still comes
            if not self._rate.take(time.monotonic()):
                self._rate_limited()
                return self._end or _End(DisconnectReason.SIGNAL_CLOSE)
            # CodecError / RemoteProtocolError (garbage, text frame, empty oneof, wrong state) end the
            # session with a LeaveRequest carrying the error's reason; other sessions never see it.
            self._sig.receive_data(frame, time.time())  # type: ignore[arg-type]
            for data in self._sig.data_to_send():  # pong_resp / pong, answered by the sans-I/O session
                self._queue(data)
            for message in self._sig.events():
                if isinstance(message, Leave):
                    self._log.info("client left (%s)", message.reason.name)
                    return _End(DisconnectReason.CLIENT_INITIATED, send_leave=False)
                await self._handle(message)

    async def _next_frame(self) -> bytes | str | _End:
        """The next signal frame, or why the session ends: silent for ``ping_timeout``, closed, not reading.

        Flow control: a frame is read only while the session's own queue is at most half full, so the
        client's pongs and answers cannot overflow it while the writer is merely behind (a burst of 500
        pings overflowed it before the writer ran once); a queue that does not drain within
        ``ping_timeout`` means the client does not read (:meth:`_fell_behind`).
        """
        timeout = self._config.ping_timeout
        low_water = self._limits.signal_queue_frames // 2
        if len(self._outbox) > low_water:
            try:
                async with asyncio.timeout(timeout):
                    await self._outbox.below(low_water)
            except TimeoutError:
                self._fell_behind(f"not drained in {timeout} s")
                return self._end or _End(DisconnectReason.CONNECTION_TIMEOUT, send_leave=False)
        try:
            async with asyncio.timeout(timeout):
                return await self._ws.recv()
        except TimeoutError:
            return _End(DisconnectReason.CONNECTION_TIMEOUT)
        except ConnectionClosed as exc:
            if exc.rcvd is None and exc.sent is not None and exc.sent.code == 1009:
                self._log.warning("closed: signal frame above %d bytes", self._config.max_signal_size)
            return self._end or _End(DisconnectReason.SIGNAL_CLOSE, send_leave=False)

    # --- outgoing ----------------------------------------------------------------------------------

    # One ordered outbox per session: a ParticipantUpdate carrying a track must reach the client before the
    # subscriber offer that carries its media (signal-protocol.md §6.7, trap 10 of §11.5), and broadcasts
    # queued by other sessions must never interleave with this session's own frames.
    def signal(self, message: SignalResponseMessage, *, encoded: bytes | None = None) -> None:
        """Queue one ``SignalResponse`` (sent in order by the writer); dropped once the session closed.
        ``encoded``: its encoding, when the same message goes to many sessions (:func:`broadcast`)."""
        try:
            frame = self._sig.send(message, encoded=encoded)
        except LocalProtocolError as exc:
            self._log.debug("not sent: %s", exc)
            return
        self._queue(frame)

    def _queue(self, frame: bytes) -> None:
        if not self._aborted and not self._outbox.put(frame):
            self._fell_behind()

    def _fell_behind(self, why: str = "full") -> None:
        """The signal queue passed its bound (``Limits.signal_queue_frames``), or did not drain within
        ``ping_timeout``: the client does not read.

        Nothing more can reach it, so there is no LeaveRequest: the queue is freed and the socket aborted
        (a close would wait for a TCP buffer that never drains); the others hear it left with
        CONNECTION_TIMEOUT. Called from any session's handler, so it never waits.
        """
        if self._aborted:
            return
        self._stats.slow_readers += 1
        self._log.warning(
            "signal queue %s (%d frames, %d bytes): the client does not read; disconnecting",
            why,
            len(self._outbox),
            self._outbox.bytes,
        )
        self._abort(DisconnectReason.CONNECTION_TIMEOUT)

    def _abort(self, reason: DisconnectReason) -> None:
        """Drop the socket without a LeaveRequest (the others hear ``reason``)."""
        self._aborted = True
        if self._end is None:
            self._end = _End(reason, send_leave=False)
        self._outbox.clear()
        self._ws.abort()

    def _on_simulate(self, message: SimulateScenario | Unhandled) -> None:
        """``simulate`` (``Room.simulate_scenario``): stage the fault as livekit-server does (rtc/room.go
        ``onSimulateScenario``), so clients can test their reconnect paths against the dev server.

        ``speaker_update``: this participant is announced speaking (level 0.9) for that many seconds (at
        most 60); ``node_failure``/``migration``: the socket is dropped without a LeaveRequest (the client
        sees a dead link); ``server_leave``: ``LeaveRequest{DISCONNECT, SERVER_SHUTDOWN}``;
        ``leave_request_full_reconnect``: ``LeaveRequest{RECONNECT}``. The rest (ICE protocol switches,
        bandwidth caps, resume faults) need what the dev server does not have (ICE restart, resume): logged.
        (Requests the dev server does not model at all, ``Unhandled``, are logged here too.)
        """
        if isinstance(message, Unhandled):
            self._log.debug("ignored signal request %s", message.field)
            return
        self._log.info("simulating %s (%d)", message.scenario or "nothing", message.value)
        match message.scenario:
            case "speaker_update":
                self._simulate_speaker(min(max(message.value, 0), 60))
            case "node_failure" | "migration":
                reason = DisconnectReason.MIGRATION if message.scenario == "migration" else None
                self._abort(reason or DisconnectReason.SERVER_SHUTDOWN)
            case "server_leave":
                self.end(DisconnectReason.SERVER_SHUTDOWN)
            case "leave_request_full_reconnect":
                self.end(DisconnectReason.SERVER_SHUTDOWN, action=LeaveAction.RECONNECT)
            case _:
                self._log.warning("simulate %r is not supported by the dev server", message.scenario)

    def _simulate_speaker(self, seconds: int) -> None:
        def announce(active: bool) -> None:
            sessions = (self._hub.session_of(self.room, m.identity) for m in self.room)
            speaking = SpeakerInfo(self.member.sid, level=0.9 if active else 0.0, active=active)
            broadcast([s for s in sessions if s is not None], SpeakersChanged((speaking,)))

        announce(True)
        asyncio.get_running_loop().call_later(seconds, lambda: None if self._closing else announce(False))

    def _rate_limited(self) -> None:
        """Past ``Limits.signal_rate``/``signal_burst``: LeaveRequest{SIGNAL_CLOSE}, close 1008."""
        self._stats.signal_rate_limited += 1
        limits = self._limits
        why = f"signal rate limit exceeded ({limits.signal_burst} messages, then {limits.signal_rate:g}/s)"
        self._log.warning("%s; disconnecting", why)
        close = CloseFrame(CLOSE_POLICY_VIOLATION, why, wait_reply=False)
        self.end(DisconnectReason.SIGNAL_CLOSE, close=close)

    def announce(self, *infos: ParticipantInfo) -> None:
        """Send a ``ParticipantUpdate`` (complete infos) to this participant."""
        self.signal(ParticipantUpdate(infos))

    def deliver(self, label: str, data: bytes) -> None:
        """Queue relayed ``DataPacket`` bytes for the subscriber channel ``label`` (bounded: drop newest,
        counted, logged on the first drop and every 1,000th).

        Sent at once when nothing waits for this receiver and its channel takes it without waiting
        (``PeerTransport.try_send``): the pump task, woken per packet, was a task step and a pass of the loop
        per forwarded packet (docs/benchmarks.md, "CPU per packet"). Anything else queues, in order."""
        if not self._data and not self._pumping and self._subscriber.try_send(label, data):
            return
        if not self._data.put(label, data) and self._data.dropped % 1000 == 1:
            self._log.warning(
                "data queue full (%d packets, %d bytes): dropped a %d-byte packet on %s (%d dropped so far)",
                len(self._data),
                self._data.bytes,
                len(data),
                label,
                self._data.dropped,
            )

    async def _write_signal(self) -> None:
        while isinstance(item := await self._outbox.get(), bytes):
            try:
                await self._ws.send(item)
            except ConnectionClosed:
                return
        await self._ws.close(item.code, item.reason, wait_reply=item.wait_reply)

    async def _pump_data(self) -> None:
        while True:
            label, data = await self._data.get()
            self._pumping = True  # holds a packet taken from the queue: ``deliver`` must not overtake it
            try:
                await self._subscriber.wait_channel_open(label, self._config.join_timeout)
                await self._subscriber.send(label, data)
            except (PeerTransportError, GreenroomError) as exc:
                self._log.warning("could not deliver a packet on %s: %s", label, exc)
            finally:
                self._pumping = False

    def _broadcast(self, info: ParticipantInfo, *, to_self: bool) -> None:
        hub, room = self._hub, self.room
        sessions = (hub.session_of(room, member.identity) for member in room.audience(self.member))
        audience = [session for session in sessions if session is not None]
        broadcast([*audience, self] if to_self else audience, ParticipantUpdate((info,)))

    # --- join (JoinResponse, then the subscriber offer) ---------------------------------------------

    def _join(self, evicted: ParticipantInfo | None) -> None:
        cfg = self._config
        self.signal(
            JoinResponse(
                room=self.room.info(),
                participant=self.member.info(),
                other_participants=tuple(self.room.others(self.member)),
                server_version=SERVER_VERSION,
                server_info=ServerInfo(version=SERVER_VERSION, protocol=16, node_id="greenroom-dev"),
                subscriber_primary=True,
                ping_interval=cfg.ping_interval,
                ping_timeout=cfg.ping_timeout,
                ice_servers=cfg.ice_servers,
                client_configuration=_client_configuration(cfg),
                fast_publish=cfg.fast_publish and self.member.permission.can_publish,
            )
        )
        # The evicted session's leave goes to everyone who could see it, whatever the newcomer's visibility:
        # a hidden token reusing a visible identity still removes that participant for the observers
        # (livekit-server removes the old participant, DUPLICATE_IDENTITY, before the new one joins).
        evicted_visible = evicted is not None and not (evicted.permission and evicted.permission.hidden)
        if evicted is not None and evicted_visible:
            others = [self._hub.session_of(self.room, m.identity) for m in self.room if m is not self.member]
            broadcast([s for s in others if s is not None], ParticipantUpdate((evicted,)))
        self._broadcast(self.member.info(), to_self=False)
        if evicted_visible or not self.member.hidden:
            self._hub.room_changed(self.room)
        self._log.info("joined as %s (%s)", self.member.sid, self.params.sdk or "unknown sdk")

    async def renegotiate(self) -> None:
        """Offer the subscriber PC now, or once the outstanding offer is answered (one at a time)."""
        if self._sub_awaiting_answer:
            self._sub_again = True
            return
        # Busy from before the first await: a second call made while aiortc builds this offer (another
        # session's publication) must queue, not run createOffer concurrently.
        self._sub_awaiting_answer = True
        self._sub_again = False
        self._sub_offer_id += 1
        try:
            sdp = await self._subscriber.create_offer()
        except PeerTransportError:
            self._sub_awaiting_answer = False
            raise
        self.signal(Offer(sdp=sdp, id=self._sub_offer_id))

    def _renegotiate_soon(self) -> None:
        task = asyncio.create_task(self._renegotiate_logged(), name=f"renegotiate {self.member.sid}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _renegotiate_logged(self) -> None:
        try:
            await self.renegotiate()
        except PeerTransportError as exc:
            self._log.warning("subscriber renegotiation failed: %s", exc)

    # --- SignalRequest dispatch --------------------------------------------------------------------

    async def _handle(self, message: SignalRequestMessage) -> None:
        match message:
            case Offer():
                await self._on_offer(message)
            case Answer():
                await self._on_answer(message)
            case Trickle():
                await self._on_trickle(message)
            case AddTrackRequest():
                self._on_add_track(message)
            case MuteTrack():
                self._on_mute(message)
            case UpdateMetadata():
                self._on_update_metadata(message)
            case PingReq() | LegacyPing() | UpdateTrackSettings() | SyncState():
                # ping_req -> pong_resp, ping -> pong: answered by ServerSignalSession;
                # track_setting (adaptive stream hints) and sync_state (resume) are ignored.
                pass
            case Leave():
                raise AssertionError("handled by the reader")
            case UpdateSubscription():
                self._on_update_subscription(message)
            case SubscriptionPermission():
                self._on_subscription_permission(message)
            case SimulateScenario() | Unhandled():
                self._on_simulate(message)
            case _:
                assert_never(message)

    async def _on_offer(self, message: Offer) -> None:
        """``offer`` (publisher PC): answer with the same id (JS ≥ 2.19 waits for it, trap 8)."""
        if self._publisher is None:
            self._publisher = PeerTransport(PeerRole.PUBLISHER, self, policy=self._policy)
            for candidate in self._early_publisher_candidates:
                await self._publisher.add_ice_candidate(candidate)
            self._early_publisher_candidates.clear()
        try:
            # aiortc answers the six recvonly placeholder m-lines of the Rust v1 → v0 fallback offer
            # "inactive", which libwebrtc accepts (trap 14; feasibility-official-sdk.md trap 5).
            sdp = await self._publisher.create_answer(message.sdp)
        except PeerTransportError as exc:
            raise RemoteProtocolError(
                f"unusable publisher offer: {exc}", leave_reason="STATE_MISMATCH"
            ) from exc
        self.signal(Answer(sdp=sdp, id=message.id))
        self._sync_publications(message.sdp)

    async def _on_answer(self, message: Answer) -> None:
        """``answer`` (subscriber PC): Rust sends id 0, JS echoes ours; then run a queued renegotiation."""
        if not self._sub_awaiting_answer:
            raise RemoteProtocolError(
                "answer without an outstanding subscriber offer", leave_reason="STATE_MISMATCH"
            )
        try:
            await self._subscriber.set_remote_description(message.sdp, "answer")
        except PeerTransportError as exc:
            raise RemoteProtocolError(
                f"unusable subscriber answer: {exc}", leave_reason="STATE_MISMATCH"
            ) from exc
        self._sub_awaiting_answer = False
        if self._sub_again:
            await self.renegotiate()

    async def _on_trickle(self, message: Trickle) -> None:
        """``trickle``: a client candidate for its publisher or subscriber PC (queued until usable); past
        ``Limits.trickles_per_pc`` for that PC it is dropped (counted, logged once)."""
        count = self._trickles[message.target] = self._trickles[message.target] + 1
        if count > self._limits.trickles_per_pc:
            self._stats.trickles_dropped += 1
            if count == self._limits.trickles_per_pc + 1:
                self._log.warning("more than %d trickled candidates: dropping", self._limits.trickles_per_pc)
            return
        if message.target is SignalTarget.SUBSCRIBER:
            await self._subscriber.add_ice_candidate(message.candidate)
        elif self._publisher is None:
            self._early_publisher_candidates.append(message.candidate)
        else:
            await self._publisher.add_ice_candidate(message.candidate)

    def _on_update_metadata(self, message: UpdateMetadata) -> None:
        """``update_metadata``: ``request_response`` (Rust waits for it) and an ``update`` to everyone
        *including the requester* (JS resolves when its own info changes) — trap 16."""
        change = self.room.update_metadata(
            self.member, name=message.name, metadata=message.metadata, attributes=dict(message.attributes)
        )
        self.signal(RequestResponse(message.request_id, change.reason, change.message))
        if change.info is not None:
            self._broadcast(change.info, to_self=True)
        else:
            self._log.warning("refused update_metadata: %s", change.message)

    # --- peer events (Sink) ------------------------------------------------------------------------

    def tell(self, message: object) -> None:
        """Receive a peer-transport event (runtime ``Sink`` protocol)."""
        match message:
            case DataReceived():
                self._on_data(message)
            case PeerStateChanged():
                self._on_peer_state(message)
            case TrackReceived():
                self._on_track(message)
            case DataChannelOpened() | DataChannelClosed():
                self._log.debug("%s", message)
            case _:
                self._log.debug("unexpected peer event %r", message)

    def _on_data(self, event: DataReceived) -> None:
        """A client ``DataPacket``: route by channel label (never by ``kind``: Rust sets it inverted)."""
        if event.label not in (RELIABLE, LOSSY):
            return  # e.g. ``_data_track`` frames, not DataPackets (data tracks are not supported)
        try:
            packet = decode_packet(event.data, max_size=self._config.max_data_size)
        except CodecError as exc:
            self._log.warning("refused a data packet on %s: %s", event.label, exc)
            return
        # The channel label decides reliability, never DataPacket.kind: the Rust SDK writes it inverted
        # (feasibility-official-sdk.md trap 6; rust-sdks local_participant.rs).
        decision = self.room.route(self.member, packet, reliable=event.label == RELIABLE)
        match decision:
            case Dropped():
                self._log.warning("dropped a data packet: %s", decision.reason)
            case Routed():
                self._forward(event.label, decision)
            case _:
                assert_never(decision)

    def _forward(self, label: str, routed: Routed) -> None:
        # The stamped sender fields add a few bytes; the receiver's channel limit is checked on send.
        try:
            data = encode_packet(routed.packet, max_size=self._config.max_data_size + _STAMP_HEADROOM)
        except GreenroomError as exc:
            self._log.warning("could not re-encode a data packet: %s", exc)
            return
        for identity in routed.recipients:
            session = self._hub.session_of(self.room, identity)
            if session is not None:
                session.deliver(label, data)

    def _on_peer_state(self, event: PeerStateChanged) -> None:
        self._log.debug("%s peer connection %s", event.role.value, event.state)
        if event.role is PeerRole.SUBSCRIBER and event.state == "connected" and not self._sub_ready:
            self._sub_ready = True
            self.reconcile()  # the tracks published before we joined
        if event.role is PeerRole.SUBSCRIBER and event.state == "connected":
            info = self.room.activate(self.member)
            if info is not None:
                self._broadcast(info, to_self=True)
                self._hub.emit("participant_joined", self.room, participant=info)


def broadcast(sessions: Iterable[ParticipantSession], message: SignalResponseMessage) -> None:
    """Send ``message`` to every session, encoded once: a join or a leave in a room of N members sends N
    updates, and encoding each one again made a join's cost grow with the room (issue 17's churn)."""
    sessions = list(sessions)
    if sessions:
        encoded = encode_response(message)
        for session in sessions:
            session.signal(message, encoded=encoded)


def _client_configuration(config: ServerConfig) -> ClientConfiguration | None:
    """``force_relay`` when configured; nothing otherwise (livekit-server leaves the message out too)."""
    if not config.force_relay:
        return None
    return ClientConfiguration(force_relay=ClientConfigSetting.ENABLED)


def _reason(name: str) -> DisconnectReason:
    try:
        return DisconnectReason[name]
    except KeyError:
        return DisconnectReason.UNKNOWN_REASON
