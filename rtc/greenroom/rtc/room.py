"""``Room`` and its companions, shaped like ``livekit.rtc.room``.

A :class:`Room` is a thin view over one RoomActor tree running on greenroom's runtime loop:

* **commands** (``connect``, ``disconnect``, ``publish_data`` …) are messages to the RoomActor, run with
  :func:`greenroom.rtc._bridge.call` and awaited from the user's loop;
* **events** come back through a :class:`~greenroom.rtc._bridge.LoopSink`: the actors report
  :data:`~greenroom.actors.messages.RoomEvent` values, the sink hands them to the user's loop with
  ``call_soon_threadsafe`` (order kept), and :meth:`Room._feed` hands each to the room's one reducer
  (:class:`greenroom.rtc._view.RoomView`), which updates the views and returns the official events with the
  official arguments; the room emits them. User callbacks therefore always run on the loop the room was
  created on, never on the runtime loop.
* **views** (participants, publications, tracks) read the reducer's records and act through the connection's
  :class:`~greenroom.rtc._port.RoomPort`, given to them at construction — never through the room's fields.

Differences from ``livekit.rtc`` (deliberate): the ``connected`` event fires (after
``connection_state_changed(CONN_CONNECTED)``, before ``connect()`` returns); ``connect`` has an overall
deadline (``RoomOptions.connect_timeout``, default 15 s) and cancelling it is safe — the actor tree is torn
down and nothing is left behind; ``disconnect`` accepts ``reason`` positionally too. After a lost link the
room reconnects in full (``reconnecting`` … ``reconnected``, ``local_track_republished``; schedule in
:attr:`Room.reconnect_policy`): participants still present keep their objects, and data published meanwhile
is held and sent once reconnected (docs/architecture.md, "Reconnect").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import assert_never

from greenroom.actors import messages as m
from greenroom.actors.client import RoomClient
from greenroom.actors.room import ConnectFailedError
from greenroom.actors.simulate import Simulate
from greenroom.codecs import packets
from greenroom.codecs.errors import GreenroomError
from greenroom.codecs.models import IceServer as _WireIceServer
from greenroom.codecs.models import ServerInfo
from greenroom.rtc._bridge import LoopSink, call, call_to_end
from greenroom.rtc._enums import (
    ConnectionState,
    ContinualGatheringPolicy,
    DisconnectReason,
    IceTransportType,
    SimulateScenarioKind,
)
from greenroom.rtc._port import RoomPort
from greenroom.rtc._records import LocalChange
from greenroom.rtc._simulate import simulation
from greenroom.rtc._streams import StreamHub
from greenroom.rtc._view import (
    DataPacket,
    Deliver,
    Departed,
    Emit,
    Ended,
    EventTypes,
    RoomView,
    SipDTMF,
    Wake,
)
from greenroom.rtc.data_stream import ByteStreamHandler, TextStreamHandler, TextStreamReader
from greenroom.rtc.e2ee import E2EEManager, E2EEOptions, config_of
from greenroom.rtc.event_emitter import EventEmitter
from greenroom.rtc.participant import LocalParticipant, RemoteParticipant

__all__ = [
    "ConnectError",
    "DataPacket",
    "DataStreamOptions",
    "EventTypes",
    "IceServer",
    "ReconnectPolicy",
    "Room",
    "RoomOptions",
    "RtcConfiguration",
    "SipDTMF",
]

_log = logging.getLogger("greenroom.rtc.room")

#: The default overall connect deadline, in seconds (signal + join + primary peer connection).
DEFAULT_CONNECT_TIMEOUT = 15.0


class ConnectError(Exception):
    """``Room.connect`` failed; ``message`` says why (refused token, unreachable server, timeout …)."""

    def __init__(self, message: str) -> None:
        """Keep ``message`` (also in ``.message``)."""
        super().__init__(message)
        self.message = message


@dataclass
class IceServer:
    """A STUN/TURN server for ``RtcConfiguration.ice_servers``."""

    urls: list[str] = field(default_factory=list)
    username: str = ""
    password: str = ""


@dataclass
class RtcConfiguration:
    """WebRTC settings: ICE transport type, gathering policy and explicit ICE servers.

    ``ice_servers`` replace the ones the server sends in its join response (as the official SDKs do);
    ``ice_transport_type=TRANSPORT_RELAY`` gathers relayed candidates only (aiortc's ``iceTransportPolicy``),
    so it needs a TURN server, given here or by the server. aiortc uses one STUN and one TURN URL: the first
    of each it can use (``turn:`` over UDP/TCP, ``turns:`` over TCP), in the order listed.
    ``TRANSPORT_NOHOST`` and ``continual_gathering_policy`` have no aiortc counterpart and are ignored.
    """

    ice_transport_type: int = IceTransportType.TRANSPORT_ALL
    continual_gathering_policy: int = ContinualGatheringPolicy.GATHER_CONTINUALLY
    ice_servers: list[IceServer] = field(default_factory=list)


@dataclass
class DataStreamOptions:
    """Options of incoming data streams.

    Attributes:
        max_payload_byte_length: the most (uncompressed) bytes one incoming stream may carry; a larger one
            ends with ``StreamError`` at its reader. ``None``: 5 GB, as the official SDKs.
    """

    max_payload_byte_length: int | None = None


@dataclass
class RoomOptions:
    """How to connect. ``dynacast`` and ``single_peer_connection`` are accepted for compatibility and ignored
    (greenroom speaks v0 signalling with two peer connections).

    Attributes:
        auto_subscribe: subscribe to remote tracks automatically.
        encryption: end-to-end encryption of media and data (``E2EEOptions``); ``e2ee`` (deprecated, as in
            ``livekit.rtc``): media only.
        rtc_config: ICE settings.
        connect_timeout: the whole connect deadline in seconds (default 15); also each reconnect attempt's.
        data_stream: limits of incoming data streams.

    The fields are exactly the official ones; the reconnect schedule is :attr:`Room.reconnect_policy`.
    """

    auto_subscribe: bool = True
    dynacast: bool = False
    e2ee: E2EEOptions | None = None
    encryption: E2EEOptions | None = None
    rtc_config: RtcConfiguration | None = None
    connect_timeout: float | None = None
    single_peer_connection: bool | None = None
    data_stream: DataStreamOptions | None = None


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a connected room retries after a lost link (greenroom's; set :attr:`Room.reconnect_policy`).

    Attributes:
        attempts: full-reconnect attempts before ``disconnected`` (default 10, like the official SDKs;
            0 turns reconnecting off: a lost link disconnects at once).
        min_delay: the wait before the second attempt (the first is immediate), doubled for each further one.
        max_delay: the cap of that wait, before up to +50 % jitter (default 7 s; about 40 s in all).
        resend: after a full reconnect of this room, send again the reliable packets of the last seconds
            before the fault (same sequence numbers: greenroom receivers drop those they had) instead of
            reporting them with ``data_undelivered``. Only for rooms whose receivers are all greenroom: the
            official SDKs de-duplicate by the sender's sid, which a rejoin changes, and would get them twice.
    """

    attempts: int = 10
    min_delay: float = 0.3
    max_delay: float = 7.0
    resend: bool = False


def _connect_options(options: RoomOptions, policy: ReconnectPolicy) -> m.ConnectOptions:
    rtc = options.rtc_config or RtcConfiguration()
    servers = tuple(_WireIceServer(tuple(s.urls), s.username, s.password) for s in rtc.ice_servers)
    return m.ConnectOptions(
        auto_subscribe=options.auto_subscribe,
        ice_servers=servers,
        relay_only=rtc.ice_transport_type == IceTransportType.TRANSPORT_RELAY,
        timeout=options.connect_timeout or DEFAULT_CONNECT_TIMEOUT,
        reconnect_attempts=policy.attempts,
        reconnect_min_delay=policy.min_delay,
        reconnect_max_delay=policy.max_delay,
        resend=policy.resend,
        e2ee=config_of(options.encryption, data=True) or config_of(options.e2ee, data=False),
    )


def _user_loop(loop: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
    if loop is not None:
        return loop
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.get_event_loop_policy().get_event_loop()


class Room(EventEmitter[EventTypes]):
    """A LiveKit room client: connect, see participants, exchange data.

    Args:
        loop: the loop events are delivered on and callbacks run on; default: the running loop (or the
            policy's current loop), captured here like ``livekit.rtc.Room``.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__()
        self._loop = _user_loop(loop)
        self._client: RoomClient | None = None
        self._sink: LoopSink | None = None
        self._port = RoomPort.detached()
        self._view = RoomView(self._loop)
        self._first_sid: asyncio.Future[str] = self._loop.create_future()
        self._streams = StreamHub()
        self._e2ee_manager = E2EEManager(self._port, None)
        self._streams.internal = self._rpc_stream
        self.reconnect_policy = ReconnectPolicy()
        """How the room retries after a lost link (read by ``connect``; not in ``livekit.rtc``)."""

    # -- properties -----------------------------------------------------------------------------------------

    @property
    async def sid(self) -> str:
        """The room's server id (``RM_…``), waiting for it if the room has not joined yet."""
        if self._view.info.sid:
            return self._view.info.sid
        return await asyncio.shield(self._first_sid)

    @property
    def name(self) -> str:
        """The room's name."""
        return self._view.info.name

    @property
    def metadata(self) -> str:
        """The room's metadata."""
        return self._view.info.metadata

    @property
    def server_info(self) -> ServerInfo | None:
        """What the server said about itself in the join (``version``, ``edition``, ``protocol``, ``region``,
        ``node_id`` …); ``None`` before the join or from a server that sends none. greenroom's addition:
        ``livekit.rtc`` keeps it internal."""
        return self._view.server_info

    @property
    def num_participants(self) -> int:
        """How many participants the server counts."""
        return self._view.info.num_participants

    @property
    def local_participant(self) -> LocalParticipant:
        """The local participant.

        Raises:
            Exception: before the room joined.
        """
        local = self._view.local
        if local is None:
            raise Exception("cannot access local participant before connecting")
        return local

    @property
    def remote_participants(self) -> Mapping[str, RemoteParticipant]:
        """The other participants, by identity."""
        return self._view.remotes

    @property
    def dropped_events(self) -> int:
        """Data events (``data_received``, ``transcription_received``, ``sip_dtmf_received``) dropped since
        ``connect`` because this room's callbacks fell behind by more than ``MAX_PENDING_DATA_EVENTS``
        (drop-oldest; state events are never dropped)."""
        return self._sink.dropped if self._sink is not None else 0

    @property
    def e2ee_manager(self) -> E2EEManager:
        """The room's end-to-end encryption (its key provider is ``None`` without ``encryption``)."""
        return self._e2ee_manager

    @property
    def connection_state(self) -> ConnectionState:
        """Connected, reconnecting or disconnected."""
        return self._view.state

    def isconnected(self) -> bool:
        """Whether the room is connected (or reconnecting)."""
        return self._client is not None and self._view.state != ConnectionState.CONN_DISCONNECTED

    # -- commands -------------------------------------------------------------------------------------------

    async def connect(self, url: str, token: str, options: RoomOptions | None = None) -> None:
        """Join the room at ``url`` with ``token``; returns once the room is connected.

        Register event callbacks before calling it. Cancelling it (or its deadline, ``connect_timeout``)
        tears the connection attempt down completely.

        Raises:
            ConnectError: the URL is unreachable, the token refused (invalid, expired), the server went away,
                or the deadline passed.
        """
        if self._client is not None:
            raise ConnectError("the room is already connected")
        options = options or RoomOptions()
        self._streams.reset(options.data_stream.max_payload_byte_length if options.data_stream else None)
        sink = LoopSink(self._loop, self._feed)
        client = RoomClient.start(sink)
        self._client, self._sink, self._port = client, sink, RoomPort(client, self._feed)
        self._e2ee_manager = E2EEManager(self._port, options.encryption or options.e2ee)
        self._view.bind(self._port)
        try:
            connect_options = _connect_options(options, self.reconnect_policy)
            await call(client.connect(url, token, connect_options))
        except ConnectFailedError as exc:
            await self._teardown()
            raise ConnectError(str(exc)) from None
        except BaseException:
            await asyncio.shield(self._teardown())
            raise

    async def simulate_scenario(self, scenario: int) -> None:
        """Stage a fault on this connection, for tests (``SimulateScenarioKind``; see
        :mod:`greenroom.actors.simulate`): e.g. ``SIMULATE_FULL_RECONNECT`` makes the room reconnect now,
        ``SIMULATE_NODE_FAILURE`` has the server drop the link. Returns once the request is on its way; the
        room's events (``reconnecting``, ``reconnected`` …) follow.

        Raises:
            RuntimeError: the room is not connected.
        """
        if not self.isconnected():
            raise RuntimeError("simulate_scenario requires a connected room")
        request, locally = simulation(SimulateScenarioKind(scenario))
        try:
            await self._port.request(lambda reply: Simulate(reply, request, locally))
        except GreenroomError as exc:
            raise RuntimeError(f"simulate_scenario failed: {exc}") from exc

    async def disconnect(self, reason: DisconnectReason = DisconnectReason.CLIENT_INITIATED) -> None:
        """Leave the room and stop everything this room started (a no-op when not connected)."""
        if self._client is None:
            return
        await self._teardown(reason)

    async def _teardown(self, reason: DisconnectReason = DisconnectReason.CLIENT_INITIATED) -> None:
        client, self._client = self._client, None
        self._port.close()
        if client is not None:
            # Shielded: a caller cancelled here (a wait_for around disconnect(), an actor killed while it
            # leaves) must not cancel the close halfway — the RoomActor, CLOSED but never stopped, and its
            # task would outlive the room (found by the fleet's chaos test at 100 bots).
            await call_to_end(client.close(reason))
        await asyncio.sleep(0)  # let events the actors queued before closing reach the user first
        if self._sink is not None:
            self._sink.detach()
            self._sink = None
        self._feed(m.Disconnected(reason))
        if (local := self._view.local) is not None:
            await local._rpc.drain()  # the handlers it cancelled have unwound

    # -- events (always on the user's loop) -----------------------------------------------------------------

    def _feed(self, event: m.RoomEvent | LocalChange) -> None:
        """Apply ``event`` to the view and carry out what it returns: the official events, in order."""
        for effect in self._view.apply(event):
            match effect:
                case Emit(name=name, args=args):
                    self._emit_contained(name, *args)
                case Wake(waiter=waiter, track=track):
                    waiter.callback(track)
                case Deliver(identity=identity, value=value):
                    self._deliver(identity, value)
                case Departed(identity=identity):
                    self._streams.departed(identity)
                    if (local := self._view.local) is not None:
                        local._rpc.departed(identity)
                case Ended():
                    self._streams.ended()
                    if (local := self._view.local) is not None:
                        local._rpc.close()
                case _:
                    assert_never(effect)
        if self._view.info.sid and not self._first_sid.done():
            self._first_sid.set_result(self._view.info.sid)

    def _deliver(self, identity: str, value: packets.RpcValue | packets.StreamValue) -> None:
        """An RPC or data-stream packet, in order with the room's other events."""
        local = self._view.local
        match value:
            case packets.RpcRequest() | packets.RpcAck() | packets.RpcResponse():
                if local is not None:
                    local._rpc.receive(identity, value)
            case packets.StreamHeader() | packets.StreamChunk() | packets.StreamTrailer():
                self._streams.receive(identity, value)
            case _:
                assert_never(value)

    def _rpc_stream(self, topic: str, reader: TextStreamReader, identity: str) -> None:
        """RPC v2: a request or an answer carried by a text stream, for the local participant's RPC."""
        local = self._view.local
        if local is None:
            reader.close()
            return
        local._rpc.stream(topic, reader, identity)

    # -- data stream handlers (as livekit.rtc: on the room, one per topic and kind) -----------------------

    def register_text_stream_handler(self, topic: str, handler: TextStreamHandler) -> None:
        """Call ``handler(reader, participant_identity)`` for each text stream opened on ``topic``.

        The handler may be a plain function (start a task to read, as with ``livekit.rtc``) or a coroutine
        function (greenroom runs it as a task). Whatever it raises is logged and stays its own.

        Raises:
            ValueError: a text stream handler for ``topic`` is already set.
        """
        if topic in self._streams.text_handlers:
            raise ValueError(f"text stream handler for topic '{topic}' already set")
        self._streams.text_handlers[topic] = handler

    def unregister_text_stream_handler(self, topic: str) -> None:
        """Stop handling text streams on ``topic`` (later ones are ignored; open ones keep their reader)."""
        self._streams.text_handlers.pop(topic, None)

    def register_byte_stream_handler(self, topic: str, handler: ByteStreamHandler) -> None:
        """Call ``handler(reader, participant_identity)`` for each byte stream opened on ``topic``.

        Raises:
            ValueError: a byte stream handler for ``topic`` is already set.
        """
        if topic in self._streams.byte_handlers:
            raise ValueError(f"byte stream handler for topic '{topic}' already set")
        self._streams.byte_handlers[topic] = handler

    def unregister_byte_stream_handler(self, topic: str) -> None:
        """Stop handling byte streams on ``topic``."""
        self._streams.byte_handlers.pop(topic, None)

    def __repr__(self) -> str:
        return (
            f"rtc.Room(sid={self._view.info.sid or 'unknown'}, name={self.name}, metadata={self.metadata}, "
            f"connection_state={self._view.state.name})"
        )
