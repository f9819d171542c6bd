"""S1: the dev server under the floods of issue 17 — its memory, and another pair's latency, during each one.

Every scenario of ``tests/devserver/floods.py`` runs at the issue's scale against a fresh in-process dev
server with its default limits (the table cases also with the signal rate limit lifted, so that the table's
own bound is what stops the flood), with the attacker in its own process and a well-behaved pair in the same
room: alice sends bob numbered reliable packets, one in flight at a time. Figures per flood:

* **pair p50 / p99 / max** — send → bob has it, over the packets exchanged from the flood's start until the
  server's memory was back (each packet must arrive within 5 s and in order, or the run fails);
* **peak** — ``tracemalloc`` peak of the process (the server and the pair) above the baseline taken just
  before the flood, and **after** — the same once the attacker left and the server forgot it (it must come
  within 2 MB within 60 s at this scale; the tests hold their smaller floods to 0.5 MB);
* what the server did (the bound applied, from ``DevServer.stats`` and what the attacker was told).

Scale: the issue's (300,000 pings, 5,000 trickles, 1,000 × 64 KB add_track, 500 held joins, 3,000 failed
handshakes) except: 55,000 unknown sids in one request (80,000 do not fit the 1 MiB signal frame), 150 ×
60 KB packets to the member whose channel never opens (more than twice its 4 MiB bound; sending more only
takes longer), held joins with a 5 s join deadline (instead of 60 s), 2,000 join/leave cycles 20 at a time.

Each flood runs in a fresh process (nothing another flood left counts). Run:
``.venv/bin/python benchmarks/server_floods.py [--quick] [--only ping,churn]``; ``make bench`` runs it
as figure S1 (in a private network namespace like the other groups).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the flood scenarios and the raw-protocol client live in tests/

from greenroom.devserver.config import ServerConfig  # noqa: E402
from greenroom.devserver.limits import Limits  # noqa: E402
from greenroom.devserver.server import DevServer  # noqa: E402
from tests.devserver import floods  # noqa: E402

_LIFTED = {"signal_rate": 1e9, "signal_burst": 10**9}
#: "back to baseline" at this scale: within 2 MB (hundreds of sessions leave aiohttp and asyncio objects that
#: are released lazily, 0.4-0.9 MB measured; the issue's leak was 12 MB per 3,000 upgrades)
SETTLED = 2 << 20


def _cases(quick: bool) -> dict[str, tuple[Any, dict[str, Any], Limits]]:
    """name → (scenario, scale, limits): the issue's scale (``quick``: a tenth or less)."""
    q = quick
    lifted = Limits(**_LIFTED)  # type: ignore[arg-type]
    return {
        "ping": (floods.ping_flood, {"pings": 30_000 if q else 300_000}, Limits()),
        "slow reader": (floods.slow_reader, {"updates": 1000}, Limits()),
        "trickles": (floods.trickle_flood, {"trickles": 5000}, lifted),
        "trickles (rate limit on)": (floods.trickle_flood, {"trickles": 5000}, Limits()),
        "add_track": (floods.add_track_flood, {"requests": 100 if q else 1000, "name_size": 64_000}, lifted),
        "unknown sids": (floods.unknown_sids, {"sids": 55_000}, Limits()),
        "undeliverable data": (  # a join deadline past the time it takes to send them all
            floods.undeliverable_data,
            {"packets": 150, "size": 60_000},  # > 2× the 4 MiB bound; more only takes longer to send
            Limits(join_deadline=600),
        ),
        "held joins": (floods.held_joins, {"joins": 50 if q else 500}, Limits(join_deadline=5.0)),
        "failed handshakes": (floods.failed_handshakes, {"upgrades": 300 if q else 3000}, Limits()),
        "connect churn": (floods.connect_churn, {"cycles": 300 if q else 2000, "concurrency": 20}, Limits()),
    }


async def _one(name: str, scenario: Any, scale: dict[str, Any], limits: Limits) -> dict[str, Any]:
    async with DevServer(ServerConfig(port=0, limits=limits)) as server:
        started = time.monotonic()
        flood = functools.partial(scenario, **scale)
        outcome = await floods.run_flood(name, server, flood, settle=60, tolerance=SETTLED)
        result = asdict(outcome)
        result["stats"] = {k: v for k, v in outcome.stats.items() if v}
        result["seconds"] = round(time.monotonic() - started, 1)
        return result


async def _in_process(name: str, quick: bool) -> dict[str, Any]:
    """Run one flood in a fresh process of this script (nothing left from another flood counts)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        args = ["--case", name, "--json", str(out)] + (["--quick"] if quick else [])
        proc = await asyncio.create_subprocess_exec(sys.executable, __file__, *args, cwd=ROOT)
        await proc.wait()
        if not out.exists():
            raise RuntimeError(f"the flood process exited {proc.returncode} without a result")
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return result


async def scenario(quick: bool = False, only: list[str] | None = None) -> dict[str, Any]:
    """Run the floods (those named in ``only``, or all), each in its own process; a failed one is reported
    with its error."""
    out: dict[str, Any] = {"floods": [], "errors": {}}
    for name in _cases(quick):
        if only and not any(word in name for word in only):
            continue
        result = await _in_process(name, quick)
        out["floods"].extend(result["floods"])
        out["errors"].update(result["errors"])
    return out


async def _run_case(name: str, quick: bool) -> dict[str, Any]:
    logging.getLogger("greenroom").setLevel(logging.ERROR)  # each flood logs its refusals
    case, scale, limits = _cases(quick)[name]
    try:
        return {"floods": [await _one(name, case, scale, limits)], "errors": {}}
    except Exception as exc:  # reported, not raised: the other floods still run
        return {"floods": [], "errors": {name: f"{type(exc).__name__}: {str(exc)[:1000]}"}}


_PAIR_COLUMNS = (("p50_ms", 9), ("p99_ms", 8), ("max_ms", 8), ("packets", 7))


def table(result: dict[str, Any]) -> str:
    """A plain-text table of the figures."""
    lines = [
        f"{'flood':<26}{'pair p50':>9}{'p99':>8}{'max':>8}{'pkts':>7}{'peak MB':>9}{'after MB':>9}  applied"
    ]
    for flood in result["floods"]:
        pair, memory = flood["pair"], flood["memory"]
        applied = ", ".join(f"{k}={v}" for k, v in {**flood["observed"], **flood["stats"]}.items())
        cells = [
            f"{flood['case']:<26}",
            *(f"{pair.get(key, 0):>{width}}" for key, width in _PAIR_COLUMNS),
            f"{memory['peak_mb']:>9}{memory['after_mb']:>9}  {applied}",
        ]
        lines.append("".join(cells))
    for name, error in result["errors"].items():
        lines.append(f"{name:<26}FAILED: {error}")
    return "\n".join(lines)


def main() -> None:
    """Run and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated words of flood names, e.g. ping,churn")
    parser.add_argument("--case", default="", help="run this one flood here (what each flood process does)")
    parser.add_argument("--json", default="", help="also write the results here")
    args = parser.parse_args()
    if args.case:
        result = asyncio.run(_run_case(args.case, args.quick))
    else:
        only = [w.strip() for w in args.only.split(",") if w.strip()]
        result = asyncio.run(scenario(args.quick, only))
        print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
