"""``greenroom fleet run SPEC`` / ``greenroom fleet check SPEC``: the fleet on the command line.

This module composes the fleet (``greenroom.fleet``) with the embedded dev server (``greenroom.devserver``)
when the spec and the environment name no server — which is why it lives in the command line's layer.

``run`` exits 0 after a drain (SIGTERM, SIGINT, or ``--duration``), 2 for a bad spec (the error names the
field), 1 if the pool could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import TextIO

from greenroom.devserver.config import ServerConfig
from greenroom.devserver.limits import Limits
from greenroom.devserver.server import DevServer
from greenroom.fleet.pool import Host, HostOptions, Launcher, auto_processes
from greenroom.fleet.report import Reporter, summary
from greenroom.fleet.spec import FleetSpec, FleetSpecError, ServerSpec, load_spec, resolve_server
from greenroom.fleet.targets import check_targets
from greenroom.runtime import loop as runtime

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``run`` and ``check`` to the ``greenroom fleet`` parser."""
    commands = parser.add_subparsers(dest="fleet_command", required=True)
    run = commands.add_parser(
        "run",
        help="run the fleet a spec describes until SIGTERM/SIGINT (then drain and exit 0)",
        description="Run every bot of SPEC over a pool of worker processes, keep them running, show them; "
        "SIGTERM or SIGINT drains (bots leave cleanly) and exits 0.",
    )
    run.add_argument("spec", help="the fleet spec (TOML)")
    run.add_argument("--processes", default=None, help='worker processes: a number or "auto" (the cores)')
    run.add_argument("--bots-per-process", type=int, default=None, help="admission limit per process")
    run.add_argument("--duration", type=float, default=None, help="drain and exit after this many seconds")
    run.add_argument("--drain-timeout", type=float, default=None, help="seconds the bots get to leave")
    run.add_argument("--metrics-port", type=int, default=None, help="serve /metrics and /healthz here")
    run.add_argument("--metrics-bind", default="127.0.0.1", help="address of /metrics (default 127.0.0.1)")
    table = run.add_mutually_exclusive_group()
    table.add_argument("--table", dest="table", action="store_true", default=None, help="live table")
    table.add_argument("--no-table", dest="table", action="store_false", help="no live table")
    run.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default), ERROR")
    run.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=None,
        help='run the host processes as Ray actors on the cluster at ADDRESS ("auto", host:port; needs '
        "greenroom[ray]); --processes counts host actors (auto: the cluster's CPUs)",
    )
    run.add_argument(
        "--ray-cpus", type=float, default=1.0, help="Ray CPUs each host actor reserves (default 1)"
    )
    check = commands.add_parser("check", help="check a spec (and import its bots); print what it expands to")
    check.add_argument("spec", help="the fleet spec (TOML)")


def _processes(value: str | None, spec: FleetSpec, auto: Callable[[], int] = auto_processes) -> int:
    if value is None:
        return spec.options.processes or auto()
    if value == "auto":
        return auto()
    try:
        number = int(value)
    except ValueError:
        raise FleetSpecError("--processes", f'must be a positive integer or "auto", not {value!r}') from None
    if number < 1:
        raise FleetSpecError("--processes", f"must be at least 1, not {number}")
    return number


def _load(path: str) -> FleetSpec:
    spec = load_spec(path)
    if spec.base_dir and spec.base_dir not in sys.path:
        sys.path.insert(0, spec.base_dir)  # `mybots:Echo` next to the spec imports (workers inherit it)
    check_targets(spec.groups, spec.bots)
    return spec


def _check(args: argparse.Namespace, out: TextIO) -> int:
    spec = _load(args.spec)
    server = resolve_server(spec.server, os.environ)
    rooms = {b.room for b in spec.bots}
    print(f"{args.spec}: {len(spec.bots)} bots in {len(rooms)} rooms, OK", file=out)
    for group in spec.groups:
        print(
            f"  {group.name}: {group.kind} {group.target} × {group.count} in {len(group.rooms)} rooms "
            f"(restart {group.restart})",
            file=out,
        )
    print(f"  server: {server.url if server else 'the embedded dev server'}", file=out)
    return 0


def _ray_launcher(args: argparse.Namespace) -> tuple[Launcher, Callable[[], int]]:
    """Join the Ray cluster of ``--ray``: the launcher of host actors and the cluster's ``auto``."""
    try:
        from greenroom.fleet import cluster
    except ImportError as exc:
        raise FleetSpecError("--ray", f"needs the ray extra (pip install 'greenroom[ray]'): {exc}") from None
    options = cluster.RayOptions(cpus_per_host=args.ray_cpus)
    cluster.connect(args.ray)
    return cluster.ray_launcher(options), lambda: cluster.cluster_hosts(options)


async def _run(args: argparse.Namespace, spec: FleetSpec, env: Mapping[str, str], out: TextIO) -> int:
    server = resolve_server(spec.server, env)
    launcher: Launcher | None = None
    auto: Callable[[], int] = auto_processes
    if args.ray is not None:
        launcher, auto = _ray_launcher(args)
    options = HostOptions(
        processes=_processes(args.processes, spec, auto),
        bots_per_process=args.bots_per_process
        if args.bots_per_process is not None
        else spec.options.bots_per_process,
        drain_timeout=args.drain_timeout or spec.options.drain_timeout,
        report_interval=spec.options.report_interval,
        log_level=args.log_level,
    )
    async with contextlib.AsyncExitStack() as stack:
        if server is None:
            # every bot of this machine connects from one address: no per-address connect limit here
            limits = Limits(connect_rate=10_000, connect_burst=100_000)
            dev = await stack.enter_async_context(DevServer(ServerConfig(port=0, limits=limits)))
            key = dev.config.api_key
            server = ServerSpec(dev.url, key, dev.config.keys[key])
            print(f"embedded dev server at {dev.url}", file=out, flush=True)
            if launcher is not None:
                print("  (on 127.0.0.1: only the cluster's nodes on this machine reach it)", file=out)
        host = Host(spec.bots, server, options, launcher=launcher)
        port = args.metrics_port if args.metrics_port is not None else spec.options.metrics_port
        table = out.isatty() if args.table is None else args.table
        reporter = Reporter(host, out=out, table=table, metrics_port=port, metrics_bind=args.metrics_bind)
        await stack.enter_async_context(reporter)
        print(
            f"fleet: {len(spec.bots)} bots over {options.processes} "
            f"{'host actors on ' + args.ray if launcher is not None else 'processes'} "
            f"(at most {host.slots[0].capacity} per process) on {server.url}",
            file=out,
            flush=True,
        )
        view = await host.run(duration=args.duration)
    print(summary(view), file=out, flush=True)
    return 0


def main(args: argparse.Namespace, *, out: TextIO = sys.stdout, env: Mapping[str, str] | None = None) -> int:
    """Run ``greenroom fleet …`` with parsed ``args``; returns the exit code."""
    logging.basicConfig(
        level=args.log_level if args.fleet_command == "run" else "WARNING",
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.fleet_command == "check":
            return _check(args, out)
        spec = _load(args.spec)
        return asyncio.run(_run(args, spec, os.environ if env is None else env, out))
    except FleetSpecError as exc:
        print(f"greenroom fleet: bad spec: {exc}", file=sys.stderr)
        return 2
    finally:
        runtime.shutdown()
