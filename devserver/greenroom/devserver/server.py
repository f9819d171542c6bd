"""The dev server: HTTP routes, token checks, rooms and the WebSocket sessions, on one asyncio loop.

Everything is served by one aiohttp listener (``front.py``), as livekit-server serves everything on 7880.
Routes (livekit/livekit ``pkg/service/rtcservice.go``, ``server.go``; ``reference/signal-protocol.md`` §2,
§11.1):

* ``/rtc`` — v0 signalling (two peer connections). The token comes from ``Authorization: Bearer`` (Rust /
  Python SDK) or the ``access_token`` query parameter (JS); a bad one is a 401 *before* the upgrade; a plain
  GET without an upgrade is a 404.
* ``/rtc/validate`` — the same checks without upgrading: 200 ``success`` or 401 ``<reason>: <detail>``.
* ``/rtc/v1`` and ``/rtc/v1/validate`` — **404** with ``Access-Control-Allow-Origin: *``: the Rust SDK falls
  back to ``/rtc`` only on a 404 at the upgrade, and JS only on a CORS-readable 404 from the v1 validate
  URL whose body lacks "requested room does not exist" (traps 1 and 3 of §11.5; treating ``/rtc/v1`` as
  ``/rtc`` makes the Rust SDK wait 15 s for an answer to its embedded offer).
* ``/`` — ``200 OK`` (livekit-server's health check).
* anything else — 404.

Programmatic use (tests, the demo)::

    async with DevServer(ServerConfig(port=0)) as server:
        token = server.mint_token("alice", "room-1")
        ...  # connect to server.url

or from synchronous code, on greenroom's runtime loop: ``server = DevServer(cfg).start_in_thread()`` …
``server.close_in_thread()``.
"""

from __future__ import annotations

import asyncio
import datetime
import http
import ipaddress
import logging
import time
from collections.abc import Mapping
from typing import Any, Self

from aiohttp import web

from greenroom.codecs.errors import CodecError, TokenError
from greenroom.codecs.models import (
    ConnectionQualityInfo,
    DisconnectReason,
    LeaveAction,
    ParticipantInfo,
    ParticipantKind,
    ParticipantPermission,
    RoomInfo,
    TrackInfo,
    TrackSource,
)
from greenroom.codecs.packets import DataPacket, Kind, encode_packet
from greenroom.codecs.session import ServerSignalSession
from greenroom.codecs.signalling import (
    ConnectionQualityUpdate,
    JoinParams,
    Leave,
    ParticipantUpdate,
    RoomUpdate,
    SpeakersChanged,
)
from greenroom.codecs.tokens import DEFAULT_TTL, Claims, VideoGrants, check_join, mint_token, verify_token
from greenroom.devserver import twirp
from greenroom.devserver.agentservice import AgentService
from greenroom.devserver.config import ServerConfig
from greenroom.devserver.dispatch import AgentDispatcher, Dispatch, JobRecord, dispatch_service
from greenroom.devserver.forwarding import SpeakerDetector, max_bundle
from greenroom.devserver.front import HandshakeFailedError, HttpFront, SignalSocket, accept_websocket
from greenroom.devserver.limits import ConnectGate, ServerStats
from greenroom.devserver.participant import ParticipantSession, broadcast
from greenroom.devserver.room import (
    Admission,
    AgentSpec,
    ParticipantNotFoundError,
    Room,
    RoomNotFoundError,
    RoomSettings,
    room_settings,
)
from greenroom.devserver.roomservice import room_service
from greenroom.devserver.webhooks import WebhookNotifier
from greenroom.runtime import loop as runtime_loop
from greenroom.runtime.ice import IcePolicy
from greenroom.runtime.peer import LOSSY, RELIABLE

__all__ = ["DevServer", "admission_from", "ice_policy_for"]

_log = logging.getLogger("greenroom.devserver.server")

_CORS = ("Access-Control-Allow-Origin", "*")
_SHUTDOWN_GRACE = 5.0
_SOURCES = {
    "camera": TrackSource.CAMERA,
    "microphone": TrackSource.MICROPHONE,
    "screen_share": TrackSource.SCREEN_SHARE,
    "screen_share_audio": TrackSource.SCREEN_SHARE_AUDIO,
}


def ice_policy_for(config: ServerConfig) -> IcePolicy:
    """The ICE policy of every server peer connection: gather on the configured addresses, no STUN.

    Bound to loopback it gathers on 127.0.0.1 (aioice leaves loopback out by default; the runtime's
    ``IcePolicy`` is the one place that changes that); ``--node-ip`` gathers and advertises that address
    (like livekit-server's ``rtc.node_ip``); bound to every interface, aioice picks the interfaces.
    """
    addresses = config.ice_addresses
    if not addresses:
        return IcePolicy()
    if addresses == ("127.0.0.1",):
        return IcePolicy.loopback()
    return IcePolicy.bound_to(*addresses)


def admission_from(claims: Claims, grants: VideoGrants, params: JoinParams) -> Admission:
    """Map verified token claims (and the join query) to what the room admits."""
    try:
        kind = ParticipantKind[claims.kind.upper()] if claims.kind else ParticipantKind.STANDARD
    except KeyError:
        kind = ParticipantKind.STANDARD
    permission = ParticipantPermission(
        can_subscribe=grants.subscribe_allowed,
        can_publish=grants.publish_allowed,
        can_publish_data=grants.publish_data_allowed,
        can_publish_sources=tuple(_SOURCES[s] for s in grants.can_publish_sources if s in _SOURCES),
        hidden=grants.hidden,
        recorder=grants.recorder,
        can_update_metadata=grants.update_own_metadata_allowed,
        agent=grants.agent,
    )
    return Admission(
        identity=claims.identity,
        name=claims.name,
        metadata=claims.metadata,
        attributes=dict(claims.attributes),
        kind=kind,
        permission=permission,
        client_protocol=params.client_protocol,
        capabilities=tuple(int(c) for c in params.capabilities),
        auto_subscribe=params.auto_subscribe,
    )


def _respond(status: http.HTTPStatus, body: str) -> web.Response:
    return web.Response(status=status.value, text=body, headers={_CORS[0]: _CORS[1]})


def _brief(info: ParticipantInfo) -> ParticipantInfo:
    """The participant of a track webhook: sid and identity only, as livekit-server sends it."""
    return ParticipantInfo(sid=info.sid, identity=info.identity)


def _notifier(config: ServerConfig) -> WebhookNotifier | None:
    if not config.webhook_urls:
        return None
    key = config.webhook_api_key or config.api_key
    return WebhookNotifier(config.webhook_urls, key, config.keys[key], config.webhook_policy)


class _RefusedError(Exception):
    def __init__(self, status: http.HTTPStatus, body: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(body)
        self.status = status
        self.body = body
        self.headers = headers or {}


class DevServer:
    """A LiveKit-compatible development server (signalling, auth, rooms, data routing).

    Args:
        config: where to listen, which keys to accept, how ICE gathers; defaults like
            ``livekit-server --dev``.
    """

    #: seconds between two active-speaker checks (``SpeakersChanged`` is sent only on a change)
    speaker_interval = 0.3
    #: seconds between two ``ConnectionQualityUpdate`` broadcasts
    quality_interval = 2.0

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.rooms: dict[str, Room] = {}
        self._sessions: dict[tuple[str, str], ParticipantSession] = {}
        self._handlers: set[asyncio.Task[Any]] = set()
        self._policy = max_bundle(ice_policy_for(self.config))
        self._front: HttpFront | None = None
        self._services = {service.name: service for service in (room_service(self), dispatch_service(self))}
        #: the ``/agent`` worker endpoint (``agentservice.py``); it runs the agent dispatches
        self.agents = AgentService(self)
        self.agent_dispatcher: AgentDispatcher = self.agents
        self.webhooks = _notifier(self.config)
        self._reaper: asyncio.Task[None] | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._speakers: dict[str, SpeakerDetector] = {}
        self._qualities: dict[str, tuple[ConnectionQualityInfo, ...]] = {}
        self._closing = False
        self._port = self.config.port
        #: what every bound did (``limits.py``): drops, refusals, sessions ended for a limit
        self.stats = ServerStats()
        self._gate = ConnectGate(self.config.limits, self.stats)

    # --- addresses ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port served (the real one once started with port 0)."""
        return self._port

    @property
    def host(self) -> str:
        """The host clients should dial (the node IP when bound to every interface)."""
        bind = self.config.bind
        if bind in ("", "0.0.0.0", "::"):
            return self.config.node_ip or "127.0.0.1"
        return bind

    @property
    def url(self) -> str:
        """The ``ws://host:port`` URL to give ``Room.connect``."""
        host = self.host
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
        return f"ws://{host}:{self.port}"

    @property
    def http_url(self) -> str:
        """The same address with ``http://`` (for the validate endpoint)."""
        return "http" + self.url.removeprefix("ws")

    def mint_token(
        self,
        identity: str,
        room: str,
        *,
        name: str = "",
        metadata: str = "",
        attributes: Mapping[str, str] | None = None,
        kind: str = "",
        ttl: datetime.timedelta = DEFAULT_TTL,
        **grants: Any,
    ) -> str:
        """Sign a join token with the server's first API key.

        Args:
            identity: participant identity (``sub``).
            room: the room the token joins (``video.room``; ``roomJoin`` is granted).
            name: display name.
            metadata: participant metadata.
            attributes: participant attributes.
            kind: participant kind (``"agent"`` lets it publish transcriptions).
            ttl: validity.
            **grants: further ``VideoGrants`` fields, e.g. ``can_update_own_metadata=True``,
                ``can_publish_data=False``, ``hidden=True``.
        """
        grants = {"room_join": True, "room": room, **grants}
        claims = Claims(
            identity=identity,
            name=name,
            metadata=metadata,
            attributes=tuple(sorted((attributes or {}).items())),
            kind=kind,
            video=VideoGrants(**grants),
        )
        key = self.config.api_key
        return mint_token(key, self.config.keys[key], claims, ttl=ttl)

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> Self:
        """Listen; returns once the socket is bound."""
        limits = self.config.limits
        self._front = HttpFront(
            self._route,
            logger=logging.getLogger("greenroom.devserver.http"),
            max_header_size=limits.max_header_size,
            max_headers=limits.max_headers,
        )
        self._port = await self._front.start(self.config.bind, self.config.port)
        self._reaper = asyncio.create_task(self._reap_rooms(), name="greenroom-room-reaper")
        self._monitor = asyncio.create_task(self._monitor_media(), name="greenroom-media-monitor")
        if self.webhooks is not None:
            self.webhooks.start()
        _log.info(
            "listening on %s (ICE gathers on %s)", self.url, self.config.ice_addresses or "all interfaces"
        )
        return self

    async def close(self) -> None:
        """Send every participant ``LeaveRequest{SERVER_SHUTDOWN}``, then stop listening."""
        if self._closing:
            return
        self._closing = True
        for session in list(self._sessions.values()):
            session.end(DisconnectReason.SERVER_SHUTDOWN)
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=_SHUTDOWN_GRACE)
        for task in (self._reaper, self._monitor):
            if task is not None:
                task.cancel()
        for name in list(self.rooms):
            self.close_room(name, DisconnectReason.SERVER_SHUTDOWN)  # room_finished, as livekit-server
        await self.agents.close()
        if self._front is not None:
            await self._front.close()
        if self.webhooks is not None:
            await self.webhooks.close()
        _log.info("stopped")

    async def serve_forever(self) -> None:
        """Run until cancelled (the CLI cancels it on SIGINT/SIGTERM, then calls :meth:`close`)."""
        await asyncio.Event().wait()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def start_in_thread(self) -> Self:
        """Start on greenroom's runtime loop (its own thread) and return once listening."""
        return runtime_loop.run_sync(self.start())

    def close_in_thread(self, timeout: float = 10.0) -> None:
        """Close a server started with :meth:`start_in_thread`."""
        runtime_loop.run_sync(self.close(), timeout=timeout)

    # --- admin (tests, tools) ----------------------------------------------------------------------

    def end_session(
        self,
        room: str,
        identity: str,
        *,
        reason: DisconnectReason = DisconnectReason.PARTICIPANT_REMOVED,
        action: LeaveAction = LeaveAction.DISCONNECT,
    ) -> bool:
        """Send ``identity`` in ``room`` ``LeaveRequest{reason, action}`` and close its session.

        Call it on the server's loop. ``action=LeaveAction.RECONNECT`` asks the client for a full reconnect
        (as livekit-server does when it cannot keep a session).

        Returns:
            Whether such a session was live.
        """
        session = self._sessions.get((room, identity))
        if session is None:
            return False
        session.end(reason, action=action)
        return True

    # --- rooms (the one place that creates and closes them) -----------------------------------------

    def open_room(self, name: str, settings: RoomSettings | None = None) -> Room:
        """Create room ``name`` (on first join, or RoomService ``CreateRoom``); an existing room takes the
        values ``settings`` gives, as livekit-server's room allocator does."""
        settings = settings or RoomSettings()
        room = self.rooms.get(name)
        if room is not None:
            room.configure(**settings.overrides())
            return room
        room = self.rooms[name] = Room(
            name,
            empty_timeout=settings.empty_timeout or self.config.empty_timeout,
            departure_timeout=settings.departure_timeout or self.config.empty_timeout,
            max_participants=settings.max_participants,
            metadata=settings.metadata,
            agents=settings.agents or (),
        )
        _log.info("[%s] room created (%s)", room.name, room.sid)
        self.emit("room_started", room)
        # One dispatch per configured agent, else LiveKit's automatic dispatch (empty agent name).
        for agent in room.agents or (AgentSpec(),):
            dispatch = room.add_dispatch(Dispatch.new(name, agent.agent_name, agent.metadata))
            self.agent_dispatcher.launch(room.info(), dispatch)
        return room

    def record_job(self, room: str, dispatch_id: str, job: JobRecord) -> bool:
        """For the ``/agent`` endpoint: a job of a dispatch started or changed (``ListDispatch`` shows it).

        Returns:
            Whether the room and dispatch still exist.
        """
        live = self.rooms.get(room)
        return live is not None and live.record_job(dispatch_id, job) is not None

    def close_room(self, name: str, reason: DisconnectReason = DisconnectReason.ROOM_DELETED) -> bool:
        """Forget room ``name`` and end every session in it with ``LeaveRequest{reason}``.

        Returns:
            Whether the room existed.
        """
        room = self.rooms.pop(name, None)
        if room is None:
            return False
        self._speakers.pop(name, None)
        self._qualities.pop(name, None)
        room.closed = True
        self.agent_dispatcher.room_closed(room.info())
        for member in room:
            session = self.session_of(room, member.identity)
            if session is not None:
                session.end(reason)
        if not len(room):
            self.emit("room_finished", room)  # else once its last session has ended (depart)
        _log.info("[%s] room closed (%s)", name, reason.name)
        return True

    def emit(
        self,
        event: str,
        room: Room,
        *,
        participant: ParticipantInfo | None = None,
        track: TrackInfo | None = None,
    ) -> None:
        """Queue a webhook event (no-op without webhook URLs; never waits)."""
        if self.webhooks is not None:
            self.webhooks.notify(event, room.info(), participant=participant, track=track)

    # --- RoomService (the Twirp layer calls these on this loop; the rules are the signal path's) -----

    def room_named(self, name: str) -> Room:
        """The live room ``name``; raises :class:`RoomNotFoundError`."""
        room = self.rooms.get(name)
        if room is None:
            raise RoomNotFoundError("requested room does not exist")
        return room

    def session_named(self, room: str, identity: str) -> ParticipantSession:
        """The live session of ``identity`` in ``room``; raises ``RoomNotFoundError`` /
        ``ParticipantNotFoundError``."""
        session = self.session_of(self.room_named(room), identity)
        if session is None:
            raise ParticipantNotFoundError("participant does not exist")
        return session

    def set_room_metadata(self, name: str, metadata: str) -> RoomInfo:
        """``UpdateRoomMetadata``: replace it and send everyone ``room_update``."""
        room = self.room_named(name)
        info = room.set_metadata(metadata)
        self.room_changed(room)
        return info

    def send_data(self, name: str, packet: DataPacket, *, destination_sids: tuple[str, ...] = ()) -> int:
        """``SendData``: deliver a server packet on ``_reliable`` (or ``_lossy`` for kind LOSSY).

        Returns:
            How many participants it was queued for.

        Raises:
            RoomNotFoundError: no such room.
            PayloadTooLargeError: the packet is larger than ``max_data_size``.
        """
        room = self.room_named(name)
        routed = room.route_from_server(packet, destination_sids)
        data = encode_packet(routed.packet, max_size=self.config.max_data_size)
        label = LOSSY if packet.kind is Kind.LOSSY else RELIABLE
        sessions = [s for i in routed.recipients if (s := self.session_of(room, i)) is not None]
        for session in sessions:
            session.deliver(label, data)
        return len(sessions)

    # --- Hub (what sessions call) ------------------------------------------------------------------

    def session_of(self, room: Room, identity: str) -> ParticipantSession | None:
        """The live session of ``identity`` in ``room``."""
        return self._sessions.get((room.name, identity))

    def depart(self, session: ParticipantSession, reason: DisconnectReason) -> None:
        """Remove the session's member and announce it DISCONNECTED to the room."""
        key = (session.room.name, session.member.identity)
        if self._sessions.get(key) is session:
            del self._sessions[key]
        room, member = session.room, session.member
        tracks = list(member.tracks.values())
        info = room.remove(member, reason)
        if info is not None:
            for track in tracks:
                self.emit("track_unpublished", room, participant=_brief(info), track=track)
        left = "participant_left" if member.was_active else "participant_connection_aborted"
        self.emit(left, room, participant=info or member.info())
        if room.closed and not len(room):
            self.emit("room_finished", room)
        if info is None or member.hidden:
            self.media_changed(session.room)
            return
        broadcast(self._sessions_of(session.room), ParticipantUpdate((info,)))
        self.room_changed(session.room)
        self.media_changed(session.room)  # after the DISCONNECTED update: unsubscribe its tracks

    def media_changed(self, room: Room) -> None:
        """A publication or a subscription rule changed in ``room``: every session reconciles."""
        for member in room:
            session = self.session_of(room, member.identity)
            if session is not None:
                session.reconcile()

    def room_changed(self, room: Room) -> None:
        """``room_update`` to every member (``room`` is always set: the Rust SDK unwraps it)."""
        broadcast(self._sessions_of(room), RoomUpdate(room.info()))

    # --- SpeakersChanged / ConnectionQualityUpdate ---------------------------------------------------

    async def _monitor_media(self) -> None:
        """Speakers every :attr:`speaker_interval` s, connection quality every :attr:`quality_interval` s."""
        next_quality = time.monotonic() + self.quality_interval
        while True:
            await asyncio.sleep(self.speaker_interval)
            now = time.monotonic()
            for room in list(self.rooms.values()):
                self._update_speakers(room, now)
            if now >= next_quality:
                next_quality = now + self.quality_interval
                for room in list(self.rooms.values()):
                    await self._update_quality(room)

    def _sessions_of(self, room: Room) -> list[ParticipantSession]:
        return [s for m in room if (s := self.session_of(room, m.identity)) is not None]

    def _update_speakers(self, room: Room, now: float) -> None:
        """``speakers_changed`` to everyone when the set of speaking participants changes."""
        detector = self._speakers.setdefault(room.name, SpeakerDetector())
        sessions = self._sessions_of(room)
        levels = {s.member.sid: s.audio_level(now) for s in sessions if not s.member.hidden}
        speakers = detector.update(levels)
        if speakers is not None:
            broadcast(sessions, SpeakersChanged(speakers))

    async def _update_quality(self, room: Room) -> None:
        """``connection_quality`` for every visible participant, to everyone (packet loss → quality) — only
        when it changed (a quality, or who is in the room), like livekit-server's connectionQualityWorker: a
        broadcast every 2 s to every member of hundreds of rooms stalled the loop (benchmarks P4)."""
        sessions = self._sessions_of(room)
        updates = tuple([await s.connection_quality() for s in sessions if not s.member.hidden])
        if updates == self._qualities.get(room.name):
            return
        self._qualities[room.name] = updates
        if updates:
            broadcast(sessions, ConnectionQualityUpdate(updates))

    async def _reap_rooms(self) -> None:
        """Close rooms that stayed empty for their ``empty_timeout``."""
        interval = min(1.0, max(self.config.empty_timeout / 4, 0.05))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for name, room in list(self.rooms.items()):
                if room.expired(now):
                    self.close_room(name, DisconnectReason.ROOM_CLOSED)
            self._gate.forget_idle(now)

    # --- HTTP --------------------------------------------------------------------------------------

    async def _route(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith(twirp.PREFIX):
            return await twirp.serve(request, self._services, self.config.keys)
        path = request.path.rstrip("/") or "/"
        query = request.rel_url.raw_query_string
        response: web.StreamResponse
        try:
            match path:
                case "/rtc/v1" | "/rtc/v1/validate":
                    response = _respond(http.HTTPStatus.NOT_FOUND, "single peer connection is not supported")
                case "/rtc/validate":
                    self._authorize(request.headers, query)
                    response = _respond(http.HTTPStatus.OK, "success")
                case "/rtc":
                    await self._take_turn(request)
                    admitted = self._authorize(request.headers, query)
                    if request.headers.get("Upgrade", "").lower() != "websocket":
                        response = _respond(http.HTTPStatus.NOT_FOUND, "/rtc needs a WebSocket upgrade")
                    else:
                        response = await self._upgrade(request, admitted)
                case "/agent":
                    response = await self.agents.serve(request)
                case "/":
                    response = web.Response(text="OK")  # livekit-server's health check
                case _:
                    response = _respond(http.HTTPStatus.NOT_FOUND, "not found")
        except _RefusedError as refused:
            _log.info("refused %s: %s %s", path, refused.status.value, refused.body)
            response = _respond(refused.status, refused.body)
            response.headers.update(refused.headers)
        return response

    async def _take_turn(self, request: web.Request) -> None:
        """The per-address connect limit (``Limits.connect_rate``): wait for this connect's turn, or refuse
        it with 429 when the turn is more than ``connect_wait`` away."""
        address = request.remote or "?"
        now = time.monotonic()
        wait = self._gate.admit(address, now)
        if wait is None:
            retry = self._gate.retry_after(address, now)
            limits = self.config.limits
            raise _RefusedError(
                http.HTTPStatus.TOO_MANY_REQUESTS,
                f"too many connection attempts from {address} (more than {limits.connect_rate:g}/s)",
                {"Retry-After": str(retry)},
            )
        if wait > 0:
            await asyncio.sleep(wait)

    def _authorize(self, headers: Mapping[str, str], query: str) -> tuple[Claims, VideoGrants, JoinParams]:
        """Token from ``Authorization: Bearer`` (wins when present) or ``access_token``; then grants."""
        try:
            params = JoinParams.from_query(query)
        except CodecError as exc:
            raise _RefusedError(http.HTTPStatus.BAD_REQUEST, str(exc)) from exc
        header = headers.get("Authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme != "Bearer" or not token.strip():
                raise _RefusedError(http.HTTPStatus.UNAUTHORIZED, "authorization header is not Bearer")
        elif params.access_token:
            token = params.access_token
        else:
            raise _RefusedError(http.HTTPStatus.UNAUTHORIZED, "no authorization token")
        try:
            claims = verify_token(token.strip(), self.config.keys)
            grants = check_join(claims)
        except TokenError as exc:
            raise _RefusedError(http.HTTPStatus.UNAUTHORIZED, f"invalid token ({exc.reason}): {exc}") from exc
        return claims, grants, params

    # --- WebSocket sessions ------------------------------------------------------------------------

    async def _upgrade(
        self, request: web.Request, admitted: tuple[Claims, VideoGrants, JoinParams]
    ) -> web.StreamResponse:
        try:
            socket = await accept_websocket(request, max_size=self.config.max_signal_size)
        except HandshakeFailedError as exc:
            self.stats.handshakes_failed += 1
            _log.debug("upgrade failed: %s", exc)
            return _respond(http.HTTPStatus.BAD_REQUEST, str(exc))  # unsent if the client is gone (quietly)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._session(socket, admitted)
        finally:
            self._handlers.discard(task)
        return socket.response

    async def _session(
        self, websocket: SignalSocket, admitted: tuple[Claims, VideoGrants, JoinParams]
    ) -> None:
        claims, grants, params = admitted
        if params.reconnect:
            # Resume is not supported (yet): STATE_MISMATCH + RECONNECT makes both SDKs rejoin in full
            # (livekit/livekit roommanager.go does the same for a participant it no longer has).
            await self._refuse(websocket, DisconnectReason.STATE_MISMATCH, LeaveAction.RECONNECT)
            return
        if self._closing:
            await self._refuse(websocket, DisconnectReason.JOIN_FAILURE, LeaveAction.DISCONNECT)
            return
        room = self.rooms.get(grants.room) or self.open_room(grants.room, room_settings(claims.room_config))
        admission = admission_from(claims, grants, params)
        if room.full(admission):
            await self._refuse(websocket, DisconnectReason.JOIN_FAILURE, LeaveAction.DISCONNECT)
            return
        # A second join of an identity replaces the first (DUPLICATE_IDENTITY): the 1.2.1 official SDK leaves
        # the socket of a failed attempt open while it retries (signal-protocol.md §11.5 trap 18;
        # livekit/livekit pkg/service/roommanager.go does the same).
        member, evicted = room.admit(admission)
        previous = self._sessions.pop((room.name, member.identity), None)
        if previous is not None:
            previous.end(DisconnectReason.DUPLICATE_IDENTITY)
        session = ParticipantSession(self, room, member, websocket, params=params, policy=self._policy)
        self._sessions[(room.name, member.identity)] = session
        await session.run(None if evicted is None else evicted.info())

    @staticmethod
    async def _refuse(websocket: SignalSocket, reason: DisconnectReason, action: LeaveAction) -> None:
        signal = ServerSignalSession(time.time())
        _log.info("refused a session: %s", reason.name)
        await websocket.send(signal.send(Leave(reason=reason, action=action)))
        await websocket.close()
