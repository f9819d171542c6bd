"""``greenroom demo`` as a subprocess: the conversation, the supervised restart (the echo bot's logic
restarts, it never leaves the room), the summary, the exit code; with ``LIVEKIT_URL``/``LIVEKIT_API_KEY``/
``LIVEKIT_API_SECRET`` it uses that server instead."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from greenroom.agents.demo import percentile
from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer

ROOT = Path(__file__).resolve().parents[2]


def _demo(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    return subprocess.run(
        [sys.executable, "-m", "greenroom.cli", "demo", *args],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
    )


def _row(out: str, bot: str) -> tuple[int, int]:
    match = re.search(rf"^{bot}\s+(\d+)\s+(\d+)$", out, re.MULTILINE)
    assert match, out
    return int(match[1]), int(match[2])


def test_demo_prints_the_conversation_and_summary_and_exits_0() -> None:
    proc = _demo("--messages", "60", "--interval", "0.01")
    out = proc.stdout
    assert proc.returncode == 0, f"{out}\n{proc.stderr}"
    assert "embedded dev server at ws://127.0.0.1:" in out
    for bot in ("greeter", "echo", "chatter"):
        assert re.search(rf"\] {bot}\s+in room", out), out
    assert "welcome to the room, chatter!" in out
    # the injected crash and the supervised restart of the echo bot's logic, in the same participant: the
    # greeter never sees it leave and come back
    assert "echo       CRASHED (InjectedCrashError: injected crash)" in out
    assert "restart 1: restarted by its supervisor, never left the room" in out
    assert "welcome back" not in out
    assert "participant_disconnected" not in out
    assert "Traceback" not in proc.stderr  # the expected crash is reported on stdout, not as a traceback

    assert "== summary ==" in out
    greeter, echo, chatter = _row(out, "greeter"), _row(out, "echo"), _row(out, "chatter")
    assert greeter[0] == 2  # echo and chatter, once each
    assert chatter[0] >= 60  # plus any re-sent after the crash
    assert echo[1] >= 60
    assert chatter[1] >= 61  # 60 echoes + a greeting
    latency = re.search(
        r"latency over 60 echoed messages .*round trip p50 ([\d.]+) ms p99 ([\d.]+) ms; "
        r"one way p50 ([\d.]+) ms p99 ([\d.]+) ms",
        out,
    )
    assert latency, out
    rtt50, rtt99, one50, one99 = (float(v) for v in latency.groups())
    assert 0 < rtt50 <= rtt99
    assert 0 < one50 <= one99
    assert one50 <= rtt50
    assert re.search(r"supervisor restarts: 1: echo \(crashed: InjectedCrashError", out), out
    assert re.search(r"demo OK in [\d.]+ s", out)


def test_demo_without_crash() -> None:
    proc = _demo("--messages", "20", "--interval", "0.005", "--no-crash", "--room", "quiet")
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert "room 'quiet'" in proc.stdout
    assert "supervisor restarts: 0" in proc.stdout
    assert "CRASHED" not in proc.stdout


def test_demo_uses_the_server_from_the_environment() -> None:
    server = DevServer(ServerConfig(port=0, keys={"demokey": "demosecret"})).start_in_thread()
    try:
        env = {"LIVEKIT_URL": server.url, "LIVEKIT_API_KEY": "demokey", "LIVEKIT_API_SECRET": "demosecret"}
        proc = _demo("--messages", "10", "--interval", "0.005", "--room", "envroom", env=env)
        assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
        assert f"using the server at {server.url} (LIVEKIT_URL); room 'envroom'" in proc.stdout
        assert "embedded dev server" not in proc.stdout

        wrong = _demo(
            "--messages", "5", env={**env, "LIVEKIT_API_SECRET": "wrong", "LIVEKIT_URL": server.url}
        )
        assert wrong.returncode == 1  # every join is refused: the supervisor gives up, quickly
        assert "supervisor gave up" in wrong.stdout
        assert "demo FAILED" in wrong.stdout
    finally:
        server.close_in_thread()


def test_demo_refuses_a_partial_environment() -> None:
    proc = _demo(env={"LIVEKIT_URL": "ws://127.0.0.1:1"})
    assert proc.returncode == 2
    assert "LIVEKIT_API_KEY, LIVEKIT_API_SECRET unset" in proc.stderr


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) != percentile([], 50)  # nan
