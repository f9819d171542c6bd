"""Every private part of aiortc that greenroom patches or reads, checked when this module is imported.

greenroom's other modules never touch an aiortc private name themselves: they import the helpers below.
Importing this module runs :func:`greenroom.runtime.seams_check.check` over :data:`SEAMS`; an aiortc outside
:data:`EXPECTED` (the pin in ``pyproject.toml``), or one in which a seam is missing or has another shape,
raises :class:`~greenroom.runtime.seams_check.DependencyMismatchError` at import time.

The seams, with the place in aiortc 1.16.0 each relies on (paths under ``aiortc/``):

SCTP chunk bundling and delayed SACKs (:mod:`greenroom.runtime.sctp`):

* ``RTCSctpTransport._handle_data(self, data)`` (``rtcsctptransport.py``:930) — wrapped as one bundling
  step; it is the code that calls ``_send_sack`` (:960), which the delayed SACK depends on.
* ``RTCSctpTransport._send_sack(self)`` (:1541) — replaced by the delay decision, which calls the original.
* ``RTCSctpTransport._send_chunk(self, chunk)`` (:1511) — replaced: DATA and SACK chunks are collected.
* ``RTCSctpTransport._transmit(self)`` (:1726) and ``_data_channel_flush(self)`` (:1894) — wrapped as steps.
* ``RTCSctpTransport._receive_forward_tsn_chunk(self, chunk)`` (:1205) — wrapped: acknowledge at once.
* instance attributes set in ``RTCSctpTransport.__init__`` (:674-758): ``_association_state``, ``_loop``,
  ``_local_port``, ``_remote_port``, ``_remote_verification_tag``, ``_sack_misordered``,
  ``_sack_duplicates``, ``_sack_needed`` — read to decide and to serialise bundled packets.
* ``RTCSctpTransport.State.ESTABLISHED``, ``DataChunk`` (:188), ``SackChunk`` (:332),
  ``SCTP_MAX_PACKET_LENGTH`` (:39).
* ``RTCDtlsTransport._send_data(self, data)`` (``rtcdtlstransport.py``:704) — bundled packets go out here.

Media forwarding without decoding (:mod:`greenroom.runtime.rtp_forward`):

* ``RTCRtpReceiver.__jitter_buffer`` (mangled ``_RTCRtpReceiver__jitter_buffer``, set in ``__init__``,
  ``rtcrtpreceiver.py``:294-299, used by ``_handle_rtp_packet`` :551) — swapped for the tap's stand-in;
  ``JitterBuffer.add(self, packet)`` and ``capacity`` (``jitterbuffer.py``:16-30) are what the stand-in
  mimics.
* ``RTCRtpReceiver.__codecs`` (``_RTCRtpReceiver__codecs``, :289, filled at :400) — payload type → codec.
* ``RtpPacket._data`` — set by ``RTCRtpReceiver._handle_rtp_packet`` (:541-545) to the depayloaded bytes.
* ``RTCRtpReceiver._send_rtcp_pli(self, media_ssrc)`` (:630) — asks the publisher for a keyframe.
* ``RTCRtpSender._send_keyframe(self)`` (``rtcrtpsender.py``:351, called from ``_handle_rtcp_packet``
  :281) — shadowed on one sender instance to catch a subscriber's PLI/FIR.
* ``RTCRtpSender._next_encoded_frame`` (:294) hands anything that is not a decoded frame to
  ``encoder.pack`` — how an encoded frame is sent without encoding (checked: the method uses ``pack``).
* ``RTCRtpSender._stream_id`` (set in ``__init__`` :102) and ``_track_id`` (set in ``replaceTrack`` :197),
  written into ``a=msid`` by ``create_media_description_for_transceiver`` (``rtcpeerconnection.py``:230).

Closing a peer connection (:mod:`greenroom.runtime.peer`):

* ``RTCIceGatherer._connection`` (``rtcicetransport.py``:202, set in ``__init__``) — the aioice
  ``Connection`` whose consent checks are neutralised on close (see :mod:`greenroom.runtime.aioice_seams`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from struct import pack
from typing import Any

from aiortc import (
    jitterbuffer,
    rtcdtlstransport,
    rtcicetransport,
    rtcpeerconnection,
    rtcrtpreceiver,
    rtcrtpsender,
    rtcsctptransport,
)

from greenroom.runtime.seams_check import Seam, check, mark_replacement, member

__all__ = [
    "EXPECTED",
    "SCTP_INSTANCE_ATTRIBUTES",
    "SCTP_MAX_PACKET_LENGTH",
    "SCTP_REPLACED_METHODS",
    "SEAMS",
    "DataChunk",
    "SackChunk",
    "depayloaded",
    "dtls_send",
    "has_pli",
    "ice_connection",
    "missing_sctp_attributes",
    "receiver_codecs",
    "receiver_jitter_buffer",
    "replace_sctp_methods",
    "route_keyframe_requests",
    "sctp_clear_sack_needed",
    "sctp_common_header",
    "sctp_established",
    "sctp_loop",
    "sctp_sack_irregular",
    "send_pli",
    "set_msid",
    "set_receiver_jitter_buffer",
]

#: The aiortc versions these seams were read in; ``pyproject.toml`` pins the same range.
EXPECTED = "1.16.*"

_Sctp = rtcsctptransport.RTCSctpTransport
_Receiver = rtcrtpreceiver.RTCRtpReceiver
_Sender = rtcrtpsender.RTCRtpSender
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_CODECS = "_RTCRtpReceiver__codecs"

#: The ``RTCSctpTransport`` methods :mod:`greenroom.runtime.sctp` replaces, with their parameter names.
SCTP_REPLACED_METHODS: Mapping[str, tuple[str, ...]] = {
    "_handle_data": ("self", "data"),
    "_send_sack": ("self",),
    "_send_chunk": ("self", "chunk"),
    "_transmit": ("self",),
    "_data_channel_flush": ("self",),
    "_receive_forward_tsn_chunk": ("self", "chunk"),
}
#: Instance attributes of ``RTCSctpTransport`` the SCTP layer reads or writes.
SCTP_INSTANCE_ATTRIBUTES = (
    "_association_state",
    "_loop",
    "_local_port",
    "_remote_port",
    "_remote_verification_tag",
    "_sack_misordered",
    "_sack_duplicates",
    "_sack_needed",
)

SEAMS: tuple[Seam, ...] = (
    *(Seam(_Sctp, name, "coroutine", params) for name, params in SCTP_REPLACED_METHODS.items()),
    *(Seam(member(_Sctp, "__init__"), name, "stored") for name in SCTP_INSTANCE_ATTRIBUTES),
    Seam(member(_Sctp, "_handle_data"), "_send_sack", "uses"),
    Seam(_Sctp, "State", "class"),
    Seam(member(_Sctp, "State"), "ESTABLISHED", "value"),
    Seam(rtcsctptransport, "DataChunk", "class"),
    Seam(rtcsctptransport, "SackChunk", "class"),
    Seam(rtcsctptransport, "SCTP_MAX_PACKET_LENGTH", "value", value_type=int),
    Seam(rtcdtlstransport.RTCDtlsTransport, "_send_data", "coroutine", ("self", "data")),
    Seam(member(_Receiver, "__init__"), _JITTER_BUFFER, "stored"),
    Seam(member(_Receiver, "__init__"), _CODECS, "stored"),
    Seam(member(_Receiver, "_handle_rtp_packet"), _JITTER_BUFFER, "uses"),
    Seam(member(_Receiver, "_handle_rtp_packet"), "_data", "stored"),
    Seam(_Receiver, "_send_rtcp_pli", "coroutine", ("self", "media_ssrc")),
    Seam(jitterbuffer.JitterBuffer, "add", "function", ("self", "packet")),
    Seam(jitterbuffer.JitterBuffer, "capacity", "value", value_type=property),
    Seam(_Sender, "_send_keyframe", "function", ("self",)),
    Seam(member(_Sender, "_handle_rtcp_packet"), "_send_keyframe", "uses"),
    Seam(member(_Sender, "_next_encoded_frame"), "pack", "uses"),
    Seam(member(_Sender, "__init__"), "_stream_id", "stored"),
    Seam(member(_Sender, "replaceTrack"), "_track_id", "stored"),
    Seam(member(rtcpeerconnection, "create_media_description_for_transceiver"), "_stream_id", "uses"),
    Seam(member(rtcpeerconnection, "create_media_description_for_transceiver"), "_track_id", "uses"),
    Seam(member(rtcicetransport.RTCIceGatherer, "__init__"), "_connection", "stored"),
)

check("aiortc", EXPECTED, SEAMS)

DataChunk = rtcsctptransport.DataChunk
SackChunk = rtcsctptransport.SackChunk
#: aiortc's largest SCTP packet (a DTLS record plus UDP stays within the minimum IPv6 MTU).
SCTP_MAX_PACKET_LENGTH: int = rtcsctptransport.SCTP_MAX_PACKET_LENGTH


# -- SCTP ----------------------------------------------------------------------------------------------


def replace_sctp_methods(replacements: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Put ``replacements`` on ``RTCSctpTransport`` (for every instance); returns the methods replaced.

    Raises:
        KeyError: a name that is not one of :data:`SCTP_REPLACED_METHODS`.
    """
    originals: dict[str, Callable[..., Any]] = {}
    for name in replacements:
        if name not in SCTP_REPLACED_METHODS:
            raise KeyError(f"{name} is not a checked RTCSctpTransport seam")
        originals[name] = getattr(_Sctp, name)
    for name, function in replacements.items():
        mark_replacement(function, originals[name])
        setattr(_Sctp, name, function)
    return originals


def missing_sctp_attributes(transport: Any) -> list[str]:
    """The :data:`SCTP_INSTANCE_ATTRIBUTES` that ``transport`` lacks (none on a real ``RTCSctpTransport``)."""
    return [name for name in SCTP_INSTANCE_ATTRIBUTES if not hasattr(transport, name)]


def sctp_sack_irregular(transport: Any) -> bool:
    """Whether the next SACK reports a gap or a duplicate (then it must not wait)."""
    return bool(transport._sack_misordered or transport._sack_duplicates)


def sctp_established(transport: Any) -> bool:
    """Whether the association is ESTABLISHED."""
    return bool(transport._association_state == _Sctp.State.ESTABLISHED)


def sctp_clear_sack_needed(transport: Any) -> None:
    """Tell aiortc that no SACK is owed now (a timer of ours will send it)."""
    transport._sack_needed = False


def sctp_loop(transport: Any) -> Any:
    """The event loop the transport runs on."""
    return transport._loop


def sctp_common_header(transport: Any) -> bytes:
    """The SCTP common header without its checksum: ports and the peer's verification tag (RFC 9260 §3.1)."""
    return pack("!HHL", transport._local_port, transport._remote_port, transport._remote_verification_tag)


def dtls_send(transport: Any) -> Callable[[bytes], Awaitable[None]]:
    """The coroutine function that sends one SCTP packet over the transport's DTLS transport."""
    send: Callable[[bytes], Awaitable[None]] = transport.transport._send_data
    return send


# -- RTP -----------------------------------------------------------------------------------------------


def receiver_jitter_buffer(receiver: Any) -> Any | None:
    """The receiver's jitter buffer (``None`` if it has none)."""
    return getattr(receiver, _JITTER_BUFFER, None)


def set_receiver_jitter_buffer(receiver: Any, buffer: Any) -> None:
    """Make ``receiver`` hand its depayloaded packets to ``buffer``."""
    setattr(receiver, _JITTER_BUFFER, buffer)


def receiver_codecs(receiver: Any) -> dict[int, Any] | None:
    """The receiver's payload type → codec table (``None`` if it has none)."""
    codecs: dict[int, Any] | None = getattr(receiver, _CODECS, None)
    return codecs


def send_pli(receiver: Any, media_ssrc: int) -> Awaitable[None]:
    """Send an RTCP PLI for ``media_ssrc`` to the publisher behind ``receiver`` (await it)."""
    sent: Awaitable[None] = receiver._send_rtcp_pli(media_ssrc)
    return sent


def has_pli(receiver: Any) -> bool:
    """Whether ``receiver`` can send a PLI (:func:`send_pli`)."""
    return callable(getattr(receiver, "_send_rtcp_pli", None))


def depayloaded(packet: Any) -> bytes:
    """The codec bytes of an RTP packet the receiver has depayloaded."""
    data: bytes = packet._data
    return data


def route_keyframe_requests(sender: Any, handler: Callable[[], None]) -> bool:
    """Make a subscriber's PLI/FIR on this one ``sender`` call ``handler``; ``False`` if it cannot."""
    if not callable(getattr(sender, "_send_keyframe", None)):
        return False
    sender._send_keyframe = handler
    return True


def set_msid(sender: Any, stream_id: str | None = None, track_id: str | None = None) -> None:
    """Set what the next SDP writes into this sender's ``a=msid`` (``None`` keeps aiortc's value)."""
    if stream_id is not None:
        sender._stream_id = stream_id
    if track_id is not None:
        sender._track_id = track_id


# -- ICE -----------------------------------------------------------------------------------------------


def ice_connection(gatherer: Any) -> Any | None:
    """The aioice ``Connection`` behind an ``RTCIceGatherer`` (``None`` if there is none)."""
    return getattr(gatherer, "_connection", None)
