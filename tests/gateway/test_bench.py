"""bench/gateway_load.py runs end to end at its smallest size (so it cannot rot): one gateway
on SQLite, and two gateway processes sharing sessions on PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
BENCH = ROOT / "bench" / "gateway_load.py"


def quick_run(*args: str) -> dict[str, Any]:
    """The figures of ``gateway_load.py --quick``, after checking it passed."""
    cmd = [sys.executable, str(BENCH), "--quick", "--json", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["answered"] == figures["requests"] == 20
    assert figures["stored_ok"] is True and figures["problems"] == []
    assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["max_ms"]
    # Five sessions of four requests each at 0.2 s: the busiest session alone needs 0.8 s.
    assert figures["wall_s"] >= figures["floor_s"] == 0.8
    return figures


def test_the_quick_load_run_answers_everything_and_stores_each_exchange_once() -> None:
    figures = quick_run()
    assert (figures["workers"], figures["database"], figures["per_worker"]) == (1, "sqlite", [20])


def test_two_workers_on_postgresql_take_each_sessions_turns_one_at_a_time(postgres_url: str) -> None:
    # Each session's two clients send to different workers at the same moment: the database
    # holds every exchange once and in order only if the session's lock holds across processes.
    figures = quick_run("--workers", "2", "--database-url", postgres_url)
    assert (figures["workers"], figures["database"]) == (2, "postgresql")
    assert figures["per_worker"] == [10, 10]
    assert figures["sessions_across_workers"] == figures["sessions"] == 5


def test_several_workers_on_sqlite_are_refused_before_anything_starts() -> None:
    cmd = [sys.executable, str(BENCH), "--quick", "--workers", "2"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--workers above 1 needs PostgreSQL" in result.stderr
