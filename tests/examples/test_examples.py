"""The examples, run as programs against the dev server (they are also type-checked with mypy --strict)."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from greenroom import rtc
from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from greenroom.rtc.sync import SyncRoom
from tests.interop.netns import HOST_IP, PeerProcess, run_in_netns

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def server() -> Iterator[DevServer]:
    dev = DevServer(ServerConfig(port=0)).start_in_thread()
    try:
        yield dev
    finally:
        dev.close_in_thread()


def _clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    return {**env, "PYTHONUNBUFFERED": "1", **(extra or {})}


def _start(script: str, env: Mapping[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / script)],
        cwd=ROOT,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_until(proc: subprocess.Popen[str], pattern: str) -> re.Match[str]:
    assert proc.stdout is not None
    seen: list[str] = []
    while line := proc.stdout.readline():
        seen.append(line)
        if found := re.search(pattern, line):
            return found
    raise AssertionError(f"{pattern!r} never printed; stdout: {''.join(seen)}")


def _talk_to_echo_bot(proc: subprocess.Popen[str], url: str, token: str) -> None:
    try:
        _read_until(proc, r"echo bot connected to room 'echo' as 'echo-bot'")
        with SyncRoom() as guest:
            guest.connect(url, token, timeout=15)
            guest.local_participant.publish_data(b"hello", destination_identities=["echo-bot"])
            reply = guest.wait_for("data_received", lambda p: p.topic == "echo", timeout=10).args[0]
            assert reply.data == b"echo: hello"
            assert reply.participant is not None
            assert reply.participant.identity == "echo-bot"
        _read_until(proc, r"from guest: b'hello'")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 0, stderr
        assert "disconnected" in stdout
        assert "Traceback" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_echo_bot_with_url_and_token_from_the_environment(server: DevServer) -> None:
    env = _clean_env({"LIVEKIT_URL": server.url, "LIVEKIT_TOKEN": server.mint_token("echo-bot", "echo")})
    proc = _start("echo_bot.py", env)
    _talk_to_echo_bot(proc, server.url, server.mint_token("guest", "echo"))


def test_echo_bot_with_api_key_and_secret(server: DevServer) -> None:
    env = _clean_env({"LIVEKIT_URL": server.url, "LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": "secret"})
    proc = _start("echo_bot.py", env)
    _talk_to_echo_bot(proc, server.url, server.mint_token("guest", "echo"))


def test_echo_bot_starts_its_own_dev_server() -> None:
    proc = _start("echo_bot.py", _clean_env())
    url = _read_until(proc, r"dev server: (ws://127\.0\.0\.1:\d+)")[1]
    token = _read_until(proc, r"guest token: (\S+)")[1]
    _talk_to_echo_bot(proc, url, token)


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_sync_worker_pool(method: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "sync_worker.py"), "3", method],
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"3 results collected ({method}): squares [0, 1, 4]" in proc.stdout
    pids = set(re.findall(r"worker pid (\d+)", proc.stdout))
    assert pids
    assert str(os.getpid()) not in pids


def test_echo_bot_source_differs_from_livekit_rtc_only_by_its_import() -> None:
    source = (EXAMPLES / "echo_bot.py").read_text()
    bot = source[source.index("async def run_bot") : source.index("# -- where to connect")]
    assert "greenroom" not in bot  # the bot itself names only `rtc`
    assert re.findall(r"^from greenroom import rtc$", source, re.MULTILINE) == ["from greenroom import rtc"]


async def echo_bot_under_livekit_rtc() -> dict[str, Any]:
    """In the private namespace: ``examples/echo_bot.py`` with ``from livekit import rtc`` swapped in, run
    by the official SDK against the dev server; a greenroom peer talks to it."""
    source = (EXAMPLES / "echo_bot.py").read_text()
    swapped = source.replace("from greenroom import rtc", "from livekit import rtc")
    async with DevServer(ServerConfig(bind=HOST_IP, port=0)) as server:
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "echo_bot_livekit.py"
            script.write_text(swapped)
            env = _clean_env(
                {"LIVEKIT_URL": server.url, "LIVEKIT_TOKEN": server.mint_token("echo-bot", "echo")}
            )
            bot = await asyncio.create_subprocess_exec(
                sys.executable, str(script), cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
            )
            guest = await PeerProcess("greenroom", "guest").start()
            try:
                assert bot.stdout is not None
                first = await asyncio.wait_for(bot.stdout.readline(), 30)
                await guest.call("connect", url=server.url, token=server.mint_token("guest", "echo"))
                await guest.send_data(b"hello", destinations=["echo-bot"])
                reply = await guest.wait_event(lambda e: e.get("event") == "data_received", timeout=15)
                bot.send_signal(signal.SIGINT)
                code = await asyncio.wait_for(bot.wait(), 20)
            finally:
                await guest.stop()
                if bot.returncode is None:
                    bot.kill()
                    await bot.wait()
    return {
        "first_line": first.decode(),
        "reply": base64.b64decode(reply["data"]).decode(),
        "from": reply["from"],
        "topic": reply["topic"],
        "exit": code,
    }


@pytest.mark.interop
@pytest.mark.timeout(120)
def test_echo_bot_runs_on_the_official_sdk_with_only_the_import_changed() -> None:
    result = run_in_netns("tests.examples.test_examples:echo_bot_under_livekit_rtc", timeout=100)
    assert result["first_line"].startswith("echo bot connected to room 'echo' as 'echo-bot'")
    assert (result["reply"], result["from"], result["topic"]) == ("echo: hello", "echo-bot", "echo")
    assert result["exit"] == 0


def test_server_api_example_drives_the_dev_server(server: DevServer) -> None:
    env = _clean_env(
        {"LIVEKIT_URL": server.http_url, "LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": "secret"}
    )
    with SyncRoom() as guest:
        guest.connect(server.url, server.mint_token("guest", "backend-room"), timeout=15)
        proc = subprocess.run(
            [sys.executable, str(EXAMPLES / "server_api.py"), "backend-room", "--delete"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "rooms: ['backend-room']" in proc.stdout
        assert "participants: ['guest']" in proc.stdout
        packet = guest.wait_for("data_received", lambda p: p.topic == "news", timeout=10).args[0]
        assert packet.data == b"hello from the backend"
        assert packet.participant is None  # from the server, not a participant
        reason = guest.wait_for("disconnected", timeout=10).args[0]
        assert reason == rtc.DisconnectReason.ROOM_DELETED


def test_rpc_example_prints_answers_and_the_built_in_errors(server: DevServer) -> None:
    env = _clean_env({"LIVEKIT_URL": server.url, "LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": "secret"})
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "rpc.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        "add -> 6",
        "divide -> 3.5",
        'divide -> error 4000: division by zero {"dividend": 1}',
        "sqrt -> error 1400: Method not supported at destination",
        "slow -> error 1502: Response timeout",
    ]
    assert "Traceback" not in proc.stderr


def test_streams_example_prints_what_the_reader_got(server: DevServer) -> None:
    env = _clean_env({"LIVEKIT_URL": server.url, "LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": "secret"})
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "streams.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sent, *lines = proc.stdout.splitlines()
    digest = sent.split()[-1]
    assert lines == [
        f"file from writer: report.pdf (application/pdf, 1048576 bytes) {digest}",
        "text from writer in 1 part(s): 'hello, reader' {'lang': 'en'}",
        "text from writer in 4 part(s): 'streamed word by word' {'final': 'true'}",
    ]
    assert "Traceback" not in proc.stderr
