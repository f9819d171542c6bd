"""P16: client CPU per end-to-end encrypted audio track, greenroom vs the official ``livekit`` SDK, same run.

Run: ``.venv/bin/python benchmarks/e2ee_compare.py [--tracks 2] [--seconds 6]`` (about 2 minutes), or as
part of ``make bench`` (figure P16).

Method (as :mod:`benchmarks.media_compare`, whose CPU sampling it reuses): inside a private network
namespace, one greenroom dev server, and for each SDK a publisher and a subscriber peer process
(``tests.interop.peer``, the same program for both SDKs) in a room of their own — once without encryption
and once with ``RoomOptions(encryption=E2EEOptions(KeyProviderOptions(shared_key=...)))``. The peers' process
CPU (``utime + stime``) is sampled while idle and while ``--tracks`` 48 kHz tones are published and all read
back through ``AudioStream`` s; per-track cost = (loaded − idle) / tracks, in % of one core. The encryption
overhead per track is the encrypted cost minus the plain one, per side (publish, subscribe).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.media_compare import _cpu_share
from greenroom.devserver.config import ServerConfig
from greenroom.devserver.server import DevServer
from tests.interop.netns import HOST_IP, PeerProcess, run_in_netns

SDKS = ("greenroom", "livekit")
KEY = base64.b64encode(b"benchmark shared key").decode()


async def _cpu(
    server: DevServer, sdk: str, tracks: int, seconds: float, *, encrypted: bool
) -> dict[str, Any]:
    room = f"{sdk}-{'e2ee' if encrypted else 'plain'}"
    pub, sub = await PeerProcess(sdk, "pub").start(), await PeerProcess(sdk, "sub").start()
    options: dict[str, Any] = {"single_peer_connection": False} if sdk == "livekit" else {}
    if encrypted:
        options["encryption"] = {"shared_key": KEY}
    try:
        for peer in (pub, sub):
            await peer.call(
                "connect", url=server.url, token=server.mint_token(peer.label, room), options=options
            )
        await asyncio.sleep(1.0)
        idle = await _cpu_share([pub, sub], seconds)
        sids = []
        for index in range(tracks):
            published = await pub.call(
                "publish_tone", frequencies=[300.0 + 100.0 * index], seconds=seconds + 30, lead=0.0
            )
            sids.append(published["sid"])
        for sid in sids:
            await sub.call("listen_audio", identity="pub", sid=sid, window_ms=1000, timeout=20)
        await asyncio.sleep(2.0)  # every stream flowing
        loaded = await _cpu_share([pub, sub], seconds)
        heard = {e["sid"] for e in sub.received("audio_window") if e["rms"] > 1000}
        return {"idle": idle, "loaded": loaded, "tracks": tracks, "heard": len(heard & set(sids))}
    finally:
        await asyncio.gather(pub.stop(), sub.stop(), return_exceptions=True)


async def scenario(tracks: int = 2, seconds: float = 6.0) -> dict[str, Any]:
    """Runs inside the namespace; the raw CPU figures per SDK, plain and encrypted."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    results: dict[str, Any] = {"tracks": tracks, "seconds": seconds}
    async with DevServer(ServerConfig(bind=HOST_IP, port=0)) as server:
        for sdk in SDKS:
            for encrypted in (False, True):
                key = f"{sdk}_{'e2ee' if encrypted else 'plain'}"
                results[key] = await _cpu(server, sdk, tracks, seconds, encrypted=encrypted)
    return results


def per_track(cpu: dict[str, Any], who: str) -> float:
    """% of one core per track."""
    return float(100 * (cpu["loaded"][who] - cpu["idle"][who]) / cpu["tracks"])


def overhead(result: dict[str, Any], sdk: str, who: str) -> float:
    """Encrypted minus plain CPU per track (% of one core)."""
    return per_track(result[f"{sdk}_e2ee"], who) - per_track(result[f"{sdk}_plain"], who)


def main() -> None:
    """Run the scenario in a private namespace and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tracks", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    started = time.monotonic()
    result = run_in_netns(
        "benchmarks.e2ee_compare:scenario", timeout=400, args={"tracks": args.tracks, "seconds": args.seconds}
    )
    print(f"  {'% of one core per audio track':<44}{'greenroom':>12}{'livekit':>12}")
    for who, what in (("pub", "published"), ("sub", "subscribed")):
        for mode in ("plain", "e2ee"):
            ours, theirs = (
                per_track(result[f"greenroom_{mode}"], who),
                per_track(result[f"livekit_{mode}"], who),
            )
            print(f"  {what + ', ' + mode:<44}{ours:>12.2f}{theirs:>12.2f}")
        print(
            f"  {what + ', encryption overhead':<44}{overhead(result, 'greenroom', who):>12.2f}"
            f"{overhead(result, 'livekit', who):>12.2f}"
        )
    heard = {key: value["heard"] for key, value in result.items() if isinstance(value, dict)}
    print(f"  tracks heard {heard}; ran {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
