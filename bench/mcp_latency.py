"""Latency of ``omni mcp`` against a bare MCP SDK server, both over stdio with the SDK client.

For each server, spawned as the agent spawns the built-in one (only OMNI_* variables over the
SDK's default environment, the data dir as working directory): spawn -> initialize result and
spawn -> tools/list answered (medians of a few spawns, omni and bare interleaved, as this
machine is noisy), the CPU the server used until then, tools/call p50/p95 of a trivial tool and
resident memory. Then the agent's start-up case: three servers spawned at once (omni + two bare,
against three bare), time until all three answered tools/list. ``--json`` prints one JSON object
as the last line.

    uv run python bench/mcp_latency.py [--spawns 5] [--calls 500] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

BENCH = Path(__file__).resolve().parent


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_ms(pid: int) -> float:
    """User + system CPU the process (all its threads) has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def _pids_before() -> set[int]:
    return {int(p) for p in os.listdir("/proc") if p.isdigit()}


def _is_python(pid: int) -> bool:
    try:
        return "python" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


async def _session(
    params: StdioServerParameters, calls: int, tool: str, args: dict[str, Any]
) -> dict[str, float]:
    before = _pids_before()
    started = time.perf_counter()
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        init_ms = (time.perf_counter() - started) * 1000
        t0 = time.perf_counter()
        await session.list_tools()
        list_ms = (time.perf_counter() - t0) * 1000
        start_ms = (time.perf_counter() - started) * 1000
        servers = [pid for pid in _pids_before() - before if _is_python(pid)]
        cpu_ms = sum(_cpu_ms(pid) for pid in servers)
        samples: list[float] = []
        for _ in range(calls):
            t0 = time.perf_counter()
            result = await session.call_tool(tool, args)
            samples.append((time.perf_counter() - t0) * 1000)
            assert not result.is_error
        rss = max((_rss_kib(pid) for pid in servers), default=0)
    figures = {
        "init_ms": init_ms,
        "list_ms": list_ms,
        "start_ms": start_ms,
        "cpu_ms": cpu_ms,
        "rss_mib": rss / 1024,
    }
    if len(samples) >= 2:
        q = statistics.quantiles(samples, n=100)
        figures |= {"call_p50_ms": statistics.median(samples), "call_p95_ms": q[94]}
    return figures


async def _together(servers: list[StdioServerParameters]) -> float:
    """Spawn all at once, as the agent's ToolBox does; ms until every one answered tools/list."""
    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for params in servers:
            tg.start_soon(_session, params, 0, "", {})
    return (time.perf_counter() - started) * 1000


def measure(
    servers: dict[str, StdioServerParameters], spawns: int, calls: int, tool: str
) -> dict[str, dict[str, float]]:
    """Start-up medians over ``spawns`` interleaved spawns, then one long session each for calls."""
    args = {"timezone": "UTC"}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    for _ in range(spawns):
        for name, params in servers.items():
            runs[name].append(anyio.run(_session, params, 0, tool, args))
    results = {}
    for name, params in servers.items():
        full = anyio.run(_session, params, calls, tool, args)
        keys = ("init_ms", "start_ms", "cpu_ms")
        median = {key: statistics.median(r[key] for r in runs[name]) for key in keys}
        results[name] = {
            **median,
            "list_ms": statistics.median([*(r["list_ms"] for r in runs[name]), full["list_ms"]]),
            "call_p50_ms": full["call_p50_ms"],
            "call_p95_ms": full["call_p95_ms"],
            "rss_mib": full["rss_mib"],
        }
    return results


def measure_together(
    omni: StdioServerParameters, bare: StdioServerParameters, spawns: int
) -> dict[str, float]:
    """Three servers at once: omni + two bare against three bare, interleaved; medians."""
    mixed: list[float] = []
    three_bare: list[float] = []
    for _ in range(spawns):
        mixed.append(anyio.run(_together, [omni, bare, bare]))
        three_bare.append(anyio.run(_together, [bare, bare, bare]))
    return {"omni_2bare_ms": statistics.median(mixed), "bare_3_ms": statistics.median(three_bare)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=5, help="spawns for the start-up medians")
    parser.add_argument("--calls", type=int, default=500, help="tools/call samples")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        # What agent/mcp_config.builtin_spec passes; the SDK adds only PATH, HOME and the like.
        env = {
            "OMNI_DATA_DIR": str(data),
            "OMNI_WORKSPACE": str(data / "workspace"),
            "OMNI_DATABASE_URL": f"sqlite+aiosqlite:///{data}/omni.db",
            "OMNI_SHELL_ENABLED": "false",
            "OMNI_WEB_ALLOW_PRIVATE": "false",
            "OMNI_LOG_LEVEL": "WARNING",
        }
        omni = StdioServerParameters(command=sys.executable, args=["-m", "omni", "mcp"], env=env, cwd=data)
        bare_py = str(BENCH / "_bare_mcp_server.py")
        bare = StdioServerParameters(command=sys.executable, args=[bare_py], env=env)
        servers = {"bare": bare, "omni": omni}
        # One throwaway round: the first run migrates the temp database and warms caches.
        measure(servers, 1, 2, "current_time")
        results = measure(servers, args.spawns, args.calls, "current_time")
        together = measure_together(omni, bare, args.spawns)
    for name, figures in results.items():
        print(
            f"{name:5} initialize {figures['init_ms']:7.1f} ms   +tools/list {figures['start_ms']:7.1f} ms   "
            f"CPU {figures['cpu_ms']:6.0f} ms   tools/list {figures['list_ms']:5.2f} ms   "
            f"tools/call p50 {figures['call_p50_ms']:5.2f} ms p95 {figures['call_p95_ms']:5.2f} ms   "
            f"RSS {figures['rss_mib']:6.1f} MiB"
        )
    print(
        f"three at once, to tools/list: omni + 2 bare {together['omni_2bare_ms']:7.1f} ms   "
        f"3 bare {together['bare_3_ms']:7.1f} ms"
    )
    ratio = {
        "init": results["omni"]["init_ms"] / results["bare"]["init_ms"],
        "start": results["omni"]["start_ms"] / results["bare"]["start_ms"],
        "cpu": results["omni"]["cpu_ms"] / results["bare"]["cpu_ms"],
        "call_p50": results["omni"]["call_p50_ms"] / results["bare"]["call_p50_ms"],
    }
    print(
        f"omni/bare: initialize x{ratio['init']:.2f}, start x{ratio['start']:.2f}, "
        f"CPU x{ratio['cpu']:.2f}, tools/call p50 x{ratio['call_p50']:.2f}"
    )
    if args.json:
        print(
            json.dumps(
                {**results, "together": together, "ratio": ratio, "calls": args.calls, "spawns": args.spawns}
            )
        )


if __name__ == "__main__":
    main()
