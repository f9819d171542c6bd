"""``cli.run_app(opts)``: the command line of an agent program, as livekit-agents shapes it.

``python my_agent.py dev`` (or ``start``) runs a **worker** of LiveKit's agent protocol: it registers at
``<url>/agent`` and runs every job the server dispatches to it, each as a supervised job tree in this
process (:func:`~greenroom.agents.worker.run_worker`). ``--room NAME`` (or ``connect --room NAME``) runs
one job in that room directly instead, without a server dispatch.

* ``dev`` — development defaults: ``LIVEKIT_URL``/``LIVEKIT_API_KEY``/``LIVEKIT_API_SECRET`` when set, else
  a local ``greenroom serve`` (``ws://127.0.0.1:7880``, ``devkey``/``secret``); INFO logs.
* ``start`` — production: the three settings are required (flags or environment); WARNING logs.
* ``connect`` — livekit-agents' name for "join this room now": ``--room`` required; as ``dev``.

The worker retries its server link forever; SIGTERM drains it (no new jobs, running ones finish within
``--drain-timeout``), SIGINT ends its jobs now. Exit codes: 0 when stopped (or, with ``--room``, when the
job ended with SUCCESS), 1 when the job FAILED (its error is printed) or the worker crashed, 2 for a usage
error — never 0 on a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
from collections.abc import Mapping, Sequence

from greenroom.agents.job import JobStatus
from greenroom.agents.worker import WorkerOptions, run_job, run_worker
from greenroom.runtime import loop as runtime

__all__ = ["DEV_KEY", "DEV_SECRET", "DEV_URL", "build_parser", "run_app"]

#: What ``dev`` uses when the environment names no server (``greenroom serve``'s defaults).
DEV_URL, DEV_KEY, DEV_SECRET = "ws://127.0.0.1:7880", "devkey", "secret"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of an agent program's command line."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run this greenroom agent: as a worker a server dispatches jobs to, or in a room.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("dev", "development: a local greenroom serve unless LIVEKIT_* are set"),
        ("start", "production: LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET required"),
        ("connect", "join the room now (as dev)"),
    ):
        cmd = commands.add_parser(name, help=text, description=text)
        cmd.add_argument(
            "--room",
            required=name == "connect",
            default=None,
            help="join this room directly (one job) instead of registering as a worker",
        )
        cmd.add_argument("--url", default=None, help="server URL (LIVEKIT_URL)")
        cmd.add_argument("--api-key", default=None, help="API key (LIVEKIT_API_KEY)")
        cmd.add_argument("--api-secret", default=None, help="API secret (LIVEKIT_API_SECRET)")
        cmd.add_argument("--identity", default="", help="the agent's identity (default agent-<job id>)")
        cmd.add_argument("--participant-identity", dest="identity", help=argparse.SUPPRESS)
        cmd.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR")
        cmd.add_argument(
            "--max-jobs", type=int, default=None, help="jobs run at once (WorkerOptions.max_jobs)"
        )
        cmd.add_argument(
            "--drain-timeout",
            type=float,
            default=None,
            help="seconds a drain waits (WorkerOptions.drain_timeout)",
        )
    return parser


def _settings(
    args: argparse.Namespace, opts: WorkerOptions, env: Mapping[str, str]
) -> tuple[str, str, str] | str:
    url = args.url or opts.ws_url or env.get("LIVEKIT_URL", "")
    key = args.api_key or opts.api_key or env.get("LIVEKIT_API_KEY", "")
    secret = args.api_secret or opts.api_secret or env.get("LIVEKIT_API_SECRET", "")
    if args.command == "start":
        missing = [n for n, v in (("url", url), ("api key", key), ("api secret", secret)) if not v]
        if missing:
            return f"start needs the server's {', '.join(missing)} (flags or LIVEKIT_* environment)"
        return url, key, secret
    return url or DEV_URL, key or DEV_KEY, secret or DEV_SECRET


def run_app(
    opts: WorkerOptions, argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> None:
    """Run the agent program's command line and exit with its code (see the module docstring)."""
    sys.exit(main(opts, argv, env))


def main(opts: WorkerOptions, argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """:func:`run_app` without the exit: returns the exit code."""
    args = build_parser().parse_args(argv)
    settings = _settings(args, opts, os.environ if env is None else env)
    if isinstance(settings, str):
        print(f"error: {settings}", file=sys.stderr)
        return 2
    level = args.log_level or ("WARNING" if args.command == "start" else "INFO")
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    url, key, secret = settings
    if args.max_jobs is not None or args.drain_timeout is not None:
        opts = dataclasses.replace(
            opts,
            max_jobs=args.max_jobs if args.max_jobs is not None else opts.max_jobs,
            drain_timeout=args.drain_timeout if args.drain_timeout is not None else opts.drain_timeout,
        )
    try:
        if args.room is None:
            return asyncio.run(run_worker(opts, url=url, key=key, secret=secret, handle_signals=True))
        result = asyncio.run(
            run_job(
                opts,
                url=url,
                key=key,
                secret=secret,
                room=args.room,
                identity=args.identity,
                handle_signals=True,
            )
        )
    finally:
        runtime.shutdown()
    if result.status is JobStatus.FAILED:
        print(f"job failed: {result.error}", file=sys.stderr)
        return 1
    return 0
