"""Two `omni bot` webhook workers on one PostgreSQL database, updates sprayed across both.

Each update is answered once, by one worker; a chat's answers come in the order of its
messages even when consecutive ones land on different workers; a worker killed with -9
leaves its updates to the other, which answers them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.bot.conftest import BotProcess, Fakes
from tests.bot.test_webhook import Hook, _wait

CHATS = [3001, 3002, 3003, 3004]
LEASE = "5"


@pytest.fixture
def workers(
    postgres_url: str, start_bot: Callable[..., BotProcess], fakes_in_thread: Fakes, tmp_path: Path
) -> Iterator[tuple[Hook, Hook]]:
    # postgres_url first: torn down last, once start_bot has stopped the workers using it.
    one, two = Hook(start_bot, fakes_in_thread.tg, tmp_path), Hook(start_bot, fakes_in_thread.tg, tmp_path)
    for hook in (one, two):
        hook.env |= {"OMNI_DATABASE_URL": postgres_url, "OMNI_ALLOWED_IDS": "*", "OMNI_UPDATE_LEASE_S": LEASE}
    yield one, two
    one.client.close()
    two.client.close()


def _spray(hooks: tuple[Hook, Hook], first_id: int, rounds: int, label: str) -> list[int]:
    """Round after round, one message per chat, each update to the other worker than the last;
    every post waits for its acknowledgement, as Telegram does. The update ids, in order."""
    ids = []
    update_id = first_id
    for i in range(rounds):
        for chat in CHATS:
            hook = hooks[update_id % 2]
            reply = hook.text(update_id, chat, f"{label} {chat} #{i}")
            assert reply.status_code == 200, reply.text
            ids.append(update_id)
            update_id += 1
    return ids


def _questions(fakes: Fakes) -> list[str]:
    """The user message each request to the fake LLM answered."""
    last = [[m for m in body["messages"] if m["role"] == "user"][-1] for body in list(fakes.llm.requests)]
    return [str(m["content"]) for m in last]


def _answers(fakes: Fakes, chat: int, label: str) -> list[str]:
    return [t for t in fakes.tg.texts(chat) if t.startswith(f"echo: {label} ")]


def test_two_workers_answer_each_update_once_and_each_chat_in_order(
    workers: tuple[Hook, Hook], fakes_in_thread: Fakes
) -> None:
    one, two = workers
    fakes_in_thread.llm.default_delay = 0.2  # replies overlap across chats and workers
    one.start()
    two.start()
    assert two.secret == one.secret  # one secret for the bot, shared through the database
    rounds = 5
    _spray((one, two), 9000, rounds, "m")
    for chat in CHATS:
        _wait(lambda chat=chat: len(_answers(fakes_in_thread, chat, "m")) >= rounds, 60)
    time.sleep(0.5)  # nothing more may come
    for chat in CHATS:
        assert _answers(fakes_in_thread, chat, "m") == [f"echo: m {chat} #{i}" for i in range(rounds)]
    asked = Counter(q for q in _questions(fakes_in_thread) if q.startswith("m "))
    assert set(asked.values()) == {1} and len(asked) == rounds * len(CHATS)  # each asked once


def test_a_killed_workers_updates_are_answered_by_the_other(
    workers: tuple[Hook, Hook], fakes_in_thread: Fakes
) -> None:
    one, two = workers
    fakes_in_thread.llm.default_delay = 1.0
    victim = one.start()
    two.start()
    rounds = 3
    _spray((one, two), 9100, rounds, "k")
    time.sleep(0.3)  # both are working: the victim's replies are at the LLM
    victim.kill()
    started = time.monotonic()
    for chat in CHATS:
        _wait(lambda chat=chat: len(_answers(fakes_in_thread, chat, "k")) >= rounds, 60)
    took = time.monotonic() - started
    time.sleep(1.0)
    for chat in CHATS:
        assert _answers(fakes_in_thread, chat, "k") == [f"echo: k {chat} #{i}" for i in range(rounds)]
    # Taken over within a lease and a renewal round, not lost and not answered twice.
    assert took < 2 * float(LEASE) + 10
    with pytest.raises(httpx.TransportError):
        one.text(9999, CHATS[0], "the victim is gone")
