"""greenroom fleets: many supervised bots in many rooms, from a TOML spec, over a pool of processes.

``greenroom fleet run fleet.toml`` (the command line lives in ``greenroom.cli``, which also supplies the
embedded dev server). The parts: :mod:`~greenroom.fleet.spec` (the spec, checked field by field),
:mod:`~greenroom.fleet.reconcile` (the pure decisions), :mod:`~greenroom.fleet.runner` (one process's
bots, an actor), :mod:`~greenroom.fleet.stats` (what a process measures). Bots call
:func:`record_latency` / :func:`record_message` to report what the fleet cannot time itself.
"""

from greenroom.fleet.spec import BotSpec, FleetSpec, FleetSpecError, load_spec, parse_spec
from greenroom.fleet.stats import record_latency, record_message

__all__ = [
    "BotSpec",
    "FleetSpec",
    "FleetSpecError",
    "load_spec",
    "parse_spec",
    "record_latency",
    "record_message",
]
