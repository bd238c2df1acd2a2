"""How long `omni --help` and the import of each command's package take.

    python bench/startup.py [--runs 10] [--json]

Prints one line per figure (median wall time of fresh interpreters, ms) and, with --json, one
JSON object as the last line. The CLI must stay far below 300 ms: heavy packages (litellm,
telegram, mcp, sqlalchemy, pydantic) are imported only by the commands that use them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CASES = {
    "omni --help": [sys.executable, "-m", "omni", "--help"],
    "import omni.cli": [sys.executable, "-c", "import omni.cli"],
    "import mcp_server.server": [sys.executable, "-c", "import mcp_server.server"],
    "import bot.app": [sys.executable, "-c", "import bot.app"],
    "import litellm": [sys.executable, "-c", "import litellm"],
}


def measure(cmd: list[str], runs: int) -> float:
    # As the app runs it: litellm must not try to fetch its price list (no network).
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {}
    for name, cmd in CASES.items():
        runs = max(1, args.runs // 3) if "litellm" in name else args.runs
        results[name] = round(measure(cmd, runs), 1)
        print(f"{name:28s} {results[name]:8.1f} ms (median of {runs})")
    if args.json:
        print(json.dumps({"ms": results}))


if __name__ == "__main__":
    main()
