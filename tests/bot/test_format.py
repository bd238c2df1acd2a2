"""Markdown -> Telegram HTML, checked with the fake Bot API's parser (the real server's rules)."""

from __future__ import annotations

import re

from bot.format import CHUNK_LIMIT, is_valid_html, render, split_html, to_html, to_plain
from tests.fakes.telegram_rules import parse_html, utf16_len


def _long_answer() -> str:
    parts = []
    for i in range(30):
        code = "\n".join(f"    value_{j} = compute({j}) * 2  # step {j} of section {i}" for j in range(15))
        parts.append(
            f"## Section {i}\n\nSome **bold** and _italic_ words, `inline <code>` and a "
            f"[link](https://example.com/?a={i}&b=2).\n\n- first point\n- second point\n\n"
            f"> a quote for section {i}\n\n```python\ndef section_{i}():\n{code}\n```\n"
        )
    return "\n".join(parts)


def test_markup_in_llm_text_shows_literally() -> None:
    for text in ["<script>alert(1)</script>", "5 < 6 & 7", "<b>not bold</b>", "a &amp; b"]:
        chunks = render(text)
        assert len(chunks) == 1
        assert parse_html(chunks[0]) == text


def test_markdown_becomes_telegram_html() -> None:
    html = to_html("**bold** _it_ `x < y`\n\n```python\nprint('<hi>')\n```\n[a](https://e.com)")
    assert "<b>bold</b>" in html and "<i>it</i>" in html
    assert "<code>x &lt; y</code>" in html
    assert '<pre><code class="language-python">' in html
    assert '<a href="https://e.com">a</a>' in html
    parse_html(html)


def test_crossed_markup_falls_back_to_escaped_text() -> None:
    html = to_html('x **a _b** c_ [q](http://a.com/"onmouseover="x)')
    assert is_valid_html(html)
    parse_html(html)


def test_control_characters_are_dropped() -> None:
    assert parse_html(render("a\x00b\x07c\x1b")[0]) == "abc"


def test_long_answer_splits_into_valid_chunks_in_order() -> None:
    answer = _long_answer()
    assert len(answer) > 10_000
    chunks = render(answer)
    assert len(chunks) >= 3
    shown = [parse_html(chunk) for chunk in chunks]  # raises on invalid HTML
    assert all(utf16_len(text) <= 4096 for text in shown)
    for chunk in chunks:
        assert chunk.count("<pre>") == chunk.count("</pre>")
        assert chunk.count("<code") == chunk.count("</code>")
    joined = "\n".join(shown)
    numbers = [int(n) for n in re.findall(r"Section (\d+)", joined)]
    assert numbers == list(range(30))
    steps = re.findall(r"step (\d+) of section (\d+)", joined)
    assert len(steps) == 30 * 15


def test_code_block_longer_than_a_message_is_closed_and_reopened() -> None:
    code = "\n".join(f"line {i} " + "x" * 60 for i in range(200))
    chunks = render(f"```sh\n{code}\n```")
    assert len(chunks) >= 3
    for chunk in chunks:
        assert chunk.startswith('<pre><code class="language-sh">')
        assert chunk.endswith("</code></pre>")
        parse_html(chunk)


def test_one_huge_line_and_astral_characters_split_by_utf16_length() -> None:
    for text in ["word " * 3000, "🙂" * 5000, "y" * 9000]:
        chunks = split_html(text)
        assert all(utf16_len(to_plain(c)) <= CHUNK_LIMIT for c in chunks)
        assert "".join(to_plain(c) for c in chunks).replace("\n", "") == text.replace("\n", "")


def test_empty_answer_has_no_chunks() -> None:
    assert render("") == []
    assert render("   \n\n ") == []
