"""The ``greenroom`` command as a real subprocess: ready line, keys from env, SIGTERM → SERVER_SHUTDOWN."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from greenroom.codecs.models import DisconnectReason, IceServer
from greenroom.codecs.signalling import Leave
from greenroom.codecs.tokens import Claims, VideoGrants, mint_token
from greenroom.devserver import cli
from greenroom.devserver.cli import main
from greenroom.devserver.config import ConfigError, ServerConfig, parse_keys
from greenroom.devserver.limits import Limits
from tests.devserver.rawclient import RawClient

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"greenroom dev server ready at (ws://127\.0\.0\.1:(\d+)) \(api key (\S+)\)")


def _token(key: str, secret: str, identity: str) -> str:
    return mint_token(key, secret, Claims(identity=identity, video=VideoGrants(room_join=True, room="r")))


async def _start(
    *args: str, env: dict[str, str] | None = None
) -> tuple[asyncio.subprocess.Process, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "greenroom.devserver",
        "serve",
        "--port",
        "0",
        *args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
    match = READY.search(line)
    assert match, f"no ready line: {line!r}"
    return proc, match.group(1), match.group(3)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_sends_server_shutdown_and_exits_0(signum: signal.Signals) -> None:
    async def scenario() -> None:
        env = {"LIVEKIT_API_KEY": "envkey", "LIVEKIT_API_SECRET": "envsecret-envsecret"}
        proc, url, key = await _start(env=env)
        assert key == "envkey"
        try:
            client = await RawClient.join(url, _token("envkey", "envsecret-envsecret", "alice"))
            proc.send_signal(signum)
            leave = await client.wait_message(Leave)
            assert leave.reason is DisconnectReason.SERVER_SHUTDOWN
            assert await asyncio.wait_for(proc.wait(), 15) == 0
            await client.close()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    asyncio.run(scenario())


def test_keys_flag_and_ready_line() -> None:
    async def scenario() -> None:
        proc, url, key = await _start("--keys", "k1: s1-secret, k2: s2-secret", "--log-level", "WARNING")
        try:
            assert key == "k1"
            client = await RawClient.open(url, _token("k2", "s2-secret", "bob"))
            await client.close()
        finally:
            proc.terminate()
            assert await asyncio.wait_for(proc.wait(), 15) == 0

    asyncio.run(scenario())


def test_bad_configuration_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--keys", "no-colon"]) == 2
    assert "key: secret" in capsys.readouterr().err
    assert main(["serve", "--node-ip", "not-an-ip"]) == 2


def test_config_from_env_and_overrides() -> None:
    assert ServerConfig.from_env({}).keys == {"devkey": "secret"}
    assert ServerConfig.from_env({"LIVEKIT_KEYS": "a: b\nc: d"}).keys == {"a": "b", "c": "d"}
    config = ServerConfig.from_env(
        {"LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s"}, port=0, node_ip="198.18.0.1"
    )
    assert (config.keys, config.port, config.ice_addresses) == ({"k": "s"}, 0, ("198.18.0.1",))
    assert ServerConfig(bind="0.0.0.0").ice_addresses == ()
    with pytest.raises(ConfigError):
        ServerConfig.from_env({"LIVEKIT_API_KEY": "k"})
    with pytest.raises(ConfigError):
        parse_keys(" , ")
    with pytest.raises(ConfigError):
        ServerConfig(ping_interval=0)


def test_webhooks_from_flags_and_a_toml_config_file(tmp_path: Path) -> None:
    config = tmp_path / "greenroom.toml"
    config.write_text('[webhook]\nurls = ["http://127.0.0.1:9/a"]\napi_key = "devkey"\n')
    args = cli.build_parser().parse_args(
        [
            "serve",
            "--config",
            str(config),
            "--webhook",
            "http://127.0.0.1:9/b",
            "--webhook",
            "http://127.0.0.1:9/c",
        ]
    )
    built = cli._config(args)
    assert built.webhook_urls == ("http://127.0.0.1:9/a", "http://127.0.0.1:9/b", "http://127.0.0.1:9/c")
    assert built.webhook_api_key == "devkey"
    for text, word in [
        ("[webhook]\nurls = 5\n", "webhook.urls"),
        ('[webhook]\napi_key = "nokey"\nurls = ["http://127.0.0.1:9"]\n', "not one of the configured keys"),
        ("not toml = = =", "--config"),
        ('[webhook]\nurls = ["ftp://x"]\n', r"not http\(s\)"),
    ]:
        config.write_text(text)
        with pytest.raises(ConfigError, match=word):
            cli._config(cli.build_parser().parse_args(["serve", "--config", str(config)]))
    assert main(["serve", "--config", str(tmp_path / "missing.toml")]) == 2


def test_ice_servers_from_flags_and_the_toml_config_file(tmp_path: Path) -> None:
    config = tmp_path / "greenroom.toml"
    config.write_text('[[ice_servers]]\nurls = ["stun:10.0.0.1:3478"]\n')
    flags = ["--ice-server", "turn:10.0.0.2:3478", "--ice-credentials", "u:p:q", "--force-relay"]
    built = cli._config(cli.build_parser().parse_args(["serve", "--config", str(config), *flags]))
    assert built.ice_servers == (
        IceServer(("stun:10.0.0.1:3478",)),
        IceServer(("turn:10.0.0.2:3478",), "u", "p:q"),
    )
    assert built.force_relay
    assert cli._config(cli.build_parser().parse_args(["serve"])).ice_servers == ()
    for text in (
        "ice_servers = 1\n",
        "[[ice_servers]]\nurls = []\n",
        '[[ice_servers]]\nurls = ["x"]\nusername = 1\n',
    ):
        config.write_text(text)
        with pytest.raises(ConfigError, match="ice_servers"):
            cli._config(cli.build_parser().parse_args(["serve", "--config", str(config)]))


def test_limits_from_the_toml_config_file(tmp_path: Path) -> None:
    config = tmp_path / "greenroom.toml"
    config.write_text("[limits]\nconnect_rate = 500\nconnect_burst = 1000\njoin_deadline = 30.0\n")
    built = cli._config(cli.build_parser().parse_args(["serve", "--config", str(config)]))
    limits = built.limits
    assert (limits.connect_rate, limits.connect_burst, limits.join_deadline) == (500, 1000, 30.0)
    assert built.limits.signal_rate == Limits().signal_rate
    for text, word in [
        ("limits = 3\n", r"\[limits\] must be a table"),
        ("[limits]\nnope = 1\n", "limits.nope is not a limit"),
        ('[limits]\nsignal_rate = "fast"\n', "must be a number"),
        ("[limits]\nsignal_rate = 0\n", "limits.signal_rate must be > 0"),
    ]:
        config.write_text(text)
        with pytest.raises(ConfigError, match=word):
            cli._config(cli.build_parser().parse_args(["serve", "--config", str(config)]))
    assert ServerConfig(limits=Limits(connect_wait=0, unknown_sids_answered=0)).limits.connect_wait == 0
