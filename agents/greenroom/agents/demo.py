"""The demo's three bots, written as :class:`~greenroom.agents.Agent` s (what ``greenroom demo`` runs).

* :class:`Greeter` welcomes every participant that joins;
* :class:`EchoBot` echoes chat messages with its own timestamp;
* :class:`Chatter` sends N messages to the echo bot, one per tick, measures the round trip and the one-way
  latency (every bot runs in one process, so one monotonic clock serves both ends), and re-sends what is
  still unanswered after :data:`RESEND_AFTER`.

Each bot is the logic of its own job: a crash of the echo bot (the demo injects one with
``JobHandle.tell(InjectCrash())``) restarts only its logic — it stays in the room, nobody sees it leave;
the chat messages queued behind the crash go to its next run (the restart stash); the chatter re-sends
whatever stays unanswered for :data:`RESEND_AFTER`, as a safety net. The composition (a dev
server, three jobs, the printout) is ``greenroom.cli.demo``: this layer never imports the dev server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from greenroom import rtc
from greenroom.agents.agent import Agent, RoomEvent

__all__ = [
    "CHATTER",
    "ECHO",
    "GREETER",
    "RESEND_AFTER",
    "Board",
    "Bot",
    "Chatter",
    "EchoBot",
    "Greeter",
    "InjectCrash",
    "InjectedCrashError",
    "percentile",
]

#: The bot identities.
GREETER, ECHO, CHATTER = "greeter", "echo", "chatter"
_CHAT, _ECHO_TOPIC, _GREETING = "chat", "echo", "greeting"
#: The chatter re-sends a message still unanswered after this many seconds.
RESEND_AFTER = 0.5


@dataclasses.dataclass(frozen=True, slots=True)
class InjectCrash:
    """Makes the receiving bot raise :class:`InjectedCrashError` (the demo's fault injection)."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Tick:
    """The chatter's pacing timer."""


class InjectedCrashError(RuntimeError):
    """The crash the demo injects into the echo bot."""


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of ``values`` (``nan`` when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


class Board:
    """What the bots share with the demo: the printer, counters and latency samples.

    Each bot runs on its job's logic loop and writes only its own entries; the demo reads after they
    stopped (or polls plain integers). The board outlives bot restarts, so counts survive a crash.

    Args:
        out: where events are printed.
        messages: how many chat messages the chatter sends.
    """

    def __init__(self, out: TextIO, messages: int) -> None:
        self.out = out
        self.messages = messages
        self.started = time.monotonic()
        self.sent: dict[str, int] = {GREETER: 0, ECHO: 0, CHATTER: 0}
        self.received: dict[str, int] = {GREETER: 0, ECHO: 0, CHATTER: 0}
        self.round_trips: list[float] = []
        self.one_way: list[float] = []
        self.retransmitted = 0
        self.incarnations: dict[str, int] = {}
        self.echoed = 0
        self.halfway: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.done: concurrent.futures.Future[None] = concurrent.futures.Future()

    def say(self, who: str, text: str) -> None:
        """Print one line, stamped with the time since the demo started."""
        print(f"[{time.monotonic() - self.started:6.2f}s] {who:<10} {text}", file=self.out, flush=True)

    def progress(self, echoed: int) -> None:
        """Record how many distinct messages were echoed; completes :attr:`halfway` and :attr:`done`."""
        self.echoed = echoed
        if echoed >= self.messages // 2 and not self.halfway.done():
            self.halfway.set_result(None)
        if echoed >= self.messages and not self.done.done():
            self.done.set_result(None)

    def fail(self, error: BaseException) -> None:
        """The bots' supervisor gave up: the demo cannot complete (runs on the runtime loop)."""
        self.say("supervisor", f"gave up: {error}")
        for future in (self.halfway, self.done):
            if not future.done():
                future.set_exception(error)


# -------------------------------------------------------------------------------------------- the bots


def _describe(name: str, args: tuple[Any, ...]) -> str:
    match name:
        case "participant_connected" | "participant_disconnected":
            return f"{name}: {args[0].identity} ({args[0].sid})"
        case "data_received":
            packet = args[0]
            sender = packet.participant.identity if packet.participant is not None else "server"
            text = bytes(packet.data).decode(errors="replace")
            return f"data_received from {sender} [{packet.topic}]: {text}"
        case _:
            return f"{name}{args!r}"


class Bot(Agent):
    """A demo bot: prints what it gets, counts what it sends and receives on the shared board.

    Subclasses override :meth:`joined`, :meth:`on_room_event` and :meth:`on_other`.
    """

    def __init__(self, board: Board) -> None:
        self.board = board

    async def on_enter(self) -> None:
        """Say where it is (and that it was restarted without leaving), then :meth:`joined`."""
        again = ""
        if self.ctx.restarts:
            again = f" (restart {self.ctx.restarts}: restarted by its supervisor, never left the room)"
        self.board.say(
            self.identity, f"in room {self.room.name!r} as {self.room.local_participant.sid}{again}"
        )
        await self.joined()

    async def on_message(self, message: Any) -> None:
        """Room events → :meth:`on_room_event`; :class:`InjectCrash` crashes the bot."""
        match message:
            case RoomEvent(name=name, args=args):
                if name == "data_received":
                    self.board.received[self.identity] += 1
                if self.loud(name, args):
                    self.board.say(self.identity, _describe(name, args))
                await self.on_room_event(name, args)
            case InjectCrash():
                self.board.say(self.identity, "CRASHED (InjectedCrashError: injected crash)")
                raise InjectedCrashError("injected crash")
            case _:
                await self.on_other(message)

    def loud(self, name: str, args: tuple[Any, ...]) -> bool:
        """Whether to print this event (subclasses quieten the high-volume ones)."""
        return True

    async def joined(self) -> None:
        """Called once in the room (again after a restart)."""

    async def on_room_event(self, name: str, args: tuple[Any, ...]) -> None:
        """Handle one room event (in mailbox order)."""

    async def on_other(self, message: Any) -> None:
        """Handle a message that is not a room event."""

    async def say_to(self, payload: str, *, to: str, topic: str) -> None:
        """Publish ``payload`` reliably to ``to`` and count it."""
        await self.send(payload, to=to, topic=topic)
        self.board.sent[self.identity] += 1


class Greeter(Bot):
    """Welcomes each participant that joins ("welcome back" to an identity it has seen before)."""

    def __init__(self, board: Board) -> None:
        super().__init__(board)
        self.greeted: set[str] = set()  # participant sids
        self.seen: set[str] = set()  # identities

    async def joined(self) -> None:
        """Greet those already here."""
        for participant in list(self.room.remote_participants.values()):
            await self._greet(participant)

    async def on_room_event(self, name: str, args: tuple[Any, ...]) -> None:
        """``participant_connected`` → a welcome message to that participant."""
        if name == "participant_connected":
            await self._greet(args[0])

    async def _greet(self, participant: rtc.RemoteParticipant) -> None:
        if participant.sid in self.greeted:
            return
        self.greeted.add(participant.sid)
        again = participant.identity in self.seen
        self.seen.add(participant.identity)
        text = f"welcome {'back' if again else 'to the room'}, {participant.identity}!"
        await self.say_to(text, to=participant.identity, topic=_GREETING)


class EchoBot(Bot):
    """Echoes every chat message to its sender, adding the time it echoed it."""

    def loud(self, name: str, args: tuple[Any, ...]) -> bool:
        """Print only the first few chat messages and every 50th."""
        return name != "data_received" or args[0].topic != _CHAT or _seq(args[0]) % 50 < 2

    async def on_room_event(self, name: str, args: tuple[Any, ...]) -> None:
        """``data_received`` on topic ``chat`` → the same message back, with ``echoed_at``."""
        if name != "data_received" or args[0].topic != _CHAT or args[0].participant is None:
            return
        message = json.loads(bytes(args[0].data))
        message["echoed_at"] = time.monotonic()
        await self.say_to(json.dumps(message), to=args[0].participant.identity, topic=_ECHO_TOPIC)


def _seq(packet: rtc.DataPacket) -> int:
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return int(json.loads(bytes(packet.data))["seq"])
    return 0


class Chatter(Bot):
    """Sends ``board.messages`` chat messages to the echo bot, one per tick, and measures the echoes.

    Each tick it also re-sends the messages unanswered for :data:`RESEND_AFTER` (those the echo bot lost
    in its crash).

    Args:
        interval: seconds between two messages.
    """

    def __init__(self, board: Board, interval: float) -> None:
        super().__init__(board)
        self.interval = interval
        self.next_seq = 0
        self.outstanding: dict[int, float] = {}  # seq -> last send time
        self.answered: set[int] = set()

    def loud(self, name: str, args: tuple[Any, ...]) -> bool:
        """Print only the first few echoes and every 50th."""
        return name != "data_received" or args[0].topic != _ECHO_TOPIC or _seq(args[0]) % 50 < 2

    async def joined(self) -> None:
        """Start ticking."""
        self._arm()

    def _arm(self) -> None:
        asyncio.get_running_loop().call_later(self.interval, self.tell, _Tick())

    async def on_other(self, message: Any) -> None:
        """A tick: re-send what waited too long, send the next message if the echo bot is here."""
        if not isinstance(message, _Tick) or len(self.answered) >= self.board.messages:
            return
        now = time.monotonic()
        late = [seq for seq, sent in self.outstanding.items() if now - sent > RESEND_AFTER]
        if late:
            self.board.say(self.identity, f"re-sending {len(late)} unanswered")
        for seq in late:
            self.board.retransmitted += 1
            await self._send(seq)
        if ECHO in self.room.remote_participants and self.next_seq < self.board.messages:
            await self._send(self.next_seq)
            self.next_seq += 1
        self._arm()

    async def _send(self, seq: int) -> None:
        sent = time.monotonic()
        self.outstanding[seq] = sent
        await self.say_to(json.dumps({"seq": seq, "sent": sent}), to=ECHO, topic=_CHAT)

    async def on_room_event(self, name: str, args: tuple[Any, ...]) -> None:
        """Echoes → latency samples."""
        if name == "data_received" and args[0].topic == _ECHO_TOPIC:
            self._echoed(json.loads(bytes(args[0].data)))

    def _echoed(self, message: Mapping[str, Any]) -> None:
        now = time.monotonic()
        seq = int(message["seq"])
        sent = self.outstanding.pop(seq, None)
        if sent is None or seq in self.answered:
            return  # a duplicate (an echo of a re-sent message)
        self.answered.add(seq)
        self.board.round_trips.append(now - sent)
        self.board.one_way.append(float(message["echoed_at"]) - sent)
        if len(self.answered) == self.board.messages:
            self.board.say(self.identity, f"all {self.board.messages} messages echoed")
        self.board.progress(len(self.answered))
