"""The frozen messages of the room actor tree, and the events it reports to the facade.

Every message is a ``@dataclass(frozen=True, slots=True)`` whose fields are immutable values (codec
dataclasses, tuples, enums) — protobuf objects never cross a mailbox. Four groups:

* **commands** the facade sends to :class:`~greenroom.actors.room.RoomActor` or to the local participant's
  :class:`~greenroom.actors.participant.ParticipantActor` (``Connect``, ``Disconnect``, ``PublishData`` …);
  a command that is answered carries a :class:`Reply` (an asyncio future on the runtime loop, completed by
  whichever actor finishes the work, so a long operation never holds a mailbox);
* **internal** messages between the actors (``ApplyParticipantInfo``, ``DeliverPacket``, ``MediaAttached`` …);
* **timers** the RoomActor sends itself (``PingTick``, ``ConnectDeadline``);
* **events** (:data:`RoomEvent`) the actors hand to an :class:`EventSink`: the facade's bridge, which
  re-emits them on the user's loop. Each event carries the full new state (``ParticipantInfo`` /
  ``TrackInfo`` snapshots), so the facade's views are plain copies and never ask an actor.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

from greenroom.actors.e2ee_messages import E2eeConfig, EncryptionStateChanged, EncryptionStatusChanged
from greenroom.actors.reliable import DataUndelivered
from greenroom.codecs import packets
from greenroom.codecs.models import (
    DisconnectReason,
    IceServer,
    ParticipantInfo,
    RoomInfo,
    ServerInfo,
    StringPairs,
    TrackInfo,
    TrackSource,
    TrackType,
)

__all__ = [
    "ActiveSpeakersChanged",
    "ApplyParticipantInfo",
    "ApplyTrackInfo",
    "Connect",
    "ConnectDeadline",
    "ConnectOptions",
    "ConnectionQualityChanged",
    "ConnectionStateChanged",
    "Crash",
    "DataPacketReceived",
    "DataUndelivered",
    "DeliverPacket",
    "Disconnect",
    "Disconnected",
    "EventSink",
    "GetState",
    "GetTree",
    "LinkRefused",
    "LocalTrackAdded",
    "LocalTrackRepublished",
    "LocalTrackSubscribed",
    "MediaAttached",
    "MediaDetached",
    "ParticipantActive",
    "ParticipantAttributesChanged",
    "ParticipantConnected",
    "ParticipantDisconnected",
    "ParticipantLeft",
    "ParticipantMetadataChanged",
    "ParticipantNameChanged",
    "PingTick",
    "PublishData",
    "PublishDtmf",
    "PublishPacket",
    "PublishTrack",
    "PublishTranscription",
    "ReconnectTick",
    "Reconnected",
    "Reconnecting",
    "Reply",
    "RequestExpired",
    "RoomConnected",
    "RoomEvent",
    "RoomJoined",
    "RoomMetadataChanged",
    "RpcPacketReceived",
    "SetLocalTrackMuted",
    "SetSubscribed",
    "SipDtmfReceived",
    "Stall",
    "StreamPacketReceived",
    "TrackMuted",
    "TrackPublished",
    "TrackRemoved",
    "TrackSubscribed",
    "TrackSubscriptionFailed",
    "TrackUnpublished",
    "TrackUnsubscribed",
    "TranscriptionReceived",
    "TreeState",
    "UnpublishTrack",
    "UpdateLocalInfo",
]

T = TypeVar("T")


class Reply(Generic[T]):
    """The answer channel of a command: an asyncio future owned by the runtime loop.

    Completing it twice (or after the caller gave up) is harmless, so an actor can answer without checking
    who still waits. Equality is identity, so a message holding a ``Reply`` stays hashable.
    """

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[T]) -> None:
        """Wrap ``future`` (created on the runtime loop)."""
        self.future = future
        future.add_done_callback(_observe)

    @classmethod
    def new(cls) -> Reply[T]:
        """A reply bound to the running loop (call on the runtime loop)."""
        return cls(asyncio.get_running_loop().create_future())

    def ok(self, value: T) -> None:
        """Complete with ``value`` (ignored if already done)."""
        if not self.future.done():
            self.future.set_result(value)

    def fail(self, error: BaseException) -> None:
        """Complete with ``error`` (ignored if already done)."""
        if not self.future.done():
            self.future.set_exception(error)

    @property
    def done(self) -> bool:
        """Whether the reply was completed (or cancelled by the caller)."""
        return self.future.done()


def _observe(future: asyncio.Future[Any]) -> None:
    """Mark an outcome as seen: a caller that gave up (cancelled) must not cause "never retrieved" noise."""
    if not future.cancelled():
        future.exception()


# --- commands (facade → actors) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """What ``Room.connect`` hands the RoomActor (converted from ``RoomOptions``).

    Attributes:
        auto_subscribe: sent as the ``auto_subscribe`` query parameter.
        ice_servers: explicit ICE servers (``RtcConfiguration.ice_servers``); empty = the server's list,
            and loopback-only gathering when the server is local.
        relay_only: ``ice_transport_type == TRANSPORT_RELAY``.
        timeout: the whole connect deadline in seconds (signal + join + primary peer connection); also the
            deadline of each reconnect attempt.
        reconnect_attempts: full-reconnect attempts after a lost link before giving up (0: never reconnect).
        reconnect_min_delay: the back-off before the second attempt (the first is immediate), doubled for
            each further one.
        reconnect_max_delay: the back-off's cap (before up to +50 % jitter).
        resend: after our own full rejoin, send again what may not have arrived (greenroom.actors.delivery).
    """

    auto_subscribe: bool = True
    ice_servers: tuple[IceServer, ...] = ()
    relay_only: bool = False
    timeout: float = 15.0
    reconnect_attempts: int = 10
    reconnect_min_delay: float = 0.3
    reconnect_max_delay: float = 7.0
    resend: bool = False
    e2ee: E2eeConfig | None = None  # RoomOptions.encryption (greenroom.actors.e2ee_messages)


@dataclass(frozen=True, slots=True)
class Connect:
    """Join a room: answered with the :class:`RoomJoined` snapshot once the primary PC is connected."""

    url: str
    token: str
    options: ConnectOptions
    reply: Reply[RoomJoined]


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Leave the room (``leave`` is sent when the signal link is up) and close every transport."""

    reason: DisconnectReason = DisconnectReason.CLIENT_INITIATED
    reply: Reply[None] | None = None


@dataclass(frozen=True, slots=True)
class PublishData:
    """``LocalParticipant.publish_data`` → the local ParticipantActor (user packet)."""

    payload: bytes
    reliable: bool
    destination_identities: tuple[str, ...]
    topic: str
    reply: Reply[None]


@dataclass(frozen=True, slots=True)
class PublishDtmf:
    """``LocalParticipant.publish_dtmf`` → the local ParticipantActor."""

    code: int
    digit: str
    reply: Reply[None]


@dataclass(frozen=True, slots=True)
class PublishTranscription:
    """``LocalParticipant.publish_transcription`` → the local ParticipantActor."""

    transcription: packets.Transcription
    reply: Reply[None]


@dataclass(frozen=True, slots=True)
class PublishPacket:
    """An RPC or stream packet → RoomActor (reliable); ``identity``: another sender to stamp (agents)."""

    value: packets.RpcValue | packets.StreamValue
    destination_identities: tuple[str, ...]
    reply: Reply[None]
    identity: str = ""


@dataclass(frozen=True, slots=True)
class UpdateLocalInfo:
    """``set_metadata``/``set_name``/``set_attributes`` → the local ParticipantActor (None: unchanged)."""

    reply: Reply[None]
    metadata: str | None = None
    name: str | None = None
    attributes: StringPairs | None = None


@dataclass(frozen=True, slots=True)
class GetState:
    """Ask an actor for its current state (tests, tools); answered by the actor's handler return value."""


@dataclass(frozen=True, slots=True)
class Crash:
    """Make the receiving actor raise (fault injection: :mod:`greenroom.testing`; never sent by greenroom)."""

    reason: str = "injected failure"


@dataclass(frozen=True, slots=True)
class Stall:
    """Make the receiving actor's handler wait until ``release`` is set (fault injection: a stuck actor).

    ``entered`` completes when the handler starts waiting. Never sent by the library itself.
    """

    release: asyncio.Event
    entered: Reply[None]


@dataclass(frozen=True, slots=True)
class GetTree:
    """Ask a supervising actor (RoomActor, ParticipantActor) for its children and restart history."""


@dataclass(frozen=True, slots=True)
class TreeState:
    """A supervising actor's answer to :class:`GetTree`.

    Attributes:
        children: ``(key, name, ref)`` of each child: the key is the stable child id (``"local"``, a
            participant sid, a track sid), the name what users call it (identity, track sid); ``ref`` is
            ``None`` while the child restarts.
        events: the restarts this actor's supervision made, oldest first
            (:class:`greenroom.actors.supervision.RestartEvent`).
    """

    children: tuple[tuple[str, str, Any], ...]
    events: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class PublishTrack:
    """``LocalParticipant.publish_track`` → RoomActor: ``add_track``, then the sender and renegotiation.

    The media itself never travels in the message: ``cid`` names the gate track the facade registered with
    the room's :class:`~greenroom.actors.media.MediaRouter` (on the runtime loop) before sending this.
    Answered with the server's ``TrackInfo`` once the publisher offer carrying the track is sent.
    """

    cid: str
    name: str
    type: TrackType
    source: TrackSource
    reply: Reply[TrackInfo]
    width: int = 0
    height: int = 0
    stereo: bool = False
    disable_dtx: bool = False
    disable_red: bool = False
    stream: str = ""


@dataclass(frozen=True, slots=True)
class UnpublishTrack:
    """``LocalParticipant.unpublish_track`` → RoomActor: stop the sender, renegotiate (no signal message)."""

    sid: str
    reply: Reply[None]


@dataclass(frozen=True, slots=True)
class SetLocalTrackMuted:
    """``LocalAudioTrack.mute()/unmute()`` → RoomActor (``mute`` signal) → local TrackActor (the gate)."""

    sid: str
    muted: bool


@dataclass(frozen=True, slots=True)
class SetSubscribed:
    """``RemoteTrackPublication.set_subscribed`` → RoomActor (``subscription``) → the TrackActor."""

    track_sid: str
    subscribe: bool


# --- internal ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApplyParticipantInfo:
    """RoomActor → ParticipantActor: a complete, newer ``ParticipantInfo`` from ``join`` or ``update``."""

    info: ParticipantInfo


@dataclass(frozen=True, slots=True)
class ParticipantLeft:
    """RoomActor → ParticipantActor: the participant left (or the room closed); report and stop."""

    info: ParticipantInfo
    reason: DisconnectReason


@dataclass(frozen=True, slots=True)
class DeliverPacket:
    """RoomActor → the sender's ParticipantActor: one decoded, de-duplicated data packet."""

    packet: packets.DataPacket
    reliable: bool
    encrypted: bool = False  # it arrived as an EncryptedPacket (the sender's encryption status)


@dataclass(frozen=True, slots=True)
class ApplyTrackInfo:
    """ParticipantActor → TrackActor: the publication's current ``TrackInfo``."""

    info: TrackInfo


@dataclass(frozen=True, slots=True)
class TrackRemoved:
    """ParticipantActor → TrackActor: the publication is gone: detach its media, then stop (for good).

    ``silent``: the participant left, so no ``track_unsubscribed`` (the facade ends it with the participant).
    """

    silent: bool = False


@dataclass(frozen=True, slots=True)
class PingTick:
    """RoomActor timer: send ``ping_req`` and check the ping timeout."""

    generation: int


@dataclass(frozen=True, slots=True)
class ConnectDeadline:
    """RoomActor timer: the connect attempt ``generation`` ran out of time."""

    generation: int


@dataclass(frozen=True, slots=True)
class LinkRefused:
    """Link → RoomActor: the signal connection of link ``generation`` could not be opened."""

    generation: int
    why: str
    fatal: bool
    """401/403: the token is refused, retrying will not help."""


@dataclass(frozen=True, slots=True)
class RequestExpired:
    """RoomActor timer: the deadline of the request in flight ``key`` (sent with ``ticket``) passed."""

    key: object
    ticket: int


@dataclass(frozen=True, slots=True)
class ReconnectTick:
    """RoomActor timer: start the next full-reconnect attempt (stale if ``generation`` moved on)."""

    generation: int


@dataclass(frozen=True, slots=True)
class LocalTrackAdded:
    """RoomActor → local ParticipantActor: ``track_published`` arrived; start the publication's TrackActor."""

    info: TrackInfo


@dataclass(frozen=True, slots=True)
class MediaAttached:
    """RoomActor → ParticipantActor → TrackActor: the subscriber PC received this publication's media."""

    track_sid: str


@dataclass(frozen=True, slots=True)
class MediaDetached:
    """RoomActor → ParticipantActor → TrackActor: unsubscribed (by us, or the server's renegotiation)."""

    track_sid: str


# --- events (actors → facade) ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoomJoined:
    """The JoinResponse was applied: the room, the local participant and those already present."""

    room: RoomInfo
    local: ParticipantInfo
    remotes: tuple[ParticipantInfo, ...]
    server_version: str = ""
    server_info: ServerInfo | None = None


@dataclass(frozen=True, slots=True)
class RoomConnected:
    """The primary peer connection is up: ``connection_state_changed(CONNECTED)`` then ``connected``."""


@dataclass(frozen=True, slots=True)
class ConnectionStateChanged:
    """The connection state (``ConnectionState`` numbers: 0 disconnected, 1 connected, 2 reconnecting)."""

    state: int


@dataclass(frozen=True, slots=True)
class Reconnecting:
    """The link was lost and a full reconnect begins (after ``ConnectionStateChanged(2)``)."""


@dataclass(frozen=True, slots=True)
class Reconnected:
    """A full reconnect succeeded (after ``ConnectionStateChanged(1)``): the new room and local info."""

    room: RoomInfo
    local: ParticipantInfo


@dataclass(frozen=True, slots=True)
class LocalTrackRepublished:
    """After a full reconnect a local publication was published again and got the sid of ``track``."""

    previous_sid: str
    track: TrackInfo


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The room is closed (client-initiated, server leave, signal lost …)."""

    reason: DisconnectReason


@dataclass(frozen=True, slots=True)
class RoomMetadataChanged:
    """``room_update`` changed the room's metadata."""

    room: RoomInfo
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class ParticipantConnected:
    """A remote participant joined after us."""

    info: ParticipantInfo


@dataclass(frozen=True, slots=True)
class ParticipantActive:
    """A remote participant reached state ACTIVE (ready for data)."""

    info: ParticipantInfo


@dataclass(frozen=True, slots=True)
class ParticipantDisconnected:
    """A remote participant left."""

    info: ParticipantInfo
    reason: DisconnectReason


@dataclass(frozen=True, slots=True)
class ParticipantMetadataChanged:
    """A participant's (local or remote) metadata changed."""

    info: ParticipantInfo
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class ParticipantNameChanged:
    """A participant's name changed."""

    info: ParticipantInfo
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class ParticipantAttributesChanged:
    """Attributes changed; ``changed`` holds the new values (``""`` for a removed key)."""

    info: ParticipantInfo
    changed: StringPairs


@dataclass(frozen=True, slots=True)
class TrackPublished:
    """A remote participant published a track (seen in a participant update)."""

    info: ParticipantInfo
    track: TrackInfo


@dataclass(frozen=True, slots=True)
class TrackUnpublished:
    """A remote participant's track disappeared from its participant updates."""

    info: ParticipantInfo
    track: TrackInfo


@dataclass(frozen=True, slots=True)
class TrackMuted:
    """A publication's ``muted`` flag changed (reported by its TrackActor)."""

    identity: str
    track: TrackInfo
    muted: bool


@dataclass(frozen=True, slots=True)
class DataPacketReceived:
    """A user packet (``data_received``); ``identity`` is empty when a server API sent it."""

    identity: str
    payload: bytes
    reliable: bool
    topic: str | None


@dataclass(frozen=True, slots=True)
class SipDtmfReceived:
    """A SIP DTMF packet (``sip_dtmf_received``)."""

    identity: str
    code: int
    digit: str


@dataclass(frozen=True, slots=True)
class TranscriptionReceived:
    """A transcription packet; ``identity`` is the *transcribed* participant, not the sender."""

    identity: str
    track_sid: str
    segments: tuple[packets.TranscriptionSegment, ...]


@dataclass(frozen=True, slots=True)
class RpcPacketReceived:
    """An RPC request, ack or response from ``identity`` (a request's ack was already sent)."""

    identity: str
    value: packets.RpcValue


@dataclass(frozen=True, slots=True)
class StreamPacketReceived:
    """A stream packet; ``identity``: the one it names (an agent's header may name another one)."""

    identity: str
    value: packets.StreamValue


@dataclass(frozen=True, slots=True)
class TrackSubscribed:
    """A remote publication's media is attached (``track_subscribed``); reported by its TrackActor."""

    identity: str
    track: TrackInfo


@dataclass(frozen=True, slots=True)
class TrackUnsubscribed:
    """A remote publication's media is detached and its streams ended (``track_unsubscribed``)."""

    identity: str
    track: TrackInfo


@dataclass(frozen=True, slots=True)
class TrackSubscriptionFailed:
    """A subscription could not be set up (``track_subscription_failed``)."""

    identity: str
    track_sid: str
    error: str


@dataclass(frozen=True, slots=True)
class LocalTrackSubscribed:
    """The server's ``track_subscribed``: someone subscribed to our track ``track_sid`` for the first time."""

    track_sid: str


@dataclass(frozen=True, slots=True)
class ActiveSpeakersChanged:
    """``speakers_changed``: the active speakers' ``(participant sid, level)``, loudest first."""

    speakers: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class ConnectionQualityChanged:
    """``connection_quality``: one participant's quality (wire ``ConnectionQuality`` number)."""

    participant_sid: str
    quality: int


RoomEvent: TypeAlias = (
    RoomJoined
    | RoomConnected
    | ConnectionStateChanged
    | Reconnecting
    | Reconnected
    | LocalTrackRepublished
    | Disconnected
    | RoomMetadataChanged
    | ParticipantConnected
    | ParticipantActive
    | ParticipantDisconnected
    | ParticipantMetadataChanged
    | ParticipantNameChanged
    | ParticipantAttributesChanged
    | TrackPublished
    | TrackUnpublished
    | TrackMuted
    | DataPacketReceived
    | SipDtmfReceived
    | TranscriptionReceived
    | RpcPacketReceived
    | StreamPacketReceived
    | TrackSubscribed
    | TrackUnsubscribed
    | TrackSubscriptionFailed
    | LocalTrackSubscribed
    | ActiveSpeakersChanged
    | ConnectionQualityChanged
    | DataUndelivered
    | EncryptionStateChanged
    | EncryptionStatusChanged
)
"""Everything the actor tree reports to the facade."""


class EventSink(Protocol):
    """Where actors report :data:`RoomEvent` values; must be callable from the runtime loop and not block.

    The rtc facade's implementation re-emits them on the user's loop with ``call_soon_threadsafe`` (one
    FIFO queue, so the order the actors produced is the order the user sees).
    """

    def emit(self, event: RoomEvent) -> None:
        """Report ``event`` (must not block, must not raise)."""
