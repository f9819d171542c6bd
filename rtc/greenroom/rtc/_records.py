"""The facade's view state: one plain record behind each view object, and the local participant's changes.

``Participant``, ``TrackPublication`` and ``Track`` objects are read-only views over these records. The
records have exactly one writer, the room's reducer (:class:`greenroom.rtc._view.RoomView`), which applies the
actors' events in order; the views read them, so a property never crosses threads. Two narrow exceptions,
both the user's own commands on the user's loop: a local track's ``mute()``/``unmute()`` sets its record's
mute flag, and a stream started with ``from_participant`` adds a :class:`TrackWaiter`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from greenroom.codecs.models import DisconnectReason, ParticipantInfo, TrackInfo
from greenroom.rtc._enums import ConnectionQuality, track_kind, track_source

if TYPE_CHECKING:
    from greenroom.rtc._port import RoomPort
    from greenroom.rtc.track import Track
    from greenroom.rtc.track_publication import TrackPublication

__all__ = [
    "LocalChange",
    "LocalPublicationRecord",
    "LocalTrackPublished",
    "LocalTrackRecord",
    "LocalTrackUnpublished",
    "ParticipantRecord",
    "PublicationRecord",
    "TrackState",
    "TrackWaiter",
]


class TrackState(Protocol):
    """What a track view reads: its ``TrackInfo`` and the port of the connection that carries it."""

    info: TrackInfo
    port: RoomPort


@dataclass(eq=False)
class LocalTrackRecord:
    """A local track: its info (sid once published), its source's aiortc track, and the port while bound.

    Written by the reducer when the track is published, republished or unpublished, and by the track's own
    ``mute()``/``unmute()`` (the mute flag).
    """

    info: TrackInfo
    source: Any
    port: RoomPort
    published: bool = False


@dataclass(eq=False)
class PublicationRecord:
    """A publication: its info and, while subscribed (remote) or published (local), its track.

    A remote track's view reads this same record (``TrackState``), so a mute seen on the publication is seen
    on its track too. ``view`` is the publication object built over the record.
    """

    info: TrackInfo
    port: RoomPort
    track: Track | None = None
    subscribed: bool = False
    view: TrackPublication = field(init=False)


@dataclass(eq=False, kw_only=True)
class LocalPublicationRecord(PublicationRecord):
    """A local publication: also its track's record and the future ``wait_for_subscription`` waits on."""

    track_record: LocalTrackRecord
    first_subscription: asyncio.Future[None]


@dataclass(frozen=True)
class TrackWaiter:
    """``AudioStream.from_participant``: call ``callback`` with the first subscribed track of a source and
    kind, or with ``None`` when the participant leaves first."""

    source: int
    kind: int
    callback: Callable[[Track | None], None]

    def wants(self, publication: PublicationRecord) -> bool:
        """Whether ``publication`` has the track this waiter waits for."""
        info = publication.info
        return (
            publication.track is not None
            and track_source(info.source) == self.source
            and track_kind(info.type) == self.kind
        )


@dataclass(eq=False)
class ParticipantRecord:
    """A participant: its latest info, its publications by track sid, quality, why it left, stream waiters."""

    info: ParticipantInfo
    publications: dict[str, PublicationRecord] = field(default_factory=dict)
    quality: ConnectionQuality = ConnectionQuality.QUALITY_UNKNOWN
    disconnect_reason: DisconnectReason = DisconnectReason.UNKNOWN_REASON
    waiters: list[TrackWaiter] = field(default_factory=list)


@dataclass(frozen=True)
class LocalTrackPublished:
    """``publish_track`` got the server's ``TrackInfo``: the local participant now publishes ``track``."""

    publisher: ParticipantRecord
    info: TrackInfo
    track: Track
    record: LocalTrackRecord
    port: RoomPort


@dataclass(frozen=True)
class LocalTrackUnpublished:
    """``unpublish_track`` was acknowledged: the local participant no longer publishes ``track_sid``."""

    publisher: ParticipantRecord
    track_sid: str


LocalChange = LocalTrackPublished | LocalTrackUnpublished
"""What the local participant reports to the reducer through its port (not from the actors)."""
