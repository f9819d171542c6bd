"""greenroom inside Celery workers: a task that joins a room, publishes, and returns a result.

Run it (Redis as broker and result backend; a room server from LIVEKIT_* or an embedded dev server)::

    redis-server --port 6379 --save '' &
    celery --workdir examples -A celery_worker worker --concurrency 2     # the workers
    python examples/celery_worker.py 4                                      # enqueue 4 tasks, print results

How greenroom fits a Celery worker:

* Celery's default *prefork* pool forks its children from the main worker process. greenroom starts its
  runtime (one loop thread per process) lazily, never at import, so the fork happens before any greenroom
  thread exists; each child then starts its own runtime in ``worker_process_init`` (so the first task does
  not pay for it) and stops it in ``worker_process_shutdown``.
* A task is plain blocking code over ``SyncRoom``: connect, publish, wait for the answer, return a
  JSON-able result. Leaving the ``with`` block disconnects, whatever happens in the task.

The client part (``main``) plays the room's other side: it joins as ``collector``, enqueues the tasks,
answers each report with an ``ack`` (which the task waits for), and prints what the tasks returned.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown

from greenroom.rtc.sync import SyncRoom
from greenroom.runtime import loop as runtime

__all__ = ["announce", "announce_task", "app", "main"]

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
ROOM = "celery"
COLLECTOR = "collector"

app = Celery("greenroom_example", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])


def _start_runtime(**_: Any) -> None:
    runtime.get_loop()  # this pool process's greenroom loop, started after the fork


def _stop_runtime(**_: Any) -> None:
    runtime.shutdown()


worker_process_init.connect(_start_runtime)
worker_process_shutdown.connect(_stop_runtime)


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


#: The Celery task (``announce_task.delay(url, token, job)``), registered by name for the workers.
announce_task = app.task(name="greenroom_example.announce")(announce)


def main(jobs: int = 4) -> int:
    """Enqueue ``jobs`` tasks and answer them from the room; print the results. Returns the exit code."""
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

    try:
        with SyncRoom() as collector:
            collector.connect(url, token(COLLECTOR), timeout=15)
            pending = [announce_task.delay(url, token(f"celery-{n}"), n) for n in range(jobs)]
            acked = 0
            while acked < jobs:
                event = collector.next_event(timeout=30)
                if event is None:
                    print("no report within 30 s", file=sys.stderr)
                    return 1
                packet = event.args[0] if event.name == "data_received" else None
                if packet is None or packet.topic != "result" or packet.participant is None:
                    continue
                collector.local_participant.publish_data(
                    b"ack", destination_identities=[packet.participant.identity], topic="ack"
                )
                acked += 1
            results = [p.get(timeout=30) for p in pending]
    finally:
        if server is not None:
            server.close_in_thread()
    for r in results:
        print(f"task {r['job']}: {r['identity']} in worker pid {r['pid']}, acked in {r['ms']:.1f} ms")
    squares = sorted(r["square"] for r in results)
    print(f"{len(results)} tasks returned: squares {squares}", flush=True)
    return 0 if squares == [n * n for n in range(jobs)] else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 4))
