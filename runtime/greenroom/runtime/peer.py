"""One aiortc peer connection with greenroom's ICE policy, LiveKit data channels and flow control.

Used by both sides: the client (RoomActor: publisher PC offers, subscriber PC answers) and the dev server
(answers the client's publisher offer, offers the subscriber PC). Events go to a :class:`Sink` as frozen
values; nothing here knows about actors. Every method runs on the runtime loop.

Traps handled here (aiortc 1.16 / aioice 0.13):

* **Candidates travel inside the SDP.** aiortc gathers during ``setLocalDescription`` and inlines every
  candidate plus ``a=end-of-candidates`` (``aiortc/rtcpeerconnection.py`` ``setLocalDescription`` →
  ``__gather`` and ``add_transport_description``, lines 858-865, 150-161); it never emits trickle events,
  so the SDP that :meth:`PeerTransport.create_offer` / :meth:`PeerTransport.create_answer` return is all
  the peer needs. Both LiveKit SDKs accept that (``reference/signal-protocol.md`` §6.3, §11.4).
* **Remote candidates before the remote description.** Trickles may arrive first (``signal-protocol.md``
  §6.3); aiortc only warns and loses them (``addIceCandidate``, lines 398-452), so they are queued here.
* **end-of-candidates closes the door.** Once a remote SDP with ``a=end-of-candidates`` is applied, aiortc
  silently ignores later candidates (``aiortc/rtcicetransport.py`` ``addRemoteCandidate``, lines 306-319).
  When candidates are queued, the marker is held back and re-signalled after the queue is applied.
* **Unbounded send buffer.** ``RTCDataChannel.send`` never blocks: it appends to the SCTP transport's queue
  (``aiortc/rtcsctptransport.py`` ``_data_channel_send``, lines 2063-2087) and ``bufferedAmount`` grows
  without bound. :meth:`PeerTransport.send` waits for ``bufferedamountlow`` (emitted when the amount falls to
  the low-water threshold, ``aiortc/rtcdatachannel.py`` ``_addBufferedAmount``) above a high-water mark.
* **Oversize messages** raise a bare ``ValueError`` deep in aiortc (limit 65,536 when the remote SDP has no
  ``a=max-message-size``); LiveKit's limit is lower (64,000, :mod:`greenroom.runtime.ice`), so the size is
  checked first and refused with :class:`~greenroom.codecs.errors.PayloadTooLargeError`.
* **One chunk per SCTP packet, one SACK per packet** (aiortc ``rtcsctptransport.py`` ``_send_chunk``,
  ``_handle_data``): the PC's SCTP transport gets :mod:`greenroom.runtime.sctp`'s bundling and delayed SACKs
  as soon as aiortc creates it (first data channel or remote SDP); ``sctp_tuning=None`` or
  ``GREENROOM_SCTP=off`` leaves aiortc's behaviour.
* **Remote-created channels arrive already open** (``rtcsctptransport.py`` ``_data_channel_receive``: the
  channel is set open before ``datachannel`` is emitted), so no ``open`` event follows for them.
* **Text messages**: LiveKit data channels carry binary ``DataPacket`` only (the Rust SDK rejects text;
  ``signal-protocol.md`` §6.5); received text is dropped with a warning and only ``bytes`` may be sent.
* **Consent checks that outlive the connection** (aioice 0.13 ``aioice/ice.py`` ``Connection.connect``,
  lines 642-657, and ``Connection.close``, lines 659-670): ``connect()`` takes ``ICE_COMPLETED`` from the
  check-list queue and only *then*, when it resumes, starts ``query_consent()``. A ``close()`` that runs in
  between (a room closed mid-ICE, e.g. a cancelled ``connect``) finds no consent task to cancel, and the task
  started afterwards loops forever over the cleared pair list. :meth:`PeerTransport.close` therefore makes
  ``query_consent`` a no-op on each of its ICE connections before closing and cancels any consent task
  still running afterwards (both through :mod:`greenroom.runtime.aioice_seams`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass
from typing import Any, Literal

from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InvalidStateError
from aiortc.sdp import candidate_from_sdp

from greenroom.codecs.errors import GreenroomError, PayloadTooLargeError
from greenroom.runtime import aioice_seams, aiortc_seams
from greenroom.runtime.ice import (
    LIVEKIT_MAX_MESSAGE_SIZE,
    IceCandidateLike,
    IcePolicy,
    data_message_limit,
    gathering_scope,
    parse_max_message_size,
)
from greenroom.runtime.loop import Sink
from greenroom.runtime.sctp import SctpTuning, tuning_from_env
from greenroom.runtime.sctp import enable as enable_sctp_tuning

__all__ = [
    "DEFAULT_HIGH_WATER",
    "DEFAULT_LOW_WATER",
    "LOSSY",
    "RELIABLE",
    "ChannelNotOpenError",
    "DataChannelClosed",
    "DataChannelOpened",
    "DataReceived",
    "NegotiationError",
    "PeerConnectTimeoutError",
    "PeerRole",
    "PeerStateChanged",
    "PeerTransport",
    "PeerTransportError",
    "TrackReceived",
    "ice_connections",
]

_log = logging.getLogger("greenroom.runtime.peer")

#: The LiveKit data channel labels (``signal-protocol.md`` §6.5).
RELIABLE = "_reliable"
LOSSY = "_lossy"

#: ``send`` waits while a channel has more than this many bytes queued …
DEFAULT_HIGH_WATER = 256 * 1024
#: … until aiortc reports the queue has drained to this many.
DEFAULT_LOW_WATER = 64 * 1024

_END_OF_CANDIDATES = "a=end-of-candidates"


class PeerRole(enum.Enum):
    """Which of LiveKit's two peer connections this is (named from the client's point of view)."""

    PUBLISHER = "publisher"
    SUBSCRIBER = "subscriber"


class PeerTransportError(GreenroomError):
    """A peer connection could not do what was asked."""


class NegotiationError(PeerTransportError):
    """An SDP could not be applied or created (malformed, or wrong signalling state)."""


class PeerConnectTimeoutError(PeerTransportError, TimeoutError):
    """The peer connection did not connect in time."""


class ChannelNotOpenError(PeerTransportError):
    """The data channel does not exist, is not open yet, or has closed."""


@dataclass(frozen=True, slots=True)
class PeerStateChanged:
    """The connection state changed: ``new``, ``connecting``, ``connected``, ``failed`` or ``closed``."""

    role: PeerRole
    state: str


@dataclass(frozen=True, slots=True)
class DataChannelOpened:
    """A data channel (created here or by the remote) is open."""

    role: PeerRole
    label: str


@dataclass(frozen=True, slots=True)
class DataChannelClosed:
    """A data channel closed."""

    role: PeerRole
    label: str


@dataclass(frozen=True, slots=True)
class DataReceived:
    """One binary message arrived on the data channel ``label``."""

    role: PeerRole
    label: str
    data: bytes


@dataclass(frozen=True, slots=True)
class TrackReceived:
    """A remote media track appeared (placeholder for the media work; the track object stays here).

    ``track_id`` is aiortc's id, which is *not* LiveKit's: map tracks by the ``a=msid`` of ``mid``.
    """

    role: PeerRole
    kind: str
    mid: str | None
    track_id: str


class _Channel:
    """A data channel plus what flow control needs: a send lock (FIFO) and a drained signal."""

    def __init__(self, channel: RTCDataChannel, low_water: int) -> None:
        self.channel = channel
        self.senders = 0
        """``send`` calls in progress (holding or waiting for ``lock``): ``try_send`` must not pass them."""
        self.lock = asyncio.Lock()
        self.drained = asyncio.Event()
        channel.bufferedAmountLowThreshold = low_water

    @property
    def is_open(self) -> bool:
        return bool(self.channel.readyState == "open")

    async def wait_below(self, high_water: int) -> None:
        while self.channel.bufferedAmount > high_water:
            self.drained.clear()
            await self.drained.wait()
            if not self.is_open:
                raise ChannelNotOpenError(f"data channel {self.channel.label!r} closed while sending")


class PeerTransport:
    """One ``RTCPeerConnection`` with the ICE policy applied and LiveKit's data channels.

    Create it on the runtime loop. The client's publisher creates ``_reliable``/``_lossy`` itself
    (``create_data_channels=True``, before the first offer); a dev server creates them on the subscriber PC
    it offers; the answering side accepts the remote's channels whatever their labels.

    Args:
        role: publisher or subscriber (copied into every event).
        sink: receives :class:`PeerStateChanged`, :class:`DataChannelOpened`, :class:`DataChannelClosed`,
            :class:`DataReceived` and :class:`TrackReceived`.
        policy: the ICE policy (addresses, servers, candidate filter).
        create_data_channels: create ``_reliable`` (ordered) and ``_lossy`` (unordered, no retransmits).
        high_water: ``send`` waits while a channel's ``bufferedAmount`` exceeds this.
        low_water: ... until it falls to this.
        message_cap: LiveKit's upper bound on a data message (``None``: only the remote SDP's limit).
        sctp_tuning: SCTP chunk bundling and delayed SACKs (:mod:`greenroom.runtime.sctp`) for this PC's
            data channels; ``"env"`` (default) takes it from ``GREENROOM_SCTP`` (on unless ``off``), ``None``
            leaves aiortc's SCTP untouched.
    """

    def __init__(
        self,
        role: PeerRole,
        sink: Sink,
        *,
        policy: IcePolicy,
        create_data_channels: bool = False,
        high_water: int = DEFAULT_HIGH_WATER,
        low_water: int = DEFAULT_LOW_WATER,
        message_cap: int | None = LIVEKIT_MAX_MESSAGE_SIZE,
        sctp_tuning: SctpTuning | Literal["env"] | None = "env",
    ) -> None:
        self._sctp_tuning = tuning_from_env() if sctp_tuning == "env" else sctp_tuning
        if not 0 <= low_water <= high_water:
            raise ValueError("need 0 <= low_water <= high_water")
        self.role = role
        self._sink = sink
        self._policy = policy
        self._high_water = high_water
        self._low_water = low_water
        self._message_cap = message_cap
        self._max_message_size: int | None = data_message_limit(LIVEKIT_MAX_MESSAGE_SIZE, message_cap)
        self._channels: dict[str, _Channel] = {}
        self._tracks: dict[str, Any] = {}
        self._by_mid: dict[str, Any] = {}
        self._pending: list[IceCandidateLike] = []
        self._state_changed = asyncio.Event()
        self._closed = False
        self._pc = RTCPeerConnection(policy.rtc_configuration())
        self._pc.on("connectionstatechange", self._on_state)
        self._pc.on("datachannel", self._adopt)
        self._pc.on("track", self._on_track)
        if create_data_channels:
            self._adopt(self._pc.createDataChannel(RELIABLE, ordered=True))
            self._adopt(self._pc.createDataChannel(LOSSY, ordered=False, maxRetransmits=0))
            self._tune_sctp()

    # -- state ----------------------------------------------------------------------------------------

    @property
    def connection_state(self) -> str:
        """aiortc's connection state (``new``, ``connecting``, ``connected``, ``failed``, ``closed``)."""
        return str(self._pc.connectionState)

    @property
    def max_message_size(self) -> int | None:
        """The largest data message :meth:`send` accepts (``None`` = no limit)."""
        return self._max_message_size

    @property
    def local_description(self) -> str | None:
        """The current local SDP (with its candidates), if any."""
        description = self._pc.localDescription
        return None if description is None else str(description.sdp)

    def channel_labels(self) -> list[str]:
        """Labels of the data channels currently open."""
        return [label for label, ch in self._channels.items() if ch.is_open]

    def buffered_amount(self, label: str) -> int:
        """Bytes queued on a channel and not yet handed to SCTP (0 for an unknown label)."""
        entry = self._channels.get(label)
        return 0 if entry is None else int(entry.channel.bufferedAmount)

    @property
    def pc(self) -> Any:
        """The aiortc ``RTCPeerConnection`` itself, for media plumbing (taps, senders, transceivers).

        Data channels, negotiation and closing stay with this transport; use the connection only for media.
        """
        return self._pc

    def remote_track(self, track_id: str) -> Any:
        """The aiortc track of a :class:`TrackReceived` (for the media pipeline), or ``None``."""
        return self._tracks.get(track_id)

    def track_for_mid(self, mid: str) -> Any:
        """The remote aiortc track received on the m-line ``mid``, or ``None``."""
        return self._by_mid.get(mid)

    @property
    def remote_description(self) -> str | None:
        """The current remote SDP, if any (LiveKit ids are in its ``a=msid`` lines, not aiortc's ids)."""
        description = self._pc.remoteDescription
        return None if description is None else str(description.sdp)

    # -- media ----------------------------------------------------------------------------------------

    def add_track(self, track: Any) -> None:
        """Add a ``sendonly`` transceiver sending ``track``; its msid track id is ``track.id``.

        Renegotiate afterwards (:meth:`create_offer`). aiortc stops the track it sends when the sender ends,
        so hand it a track the caller may lose (a gate in front of the real source).
        """
        self._ensure_open()
        self._pc.addTransceiver(track, direction="sendonly")

    def remove_track(self, track: Any) -> bool:
        """Stop sending ``track``: its transceiver becomes ``inactive`` (renegotiate afterwards).

        aiortc has no ``removeTrack``; an inactive m-line is how LiveKit's server sees an unpublish
        (``signal-protocol.md`` §6.8). Returns False when no transceiver sends ``track``.
        """
        for transceiver in self._pc.getTransceivers():
            if transceiver.sender.track is track:
                transceiver.sender.replaceTrack(None)
                transceiver.direction = "inactive"
                return True
        return False

    # -- negotiation ----------------------------------------------------------------------------------

    async def create_offer(self) -> str:
        """Create and apply a local offer; returns its SDP, candidates included."""
        self._ensure_open()
        try:
            offer = await self._pc.createOffer()
            await self._set_local(offer)
        except (ValueError, InvalidStateError) as exc:
            raise NegotiationError(f"cannot create offer: {exc}") from exc
        return str(self._pc.localDescription.sdp)

    async def create_answer(self, remote_sdp: str) -> str:
        """Apply the remote offer, then create and apply the answer; returns its SDP."""
        await self.set_remote_description(remote_sdp, "offer")
        try:
            answer = await self._pc.createAnswer()
            await self._set_local(answer)
        except (ValueError, InvalidStateError) as exc:
            raise NegotiationError(f"cannot create answer: {exc}") from exc
        return str(self._pc.localDescription.sdp)

    async def set_remote_description(self, sdp: str, type: str) -> None:
        """Apply a remote ``offer`` or ``answer`` (candidates filtered by the policy), then queued trickles.

        Raises:
            NegotiationError: the SDP is malformed or not acceptable in the current state.
        """
        self._ensure_open()
        if not sdp.lstrip().startswith("v="):  # aiortc would accept any text as an empty description
            raise NegotiationError(f"remote {type} is not an SDP")
        filtered = self._policy.filter_sdp(sdp)
        hold_end = bool(self._pending) and _END_OF_CANDIDATES in filtered
        if hold_end:
            filtered = "".join(
                line for line in filtered.splitlines(keepends=True) if not line.startswith(_END_OF_CANDIDATES)
            )
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=filtered, type=type))
        except (ValueError, InvalidStateError, AssertionError) as exc:
            raise NegotiationError(f"cannot apply remote {type}: {exc}") from exc
        self._max_message_size = data_message_limit(parse_max_message_size(sdp), self._message_cap)
        self._tune_sctp()
        await self._flush_pending()
        if hold_end:
            await self._pc.addIceCandidate(None)

    async def add_ice_candidate(self, candidate: IceCandidateLike) -> bool:
        """Add a trickled remote candidate; queued until the remote description is set.

        Returns:
            False when the policy drops it (TCP, ``.local``, not allowed) or it is empty/unparsable.
        """
        if self._closed or not self._policy.allows(candidate.candidate):
            _log.debug("%s: dropped remote candidate %r", self.role.value, candidate.candidate)
            return False
        if self._pc.remoteDescription is None:
            self._pending.append(candidate)
        else:
            await self._apply_candidate(candidate)
        return True

    async def wait_connected(self, timeout: float) -> None:
        """Wait until the connection state is ``connected``.

        Raises:
            PeerConnectTimeoutError: not connected within ``timeout`` seconds.
            PeerTransportError: the connection failed or was closed.
        """
        try:
            async with asyncio.timeout(timeout):
                while self.connection_state != "connected":
                    if self.connection_state in ("failed", "closed"):
                        raise PeerTransportError(f"{self.role.value} peer connection {self.connection_state}")
                    self._state_changed.clear()
                    await self._state_changed.wait()
        except TimeoutError:
            raise PeerConnectTimeoutError(
                f"{self.role.value} peer connection not connected within {timeout} s"
            ) from None

    async def wait_channel_open(self, label: str, timeout: float) -> None:
        """Wait until the data channel ``label`` exists and is open (e.g. one the remote creates).

        Raises:
            PeerConnectTimeoutError: not open within ``timeout`` seconds.
            PeerTransportError: the transport was closed.
        """
        if self._is_open(label):
            return  # the usual case, per packet of a server's pump: no timeout timer to arm and cancel
        try:
            async with asyncio.timeout(timeout):
                while not self._is_open(label):
                    self._ensure_open()
                    self._state_changed.clear()
                    await self._state_changed.wait()
        except TimeoutError:
            raise PeerConnectTimeoutError(f"data channel {label!r} not open within {timeout} s") from None

    # -- data -----------------------------------------------------------------------------------------

    async def send(self, label: str, data: bytes) -> None:
        """Send one binary message, waiting while the channel's buffer is above the high-water mark.

        Concurrent senders on one channel are served in call order.

        Raises:
            PayloadTooLargeError: ``data`` exceeds :attr:`max_message_size` (nothing is sent).
            ChannelNotOpenError: no open channel ``label`` (or it closed while waiting).
        """
        limit = self._max_message_size
        if limit is not None and len(data) > limit:
            raise PayloadTooLargeError(
                f"data message of {len(data)} bytes exceeds the {limit}-byte limit",
                size=len(data),
                limit=limit,
            )
        entry = self._open_channel(label)
        entry.senders += 1
        try:
            async with entry.lock:
                await entry.wait_below(self._high_water)
                try:
                    entry.channel.send(bytes(data))
                except InvalidStateError as exc:
                    raise ChannelNotOpenError(
                        f"data channel {label!r} is {entry.channel.readyState}"
                    ) from exc
        finally:
            entry.senders -= 1

    def try_send(self, label: str, data: bytes) -> bool:
        """Send one binary message now if :meth:`send` would not wait: the channel is open, no other
        ``send`` is in progress on it (order is kept) and its buffer is at most the high-water mark.
        ``False`` (nothing sent) otherwise, and on any error — :meth:`send` then gives the caller the
        typed error; this path only spares the sender a task and a pass of the loop per message.
        """
        entry = self._channels.get(label)
        if entry is None or entry.senders or not entry.is_open:
            return False
        limit = self._max_message_size
        if (limit is not None and len(data) > limit) or entry.channel.bufferedAmount > self._high_water:
            return False
        try:
            entry.channel.send(bytes(data))
        except InvalidStateError:
            return False
        return True

    async def close(self) -> None:
        """Close the peer connection and its channels; idempotent, wakes any waiting sender."""
        connections = ice_connections(self._pc)  # before close: aiortc forgets its ICE transports
        if not self._closed:
            self._closed = True
            self._pending.clear()
            for entry in self._channels.values():
                entry.drained.set()
        for connection in connections:
            # aioice trap (module docstring): a connect() resuming after close() must not start consent checks
            aioice_seams.disable_consent_checks(connection)
        await self._pc.close()
        for connection in connections:
            aioice_seams.cancel_consent_task(connection)
        self._state_changed.set()

    # -- internals ------------------------------------------------------------------------------------

    async def _set_local(self, description: RTCSessionDescription) -> None:
        with gathering_scope(self._policy):
            await self._pc.setLocalDescription(description)

    async def _flush_pending(self) -> None:
        pending, self._pending = self._pending, []
        for candidate in pending:
            await self._apply_candidate(candidate)

    async def _apply_candidate(self, candidate: IceCandidateLike) -> None:
        text = candidate.candidate.strip().removeprefix("a=").removeprefix("candidate:")
        try:
            parsed = candidate_from_sdp(text)
        except (ValueError, AssertionError, IndexError):
            _log.debug("%s: unparsable remote candidate %r", self.role.value, candidate.candidate)
            return
        parsed.sdpMid = candidate.sdp_mid
        parsed.sdpMLineIndex = candidate.sdp_mline_index
        if parsed.sdpMid is None and parsed.sdpMLineIndex is None:
            parsed.sdpMLineIndex = 0
        await self._pc.addIceCandidate(parsed)

    def _tune_sctp(self) -> None:
        """Apply the SCTP tuning once aiortc has created the PC's SCTP transport (first channel or SDP)."""
        if self._sctp_tuning is not None and self._pc.sctp is not None:
            enable_sctp_tuning(self._pc.sctp, self._sctp_tuning)

    def _ensure_open(self) -> None:
        if self._closed:
            raise PeerTransportError(f"{self.role.value} peer transport is closed")

    def _is_open(self, label: str) -> bool:
        entry = self._channels.get(label)
        return entry is not None and entry.is_open

    def _open_channel(self, label: str) -> _Channel:
        entry = self._channels.get(label)
        if entry is None or not entry.is_open:
            state = "missing" if entry is None else entry.channel.readyState
            raise ChannelNotOpenError(f"data channel {label!r} is {state}")
        return entry

    def _adopt(self, channel: RTCDataChannel) -> None:
        label = str(channel.label)
        entry = _Channel(channel, self._low_water)
        self._channels[label] = entry
        channel.on("open", lambda: self._on_channel_open(label))
        channel.on("close", lambda: self._on_channel_close(label, entry))
        channel.on("message", lambda message: self._on_message(label, message))
        channel.on("bufferedamountlow", entry.drained.set)
        if entry.is_open:  # a channel the remote created arrives open
            self._on_channel_open(label)

    def _on_channel_open(self, label: str) -> None:
        self._state_changed.set()
        self._sink.tell(DataChannelOpened(self.role, label))

    def _on_channel_close(self, label: str, entry: _Channel) -> None:
        entry.drained.set()
        self._state_changed.set()
        self._sink.tell(DataChannelClosed(self.role, label))

    def _on_message(self, label: str, message: bytes | str) -> None:
        if isinstance(message, str):
            _log.warning(
                "%s: dropped a text message on %r (LiveKit sends binary only)", self.role.value, label
            )
            return
        self._sink.tell(DataReceived(self.role, label, message))

    def _on_state(self) -> None:
        self._state_changed.set()
        self._sink.tell(PeerStateChanged(self.role, self.connection_state))

    def _on_track(self, track: Any) -> None:
        mid = next((t.mid for t in self._pc.getTransceivers() if t.receiver.track is track), None)
        self._tracks[str(track.id)] = track
        if mid is not None:
            self._by_mid[mid] = track
        self._sink.tell(TrackReceived(self.role, str(track.kind), mid, str(track.id)))


def ice_connections(pc: RTCPeerConnection) -> list[Any]:
    """The aioice ``Connection`` objects behind ``pc`` (its SCTP transport and transceivers), deduplicated.

    Reached through aiortc's public transports (``RTCSctpTransport.transport`` →
    ``RTCDtlsTransport.transport`` → ``RTCIceTransport.iceGatherer``); only the last hop,
    ``RTCIceGatherer._connection``, is private (read through :mod:`~greenroom.runtime.aiortc_seams`).
    """
    dtls = [t.sender.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        dtls.append(pc.sctp.transport)
    found: dict[int, Any] = {}
    for transport in dtls:
        gatherer = getattr(getattr(transport, "transport", None), "iceGatherer", None)
        connection = aiortc_seams.ice_connection(gatherer)
        if connection is not None:
            found.setdefault(id(connection), connection)
    return list(found.values())
