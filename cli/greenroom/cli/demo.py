"""``greenroom demo``: three agents talk in one room, each a supervised job, on an embedded dev server.

What it shows:

* the embedded dev server on an ephemeral loopback port (or the server of ``LIVEKIT_URL`` with
  ``LIVEKIT_API_KEY``/``LIVEKIT_API_SECRET``, when all three are set);
* the Agent API's actor shape: the bots of :mod:`greenroom.agents.demo` get every room event as a mailbox
  message, one at a time;
* supervision: each bot is its own job (``start_job``: connection first, logic second); halfway through,
  the demo crashes the echo bot once (an exception in its handler). Only its logic restarts: it never
  leaves the room — nobody sees it go — and the messages queued behind the crash go to its next run;
* the room events as they happen, then a summary: messages sent and received per bot, latency p50/p99,
  and the restarts. The exit code is 0 when every chat message was echoed.

This module is the composition (dev server + agents), so it lives in the command line's layer, above both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TextIO

from greenroom.actors.restarts import RestartIntensityError
from greenroom.actors.supervision import RestartEvent
from greenroom.agents import (
    CallbackError,
    Job,
    JobAssignment,
    JobHandle,
    JobResult,
    JobRoomInfo,
    JobStatus,
    agent_token,
    start_job,
)
from greenroom.agents.demo import (
    CHATTER,
    ECHO,
    GREETER,
    Board,
    Chatter,
    EchoBot,
    Greeter,
    InjectCrash,
    InjectedCrashError,
    percentile,
)
from greenroom.agents.job import Entrypoint
from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from greenroom.runtime import loop as runtime

__all__ = ["DemoOptions", "add_arguments", "main", "run_demo"]


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


def _start_bots(
    url: str, key: str, secret: str, *, room: str, board: Board, options: DemoOptions
) -> dict[str, JobHandle]:
    def on_status(result: JobResult) -> None:
        if result.status is JobStatus.FAILED:
            board.fail(RestartIntensityError(result.error))

    entrypoints: dict[str, Entrypoint] = {
        GREETER: Greeter.entrypoint(board),
        ECHO: EchoBot.entrypoint(board),
        CHATTER: Chatter.entrypoint(board, options.interval),
    }
    handles = {}
    for identity, entrypoint in entrypoints.items():
        job = Job(f"demo-{identity}", JobRoomInfo(room), agent_name=identity)
        assignment = JobAssignment(job, url, agent_token(key, secret, room, identity))
        handles[identity] = start_job(assignment, entrypoint, on_status=on_status)
    return handles


async def _converse(handles: Mapping[str, JobHandle], board: Board, options: DemoOptions) -> None:
    if options.crash:
        await asyncio.wait_for(asyncio.wrap_future(board.halfway), options.timeout)
        board.say("demo", "injecting a crash into the echo bot (only its logic restarts: rest_for_one)")
        handles[ECHO].tell(InjectCrash())
    await asyncio.wait_for(asyncio.wrap_future(board.done), options.timeout)


async def _restarts(handles: Mapping[str, JobHandle]) -> list[tuple[str, RestartEvent]]:
    found: list[tuple[str, RestartEvent]] = []
    for identity, handle in handles.items():
        with contextlib.suppress(Exception):  # a job that has already ended has no history to give
            found.extend((identity, event) for event in await handle.restart_events())
    return found


def _reason(event: RestartEvent) -> str:
    exception = getattr(event.reason, "exception", None)
    if exception is None:
        return type(event.reason).__name__
    if isinstance(exception, CallbackError):  # its text names the handler's exception and the message
        return f"crashed: {exception}"
    return f"crashed: {type(exception).__name__}: {exception}"


def _print_summary(
    board: Board, restarts: Sequence[tuple[str, RestartEvent]], elapsed: float, ok: bool
) -> None:
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
    described = ", ".join(
        f"{who} ({_reason(e)}, restarted after {e.delay:.3f} s, stayed in the room)" for who, e in restarts
    )
    print(f"supervisor restarts: {len(restarts)}{': ' + described if restarts else ''}", file=out)
    print(f"demo {'OK' if ok else 'FAILED'} in {elapsed:.1f} s", file=out, flush=True)


async def run_demo(
    options: DemoOptions, *, out: TextIO = sys.stdout, env: Mapping[str, str] | None = None
) -> bool:
    """Run the demo on the running loop (the jobs' actors live on greenroom's runtime loop).

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
        handles = _start_bots(url, key, secret, room=room, board=board, options=options)
        ok = False
        try:
            await _converse(handles, board, options)
            ok = True
        except TimeoutError:
            board.say("demo", f"gave up after {options.timeout} s: {board.echoed}/{options.messages} echoed")
        except RestartIntensityError:
            pass  # reported by Board.fail
        finally:
            restarts = await _restarts(handles)
            for handle in handles.values():
                handle.shutdown("demo over")
            for handle in handles.values():
                with contextlib.suppress(TimeoutError):
                    await handle.wait(10)
    _print_summary(board, restarts, time.monotonic() - board.started, ok)
    return ok


class _QuietInjectedCrash(logging.Filter):
    """The injected crash is expected: the demo prints its own line instead of a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        cause = getattr(exc, "__cause__", None)  # a handler's crash arrives as a CallbackError
        injected = isinstance(exc, InjectedCrashError) or isinstance(cause, InjectedCrashError)
        return not injected and "InjectedCrashError" not in record.getMessage()


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
