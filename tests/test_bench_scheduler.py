"""bench/scheduler.py end to end, tiny: the real `omni bot` delivers every due reminder once, and
the JSON line carries the figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "scheduler.py"


def test_a_tiny_run_delivers_every_due_reminder_once_and_reports_the_figures() -> None:
    cmd = [sys.executable, str(BENCH), "--jobs", "30", "--users", "5", "--due", "6"]
    cmd += ["--window", "1", "--idle", "1", "--lead", "3", "--json"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert (out["database"], out["jobs"], out["users"], out["due"]) == ("sqlite", 30, 5, 6)
    assert (out["delivered"], out["exactly_once"], out["twice_or_more"], out["missing"]) == (6, 6, 0, 0)
    assert out["unexpected"] == 0  # no far job fired early, nothing else was sent
    assert 0 <= out["delay_ms_min"] <= out["delay_ms_p50"] <= out["delay_ms_p95"] <= out["delay_ms_max"]
    assert out["idle_s"] > 0 and out["idle_cpu_pct"] >= 0 and out["floor_idle_cpu_pct"] >= 0
    assert isinstance(out["idle_settled"], bool)  # a tiny --lead may not see the warm-up end
    assert out["window_cpu_ms"] >= 0 and out["cpu_ms_per_delivery"] is not None
    assert "delivered exactly once" in done.stdout
