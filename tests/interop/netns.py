"""Run interop scenarios inside a private network namespace (DESIGN.md §7).

The official SDK (libwebrtc) never gathers loopback candidates, so on a loopback-only host it cannot
connect. Each scenario therefore runs in a fresh user + network namespace (``unshare -rn``) where a veth
pair gives the test host an address of its own, ``198.18.0.1/24`` (the benchmarking range); IPv6 is
disabled there so no link-local address is gathered either. Nothing inside the namespace has a route
anywhere else, so no traffic can leave it. If the namespace cannot be created the test fails with the
reason: it is never skipped.

Usage from a test::

    result = run_in_netns("tests.interop.scenarios:data_both_ways")

runs ``scenario()`` (a coroutine function returning a JSON-able dict) in the namespace, in a fresh
interpreter, and returns its result. Peers are started with :class:`PeerProcess`.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.waiting import wait_until

__all__ = ["HOST_IP", "PeerProcess", "run_in_netns"]

HOST_IP = "198.18.0.1"
ROOT = Path(__file__).resolve().parents[2]
_MARK = "@@greenroom-netns-result@@"
_SETUP = [
    "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6",
    "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
    "ip link set lo up",
    "ip link add gr0 type veth peer name gr1",
    f"ip addr add {HOST_IP}/24 dev gr0",
    "ip link set gr0 up",
    "ip link set gr1 up",
]


def run_in_netns(
    target: str, *, timeout: float = 120.0, args: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run ``module:function`` inside a new private network namespace and return its JSON result."""
    setup = " && ".join(_SETUP)
    command = f"{setup} && exec {sys.executable} -m tests.interop.netns {target}"
    env = {**os.environ, "GREENROOM_NETNS": "1", "GREENROOM_NETNS_ARGS": json.dumps(args or {})}
    proc = subprocess.run(
        ["unshare", "-rn", "sh", "-c", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARK):
            result: dict[str, Any] = json.loads(line[len(_MARK) :])
            return result
    raise AssertionError(
        f"scenario {target} gave no result (rc={proc.returncode})\n"
        f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
    )


class PeerProcess:
    """One ``tests.interop.peer`` subprocess: send commands, collect events."""

    def __init__(self, sdk: str, label: str) -> None:
        self.sdk = sdk
        self.label = label
        self.events: list[dict[str, Any]] = []
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self.stderr = b""

    async def start(self) -> PeerProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.interop.peer",
            "--sdk",
            self.sdk,
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=2**24,
        )
        self._reader = asyncio.create_task(self._read())
        await self.wait_event(lambda e: e.get("event") == "ready", timeout=30)
        return self

    async def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "reply" in msg and msg["reply"] in self._replies:
                self._replies.pop(msg["reply"]).set_result(msg)
            else:
                self.events.append(msg)
        for future in self._replies.values():
            if not future.done():
                future.set_exception(ConnectionError(f"peer {self.label} exited"))

    async def call(self, op: str, timeout: float = 30.0, **params: Any) -> Any:
        """Send one command and return its result (raises on an error reply)."""
        assert self._proc is not None
        assert self._proc.stdin is not None
        self._next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[self._next_id] = future
        self._proc.stdin.write((json.dumps({"id": self._next_id, "op": op, **params}) + "\n").encode())
        await self._proc.stdin.drain()
        reply = await asyncio.wait_for(future, timeout)
        if not reply["ok"]:
            raise RuntimeError(f"{self.label}.{op} failed: {reply['error']}")
        return reply["result"]

    async def send_data(self, data: bytes, **params: Any) -> None:
        await self.call("publish_data", data=base64.b64encode(data).decode(), **params)

    async def wait_event(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        """The first event (seen so far or arriving) matching ``predicate``."""
        seen = 0

        def find() -> dict[str, Any] | None:
            nonlocal seen
            for event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)  # on this loop: nothing is appended meanwhile
            return None

        return await wait_until(
            find, timeout=timeout, what=lambda: f"{self.label}: an event; got {self.events[-10:]}"
        )

    def received(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == name]

    async def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.returncode is None and self._proc.stdin is not None:
            try:
                self._proc.stdin.write(b'{"op": "exit"}\n')
                await self._proc.stdin.drain()
                await asyncio.wait_for(self._proc.wait(), 10)
            except (TimeoutError, ConnectionError):
                self._proc.kill()
                await self._proc.wait()
        if self._proc.stderr is not None:
            self.stderr = await self._proc.stderr.read()
        if self._reader is not None:
            await self._reader


def _main() -> None:
    if os.environ.get("GREENROOM_NETNS") != "1":
        raise SystemExit("tests.interop.netns must be started by run_in_netns()")
    module_name, func_name = sys.argv[1].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    args = json.loads(os.environ.get("GREENROOM_NETNS_ARGS", "{}"))
    result = asyncio.run(func(**args))
    print(_MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    _main()
