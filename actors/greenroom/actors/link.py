"""One connection attempt of a room (a *link*): the signal connection, its session, the two peer connections.

The RoomActor opens a new :class:`Link` per attempt (a *generation*) and drops it as a whole when the
attempt fails or the connection is lost; each link's transports report through a :class:`LinkSink` that is
cut when the link is dropped, so a dead link's late events never reach the next one.

**Nothing here makes the RoomActor wait on the network.** Every method the actor calls returns at once;
the link's own tasks do the waiting:

* the **opener** connects the signal WebSocket (:meth:`Link.open`) and reports a refusal as
  :class:`~greenroom.actors.messages.LinkRefused`; the join then arrives as ``SignalBytes``;
* the **writer** sends signal requests, which are *posted* (:meth:`Link.post`): encoded by the sans-I/O
  session at once, in order, and written by the writer, so a server that stops reading cannot stall the
  actor's mailbox (bounded: :data:`SIGNAL_OUTBOX` frames, then :class:`SignalOutboxFullError`);
* the **negotiator** runs the peer connections' operations one at a time, in the order they were asked
  (answer the subscriber offer, offer the publisher, apply the answer, add trickled candidates): aiortc's
  offer/answer gathers ICE candidates, which with STUN/TURN servers can take up to aiortc's gathering
  timeout (docs/architecture.md, "Decisions"). Bounded: :data:`NEGOTIATION_QUEUE` operations, then
  :class:`NegotiationBacklogError`. A caller that needs the outcome passes a ``done`` callback.

Data packets have their own plane (:mod:`greenroom.actors.dataplane`). A dropped link is *cut* at once
(:meth:`Link.cut`: its events stop reaching the actor, its timers stop) and closed in the background
(:meth:`Link.release`).

Negotiation rules kept here:

* the subscriber PC is created on the server's first offer (the server is ``subscriber_primary``);
* the publisher PC is created and offered on first use (a publish, or ``subscriber_primary`` false); one
  offer is outstanding at a time, and a change while one is outstanding is offered again after its answer;
* trickled candidates go to the PC named by the trickle's target.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pykka

from greenroom.actors.connection import describe_refusal
from greenroom.actors.messages import ConnectOptions, LinkRefused
from greenroom.codecs.errors import GreenroomError
from greenroom.codecs.models import SignalTarget
from greenroom.codecs.session import ClientSignalSession, ClientState
from greenroom.codecs.signalling import Answer, Leave, Offer, Trickle
from greenroom.runtime.ice import IcePolicy
from greenroom.runtime.peer import PeerRole, PeerTransport
from greenroom.runtime.signal_transport import SignalConnectError, SignalTransport

__all__ = [
    "CLOSE_TIMEOUT",
    "NEGOTIATION_QUEUE",
    "SIGNAL_OUTBOX",
    "Done",
    "Link",
    "LinkSink",
    "NegotiationBacklogError",
    "NotConnectedError",
    "SignalOutboxFullError",
]

_log = logging.getLogger("greenroom.actors.link")

#: Seconds the teardown gives each transport to close.
CLOSE_TIMEOUT = 3.0
#: Signal frames a link holds for its writer before refusing more.
SIGNAL_OUTBOX = 1_000
#: Peer-connection operations a link holds for its negotiator before refusing more (a server flooding
#: trickles or offers meets this; each refusal is counted in ``Link.ops_refused``).
NEGOTIATION_QUEUE = 1_000

#: Told the outcome of a negotiation: ``None`` when the offer/answer went out, else the error.
Done = Callable[[GreenroomError | None], None]


class NotConnectedError(GreenroomError):
    """The room is not connected (or disconnected while the request was pending)."""


class SignalOutboxFullError(NotConnectedError):
    """The signal connection has not drained :data:`SIGNAL_OUTBOX` frames; the request was not sent."""


class NegotiationBacklogError(GreenroomError):
    """:data:`NEGOTIATION_QUEUE` peer-connection operations already wait; this one was refused."""


class LinkSink:
    """Hands one link's transport events to the RoomActor until the link is dropped (then discards them)."""

    __slots__ = ("live", "ref")

    def __init__(self, ref: pykka.ActorRef[Any]) -> None:
        self.ref = ref
        self.live = True

    def tell(self, message: Any) -> None:
        """Forward ``message`` while the link is current."""
        if self.live:
            with contextlib.suppress(pykka.ActorDeadError):
                self.ref.tell(message)


@dataclass(slots=True)
class Link:
    """Everything that belongs to one connection attempt (one generation); dropped as a whole."""

    generation: int
    url: str
    token: str
    options: ConnectOptions
    policy: IcePolicy
    sink: LinkSink
    session: ClientSignalSession = field(default_factory=ClientSignalSession)
    signal: SignalTransport | None = None
    subscriber: PeerTransport | None = None
    publisher: PeerTransport | None = None
    publisher_offer_id: int = 0
    publisher_negotiating: bool = False
    publisher_again: bool = False
    subscriber_primary: bool = True
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    frames_sent: int = 0
    ops_refused: int = 0
    _outbox: collections.deque[bytes] = field(default_factory=collections.deque)
    _writer: asyncio.Task[None] | None = None
    _ops: collections.deque[Callable[[], Awaitable[None]]] = field(default_factory=collections.deque)
    _negotiator: asyncio.Task[None] | None = None
    _opener: asyncio.Task[None] | None = None
    _waiting: list[Done] = field(default_factory=list)
    _promised: dict[int, Done] = field(default_factory=dict)
    _promises: int = 0

    # -- signal connection --------------------------------------------------------------------------------

    def open(self, params: dict[str, str]) -> None:
        """Connect the signal WebSocket in the opener task (a refusal comes back as ``LinkRefused``)."""
        self.signal = SignalTransport(self.sink)
        self._opener = asyncio.get_running_loop().create_task(self._open(params), name="greenroom-link-open")

    async def _open(self, params: dict[str, str]) -> None:
        assert self.signal is not None
        try:
            await self.signal.connect(self.url, self.token, params, timeout=self.options.timeout)
        except SignalConnectError as exc:
            self.sink.tell(LinkRefused(self.generation, describe_refusal(exc), exc.status in (401, 403)))
            return
        _log.debug("signal connected to %s", self.url)

    # -- signal out ---------------------------------------------------------------------------------------

    def post(self, message: Any) -> None:
        """Encode a signal request now and queue it for the writer (requests keep their order).

        Raises:
            NotConnectedError: the signal connection is closed, or its outbox is full.
        """
        self._check_open()
        self.post_frame(self.session.send(message))

    def post_frame(self, data: bytes) -> None:
        """Queue an already encoded signal frame (the session's pings)."""
        self._check_open()
        if len(self._outbox) >= SIGNAL_OUTBOX:
            raise SignalOutboxFullError(f"{SIGNAL_OUTBOX} signal frames wait for the server already")
        self._outbox.append(data)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(
                self._write(), name="greenroom-signal-writer"
            )

    def _check_open(self) -> None:
        if self.signal is None or not self.sink.live:
            raise NotConnectedError("the signal connection is closed")

    async def _write(self) -> None:
        while self._outbox and self.signal is not None:
            data = self._outbox[0]
            try:
                await self.signal.send(data)
            except GreenroomError as exc:  # the link is lost; the transport reports the close itself
                _log.debug("signal write failed: %s", exc)
                self._outbox.clear()
                return
            self._outbox.popleft()
            self.frames_sent += 1

    # -- peer connections ---------------------------------------------------------------------------------

    def new_peer(self, role: PeerRole) -> PeerTransport:
        """A peer connection of this link (the publisher creates ``_reliable``/``_lossy``)."""
        return PeerTransport(
            role, self.sink, policy=self.policy, create_data_channels=role is PeerRole.PUBLISHER
        )

    def _queue(self, op: Callable[[], Awaitable[None]]) -> None:
        """Run ``op`` after the operations already asked (raises NegotiationBacklogError when full)."""
        if len(self._ops) >= NEGOTIATION_QUEUE:
            self.ops_refused += 1
            raise NegotiationBacklogError(f"{NEGOTIATION_QUEUE} peer-connection operations wait already")
        self._ops.append(op)
        if self._negotiator is None or self._negotiator.done():
            self._negotiator = asyncio.get_running_loop().create_task(
                self._negotiate(), name="greenroom-link-negotiator"
            )

    async def _negotiate(self) -> None:
        while self._ops and self.sink.live:
            op = self._ops.popleft()
            try:
                await op()
            except Exception:  # a bug in an operation must not silence the ones after it
                _log.exception("a peer-connection operation failed")

    def answer(self, offer: Offer) -> None:
        """Answer the server's subscriber offer (the subscriber PC is created on the first one)."""
        if self.subscriber is None:
            self.subscriber = self.new_peer(PeerRole.SUBSCRIBER)
        subscriber = self.subscriber

        async def op() -> None:
            try:
                sdp = await subscriber.create_answer(offer.sdp)
                self.post(Answer(sdp=sdp, id=offer.id))
            except GreenroomError as exc:
                _log.warning("cannot answer the subscriber offer: %s", exc)

        self._queue(op)

    def apply_answer(self, answer: Answer) -> None:
        """The server's answer to our publisher offer; offers again if a change waited for it."""

        async def op() -> None:
            if self.publisher is None:
                return
            try:
                await self.publisher.set_remote_description(answer.sdp, "answer")
            except GreenroomError as exc:
                _log.warning("cannot apply the publisher answer: %s", exc)
            self.publisher_negotiating = False
            if self.publisher_again:
                self.publisher_again = False
                await self._offer_publisher(self._after_offer())

        self._queue(op)

    def trickle(self, trickle: Trickle) -> None:
        """A remote ICE candidate for one of the PCs (added after the descriptions asked before it)."""

        async def op() -> None:
            peer = self.publisher if trickle.target is SignalTarget.PUBLISHER else self.subscriber
            if peer is not None and trickle.candidate.candidate:
                await peer.add_ice_candidate(trickle.candidate)

        self._queue(op)

    def ensure_publisher(self, *, offer: bool = True) -> PeerTransport:
        """Create the publisher PC (with ``_reliable``/``_lossy``) on first use, and offer it unless the
        caller adds a track first and offers then (one offer for both: aiortc's bundling traps)."""
        if self.publisher is None:
            self.publisher = self.new_peer(PeerRole.PUBLISHER)
            if offer:
                self.negotiate_publisher()
        return self.publisher

    def negotiate_publisher(self, done: Done | None = None) -> None:
        """Offer the publisher PC once the operations before it ran; ``done`` is told when the offer went out
        (one offer outstanding at a time: a change while one is outstanding is offered after its answer)."""
        callbacks = [self._promise(done)] if done is not None else []

        async def op() -> None:
            await self._offer_publisher(callbacks)

        try:
            self._queue(op)
        except GreenroomError as exc:
            _tell(callbacks, exc)

    def _promise(self, done: Done) -> Done:
        """``done``, told exactly once: by the negotiation, or by :meth:`cut` if the link goes first."""
        self._promises += 1
        key = self._promises
        self._promised[key] = done

        def once(error: GreenroomError | None) -> None:
            if self._promised.pop(key, None) is not None:
                done(error)

        return once

    def _after_offer(self) -> list[Done]:
        waiting, self._waiting = self._waiting, []
        return waiting

    async def _offer_publisher(self, callbacks: list[Done]) -> None:
        if self.publisher is None:
            _tell(callbacks, None)
            return
        if self.publisher_negotiating:  # asked again after the answer; the callers wait for that offer
            self.publisher_again = True
            self._waiting.extend(callbacks)
            return
        self.publisher_negotiating = True
        self.publisher_offer_id += 1
        try:
            sdp = await self.publisher.create_offer()
            self.post(Offer(sdp=sdp, id=self.publisher_offer_id))
        except GreenroomError as exc:
            self.publisher_negotiating = False
            _tell(callbacks, exc)
            return
        _tell(callbacks, None)

    def primary(self) -> PeerRole:
        """The PC whose connection makes the room connected."""
        return PeerRole.SUBSCRIBER if self.subscriber_primary else PeerRole.PUBLISHER

    # -- teardown -----------------------------------------------------------------------------------------

    def cut(self) -> None:
        """Nothing of this link reaches the actor any more: its events are dropped, its timers stopped, and
        whoever waits for a negotiation is told it will not happen."""
        self.sink.live = False
        for timer in self.timers:
            timer.cancel()
        promised, self._promised = list(self._promised.values()), {}
        self._waiting.clear()
        _tell(promised, NotConnectedError("the connection was closed before the offer went out"))

    async def release(self, send_leave: bool) -> None:
        """Drop the link (:meth:`cut`), leave (if joined), close its tasks and transports."""
        self.cut()
        tasks = [t for t in (self._opener, self._negotiator, self._writer) if t is not None]
        self._opener = self._negotiator = self._writer = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._outbox.clear()
        self._ops.clear()
        if send_leave and self.signal is not None and self.session.state is ClientState.JOINED:
            with contextlib.suppress(GreenroomError, OSError, TimeoutError):
                await asyncio.wait_for(self.signal.send(self.session.send(Leave())), CLOSE_TIMEOUT)
        closers = [p.close() for p in (self.publisher, self.subscriber) if p is not None]
        if self.signal is not None:
            closers.append(self.signal.close())
        for closer in closers:
            try:
                await asyncio.wait_for(closer, CLOSE_TIMEOUT)
            except (TimeoutError, Exception):
                _log.warning("a transport did not close cleanly", exc_info=True)


def _tell(callbacks: list[Done], error: GreenroomError | None) -> None:
    for callback in callbacks:
        callback(error)
