"""Participant views, as in ``livekit.rtc.participant``: ``Participant``, ``LocalParticipant``,
``RemoteParticipant``, and the ``Publish*Error`` classes users import from this module.

A participant is a view over a :class:`~greenroom.rtc._records.ParticipantRecord` (its latest
``ParticipantInfo``, publications, quality) that the room's reducer refreshes from the actors' events on the
user's loop; reading a property never crosses threads. The local participant's methods send requests to the
actor tree through the connection's :class:`~greenroom.rtc._port.RoomPort` and await the reply.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

from greenroom.actors.messages import (
    PublishData,
    PublishDtmf,
    PublishTrack,
    PublishTranscription,
    Reply,
    UnpublishTrack,
    UpdateLocalInfo,
)
from greenroom.codecs import packets
from greenroom.codecs.errors import GreenroomError
from greenroom.codecs.models import (
    DisconnectReason,
    ParticipantPermission,
    TrackInfo,
    TrackType,
    frozen_map,
)
from greenroom.codecs.models import TrackSource as WireTrackSource
from greenroom.rtc._enums import (
    ConnectionQuality,
    ParticipantKind,
    ParticipantState,
    participant_kind,
    participant_state,
)
from greenroom.rtc._records import LocalTrackPublished, LocalTrackUnpublished, ParticipantRecord, TrackWaiter
from greenroom.rtc._rpc import RpcEngine
from greenroom.rtc._streams import StreamSender
from greenroom.rtc.data_stream import (
    ByteStreamInfo,
    ByteStreamWriter,
    StreamError,
    TextStreamInfo,
    TextStreamWriter,
)
from greenroom.rtc.publish_options import TrackPublishOptions
from greenroom.rtc.rpc import RpcCallInfo, RpcHandler, RpcInterceptor
from greenroom.rtc.track import LocalTrack, LocalVideoTrack, local_track_record
from greenroom.rtc.track_publication import LocalTrackPublication, RemoteTrackPublication, TrackPublication
from greenroom.rtc.transcription import TOPIC_TRANSCRIPTION, Transcription, stream_attributes

if TYPE_CHECKING:
    from greenroom.rtc._port import RoomPort

__all__ = [
    "ConnectionQuality",
    "LocalParticipant",
    "Participant",
    "PublishDTMFError",
    "PublishDataError",
    "PublishDataTrackError",
    "PublishTrackError",
    "PublishTranscriptionError",
    "RemoteParticipant",
    "UnpublishTrackError",
]


_DEFAULT_PUBLISH = TrackPublishOptions()
F = TypeVar("F", bound=RpcHandler)


class _PublishError(Exception):
    """Base of the ``Publish*Error`` classes: the text is also in ``.message`` (as in ``livekit.rtc``)."""

    def __init__(self, message: str) -> None:
        """Keep ``message`` (also in ``.message``)."""
        super().__init__(message)
        self.message = message


class PublishTrackError(_PublishError):
    """Publishing a track failed."""


class UnpublishTrackError(_PublishError):
    """Unpublishing a track failed."""


class PublishDataError(_PublishError):
    """``publish_data`` failed (too large, not connected, channel closed …)."""


class PublishDTMFError(_PublishError):
    """``publish_dtmf`` failed."""


class PublishTranscriptionError(_PublishError):
    """``publish_transcription`` failed."""


class PublishDataTrackError(_PublishError):
    """Publishing a data track failed (data tracks are not supported yet)."""


class Participant:
    """What every participant view has: identity, name, metadata, attributes, kind, permissions …"""

    def __init__(self, record: ParticipantRecord) -> None:
        """Build the view of ``record`` (the room's reducer builds participants; users never do)."""
        self._record = record

    @property
    def track_publications(self) -> Mapping[str, TrackPublication]:
        """The participant's publications by track sid."""
        return {sid: publication.view for sid, publication in self._record.publications.items()}

    @property
    def sid(self) -> str:
        """The participant's server id (``PA_…``)."""
        return self._record.info.sid

    @property
    def identity(self) -> str:
        """The identity from the participant's token."""
        return self._record.info.identity

    @property
    def name(self) -> str:
        """The display name."""
        return self._record.info.name

    @property
    def metadata(self) -> str:
        """Application metadata."""
        return self._record.info.metadata

    @property
    def attributes(self) -> dict[str, str]:
        """A copy of the participant's attributes."""
        return dict(self._record.info.attributes)

    @property
    def kind(self) -> ParticipantKind:
        """Standard, agent, SIP …"""
        return participant_kind(self._record.info.kind)

    @property
    def kind_details(self) -> list[int]:
        """More about the kind (not reported by the dev server: empty)."""
        return []

    @property
    def state(self) -> ParticipantState:
        """Joining, joined, active or disconnected."""
        return participant_state(self._record.info.state)

    @property
    def joined_at(self) -> datetime.datetime | None:
        """When the participant joined (UTC), if the server said."""
        info = self._record.info
        ms = info.joined_at_ms or info.joined_at * 1000
        return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC) if ms else None

    @property
    def permissions(self) -> ParticipantPermission:
        """What the participant may do (``can_publish``, ``can_publish_data``, ``can_update_metadata`` …)."""
        return self._record.info.permission or ParticipantPermission()

    @property
    def connection_quality(self) -> ConnectionQuality:
        """Connection quality (from the server's ``connection_quality``; ``QUALITY_UNKNOWN`` until then)."""
        return self._record.quality

    @property
    def disconnect_reason(self) -> DisconnectReason:
        """Why the participant left (``UNKNOWN_REASON`` while it is here)."""
        return self._record.disconnect_reason


def wait_for_track(participant: Participant, waiter: TrackWaiter) -> None:
    """Give ``waiter`` the participant's first subscribed track of its source and kind: now if there is one,
    else when the reducer sees it subscribed; ``None`` if the participant leaves first (``from_participant``).
    """
    record = participant._record
    for publication in record.publications.values():
        if waiter.wants(publication):
            waiter.callback(publication.track)
            return
    record.waiters.append(waiter)


class RemoteParticipant(Participant):
    """Another participant in the room (``Room.remote_participants`` is keyed by identity)."""

    @property
    def track_publications(self) -> Mapping[str, RemoteTrackPublication]:
        """The participant's publications by track sid."""
        return {
            sid: publication.view
            for sid, publication in self._record.publications.items()
            if isinstance(publication.view, RemoteTrackPublication)
        }

    def __repr__(self) -> str:
        return f"rtc.RemoteParticipant(sid={self.sid}, identity={self.identity}, name={self.name})"


def _message(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class LocalParticipant(Participant):
    """The participant this room client joined as: publishes data and updates its own info.

    Its requests go through ``port`` (the connection's :class:`~greenroom.rtc._port.RoomPort`); a track it
    publishes or unpublishes is reported through the same port to the room's reducer, which updates the view
    and emits ``local_track_published``/``local_track_unpublished``.
    """

    def __init__(
        self,
        record: ParticipantRecord,
        port: RoomPort,
        remotes: Mapping[str, ParticipantRecord] | None = None,
        server_version: str = "",
    ) -> None:
        """Build the view of ``record``, sending through ``port``; ``remotes`` are the room's others (their
        announced ``client_protocol`` picks the RPC version), ``server_version`` the server's."""
        super().__init__(record)
        self._port = port
        others = remotes if remotes is not None else {}

        def client_protocol(identity: str) -> int:
            other = others.get(identity)
            return 0 if other is None else other.info.client_protocol

        self._streams = StreamSender(port, others, lambda: self.identity)
        self._rpc = RpcEngine(port, client_protocol, server_version)
        self._rpc.use_streams(self._send_internal_text)

    async def _send_internal_text(
        self,
        text: str,
        topic: str,
        attributes: tuple[tuple[str, str], ...],
        destinations: tuple[str, ...],
        on_failure: Callable[[StreamError], None],
    ) -> None:
        """RPC v2's transport: a text stream (inline when the callee reads single-packet streams; then posted
        without waiting for its hand-over, a failure reported to ``on_failure``)."""
        await self._streams.send_text(
            text,
            destinations=destinations,
            topic=topic,
            attributes=dict(attributes),
            reply_to_id=None,
            compress=True,
            on_failure=on_failure,
        )

    @property
    def track_publications(self) -> Mapping[str, LocalTrackPublication]:
        """Local publications by track sid."""
        return {
            sid: publication.view
            for sid, publication in self._record.publications.items()
            if isinstance(publication.view, LocalTrackPublication)
        }

    async def _request(self, make: Callable[[Reply[None]], Any], error: type[_PublishError] | None) -> None:
        try:
            await self._port.request(make)
        except GreenroomError as exc:
            if error is None:
                raise
            raise error(_message(exc)) from exc

    async def publish_data(
        self,
        payload: bytes | str,
        *,
        reliable: bool = True,
        destination_identities: list[str] | None = None,
        topic: str = "",
    ) -> None:
        """Send ``payload`` to everyone in the room, or only to ``destination_identities``.

        Args:
            payload: bytes, or text sent as UTF-8.
            reliable: ordered and retransmitted (``_reliable``) or best effort (``_lossy``).
            destination_identities: recipients; empty means everyone else.
            topic: an application topic the receivers see in ``DataPacket.topic``.

        Raises:
            PublishDataError: the packet is larger than the max message size (64 000 bytes unless the
                server says less), the room is not connected, or sending failed.
        """
        data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        destinations = tuple(destination_identities or ())
        await self._request(lambda r: PublishData(data, reliable, destinations, topic, r), PublishDataError)

    async def publish_dtmf(self, *, code: int, digit: str) -> None:
        """Send a SIP DTMF tone (code 0–9 for '0'–'9', 10 '*', 11 '#', 12–15 'A'–'D').

        Raises:
            PublishDTMFError: the room is not connected or sending failed.
        """
        await self._request(lambda r: PublishDtmf(code, digit, r), PublishDTMFError)

    async def publish_transcription(self, transcription: Transcription) -> None:
        """Send transcription segments as the official agents do: the ``Transcription`` packet (what
        ``livekit.rtc`` sends; the server forwards it only from agents, receivers emit
        ``transcription_received``) and each segment as a text stream on the ``lk.transcription`` topic,
        sent on behalf of ``participant_identity`` with the attributes ``lk.segment_id``,
        ``lk.transcription_final`` (``"true"``/``"false"``) and ``lk.transcribed_track_id`` — what
        livekit-agents' room output writes and what current front ends read
        (:mod:`greenroom.rtc.transcription`).

        Raises:
            PublishTranscriptionError: the room is not connected or sending failed.
        """
        value = packets.Transcription(
            participant_identity=transcription.participant_identity,
            track_id=transcription.track_sid,
            segments=tuple(
                packets.TranscriptionSegment(
                    id=s.id,
                    text=s.text,
                    start_time=s.start_time,
                    end_time=s.end_time,
                    final=s.final,
                    language=s.language,
                )
                for s in transcription.segments
            ),
        )
        await self._request(lambda r: PublishTranscription(value, r), PublishTranscriptionError)
        for segment in transcription.segments:
            try:
                await self._streams.send_text(
                    segment.text,
                    destinations=(),
                    topic=TOPIC_TRANSCRIPTION,
                    attributes=stream_attributes(transcription.track_sid, segment),
                    reply_to_id=None,
                    compress=True,
                    sender_identity=transcription.participant_identity,
                )
            except StreamError as exc:
                raise PublishTranscriptionError(str(exc)) from exc

    async def publish_track(
        self,
        track: LocalTrack,
        options: TrackPublishOptions = _DEFAULT_PUBLISH,
    ) -> LocalTrackPublication:
        """Publish a local audio or video track (``add_track`` → ``track_published`` → renegotiation).

        Returns once the publisher offer carrying the track is sent (as the Rust SDK); the server then
        announces the track and subscribers receive it. ``local_track_published`` is emitted before return.

        Raises:
            PublishTrackError: not connected, already published, refused (no ``canPublish``) or timed out.
        """
        port = self._port
        record = local_track_record(track)
        if record.published:
            raise PublishTrackError(f"track {track.sid} is already published")
        try:
            cid = await port.add_local_track(record.source)
        except GreenroomError as exc:
            raise PublishTrackError(_message(exc)) from exc
        video = isinstance(track, LocalVideoTrack)
        wire_type = TrackType.VIDEO if video else TrackType.AUDIO
        source = (
            WireTrackSource(int(options.source)) if 0 <= int(options.source) <= 4 else WireTrackSource.UNKNOWN
        )
        try:
            info: TrackInfo = await port.ask(
                lambda r: PublishTrack(
                    cid,
                    track.name,
                    wire_type,
                    source,
                    r,
                    disable_dtx=not options.dtx,
                    disable_red=not options.red,
                    stream=options.stream,
                )
            )
        except GreenroomError as exc:
            await port.drop_local_track(cid)
            raise PublishTrackError(_message(exc)) from exc
        port.report(
            LocalTrackPublished(self._record, info, track, record, port)
        )  # emits local_track_published
        if track.muted:  # muted before it was published: tell the server now
            track.mute()
        publication = self._record.publications[info.sid].view
        assert isinstance(publication, LocalTrackPublication)
        return publication

    async def unpublish_track(self, track_sid: str) -> None:
        """Stop publishing ``track_sid`` (the sender goes inactive and the publisher renegotiates).

        Raises:
            UnpublishTrackError: no such local publication, or the room is not connected.
        """
        if track_sid not in self.track_publications:
            raise UnpublishTrackError(f"no local track {track_sid}")
        await self._request(lambda r: UnpublishTrack(track_sid, r), UnpublishTrackError)
        self._port.report(LocalTrackUnpublished(self._record, track_sid))

    async def set_metadata(self, metadata: str) -> None:
        """Set the local participant's metadata (needs the ``canUpdateOwnMetadata`` grant).

        Raises:
            GreenroomError: the server refused it or did not answer within 5 s.
        """
        await self._request(lambda r: UpdateLocalInfo(r, metadata=metadata), None)

    async def set_name(self, name: str) -> None:
        """Set the local participant's display name (needs ``canUpdateOwnMetadata``)."""
        await self._request(lambda r: UpdateLocalInfo(r, name=name), None)

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        """Merge ``attributes`` into the local participant's (an empty value deletes a key)."""
        frozen = frozen_map(attributes)
        await self._request(lambda r: UpdateLocalInfo(r, attributes=frozen), None)

    # -- RPC ------------------------------------------------------------------------------------------------

    async def perform_rpc(
        self,
        *,
        destination_identity: str,
        method: str,
        payload: str,
        response_timeout: float | None = None,
        max_round_trip_latency: float | None = None,
    ) -> str:
        """Call ``method`` on ``destination_identity`` and return its response payload.

        Args:
            destination_identity: the participant to call.
            method: the method name it registered.
            payload: the request payload (a v1 request — to a callee announcing no data-stream RPC — is
                limited to 15 360 UTF-8 bytes).
            response_timeout: seconds to wait for the answer once the request is acknowledged (default 15).
            max_round_trip_latency: seconds to wait for the acknowledgement (default 7).

        Raises:
            RpcError: the callee's error, or a built-in one: 1400 unknown method, 1402 payload too large,
                1501 no ack, 1502 no answer in time, 1503 the callee left (or the room disconnected), 1505 the
                request could not be sent.
        """
        call = RpcCallInfo(destination_identity, method, payload, response_timeout, max_round_trip_latency)
        return await self._rpc.perform(call)

    def add_rpc_interceptor(self, interceptor: RpcInterceptor) -> None:
        """Wrap every RPC performed or handled here with ``interceptor`` (the first added is outermost)."""
        if not any(existing is interceptor for existing in self._rpc.interceptors):
            self._rpc.interceptors.append(interceptor)

    def remove_rpc_interceptor(self, interceptor: RpcInterceptor) -> None:
        """Stop using ``interceptor`` (calls in flight keep the chain they started with)."""
        self._rpc.interceptors = [i for i in self._rpc.interceptors if i is not interceptor]

    @overload
    def register_rpc_method(self, method_name: str, handler: None = None) -> Callable[[F], F]: ...

    @overload
    def register_rpc_method(self, method_name: str, handler: F) -> F: ...

    def register_rpc_method(self, method_name: str, handler: F | None = None) -> F | Callable[[F], F]:
        """Answer calls of ``method_name`` with ``handler`` (also usable as a decorator).

        The handler (sync or async) gets an :class:`~greenroom.rtc.rpc.RpcInvocationData` and returns the
        response payload. It runs on this room's loop and is cancelled at the caller's deadline. Raise
        ``RpcError`` to answer with it; any other exception answers 1500 (APPLICATION_ERROR) and is logged.

        Example::

            @room.local_participant.register_rpc_method("greet")
            async def greet(data: rtc.RpcInvocationData) -> str:
                return f"hello, {data.caller_identity}"
        """

        def register(handler_func: F) -> F:
            self._rpc.handlers[method_name] = handler_func
            return handler_func

        return register(handler) if handler is not None else register

    def unregister_rpc_method(self, method: str) -> None:
        """Stop answering ``method`` (its callers then get 1400)."""
        self._rpc.handlers.pop(method, None)

    # -- data streams ---------------------------------------------------------------------------------------

    async def send_text(
        self,
        text: str,
        *,
        destination_identities: list[str] | None = None,
        topic: str = "",
        attributes: dict[str, str] | None = None,
        reply_to_id: str | None = None,
        compress: bool = True,
    ) -> TextStreamInfo:
        """Send ``text`` as a complete text stream (one packet when every recipient reads those, raw-DEFLATE
        compressed when they all inflate and it is smaller — unless ``compress=False``).

        Raises:
            StreamError: not connected, the header is too large, or a packet could not be sent.
        """
        return await self._streams.send_text(
            text,
            destinations=tuple(destination_identities or ()),
            topic=topic,
            attributes=attributes,
            reply_to_id=reply_to_id,
            compress=compress,
        )

    async def stream_text(
        self,
        *,
        destination_identities: list[str] | None = None,
        topic: str = "",
        attributes: dict[str, str] | None = None,
        stream_id: str | None = None,
        reply_to_id: str | None = None,
        total_size: int | None = None,
        sender_identity: str | None = None,
    ) -> TextStreamWriter:
        """Open a text stream to write piece by piece (``await writer.write(...)``, then ``aclose()``).

        ``sender_identity``: publish on behalf of another participant (the server honours it for agents).

        Raises:
            StreamError: the header could not be sent.
        """
        return await self._streams.stream_text(
            destinations=tuple(destination_identities or ()),
            topic=topic,
            attributes=attributes,
            stream_id=stream_id,
            reply_to_id=reply_to_id,
            total_size=total_size,
            sender_identity=sender_identity,
        )

    async def send_bytes(
        self,
        data: bytes,
        *,
        topic: str = "",
        name: str | None = None,
        mime_type: str | None = None,
        destination_identities: list[str] | None = None,
        attributes: dict[str, str] | None = None,
        stream_id: str | None = None,
        compress: bool = True,
    ) -> ByteStreamInfo:
        """Send ``data`` as a complete byte stream (``name`` "unknown", ``mime_type``
        "application/octet-stream" by default; one packet and compression as for :meth:`send_text`).

        Raises:
            StreamError: not connected, the header is too large, or a packet could not be sent.
        """
        return await self._streams.send_bytes(
            data,
            destinations=tuple(destination_identities or ()),
            topic=topic,
            name=name,
            mime_type=mime_type,
            attributes=attributes,
            stream_id=stream_id,
            compress=compress,
        )

    async def send_file(
        self,
        file_path: str,
        *,
        topic: str = "",
        destination_identities: list[str] | None = None,
        attributes: dict[str, str] | None = None,
        stream_id: str | None = None,
        compress: bool = True,
    ) -> ByteStreamInfo:
        """Send a file as a byte stream named after it (MIME type guessed from its extension), read and sent
        piece by piece; compressed on the fly when every recipient inflates.

        Raises:
            StreamError: not connected, or a packet could not be sent.
            OSError: the file cannot be read.
        """
        return await self._streams.send_file(
            file_path,
            destinations=tuple(destination_identities or ()),
            topic=topic,
            attributes=attributes,
            stream_id=stream_id,
            compress=compress,
        )

    async def stream_bytes(
        self,
        name: str,
        *,
        total_size: int | None = None,
        mime_type: str = "application/octet-stream",
        attributes: dict[str, str] | None = None,
        stream_id: str | None = None,
        destination_identities: list[str] | None = None,
        topic: str = "",
    ) -> ByteStreamWriter:
        """Open a byte stream to write piece by piece (``await writer.write(...)``, then ``aclose()``).

        Raises:
            StreamError: the header could not be sent.
        """
        return await self._streams.stream_bytes(
            name,
            destinations=tuple(destination_identities or ()),
            topic=topic,
            mime_type=mime_type,
            attributes=attributes,
            stream_id=stream_id,
            total_size=total_size,
        )

    def __repr__(self) -> str:
        return f"rtc.LocalParticipant(sid={self.sid}, identity={self.identity}, name={self.name})"
