"""``greenroom token``: mint an access token from the command line, like ``lk token create``.

The key pair comes from ``--api-key``/``--api-secret``, else ``LIVEKIT_API_KEY``/``LIVEKIT_API_SECRET``, else
the dev server's defaults (``devkey``/``secret``). The token alone is printed on stdout, so
``TOKEN=$(greenroom token --join --room demo --identity me)`` works; there is no local test page to link to.

Grants: ``--join`` (the default when no other room grant is given; needs ``--room`` and ``--identity``),
``--admin`` (``roomAdmin`` for ``--room``), ``--create``, ``--list``, ``--record``; ``--can-publish``,
``--can-subscribe``, ``--can-publish-data`` take ``true``/``false`` (absent = LiveKit's default);
``--allow-source`` restricts what may be published. ``--dispatch NAME[:METADATA]`` (repeatable) and
``--room-config`` (``livekit.RoomConfiguration`` JSON, inline or ``@file``) set the room configuration the
join applies when it creates the room — e.g. which agents to dispatch.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from google.protobuf import json_format
from livekit.protocol import agent_dispatch as agent_pb
from livekit.protocol import room as room_pb

from greenroom.codecs.tokens import Claims, VideoGrants, mint_token
from greenroom.devserver.config import DEFAULT_API_KEY, DEFAULT_API_SECRET

__all__ = ["add_arguments", "build_claims", "main", "parse_duration"]

_SOURCES = ("camera", "microphone", "screen_share", "screen_share_audio")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class UsageError(Exception):
    """A combination of options that makes no token."""


def parse_duration(text: str) -> datetime.timedelta:
    """``90``, ``90s``, ``5m``, ``6h``, ``2d`` → a duration; raises ``UsageError`` otherwise."""
    match = _DURATION.match(text.strip())
    if match is None or float(match.group(1)) <= 0:
        raise UsageError(f"--valid-for {text!r}: expected a positive number with s, m, h or d")
    return datetime.timedelta(seconds=float(match.group(1)) * _UNIT[match.group(2)])


def _tri(text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false", "1", "0"):
        raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")
    return lowered in ("true", "1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``greenroom token``."""
    parser.add_argument("--identity", "-i", default="", help="participant identity (sub)")
    parser.add_argument("--name", "-n", default="", help="display name")
    parser.add_argument("--room", "-r", default="", help="the room the grants are for")
    parser.add_argument("--join", action="store_true", help="roomJoin (the default without another grant)")
    parser.add_argument("--admin", action="store_true", help="roomAdmin for --room (RoomService calls)")
    parser.add_argument("--create", action="store_true", help="roomCreate (CreateRoom, DeleteRoom)")
    parser.add_argument("--list", action="store_true", help="roomList (ListRooms)")
    parser.add_argument("--record", action="store_true", help="roomRecord")
    parser.add_argument("--hidden", action="store_true", help="a hidden participant")
    parser.add_argument("--agent", action="store_true", help="the agent grant (and participant kind agent)")
    parser.add_argument("--can-publish", type=_tri, default=None, metavar="BOOL")
    parser.add_argument("--can-subscribe", type=_tri, default=None, metavar="BOOL")
    parser.add_argument("--can-publish-data", type=_tri, default=None, metavar="BOOL")
    parser.add_argument("--can-update-own-metadata", action="store_true", default=None)
    parser.add_argument("--allow-source", action="append", choices=_SOURCES, default=[], help="repeatable")
    parser.add_argument("--metadata", default="", help="participant metadata")
    parser.add_argument("--attribute", action="append", default=[], metavar="KEY=VALUE", help="repeatable")
    parser.add_argument(
        "--dispatch",
        action="append",
        default=[],
        metavar="AGENT[:METADATA]",
        help="agent to dispatch; repeatable",
    )
    parser.add_argument("--room-config", default=None, metavar="JSON|@FILE", help="livekit.RoomConfiguration")
    parser.add_argument("--valid-for", default="6h", help="validity, e.g. 90s, 5m, 6h, 2d (default 6h)")
    parser.add_argument("--api-key", default=None, help="default: LIVEKIT_API_KEY, else devkey")
    parser.add_argument("--api-secret", default=None, help="default: LIVEKIT_API_SECRET, else secret")


def _room_config(args: argparse.Namespace) -> str | None:
    config = room_pb.RoomConfiguration()
    text = args.room_config
    if text is not None:
        raw = Path(text[1:]).read_text() if text.startswith("@") else text
        try:
            json_format.Parse(raw, config)
        except json_format.ParseError as exc:
            raise UsageError(f"--room-config is not a livekit.RoomConfiguration: {exc}") from exc
    for item in args.dispatch:
        name, _, metadata = item.partition(":")
        config.agents.append(agent_pb.RoomAgentDispatch(agent_name=name, metadata=metadata))
    if not config.ListFields():
        return None
    return json.dumps(json_format.MessageToDict(config), sort_keys=True)


def build_claims(args: argparse.Namespace) -> Claims:
    """The claims the options ask for; raises ``UsageError`` for a combination that makes no token."""
    join = args.join or not (args.admin or args.create or args.list or args.record)
    if join and not args.room:
        raise UsageError("--join needs --room")
    if (join or args.agent) and not args.identity:
        raise UsageError("a token that joins needs --identity")
    if args.admin and not args.room:
        raise UsageError("--admin needs --room")
    attributes = []
    for item in args.attribute:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--attribute {item!r}: expected KEY=VALUE")
        attributes.append((key, value))
    video = VideoGrants(
        room_join=join,
        room_admin=args.admin,
        room_create=args.create,
        room_list=args.list,
        room_record=args.record,
        room=args.room,
        can_publish=args.can_publish,
        can_subscribe=args.can_subscribe,
        can_publish_data=args.can_publish_data,
        can_publish_sources=tuple(args.allow_source),
        can_update_own_metadata=args.can_update_own_metadata,
        hidden=args.hidden,
        agent=args.agent,
    )
    return Claims(
        identity=args.identity,
        name=args.name,
        metadata=args.metadata,
        attributes=tuple(sorted(attributes)),
        kind="agent" if args.agent else "",
        video=video,
        room_config=_room_config(args),
    )


def _keys(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[str, str]:
    key = args.api_key or env.get("LIVEKIT_API_KEY") or DEFAULT_API_KEY
    secret = args.api_secret or env.get("LIVEKIT_API_SECRET") or DEFAULT_API_SECRET
    return key, secret


def main(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """Print the token; exit code 2 (and the reason on stderr) for unusable options."""
    try:
        claims = build_claims(args)
        ttl = parse_duration(args.valid_for)
        key, secret = _keys(args, os.environ if env is None else env)
    except (UsageError, OSError) as exc:
        print(f"greenroom token: {exc}", file=sys.stderr)
        return 2
    print(mint_token(key, secret, claims, ttl=ttl), flush=True)
    return 0
