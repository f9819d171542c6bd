"""Hop latency, throughput and memory: greenroom's AsyncioActor against pykka's ThreadingActor.

Run: ``.venv/bin/python benchmarks/actor_hops.py [--quick]``. Method:

* **hop latency** — one caller, one idle echo actor, ``perf_counter_ns`` around each round trip (request and
  reply: two hops), after a warm-up; p50/p99 in microseconds. Callers: a coroutine on the runtime loop
  (``await ask(ref, x)``), a foreign thread blocking on ``ref.ask(x)``, and for thread actors also a
  coroutine bridged with ``await ask(thread_ref, x)`` (design A's reply path).
* **throughput** — tells to one actor until a final ask returns (msgs/s); pipelined asks (all sent, then
  all awaited); fan-out tells round-robin over many actors.
* **memory per actor** — ``tracemalloc`` (Python heap) and the RSS delta from ``/proc/self/status`` while
  N actors are alive, divided by N. Thread actors also reserve a stack each (virtual, mostly untouched).
"""

from __future__ import annotations

import argparse
import gc
import threading
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pykka

from greenroom.actors import core
from greenroom.runtime import loop as rt

T = TypeVar("T")


class LoopEcho(core.AsyncioActor):
    mailbox_capacity = 1_000_000

    def on_receive(self, message: Any) -> Any:
        return message


class ThreadEcho(pykka.ThreadingActor):
    use_daemon_thread = True

    def on_receive(self, message: Any) -> Any:
        return message


def run(coro: Coroutine[Any, Any, T]) -> T:
    return rt.run_sync(coro, timeout=300)


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    ordered = sorted(samples_ns)
    p50 = ordered[len(ordered) // 2] / 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000
    return p50, p99


def row(label: str, p50: float, p99: float) -> None:
    print(f"  {label:<58} p50 {p50:8.1f} µs   p99 {p99:8.1f} µs")


def rate(label: str, count: int, seconds: float) -> None:
    print(f"  {label:<58} {count / seconds:12,.0f} msgs/s")


# ------------------------------------------------------------------------------------------- latency


async def _loop_hops(ref: pykka.ActorRef[Any], n: int, *, raw: bool) -> list[int]:
    samples: list[int] = []
    for index in range(n + n // 10):
        started = time.perf_counter_ns()
        if raw:
            await ref.ask(index, block=False)
        else:
            await core.ask(ref, index)
        samples.append(time.perf_counter_ns() - started)
    return samples[n // 10 :]


def _thread_hops(ref: pykka.ActorRef[Any], n: int) -> list[int]:
    samples: list[int] = []
    for index in range(n + n // 10):
        started = time.perf_counter_ns()
        ref.ask(index, timeout=5)
        samples.append(time.perf_counter_ns() - started)
    return samples[n // 10 :]


def latency(n: int) -> None:
    print(f"hop latency (round trip, {n} samples)")
    loop_ref = LoopEcho.start()
    thread_ref = ThreadEcho.start()
    row(
        "AsyncioActor  ← coroutine on the loop: await ask(ref, x)",
        *percentiles(run(_loop_hops(loop_ref, n, raw=False))),
    )
    row(
        "AsyncioActor  ← coroutine: await ref.ask(x, block=False)",
        *percentiles(run(_loop_hops(loop_ref, n, raw=True))),
    )
    row("AsyncioActor  ← foreign thread: ref.ask(x)", *percentiles(_thread_hops(loop_ref, n)))
    row(
        "ThreadingActor ← coroutine on the loop: await ask(ref, x)",
        *percentiles(run(_loop_hops(thread_ref, n, raw=False))),
    )
    row("ThreadingActor ← foreign thread: ref.ask(x)", *percentiles(_thread_hops(thread_ref, n)))
    loop_ref.stop()
    thread_ref.stop()


# ---------------------------------------------------------------------------------------- throughput


async def _loop_tells(ref: pykka.ActorRef[Any], n: int) -> float:
    started = time.perf_counter()
    for index in range(n):
        ref.tell(index)
    await core.ask(ref, "done", timeout=60)
    return time.perf_counter() - started


async def _loop_pipelined(ref: pykka.ActorRef[Any], n: int) -> float:
    started = time.perf_counter()
    futures = [ref.ask(index, block=False) for index in range(n)]
    for future in futures:
        await future
    return time.perf_counter() - started


def _thread_tells(ref: pykka.ActorRef[Any], n: int) -> float:
    started = time.perf_counter()
    for index in range(n):
        ref.tell(index)
    ref.ask("done", timeout=60)
    return time.perf_counter() - started


async def _loop_fan_out(refs: list[pykka.ActorRef[Any]], n: int) -> float:
    started = time.perf_counter()
    for index in range(n):
        refs[index % len(refs)].tell(index)
    for ref in refs:
        await core.ask(ref, "done", timeout=60)
    return time.perf_counter() - started


def _thread_fan_out(refs: list[pykka.ActorRef[Any]], n: int) -> float:
    started = time.perf_counter()
    for index in range(n):
        refs[index % len(refs)].tell(index)
    for ref in refs:
        ref.ask("done", timeout=60)
    return time.perf_counter() - started


def throughput(n: int, fan_out: int) -> None:
    print(f"throughput ({n} messages)")
    loop_ref = LoopEcho.start()
    thread_ref = ThreadEcho.start()
    rate("AsyncioActor: tells from a coroutine on the loop", n, run(_loop_tells(loop_ref, n)))
    rate("AsyncioActor: tells from a foreign thread", n, _thread_tells(loop_ref, n))
    rate("AsyncioActor: pipelined asks from the loop", n, run(_loop_pipelined(loop_ref, n)))
    rate("ThreadingActor: tells from a foreign thread", n, _thread_tells(thread_ref, n))
    loop_ref.stop()
    thread_ref.stop()
    loop_refs = [LoopEcho.start() for _ in range(fan_out)]
    rate(f"AsyncioActor: fan-out over {fan_out} actors, from the loop", n, run(_loop_fan_out(loop_refs, n)))
    for ref in loop_refs:
        ref.stop(block=False)
    thread_refs = [ThreadEcho.start() for _ in range(fan_out)]
    rate(f"ThreadingActor: fan-out over {fan_out} actors, from a thread", n, _thread_fan_out(thread_refs, n))
    for ref in thread_refs:
        ref.stop(block=False)
    _wait_until_empty()


# -------------------------------------------------------------------------------------------- memory


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _wait_until_empty() -> None:
    deadline = time.monotonic() + 30
    while pykka.ActorRegistry.get_all() or core.live_actors():
        if time.monotonic() > deadline:
            raise RuntimeError("actors did not stop")
        time.sleep(0.01)


def memory(label: str, start: Callable[[], pykka.ActorRef[Any]], n: int) -> None:
    gc.collect()
    rss_before = _rss_kib()
    tracemalloc.start()
    refs = [start() for _ in range(n)]
    for ref in refs[-10:]:
        ref.ask("ready", timeout=10)  # every actor has run its first step
    heap, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = (_rss_kib() - rss_before) * 1024
    threads = threading.active_count()
    per_heap, per_rss = heap / n / 1024, rss / n / 1024
    print(
        f"  {label:<16} {n:6d} actors: heap {per_heap:5.1f} KiB/actor, RSS {per_rss:5.1f} KiB/actor", end=""
    )
    print(f", {threads} threads")
    for ref in refs:
        ref.stop(block=False)
    _wait_until_empty()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    rt.get_loop()
    print("memory per actor (tracemalloc heap and RSS delta while alive)")
    memory("AsyncioActor", LoopEcho.start, 5_000 // scale)
    memory("ThreadingActor", ThreadEcho.start, 1_000 // scale)
    latency(20_000 // scale)
    throughput(200_000 // scale, 1_000 // scale)
    rt.shutdown()


if __name__ == "__main__":
    main()
