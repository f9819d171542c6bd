"""The dev server's bounds: every per-session queue and table, signal rates and connects.

Each limit is a field of :class:`Limits` (``ServerConfig.limits``) with its policy and, where livekit-server
has the same limit, its value and source (livekit/livekit at 788d4c3). livekit-server has no per-participant
signal rate limit and no per-address connect limit (it leaves those to the deployment in front of it); those
two are greenroom's choices, sized so that the SDKs' normal traffic and the benchmarks' bursts of hundreds of
joins from one address pass untouched.

The structures here are pure (no I/O; time is passed in), so their rules are unit-tested without sockets:

* :class:`TokenBucket` — the rate limits (signal messages per participant, connects per address);
* :class:`SignalOutbox` — one session's ordered signal frames, bounded by frames and bytes;
* :class:`DataQueue` — relayed data waiting for one receiver's channel, bounded, drop-newest, counted;
* :class:`ConnectGate` — one bucket per remote address, the table itself bounded;
* :class:`ServerStats` — the counters every bound feeds (``DevServer.stats``).
"""

from __future__ import annotations

import asyncio
import collections
import math
from dataclasses import dataclass, field, fields

__all__ = [
    "CLOSE_POLICY_VIOLATION",
    "NORMAL_CLOSE",
    "CloseFrame",
    "ConnectGate",
    "DataQueue",
    "Limits",
    "ServerStats",
    "SignalOutbox",
    "TokenBucket",
]

CLOSE_POLICY_VIOLATION = 1008
"""WebSocket close code of a session ended for breaking a limit (RFC 6455 §7.4.1 "policy violation")."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Every bound of the dev server, with its policy.

    Attributes:
        signal_queue_frames: signal frames queued for one client before it counts as not keeping up
            (livekit-server ``routing/messagechannel.go`` ``DefaultMessageChannelSize`` = 200, where a full
            channel refuses the write). Policy: the session is ended at once — socket aborted (nothing more
            can reach a client that does not read), queue freed, the others told it left with
            ``CONNECTION_TIMEOUT``.
        signal_queue_bytes: the same bound in bytes (16 MiB; one frame is always accepted into an empty
            queue, so a JoinResponse of a large room still goes out).
        signal_rate: signal messages per second one participant may send, pings included (livekit-server:
            none; chosen — an SDK sends a few per second, bursts at join and on adaptive-stream changes).
        signal_burst: the bucket size for ``signal_rate``. Policy past it: ``LeaveRequest{SIGNAL_CLOSE,
            DISCONNECT}`` then close 1008 "signal rate limit exceeded".
        join_deadline: seconds a session may stay JOINED without its peer connection coming up (livekit-server
            ``rtc/room.go``: a participant not active a minute after joining is removed, JOIN_TIMEOUT →
            ``JOIN_FAILURE``). Policy: ``LeaveRequest{JOIN_FAILURE}`` and close.
        trickles_per_pc: remote ICE candidates accepted per peer connection, queued before the offer or
            applied (livekit-server keeps every pending candidate; chosen: a host rarely has more than a few
            dozen). Policy: later ones are dropped and counted; the session stays.
        pending_tracks: ``add_track`` requests awaiting their media section (livekit-server
            ``rtc/participant.go`` ``cMaxPendingTracks`` = 20). Policy: refused with
            ``RequestResponse{LIMIT_EXCEEDED}`` carrying the request's cid, as livekit-server does.
        unknown_sids_answered: ``SE_TRACK_NOTFOUND`` answers per ``UpdateSubscription``; sids nobody
            publishes are never stored (livekit-server retries them for a minute in its subscription manager;
            here a sid is only ever known from a ``ParticipantUpdate`` that already published it). Policy:
            the rest are dropped and counted.
        data_queue_packets: relayed packets waiting for one receiver (its channel not open yet, or slower than
            the senders). Policy: drop newest, counted; the queue is freed when the receiver leaves.
        data_queue_bytes: the same bound in bytes (4 MiB: livekit-server drops downstream data once a
            channel's buffered amount passes its threshold, ``rtc/transport.go``
            ``ErrDataChannelBufferFull``).
        connect_rate: ``/rtc`` requests per second from one address (livekit-server: none; chosen: a join
            costs the server a few ms of CPU, and the issue's collapse came at 200-300 joins/s).
        connect_burst: the bucket size for ``connect_rate`` (300: the benchmarks join 250 bots at once).
        connect_wait: the longest a connect over the rate is held before it is served (pacing). Policy: a
            connect whose turn is further away is refused at once with ``429 Too Many Requests`` and
            ``Retry-After``. 2 s: the wait happens before the upgrade completes, and clients time that out
            (the Rust SDK waits 5 s for the JoinResponse, the websockets client 10 s for the handshake).
        connect_addresses: remote addresses tracked by the connect gate (the least recently seen is
            forgotten).
        max_header_size: the longest request line or header line (a token in ``Authorization`` or the
            ``access_token`` query), 1 MiB: livekit-server runs Go's ``http.Server``, whose default
            ``DefaultMaxHeaderBytes`` is 1 MB for the whole header block; a token with LiveKit's largest
            metadata (512 KiB) and attributes (64 KiB) fits.
        max_headers: header lines per request (aiohttp's default is 128; the SDKs send about ten).
    """

    signal_queue_frames: int = 200
    signal_queue_bytes: int = 16 << 20
    signal_rate: float = 100.0
    signal_burst: int = 500
    join_deadline: float = 60.0
    trickles_per_pc: int = 256
    pending_tracks: int = 20
    unknown_sids_answered: int = 100
    data_queue_packets: int = 4096
    data_queue_bytes: int = 4 << 20
    connect_rate: float = 50.0
    connect_burst: int = 300
    connect_wait: float = 2.0
    connect_addresses: int = 65_536
    max_header_size: int = 1 << 20
    max_headers: int = 32


@dataclass(slots=True)
class ServerStats:
    """What every bound did, since the server started (read ``DevServer.stats``; never reset)."""

    slow_readers: int = 0  # sessions ended because their signal queue passed its bound
    signal_rate_limited: int = 0  # sessions ended for sending signal messages too fast
    join_timeouts: int = 0  # sessions ended for not connecting within the join deadline
    trickles_dropped: int = 0
    tracks_refused: int = 0  # add_track refused with LIMIT_EXCEEDED
    unknown_sids_dropped: int = 0  # unknown subscription sids beyond the answered ones
    data_dropped: int = 0  # relayed packets dropped for a receiver whose queue was full
    data_dropped_bytes: int = 0
    connects_paced: int = 0  # connects held for their turn
    connects_refused: int = 0  # connects refused with 429
    handshakes_failed: int = 0  # upgrades whose WebSocket handshake did not complete

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved; starts full. Time is passed in (seconds)."""

    rate: float
    burst: float
    tokens: float = field(default=0.0)
    stamp: float = field(default=0.0)

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        """A bucket holding ``burst`` tokens at ``now``."""
        return cls(rate, burst, float(burst), now)

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, now: float) -> bool:
        """Take one token if there is one."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def reserve(self, now: float, max_wait: float) -> float | None:
        """Take one token, possibly ahead of time: the seconds until it is due, or ``None`` (nothing taken)
        when that would be more than ``max_wait``."""
        self._refill(now)
        self.tokens -= 1.0
        if self.tokens >= 0.0:
            return 0.0
        wait = -self.tokens / self.rate if self.rate > 0 else float("inf")
        if wait > max_wait:
            self.tokens += 1.0
            return None
        return wait

    def level(self, now: float) -> float:
        """The tokens saved at ``now`` (negative when connects were reserved ahead)."""
        self._refill(now)
        return self.tokens

    def is_full(self, now: float) -> bool:
        """Whether it is back to ``burst`` (then it is the same as a new bucket)."""
        self._refill(now)
        return self.tokens >= self.burst


@dataclass(frozen=True, slots=True)
class CloseFrame:
    """The end of a session's signal stream: close the WebSocket with this code and reason; ``wait_reply``
    False sends the close frame and closes the connection without waiting for the client's close frame
    (a client cut for flooding would keep the server reading its flood until it answers)."""

    code: int = 1000
    reason: str = ""
    wait_reply: bool = True


NORMAL_CLOSE = CloseFrame()
"""Close 1000 with no reason: how a session normally ends."""


class SignalOutbox:
    """One session's signal frames, in order, bounded by ``frames`` and ``bytes_``.

    ``put`` never waits: it is called by other sessions' handlers (broadcasts) as well as this one's, so a
    client that does not read must not slow anyone else. Past the bound ``put`` answers ``False`` and the
    session ends (:class:`Limits` ``signal_queue_frames``). The close marker is always accepted.
    """

    def __init__(self, frames: int, bytes_: int) -> None:
        self._max_frames = frames
        self._max_bytes = bytes_
        self._items: collections.deque[bytes | CloseFrame] = collections.deque()
        self._ready = asyncio.Event()
        self._taken = asyncio.Event()
        self.bytes = 0
        self.peak_frames = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, frame: bytes) -> bool:
        """Queue ``frame``; ``False`` (not queued) when the bound is reached."""
        full = len(self._items) >= self._max_frames or self.bytes + len(frame) > self._max_bytes
        if full and self._items:
            return False
        self._items.append(frame)
        self.bytes += len(frame)
        self.peak_frames = max(self.peak_frames, len(self._items))
        self._ready.set()
        return True

    def close(self, marker: CloseFrame) -> None:
        """Queue the end of the stream (after everything queued so far)."""
        self._items.append(marker)
        self._ready.set()

    async def get(self) -> bytes | CloseFrame:
        """The next frame or the close marker, waiting for one."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        if isinstance(item, bytes):
            self.bytes -= len(item)
        self._taken.set()
        return item

    async def below(self, frames: int) -> None:
        """Wait until at most ``frames`` are queued (the session's reader waits so before reading more: a
        client's own requests must not fill its queue faster than its writer empties it)."""
        while len(self._items) > frames:
            self._taken.clear()
            await self._taken.wait()

    def clear(self) -> None:
        """Forget everything queued (the session is over)."""
        self._items.clear()
        self.bytes = 0
        self._taken.set()


class DataQueue:
    """Relayed ``(label, bytes)`` for one receiver, in order; bounded, drop-newest, counted."""

    def __init__(self, packets: int, bytes_: int, stats: ServerStats) -> None:
        self._max_packets = packets
        self._max_bytes = bytes_
        self._stats = stats
        self._items: collections.deque[tuple[str, bytes]] = collections.deque()
        self._ready = asyncio.Event()
        self.bytes = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, label: str, data: bytes) -> bool:
        """Queue a packet; ``False`` when it was dropped (the queue is full)."""
        if len(self._items) >= self._max_packets or self.bytes + len(data) > self._max_bytes:
            self.dropped += 1
            self._stats.data_dropped += 1
            self._stats.data_dropped_bytes += len(data)
            return False
        self._items.append((label, data))
        self.bytes += len(data)
        self._ready.set()
        return True

    async def get(self) -> tuple[str, bytes]:
        """The next packet, waiting for one."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        label, data = self._items.popleft()
        self.bytes -= len(data)
        return label, data

    def clear(self) -> None:
        """Forget everything queued (the receiver left)."""
        self._items.clear()
        self.bytes = 0


class ConnectGate:
    """Connects per remote address: a :class:`TokenBucket` each; the table is bounded (least recent out)."""

    def __init__(self, limits: Limits, stats: ServerStats) -> None:
        self._limits = limits
        self._stats = stats
        self._buckets: dict[str, TokenBucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def admit(self, address: str, now: float) -> float | None:
        """Seconds the connect from ``address`` must wait for its turn (0: none), or ``None``: refused."""
        limits = self._limits
        bucket = self._buckets.pop(address, None)
        if bucket is None:
            bucket = TokenBucket.full(limits.connect_rate, limits.connect_burst, now)
            while len(self._buckets) >= limits.connect_addresses:
                del self._buckets[next(iter(self._buckets))]  # the least recently seen
        self._buckets[address] = bucket  # (re)inserted last: the table is ordered by last use
        wait = bucket.reserve(now, limits.connect_wait)
        if wait is None:
            self._stats.connects_refused += 1
        elif wait > 0:
            self._stats.connects_paced += 1
        return wait

    def retry_after(self, address: str, now: float) -> int:
        """Whole seconds until a connect from ``address`` would be held no longer than ``connect_wait``."""
        bucket = self._buckets.get(address)
        if bucket is None or bucket.rate <= 0:
            return 1
        deficit = 1.0 - bucket.level(now)  # tokens missing for one connect now
        return max(1, math.ceil(deficit / bucket.rate - self._limits.connect_wait))

    def forget_idle(self, now: float) -> None:
        """Drop the buckets that are full again (a new bucket would be the same)."""
        for address in [a for a, b in self._buckets.items() if b.is_full(now)]:
            del self._buckets[address]
