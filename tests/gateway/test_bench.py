"""bench/gateway_load.py runs end to end at its smallest size (so it cannot rot)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
BENCH = ROOT / "bench" / "gateway_load.py"


def test_the_quick_load_run_answers_everything_and_stores_each_exchange_once() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json"], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["answered"] == figures["requests"] == 20
    assert figures["stored_ok"] is True and figures["problems"] == []
    assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["max_ms"]
    # Five sessions of four requests each at 0.2 s: the busiest session alone needs 0.8 s.
    assert figures["wall_s"] >= figures["floor_s"] == 0.8
