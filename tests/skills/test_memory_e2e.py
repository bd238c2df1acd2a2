"""Done-when of issue 13: an IDE's ``recall`` finds what was said on Telegram.

A user talks to the real bot (fake Bot API, fake LLM); then a real ``omni mcp``, started the
way an IDE starts it with ``OMNI_MEMORY_USER`` naming that user, recalls it without ``_meta``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mcp import ClientSession

from omni.settings import Settings
from tests.bot.conftest import FRIEND, in_process_bot
from tests.skills.conftest import RealServer

pytestmark = pytest.mark.anyio

SAID = "My sister's wedding is in Porto on the 14th of June."


async def recalled(session: ClientSession, meta: Any = None) -> list[str]:
    result = await session.call_tool("recall", {"query": "where is my sister getting married?"}, meta=meta)
    assert not result.is_error
    data = result.structured_content
    assert isinstance(data, dict)
    return [m["text"] for m in data["memories"]]


async def test_an_ides_recall_finds_what_was_said_on_telegram(
    make_settings: Callable[..., Settings], real_server: RealServer
) -> None:
    async with in_process_bot(make_settings) as (tg, _, _):
        tg.push_text(FRIEND, SAID)
        await tg.messages(1)  # answered: the exchange is stored with the answer
    async with real_server(OMNI_MEMORY_USER=str(FRIEND)) as ide:
        assert SAID in await recalled(ide)
        assert SAID in await recalled(ide, {"omni/user_id": FRIEND})  # the bot's own calls agree
        assert SAID not in await recalled(ide, {"omni/user_id": FRIEND + 1})
    async with real_server() as ide:  # an IDE that names nobody has a memory of its own
        assert SAID not in await recalled(ide)
