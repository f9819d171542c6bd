"""The ICE policy: the one place where greenroom adjusts how aiortc/aioice gather and accept candidates.

Traps handled here (versions: aiortc 1.16, aioice 0.13; see ``reference/feasibility-official-sdk.md``). The
two aioice patches go through :mod:`greenroom.runtime.aioice_seams`, which checks at import that aioice
still has the shape they rely on:

* **aioice never gathers on loopback.** ``aioice.ice.get_host_addresses`` (``aioice/ice.py`` lines
  91-102) skips ``127.0.0.1`` and ``::1``, and ``Connection.gather_candidates`` (line 581) looks that
  module function up on every call. A loopback-bound dev server (and every test here) must gather on
  ``127.0.0.1``, a namespace node on its veth address. :func:`gathering_scope` installs, once per process,
  a wrapper around that function which returns the addresses of the policy in the *current context* (a
  :mod:`contextvars` variable: scoped to one ``setLocalDescription`` call and the tasks it spawns, so
  connections, loops and threads never see each other's policy); outside a scope it defers to aioice.
* **aiortc silently adds Google's public STUN server.** ``RTCIceGatherer`` falls back to
  ``getDefaultIceServers()`` = ``stun:stun.l.google.com:19302`` when ``iceServers`` is ``None``
  (``aiortc/rtcicetransport.py`` lines 198-199, 229-233). :meth:`IcePolicy.rtc_configuration` always passes an
  explicit list (empty by default).
* **Candidates aioice cannot or must not use.** aioice has no TCP transport (libwebrtc trickles TCP passive
  candidates); a remote ``.local`` candidate makes aioice resolve it by mDNS multicast
  (``aioice/ice.py`` ``add_remote_candidate``, lines 528-543); a candidate outside the allowed networks would
  make us send off-host (a loopback dev server must never answer 192.0.2.2). :meth:`IcePolicy.allows` drops
  all three, for trickled candidates and for ``a=candidate`` lines inside a remote SDP
  (:meth:`IcePolicy.filter_sdp`).
* **aioice paces connectivity checks at 20 ms.** ``Connection.connect`` (``aioice/ice.py`` lines 637-640)
  sends one check, then ``await asyncio.sleep(0.02)`` before the next — and with one candidate pair the
  nomination waits for that tick, so it was ~20 ms of a ~30 ms loopback connect. RFC 8445 §14.2 lets the
  pacing timer Ta go down to 5 ms. :func:`_install` gives aioice's module a view of :mod:`asyncio` whose
  ``sleep(0.02)`` — that call only; every other delay is untouched — sleeps :data:`ICE_CHECK_INTERVAL`
  instead (measured: greenroom connect to a loopback dev server 29.5 ms → ~13 ms p50). The module attribute
  is looked up at call time, so the view must stay installed for the process's life.
* **Data-channel message size.** LiveKit senders refuse packets above ``min(a=max-message-size, 64000)``,
  64,000 when the attribute is absent (``reference/data-e2ee-formats.md`` §1.7; rust-sdks
  ``rtc_session.rs`` ``DEFAULT_MAX_MESSAGE_SIZE``). :func:`parse_max_message_size` and
  :func:`data_message_limit` compute it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import ipaddress
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer, RTCIceTransportPolicy

from greenroom.runtime import aioice_seams

__all__ = [
    "ICE_CHECK_INTERVAL",
    "LIVEKIT_MAX_MESSAGE_SIZE",
    "IceCandidate",
    "IceCandidateLike",
    "IcePolicy",
    "IceServer",
    "candidate_address",
    "data_message_limit",
    "gathering_scope",
    "parse_max_message_size",
]

_log = logging.getLogger("greenroom.runtime.ice")

#: What LiveKit SDKs assume when the remote SDP carries no ``a=max-message-size`` (and their upper cap).
LIVEKIT_MAX_MESSAGE_SIZE = 64_000

_LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")


class IceCandidateLike(Protocol):
    """Anything shaped like an ``RTCIceCandidateInit`` from a LiveKit ``TrickleRequest`` (read-only)."""

    @property
    def candidate(self) -> str:
        """The ``candidate:…`` SDP attribute value (an ``a=`` prefix is tolerated)."""

    @property
    def sdp_mid(self) -> str | None:
        """The media-section id the candidate belongs to."""

    @property
    def sdp_mline_index(self) -> int | None:
        """The media-section index the candidate belongs to."""


@dataclass(frozen=True, slots=True)
class IceCandidate:
    """A remote ICE candidate as it travels in a LiveKit trickle (``candidateInit`` JSON)."""

    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None

    @classmethod
    def from_init(cls, init: Mapping[str, Any]) -> IceCandidate:
        """Build from a parsed ``RTCIceCandidateInit`` (``candidate``, ``sdpMid``, ``sdpMLineIndex``)."""
        mid = init.get("sdpMid")
        index = init.get("sdpMLineIndex")
        return cls(
            candidate=str(init.get("candidate") or ""),
            sdp_mid=None if mid is None else str(mid),
            sdp_mline_index=None if index is None else int(index),
        )

    def to_init(self) -> dict[str, Any]:
        """The ``RTCIceCandidateInit`` mapping; the Rust SDK needs all three keys present."""
        return {"candidate": self.candidate, "sdpMid": self.sdp_mid, "sdpMLineIndex": self.sdp_mline_index}


@dataclass(frozen=True, slots=True)
class IceServer:
    """One STUN/TURN server (``urls`` like ``stun:host:3478`` or ``turn:host?transport=udp``)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True, slots=True)
class IcePolicy:
    """How one peer connection gathers and which remote candidates it accepts.

    Attributes:
        gather_addresses: local addresses to gather host candidates on; ``None`` = aioice's default
            (every non-loopback interface).
        ice_servers: STUN/TURN servers; empty by default, so nothing is ever sent to a public server.
        allowed_networks: CIDR networks a remote candidate's address must fall in; ``None`` = any address.
            TCP candidates and host names (``.local`` mDNS or other) are always dropped.
        max_bundle: use the ``max-bundle`` bundle policy instead of aiortc's ``balanced`` default. aiortc's
            ``balanced`` policy loses every track but the first of a kind added in one renegotiation round
            (``aiortc/rtcpeerconnection.py`` ``__createTransceiver``); ``max-bundle`` fixes that but needs the
            first negotiated m-line to own the transport (so a first offer must not put media before data).
            The dev server, which adds many tracks per round, sets it.
        relay_only: gather only relayed candidates (``RTCIceTransportPolicy.RELAY``: the user's
            ``ice_transport_type=TRANSPORT_RELAY`` or the server's ``force_relay``); needs a TURN server.
    """

    gather_addresses: tuple[str, ...] | None = None
    ice_servers: tuple[IceServer, ...] = ()
    allowed_networks: tuple[str, ...] | None = None
    max_bundle: bool = False
    relay_only: bool = False

    def __post_init__(self) -> None:
        for address in self.gather_addresses or ():
            ipaddress.ip_address(address)
        _networks(self.allowed_networks or ())

    @classmethod
    def loopback(cls) -> IcePolicy:
        """Gather on 127.0.0.1 and accept only loopback remote candidates (dev server on lo, tests)."""
        return cls(gather_addresses=("127.0.0.1",), allowed_networks=_LOOPBACK_NETWORKS)

    @classmethod
    def bound_to(cls, *addresses: str, allowed_networks: tuple[str, ...] | None = None) -> IcePolicy:
        """Gather on ``addresses`` (like livekit-server's ``rtc.node_ip``).

        Args:
            addresses: local IPs to gather on, e.g. ``"198.18.0.1"`` inside a test namespace.
            allowed_networks: remote networks to accept; default: those addresses plus loopback.
        """
        if allowed_networks is None:
            allowed_networks = (*(str(ipaddress.ip_network(a)) for a in addresses), *_LOOPBACK_NETWORKS)
        return cls(gather_addresses=tuple(addresses), allowed_networks=allowed_networks)

    def rtc_configuration(self) -> RTCConfiguration:
        """An ``RTCConfiguration`` with an explicit server list (never aiortc's default STUN server).

        aiortc hands aioice **one** STUN and **one** TURN server: the first URL of each scheme it can use
        (``turn:`` over UDP or TCP, ``turns:`` over TCP, password credentials), in the order given
        (``aiortc/rtcicetransport.py`` ``connection_kwargs``) — so the server's or the user's order decides,
        and a TURN server over TLS listed after a UDP one is never tried (the official SDKs try them all).
        """
        servers = [
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in self.ice_servers
        ]
        config = RTCConfiguration(iceServers=servers)
        if self.max_bundle:
            config.bundlePolicy = RTCBundlePolicy.MAX_BUNDLE
        if self.relay_only:
            config.iceTransportPolicy = RTCIceTransportPolicy.RELAY
        return config

    def allows(self, candidate: str) -> bool:
        """Whether a remote candidate (``candidate:…`` text, ``a=`` prefix tolerated) may be used."""
        fields = _candidate_fields(candidate)
        if fields is None or fields[2].lower() != "udp":
            return False
        try:  # an IP literal: never a ``.local`` (mDNS) or other host name aioice would have to resolve
            address = ipaddress.ip_address(fields[4])
        except ValueError:
            return False
        if self.allowed_networks is None:
            return True
        return any(address in network for network in _networks(self.allowed_networks))

    def filter_sdp(self, sdp: str) -> str:
        """Drop the ``a=candidate`` lines of a remote SDP that :meth:`allows` rejects."""
        lines = sdp.splitlines(keepends=True)
        kept = [line for line in lines if not line.startswith("a=candidate:") or self.allows(line)]
        if len(kept) != len(lines):
            _log.debug("dropped %d remote SDP candidates by policy", len(lines) - len(kept))
        return "".join(kept)


def candidate_address(candidate: str) -> str | None:
    """The connection address of a candidate line (``None`` if it does not parse)."""
    fields = _candidate_fields(candidate)
    return None if fields is None else fields[4]


def _candidate_fields(candidate: str) -> list[str] | None:
    text = candidate.strip().removeprefix("a=").removeprefix("candidate:")
    fields = text.split()
    # foundation component transport priority address port "typ" type ...
    if len(fields) < 8 or fields[6] != "typ":
        return None
    return fields


@functools.lru_cache(maxsize=64)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def parse_max_message_size(sdp: str) -> int:
    """The remote ``a=max-message-size`` (RFC 8841 §6; 0 = no limit), or 64,000 when absent.

    The data-channel (``m=application``) section's value wins; a session-level one is used otherwise.
    """
    value: int | None = None
    in_application = False
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            in_application = line.startswith("m=application")
        elif line.startswith("a=max-message-size:"):
            parsed = _int_or_none(line.partition(":")[2])
            if parsed is not None and (in_application or value is None):
                value = parsed
    return LIVEKIT_MAX_MESSAGE_SIZE if value is None else value


def data_message_limit(max_message_size: int, cap: int | None = LIVEKIT_MAX_MESSAGE_SIZE) -> int | None:
    """The largest data message to send: ``min(max_message_size, cap)``, with 0 meaning "no limit".

    Returns:
        The limit in bytes, or ``None`` when neither side sets one.
    """
    limits = [n for n in (max_message_size, cap) if n]
    return min(limits) if limits else None


def _int_or_none(text: str) -> int | None:
    try:
        value = int(text.split(maxsplit=1)[0])
    except (ValueError, IndexError):
        return None
    return value if value >= 0 else None


# -- host address discovery ---------------------------------------------------------------------------

_gather_addresses: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "greenroom_gather_addresses", default=None
)
_install_lock = threading.Lock()
_original_get_host_addresses: Callable[[bool, bool], list[str]] | None = None

#: aioice's connectivity-check pacing (its hard-coded ``Ta``, 20 ms) becomes this: RFC 8445 §14.2's minimum.
ICE_CHECK_INTERVAL = 0.005


class _PacedAsyncio:
    """``asyncio`` as ``aioice.ice`` sees it: the real module but for a 20 ms ``sleep`` (check pacing)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def sleep(delay: float, result: Any = None) -> Any:
        if delay == aioice_seams.CHECK_PACING:
            delay = ICE_CHECK_INTERVAL
        return await asyncio.sleep(delay, result)


def _policy_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    addresses = _gather_addresses.get()
    if addresses is None:
        assert _original_get_host_addresses is not None
        return _original_get_host_addresses(use_ipv4, use_ipv6)
    versions = {4} if use_ipv4 else set()
    if use_ipv6:
        versions.add(6)
    return [a for a in addresses if ipaddress.ip_address(a).version in versions]


def _install() -> None:
    """Both aioice patches, once per process (:mod:`~greenroom.runtime.aioice_seams` checked their seams)."""
    global _original_get_host_addresses
    with _install_lock:
        if _original_get_host_addresses is None:
            _original_get_host_addresses = aioice_seams.replace_get_host_addresses(_policy_host_addresses)
            aioice_seams.replace_asyncio(_PacedAsyncio())


@contextlib.contextmanager
def gathering_scope(policy: IcePolicy) -> Iterator[None]:
    """Make aioice gather on ``policy.gather_addresses`` within this block (and tasks started in it).

    Wrap the ``setLocalDescription`` call (aiortc gathers inside it). With ``gather_addresses=None`` the
    block uses aioice's own interface discovery.
    """
    _install()
    token = _gather_addresses.set(policy.gather_addresses)
    try:
        yield
    finally:
        _gather_addresses.reset(token)
