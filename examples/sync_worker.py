"""Room clients in a ``multiprocessing`` pool, with the blocking facade ``greenroom.rtc.sync.SyncRoom``.

The parent joins the room as ``collector``; each pool task joins as ``worker-<n>``, reports its result to the
collector, waits for the collector's acknowledgement, and leaves. Worker code is plain blocking code, as
in a Celery or RQ task: no event loop, no ``async``. The parent pulls its events with
``SyncRoom.events()`` while the pool runs.

Both start methods work: ``spawn`` (the default here: a fresh interpreter per pool process) and ``fork``.
With ``fork``, the pool is created *before* the parent starts anything of greenroom (its runtime loop is a
thread, started lazily on first use, and forking a process that runs threads is unsafe); each child then
starts its own runtime on first use, and greenroom forgets the parent's in a forked child anyway. A
``SyncRoom`` created before a fork belongs to the parent.

Where it connects: ``LIVEKIT_URL`` + ``LIVEKIT_API_KEY`` + ``LIVEKIT_API_SECRET`` when set, else an
embedded greenroom dev server on an ephemeral loopback port.
``python examples/sync_worker.py [jobs] [spawn|fork]``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable

from greenroom.rtc.sync import SyncRoom

__all__ = ["main", "work"]

ROOM = "workers"
COLLECTOR = "collector"


def work(url: str, token: str, job: int) -> dict[str, float | int]:
    """A pool task: join, send this job's result to the collector, wait for its ack, leave.

    Returns:
        The job number, this worker's pid and the report's round trip in milliseconds.
    """
    with SyncRoom() as room:  # leaving the block disconnects
        room.connect(url, token, timeout=15)
        started = time.monotonic()
        result = {"job": job, "pid": os.getpid(), "square": job * job}
        room.local_participant.publish_data(
            json.dumps(result), destination_identities=[COLLECTOR], topic="result", timeout=5
        )
        room.wait_for("data_received", lambda packet: packet.topic == "ack", timeout=10)
        return {"job": job, "pid": os.getpid(), "round_trip_ms": (time.monotonic() - started) * 1000}


def _collect(collector: SyncRoom, jobs: int, done: Callable[[], bool]) -> list[dict[str, int]]:
    """Pull the collector's events: acknowledge each result until every job reported."""
    results: list[dict[str, int]] = []
    while len(results) < jobs and not done():  # done(): every task ended (one may have failed)
        event = collector.next_event(timeout=0.5)
        if event is None or event.name != "data_received":
            continue
        packet = event.args[0]
        if packet.topic != "result" or packet.participant is None:
            continue
        results.append(json.loads(packet.data))
        collector.local_participant.publish_data(
            b"ack", destination_identities=[packet.participant.identity], topic="ack"
        )
    return results


def main(jobs: int = 4, method: str = "spawn") -> int:
    """Run ``jobs`` pool tasks against one room; print what came back. Returns the exit code."""
    from greenroom.codecs.tokens import Claims, VideoGrants, mint_token
    from greenroom.devserver.config import ServerConfig
    from greenroom.devserver.server import DevServer

    context = multiprocessing.get_context(method)
    pool = context.Pool(processes=min(jobs, 4))  # first: a fork must happen before greenroom starts threads
    server: DevServer | None = None
    url = os.environ.get("LIVEKIT_URL", "")
    key, secret = os.environ.get("LIVEKIT_API_KEY", ""), os.environ.get("LIVEKIT_API_SECRET", "")
    if not (url and key and secret):
        server = DevServer(ServerConfig(port=0)).start_in_thread()
        url, key, secret = server.url, server.config.api_key, server.config.keys[server.config.api_key]
        print(f"embedded dev server at {url}", flush=True)

    def token(identity: str) -> str:
        return mint_token(
            key, secret, Claims(identity=identity, video=VideoGrants(room_join=True, room=ROOM))
        )

    try:
        with pool, SyncRoom() as collector:
            collector.connect(url, token(COLLECTOR), timeout=15)
            args = [(url, token(f"worker-{n}"), n) for n in range(jobs)]
            pending = pool.starmap_async(work, args)
            results = _collect(collector, jobs, pending.ready)
            reports = pending.get(timeout=60)
    finally:
        if server is not None:
            server.close_in_thread()
    for report in sorted(reports, key=lambda r: r["job"]):
        print(f"job {report['job']}: worker pid {report['pid']}, round trip {report['round_trip_ms']:.1f} ms")
    squares = sorted(r["square"] for r in results)
    print(f"{len(results)} results collected ({method}): squares {squares}", flush=True)
    return 0 if squares == [n * n for n in range(jobs)] else 1


if __name__ == "__main__":
    sys.exit(
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 4, sys.argv[2] if len(sys.argv) > 2 else "spawn")
    )
