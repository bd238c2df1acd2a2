"""The fake Bot API is as strict as the real one where the bot's correctness depends on it."""

from __future__ import annotations

import httpx
import pytest

from tests.fakes.server import serve
from tests.fakes.telegram_api import TOKEN, FakeTelegram
from tests.fakes.telegram_rules import EntityError, parse_html

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "text",
    ["<script>x</script>", "<b>open", "<b><i>x</b></i>", "5 < 6", "a & b", '<a name="x">y</a>', "</b>"],
)
def test_invalid_html_is_rejected(text: str) -> None:
    with pytest.raises(EntityError):
        parse_html(text)


def test_supported_html_is_parsed_to_what_users_see() -> None:
    text = '<b>b</b> <a href="https://e.com">l</a> <pre><code class="language-py">x &lt; 1</code></pre> &amp;'
    assert parse_html(text) == "b l x < 1 &"


async def test_get_updates_redelivers_until_confirmed_and_validates_send_message() -> None:
    tg = FakeTelegram()
    async with serve(tg.app) as base, httpx.AsyncClient(base_url=f"{base}/bot{TOKEN}") as client:
        first = tg.push_text(1, "one")
        tg.push_text(1, "two")
        got = (await client.post("/getUpdates", data={"timeout": "0"})).json()["result"]
        assert [u["message"]["text"] for u in got] == ["one", "two"]
        again = (await client.post("/getUpdates", json={"offset": first + 1})).json()["result"]
        assert [u["message"]["text"] for u in again] == ["two"]
        bad = await client.post("/sendMessage", data={"chat_id": "1", "text": "<x>", "parse_mode": "HTML"})
        assert bad.status_code == 400 and "can't parse entities" in bad.json()["description"]
        long = await client.post("/sendMessage", json={"chat_id": 1, "text": "x" * 4097})
        assert long.status_code == 400
        tg.fail_next("sendMessage", status=429, retry_after=3)
        limited = (await client.post("/sendMessage", json={"chat_id": 1, "text": "hi"})).json()
        assert limited["error_code"] == 429 and limited["parameters"]["retry_after"] == 3
        assert (await client.post("/sendMessage", json={"chat_id": 1, "text": "hi"})).json()["ok"]
        assert tg.texts() == ["hi"]
