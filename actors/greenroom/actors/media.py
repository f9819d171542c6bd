"""The room's media path: which aiortc tracks belong to which publication, and the streams reading them.

DESIGN.md §3: **media frames never go through mailboxes.** Actors decide (publish, mute, subscribe,
unsubscribe); the frames themselves stay here, on the runtime loop, between aiortc and the facade's
streams. One :class:`MediaRouter` per room connection holds:

* **local publications** — for each published source a :class:`~greenroom.runtime.media_path.GatedTrack`
  (what the publisher PC's sender owns, keyed by its id, which is the ``AddTrackRequest.cid`` and the msid
  track id of its m-line); the local TrackActor mutes it;
* **remote subscriptions** — for each subscribed publication the received aiortc track, read by one
  :class:`_Fanout` task from the moment it arrives (so an unread track never piles up decoded frames),
  copied to one :class:`_Tap` per ``AudioStream``/``VideoStream``. The remote TrackActor detaches it on
  unsubscribe and unpublish, and the RoomActor closes everything on disconnect: every stream then ends
  (aiortc itself does not end a receiver's track when the server makes its m-line inactive).

The RoomActor and its TrackActors call it directly (they run on the same loop); the facade reaches it
with ``_bridge.call``. Nothing here is thread-safe, by design.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.frame import Frame
from av.packet import Packet

from greenroom.codecs.e2ee import EncryptionState
from greenroom.runtime.e2ee_media import EncryptingEncoder, ReceiveCryptor, SendCryptor
from greenroom.runtime.media import DropOldestQueue, MediaError, PcmSink, VideoSink
from greenroom.runtime.media_path import GatedTrack

__all__ = ["MediaRouter", "NotSubscribedError"]

_log = logging.getLogger("greenroom.actors.media")

#: Frames a stream's tap holds before dropping the oldest (its sink reads them at once).
TAP_CAPACITY = 50


class NotSubscribedError(MediaError):
    """The publication has no media here (not subscribed, or already unsubscribed)."""


class _Tap(MediaStreamTrack):
    """One consumer's copy of a remote track (what a ``PcmSink``/``VideoSink`` reads)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.queue: DropOldestQueue[Frame | Packet[Any]] = DropOldestQueue(TAP_CAPACITY)

    async def recv(self) -> Frame | Packet[Any]:
        try:
            return await self.queue.get()
        except StopAsyncIteration:
            raise MediaStreamError from None

    def stop(self) -> None:
        super().stop()
        self.queue.end()


class _Fanout:
    """Reads one received aiortc track continuously and copies each frame to every tap."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.taps: set[_Tap] = set()
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            while True:
                try:
                    frame = await self.track.recv()
                except MediaStreamError:
                    break
                for tap in tuple(self.taps):
                    tap.queue.put_nowait(frame)
        finally:
            for tap in tuple(self.taps):
                tap.queue.end()

    def tap(self) -> _Tap:
        tap = _Tap(self.track.kind)
        if self.task.done():
            tap.queue.end()
        self.taps.add(tap)
        return tap

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        for tap in tuple(self.taps):
            tap.stop()


@dataclass(slots=True)
class _Remote:
    mid: str
    fanout: _Fanout
    sinks: list[PcmSink | VideoSink] = field(default_factory=list)


class MediaRouter:
    """The media path of one room connection (see the module docstring). Runtime loop only."""

    def __init__(self) -> None:
        self._local: dict[str, GatedTrack] = {}
        self._local_sids: dict[str, str] = {}
        self._remote: dict[str, _Remote] = {}
        self._closed = False
        # End-to-end encryption: the cryptors the TrackActors install keys into (they outlive the actors).
        self._send_cryptors: dict[str, SendCryptor] = {}  # cid ->
        self._receive_cryptors: dict[str, ReceiveCryptor] = {}  # track sid ->
        self.encrypt_local = False
        """Whether local tracks are encrypted (the RoomActor sets it from ``RoomOptions.encryption``)."""
        self.cryptor_reports: Callable[[str, EncryptionState], None] = lambda sid, state: None
        """Where a cryptor's state changes go (the RoomActor sets it: a ``tell``), by track sid."""

    # -- local publications ---------------------------------------------------------------------------

    def add_local(self, source: MediaStreamTrack, *, encrypt: bool | None = None) -> str:
        """Register a gate in front of ``source``; returns its id (the publication's ``cid``).

        ``encrypt``: the gate encodes and encrypts (end-to-end encryption; its cryptor has no key until
        the publication's TrackActor installs one); default: :attr:`encrypt_local`.

        Raises:
            MediaError: the room's media path is closed.
        """
        if self._closed:
            raise MediaError("the room is disconnected")
        gate = GatedTrack(source)
        self._local[gate.id] = gate
        if self.encrypt_local if encrypt is None else encrypt:
            self._encrypt(gate, SendCryptor(lambda state: self._report_local(str(gate.id), state)))
        return str(gate.id)

    def _encrypt(self, gate: GatedTrack, cryptor: SendCryptor) -> None:
        gate.transform = EncryptingEncoder(gate.kind, cryptor)
        self._send_cryptors[str(gate.id)] = cryptor

    def _report_local(self, cid: str, state: EncryptionState) -> None:
        sid = self.sid_of(cid)
        if sid is not None:
            self.cryptor_reports(sid, state)

    def send_cryptor(self, sid: str) -> SendCryptor | None:
        """The sending cryptor of the local publication ``sid`` (``None``: not encrypted)."""
        return self._send_cryptors.get(self._local_sids.get(sid, ""))

    def receive_cryptor(self, track_sid: str) -> ReceiveCryptor | None:
        """The receiving cryptor of the remote publication ``track_sid`` (``None``: not encrypted)."""
        return self._receive_cryptors.get(track_sid)

    def cryptors(self) -> list[tuple[str, bool, int, bool]]:
        """``(track sid, local, key index, enabled)`` of every cryptor (``E2EEManager.frame_cryptors``)."""
        found = [
            (sid, True, c.encryptor.key_index, c.encryptor.enabled)
            for sid, cid in self._local_sids.items()
            if (c := self._send_cryptors.get(cid)) is not None
        ]
        found += [(sid, False, 0, c.decryptor.enabled) for sid, c in self._receive_cryptors.items()]
        return found

    def add_receive_cryptor(self, track_sid: str, sif_trailer: bytes = b"") -> ReceiveCryptor:
        """A receiving cryptor for ``track_sid`` (the same one again if it has one)."""
        cryptor = self._receive_cryptors.get(track_sid)
        if cryptor is None:
            cryptor = ReceiveCryptor(lambda state: self.cryptor_reports(track_sid, state), sif_trailer)
            self._receive_cryptors[track_sid] = cryptor
        return cryptor

    def local(self, cid: str) -> GatedTrack | None:
        """The gate registered as ``cid``."""
        return self._local.get(cid)

    def bind_local(self, cid: str, sid: str) -> None:
        """The server named the publication ``cid`` ``sid``."""
        self._local_sids[sid] = cid

    def sid_of(self, cid: str) -> str | None:
        """The sid the server gave the local publication ``cid``."""
        return next((sid for sid, c in self._local_sids.items() if c == cid), None)

    def cid_of(self, sid: str) -> str | None:
        """The ``cid`` of the local publication ``sid``."""
        return self._local_sids.get(sid)

    def set_local_muted(self, sid: str, muted: bool) -> None:
        """Mute (silence / black) or unmute the local publication ``sid``; unknown sids are ignored."""
        gate = self._local.get(self._local_sids.get(sid, ""))
        if gate is not None:
            gate.muted = muted

    def regate(self, cid: str) -> str | None:
        """A full reconnect: a fresh gate over the source of ``cid`` (the old sender stopped the old gate).

        The mute flag carries over; the old gate and its sid are forgotten. Returns the new ``cid``
        (``None``: ``cid`` is unknown).
        """
        old = self._local.get(cid)
        if old is None or self._closed:
            return None
        cryptor = self._send_cryptors.get(cid)
        self.drop_local(cid)
        gate = GatedTrack(old.source)
        gate.muted = old.muted
        self._local[gate.id] = gate
        if cryptor is not None:  # same keys and state; the encoder is new (a new sender)
            self._encrypt(gate, cryptor)
            cryptor.report = lambda state: self._report_local(str(gate.id), state)
        return str(gate.id)

    def drop_local(self, cid: str) -> None:
        """Forget the gate ``cid`` and stop it (its source keeps running)."""
        gate = self._local.pop(cid, None)
        self._send_cryptors.pop(cid, None)
        for sid in [s for s, c in self._local_sids.items() if c == cid]:
            del self._local_sids[sid]
        if gate is not None:
            gate.stop()

    # -- remote subscriptions -------------------------------------------------------------------------

    async def attach_remote(self, track_sid: str, mid: str, track: MediaStreamTrack) -> None:
        """The subscriber PC received ``track_sid`` on ``mid``: start reading it."""
        if self._closed:
            return
        old = self._remote.pop(track_sid, None)
        if old is not None:
            await self._end(old)
        self._remote[track_sid] = _Remote(mid, _Fanout(track))

    def subscribed_mids(self) -> dict[str, str]:
        """``mid → track_sid`` of the attached remote tracks."""
        return {remote.mid: sid for sid, remote in self._remote.items()}

    def attached(self) -> tuple[str, ...]:
        """The ``track_sid`` of every attached remote track."""
        return tuple(self._remote)

    def is_attached(self, track_sid: str) -> bool:
        """Whether ``track_sid`` has media here."""
        return track_sid in self._remote

    def open_audio(
        self,
        track_sid: str,
        *,
        sample_rate: int,
        num_channels: int,
        frame_size_ms: int | None,
        fill_silence: bool = False,
    ) -> PcmSink:
        """A new PCM reader of ``track_sid`` (unbounded: the facade's stream applies its capacity).

        ``fill_silence``: yield real-time silence while no audio arrives (``PcmSink``; ``AudioStream`` does).

        Raises:
            NotSubscribedError: no media for ``track_sid``.
        """
        remote = self._remote_of(track_sid)
        sink = PcmSink(
            remote.fanout.tap(),
            sample_rate=sample_rate,
            num_channels=num_channels,
            frame_size_ms=frame_size_ms,
            fill_silence=fill_silence,
        )
        remote.sinks.append(sink)
        return sink

    def open_video(self, track_sid: str, *, format: str) -> VideoSink:
        """A new raw-video reader of ``track_sid`` in ``format`` (a ``VIDEO_FORMATS`` name).

        Raises:
            NotSubscribedError: no media for ``track_sid``.
        """
        remote = self._remote_of(track_sid)
        sink = VideoSink(remote.fanout.tap(), format=format)
        remote.sinks.append(sink)
        return sink

    async def close_sink(self, track_sid: str, sink: PcmSink | VideoSink) -> None:
        """Stop one reader (``AudioStream.aclose``)."""
        remote = self._remote.get(track_sid)
        if remote is not None and sink in remote.sinks:
            remote.sinks.remove(sink)
        await sink.aclose()

    async def detach_remote(self, track_sid: str) -> bool:
        """Unsubscribed or unpublished: stop reading ``track_sid`` and end its streams.

        Returns:
            Whether it was attached.
        """
        remote = self._remote.pop(track_sid, None)
        self._receive_cryptors.pop(track_sid, None)
        if remote is None:
            return False
        await self._end(remote)
        return True

    def _remote_of(self, track_sid: str) -> _Remote:
        remote = self._remote.get(track_sid)
        if remote is None:
            raise NotSubscribedError(f"track {track_sid} is not subscribed")
        return remote

    async def _end(self, remote: _Remote) -> None:
        await remote.fanout.close()
        for sink in remote.sinks:
            with contextlib.suppress(Exception):
                await sink.aclose()

    # -- teardown -------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Disconnected: end every stream and stop every gate (the sources keep running)."""
        self._closed = True
        remotes, self._remote = list(self._remote.values()), {}
        for remote in remotes:
            await self._end(remote)
        for cid in list(self._local):
            self.drop_local(cid)
