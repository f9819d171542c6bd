"""The fleet spec: a TOML file that says which bots run, in which rooms, how many, with what parameters.

Pure: text in, frozen values out (no imports of the bots' code, no I/O beyond reading the file). Every
mistake raises :class:`FleetSpecError` naming the field as a path (``bots[1].rooms.count``) and what was
expected, so a user can fix the file without reading this module::

    [server]                      # optional; each field falls back to LIVEKIT_URL / _API_KEY / _API_SECRET,
    url = "ws://127.0.0.1:7880"   # and with none of the three anywhere the embedded dev server is used

    [fleet]                       # optional
    processes = 2                 # or "auto" (the cores); --processes overrides
    bots_per_process = 50         # exact admission per process (default: the bots spread evenly)
    drain_timeout = 10.0          # seconds SIGTERM gives the bots to leave
    metrics_port = 9100           # /metrics and /healthz (0: an ephemeral port; absent: off)

    [[bots]]
    name = "callers"                          # the group; identities default to "{name}-{room}-{index}"
    agent = "greenroom.fleet.bots:Chatter"    # an Agent subclass (module:attr), or
    # entrypoint = "mybots:entrypoint"        # an async def entrypoint(ctx)
    rooms = { pattern = "load-{n:03}", count = 10 }   # or rooms = ["a", "b"], or room = "lobby"
    count = 5                                 # bots per room
    restart = "permanent"                     # what the fleet does when a bot's job ends (see below)
    params = { interval = 1.0, topic = "chat-{room}" }   # per bot; strings take {room} {index} {identity}
    [bots.supervision]                        # the job's own supervision (SupervisionOptions)
    max_restarts = 5
    period = 30.0

``params`` go to the agent's constructor (``Chatter(interval=1.0, topic="chat-load-001")``); an entrypoint
gets them as JSON in ``ctx.job.metadata``, as a dispatch's metadata. ``restart`` follows OTP:
``permanent`` (default) starts the bot again whenever its job ends, ``transient`` only when it FAILED,
``temporary`` never.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import string
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

from greenroom.codecs.errors import GreenroomError

__all__ = [
    "BotGroup",
    "BotSpec",
    "FleetOptions",
    "FleetSpec",
    "FleetSpecError",
    "JobSupervision",
    "RestartPolicy",
    "ServerSpec",
    "TargetKind",
    "expand",
    "load_spec",
    "parse_spec",
    "resolve_server",
]

RestartPolicy: TypeAlias = Literal["permanent", "transient", "temporary"]
TargetKind: TypeAlias = Literal["agent", "entrypoint"]
#: A parameter value as TOML gives it (tables and arrays nested).
Param: TypeAlias = Any

_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_RESTARTS: tuple[RestartPolicy, ...] = ("permanent", "transient", "temporary")
_PLACEHOLDERS = frozenset({"room", "index", "identity", "group", "n"})
#: Identities go into tokens and logs; keep them printable and bounded.
_IDENTITY = re.compile(r"^[\w.@:+-]{1,128}$")
#: A spec that expands to more bots than this is surely a typo (and would exhaust the machine).
MAX_BOTS = 100_000


class FleetSpecError(GreenroomError):
    """The spec is wrong; the message names the field (``bots[0].count: …``)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}" if where else problem)
        self.where = where
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """Where the bots connect; empty fields come from the environment (:func:`resolve_server`)."""

    url: str = ""
    api_key: str = ""
    api_secret: str = ""


@dataclass(frozen=True, slots=True)
class FleetOptions:
    """The ``[fleet]`` table.

    Attributes:
        processes: worker processes (``0``: ``auto``, the cores this process may use).
        bots_per_process: the exact admission limit of one process (``0``: the bots spread evenly).
        drain_timeout: seconds a drain (SIGTERM) gives the bots to leave before the processes are killed.
        metrics_port: the port of ``/metrics`` and ``/healthz`` (``None``: off; ``0``: ephemeral).
        report_interval: seconds between two reports of a worker process.
    """

    processes: int = 1
    bots_per_process: int = 0
    drain_timeout: float = 10.0
    metrics_port: int | None = None
    report_interval: float = 1.0


@dataclass(frozen=True, slots=True)
class JobSupervision:
    """The ``[bots.supervision]`` table: the fields of ``SupervisionOptions`` a spec may set."""

    max_restarts: int = 5
    period: float = 30.0
    liveness_timeout: float = 1.0
    block_threshold: float = 1.0
    shutdown_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class BotGroup:
    """One ``[[bots]]`` table, as written."""

    name: str
    kind: TargetKind
    target: str
    rooms: tuple[str, ...]
    count: int
    identity: str
    restart: RestartPolicy
    params: Mapping[str, Param]
    supervision: JobSupervision
    where: str


@dataclass(frozen=True, slots=True)
class BotSpec:
    """One bot the fleet must keep running: what a worker process is assigned.

    Attributes:
        identity: the participant identity — also the bot's key (unique in the fleet).
        group: its ``[[bots]]`` name.
        room: the room it joins.
        index: its number in its room (0, 1, …).
        kind: ``agent`` (an ``Agent`` subclass) or ``entrypoint``.
        target: ``module:attr``.
        params: its parameters, placeholders filled in.
        restart: the fleet's restart policy for it.
        supervision: its job's supervision settings.
    """

    identity: str
    group: str
    room: str
    index: int
    kind: TargetKind
    target: str
    params: Mapping[str, Param] = field(default_factory=dict)
    restart: RestartPolicy = "permanent"
    supervision: JobSupervision = JobSupervision()


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """A whole spec."""

    server: ServerSpec
    options: FleetOptions
    groups: tuple[BotGroup, ...]
    source: str = "<spec>"
    base_dir: str = ""

    @property
    def bots(self) -> tuple[BotSpec, ...]:
        """Every bot, in spec order (see :func:`expand`)."""
        return expand(self.groups)


# ---------------------------------------------------------------------------------------------- reading


def load_spec(path: str | os.PathLike[str]) -> FleetSpec:
    """Read and check the spec at ``path``.

    Raises:
        FleetSpecError: the file cannot be read, is not TOML, or a field is wrong.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise FleetSpecError("", f"cannot read the fleet spec {str(file)!r}: {exc.strerror}") from exc
    return parse_spec(text, source=str(file), base_dir=str(file.resolve().parent))


def parse_spec(text: str, *, source: str = "<spec>", base_dir: str = "") -> FleetSpec:
    """Parse and check a spec given as TOML text.

    Raises:
        FleetSpecError: not TOML, or a field is wrong (the message names it).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FleetSpecError("", f"{source} is not valid TOML: {exc}") from exc
    _known(data, "", {"server", "fleet", "bots"})
    server = _server(_table(data, "server", ""))
    options = _options(_table(data, "fleet", ""))
    raw_groups = data.get("bots")
    if not isinstance(raw_groups, list) or not raw_groups:
        raise FleetSpecError("bots", "at least one [[bots]] table is needed")
    groups = tuple(_group(raw, f"bots[{i}]") for i, raw in enumerate(raw_groups))
    names = [g.name for g in groups]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise FleetSpecError(f"bots[{i}].name", f"{name!r} names two groups")
    spec = FleetSpec(server, options, groups, source, base_dir)
    spec.bots  # noqa: B018 - expanding checks the identities are unique and the total sane
    return spec


def resolve_server(spec: ServerSpec, env: Mapping[str, str]) -> ServerSpec | None:
    """The spec's server with the environment filling its gaps; ``None``: none named (use a dev server).

    Raises:
        FleetSpecError: some but not all of url, key and secret are known.
    """
    merged = ServerSpec(
        spec.url or env.get("LIVEKIT_URL", ""),
        spec.api_key or env.get("LIVEKIT_API_KEY", ""),
        spec.api_secret or env.get("LIVEKIT_API_SECRET", ""),
    )
    values = {"url": merged.url, "api_key": merged.api_key, "api_secret": merged.api_secret}
    if not any(values.values()):
        return None
    missing = [name for name, value in values.items() if not value]
    if missing:
        env_names = {"url": "LIVEKIT_URL", "api_key": "LIVEKIT_API_KEY", "api_secret": "LIVEKIT_API_SECRET"}
        named = ", ".join(f"server.{m} (or {env_names[m]})" for m in missing)
        raise FleetSpecError(f"server.{missing[0]}", f"a server was named but {named} is missing")
    if not merged.url.startswith(("ws://", "wss://", "http://", "https://")):
        raise FleetSpecError(
            "server.url", f"must start with ws://, wss://, http:// or https://: {merged.url!r}"
        )
    return merged


# ---------------------------------------------------------------------------------------------- tables


def _known(table: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(allowed))})"
            raise FleetSpecError(_join(where, key), f"unknown field{hint}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise FleetSpecError(_join(where, key), f"must be a table, not {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _str(table: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if value is None:
        raise FleetSpecError(_join(where, key), "is required")
    if not isinstance(value, str):
        raise FleetSpecError(_join(where, key), f"must be a string, not {_kind(value)}")
    return value


def _int(table: Mapping[str, Any], key: str, where: str, default: int, *, minimum: int = 0) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FleetSpecError(_join(where, key), f"must be an integer, not {_kind(value)}")
    if value < minimum:
        raise FleetSpecError(_join(where, key), f"must be at least {minimum}, not {value}")
    return value


def _float(table: Mapping[str, Any], key: str, where: str, default: float, *, positive: bool = True) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FleetSpecError(_join(where, key), f"must be a number, not {_kind(value)}")
    if not math.isfinite(value) or (positive and value <= 0):
        raise FleetSpecError(_join(where, key), f"must be a positive number, not {value}")
    return float(value)


def _server(table: Mapping[str, Any]) -> ServerSpec:
    _known(table, "server", {"url", "api_key", "api_secret"})
    return ServerSpec(
        _str(table, "url", "server", ""),
        _str(table, "api_key", "server", ""),
        _str(table, "api_secret", "server", ""),
    )


def _options(table: Mapping[str, Any]) -> FleetOptions:
    where = "fleet"
    _known(
        table, where, {"processes", "bots_per_process", "drain_timeout", "metrics_port", "report_interval"}
    )
    processes = table.get("processes", 1)
    if processes == "auto":
        processes = 0
    elif isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise FleetSpecError("fleet.processes", f'must be a positive integer or "auto", not {processes!r}')
    port = table.get("metrics_port")
    if port is not None:
        port = _int(table, "metrics_port", where, 0)
        if port > 65535:
            raise FleetSpecError("fleet.metrics_port", f"must be a TCP port (0-65535), not {port}")
    return FleetOptions(
        processes=processes,
        bots_per_process=_int(table, "bots_per_process", where, 0),
        drain_timeout=_float(table, "drain_timeout", where, 10.0),
        metrics_port=port,
        report_interval=_float(table, "report_interval", where, 1.0),
    )


def _group(raw: Any, where: str) -> BotGroup:
    if not isinstance(raw, dict):
        raise FleetSpecError(where, f"must be a table, not {_kind(raw)}")
    allowed = {"name", "agent", "entrypoint", "room", "rooms", "count", "identity", "restart", "params"}
    _known(raw, where, allowed | {"supervision"})
    name = _str(raw, "name", where)
    if not re.fullmatch(r"[\w.-]{1,64}", name):
        raise FleetSpecError(f"{where}.name", f"use letters, digits, '_', '.', '-' (1-64 of them): {name!r}")
    kind, target = _target(raw, where)
    restart = raw.get("restart", "permanent")
    if restart not in _RESTARTS:
        raise FleetSpecError(f"{where}.restart", f"must be one of {', '.join(_RESTARTS)}, not {restart!r}")
    params = _table(raw, "params", where)
    identity = _str(raw, "identity", where, "{group}-{room}-{index}")
    _check_template(identity, f"{where}.identity")
    for key, value in params.items():
        _check_params(value, f"{where}.params.{key}")
    return BotGroup(
        name=name,
        kind=kind,
        target=target,
        rooms=_rooms(raw, where),
        count=_int(raw, "count", where, 1, minimum=1),
        identity=identity,
        restart=restart,
        params=params,
        supervision=_supervision(_table(raw, "supervision", where), f"{where}.supervision"),
        where=where,
    )


def _target(raw: Mapping[str, Any], where: str) -> tuple[TargetKind, str]:
    given = [k for k in ("agent", "entrypoint") if k in raw]
    if len(given) != 1:
        raise FleetSpecError(
            f"{where}.agent", "name exactly one of agent (an Agent subclass) or entrypoint (module:attr)"
        )
    kind: TargetKind = "agent" if given[0] == "agent" else "entrypoint"
    target = _str(raw, kind, where)
    if not _TARGET.match(target):
        raise FleetSpecError(f"{where}.{kind}", f"must be module:attr (e.g. 'mybots:Echo'), not {target!r}")
    return kind, target


def _rooms(raw: Mapping[str, Any], where: str) -> tuple[str, ...]:
    if ("room" in raw) == ("rooms" in raw):
        raise FleetSpecError(f"{where}.rooms", "name the rooms with exactly one of room or rooms")
    if "room" in raw:
        names: list[Any] = [_str(raw, "room", where)]
        field_where = f"{where}.room"
    else:
        rooms = raw["rooms"]
        field_where = f"{where}.rooms"
        if isinstance(rooms, dict):
            return _room_pattern(rooms, field_where)
        if not isinstance(rooms, list) or not rooms:
            raise FleetSpecError(
                field_where, "must be a non-empty array of names or a {pattern, count} table"
            )
        names = rooms
    for i, name in enumerate(names):
        if not isinstance(name, str) or not re.fullmatch(r"[^\s{}]{1,128}", name):
            raise FleetSpecError(
                f"{field_where}[{i}]" if len(names) > 1 else field_where, f"bad room {name!r}"
            )
    if len(set(names)) != len(names):
        raise FleetSpecError(field_where, "names a room twice")
    return tuple(names)


def _room_pattern(table: Mapping[str, Any], where: str) -> tuple[str, ...]:
    _known(table, where, {"pattern", "count", "start"})
    pattern = _str(table, "pattern", where)
    count = _int(table, "count", where, 1, minimum=1)
    start = _int(table, "start", where, 1)
    fields = _fields(pattern, f"{where}.pattern")
    if fields != {"n"}:
        raise FleetSpecError(f"{where}.pattern", f"must use {{n}} (and nothing else): {pattern!r}")
    try:
        names = tuple(pattern.format(n=n) for n in range(start, start + count))
    except (ValueError, TypeError) as exc:
        raise FleetSpecError(f"{where}.pattern", f"cannot be formatted: {exc}") from exc
    if len(set(names)) != len(names):
        raise FleetSpecError(f"{where}.pattern", f"gives the same name twice: {pattern!r}")
    return names


def _fields(template: str, where: str) -> set[str]:
    try:
        found = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise FleetSpecError(where, f"bad placeholder in {template!r}: {exc}") from exc
    for name in found:
        base = re.split(r"[.\[]", name, maxsplit=1)[0]
        if base not in _PLACEHOLDERS:
            raise FleetSpecError(
                where, f"unknown placeholder {{{name}}} (known: {{room}} {{index}} {{group}})"
            )
    return {re.split(r"[.\[]", f, maxsplit=1)[0] for f in found}


def _check_template(template: str, where: str) -> None:
    if "n" in _fields(template, where):
        raise FleetSpecError(where, "{n} belongs to rooms.pattern; use {room} and {index} here")


def _check_params(value: Any, where: str) -> None:
    if isinstance(value, str):
        _check_template(value, where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_params(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_params(item, f"{where}.{key}")


def _supervision(table: Mapping[str, Any], where: str) -> JobSupervision:
    _known(table, where, set(JobSupervision.__dataclass_fields__))
    default = JobSupervision()
    return JobSupervision(
        max_restarts=_int(table, "max_restarts", where, default.max_restarts),
        period=_float(table, "period", where, default.period),
        liveness_timeout=_float(table, "liveness_timeout", where, default.liveness_timeout),
        block_threshold=_float(table, "block_threshold", where, default.block_threshold),
        shutdown_timeout=_float(table, "shutdown_timeout", where, default.shutdown_timeout),
    )


# ---------------------------------------------------------------------------------------------- expanding


def expand(groups: Sequence[BotGroup]) -> tuple[BotSpec, ...]:
    """Every bot of ``groups``: for each group, each room, ``count`` bots, placeholders filled in.

    Raises:
        FleetSpecError: two bots get the same identity, an identity is not usable, or there are too many.
    """
    total = sum(len(g.rooms) * g.count for g in groups)
    if total > MAX_BOTS:
        raise FleetSpecError("bots", f"expands to {total} bots (more than {MAX_BOTS})")
    bots: list[BotSpec] = []
    owners: dict[str, str] = {}
    for group in groups:
        for room in group.rooms:
            for index in range(group.count):
                values = {"room": room, "index": index, "group": group.name}
                identity = _fill(group.identity, values, f"{group.where}.identity")
                if not _IDENTITY.match(identity):
                    raise FleetSpecError(
                        f"{group.where}.identity", f"gives an unusable identity {identity!r}"
                    )
                if identity in owners:
                    raise FleetSpecError(
                        f"{group.where}.identity",
                        f"gives {identity!r} twice (also in {owners[identity]}); add {{room}} and {{index}}",
                    )
                owners[identity] = group.where
                values["identity"] = identity
                params = {
                    k: _fill_params(v, values, f"{group.where}.params.{k}") for k, v in group.params.items()
                }
                bots.append(
                    BotSpec(
                        identity=identity,
                        group=group.name,
                        room=room,
                        index=index,
                        kind=group.kind,
                        target=group.target,
                        params=params,
                        restart=group.restart,
                        supervision=group.supervision,
                    )
                )
    return tuple(bots)


def _fill(template: str, values: Mapping[str, Any], where: str) -> str:
    try:
        return template.format(**values)
    except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
        raise FleetSpecError(where, f"cannot fill in {template!r}: {exc}") from exc


def _fill_params(value: Any, values: Mapping[str, Any], where: str) -> Any:
    if isinstance(value, str):
        return _fill(value, values, where)
    if isinstance(value, list):
        return [_fill_params(v, values, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _fill_params(v, values, f"{where}.{k}") for k, v in value.items()}
    return value
