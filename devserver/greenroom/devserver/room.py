"""Room state for the dev server: members, versions, visibility, metadata updates and data routing.

Nothing here does I/O. A :class:`Room` answers questions ("who must hear about this change?", "who receives
this packet?") and the participant sessions (``participant.py``) do the sending, so every rule below is
unit-tested without sockets. All of it runs on one event loop, so there are no locks.

Rules (livekit/livekit behaviour, summarised in ``reference/signal-protocol.md`` §§5–9 and
``reference/data-e2ee-formats.md`` §1):

* every :class:`~greenroom.codecs.models.ParticipantInfo` sent is complete and carries a strictly
  increasing ``version`` (JS drops an older version for the same sid);
* a second join of an identity replaces the first (DUPLICATE_IDENTITY);
* hidden members are never announced and their data carries no sender identity;
* data: ``canPublishData`` is required, transcriptions are forwarded only from agents, metrics are never
  forwarded, a reliable packet whose sequence is not above the sender's last one is dropped, the sender
  sid/identity are stamped, ``sequence`` is kept, destinations are honoured.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format
from livekit.protocol import room as room_pb

from greenroom.codecs.errors import GreenroomError
from greenroom.codecs.models import (
    DisconnectReason,
    ParticipantInfo,
    ParticipantKind,
    ParticipantPermission,
    ParticipantState,
    RequestResponseReason,
    RoomInfo,
    TrackInfo,
    TrackPermission,
    frozen_map,
)
from greenroom.codecs.packets import (
    ChatMessage,
    DataPacket,
    StreamHeader,
    TextHeader,
    Transcription,
    Unhandled,
    UserPacket,
)

if TYPE_CHECKING:
    from greenroom.devserver.dispatch import Dispatch, JobRecord

__all__ = [
    "Admission",
    "AgentSpec",
    "Dropped",
    "Member",
    "MetadataChange",
    "ParticipantNotFoundError",
    "Room",
    "RoomNotFoundError",
    "RoomSettings",
    "Routed",
    "new_sid",
    "room_settings",
]

_ALPHABET = string.ascii_letters + string.digits


def new_sid(prefix: str) -> str:
    """Return a fresh LiveKit-style id: ``prefix`` + 12 random base-62 characters.

    The Rust SDK unwraps ids that lack ``PA_``/``TR_``/``RM_`` (trap 4 of signal-protocol.md §11.5).
    """
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(12))


@dataclass(frozen=True, slots=True)
class Admission:
    """What a verified token lets a participant be (the server builds it from the token's claims)."""

    identity: str
    name: str = ""
    metadata: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)
    kind: ParticipantKind = ParticipantKind.STANDARD
    permission: ParticipantPermission = field(default_factory=ParticipantPermission)
    client_protocol: int = 0
    capabilities: tuple[int, ...] = ()
    auto_subscribe: bool = True


@dataclass(slots=True)
class Member:
    """One participant as the room sees it (mutable; only :class:`Room` changes it)."""

    sid: str
    identity: str
    name: str
    metadata: str
    attributes: dict[str, str]
    kind: ParticipantKind
    permission: ParticipantPermission
    client_protocol: int
    joined_at_ms: int
    capabilities: tuple[int, ...] = ()
    state: ParticipantState = ParticipantState.JOINED
    version: int = 1
    tracks: dict[str, TrackInfo] = field(default_factory=dict)
    disconnect_reason: DisconnectReason = DisconnectReason.UNKNOWN_REASON
    last_sequence: int = 0
    auto_subscribe: bool = True
    wishes: dict[str, bool] = field(default_factory=dict)  # TR_ sid -> explicitly (un)subscribed
    allow_all: bool = True  # SubscriptionPermission.all_participants (for this member's tracks)
    track_permissions: tuple[TrackPermission, ...] = ()
    was_active: bool = False  # reached ACTIVE once (webhooks: participant_left vs connection_aborted)

    @property
    def hidden(self) -> bool:
        """Hidden members (recorders, observers) are never announced to the others."""
        return self.permission.hidden

    @property
    def is_agent(self) -> bool:
        """An agent: token kind ``agent`` or the ``agent`` video grant."""
        return self.kind is ParticipantKind.AGENT or self.permission.agent

    def info(self) -> ParticipantInfo:
        """The complete ParticipantInfo at the current version."""
        return ParticipantInfo(
            sid=self.sid,
            identity=self.identity,
            name=self.name,
            metadata=self.metadata,
            attributes=frozen_map(self.attributes),
            state=self.state,
            kind=self.kind,
            tracks=tuple(self.tracks.values()),
            version=self.version,
            permission=self.permission,
            joined_at=self.joined_at_ms // 1000,
            joined_at_ms=self.joined_at_ms,
            is_publisher=bool(self.tracks),
            disconnect_reason=self.disconnect_reason,
            client_protocol=self.client_protocol,
            capabilities=self.capabilities,
        )

    def bump(self) -> ParticipantInfo:
        """Advance the version (every change must) and return the new info."""
        self.version += 1
        return self.info()


@dataclass(frozen=True, slots=True)
class MetadataChange:
    """The outcome of an ``UpdateParticipantMetadata`` request."""

    reason: RequestResponseReason
    message: str = ""
    info: ParticipantInfo | None = None


@dataclass(frozen=True, slots=True)
class Routed:
    """A data packet to forward: the stamped packet and the identities that receive it."""

    packet: DataPacket
    recipients: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Dropped:
    """A data packet the room refuses to forward, and why (for the log)."""

    reason: str


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """One agent the room asks for (``livekit.RoomAgentDispatch``: from ``CreateRoom`` or a token's room
    configuration)."""

    agent_name: str = ""
    metadata: str = ""


@dataclass(frozen=True, slots=True)
class RoomSettings:
    """What ``CreateRoom`` or a token's room configuration asks of a room (0 / empty / None = not given)."""

    empty_timeout: int = 0
    departure_timeout: int = 0
    max_participants: int = 0
    metadata: str = ""
    agents: tuple[AgentSpec, ...] | None = None

    def overrides(self) -> dict[str, Any]:
        """Keyword arguments for :meth:`Room.configure`."""
        return {
            "empty_timeout": self.empty_timeout,
            "departure_timeout": self.departure_timeout,
            "max_participants": self.max_participants,
            "metadata": self.metadata,
            "agents": self.agents,
        }


def room_settings(config_json: str | None) -> RoomSettings:
    """The settings of a token's ``roomConfig`` claim (``livekit.RoomConfiguration`` in proto JSON), applied
    when the join creates the room (as livekit-server does); unreadable JSON gives no settings."""
    if not config_json:
        return RoomSettings()
    config = room_pb.RoomConfiguration()
    try:
        json_format.Parse(config_json, config, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError):
        return RoomSettings()
    return RoomSettings(
        empty_timeout=config.empty_timeout,
        departure_timeout=config.departure_timeout,
        max_participants=config.max_participants,
        metadata=config.metadata,
        agents=tuple(AgentSpec(a.agent_name, a.metadata) for a in config.agents) or None,
    )


class RoomNotFoundError(GreenroomError):
    """No live room has that name (Twirp ``not_found``)."""


class ParticipantNotFoundError(GreenroomError):
    """The room has no live participant with that identity (Twirp ``not_found``)."""


class Room:
    """One room: created on first join or by ``CreateRoom``; the server closes it once it has been empty
    for ``empty_timeout`` (nobody ever joined) or ``departure_timeout`` (after the last member left) seconds,
    as livekit-server does (``pkg/rtc/room.go`` ``CloseIfEmpty``)."""

    def __init__(
        self,
        name: str,
        *,
        empty_timeout: float = 20.0,
        departure_timeout: float | None = None,
        max_participants: int = 0,
        metadata: str = "",
        agents: tuple[AgentSpec, ...] = (),
        now: float | None = None,
    ) -> None:
        self.sid = new_sid("RM_")
        self.name = name
        self.metadata = metadata
        self.empty_timeout = empty_timeout
        self.departure_timeout = empty_timeout if departure_timeout is None else departure_timeout
        self.max_participants = max_participants
        self.agents = agents
        self.created_ms = _now_ms()
        self._members: dict[str, Member] = {}
        self._empty_since: float | None = time.monotonic() if now is None else now
        self._ever_joined = False
        #: set by the server when it closes the room (DeleteRoom, timeout, shutdown): ``room_finished`` is
        #: sent once its last member has left
        self.closed = False
        #: agent dispatches by id (``dispatch.py``); the server creates the initial ones with the room
        self.dispatches: dict[str, Dispatch] = {}

    # --- queries ---------------------------------------------------------------------------------

    def __contains__(self, identity: object) -> bool:
        return identity in self._members

    def __iter__(self) -> Iterator[Member]:
        return iter(list(self._members.values()))

    def __len__(self) -> int:
        return len(self._members)

    def get(self, identity: str) -> Member | None:
        """The member with this identity, if present."""
        return self._members.get(identity)

    def by_sid(self, sid: str) -> Member | None:
        """The member with this participant sid, if present."""
        return next((m for m in self._members.values() if m.sid == sid), None)

    def info(self) -> RoomInfo:
        """The ``livekit.Room`` record (hidden members are not counted)."""
        visible = [m for m in self._members.values() if not m.hidden]
        return RoomInfo(
            sid=self.sid,
            name=self.name,
            metadata=self.metadata,
            num_participants=len(visible),
            num_publishers=sum(1 for m in visible if m.tracks),
            creation_time=self.created_ms // 1000,
            creation_time_ms=self.created_ms,
            empty_timeout=int(self.empty_timeout),
            departure_timeout=int(self.departure_timeout),
            max_participants=self.max_participants,
        )

    def others(self, member: Member) -> list[ParticipantInfo]:
        """``JoinResponse.other_participants`` for ``member``: everyone visible except itself."""
        return [m.info() for m in self._members.values() if m is not member and not m.hidden]

    def audience(self, member: Member) -> list[Member]:
        """Who must be told about a change to ``member``: nobody if it is hidden, else every other member."""
        if member.hidden:
            return []
        return [m for m in self._members.values() if m is not member]

    def expired(self, now: float) -> bool:
        """True when the room has been empty for ``empty_timeout`` s (never joined) or ``departure_timeout``
        s (since its last member left)."""
        timeout = self.departure_timeout if self._ever_joined else self.empty_timeout
        return self._empty_since is not None and now - self._empty_since >= timeout

    def full(self, admission: Admission) -> bool:
        """Whether ``max_participants`` refuses ``admission`` (hidden members and agents are not counted,
        nor a member that the admission replaces)."""
        if (
            self.max_participants <= 0
            or admission.permission.hidden
            or admission.kind is ParticipantKind.AGENT
        ):
            return False
        counted = [
            m
            for m in self._members.values()
            if not m.hidden and not m.is_agent and m.identity != admission.identity
        ]
        return len(counted) >= self.max_participants

    def configure(
        self,
        *,
        empty_timeout: float = 0,
        departure_timeout: float = 0,
        max_participants: int = 0,
        metadata: str = "",
        agents: tuple[AgentSpec, ...] | None = None,
    ) -> None:
        """``CreateRoom`` on an existing room: the values given (non-zero, non-empty) replace the room's."""
        if empty_timeout > 0:
            self.empty_timeout = empty_timeout
        if departure_timeout > 0:
            self.departure_timeout = departure_timeout
        if max_participants > 0:
            self.max_participants = max_participants
        if metadata:
            self.metadata = metadata
        if agents is not None:
            self.agents = agents

    def add_dispatch(self, dispatch: Dispatch) -> Dispatch:
        """Store an agent dispatch (``CreateDispatch``, or the room's configuration at creation)."""
        self.dispatches[dispatch.id] = dispatch
        return dispatch

    def remove_dispatch(self, dispatch_id: str) -> Dispatch | None:
        """``DeleteDispatch``: forget it; ``None`` if there is no such dispatch."""
        return self.dispatches.pop(dispatch_id, None)

    def record_job(self, dispatch_id: str, job: JobRecord) -> Dispatch | None:
        """A job of a dispatch started or changed (the ``/agent`` endpoint reports it); ``None`` if the
        dispatch is gone."""
        dispatch = self.dispatches.get(dispatch_id)
        if dispatch is None:
            return None
        jobs = (*(j for j in dispatch.jobs if j.id != job.id), job)
        dispatch = self.dispatches[dispatch_id] = replace(dispatch, jobs=jobs)
        return dispatch

    def set_metadata(self, metadata: str) -> RoomInfo:
        """``UpdateRoomMetadata``: replace the room's metadata; returns the new info to broadcast."""
        self.metadata = metadata
        return self.info()

    # --- membership --------------------------------------------------------------------------------

    def admit(self, admission: Admission) -> tuple[Member, Member | None]:
        """Add a member (state JOINED, version 1).

        Returns:
            The new member, and the member it replaced (same identity: the caller sends that one a
            DUPLICATE_IDENTITY leave and announces it DISCONNECTED), or ``None``.
        """
        evicted = self._members.pop(admission.identity, None)
        if evicted is not None:
            self._forget_wishes(evicted.tracks)
            evicted.state = ParticipantState.DISCONNECTED
            evicted.disconnect_reason = DisconnectReason.DUPLICATE_IDENTITY
            evicted.version += 1
        member = Member(
            sid=new_sid("PA_"),
            identity=admission.identity,
            name=admission.name,
            metadata=admission.metadata,
            attributes=dict(admission.attributes),
            kind=admission.kind,
            permission=admission.permission,
            client_protocol=admission.client_protocol,
            capabilities=admission.capabilities,
            joined_at_ms=_now_ms(),
            auto_subscribe=admission.auto_subscribe,
        )
        self._members[member.identity] = member
        self._empty_since = None
        self._ever_joined = True
        return member, evicted

    def remove(
        self, member: Member, reason: DisconnectReason, *, now: float | None = None
    ) -> ParticipantInfo | None:
        """Take ``member`` out (if it is still the current holder of its identity).

        Returns:
            Its final DISCONNECTED info to broadcast, or ``None`` if it had already been replaced/removed.
        """
        if self._members.get(member.identity) is not member:
            return None
        del self._members[member.identity]
        self._forget_wishes(member.tracks)
        member.state = ParticipantState.DISCONNECTED
        member.disconnect_reason = reason
        if not self._members:
            self._empty_since = time.monotonic() if now is None else now
        return member.bump()

    def activate(self, member: Member) -> ParticipantInfo | None:
        """JOINED → ACTIVE once the member's primary connection is up; ``None`` if already active/gone."""
        if member.state is not ParticipantState.JOINED or self._members.get(member.identity) is not member:
            return None
        member.state = ParticipantState.ACTIVE
        member.was_active = True
        return member.bump()

    # --- UpdateParticipantMetadata -----------------------------------------------------------------

    def update_metadata(
        self,
        member: Member,
        *,
        name: str = "",
        metadata: str = "",
        attributes: Mapping[str, str] | None = None,
        by_admin: bool = False,
    ) -> MetadataChange:
        """Apply ``UpdateParticipantMetadata``: needs ``canUpdateOwnMetadata`` unless ``by_admin``
        (RoomService ``UpdateParticipant``).

        Non-empty ``name``/``metadata`` replace the old values; ``attributes`` merge, and an empty value
        deletes its key (livekit/livekit ``pkg/rtc/participant.go``).
        """
        if not by_admin and not member.permission.can_update_metadata:
            return MetadataChange(
                RequestResponseReason.NOT_ALLOWED, "does not have permission to update own metadata"
            )
        if name:
            member.name = name
        if metadata:
            member.metadata = metadata
        for key, value in (attributes or {}).items():
            if value:
                member.attributes[key] = value
            else:
                member.attributes.pop(key, None)
        return MetadataChange(RequestResponseReason.OK, info=member.bump())

    @staticmethod
    def set_permission(member: Member, permission: ParticipantPermission) -> ParticipantInfo | None:
        """RoomService ``UpdateParticipant.permission``: replace the member's permission; ``None`` if the
        same. Which tracks must go and which subscriptions change is the session's business."""
        if member.permission == permission:
            return None
        member.permission = permission
        return member.bump()

    @staticmethod
    def refused_tracks(member: Member) -> list[str]:
        """The sids of ``member``'s tracks its permission no longer allows (``canPublish``,
        ``canPublishSources``): livekit-server unpublishes them when the permission changes."""
        permission = member.permission
        return [
            sid
            for sid, track in member.tracks.items()
            if not permission.can_publish
            or (permission.can_publish_sources and track.source not in permission.can_publish_sources)
        ]

    # --- tracks (issue 5 builds media forwarding on this registry) -------------------------------

    def publish_track(self, member: Member, track: TrackInfo) -> ParticipantInfo:
        """Record a published track (``TR_`` sid) and return the member's new info."""
        member.tracks[track.sid] = track
        return member.bump()

    def set_track_muted(self, member: Member, track_sid: str, muted: bool) -> ParticipantInfo | None:
        """``MuteTrackRequest``: flip ``TrackInfo.muted``; ``None`` for an unknown track or no change."""
        track = member.tracks.get(track_sid)
        if track is None or track.muted == muted:
            return None
        member.tracks[track_sid] = replace(track, muted=muted)
        return member.bump()

    def unpublish_track(self, member: Member, track_sid: str) -> ParticipantInfo | None:
        """Forget a track (and every member's wish about it); ``None`` if unknown."""
        if member.tracks.pop(track_sid, None) is None:
            return None
        self._forget_wishes((track_sid,))
        return member.bump()

    # --- subscriptions (UpdateSubscription, SubscriptionPermission) -----------------------------------

    def track_owner(self, track_sid: str) -> Member | None:
        """The member publishing ``track_sid``, if any."""
        return next((m for m in self._members.values() if track_sid in m.tracks), None)

    def set_subscribed(self, subscriber: Member, track_sids: Iterable[str], subscribe: bool) -> list[str]:
        """``UpdateSubscription``: record the wish for each published track; returns the sids nobody
        publishes, which are not recorded (a client can only know a sid from an update that published it,
        so a wish for an unknown one is a stale or made-up sid; keeping them let one request of 80,000 sids
        grow the room by tens of MB). Wishes are forgotten when their track is unpublished."""
        published = {sid for member in self._members.values() for sid in member.tracks}
        unknown = []
        for sid in track_sids:
            if sid in published:
                subscriber.wishes[sid] = subscribe
            else:
                unknown.append(sid)
        return unknown

    def _forget_wishes(self, track_sids: Iterable[str]) -> None:
        sids = list(track_sids)
        for member in self._members.values():
            for sid in sids:
                member.wishes.pop(sid, None)

    @staticmethod
    def set_permissions(
        publisher: Member, all_participants: bool, track_permissions: tuple[TrackPermission, ...]
    ) -> None:
        """``SubscriptionPermission``: who may subscribe to ``publisher``'s tracks."""
        publisher.allow_all = all_participants
        publisher.track_permissions = track_permissions

    @staticmethod
    def allowed(publisher: Member, subscriber: Member, track_sid: str) -> bool:
        """Whether ``publisher``'s permissions let ``subscriber`` receive ``track_sid``."""
        if publisher.allow_all:
            return True
        for rule in publisher.track_permissions:
            if rule.participant_sid == subscriber.sid or (
                rule.participant_identity and rule.participant_identity == subscriber.identity
            ):
                return rule.all_tracks or track_sid in rule.track_sids
        return False

    @staticmethod
    def wants(subscriber: Member, track_sid: str) -> bool:
        """Explicit ``UpdateSubscription`` wish, else the join's ``auto_subscribe``."""
        return subscriber.wishes.get(track_sid, subscriber.auto_subscribe)

    def subscriptions(
        self, subscriber: Member
    ) -> tuple[list[tuple[Member, TrackInfo]], list[tuple[Member, str]]]:
        """What ``subscriber`` should receive, and what it wants but is refused.

        Returns:
            ``(granted, refused)``: (publisher, track) pairs to forward (nothing without ``canSubscribe``),
            and (publisher, track sid) pairs the publisher's ``SubscriptionPermission`` refuses.
        """
        granted: list[tuple[Member, TrackInfo]] = []
        refused: list[tuple[Member, str]] = []
        if not subscriber.permission.can_subscribe:
            return granted, refused
        for publisher in self._members.values():
            if publisher is subscriber:
                continue
            for track in publisher.tracks.values():
                if not self.wants(subscriber, track.sid):
                    continue
                if self.allowed(publisher, subscriber, track.sid):
                    granted.append((publisher, track))
                else:
                    refused.append((publisher, track.sid))
        return granted, refused

    # --- data routing ------------------------------------------------------------------------------

    def route(self, sender: Member, packet: DataPacket, *, reliable: bool) -> Routed | Dropped:
        """Decide what happens to a packet ``sender`` sent on ``_reliable`` (or ``_lossy``).

        The channel label decides reliability, never ``DataPacket.kind`` (the Rust SDK sets it inverted).
        """
        if not sender.permission.can_publish_data:
            return Dropped("sender lacks canPublishData")
        value = packet.value
        if isinstance(value, Transcription) and not sender.is_agent:
            return Dropped("transcription from a non-agent")
        if isinstance(value, Unhandled) and value.field == "metrics":
            return Dropped("metrics packets are not forwarded")
        if reliable and packet.sequence > 0:
            if packet.sequence <= sender.last_sequence:
                return Dropped(f"reliable sequence {packet.sequence} already seen")
            sender.last_sequence = packet.sequence
        stamped = self._stamp(sender, packet)
        wanted = set(stamped.destination_identities)
        recipients = tuple(
            m.identity
            for m in self._members.values()
            if m is not sender and (not wanted or m.identity in wanted)
        )
        return Routed(stamped, recipients)

    def route_from_server(self, packet: DataPacket, destination_sids: tuple[str, ...] = ()) -> Routed:
        """RoomService ``SendData``: a packet from no participant (sender fields stay empty), to the named
        identities and sids, or to everyone when none is named (livekit-server ``Room.SendDataPacket``)."""
        identities = set(packet.destination_identities)
        sids = set(destination_sids)
        recipients = tuple(
            m.identity
            for m in self._members.values()
            if (not identities and not sids) or m.identity in identities or m.sid in sids
        )
        return Routed(replace(packet, participant_identity="", participant_sid=""), recipients)

    @staticmethod
    def _stamp(sender: Member, packet: DataPacket) -> DataPacket:
        """Overwrite the sender fields (data-e2ee-formats.md §1.5) and mirror the legacy user fields."""
        identity = "" if sender.hidden else sender.identity
        if sender.is_agent and packet.participant_identity and _may_speak_for_others(packet):
            identity = packet.participant_identity  # an agent publishing on behalf of a user
        destinations = packet.destination_identities
        value = packet.value
        if isinstance(value, UserPacket):
            destinations = destinations or value.legacy_destination_identities
            value = replace(
                value,
                legacy_participant_sid=sender.sid,
                legacy_participant_identity=identity,
                legacy_destination_identities=destinations,
            )
        return replace(
            packet,
            value=value,
            participant_identity=identity,
            participant_sid=sender.sid,
            destination_identities=destinations,
        )


def _may_speak_for_others(packet: DataPacket) -> bool:
    value = packet.value
    if isinstance(value, ChatMessage):
        return True
    return isinstance(value, StreamHeader) and isinstance(value.content_header, TextHeader)
