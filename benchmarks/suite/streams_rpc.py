"""P14 (RPC round trip) and P15 (text- and byte-stream throughput), greenroom and the official SDK side by
side: the same peer program (``tests/interop/peer.py``) for both, the same ``greenroom serve`` (its own
process), in one run. Returns raw figures; ``benchmarks.suite.report`` makes the rows."""

from __future__ import annotations

import logging
import sys
from typing import Any

from benchmarks.suite.harness import ServerProcess
from tests.interop.netns import PeerProcess

__all__ = ["rpc_and_streams"]

SDKS = ("greenroom", "livekit")
TEXT_CHARS = 1_000_000  # 1 MB of ASCII text
FILE_BYTES = 5_000_000


async def _transfer(a: PeerProcess, b: PeerProcess, op: str, **params: Any) -> float:
    """One stream A → B: MB/s from A's call to B having read the whole stream (system-wide monotonic)."""
    sent = await a.call(op, topic="bench", destinations=["b"], timeout=180, **params)
    received = await b.wait_event(
        lambda e: e.get("event") == "stream_received" and e.get("stream_id") == sent["stream_id"], timeout=180
    )
    if "error" in received:
        raise RuntimeError(f"{op}: {received['error']}")
    size = TEXT_CHARS if op == "send_text" else FILE_BYTES
    return float(size / (received["t"] - sent["started"]) / 1e6)


async def _cpu(a: PeerProcess, b: PeerProcess) -> float:
    """The CPU seconds caller and callee have used so far (both processes, every thread): the cost of an RPC
    on the clients, which the machine's load does not inflate as it does the latency."""
    return float((await a.call("cpu"))["cpu_s"] + (await b.call("cpu"))["cpu_s"])


async def _pair(server: ServerProcess, sdk: str) -> tuple[PeerProcess, PeerProcess]:
    a, b = await PeerProcess(sdk, "a").start(), await PeerProcess(sdk, "b").start()
    options = {"single_peer_connection": False} if sdk == "livekit" else {}
    for peer in (b, a):  # b first: a's join lists b, with the client_protocol that picks the RPC version
        await peer.call(
            "connect", url=server.url, token=server.mint_token(peer.label, f"bench-{sdk}"), options=options
        )
    await b.call("register_rpc", method="echo", mode="echo")
    await b.call("handle_streams", topic="bench")
    await a.call("rpc_series", to="b", method="echo", count=3)  # warm-up: A's publisher PC, the ack path
    return a, b


async def rpc_and_streams(calls: int = 300, rounds: int = 3) -> dict[str, Any]:
    """P14: ``calls`` sequential ``perform_rpc`` A → B (B echoes), in 6 batches, with the CPU time A and B
    spent per call; P15: ``rounds`` × a 1 MB
    ``send_text`` and a 5 MB ``send_file``, A → B; per SDK (a same-SDK pair, the use case). The SDKs take
    turns batch by batch, so a load spike on the shared machine falls on both alike."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    results: dict[str, dict[str, list[float]]] = {
        sdk: {"rpc_ms": [], "rpc_cpu_us": [], "text_mb_s": [], "file_mb_s": []} for sdk in SDKS
    }
    async with ServerProcess() as server:
        pairs = {sdk: await _pair(server, sdk) for sdk in SDKS}
        try:
            batch = max(calls // 6, 1)
            for _ in range(calls // batch):
                for sdk, (a, b) in pairs.items():
                    before = await _cpu(a, b)
                    series = await a.call(
                        "rpc_series", to="b", method="echo", count=batch, timeout=batch * 2 + 30
                    )
                    results[sdk]["rpc_ms"] += series["latency_ms"]
                    results[sdk]["rpc_cpu_us"].append((await _cpu(a, b) - before) / batch * 1e6)
            for _ in range(rounds):
                for sdk, (a, b) in pairs.items():
                    results[sdk]["text_mb_s"].append(
                        await _transfer(a, b, "send_text", unit="x", repeat=TEXT_CHARS)
                    )
                    results[sdk]["file_mb_s"].append(
                        await _transfer(a, b, "send_file", size=FILE_BYTES, name="b.bin")
                    )
        finally:
            for a, b in pairs.values():
                await a.stop()
                await b.stop()
    return {"calls": len(results["greenroom"]["rpc_ms"]), "rounds": rounds, **results}
