"""``greenroom demo``: three bots talk in one room, through their mailboxes, under a supervisor.

What it shows:

* the embedded dev server on an ephemeral loopback port (or the server of ``LIVEKIT_URL`` with
  ``LIVEKIT_API_KEY``/``LIVEKIT_API_SECRET``, when all three are set);
* bots as actors: each :class:`Bot` is an :class:`~greenroom.actors.core.AsyncioActor` owning an
  ``rtc.Room``; the room's callbacks only ``tell`` the bot a :class:`RoomEventMessage`, so every room event
  reaches the bot's logic through its mailbox, one at a time, and the bot answers from its handler;
* three bots: a :class:`Greeter` welcomes every participant, an :class:`EchoBot` echoes chat messages with
  its own timestamp, a :class:`Chatter` sends N messages to the echo bot and measures the round trip and the
  one-way latency (both bots run in this process, so one monotonic clock serves both ends);
* supervision: the bots are children of a ``one_for_one`` :class:`~greenroom.actors.supervision.Supervisor`;
  halfway through, the demo crashes the echo bot once (an exception in its handler); it leaves the room,
  the supervisor restarts it, the new incarnation rejoins, the greeter welcomes it back and the chatter
  re-sends what was unanswered;
* the room events as they happen, then a summary: messages sent and received per bot, latency p50/p99, and
  the supervisor's restarts. The exit code is 0 when every chat message was echoed.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import math
import os
import secrets
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TextIO

import pykka

from greenroom import rtc
from greenroom.actors.core import AsyncioActor, stop_actor
from greenroom.actors.supervision import (
    ChildSpec,
    Intensity,
    RestartEvent,
    RestartIntensityError,
    Strategy,
    Supervisor,
)
from greenroom.codecs.tokens import Claims, VideoGrants, mint_token
from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from greenroom.rtc.room import EventTypes
from greenroom.runtime import loop as runtime

__all__ = [
    "Board",
    "Bot",
    "Chatter",
    "DemoOptions",
    "EchoBot",
    "Greeter",
    "InjectCrash",
    "InjectedCrashError",
    "RoomEventMessage",
    "add_arguments",
    "main",
    "percentile",
    "run_demo",
]

_log = logging.getLogger("greenroom.devserver.demo")

#: The bot identities, in supervisor start order.
GREETER, ECHO, CHATTER = "greeter", "echo", "chatter"
_CHAT, _ECHO_TOPIC, _GREETING = "chat", "echo", "greeting"


# -------------------------------------------------------------------------------------------- messages


@dataclasses.dataclass(frozen=True, slots=True)
class RoomEventMessage:
    """A room event delivered to a bot's mailbox: the ``livekit.rtc`` event name and its arguments."""

    name: str
    args: tuple[Any, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class InjectCrash:
    """Makes the receiving bot raise :class:`InjectedCrashError` (the demo's fault injection)."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Tick:
    """The chatter's pacing timer."""


class InjectedCrashError(RuntimeError):
    """The crash the demo injects into the echo bot."""


# ------------------------------------------------------------------------------------------ the board


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of ``values`` (``nan`` when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


class Board:
    """What the bots share with the demo: the printer, counters and latency samples.

    Bots run on the runtime loop and are the only writers; the demo reads after they stopped (or polls
    plain integers). The board outlives bot restarts, so counts survive a crash.

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


class Bot(AsyncioActor):
    """A bot: an actor that owns one ``rtc.Room`` and handles its events as mailbox messages.

    Subclasses override :meth:`joined` and :meth:`on_room_event`, and send with :meth:`send`. The room's
    callbacks run on the runtime loop (where the bot lives) and do nothing but ``tell`` the bot.

    Args:
        identity: the bot's identity (also its label when printing).
        url: the server URL.
        token: a join token for ``identity``.
        board: the shared printer and counters.
    """

    events: ClassVar[tuple[EventTypes, ...]] = (
        "participant_connected",
        "participant_disconnected",
        "data_received",
    )

    def __init__(self, identity: str, url: str, token: str, board: Board) -> None:
        super().__init__()
        self.identity = identity
        self.url = url
        self.token = token
        self.board = board
        self.room: rtc.Room | None = None

    # -- lifecycle --------------------------------------------------------------------------------------

    async def on_start(self) -> None:
        """Join the room (every event is forwarded to this bot's mailbox), then call :meth:`joined`."""
        room = rtc.Room(loop=asyncio.get_running_loop())
        for name in self.events:
            room.on(name, self._forwarder(name))
        await room.connect(self.url, self.token, rtc.RoomOptions(connect_timeout=10))
        self.room = room
        count = self.board.incarnations[self.identity] = self.board.incarnations.get(self.identity, 0) + 1
        again = f" (incarnation {count}: restarted by its supervisor)" if count > 1 else ""
        self.board.say(self.identity, f"joined room {room.name!r} as {room.local_participant.sid}{again}")
        await self.joined()

    def _forwarder(self, name: EventTypes) -> Callable[..., None]:
        def forward(*args: Any) -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                self.actor_ref.tell(RoomEventMessage(name, args))

        return forward

    async def on_stop(self) -> None:
        """Leave the room."""
        await self._leave()

    async def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Report the crash and leave the room (the supervisor decides what happens next)."""
        self.board.say(self.identity, f"CRASHED ({exception_type.__name__}: {exception_value}); leaving")
        await self._leave()

    async def _leave(self) -> None:
        room, self.room = self.room, None
        if room is not None:
            await room.disconnect()

    # -- messages ---------------------------------------------------------------------------------------

    async def on_receive(self, message: Any) -> None:
        """Dispatch room events to :meth:`on_room_event`; :class:`InjectCrash` crashes the bot."""
        match message:
            case RoomEventMessage(name=name, args=args):
                if name == "data_received":
                    self.board.received[self.identity] += 1
                if self.loud(name, args):
                    self.board.say(self.identity, _describe(name, args))
                await self.on_room_event(name, args)
            case InjectCrash():
                raise InjectedCrashError("injected crash")
            case _:
                await self.on_other(message)

    def loud(self, name: str, args: tuple[Any, ...]) -> bool:
        """Whether to print this event (subclasses quieten the high-volume ones)."""
        return True

    async def joined(self) -> None:
        """Called once connected."""

    async def on_room_event(self, name: str, args: tuple[Any, ...]) -> None:
        """Handle one room event (runs in the bot's mailbox order)."""

    async def on_other(self, message: Any) -> None:
        """Handle a message that is not a room event."""

    async def send(self, payload: str, *, to: str, topic: str) -> None:
        """Publish ``payload`` reliably to the participant ``to`` and count it."""
        if self.room is None:
            return
        await self.room.local_participant.publish_data(payload, destination_identities=[to], topic=topic)
        self.board.sent[self.identity] += 1

    def remote_identities(self) -> set[str]:
        """Who else is in the room."""
        return set() if self.room is None else set(self.room.remote_participants)


class Greeter(Bot):
    """Welcomes each participant that joins (and "welcome back" one it has seen before)."""

    def __init__(self, identity: str, url: str, token: str, board: Board) -> None:
        super().__init__(identity, url, token, board)
        self.greeted: set[str] = set()  # participant sids
        self.seen: set[str] = set()  # identities

    async def joined(self) -> None:
        """Greet those already here."""
        assert self.room is not None
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
        await self.send(text, to=participant.identity, topic=_GREETING)


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
        await self.send(json.dumps(message), to=args[0].participant.identity, topic=_ECHO_TOPIC)


def _seq(packet: rtc.DataPacket) -> int:
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return int(json.loads(bytes(packet.data))["seq"])
    return 0


class Chatter(Bot):
    """Sends ``board.messages`` chat messages to the echo bot, one per tick, and measures the echoes.

    It pauses while the echo bot is away and, when it comes back, re-sends the messages still unanswered.

    Args:
        interval: seconds between two messages.
    """

    def __init__(self, identity: str, url: str, token: str, board: Board, interval: float) -> None:
        super().__init__(identity, url, token, board)
        self.interval = interval
        self.next_seq = 0
        self.outstanding: dict[int, float] = {}  # seq -> send time
        self.answered: set[int] = set()
        self.timer: asyncio.TimerHandle | None = None

    def loud(self, name: str, args: tuple[Any, ...]) -> bool:
        """Print only the first few echoes and every 50th."""
        return name != "data_received" or args[0].topic != _ECHO_TOPIC or _seq(args[0]) % 50 < 2

    async def joined(self) -> None:
        """Start ticking."""
        self._arm()

    async def on_stop(self) -> None:
        """Stop ticking and leave."""
        if self.timer is not None:
            self.timer.cancel()
        await super().on_stop()

    def _arm(self) -> None:
        def tick() -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                self.actor_ref.tell(_Tick())

        self.timer = asyncio.get_running_loop().call_later(self.interval, tick)

    async def on_other(self, message: Any) -> None:
        """A tick: send the next message if the echo bot is here."""
        if not isinstance(message, _Tick) or len(self.answered) >= self.board.messages:
            return
        if ECHO in self.remote_identities() and self.next_seq < self.board.messages:
            await self._send(self.next_seq)
            self.next_seq += 1
        self._arm()

    async def _send(self, seq: int) -> None:
        sent = time.monotonic()
        self.outstanding[seq] = sent
        await self.send(json.dumps({"seq": seq, "sent": sent}), to=ECHO, topic=_CHAT)

    async def on_room_event(self, name: str, args: tuple[Any, ...]) -> None:
        """Echoes → latency samples; the echo bot's return → re-send what was unanswered."""
        match name:
            case "data_received" if args[0].topic == _ECHO_TOPIC:
                self._echoed(json.loads(bytes(args[0].data)))
            case "participant_connected" if args[0].identity == ECHO and self.outstanding:
                self.board.say(self.identity, f"echo is back: re-sending {len(self.outstanding)} unanswered")
                for seq in sorted(self.outstanding):
                    self.board.retransmitted += 1
                    await self._send(seq)
            case _:
                pass

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


# ---------------------------------------------------------------------------------------------- the run


@dataclasses.dataclass(frozen=True, slots=True)
class DemoOptions:
    """How the demo runs.

    Attributes:
        messages: chat messages the chatter sends.
        interval: seconds between two chat messages.
        crash: crash the echo bot once, halfway.
        room: the room name (default: ``greenroom-demo-<random>``).
        timeout: seconds the conversation may take before the demo gives up (exit 1).
    """

    messages: int = 200
    interval: float = 0.02
    crash: bool = True
    room: str | None = None
    timeout: float = 30.0


def _server_from_env(env: Mapping[str, str]) -> tuple[str, str, str] | None:
    names = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")
    values = [env.get(name, "") for name in names]
    if not any(values):
        return None
    if not all(values):
        missing = ", ".join(n for n, v in zip(names, values, strict=True) if not v)
        raise ValueError(
            f"set LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET together ({missing} unset)"
        )
    return values[0], values[1], values[2]


def _tokens(key: str, secret: str, room: str) -> dict[str, str]:
    return {
        identity: mint_token(
            key, secret, Claims(identity=identity, video=VideoGrants(room_join=True, room=room))
        )
        for identity in (GREETER, ECHO, CHATTER)
    }


def _supervisor(
    url: str, tokens: Mapping[str, str], board: Board, options: DemoOptions
) -> pykka.ActorRef[Any]:
    specs = [
        ChildSpec(GREETER, lambda: Greeter.start(GREETER, url, tokens[GREETER], board)),
        ChildSpec(ECHO, lambda: EchoBot.start(ECHO, url, tokens[ECHO], board)),
        ChildSpec(CHATTER, lambda: Chatter.start(CHATTER, url, tokens[CHATTER], board, options.interval)),
    ]
    return Supervisor.start(
        specs, strategy=Strategy.ONE_FOR_ONE, intensity=Intensity(3, 10.0), on_escalate=board.fail
    )


async def _on_runtime(coro: Any) -> Any:
    return await asyncio.wrap_future(runtime.submit(coro))


async def _converse(sup: pykka.ActorRef[Any], board: Board, options: DemoOptions) -> None:
    if options.crash:
        await asyncio.wait_for(asyncio.wrap_future(board.halfway), options.timeout)
        board.say("demo", "injecting a crash into the echo bot (its supervisor is one_for_one)")
        handle = await sup.proxy().child(ECHO)
        runtime.call_soon(handle.tell, InjectCrash())
    await asyncio.wait_for(asyncio.wrap_future(board.done), options.timeout)


def _reason(event: RestartEvent) -> str:
    exception = getattr(event.reason, "exception", None)
    if exception is None:
        return type(event.reason).__name__
    return f"crashed: {type(exception).__name__}: {exception}"


def _print_summary(board: Board, restarts: Sequence[RestartEvent], elapsed: float, ok: bool) -> None:
    out = board.out
    print("\n== summary ==", file=out)
    print(f"{'bot':<10}{'sent':>8}{'received':>10}", file=out)
    for bot in (GREETER, ECHO, CHATTER):
        print(f"{bot:<10}{board.sent[bot]:>8}{board.received[bot]:>10}", file=out)
    rtt, one_way = board.round_trips, board.one_way
    print(
        f"latency over {len(rtt)} echoed messages (chatter -> echo -> chatter): "
        f"round trip p50 {percentile(rtt, 50) * 1000:.2f} ms p99 {percentile(rtt, 99) * 1000:.2f} ms; "
        f"one way p50 {percentile(one_way, 50) * 1000:.2f} ms p99 {percentile(one_way, 99) * 1000:.2f} ms",
        file=out,
    )
    print(f"re-sent after the echo bot's restart: {board.retransmitted}", file=out)
    described = ", ".join(f"{e.failed} ({_reason(e)}, restarted after {e.delay:.3f} s)" for e in restarts)
    print(f"supervisor restarts: {len(restarts)}{': ' + described if restarts else ''}", file=out)
    print(f"demo {'OK' if ok else 'FAILED'} in {elapsed:.1f} s", file=out, flush=True)


async def run_demo(
    options: DemoOptions, *, out: TextIO = sys.stdout, env: Mapping[str, str] | None = None
) -> bool:
    """Run the demo on the running loop; the bots and their supervisor live on greenroom's runtime loop.

    Returns:
        Whether every chat message was echoed in time.
    """
    external = _server_from_env(os.environ if env is None else env)
    room = options.room or f"greenroom-demo-{secrets.token_hex(3)}"
    board = Board(out, options.messages)
    async with contextlib.AsyncExitStack() as stack:
        if external is None:
            server = await stack.enter_async_context(DevServer(ServerConfig(port=0)))
            url, key = server.url, server.config.api_key
            secret = server.config.keys[key]
            board.say("demo", f"embedded dev server at {url}; room {room!r}")
        else:
            url, key, secret = external
            board.say("demo", f"using the server at {url} (LIVEKIT_URL); room {room!r}")
        sup = _supervisor(url, _tokens(key, secret, room), board, options)
        restarts: list[RestartEvent] = []
        ok = False
        try:
            await _converse(sup, board, options)
            ok = True
        except TimeoutError:
            board.say("demo", f"gave up after {options.timeout} s: {board.echoed}/{options.messages} echoed")
        except RestartIntensityError:
            pass  # reported by Board.fail
        finally:
            with contextlib.suppress(pykka.ActorDeadError):
                restarts = await sup.proxy().restart_events()
            await _on_runtime(stop_actor(sup, timeout=10))
    _print_summary(board, restarts, time.monotonic() - board.started, ok)
    return ok


class _QuietInjectedCrash(logging.Filter):
    """The injected crash is expected: the demo prints its own line instead of a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, InjectedCrashError)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``greenroom demo`` options to ``parser``."""
    parser.add_argument("--messages", type=int, default=200, help="chat messages to send (default 200)")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between messages (0.02)")
    parser.add_argument("--no-crash", action="store_true", help="do not crash the echo bot halfway")
    parser.add_argument("--room", default=None, help="room name (default: greenroom-demo-<random>)")
    parser.add_argument("--timeout", type=float, default=30.0, help="give up after this many seconds")


def main(args: argparse.Namespace) -> int:
    """Run ``greenroom demo`` with parsed ``args``; returns the exit code (0: every message echoed)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_QuietInjectedCrash())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    options = DemoOptions(
        messages=args.messages,
        interval=args.interval,
        crash=not args.no_crash,
        room=args.room,
        timeout=args.timeout,
    )
    try:
        ok = asyncio.run(run_demo(options))
    except ValueError as exc:
        print(f"greenroom demo: {exc}", file=sys.stderr)
        return 2
    finally:
        runtime.shutdown()
    return 0 if ok else 1
