"""A cheaper SCTP data path for aiortc: chunk bundling and delayed SACKs (RFC 9260 §6.10, §6.2).

aiortc 1.16's ``RTCSctpTransport`` puts every chunk in a packet of its own and acknowledges every packet it
receives, so one small data message costs two DTLS records and two UDP datagrams each way (DATA, then
SACK), and a relayed one four. This module installs, once, a thin layer over four of its methods:

* **Bundling.** While the transport runs one of its own send/receive steps (handling a received packet,
  flushing the data-channel queue, transmitting), the chunks it emits are collected instead of sent; when the
  outermost step ends they are packed into as few SCTP packets as fit :data:`MAX_PACKET_LENGTH` (aiortc's
  own limit, 1,189 bytes: a DTLS record plus UDP stays within the minimum IPv6 MTU). Only DATA and SACK
  chunks are bundled; the SACK (a control chunk) precedes the DATA chunks of its packet (§6.10). Any other
  chunk (INIT, COOKIE, HEARTBEAT ACK, FORWARD TSN, RE-CONFIG, SHUTDOWN, ABORT) first flushes what is
  collected and is then sent alone, exactly as aiortc sends it. Chunk sizes are unchanged.
* **Delayed SACK.** A packet with new DATA is acknowledged when a second such packet has arrived, or after
  :attr:`SctpTuning.sack_delay` (10 ms; §6.2 allows 200 ms), and at once when the receiver sees a gap or a
  duplicate, receives a FORWARD TSN, is not in ESTABLISHED, has outgoing DATA in the same step with room
  left in a packet (the SACK then rides along for free), or when the packet is *quiet* (no DATA packet in
  the ``sack_delay`` before it: waiting would only cost a timer, a task and a loop wake-up, see
  :func:`_send_sack`). Received messages are delivered exactly as before:
  only the acknowledgement waits, never a message.

Nothing else changes: TSNs, retransmission, congestion control and fragmentation remain aiortc's. The peer
sees ordinary bundled packets, which usrsctp, dcsctp (libwebrtc) and aiortc all parse.

The layer is per transport: the class methods are replaced once (:func:`install`), but a transport only
bundles after :func:`enable` (``PeerTransport`` does this for its peer connection); any other
``RTCSctpTransport`` behaves exactly as aiortc's. ``GREENROOM_SCTP=off`` in the environment turns it off for
every ``PeerTransport`` (``bundle`` keeps only bundling, ``sack`` only delayed SACKs) — the benchmark's
before/after switch.

Traps — this relies on private parts of aiortc 1.16's ``RTCSctpTransport`` (``aiortc/rtcsctptransport.py``):
``_handle_data`` (one received packet; the only caller of ``_send_sack``), ``_send_sack`` (builds the SACK
from the receive state and clears ``_sack_needed``), ``_send_chunk`` ("no bundling for now"; sends through
the DTLS transport's private ``_send_data``, which raises ``ConnectionError`` once closed), ``_transmit`` and
``_data_channel_flush`` (started as tasks by the T3 timer, the ESTABLISHED transition and
``_data_channel_send``), ``_receive_forward_tsn_chunk``, and the instance attributes listed in
:data:`~greenroom.runtime.aiortc_seams.SCTP_INSTANCE_ATTRIBUTES`. All of them are reached through
:mod:`greenroom.runtime.aiortc_seams`, whose docstring gives the line of each and which checks them when it
is imported (:class:`~greenroom.runtime.seams_check.DependencyMismatchError` if one is missing or changed).
Collected packets are serialised here with aiortc's CRC32c (``google_crc32c``, its dependency).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from struct import pack
from typing import Any

from google_crc32c import value as _crc32c
from OpenSSL import SSL

from greenroom.codecs.errors import GreenroomError
from greenroom.runtime import aiortc_seams as _seams
from greenroom.runtime.seams_check import installed_version

__all__ = [
    "ENV_VAR",
    "MAX_PACKET_LENGTH",
    "SctpSeamError",
    "SctpTuning",
    "enable",
    "install",
    "is_enabled",
    "pack_chunks",
    "stats",
    "tuning_from_env",
]

_log = logging.getLogger("greenroom.runtime.sctp")

#: Environment switch: ``off``/``0`` disables the layer, ``bundle``/``sack`` keep only that half.
ENV_VAR = "GREENROOM_SCTP"
#: Largest SCTP packet sent (aiortc's, so a DTLS record + UDP header stays within the minimum IPv6 MTU).
MAX_PACKET_LENGTH: int = _seams.SCTP_MAX_PACKET_LENGTH

_HEADER_LENGTH = 12
_STATE_ATTR = "_greenroom_sctp"


class SctpSeamError(GreenroomError):
    """An object given to :func:`enable` lacks the ``RTCSctpTransport`` attributes this module relies on."""


@dataclass(frozen=True, slots=True)
class SctpTuning:
    """What the layer changes on one transport.

    Attributes:
        bundling: pack DATA and SACK chunks of one step into as few packets as fit.
        delayed_sack: acknowledge every ``sack_every``-th data packet, or after ``sack_delay`` seconds.
        sack_delay: longest wait for a SACK (RFC 9260 §6.2: at most 0.5 s, 0.2 s recommended).
        sack_every: data packets per SACK when no timer or gap forces one (RFC: at least every second).
    """

    bundling: bool = True
    delayed_sack: bool = True
    sack_delay: float = 0.01
    sack_every: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.sack_delay <= 0.2:
            raise ValueError("sack_delay must be in (0, 0.2] seconds")
        if not 1 <= self.sack_every <= 2:
            raise ValueError("sack_every must be 1 or 2")


def tuning_from_env(environ: dict[str, str] | None = None) -> SctpTuning | None:
    """The tuning :data:`ENV_VAR` selects (default: both halves on); ``None`` when it is ``off``/``0``."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "").strip().lower()
    if value in ("off", "0", "false", "no"):
        return None
    if value == "bundle":
        return SctpTuning(delayed_sack=False)
    if value == "sack":
        return SctpTuning(bundling=False)
    return SctpTuning()


class _State:
    """Per-transport bookkeeping (an attribute of the aiortc transport)."""

    __slots__ = (
        "chunks",
        "depth",
        "last_data",
        "sack",
        "sack_handle",
        "sack_task",
        "tuning",
        "unacked",
        "urgent",
    )

    def __init__(self, tuning: SctpTuning) -> None:
        self.tuning = tuning
        self.depth = 0
        self.chunks: list[Any] = []
        self.sack: Any = None
        self.unacked = 0
        self.urgent = False
        self.last_data = float("-inf")
        """Loop time of the previous received packet with new DATA (see :func:`_send_sack`)."""
        self.sack_handle: asyncio.TimerHandle | None = None
        self.sack_task: asyncio.Task[None] | None = None

    def cancel_timer(self) -> None:
        if self.sack_handle is not None:
            self.sack_handle.cancel()
            self.sack_handle = None


_originals: dict[str, Any] = {}
#: Process-wide counters: bundled packets sent, chunks they carried, SACKs deferred to the timer.
_counters = {"packets": 0, "chunks": 0, "sacks_deferred": 0}


def stats() -> dict[str, int]:
    """Process-wide counters since start: ``packets`` sent by the bundler, the ``chunks`` they carried,
    and ``sacks_deferred`` (received data packets whose SACK waited for a second packet or the timer)."""
    return dict(_counters)


def install() -> None:
    """Replace the transport methods once (idempotent); transports stay unchanged until :func:`enable`.

    The methods were checked when :mod:`greenroom.runtime.aiortc_seams` was imported.
    """
    if _originals:
        return
    _originals.update(
        _seams.replace_sctp_methods(
            {
                "_handle_data": _step("_handle_data"),
                "_transmit": _step("_transmit"),
                "_data_channel_flush": _step("_data_channel_flush"),
                "_send_chunk": _send_chunk,
                "_send_sack": _send_sack,
                "_receive_forward_tsn_chunk": _receive_forward_tsn_chunk,
            }
        )
    )


def enable(transport: Any, tuning: SctpTuning) -> None:
    """Turn the layer on for one ``RTCSctpTransport`` (before its association carries data).

    Raises:
        SctpSeamError: the transport lacks an attribute listed in the module's traps.
    """
    install()
    missing = _seams.missing_sctp_attributes(transport)
    if missing:
        raise SctpSeamError(f"aiortc {installed_version('aiortc')}: no RTCSctpTransport {', '.join(missing)}")
    if getattr(transport, _STATE_ATTR, None) is None:
        setattr(transport, _STATE_ATTR, _State(tuning))


def is_enabled(transport: Any) -> bool:
    """Whether :func:`enable` was applied to ``transport``."""
    return getattr(transport, _STATE_ATTR, None) is not None


# -- the replaced methods ---------------------------------------------------------------------------------


def _state(transport: Any) -> _State | None:
    state: _State | None = transport.__dict__.get(_STATE_ATTR)
    return state


def _step(name: str) -> Any:
    """A wrapper making aiortc's method ``name`` one bundling step: chunks it emits go out when it ends."""

    async def step(self: Any, *args: Any) -> Any:
        original = _originals[name]
        state = _state(self)
        if state is None or not state.tuning.bundling:
            return await original(self, *args)
        state.depth += 1
        try:
            return await original(self, *args)
        finally:
            state.depth -= 1
            if state.depth == 0 and (state.chunks or state.sack is not None):
                await _flush(self, state)

    step.__name__ = step.__qualname__ = name
    step.__doc__ = f"greenroom.runtime.sctp: aiortc's ``{name}`` as one bundling step."
    return step


async def _send_chunk(self: Any, chunk: Any) -> None:
    """Collect DATA/SACK chunks during a step; send anything else alone, after what is collected."""
    state = _state(self)
    if state is None or not state.tuning.bundling:
        await _originals["_send_chunk"](self, chunk)
        return
    if state.depth > 0:
        if isinstance(chunk, _seams.DataChunk):
            state.chunks.append(chunk)
            return
        if isinstance(chunk, _seams.SackChunk):
            state.sack = chunk  # a later SACK supersedes an earlier one of the same step
            return
    await _flush(self, state)
    await _originals["_send_chunk"](self, chunk)


async def _send_sack(self: Any) -> None:
    """Called by ``_handle_data`` once per received packet that needs a SACK: send it now or later.

    Only a packet that follows another within ``sack_delay`` (a flight in progress) may wait: a *quiet*
    packet — the first after a pause, e.g. a 1 msg/s chat or echo — is acknowledged in its own step. Waiting
    there saved no SACK (no second packet comes within the delay to share it) but cost a timer, a task and an
    extra wake-up of the loop per message — about a tenth of an echo agent's CPU in the P9 profile
    (docs/benchmarks.md, "CPU per packet"). A flight's first packet is acknowledged at once too, as
    aiortc does for every packet; its later ones are coalesced as before.
    """
    state = _state(self)
    if state is None or not state.tuning.delayed_sack:
        await _originals["_send_sack"](self)
        return
    state.unacked += 1
    loop = _seams.sctp_loop(self)
    now = loop.time()
    quiet, state.last_data = now - state.last_data >= state.tuning.sack_delay, now
    if (
        quiet
        or state.unacked >= state.tuning.sack_every
        or state.urgent
        or _seams.sctp_sack_irregular(self)
        or not _seams.sctp_established(self)
        or _sack_rides_along(state)
    ):
        await _sack_now(self, state)
        return
    _counters["sacks_deferred"] += 1
    _seams.sctp_clear_sack_needed(self)  # a later packet without DATA must not count; the timer owes it
    if state.sack_handle is None:
        state.sack_handle = loop.call_later(state.tuning.sack_delay, _sack_timer, self, state)


async def _receive_forward_tsn_chunk(self: Any, chunk: Any) -> None:
    """A FORWARD TSN is acknowledged at once (the sender waits for it to move its ack point)."""
    state = _state(self)
    if state is not None:
        state.urgent = True
    await _originals["_receive_forward_tsn_chunk"](self, chunk)


# -- helpers ---------------------------------------------------------------------------------------------


async def _sack_now(self: Any, state: _State) -> None:
    state.cancel_timer()
    state.unacked = 0
    state.urgent = False
    await _originals["_send_sack"](self)


def _sack_rides_along(state: _State) -> bool:
    """Outgoing DATA of this step leaves room for a SACK in one of its packets."""
    if not state.tuning.bundling or state.depth == 0:
        return False
    room = MAX_PACKET_LENGTH - _HEADER_LENGTH - 16 - 16  # a DATA chunk header and a gap-less SACK
    return any(len(chunk.user_data) <= room for chunk in state.chunks)


def _sack_timer(self: Any, state: _State) -> None:
    state.sack_handle = None
    if state.unacked == 0 or not _seams.sctp_established(self):
        return
    state.sack_task = asyncio.ensure_future(_delayed_sack(self, state))


async def _delayed_sack(self: Any, state: _State) -> None:
    try:
        if state.unacked == 0:  # a packet since the timer fired already carried the SACK
            return
        state.depth += 1
        try:
            await _sack_now(self, state)
        finally:
            state.depth -= 1
        if state.depth == 0:
            await _flush(self, state)
    except (ConnectionError, SSL.Error):
        # Closed, or closing: aiortc's RTCDtlsTransport.stop() shuts the SSL object down and then awaits
        # its last write with _state still CONNECTED (aiortc 1.16 rtcdtlstransport.py lines 558-566), so a
        # send in that window passes the state check of _send_data (line 705) and OpenSSL raises
        # SSL.Error('protocol is shutdown') from self._ssl.send (line 708). Seen when a fleet drains.
        _log.debug("delayed SACK not sent: the DTLS transport is closed")
    finally:
        state.sack_task = None


async def _flush(self: Any, state: _State) -> None:
    """Send what the step collected, packed into as few packets as fit."""
    send = _seams.dtls_send(self)
    while state.chunks or state.sack is not None:
        sack, state.sack = state.sack, None
        chunks, state.chunks = state.chunks, []
        header = _seams.sctp_common_header(self)
        _counters["chunks"] += len(chunks) + (sack is not None)
        for body in pack_chunks(None if sack is None else bytes(sack), [bytes(c) for c in chunks]):
            _counters["packets"] += 1
            checksum = _crc32c(header + b"\x00\x00\x00\x00" + body)
            await send(header + pack("<L", checksum) + body)


def pack_chunks(control: bytes | None, data: list[bytes], limit: int = MAX_PACKET_LENGTH) -> list[bytes]:
    """Pack serialised chunks into packet bodies of at most ``limit`` bytes with the 12-byte common header.

    DATA chunks keep their order and are packed greedily; the control chunk goes in front of the first
    packet with room for it (control chunks precede DATA within a packet, RFC 9260 §6.10), else alone in
    front of all. A chunk larger than the limit on its own still gets a packet.
    """
    room = limit - _HEADER_LENGTH
    packets: list[list[bytes]] = []
    sizes: list[int] = []
    for chunk in data:
        if packets and sizes[-1] + len(chunk) <= room:
            packets[-1].append(chunk)
            sizes[-1] += len(chunk)
        else:
            packets.append([chunk])
            sizes.append(len(chunk))
    if control is not None:
        for index, size in enumerate(sizes):
            if size + len(control) <= room:
                packets[index].insert(0, control)
                break
        else:
            packets.insert(0, [control])
    return [b"".join(parts) for parts in packets]
