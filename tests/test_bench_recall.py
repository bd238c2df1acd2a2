"""bench/recall.py end to end on a tiny dataset: the contract's JSON line, and a question that
repeats its evidence's words is recalled; on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "recall.py"
CONTRACT_KEYS = {
    "k",
    "recall",
    "by_category",
    "questions",
    "ingest_turns_per_s",
    "recall_ms_p50",
    "recall_ms_p95",
}


def _turn(tid: str, session: int, time: str, speaker: str, text: str) -> dict[str, Any]:
    return {"id": tid, "session": session, "time": time, "speaker": speaker, "text": text}


DATASET = {
    "name": "tiny",
    "conversations": [
        {
            "id": "c1",
            "turns": [
                _turn("D1:1", 1, "2024-05-08T13:56:00", "Ana", "I adopted a puppy called Miso."),
                _turn("D1:2", 1, "2024-05-08T13:57:00", "assistant", "Congratulations! How old is he?"),
                _turn("D2:1", 2, "2024-07-01T09:00:00", "Ana", "I bought a red kayak at the harbour market."),
                _turn("D2:2", 2, "2024-07-01T09:01:00", "assistant", "Lovely, where will you paddle it?"),
                _turn("D3:1", 3, "2024-09-12T18:30:00", "Ana", "My sister Carla moved to Porto."),
            ],
            "questions": [
                {
                    "id": "c1/q1",
                    "question": "Ana bought a red kayak at the harbour market?",
                    "evidence": ["D2:1"],
                    "category": "single-hop",
                },
                {
                    "id": "c1/q2",
                    "question": "What is Ana's dog called?",
                    "evidence": ["D1:1"],
                    "category": "multi-hop",
                },
            ],
        },
        {
            "id": "c2",
            "turns": [
                _turn("D1:1", 1, "2023-01-02T10:00:00", "Ben", "Started a new job at Brightpay today."),
                _turn("D1:2", 1, "2023-01-02T10:01:00", "Kim", "Congrats! Remote?"),
                _turn("D2:1", 2, "2023-03-04T10:00:00", "Ben", "We are moving to Leith in April."),
            ],
            "questions": [
                {
                    "id": "c2/q1",
                    "question": "When did Ben change employers?",
                    "evidence": ["D1:1"],
                    "category": "temporal",
                },
            ],
        },
    ],
}


def _run(dataset: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(BENCH), "--dataset", str(dataset), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_json_line_has_the_contract_keys_and_finds_a_verbatim_question(tmp_path: Path) -> None:
    dataset = tmp_path / "tiny.json"
    dataset.write_text(json.dumps(DATASET), encoding="utf-8")
    done = _run(dataset, "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert CONTRACT_KEYS <= out.keys()
    assert out["k"] == 10 and out["questions"] == 3 and out["database"] == "sqlite"
    assert 0.0 <= out["recall"] <= 1.0
    assert set(out["by_category"]) == {"single-hop", "multi-hop", "temporal"}
    assert all(0.0 <= v <= 1.0 for v in out["by_category"].values())
    assert out["by_category"]["single-hop"] == 1.0  # the question repeats its evidence's words
    assert out["ingest_turns_per_s"] > 0
    assert 0 < out["recall_ms_p50"] <= out["recall_ms_p95"]
    assert set(out["at_k"]) == {"5", "10", "20"}
    assert 0.0 <= out["baseline"]["at_k"]["10"]["recall"] <= 1.0
    assert out["baseline"]["at_k"]["10"]["by_category"]["single-hop"] == 1.0


def test_unknown_evidence_is_refused(tmp_path: Path) -> None:
    broken = json.loads(json.dumps(DATASET))
    broken["conversations"][1]["questions"][0]["evidence"] = ["D9:9"]
    dataset = tmp_path / "broken.json"
    dataset.write_text(json.dumps(broken), encoding="utf-8")
    done = _run(dataset)
    assert done.returncode != 0
    assert "D9:9" in done.stderr


def test_the_same_run_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    dataset = tmp_path / "tiny.json"
    dataset.write_text(json.dumps(DATASET), encoding="utf-8")
    done = _run(dataset, "--json", "--database-url", postgres_url)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert CONTRACT_KEYS <= out.keys()
    assert out["database"] == "postgresql" and out["questions"] == 3
    assert out["by_category"]["single-hop"] == 1.0  # the question repeats its evidence's words
    assert out["baseline"]["name"].startswith("postgresql ts_rank")
    assert out["baseline"]["at_k"]["10"]["by_category"]["single-hop"] == 1.0
    # The database now holds the dataset's turns: a second run would mix them, and is refused.
    again = _run(dataset, "--database-url", postgres_url)
    assert again.returncode != 0 and "already holds episodes" in again.stderr
