"""Who may talk to the bot, and the commands (bot in-process against the fakes)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from omni.settings import Settings
from tests.bot.conftest import (
    ADMIN,
    FRIEND,
    STRANGER,
    bot_running,
    db_path,
    fakes_in_loop,
    in_process_bot,
    query,
    settings_for,
)

pytestmark = pytest.mark.anyio


async def test_stranger_is_refused_with_their_id_and_nothing_is_stored(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings) as (tg, llm, settings):
        tg.push_text(STRANGER, "my secret plan is X")
        sent = await tg.messages(1)
        assert str(STRANGER) in sent[0].text and f"/allow {STRANGER}" in sent[0].text
        tg.push_text(FRIEND, "hello")  # a later message is answered: the stranger's was fully handled
        await tg.messages(2)
    db = db_path(settings)
    assert query(db, "SELECT count(*) FROM updates WHERE user_id = ?", STRANGER) == [(0,)]
    assert query(db, "SELECT count(*) FROM messages WHERE content LIKE '%secret plan%'") == [(0,)]
    assert query(db, "SELECT count(*) FROM users WHERE id = ?", STRANGER) == [(0,)]
    assert all("secret plan" not in str(r) for r in llm.requests)


async def test_admin_allow_and_deny_persist_across_restarts(make_settings: Callable[..., Settings]) -> None:
    async with fakes_in_loop() as fakes:
        tg = fakes.tg
        settings = settings_for(make_settings, fakes)
        async with bot_running(settings):
            tg.push_text(ADMIN, f"/allow {STRANGER}")
            assert "may now talk to me" in (await tg.messages(1))[0].text
            tg.push_text(ADMIN, f"/deny {FRIEND}")  # FRIEND is allowed by OMNI_ALLOWED_IDS
            assert "can no longer" in (await tg.messages(2))[1].text
        async with bot_running(settings):
            tg.push_text(STRANGER, "hi, I'm in now")
            assert (await tg.messages(3, chat_id=None))[2].text == "echo: hi, I'm in now"
            tg.push_text(FRIEND, "and me?")
            refusal = (await tg.messages(4))[3]
            assert refusal.chat_id == FRIEND and str(FRIEND) in refusal.text
            tg.push_text(ADMIN, f"/deny {ADMIN}")
            assert "can't be denied" in (await tg.messages(5))[4].text


async def test_non_admin_gets_a_refusal_for_admin_commands(make_settings: Callable[..., Settings]) -> None:
    async with in_process_bot(make_settings) as (tg, llm, _):
        for i, command in enumerate(["/status", f"/allow {STRANGER}", "/users", "/model gpt-5", "/reload"]):
            tg.push_text(FRIEND, command)
            assert (await tg.messages(i + 1))[i].text == "Sorry, that command is for admins only."
        assert llm.requests == []


async def test_admin_commands_answer(make_settings: Callable[..., Settings]) -> None:
    async with in_process_bot(make_settings) as (tg, llm, _):
        tg.push_text(FRIEND, "hello")
        await tg.messages(1)
        tg.push_text(ADMIN, "/status")
        status = (await tg.messages(2))[1].text
        assert "uptime" in status and "openai/fake-model" in status and "database" in status
        tg.push_text(ADMIN, "/users")
        assert str(FRIEND) in (await tg.messages(3))[2].text
        tg.push_text(ADMIN, "/model openai/other-model")
        assert "openai/other-model" in (await tg.messages(4))[3].text
        tg.push_text(FRIEND, "which model?")
        await tg.messages(5)
        assert llm.requests[-1]["model"] == "other-model"
        tg.push_text(ADMIN, "/reload")
        assert "access list" in (await tg.messages(6))[5].text
        tg.push_text(ADMIN, "/allow nonsense")
        assert (await tg.messages(7))[6].text.startswith("Usage: /allow")


async def test_help_new_usage_and_unknown_commands(make_settings: Callable[..., Settings]) -> None:
    async with in_process_bot(make_settings) as (tg, llm, settings):
        tg.push_text(FRIEND, "/start")
        help_text = (await tg.messages(1))[0].text
        assert str(FRIEND) in help_text and "/new" in help_text and "/status" not in help_text
        tg.push_text(ADMIN, "/help")
        assert "/status" in (await tg.messages(2))[1].text
        tg.push_text(FRIEND, "remember the word pineapple")
        await tg.messages(3)
        tg.push_text(FRIEND, "/new")
        assert "fresh conversation" in (await tg.messages(4))[3].text
        tg.push_text(FRIEND, "what was the word?")
        await tg.messages(5)
        # The conversation is fresh (the word is not in the history after the system prompt),
        # while memory survives /new: the system prompt recalls it.
        system, *history = llm.requests[-1]["messages"]
        assert all("pineapple" not in str(m["content"]) for m in history)
        assert "pineapple" in str(system["content"])
        tg.push_text(FRIEND, "/usage")
        assert "tokens" in (await tg.messages(6))[5].text
        tg.push_text(FRIEND, "/frobnicate now")
        assert (await tg.messages(7))[6].text.startswith("I don't know the command /frobnicate")
        assert len(llm.requests) == 2  # commands never reached the LLM
    assert query(db_path(settings), "SELECT count(*) FROM sessions") == [(2,)]


async def test_command_menu_is_registered_for_users_and_admins(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings) as (tg, llm, _):
        tg.push_text(FRIEND, "hi")
        await tg.messages(1)
        default = [c["command"] for c in tg.commands['{"type": "default"}']]
        admin = [c["command"] for c in tg.commands[f'{{"chat_id": {ADMIN}, "type": "chat"}}']]
    assert {"start", "help", "new", "stop", "usage"} <= set(default) and "status" not in default
    assert {"status", "allow", "deny", "users", "model", "reload"} <= set(admin)
