"""``greenroom token``: its tokens verify with the official ``livekit-api`` and join the dev server."""

from __future__ import annotations

import argparse
import datetime
import json
import time
from typing import Any

import jwt
import pytest
from livekit import api

from greenroom.devserver import tokencli
from greenroom.devserver.server import DevServer
from greenroom.devserver.tokencli import parse_duration
from tests.devserver.conftest import run_with_server
from tests.devserver.rawclient import RawClient

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # dev secret


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="greenroom token")
    tokencli.add_arguments(parser)
    return parser.parse_args(argv)


def _token(capsys: pytest.CaptureFixture[str], *argv: str, env: dict[str, str] | None = None) -> str:
    args = _parse(list(argv))
    assert tokencli.main(args, env or {}) == 0
    out = capsys.readouterr().out.strip()
    assert "\n" not in out  # the token alone: TOKEN=$(greenroom token ...)
    return out


def _claims(token: str, key: str = "devkey", secret: str = "secret") -> Any:
    return api.TokenVerifier(key, secret).verify(token)


def test_join_token_with_everything(capsys: pytest.CaptureFixture[str]) -> None:
    token = _token(
        capsys,
        *("--identity", "me", "--name", "Me", "--room", "demo", "--metadata", "m"),
        *("--attribute", "role=host", "--attribute", "lang=en", "--can-publish", "false"),
        *("--allow-source", "microphone", "--can-update-own-metadata", "--valid-for", "5m"),
        *("--dispatch", "helper:job meta", "--dispatch", "second"),
    )
    claims = _claims(token)
    assert (claims.identity, claims.name, claims.metadata) == ("me", "Me", "m")
    assert claims.attributes == {"role": "host", "lang": "en"}
    video = claims.video
    assert (video.room_join, video.room, video.can_publish, video.can_update_own_metadata) == (
        True,
        "demo",
        False,
        True,
    )
    assert video.can_publish_sources == ["microphone"]
    agents = [(a.agent_name, a.metadata) for a in claims.room_config.agents]
    assert agents == [("helper", "job meta"), ("second", "")]
    payload = jwt.decode(token, options={"verify_signature": False})
    assert 290 <= payload["exp"] - time.time() <= 300


def test_admin_and_create_tokens_need_no_identity_and_do_not_join(capsys: pytest.CaptureFixture[str]) -> None:
    claims = _claims(_token(capsys, "--admin", "--room", "r", "--create", "--list"))
    assert (claims.video.room_admin, claims.video.room_create, claims.video.room_list) == (True, True, True)
    assert not claims.video.room_join


def test_keys_from_flags_then_environment_then_dev_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"LIVEKIT_API_KEY": "envkey", "LIVEKIT_API_SECRET": "a-secret-from-the-environment-32b"}
    _claims(_token(capsys, "--list", env=env), "envkey", env["LIVEKIT_API_SECRET"])
    flags = ("--list", "--api-key", "flagkey", "--api-secret", "a-secret-given-on-the-command-line")
    _claims(_token(capsys, *flags, env=env), "flagkey", "a-secret-given-on-the-command-line")
    _claims(_token(capsys, "--list"))


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--identity", "me"], "--join needs --room"),
        (["--room", "r"], "needs --identity"),
        (["--admin"], "--admin needs --room"),
        (["--list", "--attribute", "novalue"], "KEY=VALUE"),
        (["--list", "--valid-for", "soon"], "--valid-for"),
        (["--list", "--room-config", "{not json"], "RoomConfiguration"),
    ],
)
def test_unusable_options_exit_2_with_the_reason(
    capsys: pytest.CaptureFixture[str], argv: list[str], reason: str
) -> None:
    assert tokencli.main(_parse(argv), {}) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert reason in captured.err


def test_a_printed_token_joins_and_its_room_configuration_sets_up_the_room(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = json.dumps({"max_participants": 5, "departure_timeout": 9})
    token = _token(
        capsys, "--identity", "me", "--room", "cfg", "--room-config", config, "--dispatch", "helper"
    )

    async def scenario(server: DevServer) -> None:
        client = await RawClient.join(server.url, token, publish=False)
        room = server.rooms["cfg"]
        assert (room.max_participants, room.departure_timeout) == (5, 9)
        assert [a.agent_name for a in room.agents] == ["helper"]
        await client.close()

    run_with_server(scenario)


def test_parse_duration() -> None:
    assert parse_duration("90") == datetime.timedelta(seconds=90)
    assert parse_duration("1.5h") == datetime.timedelta(minutes=90)
    assert parse_duration("2d") == datetime.timedelta(days=2)
