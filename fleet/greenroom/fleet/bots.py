"""Ready-made bots for fleets (load tests, probes), written with the Agent API's actor shape.

* :class:`Idle` — joins and stays: the cheapest presence.
* :class:`Chatter` — publishes a small message to its room every ``interval`` seconds and records the
  one-way latency of every message it receives from the others (the payload carries the sender's
  ``time.monotonic()``: on Linux every process of a host shares that clock, so this holds across a
  fleet's processes on one machine; across machines it is meaningless and not recorded — see
  ``same_host``).
* :class:`Flaky` — a :class:`Chatter` whose handler raises with probability ``crash_rate`` per message (the
  chaos test's bot: its job's supervisor restarts its logic in the same participant).

Use them in a spec as ``agent = "greenroom.fleet.bots:Chatter"``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import time
from dataclasses import dataclass
from typing import Any

from greenroom.agents import Agent, RoomEvent
from greenroom.agents.context import AutoSubscribe
from greenroom.fleet.stats import record_latency

__all__ = ["Chatter", "Flaky", "FlakyCrashError", "Idle"]

_HOST = socket.gethostname()


@dataclass(frozen=True, slots=True)
class _Beat:
    """A Chatter's pacing timer (sent to its own mailbox)."""


def _quiet(task: asyncio.Future[None]) -> None:
    """A publish that failed (the room closed under it) is not the bot's crash: read its outcome."""
    if not task.cancelled():
        task.exception()


class FlakyCrashError(RuntimeError):
    """The crash a :class:`Flaky` bot injects into its own handler."""


class Idle(Agent):
    """Joins its room and stays there."""

    events = ()
    auto_subscribe = AutoSubscribe.SUBSCRIBE_NONE


class Chatter(Agent):
    """Says something every ``interval`` seconds; measures how long the others' messages took.

    Args:
        interval: seconds between two messages (0: never speaks, only listens).
        topic: the data topic it speaks and listens on.
        size: payload padding in bytes.
    """

    events = ("data_received",)
    auto_subscribe = AutoSubscribe.SUBSCRIBE_NONE

    def __init__(self, interval: float = 1.0, topic: str = "fleet", size: int = 0) -> None:
        self.interval = interval
        self.topic = topic
        self.padding = "x" * max(0, size)
        self.sent = 0
        self.skipped = 0
        self._timer: asyncio.TimerHandle | None = None
        self._sending: asyncio.Task[None] | None = None

    async def on_enter(self) -> None:
        """Start speaking (after a restart too: the timer belonged to the previous incarnation)."""
        if self.interval > 0:
            self._schedule(random.random() * self.interval)  # spread the fleet's messages over time

    def _schedule(self, delay: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(delay, self.tell, _Beat())

    async def on_message(self, message: Any) -> None:
        """A beat: speak; a message from another bot: record its latency."""
        match message:
            case _Beat():
                self._schedule(self.interval)
                self._speak()
            case RoomEvent("data_received", (packet, *_)) if packet.topic == self.topic:
                self._heard(bytes(packet.data))

    def _speak(self) -> None:
        """Publish in a task of its own: while the room reconnects a publish waits (it is held, not
        refused), and a handler that awaited it would hold the agent's mailbox — and miss its liveness
        probe. One publish in flight at a time; a beat that finds one still going is skipped (counted)."""
        if self._sending is not None and not self._sending.done():
            self.skipped += 1
            return
        self.sent += 1
        body = {"t": time.monotonic(), "host": _HOST, "pid": os.getpid(), "n": self.sent, "pad": self.padding}
        publish = self.room.local_participant.publish_data(json.dumps(body), topic=self.topic)
        self._sending = asyncio.ensure_future(publish)
        self._sending.add_done_callback(_quiet)

    @staticmethod
    def _heard(data: bytes) -> None:
        try:
            body = json.loads(data)
            sent, host = float(body["t"]), body["host"]
        except (ValueError, KeyError, TypeError):
            return
        if host == _HOST:  # same_host: one monotonic clock
            record_latency(max(0.0, time.monotonic() - sent))


class Flaky(Chatter):
    """A :class:`Chatter` whose handler raises :class:`FlakyCrashError` with probability ``crash_rate``.

    Args:
        crash_rate: the probability that handling one message crashes (0 ≤ rate ≤ 1).
        interval, topic, size: as :class:`Chatter`.
    """

    def __init__(self, crash_rate: float = 0.1, interval: float = 1.0, topic: str = "fleet", size: int = 0):
        super().__init__(interval, topic, size)
        if not 0.0 <= crash_rate <= 1.0:
            raise ValueError(f"crash_rate must be within [0, 1], not {crash_rate}")
        self.crash_rate = crash_rate

    async def on_message(self, message: Any) -> None:
        """Crash now and then; otherwise as a Chatter."""
        if isinstance(message, RoomEvent) and random.random() < self.crash_rate:
            raise FlakyCrashError(f"{self.identity} crashed on purpose")
        await super().on_message(message)
