"""``make bench``: every figure of issue 6 for greenroom and the official ``livekit`` SDK, side by side.

Run: ``.venv/bin/python benchmarks/run.py [--quick] [--only P4,P7] [--out docs/benchmarks.md]``.

Each group of figures runs in a fresh private network namespace (``tests.interop.netns.run_in_netns``; the
official SDK's libwebrtc never gathers loopback), with its own time bound; a group that fails is reported
as "not measured" with its error and the run goes on. Prints the table and writes ``docs/benchmarks.md``
(table, machine, method, date, and the analysis kept in ``benchmarks/notes.md``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.suite import report  # noqa: E402
from tests.interop.netns import run_in_netns  # noqa: E402

BOT_STEPS = [100, 250, 500, 750, 1000]
AGENT_STEPS = {"greenroom": [50, 100, 250, 500, 750, 1000], "livekit": [10, 25, 50, 100, 200]}

METHOD = """
Everything runs on one machine inside private network namespaces the run creates (`unshare -rn`, a veth
pair with 198.18.0.1; nothing leaves them). Each group of figures gets a fresh namespace and a fresh
greenroom dev server; clients are separate processes running the same program for both SDKs
(`tests/interop/peer.py`, extended by `benchmarks/suite/agent.py`), only the `rtc` module differs. Times
are CLOCK_MONOTONIC, which is system-wide, so one-way latencies are receiver time minus the sender's stamp.

- **P1** `Room()` + `await connect(url, token)` with default options, timed in the client, 20 joins
  alternating between two processes (official: tries `/rtc/v1`, gets 404, falls back to `/rtc`).
- **P2** A sends 1,000 reliable packets 2 ms apart (after a warm-up packet that negotiates A's publisher
  PC); latency to B's `data_received` callback. (`benchmarks/client_compare.py`.)
- **P3** A floods B with reliable packets, each `publish_data` awaited before the next (the SDKs' API):
  64-byte packets (msg/s) and 15 KB packets (MB/s), delivered bytes / (last arrival − first send);
  3 rounds, median.
- **P4** N data-only rooms in one client process, two bots per room, each bot sending one stamped reliable
  packet per second to its room for 10 s (after a warm-up packet each). greenroom: bounded search over
  100/250/500/750/1000 bots, stopping at the first count whose p99 reaches 50 ms (or at a failed join or a
  4-minute budget); official: 100 rooms (the issue's first look). RSS (VmRSS) and OS threads per bot are
  the marginal cost: (value at the largest count − value with one warm-up pair) / (bots − 2).
- **P5** audio bots publishing and subscribing Opus through the dev server, ≥ 99% of frames delivered.
- **P6** greenroom only: bob's ParticipantActor for alice is crashed (`Crash` message, as in
  `tests/actors/test_room.py`); time until a new incarnation answers `GetState`, and until a packet alice
  sends right after the crash reaches bob's `data_received`. 20 crashes, 1.1 s apart (the room's
  crash-loop brake allows 10 restarts in 10 s), alternating the two measurements.
- **P7** one process: 1,000 × (`Room()`, `connect`, `disconnect`), fresh Room each time; RSS growth from
  cycle 50 (allocator/import warm-up) to the end, after 1 s of quiet (official: bounded to 150 s).
- **P9** agents per process, `benchmarks/suite/density.py`. Both workers register with the same
  `greenroom serve` (its own process) for the automatic dispatch; one client process (greenroom's SDK for
  both sides) holds a bot per room, whose join creates the room and gets it one agent. greenroom: `greenroom
  agent dev benchmarks.suite.echo_agent:entrypoint`, every job a supervised tree in the one worker
  process; livekit-agents 1.8.9: the official worker (`tests/interop/agents/official_agent.py`, `dev`), a
  process per job forked from its forkserver. Both agents answer each packet to its sender
  (`echo:<data>`). Each step adds rooms up to the next count, waits until every agent answered a warm-up
  packet (≤ 120 s), then every bot sends a stamped packet once a second for 10 s (phases spread over the
  second): the figure is the echo's round trip (bot → server → agent → server → bot). Bounded search:
  greenroom 50/100/250/500/750/1,000 agents, livekit-agents 10/25/50/100/200 job processes; a count
  whose p99 reaches 50 ms gets a second 10 s try (the machine is shared), and the search stops when that
  one's p99 reaches 50 ms too, at a lost echo, an agent that never answered, or a 5-minute budget.
  Memory from `/proc` once every agent answered: greenroom = worker VmRSS delta / agents; livekit-agents =
  PSS (`smaps_rollup`, shared pages split among sharers) summed over the worker and all its descendants,
  delta / agents; both deltas from one warm-up agent to the largest count tried, so the one-time costs
  (runtime, imports, forkserver) are not spread over the agents.
- **P10/P11** agent supervision, `benchmarks/suite/agents.py`. greenroom: one supervised job (an `Agent`)
  started directly on the dev server; P10 = `greenroom.testing.crash` of its logic → the new
  incarnation answers a message told right after the death (20 crashes 1.05 s apart, intensity raised to
  1,000/30 s so the brake does not end the job); P11 = the agent blocks its loop (`threading.Event.wait`)
  or awaits forever → the restarted agent answers a ping told right after (5 each); the participant sid is
  checked unchanged. livekit-agents 1.8.9 (official worker, `dev`, dispatched by `greenroom serve`, an
  official client in a fresh room per fault): crash = the entrypoint raises → when the agent leaves, the
  status its worker reports, whether anything answers again; blocked = `time.sleep` on the job's loop →
  when the agent leaves (bounded at 90 s); hang = the agent stops answering, loop alive → observed 20 s.
- **S1** greenroom's dev server only: the floods of issue 17 at its scale (`benchmarks/server_floods.py`,
  scenarios in `tests/devserver/floods.py`, the attacker its own process), each beside a well-behaved pair
  in the same room sending numbered reliable packets one at a time: the pair's p99 from the flood's start
  until it delivered 20 packets after the bound applied, and the server process's `tracemalloc` peak and
  final value above the baseline taken before the flood.
- **R1** reliable data across faults (`benchmarks/reliable_faults.py`, the harness of
  `tests/interop/scenarios_faults.py`): numbered reliable packets at 50/s between greenroom and the official
  SDK, the server's `leave{RECONNECT}` to the sender or to the receiver; per fault kind, packets lost
  silently (answered, never arrived, beyond greenroom's `data_undelivered` counts — the official SDK reports
  nothing), with greenroom (ours) and the official SDK (theirs) as the sender; duplicated and reordered in
  the note. 3 runs each (1 with `--quick`).
- **P8** the dev server runs as its own process; its CPU (`/proc/<pid>/stat` utime+stime) is read around
  each P3 flood: relayed packets per server CPU-second (= per core), and the 15 KB A→B MB/s.
- **P14/P15** `benchmarks/suite/streams_rpc.py`: two peers of one SDK in a room of `greenroom serve` (its
  own process), both pairs up at once, taking turns (the official pair's batch, then greenroom's, so a load
  spike falls on both). P14: 300 sequential `perform_rpc` A → B in 6 batches of 50 (B's handler echoes; v2
  between these peers, the payload 4 bytes), round trip in A, and the CPU seconds A and B spent per call
  (both processes, every thread: the figure the machine's load inflates least). P15: A `send_text`s 1 MB of
  ASCII text and `send_file`s 5 MB of random bytes to B, 3 rounds each; MB/s from A's call to B's handler
  having read the whole stream (system-wide monotonic clock), median. The dev server relays the announced
  capabilities, so both SDKs compress the text (the random file does not shrink).
- **P12** greenroom only, `benchmarks/fleet_scale.py`: `greenroom fleet`'s host with two worker processes
  and a dev server in the driver, `Chatter` bots in rooms of 10, one message per 10 s each; 500, then
  1,000, then 2,000 bots, each count on a fresh server, up to the first whose bots are not all running
  within 300 s: the time until they are, the one-way p50/p99 over 10 s (the worst process's last report
  window), the workers' RSS per bot, restarts by level, the drain. livekit's SDK has no fleet runner to
  compare with (P4 holds its bots-per-process figure).
- **P13** greenroom only, `benchmarks/fleet_cluster.py`: a local Ray cluster (a head with no CPUs and two
  worker nodes of one logical CPU each, on 127.0.0.1 in the namespace), one host actor per node, 100
  `Chatter` bots (1 msg/s, rooms of 10) against a dev server in the driver: the time until all run, the
  one-way p50/p99 over 10 s (the worst actor's last report window), each actor's RSS / its bots; then
  `Cluster.remove_node` of one node: the time from the removal until every bot runs again (its actor's
  death seen, its bots placed on the actor left, which has room for all, their joins). Both nodes share
  this machine's two cores, so "bots per node" is what one core holds next to the other node, the server
  and the driver.
- **P16** `benchmarks/e2ee_compare.py`: per SDK a publisher and a subscriber peer in a room of their own,
  once plain and once with a shared E2EE key; process CPU (utime+stime) idle and while 2 tones are published
  and read back; encryption overhead per track = encrypted − plain CPU per track, per side.
"""


def _groups(quick: bool) -> dict[str, tuple[str, dict[str, Any], float]]:
    """name → (scenario, args, timeout seconds)."""
    q = quick
    return {
        "clients": (
            "benchmarks.client_compare:scenario",
            {"connects": 6 if q else 20, "packets": 200 if q else 1000},
            300,
        ),
        "throughput": (
            "benchmarks.suite.figures:throughput",
            {"small": 500 if q else 3000, "big": 100 if q else 400, "rounds": 1 if q else 3},
            300,
        ),
        "bots_greenroom": (
            "benchmarks.suite.figures:bots",
            {"sdk": "greenroom", "steps": [20, 50] if q else BOT_STEPS, "seconds": 4 if q else 10},
            600,
        ),
        "bots_livekit": (
            "benchmarks.suite.figures:bots",
            {"sdk": "livekit", "steps": [20] if q else [100], "seconds": 4 if q else 10},
            300,
        ),
        "crash": ("benchmarks.suite.figures:crash_restart", {"rounds": 6 if q else 20}, 120),
        "audio": ("benchmarks.suite.figures:audio", {"quick": q}, 300),
        "soak_greenroom": (
            "benchmarks.suite.figures:soak",
            {"sdk": "greenroom", "cycles": 100 if q else 1000, "max_seconds": 150},
            400,
        ),
        "agents_per_process_greenroom": (
            "benchmarks.suite.density:agents_per_process",
            {
                "sdk": "greenroom",
                "steps": [5, 20] if q else AGENT_STEPS["greenroom"],
                "seconds": 4 if q else 10,
            },
            720,
        ),
        "agents_per_process_livekit": (
            "benchmarks.suite.density:agents_per_process",
            {"sdk": "livekit", "steps": [3, 8] if q else AGENT_STEPS["livekit"], "seconds": 4 if q else 10},
            720,
        ),
        "agents_greenroom": (
            "benchmarks.suite.agents:greenroom_supervision",
            {"crashes": 5 if q else 20, "stuck": 2 if q else 5},
            180,
        ),
        "agents_livekit": (
            "benchmarks.suite.agents:livekit_supervision",
            {"observe": 90.0, "hang_observe": 10.0 if q else 20.0},
            300,
        ),
        "e2ee": ("benchmarks.e2ee_compare:scenario", {"tracks": 2, "seconds": 3.0 if q else 6.0}, 400),
        "rpc_streams": (
            "benchmarks.suite.streams_rpc:rpc_and_streams",
            {"calls": 50 if q else 300, "rounds": 1 if q else 3},
            400,
        ),
        "soak_livekit": (
            "benchmarks.suite.figures:soak",
            {"sdk": "livekit", "cycles": 100 if q else 1000, "max_seconds": 150},
            400,
        ),
        "floods": ("benchmarks.server_floods:scenario", {"quick": q}, 1200),
        "reliable": ("benchmarks.reliable_faults:scenario", {"rounds": 1 if q else 3}, 900),
        "fleet": (
            "benchmarks.fleet_scale:scenario",
            {"steps": [50, 100] if q else [500, 1000, 2000], "window": 4.0 if q else 10.0},
            1800,
        ),
        "cluster": (
            "benchmarks.fleet_cluster:scenario",
            {"bots": 20 if q else 100, "nodes": 2, "window": 4.0 if q else 10.0},
            900,
        ),
    }


_FIGURES = {
    "clients": "P1/P2",
    "throughput": "P3/P8",
    "bots_greenroom": "P4",
    "bots_livekit": "P4",
    "crash": "P6",
    "audio": "P5",
    "soak_greenroom": "P7",
    "soak_livekit": "P7",
    "agents_per_process_greenroom": "P9",
    "agents_per_process_livekit": "P9",
    "agents_greenroom": "P10/P11",
    "agents_livekit": "P10/P11",
    "rpc_streams": "P14/P15",
    "e2ee": "P16",
    "floods": "S1",
    "reliable": "R1",
    "fleet": "P12",
    "cluster": "P13",
}


def main() -> None:
    """Run the groups, print the table, write the Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small counts (a smoke run, ~2 minutes)")
    parser.add_argument("--only", default="", help="comma-separated figures, e.g. P4,P7")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--raw", default="", help="also write the raw results as JSON here")
    parser.add_argument("--from-raw", default="", help="measure nothing: render these raw results again")
    args = parser.parse_args()
    only = {f.strip().upper() for f in args.only.split(",") if f.strip()}
    results: dict[str, Any] = {"errors": {}}
    started = time.monotonic()
    if args.from_raw:
        results = json.loads(Path(args.from_raw).read_text(encoding="utf-8"))
        results["audio_rows"] = [report.Row(**row) for row in results.get("audio", {}).get("rows", [])]
        only = {"NONE"}
    for name, (target, kwargs, timeout) in _groups(args.quick).items():
        figure = _FIGURES[name]
        if only and not only & set(figure.split("/")):
            continue
        t0 = time.monotonic()
        print(f"[bench] {name} ({figure}) …", file=sys.stderr, flush=True)
        try:
            value = run_in_netns(target, timeout=timeout, args=kwargs)
        except Exception as exc:  # a failed group is reported, the others still run
            results["errors"][figure] = f"{type(exc).__name__}: {str(exc)[:1500]}"
            print(f"[bench] {name} failed: {str(exc)[:2000]}", file=sys.stderr, flush=True)
            continue
        results[name] = value
        if name == "audio":
            results["audio_rows"] = [report.Row(**row) for row in value["rows"]]
        print(f"[bench] {name} done in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    rows = report.rows(results)
    print(report.table(rows))
    print(f"\n(total {time.monotonic() - started:.0f} s)")
    if args.raw:
        raw = {k: v for k, v in results.items() if k != "audio_rows"}
        Path(args.raw).write_text(json.dumps(raw, indent=1), encoding="utf-8")
    notes_file = ROOT / "benchmarks" / "notes.md"
    notes = notes_file.read_text(encoding="utf-8") if notes_file.exists() else ""
    Path(args.out).write_text(report.markdown(rows, report.machine(), METHOD, notes), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
