"""The RoomActor's address book of participants: stable keys, lookups, and the snapshot a restart comes from.

Pure and synchronous (no actors, no loop), so its rules are unit-tested on their own. A ParticipantActor
owns its participant's state and is the one source of events about it; the RoomActor keeps only what a
*supervisor* needs — for each child, its key, the identity and sid it answers to, the latest
``ParticipantInfo`` it was handed (the snapshot that restores it after a crash, without re-announcing
anything), and which publication belongs to whom (to route media and subscription answers). Every lookup
is a dictionary read; nothing scans participants' track lists.

Keys: ``"local"`` for the local participant; a remote participant's key is its *sid*, so a participant who
rejoins under the same identity (new sid) gets a new child while the old one is still saying goodbye.
"""

from __future__ import annotations

from dataclasses import dataclass

from greenroom.codecs.models import ParticipantInfo

__all__ = ["LOCAL", "Joined", "Roster", "Seen", "Updated"]

#: The local participant's key.
LOCAL = "local"


@dataclass(frozen=True, slots=True)
class Joined:
    """A remote participant the roster did not know: start a child under ``key`` (announced)."""

    key: str
    replaced: ParticipantInfo | None
    """The same identity's previous session, which left (it gets ``participant_disconnected`` first)."""


@dataclass(frozen=True, slots=True)
class Updated:
    """A newer ``ParticipantInfo`` for the child ``key``."""

    key: str


#: What :meth:`Roster.seen` found (``None``: an older version, ignored).
Seen = Joined | Updated | None


class Roster:
    """Keys, lookups and restore snapshots of one room's participants (see the module docstring)."""

    def __init__(self) -> None:
        self._infos: dict[str, ParticipantInfo] = {}
        self._by_identity: dict[str, str] = {}
        self._owner: dict[str, str] = {}  # track sid -> key

    # -- lookups ----------------------------------------------------------------------------------------

    @property
    def local(self) -> ParticipantInfo | None:
        """The local participant's latest info."""
        return self._infos.get(LOCAL)

    def info(self, key: str) -> ParticipantInfo | None:
        """The snapshot that restores the child ``key``."""
        return self._infos.get(key)

    def key_of(self, identity: str) -> str | None:
        """The key of the remote participant ``identity`` (``None``: not in the room)."""
        return self._by_identity.get(identity)

    def key_of_sid(self, sid: str) -> str | None:
        """The key of the remote participant whose sid is ``sid``."""
        return sid if sid in self._infos and sid != LOCAL else None

    def owner_of(self, track_sid: str) -> str | None:
        """The key of the remote participant publishing ``track_sid``."""
        return self._owner.get(track_sid)

    def remotes(self) -> tuple[ParticipantInfo, ...]:
        """Every remote participant's latest info, in arrival order."""
        return tuple(info for key, info in self._infos.items() if key != LOCAL)

    def keys(self) -> tuple[str, ...]:
        """Every key, the local one first if joined."""
        return tuple(self._infos)

    def identity_of(self, key: str) -> str:
        """The identity of the child ``key`` (``""``: unknown)."""
        info = self._infos.get(key)
        return "" if info is None else info.identity

    # -- changes ----------------------------------------------------------------------------------------

    def set_local(self, info: ParticipantInfo) -> None:
        """The local participant's info (join, rejoin or an update)."""
        self._infos[LOCAL] = info

    def is_local(self, info: ParticipantInfo) -> bool:
        """Whether ``info`` describes the local participant (same sid or identity)."""
        local = self.local
        return local is not None and (info.sid == local.sid or info.identity == local.identity)

    def seen(self, info: ParticipantInfo, *, any_version: bool = False) -> Seen:
        """A remote participant's info arrived (join response, ``update``); returns what to do.

        ``any_version``: apply it even if its version is older (a restarted server counts from scratch).
        """
        key = self._by_identity.get(info.identity)
        replaced = None
        if key is not None and key != info.sid:  # same identity, new session: the old one left
            replaced = self.remove(key)
            key = None
        if key is None:
            self._put(info.sid, info)
            return Joined(info.sid, replaced)
        known = self._infos[key]
        if not any_version and info.version < known.version:
            return None
        self._put(key, info)
        return Updated(key)

    def remove(self, key: str) -> ParticipantInfo | None:
        """Forget the remote participant ``key``; returns its last info."""
        info = self._infos.pop(key, None)
        if info is None:
            return None
        if self._by_identity.get(info.identity) == key:
            del self._by_identity[info.identity]
        for sid in [s for s, owner in self._owner.items() if owner == key]:
            del self._owner[sid]
        return info

    def clear(self) -> None:
        """Forget everyone (the room closed)."""
        self._infos.clear()
        self._by_identity.clear()
        self._owner.clear()

    def _put(self, key: str, info: ParticipantInfo) -> None:
        old = self._infos.get(key)
        self._infos[key] = info
        self._by_identity[info.identity] = key
        if old is not None:
            for track in old.tracks:
                self._owner.pop(track.sid, None)
        for track in info.tracks:
            self._owner[track.sid] = key
