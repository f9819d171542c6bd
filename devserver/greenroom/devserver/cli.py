"""The ``greenroom`` console script: ``greenroom serve`` (the dev server) and ``greenroom demo``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from greenroom.devserver import demo
from greenroom.devserver.config import DEFAULT_BIND, DEFAULT_PORT, ConfigError, ServerConfig, parse_keys
from greenroom.devserver.server import DevServer

__all__ = ["build_parser", "main", "serve"]

_log = logging.getLogger("greenroom.devserver.cli")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``greenroom`` command."""
    parser = argparse.ArgumentParser(
        prog="greenroom", description="greenroom: LiveKit-compatible rooms in Python"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser(
        "serve",
        help="run the LiveKit-compatible dev server",
        description="Run the dev server (defaults like `livekit-server --dev`: 127.0.0.1:7880, "
        "devkey/secret). Keys also come from LIVEKIT_KEYS or LIVEKIT_API_KEY + LIVEKIT_API_SECRET.",
    )
    serve_cmd.add_argument("--bind", default=None, help=f"address to listen on (default {DEFAULT_BIND})")
    serve_cmd.add_argument(
        "--port", type=int, default=None, help=f"TCP port, 0 = ephemeral (default {DEFAULT_PORT})"
    )
    serve_cmd.add_argument("--keys", default=None, help="API keys as 'key: secret' pairs, comma separated")
    serve_cmd.add_argument(
        "--node-ip",
        default=None,
        help="the address ICE gathers on and advertises (default: the bind address)",
    )
    serve_cmd.add_argument("--empty-timeout", type=float, default=None, help="seconds an empty room lives")
    serve_cmd.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (stderr)",
    )
    demo_cmd = commands.add_parser(
        "demo",
        help="three bots talk in a room on the embedded dev server",
        description="Three supervised bots (greeter, echo, chatter) talk in one room through their "
        "mailboxes; prints the room events and a summary. Uses LIVEKIT_URL, LIVEKIT_API_KEY and "
        "LIVEKIT_API_SECRET when all three are set, else an embedded dev server on an ephemeral port.",
    )
    demo.add_arguments(demo_cmd)
    return parser


async def serve(config: ServerConfig) -> int:
    """Run the server until SIGINT/SIGTERM; every participant gets LeaveRequest{SERVER_SHUTDOWN}.

    Returns:
        The process exit code (0).
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with DevServer(config) as server:
        print(f"greenroom dev server ready at {server.url} (api key {config.api_key})", flush=True)
        await stop.wait()
        _log.info("shutting down")
    return 0


def _config(args: argparse.Namespace) -> ServerConfig:
    keys = parse_keys(args.keys) if args.keys else None
    return ServerConfig.from_env(
        bind=args.bind, port=args.port, keys=keys, node_ip=args.node_ip, empty_timeout=args.empty_timeout
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``greenroom`` console script and ``python -m greenroom.devserver``."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return demo.main(args)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = _config(args)
    except ConfigError as exc:
        print(f"greenroom serve: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
