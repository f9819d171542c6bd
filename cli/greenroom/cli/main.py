"""The ``greenroom`` console script: ``greenroom serve`` (the dev server), ``demo``, ``token``, ``agent``
(run an agent program's worker: ``greenroom agent dev my_agent:entrypoint``) and ``fleet``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from greenroom.cli import agent, demo, fleet
from greenroom.devserver import tokencli
from greenroom.devserver.cli import SERVE_DESCRIPTION, SERVE_HELP, add_serve_arguments, run_serve

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``greenroom`` command."""
    parser = argparse.ArgumentParser(
        prog="greenroom", description="greenroom: LiveKit-compatible rooms in Python"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_serve_arguments(commands.add_parser("serve", help=SERVE_HELP, description=SERVE_DESCRIPTION))
    demo_cmd = commands.add_parser(
        "demo",
        help="three supervised agents talk in a room on the embedded dev server",
        description="Three agents (greeter, echo, chatter), each a supervised job, talk in one room through "
        "their mailboxes; prints the room events and a summary. Uses LIVEKIT_URL, LIVEKIT_API_KEY and "
        "LIVEKIT_API_SECRET when all three are set, else an embedded dev server on an ephemeral port.",
    )
    demo.add_arguments(demo_cmd)
    token_cmd = commands.add_parser(
        "token",
        help="mint an access token (like `lk token create`)",
        description="Print a LiveKit access token signed with --api-key/--api-secret, else LIVEKIT_API_KEY/"
        "LIVEKIT_API_SECRET, else the dev server's devkey/secret.",
    )
    tokencli.add_arguments(token_cmd)
    commands.add_parser(
        "agent",
        help="run an agent program's worker: greenroom agent dev|start|connect MODULE[:ATTR] [...]",
        description=agent.USAGE,
        add_help=False,
    )
    fleet_cmd = commands.add_parser(
        "fleet",
        help="run many supervised bots from a spec over a pool of processes",
        description="Run the bots a fleet spec (TOML) describes over worker processes, keep them running "
        "(restarts, re-placement), show them (live table, /metrics, /healthz), drain on SIGTERM.",
    )
    fleet.add_arguments(fleet_cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``greenroom`` console script and ``python -m greenroom.cli``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["agent"]:  # its options are the agent program's own (cli.run_app)
        return agent.main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return demo.main(args)
    if args.command == "token":
        return tokencli.main(args)
    if args.command == "fleet":
        return fleet.main(args)
    return run_serve(args)


if __name__ == "__main__":
    sys.exit(main())
