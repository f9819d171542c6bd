"""Dev server CPU per forwarded audio stream: ``greenroom serve`` as a subprocess, N Opus streams through it.

Topology (127.0.0.1): one raw-protocol publisher with N microphone tracks (tones, Opus-encoded by aiortc in
*this* process) → the dev server (its own process: signalling, rooms, RTP taps, forwarded tracks, speaker and
quality monitors) → one raw-protocol subscriber that taps its receivers too (counts packets, decodes nothing,
so this process stays light and leaves the cores to the server).

Figure: the server process's CPU seconds (``/proc/<pid>/stat`` utime + stime, all threads) over a window of
``--seconds`` of steady media, minus the same window with both clients connected and nothing published,
divided by N and by the window = CPU seconds per stream-second (the fraction of one core per stream).
Also printed: packets forwarded per stream-second (≈ 50 for 20 ms Opus) as a check that media flowed.

Run: ``.venv/bin/python benchmarks/server_forwarding.py`` (``--streams 1 5 10 --seconds 8``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from greenroom.codecs.tokens import Claims, VideoGrants, mint_token
from greenroom.runtime.rtp_forward import RtpTap, receiver_for_track

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the raw-protocol client and the tone source live in tests/

from tests.devserver.oracle import Tone  # noqa: E402
from tests.devserver.rawclient import RawClient  # noqa: E402

READY = re.compile(r"ready at (ws://\S+) \(api key (\S+)\)")
TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def _window(pid: int, seconds: float) -> float:
    start = _cpu(pid)
    await asyncio.sleep(seconds)
    return _cpu(pid) - start


async def run(streams: int, seconds: float) -> dict[str, Any]:
    """One server subprocess, N streams; returns the figures."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "greenroom.devserver", "serve", "--port", "0",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        match = READY.search((await asyncio.wait_for(proc.stdout.readline(), 20)).decode())
        assert match, "no ready line"
        url, key = match.group(1), match.group(2)

        def token(identity: str) -> str:
            return mint_token(
                key, "secret", Claims(identity=identity, video=VideoGrants(room_join=True, room="b"))
            )

        taps: list[RtpTap] = []
        publisher = await RawClient.join(url, token("publisher"))
        subscriber = await RawClient.join(url, token("subscriber"), publish=False)
        subscriber.on_track = lambda pc, track: taps.append(RtpTap(receiver_for_track(pc, track)))
        await asyncio.sleep(1.0)
        idle = await _window(proc.pid, seconds)
        tones = [Tone(300 + 50 * i) for i in range(streams)]
        infos = await publisher.publish(*(t.track for t in tones))
        for info in infos:
            await subscriber.subscribed_track(info.sid)
        await asyncio.sleep(1.5)  # steady state
        packets = sum(t.packets for t in taps)
        busy = await _window(proc.pid, seconds)
        packets = sum(t.packets for t in taps) - packets
        for tone in tones:
            await tone.stop()
        for tap in taps:
            tap.close()
        await publisher.close()
        await subscriber.close()
    finally:
        proc.terminate()
        await proc.wait()
    return {
        "streams": streams,
        "idle_cpu_s": idle,
        "busy_cpu_s": busy,
        "cpu_per_stream_second": (busy - idle) / streams / seconds,
        "packets_per_stream_second": packets / streams / seconds,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    print(f"dev server CPU per forwarded audio stream ({os.cpu_count()} CPUs, window {args.seconds:.0f} s)")
    print(f"{'N':>3} {'idle CPU s':>11} {'busy CPU s':>11} {'CPU s per stream-s':>19} {'pkts/stream-s':>14}")
    for n in args.streams:
        r = await run(n, args.seconds)
        print(
            f"{n:>3} {r['idle_cpu_s']:>11.3f} {r['busy_cpu_s']:>11.3f} "
            f"{r['cpu_per_stream_second']:>19.4f} {r['packets_per_stream_second']:>14.1f}"
        )
    print(f"started {time.strftime('%Y-%m-%d %H:%M:%S')}")


if __name__ == "__main__":
    asyncio.run(main())
