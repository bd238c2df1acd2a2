from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from sqlalchemy import text

from memory import NewMessage, Store, UsageRecord, open_store

pytestmark = pytest.mark.anyio


@pytest.mark.sqlite_only
async def test_connections_use_wal_foreign_keys_and_busy_timeout(store: Store) -> None:
    async with store.db.connection() as conn:
        assert (await conn.scalar(text("PRAGMA journal_mode"))) == "wal"
        assert (await conn.scalar(text("PRAGMA foreign_keys"))) == 1
        assert (await conn.scalar(text("PRAGMA busy_timeout"))) == 5000


async def test_chat_keeps_old_sessions_when_a_new_one_opens(store: Store) -> None:
    first = await store.conversations.current("tg:42", telegram_chat_id=42)
    again = await store.conversations.current("tg:42")
    assert again == first
    await store.conversations.append(first.session_id, NewMessage("user", "hello", tokens=2))
    fresh = await store.conversations.new_session("tg:42")
    assert fresh.session_id != first.session_id and fresh.chat_id == first.chat_id
    assert (await store.conversations.current("tg:42")).session_id == fresh.session_id
    assert [m.content for m in await store.conversations.messages(first.session_id)] == ["hello"]
    assert await store.conversations.messages(fresh.session_id) == []


async def test_window_fits_budget_and_starts_at_a_user_message(store: Store) -> None:
    ref = await store.conversations.current("cli:w")
    call = [{"id": "c1", "type": "function", "function": {"name": "t", "arguments": "{}"}}]
    await store.conversations.append(
        ref.session_id,
        NewMessage("user", "old question", tokens=50),
        NewMessage("assistant", "old answer", tokens=50),
        NewMessage("user", "use a tool", tokens=10),
        NewMessage("assistant", None, tokens=10, tool_calls=call),
        NewMessage("tool", "result", tokens=10, tool_call_id="c1", tool_name="t"),
        NewMessage("assistant", "done", tokens=10),
        NewMessage("user", "newest", tokens=10),
    )
    window = await store.conversations.window(ref.session_id, token_budget=55)
    assert [m.content for m in window] == ["use a tool", None, "result", "done", "newest"]
    # A budget that cuts between a tool call and its result must not start on the result.
    window = await store.conversations.window(ref.session_id, token_budget=25)
    assert [m.role for m in window] == ["user"]
    llm = [m.to_llm() for m in await store.conversations.window(ref.session_id, token_budget=10_000)]
    assert llm[4] == {"role": "tool", "content": "result", "tool_call_id": "c1", "name": "t"}


@pytest.mark.sqlite_only
async def test_window_costs_the_same_however_long_the_session(store: Store) -> None:
    """Counted in SQLite VM steps (deterministic, unlike time): a session ten times longer must
    not make the window's query ten times the work."""
    ref = await store.conversations.current("tg:7")

    async def add(n: int) -> None:
        await store.conversations.append(
            ref.session_id, *[NewMessage("user", f"message {i}", tokens=5) for i in range(n)]
        )

    async def steps() -> int:
        counted = [0]

        def tick() -> int:
            counted[0] += 1
            return 0  # 0: go on

        async with store.db.connection() as conn:
            (await conn.driver_connection()).set_progress_handler(tick, 10)
        try:
            window = await store.conversations.window(ref.session_id, 1_000, max_messages=100)
        finally:
            async with store.db.connection() as conn:
                (await conn.driver_connection()).set_progress_handler(None, 10)
        assert len(window) == 100
        return counted[0]

    await add(300)
    short = await steps()
    await add(3_000)
    assert await steps() < 1.5 * short


async def test_window_always_keeps_the_newest_message(store: Store) -> None:
    ref = await store.conversations.current("cli:big")
    await store.conversations.append(ref.session_id, NewMessage("user", "x" * 1000, tokens=5000))
    assert len(await store.conversations.window(ref.session_id, token_budget=100)) == 1


async def test_message_from_an_update_is_stored_once(store: Store) -> None:
    ref = await store.conversations.current("tg:7")
    question = NewMessage("user", "hi", tokens=1, telegram_update_id=900)
    asked = await store.conversations.add_question(ref.session_id, question, window_tokens=100)
    assert asked.earlier is None
    assert [m.content for m in asked.window] == ["hi"]  # read after the insert, same transaction
    replayed = await store.conversations.add_question(ref.session_id, question)  # replayed update
    found = replayed.earlier
    assert found is not None and found.content == "hi" and replayed.window == []
    assert [m.id for m in await store.conversations.messages(ref.session_id)] == [found.id]
    mid = found.id
    [reply] = await store.conversations.append(ref.session_id, NewMessage("assistant", "hello"))
    assert [m.id for m in await store.conversations.after(ref.session_id, mid)] == [reply]


async def test_update_ledger_answers_each_update_once(store: Store) -> None:
    ledger = store.updates
    assert await ledger.record(1, chat_id=5, user_id=5, payload={"update_id": 1})
    assert not await ledger.record(1, chat_id=5, user_id=5, payload={"update_id": 1})
    assert await ledger.claim(1, "boot-a")
    assert not await ledger.claim(1, "boot-a")  # re-delivered to the same process: skip
    assert not await ledger.claim(1, "boot-b")  # boot-a holds it: its lease runs
    # boot-a died; a new process sees the update as pending and may claim it once.
    await ledger.release_gone(lambda claimant: claimant == "boot-a")
    pending = await ledger.pending("boot-b")
    assert [(p.update_id, p.payload) for p in pending] == [(1, {"update_id": 1})]
    assert await ledger.claim(1, "boot-b")
    ref = await store.conversations.current("tg:5")
    [answer] = await store.conversations.append(ref.session_id, NewMessage("assistant", "hi"))
    await ledger.finish(1, "answered", sent=(answer, [501, 502]))
    assert await ledger.status(1) == "answered"
    assert not await ledger.claim(1, "boot-c")
    assert await ledger.pending("boot-c") == []
    async with store.db.connection() as conn:
        sent = await conn.scalar(text("SELECT sent_message_ids FROM messages WHERE id = :i"), {"i": answer})
    assert (json.loads(sent) if isinstance(sent, str) else sent) == [501, 502]  # JSON: text on SQLite


async def test_access_decisions_persist(store: Store) -> None:
    assert await store.users.access_of(77) is None
    await store.users.set_access(77, "allowed", by=1)
    await store.users.set_access(78, "denied", by=1)
    assert await store.users.access_of(77) == "allowed"
    assert await store.users.access_of(78) == "denied"
    user = await store.users.touch(77, display_name="Ana", username="ana", is_admin=False)
    assert user.access == "allowed" and user.display_name == "Ana" and user.access_by == 1
    assert await store.users.count() == 2
    assert {u.id for u in await store.users.list()} == {77, 78}


async def test_usage_totals_per_user(store: Store) -> None:
    await store.usage.record(UsageRecord("m", 10, 5, cost=0.01, latency_ms=3, user_id=1))
    await store.usage.record(UsageRecord("m", 1, 2, cost=0.02, user_id=1))
    await store.usage.record(UsageRecord("m", 100, 100, user_id=2))
    totals = await store.usage.totals(1)
    assert (totals.calls, totals.prompt_tokens, totals.completion_tokens) == (2, 11, 7)
    assert totals.cost == pytest.approx(0.03)
    assert (await store.usage.totals()).calls == 3


async def test_key_values_round_trip(store: Store) -> None:
    assert await store.kv.get("llm_model") is None
    await store.kv.set("llm_model", "openai/gpt-4o-mini")
    await store.kv.set("llm_model", "ollama/llama3.1")
    assert await store.kv.get("llm_model") == "ollama/llama3.1"
    await store.kv.delete("llm_model")
    assert await store.kv.get("llm_model", "x") == "x"


async def test_stats_count_rows(store: Store) -> None:
    ref = await store.conversations.current("cli:s")
    await store.conversations.append(ref.session_id, NewMessage("user", "a"), NewMessage("assistant", "b"))
    stats = await store.conversations.stats()
    assert stats == {"chats": 1, "sessions": 1, "messages": 2, "messages_today": 2}
    assert (await store.database_bytes() or 0) > 0


async def test_chat_owner_is_recorded_only_for_a_stored_user(store: Store) -> None:
    await store.users.touch(41, display_name="Ana", username=None, is_admin=False)
    known = await store.conversations.current("tg:41", telegram_chat_id=41, owner_id=41)
    unknown = await store.conversations.current("tg:42", telegram_chat_id=42, owner_id=42)  # no FK error
    async with store.db.connection() as conn:
        owners: dict[int, int | None] = dict(
            (await conn.execute(text("SELECT id, owner_id FROM chats"))).all()
        )
    assert owners == {known.chat_id: 41, unknown.chat_id: None}
    again = await store.conversations.current("tg:41")
    assert again == known


@pytest.mark.sqlite_only
async def test_statements_run_on_the_event_loop_thread(store: Store) -> None:
    """No hand-off to a driver thread per call (memory/db.py says why)."""
    seen: list[int] = []

    def where_am_i() -> int:
        seen.append(threading.get_ident())
        return 1

    async with store.db.connection() as conn:
        sqlite_conn = await conn.driver_connection()
        sqlite_conn.create_function("where_am_i", 0, where_am_i)
        assert await conn.scalar(text("SELECT where_am_i()")) == 1
    assert seen == [threading.get_ident()]


@pytest.mark.sqlite_only
async def test_transactions_take_turns_on_the_one_connection(store: Store) -> None:
    """Concurrent writers never interleave on SQLite's single connection (memory/db.py)."""
    order: list[str] = []

    async def write(name: str, pause: float) -> None:
        async with store.db.transaction() as conn:
            order.append(f"{name} in")
            await conn.execute(text("INSERT INTO kv (key, value) VALUES (:k, '1')"), {"k": name})
            await asyncio.sleep(pause)  # another task runs meanwhile, but not on this connection
            order.append(f"{name} out")

    await asyncio.gather(write("a", 0.05), write("b", 0), write("c", 0))
    assert order == ["a in", "a out", "b in", "b out", "c in", "c out"]
    assert await store.kv.get("a") == 1


async def test_a_failed_transaction_rolls_back_and_the_next_one_runs(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.db.transaction() as conn:
            await conn.execute(text("INSERT INTO kv (key, value) VALUES ('gone', '1')"))
            raise RuntimeError("boom")
    assert await store.kv.get("gone") is None
    await store.kv.set("kept", 2)
    assert await store.kv.get("kept") == 2


async def test_a_read_never_leaves_a_transaction_open(store: Store) -> None:
    async with store.db.connection() as conn:
        await conn.scalar(text("SELECT count(*) FROM messages"))  # autobegins
    async with store.db.connection() as conn:
        assert not conn.in_transaction()


async def test_window_starts_at_the_latest_summary_and_counts_it_in_the_budget(store: Store) -> None:
    ref = await store.conversations.current("cli:s")
    ids = await store.conversations.append(
        ref.session_id,
        NewMessage("user", "one", tokens=10),
        NewMessage("assistant", "a one", tokens=10),
        NewMessage("user", "two", tokens=10),
        NewMessage("assistant", "a two", tokens=10),
    )
    await store.conversations.add_summary(ref.session_id, "first summary", through=ids[1])
    later = await store.conversations.append(ref.session_id, NewMessage("user", "three", tokens=10))
    await store.conversations.add_summary(ref.session_id, "both summarised", through=ids[3])
    await store.conversations.append(ref.session_id, NewMessage("assistant", "a three", tokens=10))

    window = await store.conversations.window(ref.session_id, token_budget=1_000)
    assert [(m.role, m.content) for m in window] == [
        ("system", "both summarised"),
        ("user", "three"),
        ("assistant", "a three"),
    ]
    summary, rest = await store.conversations.unsummarised(ref.session_id)
    assert summary is not None and summary.content == "both summarised"
    assert [m.id for m in rest] == [later[0], later[0] + 2]
    # The summary takes room: what is left holds only the newest message (always kept).
    tight = await store.conversations.window(ref.session_id, token_budget=window[0].tokens + 5)
    assert [m.content for m in tight] == ["both summarised", "a three"]


async def test_messages_are_counted_when_stored_when_no_count_is_given(store: Store) -> None:
    ref = await store.conversations.current("cli:t")
    await store.conversations.append(
        ref.session_id, NewMessage("user", "x" * 400), NewMessage("user", "ж" * 400)
    )
    ascii_row, cyrillic = await store.conversations.messages(ref.session_id)
    assert 100 <= ascii_row.tokens <= 110
    assert cyrillic.tokens >= 2 * ascii_row.tokens - 10  # two bytes a letter: more tokens


async def test_window_kept_in_memory_matches_the_database_read_turn_after_turn(store: Store) -> None:
    """Questions, tool rounds, answers and summaries, with budgets that vary: the window a
    question reads (from the session's tail in memory) is the one the database gives."""
    ref = await store.conversations.current("tg:11")
    sid = ref.session_id
    call = [{"id": "c", "type": "function", "function": {"name": "t", "arguments": "{}"}}]
    budgets = [60, 400, 90, 1_000, 45, 2_000]
    for i in range(60):
        budget = budgets[i % len(budgets)]
        asked = await store.conversations.add_question(
            sid,
            NewMessage("user", f"question {i} " * (1 + i % 4), telegram_update_id=i),
            window_tokens=budget,
        )
        assert asked.window == await store.conversations.window(sid, budget)
        if i % 5 == 0:
            await store.conversations.append(
                sid,
                NewMessage("assistant", None, tool_calls=call),
                NewMessage("tool", "result " * 30, tool_call_id="c", tool_name="t"),
            )
        answer = await store.conversations.add_answer(sid, NewMessage("assistant", f"answer {i}"))
        if i % 17 == 16:
            await store.conversations.add_summary(sid, f"summary up to {i}", through=answer - 6)
    summary, _ = await store.conversations.unsummarised(sid)
    assert summary is not None and summary.content == "summary up to 50"


async def test_window_in_memory_sees_what_another_process_wrote_or_deleted(db_url: str, store: Store) -> None:
    ref = await store.conversations.current("tg:12", telegram_chat_id=12, owner_id=None)
    sid = ref.session_id
    await store.conversations.add_question(sid, NewMessage("user", "first"), window_tokens=500)
    await store.conversations.add_answer(sid, NewMessage("assistant", "ok"))
    async with open_store(db_url) as other:  # another process on the same database
        await other.conversations.append(sid, NewMessage("assistant", "written elsewhere"))
    asked = await store.conversations.add_question(sid, NewMessage("user", "second"), window_tokens=500)
    assert [m.content for m in asked.window] == ["first", "ok", "written elsewhere", "second"]

    await store.episodes.forget_all("user:12")  # deletes the chat's messages behind the cache
    asked = await store.conversations.add_question(sid, NewMessage("user", "third"), window_tokens=500)
    assert [m.content for m in asked.window] == ["third"]


async def test_a_replayed_question_reads_the_window_it_was_stored_with(store: Store) -> None:
    ref = await store.conversations.current("tg:13")
    question = NewMessage("user", "hi", telegram_update_id=77)
    first = await store.conversations.add_question(ref.session_id, question, window_tokens=500)
    replay = await store.conversations.add_question(ref.session_id, question, window_tokens=500)
    assert replay.earlier is not None and replay.window == first.window


@pytest.mark.sqlite_only
async def test_a_question_reads_its_window_from_memory_not_the_database(store: Store) -> None:
    """Counted in SQLite VM steps: with the session's tail in memory, storing a question and
    reading a 300-message window costs a small part of reading that window from the database."""
    ref = await store.conversations.current("tg:14")
    for i in range(150):
        await store.conversations.add_question(
            ref.session_id, NewMessage("user", f"q{i}"), window_tokens=9_000
        )
        await store.conversations.add_answer(ref.session_id, NewMessage("assistant", f"a{i}"))

    async def steps(work: Any) -> tuple[int, Any]:
        counted = [0]

        def tick() -> int:
            counted[0] += 1
            return 0

        async with store.db.connection() as conn:
            (await conn.driver_connection()).set_progress_handler(tick, 10)
        try:
            result = await work
        finally:
            async with store.db.connection() as conn:
                (await conn.driver_connection()).set_progress_handler(None, 10)
        return counted[0], result

    read, window = await steps(store.conversations.window(ref.session_id, 9_000))
    asked, result = await steps(
        store.conversations.add_question(ref.session_id, NewMessage("user", "q"), window_tokens=9_000)
    )
    assert len(window) == 300 and len(result.window) == 301
    assert asked * 3 < read
