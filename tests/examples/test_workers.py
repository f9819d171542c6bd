"""The worker-embedding examples against a real Redis (``redis-server`` from the OS packages, started here
on 127.0.0.1 on a free port): a Celery prefork worker and an RQ worker run tasks that join a room,
publish, wait for the collector's ack and return a result."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.waiting import wait_until_sync

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pong(url: str) -> bool:
    try:
        return bool(Redis.from_url(url, socket_timeout=1).ping())
    except RedisConnectionError:
        return False


@pytest.fixture
def redis_url() -> Iterator[str]:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed (.ci/run installs the redis-server OS package)"
    port = _free_port()
    with tempfile.TemporaryDirectory() as workdir:
        proc = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            wait_until_sync(lambda: _pong(url), timeout=10, what="redis-server answering PING", interval=0.05)
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


def _env(redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    return {**env, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def test_celery_prefork_workers_run_room_tasks(redis_url: str) -> None:
    celery = [sys.executable, "-m", "celery", "--workdir", str(EXAMPLES), "-A", "celery_worker"]
    worker = subprocess.Popen(
        [
            *celery,
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "2",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=_env(redis_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        client = subprocess.run(
            [sys.executable, str(EXAMPLES / "celery_worker.py"), "3"],
            cwd=ROOT,
            env=_env(redis_url),
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert client.returncode == 0, client.stdout + client.stderr
        assert "3 tasks returned: squares [0, 1, 4]" in client.stdout
        pids = set(re.findall(r"worker pid (\d+)", client.stdout))
        assert pids
        assert str(worker.pid) not in pids  # the tasks ran in the pool's forked children
    finally:
        log = _stop(worker)
    assert worker.returncode == 0, log
    assert "Traceback" not in log, log


def test_rq_work_horses_run_room_jobs(redis_url: str) -> None:
    client = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "rq_worker.py"), "2"],
        cwd=ROOT,
        env=_env(redis_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None
        assert "enqueued 2 jobs" in client.stdout.readline()
        worker = subprocess.run(
            [
                sys.executable,
                "-m",
                "rq.cli",
                "worker",
                "--burst",
                "--path",
                str(EXAMPLES),
                "--url",
                redis_url,
                "greenroom",
            ],
            cwd=ROOT,
            env=_env(redis_url),
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert worker.returncode == 0, worker.stdout + worker.stderr
        out, err = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.communicate()
    assert client.returncode == 0, out + err
    assert "2 jobs returned: squares [0, 1]" in out
    pids = set(re.findall(r"worker pid (\d+)", out))
    assert len(pids) == 2  # RQ forks a work horse per job; each started its own greenroom runtime
