"""Twirp ``livekit.RoomService``: livekit-server's room API, answered by the dev server's owner of each state.

Each method decodes its request at this edge, checks the caller's grants, and calls the owner: the
:class:`RoomControl` (the ``DevServer``, which owns the rooms) for room-level calls, the participant's
``ParticipantSession`` for calls about one participant. This module never touches a ``Room`` or ``Member``
itself; the sessions apply RoomService changes with the same code that applies the client's own signal
requests (``mute``, ``update_metadata``, ``subscription``), so a change made through the API is broadcast,
versioned and forwarded exactly like one made by the client.

Rules (livekit/livekit ``pkg/service/roomservice.go``, ``auth.go``, ``roommanager.go``, ``errors.go``):

* ``CreateRoom`` and ``DeleteRoom`` need ``roomCreate``; ``ListRooms`` needs ``roomList``; every other call
  needs ``roomAdmin`` for the room it names (the token's ``video.room``). Anything less is
  ``unauthenticated`` "permissions denied".
* limits: room name ≤ 256 characters, metadata ≤ 512 KiB, participant name ≤ 256 characters, attributes
  ≤ 64 KiB (keys and values) — ``invalid_argument``; a ``SendData`` nonce is empty or 16 bytes.
* unknown room → ``not_found`` "requested room does not exist"; unknown participant → ``not_found``
  "participant does not exist"; remote unmute → ``failed_precondition`` "remote unmute not enabled"
  unless ``ServerConfig.enable_remote_unmute``.
* ``DeleteRoom`` ends every session with ``LeaveRequest{ROOM_DELETED}``; ``RemoveParticipant`` with
  ``PARTICIPANT_REMOVED``; ``MutePublishedTrack`` sends the client ``mute`` (so its SDK mutes the local
  track) and broadcasts the muted ``TrackInfo``.

Deliberate difference: ``MutePublishedTrack`` for a track the participant does not publish answers
``not_found`` "track is not found" (livekit-server answers 200 with an empty ``track``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final, Protocol

from livekit.protocol import models as pm
from livekit.protocol import room as pr

from greenroom.codecs.errors import GreenroomError
from greenroom.codecs.models import DisconnectReason, ParticipantInfo, ParticipantPermission, RoomInfo
from greenroom.codecs.packets import DataPacket, Kind, UserPacket
from greenroom.codecs.tokens import Claims
from greenroom.devserver.config import ServerConfig
from greenroom.devserver.participant import ParticipantSession
from greenroom.devserver.room import (
    AgentSpec,
    ParticipantNotFoundError,
    Room,
    RoomNotFoundError,
    RoomSettings,
)
from greenroom.devserver.twirp import Method, Service, TwirpError

__all__ = [
    "MAX_ATTRIBUTES_SIZE",
    "MAX_METADATA_SIZE",
    "MAX_NAME_LENGTH",
    "RoomControl",
    "ensure_admin",
    "room_service",
]

MAX_NAME_LENGTH: Final = 256
MAX_METADATA_SIZE: Final = 512 * 1024
MAX_ATTRIBUTES_SIZE: Final = 64 * 1024


class RoomControl(Protocol):
    """What RoomService needs from the owner of the rooms (the ``DevServer``), all called on its loop."""

    config: ServerConfig
    rooms: dict[str, Room]

    def open_room(self, name: str, settings: RoomSettings | None = None) -> Room:
        """Create ``name`` or apply ``settings`` to it."""

    def close_room(self, name: str, reason: DisconnectReason = ...) -> bool:
        """End every session of ``name`` with ``reason`` and forget it."""

    def room_named(self, name: str) -> Room:
        """The live room; raises ``RoomNotFoundError``."""

    def session_named(self, room: str, identity: str) -> ParticipantSession:
        """The live session; raises ``RoomNotFoundError``/``ParticipantNotFoundError``."""

    def set_room_metadata(self, name: str, metadata: str) -> RoomInfo:
        """Replace the room's metadata and tell every member."""

    def send_data(self, name: str, packet: DataPacket, *, destination_sids: tuple[str, ...] = ()) -> int:
        """Deliver a server packet to the room; raises ``PayloadTooLargeError`` above ``max_data_size``."""


_DENIED: Final = "permissions denied"


def _denied() -> TwirpError:
    return TwirpError("unauthenticated", _DENIED)


def ensure_admin(claims: Claims | None, room: str) -> None:
    """``roomAdmin`` for ``room`` (livekit-server ``EnsureAdminPermission``)."""
    video = None if claims is None else claims.video
    if video is None or not video.room_admin or video.room != room:
        raise _denied()


def _ensure_create(claims: Claims | None) -> None:
    if claims is None or claims.video is None or not claims.video.room_create:
        raise _denied()


def _ensure_list(claims: Claims | None) -> None:
    if claims is None or claims.video is None or not claims.video.room_list:
        raise _denied()


def _invalid(argument: str, limit: int) -> TwirpError:
    # twirp.InvalidArgumentError(argument, validationMsg): msg "<argument> <validationMsg>", meta argument.
    return TwirpError("invalid_argument", f"{argument} {limit}", {"argument": argument})


def _check_metadata(metadata: str) -> None:
    if len(metadata.encode()) > MAX_METADATA_SIZE:
        raise _invalid("metadata size exceeds limits", MAX_METADATA_SIZE)


def _check_attributes(attributes: Mapping[str, str]) -> None:
    if sum(len(k.encode()) + len(v.encode()) for k, v in attributes.items()) > MAX_ATTRIBUTES_SIZE:
        raise _invalid("attribute size exceeds limits", MAX_ATTRIBUTES_SIZE)


class _RoomService:
    """The methods; each is ``(claims, request) -> response`` and raises ``TwirpError``."""

    def __init__(self, control: RoomControl) -> None:
        self._control = control

    def _room(self, name: str) -> Room:
        try:
            return self._control.room_named(name)
        except RoomNotFoundError as exc:
            raise TwirpError("not_found", str(exc)) from exc

    def _session(self, room: str, identity: str) -> ParticipantSession:
        try:
            return self._control.session_named(room, identity)
        except (RoomNotFoundError, ParticipantNotFoundError) as exc:
            raise TwirpError("not_found", str(exc)) from exc

    # --- rooms -------------------------------------------------------------------------------------

    def create_room(self, claims: Claims | None, req: pr.CreateRoomRequest) -> pm.Room:
        _ensure_create(claims)
        if not req.name:
            raise TwirpError("invalid_argument", "no room name")
        if len(req.name) > MAX_NAME_LENGTH:
            raise TwirpError(
                "invalid_argument", f"room name length exceeds limits: max length {MAX_NAME_LENGTH}"
            )
        _check_metadata(req.metadata)
        for agent in req.agents:
            _check_metadata(agent.metadata)
            _check_attributes(agent.attributes)
        agents = tuple(AgentSpec(a.agent_name, a.metadata) for a in req.agents)
        settings = RoomSettings(
            empty_timeout=req.empty_timeout,
            departure_timeout=req.departure_timeout,
            max_participants=req.max_participants,
            metadata=req.metadata,
            agents=agents or None,
        )
        return self._control.open_room(req.name, settings).info().to_proto()

    def list_rooms(self, claims: Claims | None, req: pr.ListRoomsRequest) -> pr.ListRoomsResponse:
        _ensure_list(claims)
        names = set(req.names)
        rooms = [r.info().to_proto() for r in self._control.rooms.values() if not names or r.name in names]
        return pr.ListRoomsResponse(rooms=rooms)

    def delete_room(self, claims: Claims | None, req: pr.DeleteRoomRequest) -> pr.DeleteRoomResponse:
        _ensure_create(claims)
        if not self._control.close_room(req.room, DisconnectReason.ROOM_DELETED):
            raise TwirpError("not_found", "requested room does not exist")
        return pr.DeleteRoomResponse()

    def update_room_metadata(self, claims: Claims | None, req: pr.UpdateRoomMetadataRequest) -> pm.Room:
        _check_metadata(req.metadata)
        ensure_admin(claims, req.room)
        try:
            return self._control.set_room_metadata(req.room, req.metadata).to_proto()
        except RoomNotFoundError as exc:
            raise TwirpError("not_found", str(exc)) from exc

    def send_data(self, claims: Claims | None, req: pr.SendDataRequest) -> pr.SendDataResponse:
        ensure_admin(claims, req.room)
        if req.nonce and len(req.nonce) != 16:
            raise TwirpError(
                "invalid_argument", f"nonce should be 16-bytes or not present, got: {len(req.nonce)} bytes"
            )
        self._room(req.room)
        identities = tuple(req.destination_identities)
        user = UserPacket(
            payload=req.data,
            topic=req.topic if req.HasField("topic") else None,
            nonce=req.nonce,
            legacy_destination_sids=tuple(req.destination_sids),
            legacy_destination_identities=identities,
        )
        kind = Kind.LOSSY if req.kind == pm.DataPacket.LOSSY else Kind.RELIABLE
        packet = DataPacket(user, destination_identities=identities, kind=kind)
        try:
            self._control.send_data(req.room, packet, destination_sids=tuple(req.destination_sids))
        except GreenroomError as exc:  # PayloadTooLargeError: above max_data_size
            raise TwirpError("invalid_argument", f"data packet refused: {exc}") from exc
        return pr.SendDataResponse()

    # --- participants ------------------------------------------------------------------------------

    def list_participants(
        self, claims: Claims | None, req: pr.ListParticipantsRequest
    ) -> pr.ListParticipantsResponse:
        ensure_admin(claims, req.room)
        room = self._room(req.room)
        return pr.ListParticipantsResponse(participants=[m.info().to_proto() for m in room])

    def get_participant(self, claims: Claims | None, req: pr.RoomParticipantIdentity) -> pm.ParticipantInfo:
        ensure_admin(claims, req.room)
        return self._session(req.room, req.identity).member.info().to_proto()

    def remove_participant(
        self, claims: Claims | None, req: pr.RoomParticipantIdentity
    ) -> pr.RemoveParticipantResponse:
        ensure_admin(claims, req.room)
        self._session(req.room, req.identity).end(DisconnectReason.PARTICIPANT_REMOVED)
        return pr.RemoveParticipantResponse()

    def mute_published_track(
        self, claims: Claims | None, req: pr.MuteRoomTrackRequest
    ) -> pr.MuteRoomTrackResponse:
        ensure_admin(claims, req.room)
        session = self._session(req.room, req.identity)
        if not req.muted and not self._control.config.enable_remote_unmute:
            raise TwirpError("failed_precondition", "remote unmute not enabled")
        track = session.mute_by_admin(req.track_sid, req.muted)
        if track is None:
            raise TwirpError("not_found", "track is not found")
        return pr.MuteRoomTrackResponse(track=track.to_proto())

    def update_participant(
        self, claims: Claims | None, req: pr.UpdateParticipantRequest
    ) -> pm.ParticipantInfo:
        if len(req.name) > MAX_NAME_LENGTH:
            raise _invalid("name length exceeds limits", MAX_NAME_LENGTH)
        _check_metadata(req.metadata)
        _check_attributes(req.attributes)
        ensure_admin(claims, req.room)
        session = self._session(req.room, req.identity)
        permission = ParticipantPermission.from_proto(req.permission) if req.HasField("permission") else None
        info: ParticipantInfo = session.update_by_admin(
            name=req.name, metadata=req.metadata, attributes=dict(req.attributes), permission=permission
        )
        return info.to_proto()

    def update_subscriptions(
        self, claims: Claims | None, req: pr.UpdateSubscriptionsRequest
    ) -> pr.UpdateSubscriptionsResponse:
        ensure_admin(claims, req.room)
        session = self._session(req.room, req.identity)
        sids: Iterable[str] = [*req.track_sids, *(s for pt in req.participant_tracks for s in pt.track_sids)]
        session.subscribe(sids, req.subscribe)
        return pr.UpdateSubscriptionsResponse()


def _unimplemented(claims: Claims | None, req: object) -> pr.ForwardParticipantResponse:
    raise TwirpError("unimplemented", "not implemented by the greenroom dev server")


def room_service(control: RoomControl) -> Service:
    """The ``livekit.RoomService`` Twirp service answered by ``control``."""
    svc = _RoomService(control)
    return Service(
        "livekit.RoomService",
        {
            # Routes LiveKit has that the dev server does not implement: unimplemented, not bad_route.
            "ForwardParticipant": Method(pr.ForwardParticipantRequest, _unimplemented),
            "MoveParticipant": Method(pr.MoveParticipantRequest, _unimplemented),
            "PerformRpc": Method(pr.PerformRpcRequest, _unimplemented),
            "CreateRoom": Method(pr.CreateRoomRequest, svc.create_room),
            "ListRooms": Method(pr.ListRoomsRequest, svc.list_rooms),
            "DeleteRoom": Method(pr.DeleteRoomRequest, svc.delete_room),
            "ListParticipants": Method(pr.ListParticipantsRequest, svc.list_participants),
            "GetParticipant": Method(pr.RoomParticipantIdentity, svc.get_participant),
            "RemoveParticipant": Method(pr.RoomParticipantIdentity, svc.remove_participant),
            "MutePublishedTrack": Method(pr.MuteRoomTrackRequest, svc.mute_published_track),
            "UpdateParticipant": Method(pr.UpdateParticipantRequest, svc.update_participant),
            "UpdateSubscriptions": Method(pr.UpdateSubscriptionsRequest, svc.update_subscriptions),
            "SendData": Method(pr.SendDataRequest, svc.send_data),
            "UpdateRoomMetadata": Method(pr.UpdateRoomMetadataRequest, svc.update_room_metadata),
        },
    )
