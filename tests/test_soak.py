"""bench/soak.py, shortened: `omni bot` answers 400 messages from 20 users (a tool round in
every tenth) and nothing grows that should not: RSS, file descriptors, threads, asyncio tasks
after the warm-up; every count in the database exact, every user's answers theirs and in order."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "soak.py"
# A short run's bounds. The full run (10,000 messages) is judged by the 20 %.
RSS_GROWTH = 0.10
IN_FLIGHT = 32  # the script's default
FD_SLACK = 2  # besides sockets: a file open at the moment of the look
# Pooled keep-alive connections to the fakes come and go with the load; leaking one a message
# would pass this by hundreds.
MAX_SOCKETS = 2 * IN_FLIGHT + 8
THREAD_SLACK = 2  # executor threads may be started late, up to their pools' bounds
TASK_SLACK = 2


def test_short_soak_grows_nothing_and_counts_exactly(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--messages",
            "400",
            "--users",
            "20",
            "--rate",
            "0",
            "--settle",
            "0",
            "--json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    out = json.loads(run.stdout.splitlines()[-1])
    assert out["problems"] == [] and out["exit_code"] == 0
    rows = out["rows"]
    assert rows["user_messages"] == 400 and rows["tool_messages"] == 40 and rows["episodes"] == 800
    warm, end = out["warm"], out["end"]
    assert out["rss_growth"] < RSS_GROWTH, out
    assert out["child_rss_growth"] < RSS_GROWTH, out
    other_fds = [u["fds"] - u["sockets"] for u in (warm["usage"], end["usage"])]
    assert other_fds[1] - other_fds[0] <= FD_SLACK, out
    assert end["usage"]["sockets"] <= MAX_SOCKETS, out
    assert end["usage"]["child_fds"] - warm["usage"]["child_fds"] <= FD_SLACK, out
    assert end["usage"]["threads"] - warm["usage"]["threads"] <= THREAD_SLACK, out
    assert end["usage"]["children"] == 1  # the skills server, never restarted or doubled
    assert end["tasks"] - warm["tasks"] <= TASK_SLACK, out
