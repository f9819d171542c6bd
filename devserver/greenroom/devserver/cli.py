"""``greenroom serve`` (the dev server): its options and its run, and ``python -m greenroom.devserver``.

The ``greenroom`` console script itself is ``greenroom.cli.main``, which sits above both the dev server and
the Agent API and composes them (``greenroom demo`` runs agents on an embedded dev server); this module
keeps the dev server's part and never imports the agents.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import fields

from greenroom.codecs.models import IceServer
from greenroom.devserver.config import DEFAULT_BIND, DEFAULT_PORT, ConfigError, ServerConfig, parse_keys
from greenroom.devserver.limits import Limits
from greenroom.devserver.server import DevServer

__all__ = ["add_serve_arguments", "build_parser", "main", "run_serve", "serve"]

_log = logging.getLogger("greenroom.devserver.cli")


def add_serve_arguments(serve_cmd: argparse.ArgumentParser) -> None:
    """Add the ``serve`` options to ``serve_cmd``."""
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
        "--webhook",
        action="append",
        default=[],
        metavar="URL",
        help="POST webhook events here (repeatable), signed with the first API key",
    )
    serve_cmd.add_argument(
        "--ice-server",
        action="append",
        default=[],
        metavar="URL",
        help="a STUN/TURN URL handed to clients in the join (repeatable), e.g. turn:10.0.0.2:3478",
    )
    serve_cmd.add_argument(
        "--ice-credentials",
        default=None,
        metavar="USER:PASSWORD",
        help="the TURN username and password sent with every --ice-server",
    )
    serve_cmd.add_argument("--force-relay", action="store_true", help="tell clients to use TURN relays only")
    serve_cmd.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="a TOML file: [webhook] urls = [...], api_key = '...'; [limits] any server limit; "
        "[[ice_servers]] urls = [...], username = '...', credential = '...' (see README)",
    )
    serve_cmd.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (stderr)",
    )


#: The ``serve`` subcommand's help texts (shared with ``greenroom.cli.main``).
SERVE_HELP = "run the LiveKit-compatible dev server"
SERVE_DESCRIPTION = (
    "Run the dev server (defaults like `livekit-server --dev`: 127.0.0.1:7880, "
    "devkey/secret). Keys also come from LIVEKIT_KEYS or LIVEKIT_API_KEY + LIVEKIT_API_SECRET."
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m greenroom.devserver`` (``serve`` only)."""
    parser = argparse.ArgumentParser(
        prog="greenroom", description="greenroom: LiveKit-compatible rooms in Python"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_serve_arguments(commands.add_parser("serve", help=SERVE_HELP, description=SERVE_DESCRIPTION))
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
    urls, webhook_key, limits = list(args.webhook), None, None
    servers: tuple[IceServer, ...] = ()
    if args.config is not None:
        table = _read_toml(args.config)
        limits = _limits(args.config, table.get("limits"))
        webhook = table.get("webhook", {})
        if not isinstance(webhook, dict):
            raise ConfigError(f"{args.config}: [webhook] must be a table")
        file_urls = webhook.get("urls", [])
        if not isinstance(file_urls, list) or not all(isinstance(u, str) for u in file_urls):
            raise ConfigError(f"{args.config}: webhook.urls must be a list of URLs")
        urls = [*file_urls, *urls]
        servers = _ice_servers(args.config, table.get("ice_servers"))
        webhook_key = webhook.get("api_key")
        if webhook_key is not None and not isinstance(webhook_key, str):
            raise ConfigError(f"{args.config}: webhook.api_key must be a string")
    if args.ice_server:
        user, _, password = (args.ice_credentials or "").partition(":")
        servers = (*servers, IceServer(tuple(args.ice_server), user, password))
    return ServerConfig.from_env(
        ice_servers=servers or None,
        force_relay=args.force_relay or None,
        bind=args.bind,
        port=args.port,
        keys=keys,
        node_ip=args.node_ip,
        empty_timeout=args.empty_timeout,
        webhook_urls=tuple(urls) or None,
        webhook_api_key=webhook_key,
        limits=limits,
    )


def _ice_servers(path: str, entries: object) -> tuple[IceServer, ...]:
    """The ``[[ice_servers]]`` tables: ``urls`` (a list), optional ``username`` and ``credential``."""
    if entries is None:
        return ()
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{path}: ice_servers must be an array of tables ([[ice_servers]])")
    servers = []
    for entry in entries:
        urls, user, credential = entry.get("urls"), entry.get("username", ""), entry.get("credential", "")
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
            raise ConfigError(f"{path}: ice_servers.urls must be a non-empty list of URLs")
        if not isinstance(user, str) or not isinstance(credential, str):
            raise ConfigError(f"{path}: ice_servers.username and .credential must be strings")
        servers.append(IceServer(tuple(urls), user, credential))
    return tuple(servers)


def _limits(path: str, table: object) -> Limits | None:
    """The ``[limits]`` table: any field of :class:`~greenroom.devserver.limits.Limits`, by name."""
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [limits] must be a table")
    names = {f.name for f in fields(Limits)}
    for name, value in table.items():
        if name not in names:
            raise ConfigError(f"{path}: limits.{name} is not a limit (known: {', '.join(sorted(names))})")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: limits.{name} must be a number")
    return Limits(**table)


def _read_toml(path: str) -> dict[str, object]:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"--config {path}: {exc}") from exc


def run_serve(args: argparse.Namespace) -> int:
    """Run ``greenroom serve`` with parsed ``args``; returns the exit code (2: bad configuration)."""
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m greenroom.devserver`` (the dev server alone)."""
    return run_serve(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
