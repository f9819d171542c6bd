"""A stream of numbered reliable packets from one room client to another, and what became of each.

The sender publishes ``0, 1, 2 …`` (as text) on a topic at a steady rate, each in its own task so that
publishing goes on while the room reconnects (held) — as an application that does not wait for each send.
The receiver records what arrives. A fault is injected meanwhile; then the stream stops, a last *marker*
packet is sent, and once it has arrived (the reliable channel is ordered: nothing sent before it is still on
its way) the numbers are compared: lost, duplicated, out of order, and what the sender was told (a failed
``publish_data``, a ``data_undelivered`` event's count).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from greenroom import rtc
from tests.waiting import recorded_logs, wait_until

TOPIC = "n"
MARKER = "end"


@dataclass
class Outcome:
    """What became of one stream."""

    sent: int
    """``publish_data`` calls that returned success."""
    failed: int
    """``publish_data`` calls that raised (the sender knows)."""
    received: int
    lost: list[int]
    """Returned success, never arrived."""
    duplicated: int
    reordered: int
    reported: int
    """Packets the sender was told might not be delivered (``data_undelivered`` counts)."""
    resent: int = 0
    """Packets sent again after a fault (greenroom senders; the receivers dropped those they had)."""

    @property
    def lost_silently(self) -> int:
        """Lost beyond what the sender was told."""
        return max(0, len(self.lost) - self.reported)

    def line(self, fault: str) -> str:
        return (
            f"{fault}: sent {self.sent}, failed {self.failed}, lost {len(self.lost)} "
            f"(reported {self.reported}, silently {self.lost_silently}), duplicated {self.duplicated}, "
            f"reordered {self.reordered}; resent {self.resent}"
        )


@dataclass
class Stream:
    """Numbered reliable packets ``sender`` → ``receiver`` (the receiver's identity as destination when
    ``direct``)."""

    sender: rtc.Room
    receiver: rtc.Room
    rate: float = 50.0
    direct: bool = False
    got: list[int] = field(default_factory=list)
    ok: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    undelivered: list[tuple[str, int, str]] = field(default_factory=list)
    marked: bool = False
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _pump: asyncio.Task[None] | None = None
    _next: int = 0

    def __post_init__(self) -> None:
        self.receiver.on("data_received", self._received)
        self.sender.on("data_undelivered", self._undelivered)

    def _received(self, packet: rtc.DataPacket) -> None:
        if packet.topic != TOPIC:
            return
        text = packet.data.decode()
        if text == MARKER:
            self.marked = True
        else:
            self.got.append(int(text))

    def _undelivered(self, identity: str, count: int, _reason: str) -> None:
        self.undelivered.append((identity, count, _reason))

    async def _send(self, payload: str, number: int | None) -> None:
        destinations = [self.receiver.local_participant.identity] if self.direct else None
        try:
            await self.sender.local_participant.publish_data(
                payload, reliable=True, topic=TOPIC, destination_identities=destinations
            )
        except Exception as exc:  # the sender is told: not lost silently
            if number is not None:
                self.failed.append(number)
                self.errors[type(exc).__name__ + ": " + str(exc)[:60]] += 1
            return
        if number is not None:
            self.ok.append(number)

    def start(self) -> None:
        """Publish one packet every ``1/rate`` seconds until :meth:`finish`."""

        async def pump() -> None:
            while True:
                n, self._next = self._next, self._next + 1
                task = asyncio.create_task(self._send(str(n), n))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                await asyncio.sleep(1 / self.rate)

        self._pump = asyncio.create_task(pump())

    async def sent_at_least(self, count: int, timeout: float = 30) -> None:
        """Wait until ``count`` more packets were published (the stream is flowing)."""
        target = self._next + count
        await wait_until(lambda: self._next >= target, timeout=timeout, what=f"{count} more packets")

    async def received_at_least(self, count: int, timeout: float = 30) -> None:
        """Wait until ``count`` more packets arrived (the path works again)."""
        target = len(self.got) + count
        await wait_until(lambda: len(self.got) >= target, timeout=timeout, what=f"{count} more arrivals")

    async def finish(self, timeout: float = 60) -> Outcome:
        """Stop, wait for every send to be answered, send the marker and wait for it; the outcome."""
        assert self._pump is not None
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump
        if self._tasks:
            await asyncio.wait_for(asyncio.gather(*self._tasks), timeout)

        async def marker() -> None:
            await self._send(MARKER, None)

        await marker()
        await wait_until(lambda: self.marked, timeout=timeout, what="the marker to arrive")
        return self.outcome()

    def outcome(self) -> Outcome:
        got = set(self.got)
        reordered = sum(1 for a, b in zip(self.got, self.got[1:], strict=False) if b < a)
        return Outcome(
            sent=len(self.ok),
            failed=len(self.failed),
            received=len(self.got),
            lost=sorted(set(self.ok) - got),
            duplicated=len(self.got) - len(got),
            reordered=reordered,
            reported=sum(count for _identity, count, _why in self.undelivered),
        )


@contextlib.contextmanager
def counting_resends() -> Iterator[list[int]]:
    """The sizes of the resends greenroom's senders make inside the block (from their INFO log)."""
    logger = logging.getLogger("greenroom.actors.room")
    level = logger.level
    logger.setLevel(logging.INFO)
    sizes: list[int] = []
    try:
        with recorded_logs("greenroom.actors.room") as logs:
            yield sizes
    finally:
        logger.setLevel(level)
        sizes.extend(r.args[0] for r in logs.records if "again after a fault" in r.msg)  # type: ignore[index,misc]


def summary(outcomes: dict[str, Any]) -> str:
    return "\n".join(o.line(name) for name, o in outcomes.items())
