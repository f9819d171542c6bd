"""From raw scenario results to rows (figure, greenroom, livekit, ratio, goal, met) and to the Markdown of
``docs/benchmarks.md``."""

from __future__ import annotations

import datetime
import importlib.metadata
import math
import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.suite.harness import percentile

__all__ = ["Row", "machine", "markdown", "rows", "table"]


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table. ``goal`` is text; ``met`` is None when the figure has no goal."""

    figure: str
    ours: float | None
    theirs: float | None
    unit: str
    goal: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.theirs is None or not self.theirs:
            return None
        return self.ours / self.theirs


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.2f}"


def _ratio_row(figure: str, ours: float, theirs: float, unit: str, *, goal: float | None, better: str) -> Row:
    """A row whose goal is a ratio: ``better`` is "lower" (ours ≤ goal × theirs) or "higher"."""
    if goal is None:
        return Row(figure, ours, theirs, unit)
    ratio = ours / theirs if theirs else math.nan
    met = ratio <= goal if better == "lower" else ratio >= goal
    return Row(figure, ours, theirs, unit, f"{'≤' if better == 'lower' else '≥'} {goal:g}×", met)


def _p1_p2(r: dict[str, Any]) -> list[Row]:
    ours, theirs = r["greenroom"], r["livekit"]
    out = []
    for q in (50, 95):
        a, b = percentile(ours["connect_ms"], q), percentile(theirs["connect_ms"], q)
        out.append(_ratio_row(f"P1 connect() p{q} (n={r['connects']})", a, b, "ms", goal=0.5, better="lower"))
    for q in (50, 99):
        a, b = percentile(ours["latency_ms"], q), percentile(theirs["latency_ms"], q)
        out.append(_ratio_row(f"P2 reliable A→B p{q} (n={r['packets']})", a, b, "ms", goal=1, better="lower"))
    return out


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


def _per_core(runs: list[dict[str, Any]]) -> float:
    """Relayed packets per server CPU-second (median over rounds)."""
    return float(
        statistics.median(run["delivered"] / run["server_cpu_s"] for run in runs if run["server_cpu_s"])
    )


def _mb_per_core(runs: list[dict[str, Any]]) -> float:
    return float(
        statistics.median(
            run["delivered"] * run["size"] / 1e6 / run["server_cpu_s"] for run in runs if run["server_cpu_s"]
        )
    )


def _p3_p8(r: dict[str, Any]) -> list[Row]:
    ours, theirs = r["greenroom"], r["livekit"]
    n_small, n_big = ours["small"][0]["count"], ours["big"][0]["count"]
    best_mb = max(_median(ours["big"], "mb_s"), _median(theirs["big"], "mb_s"))
    return [
        _ratio_row(
            f"P3 throughput, 64 B packets (n={n_small})",
            _median(ours["small"], "msg_s"),
            _median(theirs["small"], "msg_s"),
            "msg/s",
            goal=1,
            better="higher",
        ),
        _ratio_row(
            f"P3 throughput, 15 KB packets (n={n_big})",
            _median(ours["big"], "mb_s"),
            _median(theirs["big"], "mb_s"),
            "MB/s",
            goal=1,
            better="higher",
        ),
        Row(
            "P8 server relay, 64 B packets per CPU-s",
            _per_core(ours["small"]),
            _per_core(theirs["small"]),
            "msg/s/core",
            "≥ 10,000",
            min(_per_core(ours["small"]), _per_core(theirs["small"])) >= 10_000,
            "column = the clients' SDK; the server is greenroom's in both",
        ),
        Row(
            "P8 server relay, 15 KB packets per CPU-s",
            _mb_per_core(ours["big"]),
            _mb_per_core(theirs["big"]),
            "MB/s/core",
        ),
        Row(
            "P8 15 KB A→B through the server",
            _median(ours["big"], "mb_s"),
            _median(theirs["big"], "mb_s"),
            "MB/s",
            "≥ 10",
            best_mb >= 10,
            "best of the two client SDKs counts",
        ),
    ]


def _bots_best(r: dict[str, Any]) -> int:
    good = [s["bots"] for s in r["steps"] if s["p99_ms"] < 50 and not s.get("failed")]
    return max(good, default=0)


def _per_bot(r: dict[str, Any], key: str) -> float:
    last = r["steps"][-1]
    return float((last[key] - r["base"][key]) / max(1, last["bots"] - 2))


def _p4(ours: dict[str, Any], theirs: dict[str, Any]) -> list[Row]:
    o_last, t_last = ours["steps"][-1], theirs["steps"][-1]
    rss_o, rss_t = _per_bot(ours, "rss_mb"), _per_bot(theirs, "rss_mb")
    best = _bots_best(ours)
    return [
        Row(
            "P4 bots/process with p99 < 50 ms (1 msg/s)",
            best,
            _bots_best(theirs),
            "bots",
            "≥ 500",
            best >= 500,
            f"greenroom tried {[s['bots'] for s in ours['steps']]}, livekit "
            f"{[s['bots'] for s in theirs['steps']]}; {ours.get('stopped', 'no stop')} / "
            f"{theirs.get('stopped', 'no stop')}",
        ),
        Row(
            "P4 p99 at the largest count tried",
            o_last["p99_ms"],
            t_last["p99_ms"],
            "ms",
            note=f"at {o_last['bots']} / {t_last['bots']} bots",
        ),
        _ratio_row("P4 RSS per bot (data-only room)", rss_o, rss_t, "MB", goal=0.5, better="lower"),
        Row("P4 threads per bot", _per_bot(ours, "threads"), _per_bot(theirs, "threads"), "threads"),
    ]


def _p6(r: dict[str, Any]) -> list[Row]:
    return (
        [
            Row(f"P6 crash → actor serves again p{q}", percentile(r["restart_ms"], q), None, "ms")
            for q in (50, 95)
        ]
        + [
            Row(f"P6 … under live traffic p{q}", percentile(r.get("restart_traffic_ms", []), q), None, "ms")
            for q in (50, 95)
        ]
        + [
            Row(
                "P6 crash → next packet delivered p50",
                percentile(r["delivery_ms"], 50),
                None,
                "ms",
                note="official SDK has no actors: n/a",
            )
        ]
    )


def _growth(r: dict[str, Any]) -> float:
    """RSS growth after the first 50 cycles (allocator and import warm-up) to the end."""
    samples = r["samples"]
    start = next((mb for n, mb in samples if n >= 50), samples[0][1])
    return float(samples[-1][1] - start)


def _p7(ours: dict[str, Any], theirs: dict[str, Any]) -> list[Row]:
    g = _growth(ours)
    return [
        Row(
            "P7 join/leave soak: RSS growth",
            g,
            _growth(theirs),
            "MB",
            "≤ 5 MB",
            g <= 5 and ours["cycles"] >= 1000,
            f"cycles {ours['cycles']} / {theirs['cycles']} (from cycle 50 to the end)",
        )
    ]


def _agents_best(r: dict[str, Any]) -> int:
    good = [s["agents"] for s in r["steps"] if s["p99_ms"] < 50 and s["agents"] == s["rooms"]]
    return max(good, default=0)


def _per_agent(r: dict[str, Any], key: str) -> float:
    """Marginal MB per agent: from the one warm-up agent to the largest count tried."""
    last = r["steps"][-1]
    return float((last[key] - r["base"][key]) / max(1, last["agents"] - 1))


def _p9(ours: dict[str, Any], theirs: dict[str, Any]) -> list[Row]:
    best, o_last, t_last = _agents_best(ours), ours["steps"][-1], theirs["steps"][-1]
    rss = _per_agent(ours, "rss_mb")
    return [
        Row(
            "P9 agents/process, own room, 1 msg/s echo p99 < 50 ms",
            best,
            _agents_best(theirs),
            "agents",
            "≥ 500",
            best >= 500,
            f"greenroom tried {[s['agents'] for s in ours['steps']]}, livekit-agents "
            f"{[s['agents'] for s in theirs['steps']]}; {ours.get('stopped', 'no stop')} / "
            f"{theirs.get('stopped', 'no stop')}",
        ),
        Row(
            "P9 echo round trip p99 at the largest count",
            o_last["p99_ms"],
            t_last["p99_ms"],
            "ms",
            note=f"at {o_last['agents']} / {t_last['agents']} agents; p50 {o_last['p50_ms']:.1f} / "
            f"{t_last['p50_ms']:.1f} ms",
        ),
        Row(
            "P9 memory per agent",
            rss,
            _per_agent(theirs, "pss_mb"),
            "MB",
            "≤ 1 MB",
            rss <= 1,
            f"greenroom: worker RSS delta / agents (its PSS: {_per_agent(ours, 'pss_mb'):.2f}); "
            f"livekit-agents: marginal PSS per job process ({t_last['processes']} processes)",
        ),
    ]


_STATUS = {0: "PENDING", 1: "RUNNING", 2: "SUCCESS", 3: "FAILED"}


def _fate(fault: dict[str, Any]) -> str:
    """What happened to a livekit-agents job after a fault, in words."""
    statuses = ", ".join(_STATUS.get(j["status"], str(j["status"])) for j in fault.get("jobs", [])) or "none"
    left = fault.get("left_after_ms")
    where = f"left after {left:,.0f} ms" if left is not None else "never left"
    again = "served again" if fault.get("served_again") else "never served again"
    return f"{where}, reported {statuses}, {again}"


def _p10_p11(ours: dict[str, Any], theirs: dict[str, Any]) -> list[Row]:
    crash, blocked, hang = ours["crash_ms"], ours["blocked_ms"], ours["hang_ms"]
    same = bool(ours["same_participant"])
    lk_crash, lk_blocked, lk_hang = theirs["crash"], theirs["blocked"], theirs["hang"]
    return [
        Row(
            "P10 agent logic crash → serving again p50",
            percentile(crash, 50),
            None,
            "ms",
            "≤ 5 ms",
            percentile(crash, 50) <= 5 and same,
            f"same participant: {same}; livekit-agents: the job ends ({_fate(lk_crash)})",
        ),
        Row("P10 … p95", percentile(crash, 95), None, "ms"),
        Row(
            "P11 blocked loop → detected, acted on, serving (max)",
            max(blocked),
            lk_blocked.get("left_after_ms"),
            "ms",
            "≤ 2 s",
            max(blocked) <= 2000 and same,
            f"n={len(blocked)}; livekit-agents: {_fate(lk_blocked)}",
        ),
        Row(
            "P11 async hang → detected, acted on, serving (max)",
            max(hang),
            None,
            "ms",
            "≤ 2 s",
            max(hang) <= 2000 and same,
            f"n={len(hang)}; livekit-agents: not detected in {lk_hang.get('observed_s', 0):g} s "
            f"({_fate(lk_hang)})",
        ),
    ]


def _p14_p15(r: dict[str, Any]) -> list[Row]:
    ours, theirs = r["greenroom"], r["livekit"]
    out = []
    for q in (50, 99):
        a, b = percentile(ours["rpc_ms"], q), percentile(theirs["rpc_ms"], q)
        figure = f"P14 RPC round trip p{q} (n={r['calls']})"
        out.append(_ratio_row(figure, a, b, "ms", goal=1, better="lower"))
    a, b = statistics.median(ours["rpc_cpu_us"]), statistics.median(theirs["rpc_cpu_us"])
    out.append(_ratio_row("P14 client CPU per RPC (caller+callee)", a, b, "µs", goal=1, better="lower"))
    for key, figure in (
        ("text_mb_s", "P15 text stream, 1 MB send_text"),
        ("file_mb_s", "P15 byte stream, 5 MB send_file"),
    ):
        a, b = statistics.median(ours[key]), statistics.median(theirs[key])
        out.append(_ratio_row(f"{figure} (median of {r['rounds']})", a, b, "MB/s", goal=1, better="higher"))
    return out


def _p16(r: dict[str, Any]) -> list[Row]:
    """Encryption overhead per audio track (encrypted − plain CPU, % of one core), each side."""

    def per_track(cpu: dict[str, Any], who: str) -> float:
        return float(100 * (cpu["loaded"][who] - cpu["idle"][who]) / cpu["tracks"])

    out = []
    for who, what in (("pub", "publish"), ("sub", "subscribe")):
        ours, theirs = (
            per_track(r[f"{sdk}_e2ee"], who) - per_track(r[f"{sdk}_plain"], who)
            for sdk in ("greenroom", "livekit")
        )
        note = "encrypted: greenroom {:.1f}, livekit {:.1f} % core/track".format(
            *(per_track(r[f"{sdk}_e2ee"], who) for sdk in ("greenroom", "livekit"))
        )
        out.append(
            Row(
                f"P16 E2EE overhead per {what} track",
                ours,
                theirs,
                "% core",
                "≤ official",
                ours <= theirs,
                note,
            )
        )
    return out


def _s1(r: dict[str, Any]) -> list[Row]:
    """One row per flood: the well-behaved pair's p99 while it ran, and the server's memory."""
    out = []
    for flood in r["floods"]:
        pair, memory = flood["pair"], flood["memory"]
        applied = ", ".join(f"{k}={v}" for k, v in flood["stats"].items())
        out.append(
            Row(
                f"S1 {flood['case']}: others' p99",
                pair.get("p99_ms"),
                None,
                "ms",
                note=f"max {pair.get('max_ms')} ms over {pair.get('packets')} packets; memory peak "
                f"+{memory['peak_mb']} MB, after +{memory['after_mb']} MB; {applied}",
            )
        )
    for case, error in r.get("errors", {}).items():
        out.append(Row(f"S1 {case} (failed)", None, None, "", note=str(error)[:300]))
    return out


def _r1(r: dict[str, Any]) -> list[Row]:
    """Per fault kind: packets lost silently with greenroom as sender (ours) and the official SDK (theirs)."""
    out = []
    for victim in ("sender", "receiver"):
        runs = {
            s: [x for x in r["runs"] if x["sender"] == s and x["victim"] == victim]
            for s in ("greenroom", "livekit")
        }

        def silent(xs: list[dict[str, Any]]) -> float | None:
            return sum(max(0, len(x["lost"]) - x["reported"]) for x in xs) if xs else None

        def detail(xs: list[dict[str, Any]]) -> str:
            sent, lost = sum(x["sent"] for x in xs), sum(len(x["lost"]) for x in xs)
            dup, reorder = sum(x["duplicated"] for x in xs), sum(x["reordered"] for x in xs)
            told = sum(x["reported"] for x in xs)
            return f"sent {sent}, lost {lost} (reported {told}), duplicated {dup}, reordered {reorder}"

        out.append(
            Row(
                f"R1 leave{{RECONNECT}} to the {victim}: lost silently",
                silent(runs["greenroom"]),
                silent(runs["livekit"]),
                "packets",
                "0 (ours)",
                silent(runs["greenroom"]) == 0 if runs["greenroom"] else None,
                note=f"greenroom sender: {detail(runs['greenroom'])}; "
                f"official sender: {detail(runs['livekit'])}",
            )
        )
    for case, error in r.get("errors", {}).items():
        out.append(Row(f"R1 {case} (failed)", None, None, "", note=str(error)[:300]))
    return out


def _p12(r: dict[str, Any]) -> list[Row]:
    """One row per fleet size: time until all run, with latency, memory and restarts in the note."""
    out = []
    for st in r["steps"]:
        if st.get("failed"):
            out.append(Row(f"P12 fleet of {st['bots']} (not all in)", None, None, "", note=st["failed"]))
            continue
        rss = " + ".join(f"{m:.0f}" for m in st["rss_mib"])
        out.append(
            Row(
                f"P12 fleet of {st['bots']}: all running after",
                st["joined_s"],
                None,
                "s",
                note=f"{st['processes']} processes; one-way p50 {st['p50_ms']:.0f} ms, "
                f"p99 {st['p99_ms']:.0f} ms; RSS {st['rss_kib_per_bot']:.0f} KiB per bot ({rss} MiB); "
                f"restarts {st['restarts'] or 'none'}; drain {st['drain_s']:.1f} s",
            )
        )
    return out


def _p13(r: dict[str, Any]) -> list[Row]:
    """Bots per node at the measured latency, and the time to reschedule a lost node's bots."""
    if r.get("failed"):
        return [Row("P13 (failed)", None, None, "", note=str(r["failed"])[:300])]
    per_node = r["bots"] / r["nodes"]
    rss = ", ".join(f"{v:.1f}" for v in r["rss_mib_per_bot"])
    return [
        Row(
            f"P13 Ray: bots per node ({r['nodes']} nodes, 1 CPU each)",
            per_node,
            None,
            "bots",
            note=f"all {r['bots']} running after {r['joined_s']:.1f} s; one-way p50 {r['p50_ms']:.0f} ms, "
            f"p99 {r['p99_ms']:.0f} ms; RSS per bot {rss} MiB (per actor)",
        ),
        Row(
            "P13 Ray: reschedule after a node loss",
            r["reschedule_s"],
            None,
            "s",
            note=f"{r['rescheduled_bots']} bots; loss seen after {r['loss_seen_s']:.2f} s; "
            f"process restarts {r['process_restarts']}",
        ),
    ]


def rows(results: dict[str, Any]) -> list[Row]:
    """Every row the results allow; a failed scenario becomes a row with its error."""
    builders: list[tuple[str, Callable[[], list[Row]]]] = [
        ("P1/P2", lambda: _p1_p2(results["clients"])),
        ("P3/P8", lambda: _p3_p8(results["throughput"])),
        ("P4", lambda: _p4(results["bots_greenroom"], results["bots_livekit"])),
        ("P5", lambda: list(results["audio_rows"])),
        ("P6", lambda: _p6(results["crash"])),
        ("P7", lambda: _p7(results["soak_greenroom"], results["soak_livekit"])),
        ("P9", lambda: _p9(results["agents_per_process_greenroom"], results["agents_per_process_livekit"])),
        ("P10/P11", lambda: _p10_p11(results["agents_greenroom"], results["agents_livekit"])),
        ("P14/P15", lambda: _p14_p15(results["rpc_streams"])),
        ("P16", lambda: _p16(results["e2ee"])),
        ("S1", lambda: _s1(results["floods"])),
        ("R1", lambda: _r1(results["reliable"])),
        ("P12", lambda: _p12(results["fleet"])),
        ("P13", lambda: _p13(results["cluster"])),
    ]
    out: list[Row] = []
    for name, build in builders:
        try:
            out.extend(build())
        except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError, statistics.StatisticsError):
            error = results.get("errors", {}).get(name, "not measured")
            out.append(Row(f"{name} (not measured)", None, None, "", note=str(error)[:300]))
    return out


def _met(row: Row) -> str:
    return "" if row.met is None else ("met" if row.met else "**not met**")


def table(table_rows: list[Row]) -> str:
    """A plain-text table for the terminal."""
    lines = [f"{'figure':<46}{'greenroom':>11}{'livekit':>11}{'ratio':>8}  {'unit':<11}{'goal':<11}met"]
    for row in table_rows:
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}x"
        met = "" if row.met is None else ("yes" if row.met else "NO")
        lines.append(
            f"{row.figure:<46}{_fmt(row.ours):>11}{_fmt(row.theirs):>11}{ratio:>8}  "
            f"{row.unit:<11}{row.goal:<11}{met}"
        )
    return "\n".join(lines)


def machine() -> dict[str, str]:
    """Where and with what the run happened."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass

    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "absent"

    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu}, {os.cpu_count()} vCPUs",
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "packages": ", ".join(
            f"{d} {version(d)}" for d in ("livekit", "aiortc", "aioice", "pylibsrtp", "pykka", "websockets")
        ),
    }


def markdown(table_rows: list[Row], info: dict[str, str], method: str, notes: str) -> str:
    """The whole ``docs/benchmarks.md``."""
    lines = [
        "# Benchmarks: greenroom and the official SDK on the same server",
        "",
        "Written by `make bench` (`benchmarks/run.py`); do not edit it by hand — the analysis below the "
        "method is kept in `benchmarks/notes.md` and copied in by the run.",
        "",
        f"- **Date:** {info['date']}",
        f"- **Machine:** {info['cpu']}; {info['system']}; Python {info['python']}",
        f"- **Packages:** {info['packages']}",
        "",
        "Ratio = greenroom / livekit (the official Python SDK, Rust/libwebrtc inside). "
        "Both clients talk to the same greenroom dev server, in the same private network namespace.",
        "",
        "| figure | greenroom | livekit | ratio | unit | goal | |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for row in table_rows:
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}×"
        figure = row.figure + (f" <br><sub>{row.note}</sub>" if row.note else "")
        lines.append(
            f"| {figure} | {_fmt(row.ours)} | {_fmt(row.theirs)} | {ratio} | {row.unit} | {row.goal} | "
            f"{_met(row)} |"
        )
    lines += ["", "## Method", "", method.strip(), "", notes.strip(), ""]
    return "\n".join(lines)
