"""Faults under load: what users of `omni bot` see when its parts fail, and whether it recovers.

Each scenario runs the real `omni bot` (long polling, SQLite in a temp folder) as a subprocess
against the in-repo fake Bot API and fake LLM served from this process, sends users' messages,
injects one kind of fault, and checks that every message got exactly one reply (its answer or
one plain sentence saying what went wrong: never a traceback, never silence, never two):

- ``llm_down``: the LLM answers 503 for 30 s during a steady load (``--quick``: 5 s);
- ``llm_refused``: the same, the LLM's server gone (connections refused);
- ``telegram``: a burst of 429s (retry_after 1-2 s) on sendMessage, and getUpdates answering
  502 for 10 s (``--quick``: 3 s);
- ``mcp_kill``: the skills server the bot started (`omni mcp` over stdio) killed with SIGKILL,
  then a tool call at once (three kills in a row at full size);
- ``disk_full``: the data folder on a small tmpfs (or loop-mounted ext4) filled up with a
  ballast file before users write, then again while answers are in flight; then the ballast
  deleted. Users must be told the storage is full, and the database must pass
  ``PRAGMA integrity_check`` afterwards. Skipped, saying why, where nothing can be mounted;
- ``kill9``: the bot killed with SIGKILL during a load with replies in flight, restarted at
  once (twice at full size): every message answered exactly once; the LLM asked each question
  at most once per kill it lived through.

    python bench/faults.py [--scenario NAME|all] [--quick] [--json]

Printed: per scenario a few lines, then a table (messages sent, answered, errors shown to users,
duplicates, lost, replies that are neither, recovery time: from the fault's end to the first
answer after it; for ``mcp_kill`` from the kill until a tool works again, for ``kill9`` from the
restart). ERROR lines in the bot's log count as problems too: an error reply names no message,
so a message told twice and one never answered would otherwise look like two told once. With
``--json`` the last line is one JSON object: ``{"ok": bool, "scenarios": [...]}``. Exit code 0
when every check passed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack, closing
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.llm import RetryPolicy  # noqa: E402
from bench._fault_rig import USERS, Asked, CannotMount, Rig, fill, small_disk  # noqa: E402
from memory.errors import StoreFull  # noqa: E402
from tests.fakes.llm_api import ScriptedReply  # noqa: E402

SETTLE_S = 90.0  # the longest a scenario waits for its last replies
DEAD_TASK = "Task exception was never retrieved"
DEAD_TASK_PROBLEM = (
    "a task died of an exception nobody handled (a chat's worker: its queued messages are dropped)"
)


@dataclass
class Figures:
    scenario: str
    size: str
    sent: int = 0
    answered: int = 0
    errors: int = 0  # plain error sentences shown to users (one per message)
    duplicates: int = 0
    lost: int = 0
    unexpected: int = 0
    recovery_s: float | None = None
    wall_s: float = 0.0
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _count(rig: Rig, figures: Figures, started: float) -> Figures:
    """The tally of every message into ``figures``, and the problems every scenario shares."""
    tally = rig.tally()
    figures.sent, figures.answered, figures.errors = tally.sent, tally.answered, tally.errors
    figures.duplicates, figures.lost, figures.unexpected = tally.duplicates, tally.lost, tally.unexpected
    figures.wall_s = round(time.perf_counter() - started, 1)
    if tally.lost:
        figures.problems.append(f"{tally.lost} messages got no reply at all")
    if tally.duplicates:
        figures.problems.append(f"{tally.duplicates} replies more than one per message")
    for text in tally.unexpected_texts[:5]:
        figures.problems.append(f"a reply is neither an answer nor a plain error: {text!r}")
    # An error reply names no message, so a message answered twice with an error and one never
    # answered look like two answered ones: the bot's own log tells them apart.
    errors = rig.error_lines()
    figures.notes.append(f"ERROR lines in the bot's log: {len(errors)}")
    for line in errors[:3]:
        if DEAD_TASK in line:  # asyncio says so when the task is collected, at the latest at exit
            figures.problems.append(f"{DEAD_TASK_PROBLEM}: {line[:200]}")
        else:
            figures.problems.append(f"the bot logged an error: {line[:300]}")
    return figures


# -- the LLM down ------------------------------------------------------------------------------


def _retry_bound(policy: RetryPolicy) -> float:
    """The longest the LLM client backs off before it gives up (agent/llm.py's promise)."""
    waits = sum(
        min(policy.max_wait, policy.initial_wait * 2**i) + policy.jitter for i in range(policy.attempts - 1)
    )
    return min(waits, policy.deadline)


def _llm_outage(workdir: Path, quick: bool, *, refuse: bool) -> Figures:
    users = USERS[:3] if quick else USERS[:4]
    rate, before, outage, after = (2.0, 1.0, 5.0, 2.0) if quick else (2.0, 5.0, 30.0, 15.0)
    how = "refusing connections" if refuse else "answering 503"
    name = "llm_refused" if refuse else "llm_down"
    figures = Figures(name, f"{len(users)} users, {rate:g} msg/s, LLM {how} for {outage:g} s")
    policy = RetryPolicy()
    with Rig(workdir) as rig:
        rig.start()
        rig.warm_up(users)
        started = time.perf_counter()
        marks: dict[str, float] = {}

        def down() -> None:
            marks["down"] = time.perf_counter()
            rig.llm_stop() if refuse else rig.llm.outage(outage)

        def up() -> None:
            if refuse:
                rig.llm_start()
            marks["up"] = time.perf_counter()

        rig.load(before + outage + after, rate, users, [(before, down), (before + outage, up)])
        rig.settle(SETTLE_S)
        _count(rig, figures, started)
        replies, asks = rig.replies(), rig.llm_asks()
        figures.recovery_s = rig.first_answer_after(marks["up"])
        during = [a for a in rig.asked if marks["down"] <= a.at < marks["up"]]
        late = [a for a in during if replies[a.update_id] and replies[a.update_id][0].kind == "answer"]
        after_up = [a for a in rig.asked if a.at >= marks["up"]]
        not_answered = [
            a for a in after_up if not replies[a.update_id] or replies[a.update_id][0].kind != "answer"
        ]
        # How long each error took from the moment its chat got to the message (chats go in order).
        waits: list[float] = []
        previous: dict[int, float] = {}
        for a in rig.asked:
            first = replies[a.update_id][0] if replies[a.update_id] else None
            if first is not None and first.kind == "error":
                waits.append(first.at - max(a.at, previous.get(a.chat_id, 0.0)))
            if first is not None:
                previous[a.chat_id] = first.at
        bound = _retry_bound(policy)
        figures.notes += [
            f"{len(during)} messages sent while the LLM was down: {figures.errors} plain errors shown, "
            f"{len(late)} answered once it was back (queued behind, or retried past its end)",
            f"longest wait for an error: {max(waits, default=0):.1f} s (policy: {policy.attempts} attempts, "
            f"at most {bound:.1f} s of backoff)",
            f"LLM requests per message: {dict(sorted(Counter(asks.values()).items()))}",
        ]
        if not_answered:
            figures.problems.append(
                f"{len(not_answered)} messages sent after the LLM came back were not answered"
            )
        if waits and max(waits) > bound + 3.0:
            figures.problems.append(
                f"an error took {max(waits):.1f} s, beyond the retry policy's {bound:.1f} s"
            )
        if max(asks.values(), default=0) > policy.attempts:
            figures.problems.append(f"a message was sent to the LLM {max(asks.values())} times")
        if not quick and not figures.errors:
            figures.problems.append("a 30 s outage showed no error: the users waited in silence")
    return figures


def llm_down(workdir: Path, quick: bool) -> Figures:
    return _llm_outage(workdir, quick, refuse=False)


def llm_refused(workdir: Path, quick: bool) -> Figures:
    return _llm_outage(workdir, quick, refuse=True)


# -- Telegram failing ------------------------------------------------------------------------------


def telegram(workdir: Path, quick: bool) -> Figures:
    users = USERS[:3] if quick else USERS[:5]
    # Quick: 4 429s, fewer than a send's 5 attempts, so no answer can be given up on whatever
    # sends they fall on. Full: a burst many sends share, or a few sends meet one after another.
    rate, before, after, burst, gu_down = (2.0, 1.0, 2.0, 2, 3.0) if quick else (2.0, 5.0, 15.0, 20, 10.0)
    figures = Figures(
        "telegram",
        f"{len(users)} users, {rate:g} msg/s, {2 * burst} sendMessage 429s (retry_after 1-2 s), "
        f"getUpdates 502 for {gu_down:g} s",
    )
    with Rig(workdir) as rig:
        rig.start()
        rig.warm_up(users)
        tg = rig.tg
        started = time.perf_counter()
        marks: dict[str, float] = {}

        def storm() -> None:
            tg.fail_next("sendMessage", 429, retry_after=1, count=burst)
            tg.fail_next("sendMessage", 429, retry_after=2, count=burst)

        def polling_down() -> None:
            marks["down"] = time.perf_counter()
            marks["up"] = marks["down"] + gu_down
            tg.fail_for("getUpdates", gu_down, 502)

        rig.load(before + gu_down + after, rate, users, [(before, storm), (before + 1.0, polling_down)])
        rig.settle(SETTLE_S)
        _count(rig, figures, started)
        calls = [m for m, _ in list(tg.calls)]
        refused_sends = calls.count("sendMessage") - sum(
            1 for s in list(tg.sent) if s.method == "sendMessage"
        )
        refused_polls = calls.count("getUpdates") - len(tg.get_updates_times)
        polled_again = [t for t in tg.get_updates_times if t >= marks["up"]]
        figures.recovery_s = rig.first_answer_after(marks["up"])
        figures.notes += [
            f"sendMessage answered 429 {refused_sends} times, getUpdates answered 502 {refused_polls} times",
            "first getUpdates served after the outage: "
            + (f"{min(polled_again) - marks['up']:.1f} s after its end" if polled_again else "never"),
        ]
        if refused_sends < 2 * burst:
            figures.problems.append(f"only {refused_sends} of the {2 * burst} 429s were served")
        if figures.errors:
            figures.problems.append(f"{figures.errors} users were shown an error for Telegram's own hiccup")
        if not polled_again:
            figures.problems.append("polling did not recover after getUpdates came back")
    return figures


# -- the skills server killed ------------------------------------------------------------------


def _tool_turn(rig: Rig, user: int) -> tuple[str, float]:
    """A message whose answer needs a tool call (skills__current_time): what the tool returned
    to the model, and when the user had the answer."""
    rig.llm.enqueue(
        ScriptedReply(tool_calls=[{"name": "skills__current_time", "arguments": {"timezone": "UTC"}}])
    )
    asked = rig.ask(user, f"what time is it? ({len(rig.asked) + 1})")
    rig.settle(60.0, quiet=0)
    answered = rig.replies()[asked.update_id]
    results = [
        m.get("content") or ""
        for body in list(rig.llm.requests)
        for m in body.get("messages", [])
        if m.get("role") == "tool" and any(u.get("content") == asked.text for u in body["messages"])
    ]
    return (str(results[-1]) if results else "(no tool result reached the model)"), (
        answered[0].at if answered else time.perf_counter()
    )


def _skills_child(rig: Rig, other_than: int | None = None, within: float = 30.0) -> int | None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = [c for c in rig.children() if c != other_than]
        if found:
            return found[0]
        time.sleep(0.05)
    return None


def mcp_kill(workdir: Path, quick: bool) -> Figures:
    users = USERS[:2]
    kills = 1 if quick else 3
    figures = Figures("mcp_kill", f"skills server killed {kills}x, a tool call right after each")
    with Rig(workdir, skills=True) as rig:
        rig.start()
        rig.warm_up(users)
        started = time.perf_counter()
        outcome, _ = _tool_turn(rig, users[0])  # the server is up and a tool works
        if outcome.startswith("Error"):
            figures.problems.append(f"a tool call failed before any fault: {outcome[:160]}")
        recoveries: list[float] = []
        first_outcomes: list[str] = []  # what the tool call right after each kill got
        for n in range(kills):
            child = _skills_child(rig)
            if child is None:
                figures.problems.append("the bot has no skills server child to kill")
                break
            killed_at = time.perf_counter()
            os.kill(child, signal.SIGKILL)
            outcome, at = _tool_turn(rig, users[n % 2])
            first_outcomes.append(outcome)
            figures.notes.append(f"kill {n + 1}: the next tool call got: {outcome[:150]!r}")
            tries = 1
            while outcome.startswith("Error") and tries < 30:
                time.sleep(0.5)
                outcome, at = _tool_turn(rig, users[n % 2])
                tries += 1
            if outcome.startswith("Error"):
                figures.problems.append(
                    f"kill {n + 1}: tools still failing after {tries} calls: {outcome[:160]}"
                )
            else:
                recoveries.append(at - killed_at)
                figures.notes.append(
                    f"kill {n + 1}: tools work again after {at - killed_at:.1f} s ({tries} calls)"
                )
            restarted = _skills_child(rig, other_than=child, within=15.0)
            if restarted is None:
                figures.problems.append(f"kill {n + 1}: no new skills server was started")
        for user in users:  # plain messages still answered
            rig.ask(user)
            rig.ask(user)
        rig.settle(SETTLE_S)
        _count(rig, figures, started)
        figures.recovery_s = round(max(recoveries), 2) if recoveries else None
        if any(o.startswith("Error") and "'skills'" not in o for o in first_outcomes):
            figures.problems.append("a tool error does not name the server that failed")
        if not rig.alive():
            figures.problems.append("the bot died with its skills server")
    return figures


# -- the disk full -----------------------------------------------------------------------------------


def disk_full(workdir: Path, quick: bool) -> Figures:
    users = USERS[:3]
    per_phase = 6 if quick else 30
    figures = Figures(
        "disk_full",
        f"{len(users)} users: {per_phase} messages on a full disk, the disk filling with "
        f"{len(users)} answers in flight, {per_phase} messages after",
    )
    with ExitStack() as stack:
        try:
            kind = stack.enter_context(small_disk(workdir / "disk", 8))
        except CannotMount as exc:
            figures.skipped = str(exc)
            return figures
        figures.size += f" ({kind}, 8 MB)"
        return _disk_full(workdir, users, per_phase, figures)


def _first_kinds(rig: Rig, asked: list[Asked]) -> Counter[str]:
    """What the first reply to each of ``asked`` was: an answer, or which error sentence."""
    replies = rig.replies()
    return Counter(
        (r[0].text if r[0].kind == "error" else r[0].kind) if (r := replies[a.update_id]) else "nothing"
        for a in asked
    )


def _disk_full(workdir: Path, users: tuple[int, ...], per_phase: int, figures: Figures) -> Figures:
    data, ballast = workdir / "disk" / "data", workdir / "disk" / "ballast"
    with Rig(workdir, data_dir=data) as rig:
        rig.start()
        rig.warm_up(users)
        started = time.perf_counter()
        # 1. Full before the messages come: not even their arrival can be recorded.
        filled = fill(ballast)
        first = len(rig.asked)
        rig.load(per_phase / 2.0, 2.0, users)
        rig.settle(SETTLE_S)
        full = _first_kinds(rig, rig.asked[first:])
        ballast.unlink()
        # 2. The disk fills while answers are worked on: one in flight per user, one queued.
        rig.llm.default_delay = 1.0
        first, calls = len(rig.asked), len(rig.llm.requests)
        for user in users:
            rig.ask(user)
            rig.ask(user)
        deadline = time.monotonic() + 30.0
        while len(rig.llm.requests) < calls + len(users) and time.monotonic() < deadline:
            time.sleep(0.01)
        fill(ballast)
        rig.settle(SETTLE_S)
        rig.llm.default_delay = 0.0
        midway = _first_kinds(rig, rig.asked[first:])
        alive = rig.alive()
        ballast.unlink()
        # 3. Room again.
        freed_at, first = time.perf_counter(), len(rig.asked)
        rig.load(per_phase / 2.0, 2.0, users)
        rig.settle(SETTLE_S)
        _count(rig, figures, started)
        after = _first_kinds(rig, rig.asked[first:])
        figures.recovery_s = rig.first_answer_after(freed_at)
        code = rig.stop() if rig.alive() else None
        with closing(sqlite3.connect(data / "omni.db")) as db:
            integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
            ledger = dict(db.execute("SELECT status, count(*) FROM updates GROUP BY status").fetchall())
        figures.notes += [
            f"ballast {filled / 1e6:.1f} MB; replies while full: {dict(full)}",
            f"replies when the disk filled mid-answer: {dict(midway)}",
            f"after space returned: {dict(after)}",
            f"integrity_check: {integrity}; ledger: {ledger}; exit code on SIGTERM: {code}",
        ]
        if not alive:
            figures.problems.append(f"the bot died when the disk filled up:\n{rig.log()[-2000:]}")
        if integrity != "ok":
            figures.problems.append(f"the database is damaged: {integrity}")
        if set(full) != {StoreFull.user_message}:
            figures.problems.append(f"on a full disk users were not told it is full: {dict(full)}")
        if after["answer"] != sum(after.values()):
            figures.problems.append(f"messages after space returned were not all answered: {dict(after)}")
        if code not in (0, None):
            figures.problems.append(f"the bot exited {code} on SIGTERM")
    return figures


# -- kill -9 ----------------------------------------------------------------------------------------


def kill9(workdir: Path, quick: bool) -> Figures:
    users = USERS[:3] if quick else USERS[:5]
    rate, seconds, delay, kills = (3.0, 4.0, 1.5, (2.5,)) if quick else (4.0, 20.0, 1.5, (6.0, 14.0))
    figures = Figures(
        "kill9",
        f"{len(users)} users, {rate:g} msg/s for {seconds:g} s, LLM {delay:g} s, SIGKILL x{len(kills)}",
    )
    with Rig(workdir) as rig:
        rig.start()
        rig.warm_up(users)
        rig.llm.default_delay = delay
        started = time.perf_counter()
        in_flight: list[int] = []
        restarts: list[float] = []
        polling: list[float] = []  # each restart: process start -> first getUpdates, s
        threads: list[threading.Thread] = []

        def kill() -> None:
            replies = rig.replies()
            in_flight.append(sum(1 for a in rig.asked if not replies[a.update_id]))
            rig.kill()
            restarts.append(time.perf_counter())
            thread = threading.Thread(target=lambda: polling.append(rig.start()))  # the load goes on
            thread.start()
            threads.append(thread)

        rig.load(seconds, rate, users, [(at, kill) for at in kills])
        for thread in threads:
            thread.join()
        rig.settle(SETTLE_S, quiet=1.0 if quick else 3.0)
        _count(rig, figures, started)
        asks = rig.llm_asks()
        # Each restart until the next kill: a process killed before it answered anything has None.
        ends = [*restarts[1:], float("inf")]
        recoveries = [rig.first_answer_after(t, before=end) for t, end in zip(restarts, ends, strict=True)]
        figures.recovery_s = max((r for r in recoveries if r is not None), default=None)
        with closing(sqlite3.connect(rig.data_dir / "omni.db")) as db:
            ledger = dict(db.execute("SELECT status, count(*) FROM updates GROUP BY status").fetchall())
        figures.notes += [
            f"messages waiting for their reply at each kill: {in_flight}",
            "restart to polling: "
            + ", ".join(f"{s:.1f} s" for s in polling)
            + "; to the first answer (after litellm's import): "
            + ", ".join("none before the next kill" if r is None else f"{r:.1f} s" for r in recoveries),
            f"LLM requests per message: {dict(sorted(Counter(asks.values()).items()))}; ledger: {ledger}",
        ]
        if figures.errors:
            figures.problems.append(f"{figures.errors} users were shown an error after a restart")
        if recoveries[-1] is None:
            figures.problems.append("the bot answered nothing after its last restart")
        if not all(in_flight):
            figures.problems.append("a kill found no message in flight: the scenario tested nothing")
        if max(asks.values(), default=0) > 1 + len(kills):
            figures.problems.append(f"a question was put to the LLM {max(asks.values())} times")
    return figures


SCENARIOS: dict[str, Callable[[Path, bool], Figures]] = {
    "llm_down": llm_down,
    "llm_refused": llm_refused,
    "telegram": telegram,
    "mcp_kill": mcp_kill,
    "disk_full": disk_full,
    "kill9": kill9,
}


def run(name: str, quick: bool) -> Figures:
    """One scenario in a temp folder of its own."""
    with tempfile.TemporaryDirectory(prefix=f"omni-faults-{name}-") as tmp:
        return SCENARIOS[name](Path(tmp), quick)


def report(f: Figures) -> None:
    print(f"== {f.scenario}: {f.size}")
    if f.skipped:
        print(f"skipped: {f.skipped}")
        return
    print(
        f"sent {f.sent}, answered {f.answered}, errors shown {f.errors}, duplicates {f.duplicates}, "
        f"lost {f.lost}, unexpected {f.unexpected}; recovery {_seconds(f.recovery_s)}; wall {f.wall_s:.0f} s"
    )
    for note in f.notes:
        print(f"  {note}")
    for problem in f.problems:
        print(f"PROBLEM: {problem}")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def table(all_figures: list[Figures]) -> None:
    columns = (
        ("sent", 5),
        ("answered", 8),
        ("errors", 6),
        ("dup", 4),
        ("lost", 4),
        ("odd", 4),
        ("recovery", 9),
    )
    head = f"{'scenario':<12} " + " ".join(f"{name:>{width}}" for name, width in columns) + "  verdict"
    print(head)
    print("-" * len(head))
    for f in all_figures:
        verdict = "skipped" if f.skipped else ("ok" if not f.problems else f"{len(f.problems)} problems")
        print(
            f"{f.scenario:<12} {f.sent:>5} {f.answered:>8} {f.errors:>6} {f.duplicates:>4} {f.lost:>4} "
            f"{f.unexpected:>4} {_seconds(f.recovery_s):>9}  {verdict}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scenario", default="all", choices=[*SCENARIOS, "all"])
    parser.add_argument("--quick", action="store_true", help="reduced sizes (seconds each), for the tests")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    results = []
    for name in names:
        figures = run(name, args.quick)
        report(figures)
        results.append(figures)
    print()
    table(results)
    ok = not any(f.problems for f in results)
    if args.json:
        print(json.dumps({"ok": ok, "scenarios": [asdict(f) for f in results]}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
