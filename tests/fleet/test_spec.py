"""The fleet spec: what a good spec expands to, and a clear error naming the field for each mistake."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from greenroom.fleet.spec import FleetSpecError, ServerSpec, load_spec, parse_spec, resolve_server
from greenroom.fleet.targets import check_targets

GOOD = """
[server]
url = "ws://127.0.0.1:7880"

[fleet]
processes = "auto"
bots_per_process = 4
drain_timeout = 5
metrics_port = 0

[[bots]]
name = "callers"
agent = "greenroom.fleet.bots:Chatter"
rooms = { pattern = "load-{n:02}", count = 2 }
count = 2
params = { interval = 0.5, topic = "chat-{room}", tags = ["{identity}"] }
[bots.supervision]
max_restarts = 2
period = 10

[[bots]]
name = "probe"
entrypoint = "tests.fleet.bots:probe"
rooms = ["a", "b"]
identity = "probe-{room}"
restart = "transient"
"""


def test_a_good_spec_expands_to_every_bot_with_its_params_filled_in() -> None:
    spec = parse_spec(GOOD)
    assert spec.options.processes == 0  # auto
    assert spec.options.bots_per_process == 4
    assert spec.options.metrics_port == 0
    bots = spec.bots
    assert [b.identity for b in bots] == [
        "callers-load-01-0",
        "callers-load-01-1",
        "callers-load-02-0",
        "callers-load-02-1",
        "probe-a",
        "probe-b",
    ]
    first = bots[0]
    assert first.room == "load-01"
    assert first.params == {"interval": 0.5, "topic": "chat-load-01", "tags": ["callers-load-01-0"]}
    assert first.supervision.max_restarts == 2
    assert first.supervision.period == 10.0
    assert bots[4].kind == "entrypoint"
    assert bots[4].restart == "transient"


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("[[bots]]\nname='a'\nagent='m:A'\nroom='r'\ncont=3", "bots[0].cont", "did you mean 'count'"),
        ("[[bots]]\nname='a'\nagent='m:A'\nroom='r'\ncount=-1", "bots[0].count", "at least 1"),
        ("[[bots]]\nname='a'\nagent='m:A'\nroom='r'\ncount='3'", "bots[0].count", "an integer, not a string"),
        ("[[bots]]\nname='a'\nagent='nocolon'\nroom='r'", "bots[0].agent", "module:attr"),
        ("[[bots]]\nname='a'\nroom='r'", "bots[0].agent", "exactly one of agent"),
        ("[[bots]]\nname='a'\nagent='m:A'\nentrypoint='m:f'\nroom='r'", "bots[0].agent", "exactly one"),
        ("[[bots]]\nname='a'\nagent='m:A'", "bots[0].rooms", "exactly one of room or rooms"),
        ("[[bots]]\nname='a'\nagent='m:A'\nrooms=[]", "bots[0].rooms", "non-empty"),
        ("[[bots]]\nname='a'\nagent='m:A'\nrooms=['x','x']", "bots[0].rooms", "twice"),
        ("[[bots]]\nname='a'\nagent='m:A'\nrooms={pattern='r', count=2}", "bots[0].rooms.pattern", "{n}"),
        ("[[bots]]\nname='a'\nagent='m:A'\nrooms={pattern='r{n}', cnt=2}", "bots[0].rooms.cnt", "count"),
        ("[[bots]]\nname='a'\nagent='m:A'\nroom='r'\nrestart='always'", "bots[0].restart", "permanent"),
        ("[[bots]]\nname='a'\nagent='m:A'\nroom='r'\nparams={x='{nope}'}", "bots[0].params.x", "{nope}"),
        ("[[bots]]\nname='a'\nagent='m:A'\nroom='r'\ncount=2\nidentity='same'", "bots[0].identity", "twice"),
        ("[[bots]]\nname='a b'\nagent='m:A'\nroom='r'", "bots[0].name", "letters"),
        (
            "[[bots]]\nname='a'\nagent='m:A'\nroom='r'\n[bots.supervision]\nperiod=0",
            "bots[0].supervision.period",
            "positive",
        ),
        (
            "[[bots]]\nname='a'\nagent='m:A'\nroom='r'\n[[bots]]\nname='a'\nagent='m:A'\nroom='s'",
            "bots[1].name",
            "two groups",
        ),
        ("[fleet]\nprocesses=0\n[[bots]]\nname='a'\nagent='m:A'\nroom='r'", "fleet.processes", "auto"),
        (
            "[fleet]\nmetrics_port=70000\n[[bots]]\nname='a'\nagent='m:A'\nroom='r'",
            "fleet.metrics_port",
            "port",
        ),
        ("[fleet]\nprocess=2\n[[bots]]\nname='a'\nagent='m:A'\nroom='r'", "fleet.process", "processes"),
        ("[server]\nurl=1\n[[bots]]\nname='a'\nagent='m:A'\nroom='r'", "server.url", "a string"),
        ("[[bot]]\nname='a'", "bot", "did you mean 'bots'"),
        ("", "bots", "at least one"),
        ("[[bots]\n", "", "not valid TOML"),
        ("[[bots]]\nname='a'\nagent='m:A'\nrooms={pattern='r{n}', count=100001}", "bots", "more than"),
    ],
)
def test_a_bad_spec_names_the_field(text: str, where: str, problem: str) -> None:
    with pytest.raises(FleetSpecError) as caught:
        parse_spec(text)
    assert caught.value.where == where
    assert problem in str(caught.value)
    assert str(caught.value).startswith(f"{where}: " if where else "")


def test_the_server_comes_from_the_spec_then_the_environment_else_none() -> None:
    env = {"LIVEKIT_URL": "ws://env:1", "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s"}
    assert resolve_server(ServerSpec(), {}) is None
    assert resolve_server(ServerSpec(), env) == ServerSpec("ws://env:1", "k", "s")
    assert resolve_server(ServerSpec(url="wss://spec"), env) == ServerSpec("wss://spec", "k", "s")
    with pytest.raises(FleetSpecError) as caught:
        resolve_server(ServerSpec(url="ws://x"), {})
    assert caught.value.where == "server.api_key"
    assert "LIVEKIT_API_SECRET" in str(caught.value)
    with pytest.raises(FleetSpecError, match=r"server\.url"):
        resolve_server(ServerSpec("ftp://x", "k", "s"), {})


def test_targets_are_imported_and_params_bound_before_anything_starts() -> None:
    base = "[[bots]]\nname='a'\nroom='r'\n"
    spec = parse_spec(base + "agent='greenroom.fleet.bots:Chatter'\nparams={interval=1, colour='red'}")
    with pytest.raises(FleetSpecError) as caught:
        check_targets(spec.groups, spec.bots)
    assert caught.value.where == "bots[0].params"
    assert "colour" in str(caught.value)
    for target, problem in (
        ("agent='no_such_module_here:X'", "cannot import 'no_such_module_here'"),
        ("agent='greenroom.fleet.bots:Nope'", "has no 'Nope'"),
        ("agent='greenroom.fleet.bots:record_latency'", "subclass of greenroom.agents.Agent"),
        ("entrypoint='greenroom.fleet.bots:Chatter'", "async function"),
    ):
        spec = parse_spec(base + target)
        with pytest.raises(FleetSpecError, match=re.escape(problem)):
            check_targets(spec.groups, spec.bots)


def test_load_spec_reads_a_file_and_names_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text("[[bots]]\nname='a'\nagent='m:A'\nroom='r'\n")
    spec = load_spec(path)
    assert spec.base_dir == str(tmp_path)
    assert [b.identity for b in spec.bots] == ["a-r-0"]
    with pytest.raises(FleetSpecError, match="cannot read the fleet spec"):
        load_spec(tmp_path / "missing.toml")
