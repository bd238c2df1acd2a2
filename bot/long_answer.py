"""An answer too long for a few messages: a short summary message, then the whole answer as a
Markdown document, instead of a wall of chunks.

The parts are a pure function of the answer's text and the threshold, like ``format.render``'s
chunks: a replayed update (``delivery.deliver``) gets the same parts and matches the recorded
message ids to them by index, so the summary and the document are each sent once.
"""

from __future__ import annotations

import re

from bot.delivery import Part, Upload
from bot.format import render

SUMMARY_CHARS = 300
FILENAME = "answer.md"
CAPTION = "The full answer, as a Markdown file."
NO_SUMMARY = "The answer is long, so here it is as a file."
_HEADING = re.compile(r"#{1,6}\s[^\n]*")


def parts(markdown: str, max_messages: int) -> list[Part]:
    """The messages that carry ``markdown``: its chunks when there are at most
    ``max_messages`` of them, else a summary and the document."""
    chunks = render(markdown)
    if len(chunks) <= max_messages:
        return list(chunks)
    document = Upload(FILENAME, markdown.encode("utf-8"), caption=CAPTION)
    return [summary(markdown), document]


def summary(markdown: str) -> str:
    """The answer's first paragraph (past a heading), or its first ~300 characters cut at a
    word, as Telegram HTML in one message (``render`` escapes it when the cut leaves broken
    Markdown)."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", markdown) if p.strip()]
    text = [p for p in paragraphs if not _HEADING.fullmatch(p)]
    paragraph = (text or paragraphs or [""])[0]
    if len(paragraph) > SUMMARY_CHARS:
        cut = paragraph[:SUMMARY_CHARS]
        space = cut.rfind(" ")
        paragraph = (cut[:space] if space > SUMMARY_CHARS // 2 else cut).rstrip() + " …"
    chunks = render(paragraph)
    return chunks[0] if len(chunks) == 1 else NO_SUMMARY
