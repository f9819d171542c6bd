"""greenroom inside RQ workers: a job that joins a room, publishes, and returns a result.

Run it (Redis as the queue; a room server from LIVEKIT_* or an embedded dev server)::

    redis-server --port 6379 --save '' &
    python examples/rq_worker.py 4 &                       # enqueue 4 jobs, wait for their results
    rq worker --path examples --url redis://127.0.0.1:6379/0 greenroom

How greenroom fits an RQ worker: RQ's default worker forks a *work horse* per job from a process that
never started greenroom's runtime (it starts lazily, never at import), so each job starts its own runtime
loop on first use, in a process that did not inherit any greenroom thread; the horse exits after the job
and its runtime goes with it. ``rq worker --worker-class rq.SimpleWorker`` (no fork) works too: the
runtime then lives as long as the worker and every job reuses it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from redis import Redis
from rq import Queue

from greenroom.rtc.sync import SyncRoom

__all__ = ["announce", "main"]

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
ROOM = "rq"
COLLECTOR = "collector"
QUEUE = "greenroom"


def announce(url: str, token: str, job: int) -> dict[str, Any]:
    """Join the room, report ``job`` to the collector, wait for its ack, leave; return what happened."""
    with SyncRoom() as room:
        room.connect(url, token, timeout=15)
        started = time.monotonic()
        report = {"job": job, "square": job * job, "pid": os.getpid()}
        room.local_participant.publish_data(
            json.dumps(report), destination_identities=[COLLECTOR], topic="result", timeout=5
        )
        room.wait_for("data_received", lambda packet: packet.topic == "ack", timeout=10)
        return {
            **report,
            "identity": room.local_participant.identity,
            "ms": (time.monotonic() - started) * 1e3,
        }


def main(jobs: int = 4) -> int:
    """Enqueue ``jobs`` jobs and answer them from the room; print the results. Returns the exit code."""
    from greenroom.codecs.tokens import Claims, VideoGrants, mint_token
    from greenroom.devserver.config import ServerConfig
    from greenroom.devserver.server import DevServer

    server: DevServer | None = None
    url = os.environ.get("LIVEKIT_URL", "")
    key, secret = os.environ.get("LIVEKIT_API_KEY", ""), os.environ.get("LIVEKIT_API_SECRET", "")
    if not (url and key and secret):
        server = DevServer(ServerConfig(port=0)).start_in_thread()
        url, key, secret = server.url, server.config.api_key, server.config.keys[server.config.api_key]

    def token(identity: str) -> str:
        return mint_token(
            key, secret, Claims(identity=identity, video=VideoGrants(room_join=True, room=ROOM))
        )

    queue = Queue(QUEUE, connection=Redis.from_url(REDIS_URL))
    try:
        with SyncRoom() as collector:
            collector.connect(url, token(COLLECTOR), timeout=15)
            # by name: the worker imports `rq_worker` (--path examples), not this script's __main__
            pending = [
                queue.enqueue("rq_worker.announce", url, token(f"rq-{n}"), n, job_timeout=60)
                for n in range(jobs)
            ]
            print(f"enqueued {jobs} jobs on {QUEUE!r}", flush=True)
            acked = 0
            while acked < jobs:
                event = collector.next_event(timeout=60)
                if event is None:
                    print("no report within 60 s", file=sys.stderr)
                    return 1
                packet = event.args[0] if event.name == "data_received" else None
                if packet is None or packet.topic != "result" or packet.participant is None:
                    continue
                collector.local_participant.publish_data(
                    b"ack", destination_identities=[packet.participant.identity], topic="ack"
                )
                acked += 1
            results = [_result(job) for job in pending]
    finally:
        if server is not None:
            server.close_in_thread()
    for r in results:
        print(f"job {r['job']}: {r['identity']} in worker pid {r['pid']}, acked in {r['ms']:.1f} ms")
    squares = sorted(r["square"] for r in results)
    print(f"{len(results)} jobs returned: squares {squares}", flush=True)
    return 0 if squares == [n * n for n in range(jobs)] else 1


def _result(job: Any, timeout: float = 30.0) -> dict[str, Any]:
    """The job's return value once RQ stored it (a job ends after its report was acked)."""
    deadline = time.monotonic() + timeout
    while (value := job.latest_result()) is None or value.type != value.Type.SUCCESSFUL:
        if value is not None and value.type == value.Type.FAILED:
            raise RuntimeError(f"job {job.id} failed: {value.exc_string}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job.id} has no result after {timeout} s")
        time.sleep(0.05)  # polling Redis for the stored result
    result: dict[str, Any] = value.return_value
    return result


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 4))
