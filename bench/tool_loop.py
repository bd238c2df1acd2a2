"""The agent's cost per tool call, against calling the same tool directly with the SDK client.

One user turn in which the fake LLM asks for N trivial tool calls in sequence (the built-in
skills server's ``current_time``), through the real agent, the real ``omni mcp`` subprocess and
a real SQLite file; in the same run the same tool is called directly through an SDK
``ClientSession`` on the same server. Also: start-up of the client manager with the built-in
server plus two extra stdio servers (concurrent starts).

    uv run python bench/tool_loop.py [--calls 10] [--turns 5] [--json]

Per-call time in the agent is measured between the agent's progress events for the call
(tool_start -> tool_end: routing, MCP round trip, result rendering, progress). The whole
turn's time per step is printed too (it includes the fake LLM's HTTP round trip via litellm).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent import Progress, Turn, open_agent  # noqa: E402
from agent.mcp_config import StdioSpec  # noqa: E402
from agent.toolbox import ToolBox  # noqa: E402
from memory.migrate import upgrade  # noqa: E402
from memory.store import open_store  # noqa: E402
from omni.settings import load_settings  # noqa: E402
from tests.fakes.llm_api import FakeLLM, ScriptedReply  # noqa: E402
from tests.fakes.server import serve  # noqa: E402

TOOL = "current_time"
# Distinct arguments per call: the agent rightly stops a model repeating the very same call.
ZONES = [
    "UTC",
    "Europe/Paris",
    "Asia/Tokyo",
    "America/New_York",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "Africa/Cairo",
    "Europe/London",
]


def args_for(i: int) -> dict[str, str]:
    return {"timezone": ZONES[i % len(ZONES)]}


EXTRA = ROOT / "tests" / "tools" / "extra_server.py"


def _pct(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100)[q - 1] if len(samples) > 1 else samples[0]


async def agent_turns(base: str, data: Path, llm: FakeLLM, calls: int, turns: int) -> dict[str, Any]:
    settings = load_settings(
        data_dir=data, llm_model="openai/fake-model", llm_api_base=base + "/v1", llm_api_key="sk-bench"
    )
    await asyncio.to_thread(upgrade, settings.database_url)
    per_call: list[float] = []
    per_step: list[float] = []
    gaps: list[float] = []
    direct: list[float] = []
    async with open_store(settings.database_url) as store, open_agent(settings, store) as agent:
        started: dict[str, float] = {}
        ended: list[float] = []

        async def progress(event: Progress) -> None:
            now = time.perf_counter()
            if event.kind == "tool_start":
                started["t"] = now
            elif event.kind == "tool_end":
                per_call.append((now - started["t"]) * 1000)
                ended.append(now)
            elif event.kind == "thinking" and ended:
                gaps.append(now - ended[-1])

        turn = Turn("bench:1", "what time is it, ten times?", user_id=None, is_admin=True)
        await agent.reply(turn)  # warm: litellm import, first tools/list
        for _ in range(turns):
            llm.enqueue(
                *[
                    ScriptedReply(tool_calls=[{"name": f"skills__{TOOL}", "arguments": args_for(i)}])
                    for i in range(calls)
                ],
                ScriptedReply(text="done"),
            )
            t0 = time.perf_counter()
            await agent.reply(turn, progress)
            per_step.append((time.perf_counter() - t0) * 1000 / (calls + 1))
        gap_s = statistics.median(gaps) + 0.010 if gaps else 0.015  # + the fake LLM's round trip
        # The same tool, same server process, straight through the SDK session.
        box = agent._tools
        assert isinstance(box, ToolBox)
        session = await box._connections["skills"].ensure()
        for i in range(calls * turns):
            # Spaced like the agent's calls (an LLM round trip between two): a server called
            # back to back stays hotter than one the agent calls, which would flatter "direct".
            await asyncio.sleep(gap_s)
            t0 = time.perf_counter()
            await session.call_tool(TOOL, args_for(i))
            direct.append((time.perf_counter() - t0) * 1000)
    return {"agent": per_call, "direct": direct, "step": per_step}


async def startup(data: Path) -> float:
    settings = load_settings(data_dir=data)
    from agent.mcp_config import builtin_spec

    extra = StdioSpec(command=sys.executable, args=[str(EXTRA)])
    specs = {"skills": builtin_spec(settings), "one": extra, "two": extra}
    t0 = time.perf_counter()
    box = ToolBox(specs)
    await box.start()
    elapsed = time.perf_counter() - t0
    assert all(s.state == "ready" for s in box.status()), box.status()
    await box.aclose()
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    llm = FakeLLM()
    with tempfile.TemporaryDirectory() as tmp:
        async with serve(llm.app) as base:
            figures = await agent_turns(base, Path(tmp) / "a", llm, args.calls, args.turns)
        start_s = await startup(Path(tmp) / "b")
    agent_p50, direct_p50 = statistics.median(figures["agent"]), statistics.median(figures["direct"])
    result = {
        "tool_calls": len(figures["agent"]),
        "agent_call_ms_p50": round(agent_p50, 3),
        "agent_call_ms_p95": round(_pct(figures["agent"], 95), 3),
        "direct_call_ms_p50": round(direct_p50, 3),
        "direct_call_ms_p95": round(_pct(figures["direct"], 95), 3),
        "ratio_p50": round(agent_p50 / direct_p50, 3),
        "turn_ms_per_step_p50": round(statistics.median(figures["step"]), 3),
        "startup_3_servers_s": round(start_s, 3),
    }
    for label, key in (("via agent ", "agent"), ("direct SDK", "direct")):
        p50, p95 = result[f"{key}_call_ms_p50"], result[f"{key}_call_ms_p95"]
        print(f"tool call {label} p50 {p50:.2f} ms  p95 {p95:.2f} ms")
    print(f"ratio p50            {result['ratio_p50']:.2f}x (target <= 1.3x, < 5 ms absolute)")
    print(f"whole turn per step  p50 {result['turn_ms_per_step_p50']:.2f} ms (incl. fake LLM via litellm)")
    print(f"start 3 servers      {result['startup_3_servers_s']:.2f} s (target < 2 s)")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
