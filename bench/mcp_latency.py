"""Latency of ``omni mcp`` against a bare MCP SDK server, both over stdio with the SDK client.

For each server: spawn -> initialize result (median of a few spawns), tools/list, tools/call
p50/p95 of a trivial tool, and the server's resident memory. ``--json`` prints one JSON
object as the last line.

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
ROOT = BENCH.parent


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _server_pid(parent: int) -> int:
    """The server process: the spawned python itself, or its only child when wrapped."""
    children = Path(f"/proc/{parent}/task/{parent}/children")
    kids = children.read_text().split() if children.exists() else []
    return int(kids[0]) if kids else parent


def _pids_before() -> set[int]:
    return {int(p) for p in os.listdir("/proc") if p.isdigit()}


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
        samples: list[float] = []
        for _ in range(calls):
            t0 = time.perf_counter()
            result = await session.call_tool(tool, args)
            samples.append((time.perf_counter() - t0) * 1000)
            assert not result.is_error
        new = sorted(_pids_before() - before)
        rss = max((_rss_kib(pid) for pid in new if _is_python(pid)), default=0)
    figures = {"init_ms": init_ms, "list_ms": list_ms, "rss_mib": rss / 1024}
    if len(samples) >= 2:
        q = statistics.quantiles(samples, n=100)
        figures |= {"call_p50_ms": statistics.median(samples), "call_p95_ms": q[94]}
    return figures


def _is_python(pid: int) -> bool:
    try:
        return "python" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


async def measure(params: StdioServerParameters, spawns: int, calls: int, tool: str) -> dict[str, float]:
    args = {"timezone": "UTC"}
    runs = [await _session(params, 0, tool, args) for _ in range(spawns)]
    full = await _session(params, calls, tool, args)
    return {
        "init_ms": statistics.median(r["init_ms"] for r in runs),
        "list_ms": statistics.median([*(r["list_ms"] for r in runs), full["list_ms"]]),
        "call_p50_ms": full["call_p50_ms"],
        "call_p95_ms": full["call_p95_ms"],
        "rss_mib": full["rss_mib"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=5, help="spawns for the initialize median")
    parser.add_argument("--calls", type=int, default=500, help="tools/call samples")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OMNI_DATA_DIR": f"{tmp}/data", "OMNI_LOG_LEVEL": "WARNING"}
        env = {k: v for k, v in env.items() if k != "OMNI_SKILLS_DIRS"}
        omni = StdioServerParameters(
            command=sys.executable, args=["-m", "omni", "mcp"], env=env, cwd=str(ROOT)
        )
        bare = StdioServerParameters(
            command=sys.executable, args=[str(BENCH / "_bare_mcp_server.py")], env=env
        )
        # One throwaway spawn each: the first run migrates the temp database and warms caches.
        anyio.run(measure, omni, 1, 2, "current_time")
        anyio.run(measure, bare, 1, 2, "current_time")
        results = {
            "bare": anyio.run(measure, bare, args.spawns, args.calls, "current_time"),
            "omni": anyio.run(measure, omni, args.spawns, args.calls, "current_time"),
        }
    for name, figures in results.items():
        print(
            f"{name:5} initialize {figures['init_ms']:7.1f} ms   tools/list {figures['list_ms']:6.2f} ms   "
            f"tools/call p50 {figures['call_p50_ms']:5.2f} ms p95 {figures['call_p95_ms']:5.2f} ms   "
            f"RSS {figures['rss_mib']:6.1f} MiB"
        )
    ratio = {
        "init": results["omni"]["init_ms"] / results["bare"]["init_ms"],
        "call_p50": results["omni"]["call_p50_ms"] / results["bare"]["call_p50_ms"],
    }
    print(f"omni/bare: initialize x{ratio['init']:.2f}, tools/call p50 x{ratio['call_p50']:.2f}")
    if args.json:
        print(json.dumps({**results, "ratio": ratio, "calls": args.calls, "spawns": args.spawns}))


if __name__ == "__main__":
    main()
