"""One connection attempt of a room (a *link*): the signal connection, its session, the two peer connections.

The RoomActor opens a new :class:`Link` per attempt (a *generation*) and drops it as a whole when the
attempt fails or the connection is lost; each link's transports report through a :class:`LinkSink` that is
cut when the link is dropped, so a dead link's late events never reach the next one.

**Nothing here makes the RoomActor wait on the network.** Signal requests are *posted* (:meth:`Link.post`):
encoded by the sans-I/O session at once, in order, and written by the link's own writer task, so a server
that stops reading cannot stall the actor's mailbox (the outbox is bounded: :data:`SIGNAL_OUTBOX` frames,
then :class:`SignalOutboxFullError`). Data packets have their own plane (:mod:`greenroom.actors.dataplane`).
What remains awaited in a handler is local work: aiortc's offer/answer (ICE gathering on the addresses of
the :class:`~greenroom.runtime.ice.IcePolicy`; with STUN/TURN servers configured, gathering can take up to
aiortc's gathering timeout — see docs/architecture.md, "Decisions").

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
from dataclasses import dataclass, field
from typing import Any

import pykka

from greenroom.actors.messages import ConnectOptions
from greenroom.codecs.errors import GreenroomError
from greenroom.codecs.models import SignalTarget
from greenroom.codecs.session import ClientSignalSession, ClientState
from greenroom.codecs.signalling import Answer, Leave, Offer, Trickle
from greenroom.runtime.ice import IcePolicy
from greenroom.runtime.peer import PeerRole, PeerTransport
from greenroom.runtime.signal_transport import SignalTransport

__all__ = ["CLOSE_TIMEOUT", "SIGNAL_OUTBOX", "Link", "LinkSink", "NotConnectedError", "SignalOutboxFullError"]

_log = logging.getLogger("greenroom.actors.link")

#: Seconds the teardown gives each transport to close.
CLOSE_TIMEOUT = 3.0
#: Signal frames a link holds for its writer before refusing more.
SIGNAL_OUTBOX = 1_000


class NotConnectedError(GreenroomError):
    """The room is not connected (or disconnected while the request was pending)."""


class SignalOutboxFullError(NotConnectedError):
    """The signal connection has not drained :data:`SIGNAL_OUTBOX` frames; the request was not sent."""


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
    _outbox: collections.deque[bytes] = field(default_factory=collections.deque)
    _writer: asyncio.Task[None] | None = None

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

    async def answer(self, offer: Offer) -> bool:
        """Answer the server's subscriber offer; False when aiortc could not apply it (logged)."""
        if self.subscriber is None:
            self.subscriber = self.new_peer(PeerRole.SUBSCRIBER)
        try:
            sdp = await self.subscriber.create_answer(offer.sdp)
        except GreenroomError as exc:
            _log.warning("cannot answer the subscriber offer: %s", exc)
            return False
        self.post(Answer(sdp=sdp, id=offer.id))
        return True

    async def apply_answer(self, answer: Answer) -> None:
        """The server's answer to our publisher offer; offers again if a change waited for it."""
        if self.publisher is None:
            return
        try:
            await self.publisher.set_remote_description(answer.sdp, "answer")
        except GreenroomError as exc:
            _log.warning("cannot apply the publisher answer: %s", exc)
        self.publisher_negotiating = False
        if self.publisher_again:
            self.publisher_again = False
            await self.negotiate_publisher()

    async def trickle(self, trickle: Trickle) -> None:
        """A remote ICE candidate for one of the PCs."""
        peer = self.publisher if trickle.target is SignalTarget.PUBLISHER else self.subscriber
        if peer is not None and trickle.candidate.candidate:
            await peer.add_ice_candidate(trickle.candidate)

    async def ensure_publisher(self, *, offer: bool = True) -> PeerTransport:
        """Create the publisher PC (with ``_reliable``/``_lossy``) on first use, and offer it unless the
        caller adds a track first and offers then (one offer for both: aiortc's bundling traps)."""
        if self.publisher is None:
            self.publisher = self.new_peer(PeerRole.PUBLISHER)
            if offer:
                await self.negotiate_publisher()
        return self.publisher

    async def negotiate_publisher(self) -> None:
        """Offer the publisher PC; one offer outstanding at a time, again after its answer if asked."""
        if self.publisher is None:
            return
        if self.publisher_negotiating:
            self.publisher_again = True
            return
        self.publisher_negotiating = True
        self.publisher_offer_id += 1
        sdp = await self.publisher.create_offer()
        self.post(Offer(sdp=sdp, id=self.publisher_offer_id))

    def primary(self) -> PeerRole:
        """The PC whose connection makes the room connected."""
        return PeerRole.SUBSCRIBER if self.subscriber_primary else PeerRole.PUBLISHER

    # -- teardown -----------------------------------------------------------------------------------------

    async def release(self, send_leave: bool) -> None:
        """Drop the link: nothing of it reaches the actor any more; leave (if joined), close transports."""
        self.sink.live = False
        for timer in self.timers:
            timer.cancel()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        self._outbox.clear()
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
