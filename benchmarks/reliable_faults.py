"""R1: reliable data across faults — packets lost silently, duplicated, reordered, per fault kind, with
greenroom and with the official ``livekit`` SDK as the sender (the other SDK receiving; same harness).

The harness is the interop fault scenario (``tests/interop/scenarios_faults.py``): the sender publishes
``0, 1, 2 …`` at ``rate`` packets/s in a room of the in-process dev server, the server sends
``leave{RECONNECT}`` to the sender or to the receiver, both recover, the sender stops and a marker closes the
ordered path. *Lost silently* is what ``publish_data`` answered and never arrived beyond what the sender was
told (greenroom's ``data_undelivered`` counts; the official SDK reports nothing). The server-restart case
needs a server process and two greenroom clients: ``pytest tests/faults -s --faults-long`` prints it.

``make bench`` runs it (inside a private network namespace: the official SDK needs a non-loopback address);
alone: ``python -m tests.interop.netns benchmarks.reliable_faults:scenario`` inside one.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the scenario and the peer program live in tests/

from tests.interop.scenarios_faults import stream_across_leave  # noqa: E402

__all__ = ["scenario"]


async def scenario(rounds: int = 1) -> dict[str, Any]:
    """Each (sender SDK, side told to reconnect) ``rounds`` times; a failed run is recorded with its error."""
    out: dict[str, Any] = {"runs": [], "errors": {}}
    for victim in ("sender", "receiver"):
        for sender in ("greenroom", "livekit"):
            for _ in range(rounds):
                try:
                    result = await stream_across_leave(sender, victim)
                except Exception as exc:  # a failed run is a figure too
                    out["errors"][f"{sender}/{victim}"] = f"{type(exc).__name__}: {str(exc)[:500]}"
                    continue
                out["runs"].append({"sender": sender, "victim": victim, **result})
    return out
